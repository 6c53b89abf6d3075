"""HiDPI scale from the system or the config: GDK_SCALE / QT_SCALE_FACTOR, Xft.dpi from the X resources, the
monitor's physical size; the config's `[gui] scale` wins when set; values that are not numbers are reported,
never a traceback; the commands run off the GUI thread; and the scale reaches the fonts and the layout."""

from __future__ import annotations

import ctypes
import ctypes.util
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from gui_support import app_factory, make_controller, make_session, needs_display  # noqa: F401

from conductor.config import Config
from conductor.gui import tags
from conductor.gui.hidpi import (
    Detection,
    ScaleFound,
    ScaleProbe,
    choose,
    detect,
    from_env,
    from_monitor,
    from_xresources,
)

XRDB = """Xft.antialias:\t1
Xft.dpi:\t192
Xft.hinting:\t1
"""


def test_xft_dpi_gives_the_scale_and_a_broken_value_is_named() -> None:
    assert from_xresources(XRDB) == (ScaleFound(2.0, "Xft.dpi 192 (xrdb)"), [])
    assert from_xresources("Xft.dpi: 144\n")[0] == ScaleFound(1.5, "Xft.dpi 144 (xrdb)")
    assert from_xresources("Xft.dpi: 120\n")[0] == ScaleFound(1.25, "Xft.dpi 120 (xrdb)")
    assert from_xresources("Xcursor.size: 24\n") == (None, [])
    found, problems = from_xresources("Xft.dpi:\tlarge\n")
    assert found is None and problems == ["Xft.dpi 'large' in the X resources is not a number; ignored"]
    assert from_xresources("Xft.dpi: -5\n")[0] is None


def test_the_environment_gdk_before_qt_and_bad_values_are_said_and_skipped() -> None:
    assert from_env({"GDK_SCALE": "2"}) == (ScaleFound(2.0, "GDK_SCALE=2"), [])
    assert from_env({"QT_SCALE_FACTOR": "1.5"}) == (ScaleFound(1.5, "QT_SCALE_FACTOR=1.5"), [])
    found, problems = from_env({"GDK_SCALE": "two", "QT_SCALE_FACTOR": "1.75"})
    assert found == ScaleFound(1.75, "QT_SCALE_FACTOR=1.75")
    assert problems == ["GDK_SCALE='two' is not a number; ignored"]
    found, problems = from_env({"GDK_SCALE": "40"})
    assert found is None and problems == ["GDK_SCALE='40' is outside 0.5..4.0; ignored"]
    assert from_env({}) == (None, [])


def test_the_monitors_physical_size_snaps_to_a_quarter_and_never_shrinks() -> None:
    four_k = "  dimensions:    3840x2160 pixels (597x336 millimeters)\n"
    assert from_monitor(four_k) == ScaleFound(1.75, "monitor 163 dpi (xdpyinfo)")
    assert from_monitor("  dimensions:    1920x1080 pixels (488x274 millimeters)\n") == \
        ScaleFound(1.0, "monitor 100 dpi (xdpyinfo)")  # what Xvfb reports
    assert from_monitor("  dimensions:    1920x1080 pixels (0x0 millimeters)\n") is None
    assert from_monitor("  dimensions:    800x600 pixels (400x300 millimeters)\n").scale == 1.0  # type: ignore[union-attr]
    assert from_monitor("garbage") is None


def test_detect_asks_the_environment_first_then_xrdb_then_the_monitor() -> None:
    asked: list[str] = []

    def runner(outputs: dict[str, str | None]):  # type: ignore[no-untyped-def]
        def run(argv: list[str]) -> str | None:
            asked.append(argv[0])
            return outputs.get(argv[0])
        return run

    assert detect({"GDK_SCALE": "2", "DISPLAY": ":1"}, runner({})).found == ScaleFound(2.0, "GDK_SCALE=2")
    assert asked == [], "no command when the environment says it"
    assert detect({"DISPLAY": ":1"}, runner({"xrdb": XRDB})).found == ScaleFound(2.0, "Xft.dpi 192 (xrdb)")
    assert asked == ["xrdb"]
    asked.clear()
    monitor = "dimensions:    3840x2160 pixels (597x336 millimeters)"
    found = detect({"DISPLAY": ":1"}, runner({"xrdb": None, "xdpyinfo": monitor})).found  # no xrdb installed
    assert found is not None and found.scale == 1.75 and asked == ["xrdb", "xdpyinfo"]
    asked.clear()
    assert detect({}, runner({"xrdb": XRDB})) == Detection(None), "no display: nothing to ask"
    assert asked == []
    bad = detect({"GDK_SCALE": "x", "DISPLAY": ":1"}, runner({"xrdb": "Xft.dpi: y\n", "xdpyinfo": None}))
    assert bad.found is None and len(bad.problems) == 2


