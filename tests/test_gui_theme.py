"""The light and the dark theme: chosen in config.toml ([gui] theme), switched from the command palette by
keyboard, seen in a screenshot, and remembered on exit without touching the file's comments."""

from __future__ import annotations

import shutil
from pathlib import Path

from gui_support import _pixels, app_factory, make_controller, make_session, needs_display  # noqa: F401

from conductor.config import load_config
from conductor.gui import tags

SHIPPED = Path(__file__).resolve().parent.parent / "config.toml"


def _brightness(png: Path) -> float:
    """Mean brightness (0..255) of every 7th pixel: enough to tell paper from slate."""
    px = _pixels(png)[::7]
    return sum(p[0] + p[1] + p[2] for p in px) / (3 * len(px))


@needs_display
def test_the_palette_switches_to_light_it_is_seen_and_remembered(tmp_path: Path, app_factory) -> None:  # noqa: F811
    path = tmp_path / "config.toml"
    shutil.copy(SHIPPED, path)
    original = path.read_text("utf-8")
    c = make_controller(make_session(tmp_path, cfg=load_config(path)), config_path=path)
    h = app_factory(c, render=True)
    p = h.pilot
    p.frame(3)
    dark = _brightness(p.screenshot(tmp_path / "dark.png"))
    assert p.press("Ctrl+P") == "palette"
    p.type_here("light theme", enter=True)
    p.wait_until(lambda: p.app.themes.name == "light", what="the light theme")
    assert not p.shown(tags.PALETTE)
    p.frame(3)
    light = _brightness(p.screenshot(tmp_path / "light.png"))
    assert dark < 70 and light > 170, (dark, light)
    c.fail("a long error so the banner shows in the light theme")
    p.frame(3)
    p.screenshot(tmp_path / "light-banner.png")

    assert h.close() == []
    saved = path.read_text("utf-8")
    assert load_config(path).gui.theme == "light"
    kept = [ln for ln in original.splitlines() if ln.lstrip().startswith("#")]
    assert [ln for ln in saved.splitlines() if ln.lstrip().startswith("#")] == kept, "every comment kept"

    c2 = make_controller(make_session(tmp_path / "again", cfg=load_config(path)), config_path=path)
    p2 = app_factory(c2, render=True).pilot
    assert p2.app.themes.name == "light", "the next start opens in the theme chosen"
    assert p2.press("Ctrl+P") == "palette"
    p2.type_here("dark theme", enter=True)
    p2.wait_until(lambda: p2.app.themes.name == "dark")
