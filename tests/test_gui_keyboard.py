"""Keyboard-first: a whole track driven by keys alone (plan, approve the plan and the tickets, answer tool
approvals by approving, editing and rejecting with a reason, pause and resume), the palette and the shortcut
sheet built from the one keymap, and the rule that a letter typed into a text field is text, not a shortcut.

These run in a real window (Xvfb): keyboard focus only exists in a rendered frame. `pilot.press` hands the
chord to the app's key handler with the real focus state; one test sends real X key events (xdotool) to show
the handler registry is wired to the keyboard.
"""

from __future__ import annotations

from pathlib import Path

import dearpygui.dearpygui as dpg
import pytest
from gui_support import app_factory, done, make_controller, make_session, needs_display  # noqa: F401

from conductor.config import Config
from conductor.gui import keymap, tags
from conductor.gui.keymap import KEYMAP
from conductor.gui.pilot import Pilot
from conductor.providers.scripted import ScriptedProvider

pytestmark = [pytest.mark.gui, needs_display]


def current(p: Pilot) -> tuple[str, str] | None:
    d = p.app.dialogs.current()
    return (d.kind, d.request.prov.ticket_id or "") if d is not None and d.request is not None else None


def test_a_whole_track_by_keyboard_alone(tmp_path: Path, app_factory) -> None:
    cfg = Config()
    cfg = cfg.updated({"engine": {"step_mode": True}})
    cfg = cfg.updated({"engine": {"max_workers": 1}})  # one approval at a time, in ticket order: the test reads like the person's session
    c = make_controller(make_session(tmp_path, ScriptedProvider(), cfg))
    p = app_factory(c, render=True).pilot
    p.frame(3)

    assert p.press("Ctrl+E") == "focus_epic"
    assert p.focused() == tags.EPIC_INPUT
    p.type_here("Add OAuth logi")
    assert p.press("N") is None, "a letter typed into the epic is text"
    assert p.value(tags.EPIC_INPUT) == "Add OAuth login"
    assert p.press("Ctrl+Enter") == "plan"
    p.wait_until(lambda: current(p) == ("plan", ""), what="the plan review to open")
    assert p.value(tags.EPIC_INPUT) == "Add OAuth login", "the epic stays until its plan is accepted"

    assert p.press("E") == "edit"
    assert p.focused() == tags.plan_field(0, "title")
    p.type_here("OAuth login by keyboar")
    assert p.press("D") is None, "D while typing the title is a letter"
    assert p.press("Enter") is None, "Enter keeps the edit and leaves the field"
    assert current(p) == ("plan", "")
    assert p.press("A") == "approve"
    assert p.value(tags.EPIC_INPUT) == "", "accepted: the epic box is free for the next one"

    p.wait_until(lambda: current(p) == ("tickets", ""), what="the ticket review")
    assert p.press("A") == "approve"
    p.wait_until(lambda: c.active_track and c.tracks[c.active_track].status.value == "running")

    assert p.press("F6") == "pause"
    p.wait_until(lambda: c.tracks[c.active_track].status.value == "paused", what="the track to pause")
    assert p.press("F5") == "resume"
    p.wait_until(lambda: c.tracks[c.active_track].status.value == "running", what="the track to resume")

    answered: list[str] = []
    while not done(c):
        p.wait_until(lambda: done(c) or current(p) is not None, timeout=30, what="the next approval")
        if done(c):
            break
        kind, ticket = current(p)
        if (kind, ticket) == ("tool", "T1"):
            assert p.press("E") == "edit"
            assert p.focused() == tags.tool_arg("path")
            p.type_here("notes/survey-by-keyboard.md")
            p.press("Enter")
            assert p.press("A") == "approve"
        elif (kind, ticket) == ("tool", "T2") and "tool:T2" not in answered:
            assert p.press("R") == "reject"
            assert p.focused() == tags.dialog_part(tags.TOOL_DIALOG, "reason")
            p.type_here("write somewhere els")
            assert p.press("E") is None, "typing the reason: E is a letter, not edit"
            p.xkeys("Return")
        else:
            assert p.press("A") == "approve"
        answered.append(f"{kind}:{ticket}")
        p.wait_until(lambda k=(kind, ticket): current(p) != k or done(c), what="the answered dialog to close")

    ws = c.session.workspace
    assert (ws / "notes" / "survey-by-keyboard.md").exists() and not (ws / "notes" / "survey.md").exists()
    # The rejected write failed T2's review (nothing was written); its second attempt, approved, wrote it.
    assert c.tracks[c.active_track].ticket("T2").attempts == 2 and (ws / "notes" / "model.md").exists()
    assert "rejected: write somewhere else" in "\n".join(e.line() for e in c.log)
    assert c.tracks[c.active_track].title == "OAuth login by keyboard"
    assert {"tool:T1", "tool:T2"} <= set(answered) and any(a.startswith("spawn:") for a in answered)


