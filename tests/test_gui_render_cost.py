"""What a frame costs a software renderer: the main window draws no window-sized fill of its own (half the CPU of
a frame on llvmpipe at 1280x800); the viewport's clear colour paints the theme's window colour in its place,
so the screen looks the same in both themes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import dearpygui.dearpygui as dpg
from gui_support import _pixels, app_factory, make_controller, make_session, needs_display  # noqa: F401

from conductor.gui import tags
from conductor.gui.theme import palette


def _commonest(png: Path) -> tuple[int, int, int]:
    r, g, b, *_ = Counter(_pixels(png)).most_common(1)[0][0]
    return r, g, b


@needs_display
def test_the_window_colour_comes_from_the_clear_colour_in_both_themes(tmp_path: Path, app_factory) -> None:  # noqa: F811
    p = app_factory(make_controller(make_session(tmp_path)), render=True).pilot
    p.frame(3)
    assert dpg.get_item_configuration(tags.MAIN_WINDOW)["no_background"], "a window-sized fill every frame"
    for name in ("dark", "light"):
        p.app.set_theme(name)
        window = palette(name)[dpg.mvThemeCol_WindowBg][:3]
        assert tuple(round(x * 255) for x in dpg.get_viewport_clear_color()[:3]) == window
        assert _commonest(p.screenshot(tmp_path / f"{name}.png")) == window, f"the {name} window's colour"
