"""Streams that explain themselves: tool calls and their outcomes inline in the ticket's own pane, attempt
separators live exactly as the output file has them after a reload, and elapsed time per ticket from the
timestamps of its status records."""

from __future__ import annotations

import re
from pathlib import Path

from gui_support import answer_until, app_factory, done, make_controller, make_session, needs_display, plan  # noqa: F401

from conductor.app.streams import Streams
from conductor.app.ticket_clock import TicketClocks, fmt_elapsed
from conductor.config import Config
from conductor.events import ticket_stream_id
from conductor.gui import tags
from conductor.gui.pilot import Pilot
from conductor.model import TicketStatus
from conductor.stream_notes import ATTEMPT_HEADER, attempt_header, last_attempt, tool_call_line, tool_result_line

# ---------------------------------------------------------------- the lines, as an adversary feeds them


def test_a_call_line_names_the_key_args_first_and_never_inlines_a_file_body() -> None:
    body = "line\n" * 50_000
    line = tool_call_line("write_file", {"content": body, "path": "src/a.py", "mode": 0o644})
    assert line.startswith('→ write_file path="src/a.py"'), line
    assert "250,000 chars" in line and "\n" not in line and len(line) < 260


def test_a_call_line_survives_hostile_args() -> None:
    circular: list[object] = []
    circular.append(circular)
    many = {f"k{i}": "x" * 70 for i in range(40)}
    assert "more)" in tool_call_line("t", many) and len(tool_call_line("t", many)) < 260
    assert "\n" not in tool_call_line("t", {"path": "a\nb\r\x00"})
    assert tool_call_line("t", {"x": circular}).startswith("→ t x=")
    assert tool_call_line("t", {"obj": object()}).startswith("→ t obj=")
    assert tool_call_line("t", {}) == "→ t"


def test_a_result_line_says_rejected_or_failed_with_the_whole_reason() -> None:
    reason = "rejected by the user: write somewhere else " + "because " * 40
    assert tool_result_line("write_file", False, reason) == f"← write_file REJECTED: {reason.strip()}"
    failed = tool_result_line("run", False, "exit 2: no such file\ntraceback...")
    assert failed == "← run FAILED: exit 2: no such file"
    assert tool_result_line("run", False, "") == "← run FAILED: no reason given"
    assert tool_result_line("read", True, "12 lines", replayed=True) == "← read ok (replayed): 12 lines"
    assert len(tool_result_line("read", True, "x" * 5000)) < 230


def test_attempt_headers_are_found_again_in_restored_text() -> None:
    text = "hi" + attempt_header(1, 0.0) + "one" + attempt_header(12, 3600.0) + "two ## attempt 99 · x"
    assert last_attempt(text) == 12
    assert last_attempt("## attempt 3 · 1:2:3") == 0, "not a header the app wrote"


def test_a_pane_shows_each_attempt_header_once_and_not_again_after_a_restore() -> None:
    s = Streams(10_000)
    key = ticket_stream_id(3, "trk", "T1")
    s.begin_attempt(key, 3, "T1", 1, 100.0)
    s.add(key, 3, "T1", "working\n")
    s.begin_attempt(key, 3, "T1", 1, 101.0)
    s.begin_attempt(key, 3, "T1", 0, 101.0)
    assert [m for m in ATTEMPT_HEADER.findall(s.text(key))] == ["1"]
    assert s.text(key) == attempt_header(1, 100.0) + "working\n"
    assert "[T1] ## attempt 1 · " in s.text("tier3:all")

    restored = Streams(10_000)
    restored.restore(key, s.text(key) + attempt_header(2, 200.0) + "again\n", False)
    restored.begin_attempt(key, 3, "T1", 2, 201.0)
    assert ATTEMPT_HEADER.findall(restored.text(key)) == ["1", "2"]
    restored.begin_attempt(key, 3, "T1", 3, 300.0)
    assert ATTEMPT_HEADER.findall(restored.text(key)) == ["1", "2", "3"]


# ---------------------------------------------------------------- the clock


def test_the_clock_counts_working_time_over_attempts_only() -> None:
    c = TicketClocks()
    c.observe("t", "T1", TicketStatus.AWAITING_APPROVAL, 0.0)
    assert c.elapsed("t", "T1", 50.0) == 0.0
    c.observe("t", "T1", TicketStatus.RUNNING, 10.0)
    assert c.elapsed("t", "T1", 25.0) == 15.0 and c.ticking("t")
    c.observe("t", "T1", TicketStatus.REVIEW, 30.0)
    c.observe("t", "T1", TicketStatus.READY, 40.0)  # a failed review: back in the queue, not working
    assert c.elapsed("t", "T1", 1000.0) == 30.0 and not c.ticking("t")
    c.observe("t", "T1", TicketStatus.RUNNING, 100.0)
    c.observe("t", "T1", TicketStatus.DONE, 90.0)  # the clock stepped back: never negative
    assert c.elapsed("t", "T1", 1000.0) == 30.0
    assert c.elapsed("t", "T2", 1000.0) is None and c.elapsed("other", "T1", 1.0) is None
    c.observe("t", "T3", TicketStatus.RUNNING, 0.0)
    c.stop_all("t", 60.0)
    assert c.elapsed("t", "T3", 10_000.0) == 60.0


def test_elapsed_is_shown_short() -> None:
    assert [fmt_elapsed(x) for x in (None, 0.4, 42.9, 185.0, 3725.0)] == ["—", "0s", "42s", "3m 05s", "1h 02m"]


