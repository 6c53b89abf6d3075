"""Visual simulations: the real app in a real window (under Xvfb in CI), driven by the pilot through the whole
lifecycle and the negative flows, with a screenshot of each stage checked to be non-blank. These tests are
at this layer because only a rendered frame shows that the layout, fonts and dialogs actually draw.

Screenshots go to <pytest tmp_path>/artifacts (never committed). Skipped, with the reason, without a display.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gui_support import (answer_until, app_factory, assert_dashboard_is_the_ledger, assert_not_blank,  # noqa: F401
                         done, make_controller, make_session, needs_display, plan)

from conductor.events import ticket_stream_id
from conductor.config import Config
from conductor.errors import BadRequest
from conductor.gui import tags
from conductor.gui.pilot import Pilot
from conductor.providers.scripted import Reply, ScriptedProvider, demo_reply

pytestmark = [pytest.mark.gui, needs_display]


def shoot(p: Pilot, folder: Path, name: str) -> Path:
    path = p.screenshot(folder / f"{name}.png")
    assert_not_blank(path)
    return path


def test_visual_lifecycle_with_screenshots(tmp_path: Path, app_factory) -> None:
    cfg = Config()
    cfg = cfg.updated({"engine": {"step_mode": True}})
    provider = ScriptedProvider(chunk_delay_s=0.002)
    c = make_controller(make_session(tmp_path, provider, cfg), demo=True)
    p = app_factory(c, render=True).pilot
    art = tmp_path / "artifacts"
    shoot(p, art, "01-start")

    plan(p, "Add OAuth login to this repo")
    p.wait_for_approval("plan")
    p.type(tags.plan_field(0, "title"), "OAuth login")
    shoot(p, art, "02-plan-review")
    assert p.approve("plan") == ""

    p.wait_for_approval("tickets")
    p.type(tags.ticket_field(2, "deps"), "T1, T9")
    assert "unknown ticket 'T9'" in p.value(tags.TICKETS_PROBLEMS)
    shoot(p, art, "03-ticket-review-invalid")
    p.type(tags.ticket_field(2, "deps"), "T1")
    assert p.approve("tickets") == ""

    p.wait_for_approval("spawn")
    shoot(p, art, "04-spawn-approval")
    assert p.approve("spawn") == ""
    p.wait_for_approval("tool")
    p.open_approval("tool")
    p.type(tags.tool_arg("path"), "notes/survey-reviewed.md")
    shoot(p, art, "05-tool-approval-edited")
    assert p.approve("tool") == ""

    p.app.dialogs.auto_open = False  # look at the main window mid-run
    answer_until(p, lambda: c.ticket_rows()[3].status in ("awaiting_approval", "running"),
                 {("tool", "T2"): lambda p, r: p.reject("tool", "not this file")})
    shoot(p, art, "06-running")
    p.app.dialogs.auto_open = True
    answer_until(p, lambda: done(c))
    shoot(p, art, "07-done")
    p.select_tab(tags.MAIN_TABS, tags.DASHBOARD_TAB)
    shoot(p, art, "08-dashboard")
    p.select_tab(tags.MAIN_TABS, tags.LOG_TAB)
    shoot(p, art, "09-log")

    ws = c.session.workspace
    assert (ws / "notes" / "survey-reviewed.md").exists()
    assert c.tracks[c.active_track].ticket("T2").attempts == 2  # the rejected write failed review, then redone
    assert "OAuth login" in p.value(tags.pane_text("tier1"))
    assert '"T4"' in p.value(tags.pane_text("tier2"))
    assert "Work on T5 is complete" in p.value(tags.pane_text(ticket_stream_id(3, c.active_track, "T5")))
    assert "[T6]" in p.value(tags.pane_text("tier4"))
    assert_dashboard_is_the_ledger(p)
    assert len(list(art.glob("*.png"))) == 9


def test_visual_provider_error(tmp_path: Path, app_factory) -> None:
    def t2(req, n):  # noqa: ANN001, ANN202
        return Reply(fault=BadRequest("400 API key not valid")) if n == 0 else demo_reply(req, n)
    c = make_controller(make_session(tmp_path, ScriptedProvider({(3, "T2"): t2})))
    p = app_factory(c, render=True).pilot
    plan(p)
    # the plain-folder warning (one worker, no git) may come first: the error replaces it when it arrives
    answer_until(p, lambda: p.shown(tags.BANNER) and "API key not valid" in p.value(tags.BANNER_TEXT))
    p.wait_until(lambda: c.ticket_rows()[3].status == "blocked")
    shoot(p, tmp_path / "artifacts", "error-provider")
    p.click(tags.ticket_action("T2", "retry"))
    answer_until(p, lambda: done(c))


def test_visual_malformed_plan_and_budget(tmp_path: Path, app_factory) -> None:
    c = make_controller(make_session(tmp_path / "a", ScriptedProvider({1: [Reply(text="{not json")]})))
    p = app_factory(c, render=True).pilot
    plan(p)
    p.wait_until(lambda: p.shown(tags.BANNER))
    assert "no valid answer" in p.value(tags.BANNER_TEXT)
    shoot(p, tmp_path / "artifacts", "error-malformed-plan")

    cfg = Config()
    cfg = cfg.updated({"budget": {"max_tokens": 600}})
    c2 = make_controller(make_session(tmp_path / "b", cfg=cfg))
    p2 = app_factory(c2, render=True).pilot
    plan(p2)
    answer_until(p2, lambda: p2.shown(tags.BANNER) and "budget" in p2.value(tags.BANNER_TEXT))
    p2.wait_until(lambda: c2.tracks[c2.active_track].status.value == "paused")
    p2.select_tab(tags.MAIN_TABS, tags.DASHBOARD_TAB)
    shoot(p2, tmp_path / "artifacts", "error-budget")


def test_visual_cancel_mid_stream_and_restart(tmp_path: Path, app_factory) -> None:
    provider = ScriptedProvider({(3, "T1"): [Reply(text="streaming worker output " * 200)]}, chunk_delay_s=0.01)
    c = make_controller(make_session(tmp_path, provider))
    h = app_factory(c, render=True)
    p = h.pilot
    plan(p)
    key = lambda: ticket_stream_id(3, c.active_track, "T1")  # noqa: E731
    answer_until(p, lambda: bool(c.active_track) and len(c.streams.text(key())) > 200)
    p.click(tags.ticket_action("T1", "cancel"))
    p.wait_until(lambda: p.value(tags.ticket_cell("T1", "status")) == "cancelled")
    shoot(p, tmp_path / "artifacts", "cancelled-mid-stream")
    track_id = c.active_track
    assert h.close() == []

    c2 = make_controller(make_session(tmp_path))
    p2 = app_factory(c2, render=True).pilot
    p2.click(tags.track_load(track_id))
    p2.wait_until(lambda: c2.active_track == track_id, what="the track loaded (off the GUI thread)")
    p2.frame(2)
    p2.wait_until(lambda: "streaming worker output" in p2.value(tags.pane_text(key())))
    shoot(p2, tmp_path / "artifacts", "restarted")
    p2.click(tags.track_resume(track_id))
    answer_until(p2, lambda: done(c2), timeout=60)


def test_panes_follow_new_text_only_when_at_the_bottom(tmp_path: Path, app_factory) -> None:
    import dearpygui.dearpygui as dpg

    from conductor.events import Provenance, StreamDelta
    c = make_controller(make_session(tmp_path))
    p = app_factory(c, render=True).pilot
    scroll = tags.pane_scroll("tier1")

    def post(n: int) -> None:
        for i in range(n):
            c.events.post(StreamDelta(prov=Provenance(tier=1), stream_id="tier1", text=f"line {i}\n"))

    post(200)
    p.wait_until(lambda: dpg.get_y_scroll_max(scroll) > 0 and dpg.get_y_scroll(scroll) == dpg.get_y_scroll_max(scroll),
                 what="the pane to follow to the bottom")
    dpg.set_y_scroll(scroll, 0.0)                      # the user scrolls up to read
    p.frame(3)
    before_max = dpg.get_y_scroll_max(scroll)
    post(50)
    p.wait_until(lambda: dpg.get_y_scroll_max(scroll) > before_max, what="new text laid out")
    p.frame(2)
    assert dpg.get_y_scroll(scroll) == 0.0, "reading position kept while new text arrives"
    dpg.set_y_scroll(scroll, dpg.get_y_scroll_max(scroll))   # back at the bottom
    p.frame(3)
    post(50)
    p.wait_until(lambda: dpg.get_y_scroll(scroll) == dpg.get_y_scroll_max(scroll)
                 and "line 49" in p.value(tags.pane_text("tier1")).splitlines()[-1], what="following again")


@pytest.mark.skipif(not Path("/usr/bin/xdotool").exists(), reason="xdotool is not installed (apt install xdotool)")
def test_dragging_the_splitter_resizes_and_the_layout_is_saved(tmp_path: Path, app_factory) -> None:
    import subprocess

    import dearpygui.dearpygui as dpg

    from conductor.config import load_config
    path = tmp_path / "config.toml"
    c = make_controller(make_session(tmp_path), config_path=path)
    h = app_factory(c, render=True)
    p = h.pilot
    p.frame(3)
    (x, y), (w, hgt) = dpg.get_item_rect_min(tags.V_SPLITTER), dpg.get_item_rect_size(tags.V_SPLITTER)
    cx, cy, start = int(x + w / 2), int(y + hgt / 2), p.app.window.left_width

    def xdo(*args: object) -> None:
        subprocess.run(["/usr/bin/xdotool", *map(str, args)], check=True, timeout=10)

    xdo("mousemove", cx, cy, "mousedown", "1")
    p.wait_until(lambda: dpg.is_item_active(tags.V_SPLITTER), what="the splitter grabbed")
    xdo("mousemove", cx + 120, cy)
    p.wait_until(lambda: p.app.window.left_width >= start + 100, what="the left pane to widen")
    xdo("mouseup", "1")
    p.wait_until(lambda: not dpg.is_item_active(tags.V_SPLITTER))
    shoot(p, tmp_path / "artifacts", "wider-left-pane")
    assert h.close() == []
    assert load_config(path).gui.left_width == p.app.window.left_width
