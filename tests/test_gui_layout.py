"""Legible at any size: at 1024×700 and at 1920×1080 the toolbar, the banner and every dialog's buttons lie
inside the window, measured from the widgets' rectangles in a rendered frame (a screenshot of each state is
saved under the test's tmp folder for a person to look at)."""

from __future__ import annotations

from pathlib import Path

import dearpygui.dearpygui as dpg
import pytest
from gui_support import app_factory, assert_not_blank, make_controller, make_session, needs_display, plan  # noqa: F401

from conductor.config import Config
from conductor.gui import tags
from conductor.gui.keymap import KEYMAP
from conductor.gui.pilot import Pilot

pytestmark = [pytest.mark.gui, needs_display]

LONG_ERROR = ("Tier 3 call failed: 400 INVALID_ARGUMENT — the request for ticket T4 named a tool the model does not "
              "support; check the model chosen for tier 3 and the escalation ladder in Settings, then retry T4 "
              "from the ticket table (its output so far is kept in tracks/<id>/outputs/T4.md)")


def rect(tag: str) -> tuple[float, float, float, float]:
    state = dpg.get_item_state(tag)
    if "rect_min" in state:
        (x, y), (w, h) = state["rect_min"], state["rect_size"]
    else:  # a child window reports where it is drawn and its size, not a rect
        (x, y), (w, h) = state["pos"], state["rect_size"]
    return x, y, x + w, y + h


def assert_inside(tag: str, outer: tuple[float, float, float, float], what: str) -> None:
    x0, y0, x1, y1 = rect(tag)
    ox0, oy0, ox1, oy1 = outer
    assert x1 - x0 > 0 and y1 - y0 > 0, f"{what}: {tag} has no size (not drawn)"
    assert ox0 <= x0 and oy0 <= y0 and x1 <= ox1 and y1 <= oy1, \
        f"{what}: {tag} at {(x0, y0, x1, y1)} is not inside {outer}"


def window_rect(tag: str) -> tuple[float, float, float, float]:
    (x, y), (w, h) = dpg.get_item_pos(tag), (dpg.get_item_width(tag), dpg.get_item_height(tag))
    return x, y, x + w, y + h


def check_dialog(p: Pilot, window: str, buttons: list[str], view: tuple[float, float, float, float],
                 shots: Path, name: str) -> None:
    p.wait_until(lambda: dpg.is_item_shown(window) and all(dpg.get_item_rect_size(b)[0] > 0 for b in buttons),
                 what=f"{name} drawn")
    p.frame(2)
    assert_inside_window = window_rect(window)
    x0, y0, x1, y1 = assert_inside_window
    assert view[0] <= x0 and view[1] <= y0 and x1 <= view[2] and y1 <= view[3], \
        f"{name}: the window {assert_inside_window} does not fit the viewport {view}"
    for b in buttons:
        assert_inside(b, assert_inside_window, name)
        assert dpg.is_item_visible(b), f"{name}: {b} is scrolled out of sight"
    assert_not_blank(p.screenshot(shots / f"{name}.png"))