def test_the_config_wins_when_set() -> None:
    system = Detection(ScaleFound(2.0, "Xft.dpi 192 (xrdb)"))
    assert choose(1.25, system) == ScaleFound(1.25, "config.toml [gui] scale")
    assert choose(None, system) == ScaleFound(2.0, "Xft.dpi 192 (xrdb)")
    assert choose(None, Detection(None)) == ScaleFound(1.0, "default")
    assert Config().gui.scale is None
    with pytest.raises(ValueError, match="scale"):
        Config.model_validate({"gui": {"scale": 9.0}})


def test_the_probe_runs_its_commands_on_its_own_thread_and_a_crash_is_a_sentence() -> None:
    seen: list[int] = []
    release = threading.Event()

    def slow(argv: list[str]) -> str | None:
        seen.append(threading.get_ident())
        release.wait(5)
        return XRDB

    probe = ScaleProbe({"DISPLAY": ":1"}, slow)
    assert probe.result() is None, "asking never waits for the command"
    release.set()
    detection = probe.result(wait=5)
    assert detection is not None and detection.found == ScaleFound(2.0, "Xft.dpi 192 (xrdb)")
    assert seen and threading.get_ident() not in seen

    def broken(argv: list[str]) -> str | None:
        raise RuntimeError("no X")
    crashed = ScaleProbe({"DISPLAY": ":1"}, broken).result(wait=5)
    assert crashed == Detection(None, ("the display scale could not be read: RuntimeError: no X",))


# ---------------------------------------------------------------- on a real (virtual) display

@pytest.fixture
def xft_dpi_192() -> Iterator[None]:
    """Xft.dpi: 192 in the X server's resources, as a desktop sets it for a HiDPI screen (an X connection is held
    open meanwhile: a server with no client left resets and forgets its resources)."""
    xrdb = shutil.which("xrdb")
    if xrdb is None:
        pytest.fail("xrdb is missing: scripts/test.sh installs x11-xserver-utils")
    x11 = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    held = x11.XOpenDisplay(None)
    assert held, "no X display"
    subprocess.run([xrdb, "-nocpp", "-merge"], input="Xft.dpi:\t192\n", text=True, check=True)
    try:
        yield
    finally:
        subprocess.run([xrdb, "-remove"], check=True)
        x11.XCloseDisplay(held)


@needs_display
def test_xft_dpi_on_the_display_scales_fonts_and_layout(tmp_path: Path, app_factory, xft_dpi_192,  # noqa: F811
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GDK_SCALE", raising=False)
    monkeypatch.delenv("QT_SCALE_FACTOR", raising=False)
    cfg = Config().updated({"gui": {"width": 1920, "height": 1080}})
    p = app_factory(make_controller(make_session(tmp_path, cfg=cfg)), render=True).pilot
    p.wait_until(lambda: p.app.scale.scale == 2.0, what="the scale from Xft.dpi")
    assert p.app.scale.source == "Xft.dpi 192 (xrdb)" and p.app.themes.scale == 2.0
    p.frame(3)
    import dearpygui.dearpygui as dpg
    assert dpg.get_item_rect_size(tags.PLAN_BUTTON)[1] >= 40, "a button of 2x text (23 px at 1x)"
    assert dpg.get_item_rect_size(tags.STATUS_PROVIDER)[1] >= 30, "status text at 2x"
    assert p.app.window.layout_state()["left_width"] == cfg.gui.left_width, "saved in layout pixels"


@needs_display
def test_gdk_scale_applies_before_the_first_frame_and_the_config_still_wins(tmp_path: Path, app_factory,  # noqa: F811
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GDK_SCALE", "2")
    h = app_factory(make_controller(make_session(tmp_path / "a")), render=True)
    assert h.app.scale == ScaleFound(2.0, "GDK_SCALE=2") and h.app.themes.scale == 2.0
    h.close()
    cfg = Config().updated({"gui": {"scale": 1.0}})
    p = app_factory(make_controller(make_session(tmp_path / "b", cfg=cfg)), render=True).pilot
    p.frame(3)
    assert p.app.scale == ScaleFound(1.0, "config.toml [gui] scale") and p.app.themes.scale == 1.0
    import dearpygui.dearpygui as dpg
    assert dpg.get_item_rect_size(tags.PLAN_BUTTON)[1] < 30


def test_a_scale_in_the_environment_that_is_not_a_number_is_said_in_the_status_bar(
        tmp_path: Path, app_factory, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("GDK_SCALE", "big")
    monkeypatch.delenv("QT_SCALE_FACTOR", raising=False)
    p = app_factory(make_controller(make_session(tmp_path))).pilot
    p.frame(2)
    assert p.app.scale == ScaleFound(1.0, "default")
    assert "GDK_SCALE='big' is not a number; ignored" in p.value(tags.STATUS_MESSAGE)