def test_j_k_escape_and_the_window_title(tmp_path: Path, app_factory) -> None:
    c = make_controller(make_session(tmp_path, auto_run=False))
    p = app_factory(c, render=True).pilot
    for epic in ("Epic one", "Epic two", "Epic three"):
        c.plan(epic)
    p.wait_until(lambda: len(p.pending("plan")) == 3)
    ids = [r.id for r in p.pending("plan")]
    p.wait_until(lambda: dpg.get_viewport_title() == "Conductor (3)", what="the title to count the approvals")
    assert current(p) is not None and p.app.dialogs.current().request.id == ids[0]
    assert p.press("J") == "next_approval" and p.app.dialogs.current().request.id == ids[1]
    assert p.press("J") and p.app.dialogs.current().request.id == ids[2]
    assert p.press("J") and p.app.dialogs.current().request.id == ids[0], "J wraps around"
    assert p.press("K") and p.app.dialogs.current().request.id == ids[2]
    assert p.press("Escape") == "close"
    assert p.app.dialogs.current().request.id == ids[0], "Esc snoozed the third; the oldest waiting one opens"
    assert p.press("Escape") == "close" and p.app.dialogs.current().request.id == ids[1]
    assert p.press("Escape") == "close"
    assert p.app.dialogs.current() is None and len(p.pending("plan")) == 3, "all snoozed; nothing is answered"
    assert p.press("R") is None, "no dialog open: R means nothing"
    assert p.press("J") and p.app.dialogs.current().request.id == ids[0]
    assert p.press("A") == "approve"
    assert ids[0] not in c.pending
    p.wait_until(lambda: dpg.get_viewport_title() == f"Conductor ({len(c.pending)})", what="the title to follow")
    assert c.window_title() == "Conductor (2)" or len(c.pending) != 2


def test_palette_and_shortcut_sheet_come_from_the_keymap(tmp_path: Path, app_factory) -> None:
    assert keymap.check_unique() == []
    c = make_controller(make_session(tmp_path))
    p = app_factory(c, render=True).pilot
    assert set(p.app.keys.actions) == {b.action for b in KEYMAP}, "every action has a handler and a binding"

    assert p.press("Ctrl+P") == "palette"
    assert p.shown(tags.PALETTE) and p.focused() == tags.PALETTE_FILTER
    for b in KEYMAP:
        assert p.label(tags.palette_item(b.action)) == b.description
        assert p.value(tags.palette_keys(b.action)) == b.keys_label()
    p.type_here("event log")
    assert p.app.keys.palette_matches() == ["search", "tab_log"]
    assert not p.shown(tags.palette_item("plan"))
    assert p.press("Enter") == "search", "Enter runs the first match"
    assert not p.shown(tags.PALETTE)
    p.wait_until(lambda: p.focused() == tags.STREAM_FIND, what="the cursor in the streams' find bar (in front)")

    p.press("Escape")  # leaves the search field
    assert p.press("F1") == "help"
    assert p.shown(tags.HELP)
    sheet = [dpg.get_value(row_cells[0]) for row in dpg.get_item_children(tags.HELP_TABLE, 1)
             if (row_cells := dpg.get_item_children(row, 1))]
    assert sheet == [b.keys_label() for b in KEYMAP if b.keys]
    assert p.press("Ctrl+P") is None, "a modal is up: only Esc works"
    assert p.press("Escape") == "close" and not p.shown(tags.HELP)