@pytest.mark.parametrize(("size", "scale"), [((1024, 700), 1.0), ((1920, 1080), 1.0), ((1920, 1080), 2.0)])
def test_toolbar_banner_and_every_dialog_fit_the_window(tmp_path: Path, app_factory, size: tuple[int, int],  # noqa: F811
                                                        scale: float) -> None:
    """At 1920×1080 with HiDPI scale 2 (fonts and metrics doubled: as cramped as 960×540) everything still fits."""
    w, h = size
    cfg = Config()
    cfg = cfg.updated({"gui": {"width": w, "height": h, "scale": scale}})
    cfg = cfg.updated({"engine": {"step_mode": True}})
    c = make_controller(make_session(tmp_path, cfg=cfg), demo=True)
    p = app_factory(c, render=True).pilot
    p.wait_until(lambda: dpg.get_viewport_client_width() == w and dpg.get_viewport_client_height() == h,
                 what=f"the window at {w}×{h}")
    view = (0.0, 0.0, float(w), float(h))
    shots = tmp_path / "artifacts"

    c.fail(LONG_ERROR)
    p.wait_until(lambda: p.shown(tags.BANNER) and dpg.get_item_rect_size(tags.BANNER_TEXT)[1] > 0)
    p.frame(3)
    toolbar = [tags.WORKSPACE_INPUT, tags.WORKSPACE_OPEN, tags.PROVIDER_COMBO, tags.STEP_MODE, tags.AUTO_RUN,
               tags.PAUSE, tags.RESUME, tags.CANCEL, tags.SETTINGS_BUTTON, tags.DEMO_LABEL]
    for t in toolbar:
        assert_inside(t, view, "toolbar")
    assert_inside(tags.BANNER, view, "banner")
    assert_inside(tags.BANNER_TEXT, rect(tags.BANNER), "banner text wraps inside the banner")
    assert_inside(tags.PLAN_BUTTON, view, "main window")
    assert_not_blank(p.screenshot(shots / "main.png"))

    plan(p, "Add OAuth login")
    for kind in ("plan", "tickets", "spawn", "tool"):
        dialog = p.open_approval(kind)
        check_dialog(p, dialog.tag, [dialog.part("approve"), dialog.part("reject"), dialog.part("reason"),
                                     dialog.part("keys")], view, shots, f"dialog-{kind}")
        assert p.approve(kind) == ""
        if kind != "tool":
            p.wait_for_approval({"plan": "tickets", "tickets": "spawn", "spawn": "tool"}[kind])
    p.app.dialogs.auto_open = False
    if (cur := p.app.dialogs.current()) is not None:
        cur.dismiss()

    p.click(tags.SETTINGS_BUTTON)
    check_dialog(p, tags.SETTINGS_DIALOG, [tags.SETTINGS_SAVE, tags.SETTINGS_CANCEL], view, shots, "settings")
    p.click(tags.SETTINGS_CANCEL)
    p.wait_until(lambda: bool(c.ticket_rows()))
    p.click(tags.ticket_action(c.ticket_rows()[-1].id, "edit"))
    check_dialog(p, tags.EDIT_TICKET, [tags.EDIT_TICKET_SAVE, tags.EDIT_TICKET_CANCEL], view, shots, "edit-ticket")
    p.click(tags.EDIT_TICKET_CANCEL)
    p.app.request_close()
    check_dialog(p, tags.CONFIRM_CLOSE, [tags.CONFIRM_CLOSE_YES, tags.CONFIRM_CLOSE_NO], view, shots, "confirm-close")
    p.click(tags.CONFIRM_CLOSE_NO)
    p.app.keys.run("help")
    check_dialog(p, tags.HELP, [tags.HELP_CLOSE], view, shots, "shortcuts")
    p.app.keys.run("close")
    p.frame(2)
    p.app.keys.run("palette")
    check_dialog(p, tags.PALETTE, [tags.PALETTE_FILTER, tags.palette_item(KEYMAP[0].action)], view, shots, "palette")
    p.app.keys.run("close")


def test_a_long_model_name_shows_whole_in_a_tooltip(tmp_path: Path, app_factory) -> None:
    cfg = Config()
    cfg = cfg.updated({"models": {"tier3": "gemini-3.5-flash-lite-preview-09-2026-with-a-very-long-suffix"}})
    c = make_controller(make_session(tmp_path, cfg=cfg))
    p = app_factory(c, render=True).pilot
    p.frame(3)
    assert p.value(tags.model_tooltip("tier3")) == cfg.models.tier3
    assert dpg.get_item_rect_size(tags.model_combo(3))[0] < dpg.get_text_size(cfg.models.tier3)[0], \
        "the name is cut in the combo (so the tooltip is needed)"
