"""The DAG as a graph in a real window: a box per ticket coloured by status, the critical path named, and a
real click on a ticket (xdotool) brings its stream to the front."""

from __future__ import annotations

import subprocess
from pathlib import Path

import dearpygui.dearpygui as dpg
import pytest
from gui_support import answer_until, app_factory, assert_not_blank, done, make_controller, make_session, \
    needs_display, plan  # noqa: F401

from conductor.events import ticket_stream_id
from conductor.gui import tags
from conductor.gui.graph_view import node_box

pytestmark = [pytest.mark.gui, needs_display]


@pytest.mark.skipif(not Path("/usr/bin/xdotool").exists(), reason="xdotool is not installed (apt install xdotool)")
def test_graph_shows_every_ticket_and_a_click_opens_its_stream(tmp_path: Path, app_factory) -> None:
    c = make_controller(make_session(tmp_path))
    p = app_factory(c, render=True).pilot
    plan(p)
    answer_until(p, lambda: done(c))
    p.app.summary.close()
    assert p.press("Ctrl+2") == "tab_graph"
    p.frame(3)
    ids = [r.id for r in c.ticket_rows()]
    assert all(dpg.does_item_exist(tags.graph_node(t)) for t in ids)
    assert "critical path T1 → T2 → T4 → T5 → T6" in p.value(tags.GRAPH_NOTE)
    assert_not_blank(p.screenshot(tmp_path / "artifacts" / "graph.png"))

    col, row = p.app.window.graph.graph.positions["T3"]
    x0, y0, x1, y1 = node_box(col, row)
    ox, oy = dpg.get_item_rect_min(tags.GRAPH_DRAWING)
    subprocess.run(["/usr/bin/xdotool", "mousemove", str(int(ox + (x0 + x1) / 2)), str(int(oy + (y0 + y1) / 2)),
                    "click", "1"], check=True, timeout=10)
    key = ticket_stream_id(3, c.active_track, "T3")
    p.wait_until(lambda: p.app.window.streams.tier3.visible_key() == key
                 and dpg.get_value(tags.MAIN_TABS) in (tags.STREAMS_TAB, dpg.get_alias_id(tags.STREAMS_TAB)),
                 what="T3's stream in front")