def test_zoom_and_search(tmp_path: Path, app_factory) -> None:
    c = make_controller(make_session(tmp_path))
    p = app_factory(c, render=True).pilot
    assert p.press("Ctrl+Plus") == "zoom_in"
    assert p.press("Ctrl+Plus") == "zoom_in"
    assert dpg.get_global_font_scale() == pytest.approx(1.2)
    assert p.press("Ctrl+Minus") == "zoom_out" and dpg.get_global_font_scale() == pytest.approx(1.1)
    assert p.press("Ctrl+0") == "zoom_reset" and dpg.get_global_font_scale() == pytest.approx(1.0)
    for _ in range(40):
        p.press("Ctrl+Minus")
    assert dpg.get_global_font_scale() == pytest.approx(0.6), "zoom stops at a readable size"
    p.press("Ctrl+0")

    c.fail("first problem: disk full")
    c.fail("second problem: key rejected")
    p.press("Escape")
    assert p.press("Ctrl+4") == "tab_log"
    assert p.press("Ctrl+F") == "search"
    p.type_here("KEY rej")
    p.wait_until(lambda: "key rejected" in p.value(tags.LOG_TEXT))
    assert "disk full" not in p.value(tags.LOG_TEXT)


@pytest.mark.skipif(not Path("/usr/bin/xdotool").exists(), reason="xdotool is not installed (apt install xdotool)")
def test_real_key_events_reach_the_handler(tmp_path: Path, app_factory) -> None:
    import subprocess
    c = make_controller(make_session(tmp_path, auto_run=False))
    p = app_factory(c, render=True).pilot
    p.frame(3)
    (x, y), (w, h) = dpg.get_item_rect_min(tags.EPIC_INPUT), dpg.get_item_rect_size(tags.EPIC_INPUT)
    subprocess.run(["/usr/bin/xdotool", "mousemove", str(int(x + w / 2)), str(int(y + h / 2)), "click", "1"],
                   check=True, timeout=10)
    p.wait_until(lambda: p.focused() == tags.EPIC_INPUT and dpg.is_item_active(tags.EPIC_INPUT))
    p.xkeys("r", "a", "j")
    assert p.value(tags.EPIC_INPUT) == "raj" and p.app.keys.last_action is None, "typed letters stay text"
    p.xkeys("ctrl+Return")
    assert p.app.keys.last_action == "plan"
    p.wait_until(lambda: current(p) == ("plan", ""), what="the plan review")
    p.xkeys("a")
    assert p.app.keys.last_action == "approve"
    p.wait_until(lambda: not p.pending("plan"), what="the plan approved by a real key press")


def test_tab_reaches_the_dialog_buttons_and_modals_reopen_after_esc(tmp_path: Path, app_factory) -> None:
    c = make_controller(make_session(tmp_path, auto_run=False))
    p = app_factory(c, render=True).pilot
    for _ in range(2):  # Esc must leave the sheet closable and reopenable (ImGui and the app agree it is closed)
        assert p.press("F1") == "help"
        p.wait_until(lambda: dpg.is_item_visible(tags.HELP_CLOSE), what="the sheet drawn")
        assert p.press("Escape") == "close" and not p.shown(tags.HELP)
    c.plan("Epic one")
    p.wait_until(lambda: current(p) == ("plan", ""), what="the plan review")
    dialog = p.app.dialogs.current()
    reached: list[str] = []
    for _ in range(40):
        p.xkeys("Tab")
        reached.append(p.focused())
        if reached[-1] == dialog.part("approve"):
            break
    assert dialog.part("reject") in reached and reached[-1] == dialog.part("approve"), f"Tab reached {reached}"
    p.xkeys("Return")  # Enter presses the focused button
    p.wait_until(lambda: not p.pending("plan"), what="the plan approved with Enter on the focused button")


def test_a_on_an_invalid_ticket_graph_explains_instead_of_approving(tmp_path: Path, app_factory) -> None:
    c = make_controller(make_session(tmp_path, auto_run=False))
    p = app_factory(c, render=True).pilot
    c.plan("Epic one")
    p.wait_until(lambda: current(p) == ("plan", ""))
    assert p.press("A") == "approve"
    p.wait_until(lambda: current(p) == ("tickets", ""), what="the ticket review")
    p.type(tags.ticket_field(0, "deps"), "T6")          # a cycle: Approve goes grey
    assert p.press("A") == "approve"
    assert p.pending("tickets"), "nothing approved"
    assert "Approve is off until the problems listed above are fixed" in p.value(
        tags.dialog_part(tags.TICKETS_DIALOG, "error"))
    assert p.press("Ctrl+Enter") is None, "Ctrl+Enter in a dialog does not start another plan"