# ---------------------------------------------------------------- through the app, live and after a reload


def _headers(text: str) -> list[str]:
    return ATTEMPT_HEADER.findall(text)


def _clockless(text: str) -> str:
    """The text with the headers' times blanked (the file's header and the live one may be a second apart)."""
    return re.sub(r"(## attempt \d+ · )\d\d:\d\d:\d\d", r"\1--:--:--", text)


def test_a_rejected_tool_call_explains_itself_in_the_ticket_pane_live_and_after_reload(
        tmp_path: Path, app_factory) -> None:  # noqa: F811
    c = make_controller(make_session(tmp_path, cfg=Config()))
    p = app_factory(c).pilot
    plan(p)

    def reject_tool(p: Pilot, req: object) -> None:
        assert p.reject("tool", "write somewhere else") == ""

    answer_until(p, lambda: done(c), {("tool", "T2"): reject_tool})
    p.frame(20)  # panes out of sight catch up a few per frame
    track = c.active_track
    assert track is not None and c.tracks[track].ticket("T2").attempts == 2
    pane = p.value(tags.pane_text(ticket_stream_id(3, track, "T2")))
    first, second = pane.split("## attempt 2 · ")
    assert re.search(r"→ write_file path=\"[^\"]+\"", first), pane
    assert "← write_file REJECTED: rejected by the user: write somewhere else" in first, pane
    assert "← write_file ok" in second, "the second attempt's write went through, said in its own part"
    assert _headers(pane) == ["1", "2"]
    assert "[T2] ← write_file REJECTED" in p.value(tags.pane_text("tier3:all"))
    for tid in ("T1", "T2"):
        assert re.fullmatch(r"\d+s|\d+m \d\ds", p.value(tags.ticket_cell(tid, "elapsed"))), tid
    live = {tid: _headers(p.value(tags.pane_text(ticket_stream_id(3, track, tid)))) for tid in ("T1", "T2", "T3")}
    on_disk = c.session.store.read_output(c.session.store.ticket_output(track, "T2"))
    assert _clockless(on_disk) == _clockless(pane), "the output file reads as the live pane: tool lines included"

    c2 = make_controller(make_session(tmp_path, cfg=Config(), auto_run=False))
    p2 = app_factory(c2).pilot
    p2.click(tags.track_load(track))
    p2.wait_until(lambda: bool(c2.ticket_rows()))
    p2.frame(20)
    for tid, headers in live.items():
        restored = p2.value(tags.pane_text(ticket_stream_id(3, track, tid)))
        assert _headers(restored) == headers, f"{tid}: the same separators after a reload as live"
    assert p2.value(tags.ticket_cell("T2", "elapsed")) != "—", "elapsed time is read back from the journal"
    assert c2.clocks.elapsed(track, "T2", 1e12) == c2.clocks.elapsed(track, "T2", 0.0), "a done ticket stands still"


# ---------------------------------------------------------------- finding text in the panes


def test_find_is_literal_case_insensitive_and_bounded() -> None:
    from conductor.app.stream_search import find_in_streams
    panes = [("tier1", "Alpha (a+b)\nalpha alpha"), ("tier4", "ALPHA\n" * 10)]
    found = find_in_streams(panes, "alpha")
    assert [(m.key, m.line_no, m.column) for m in found][:4] == [("tier1", 0, 0), ("tier1", 1, 0), ("tier1", 1, 6),
                                                                 ("tier4", 0, 0)]
    assert [m.line_no for m in find_in_streams(panes, "(a+b)")] == [0], "a query is text, not a regex"
    assert find_in_streams(panes, "   ") == [] and find_in_streams(panes, "zzz") == []
    assert len(find_in_streams([("x", "aa" * 10_000)], "a", limit=50)) == 50
    long = find_in_streams([("x", "y" * 5000 + "needle" + "z" * 5000)], "needle")[0]
    assert "needle" in long.context() and len(long.context()) < 100


@needs_display
def test_ctrl_f_finds_in_the_panes_in_sight_and_steps_through_matches(
        tmp_path: Path, app_factory) -> None:  # noqa: F811
    c = make_controller(make_session(tmp_path, cfg=Config()))
    p = app_factory(c, render=True).pilot
    plan(p)
    answer_until(p, lambda: done(c))
    p.frame(20)
    assert p.press("Ctrl+F") == "search"
    p.wait_until(lambda: p.focused() == tags.STREAM_FIND, what="the cursor in the streams' find bar")
    assert p.type_here("OAUTH") == tags.STREAM_FIND
    first = p.wait_until(lambda: (v := p.value(tags.STREAM_FIND_RESULT)).startswith("1/") and v)
    assert re.match(r"1/\d+ · Tier 1 · line \d+: .*OAuth", first, re.IGNORECASE), first
    total = int(first.split("/")[1].split(" ")[0])
    assert total == sum(c.streams.text(k).casefold().count("oauth") for k in p.app.window.streams.visible_keys())
    p.click(tags.STREAM_FIND_PREV)
    assert p.value(tags.STREAM_FIND_RESULT).startswith(f"{total}/{total} · ")
    p.click(tags.STREAM_FIND_NEXT)
    assert p.value(tags.STREAM_FIND_RESULT) == first, "Next after the last match wraps to the first"
    p.type_here("no such text anywhere")
    p.wait_until(lambda: p.value(tags.STREAM_FIND_RESULT) == "no match in the panes in sight")
