"""The view-model (conductor/app/) without any window: these tests are at this layer because the state the
GUI renders — panes, tickets, usage, approvals, log, errors — is plain Python and can be checked exactly,
fast, and without Dear PyGui."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gui_support import make_controller, make_session

from conductor.approval_payloads import TicketsPayload
from conductor.events import ticket_stream_id
from conductor.app import (AppController, StreamBuffer, Streams, UnavailableProvider, fmt_cost, fmt_tokens,
                           )
from conductor.config import Config, load_config, save_config
from conductor.events import Provenance, StreamDelta, UsageRecorded
from conductor.model import TIER_NAMES, Usage
from conductor.providers.scripted import Reply, ScriptedProvider


def pump(c: AppController, until: Callable[[], Any], timeout: float = 15.0,
         decide: Callable[[AppController], None] | None = None) -> Any:
    """Apply events (blocking on the queue, never sleeping) until `until()` holds."""
    deadline = time.monotonic() + timeout
    while True:
        value = until()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out; status={c.status_text()} banner={c.banner} " \
                                            f"tickets={[(r.id, r.status) for r in c.ticket_rows()]}"
        c.wait(0.02)
        c.drain()
        if decide is not None:
            decide(c)


def approve_all(c: AppController) -> None:
    for req in list(c.pending.values()):
        assert c.approve(req.id) is None


def all_done(c: AppController) -> bool:
    rows = c.ticket_rows()
    return bool(rows) and all(r.status == "done" for r in rows)


# ---------------------------------------------------------------- streams

def test_stream_buffer_keeps_a_bounded_tail() -> None:
    buf = StreamBuffer("tier3:T1", limit=1000)
    for i in range(5000):
        buf.append(f"{i:05d}\n")
    assert len(buf.text) == 1000
    assert buf.text.endswith("04999\n")
    assert buf.dropped, "the pane must say it shows a tail"
    assert sum(len(p) for p in buf._parts) <= 1250, "memory stays bounded"


def test_aggregate_panes_prefix_lines_and_header_tracks() -> None:
    s = Streams(10_000)
    s.add("tier3:T1@a", 3, "T1", "hello ")
    s.add("tier3:T2@a", 3, "T2", "other\nsecond")
    s.add("tier3:T1@a", 3, "T1", "world\n")
    s.flush("tier3:T2@a", 3, "T2")
    assert s.text("tier3:all") == "[T2] other\n[T1] hello world\n[T2] second\n"
    s.add("tier2:a", 2, "Tier 2 · A", "{json}")
    assert s.text("tier2").startswith("── Tier 2 · A ──\n{json}")


def test_replayed_deltas_are_not_shown_twice(tmp_path: Path) -> None:
    c = make_controller(make_session(tmp_path))
    prov = Provenance(track_id="t", ticket_id="T1", tier=3)
    c.apply(StreamDelta(prov=prov, stream_id=prov.stream_id, text="live text"))
    c.apply(StreamDelta(prov=prov, stream_id=prov.stream_id, text="live text", replayed=True))
    assert c.streams.text(ticket_stream_id(3, "t", "T1")) == "live text"
    c.session.shutdown(5)


# ---------------------------------------------------------------- the whole flow, headless

def test_demo_flow_fills_every_pane_and_the_dashboard_matches_the_ledger(tmp_path: Path,
                                                                        thread_baseline: set[int]) -> None:
    c = make_controller(make_session(tmp_path))
    assert c.plan("Add OAuth login") is None
    pump(c, lambda: all_done(c), decide=approve_all)
    assert "Add OAuth login" in c.streams.text("tier1")
    assert '"tickets"' in c.streams.text("tier2")
    assert "[T1] Work on T1 is complete" in c.streams.text("tier3:all")
    assert "Work on T6 is complete" in c.streams.text(ticket_stream_id(3, c.active_track, "T6"))
    assert '[T3] {"verdict": "pass"' in c.streams.text("tier4")

    view = c.usage_view()
    ledger = c.session.ledger
    assert [r.label for r in view.by_tier] == [TIER_NAMES[t] for t in sorted(ledger.by_tier())]
    for row, (tier, totals) in zip(view.by_tier, sorted(ledger.by_tier().items())):
        assert (row.calls, row.prompt, row.output, row.thinking, row.cost) == (
            totals.calls, fmt_tokens(totals.prompt_tokens), fmt_tokens(totals.output_tokens),
            fmt_tokens(totals.thinking_tokens), fmt_cost(totals.cost_usd))
    assert view.total is not None and view.total.prompt == fmt_tokens(ledger.total().prompt_tokens)
    assert view.series_tokens[-1] == ledger.total().total_tokens
    assert c.counts()["running"] == 0 and not c.pending
    c.session.shutdown(10)
    alive = {t.ident for t in threading.enumerate()}
    assert alive <= thread_baseline, "every thread the session started is joined"


def test_unknown_cost_is_shown_as_unknown_never_free(tmp_path: Path) -> None:
    cfg = Config()
    cfg = cfg.updated({"models": {"tier3": "mystery-model-without-a-price"}})
    cfg = cfg.updated({"models": {"ladder": ["mystery-model-without-a-price"]}})
    c = make_controller(make_session(tmp_path, cfg=cfg))
    c.plan("Tiny epic")
    pump(c, lambda: all_done(c), decide=approve_all)
    view = c.usage_view()
    tier3 = next(r for r in view.by_tier if r.label == TIER_NAMES[3])
    assert tier3.cost == "unknown"
    assert view.total is not None and view.total.cost == "unknown"
    assert all("$0.0000" != r.cost for r in view.by_model if r.label.startswith("mystery"))
    c.session.shutdown(10)


def test_several_approvals_at_once_are_all_kept_and_bad_edits_are_refused(tmp_path: Path) -> None:
    c = make_controller(make_session(tmp_path, auto_run=False))
    c.plan("Epic one")
    c.plan("Epic two")
    pump(c, lambda: len(c.pending_list("plan")) == 2)
    for req in c.pending_list("plan"):
        assert c.approve(req.id) is None
    pump(c, lambda: c.pending_list("tickets"))
    req = c.pending_list("tickets")[0]
    assert isinstance(req.payload, TicketsPayload)
    tickets = list(req.payload.tickets)
    tickets[0] = tickets[0].model_copy(update={"depends_on": ["T6"]})  # T1 -> T6 -> ... -> T1: a cycle
    err = c.approve(req.id, req.payload.model_copy(update={"tickets": tuple(tickets)}))
    assert err is not None and "cycle" in err and "T1" in err
    assert req.id in c.pending, "a refused edit leaves the request pending"
    assert c.reject(req.id, "not now") is None
    assert req.id not in c.pending
    c.session.shutdown(10)


def test_log_filters_by_tier_and_ticket(tmp_path: Path) -> None:
    c = make_controller(make_session(tmp_path))
    c.plan("Add a feature")
    pump(c, lambda: all_done(c), decide=approve_all)
    t2 = c.log_lines(ticket="T2")
    assert t2 and all(e.ticket_id == "T2" for e in t2)
    tier4 = c.log_lines(tier=4)
    assert tier4 and all(e.tier == 4 for e in tier4)
    assert any("write_file" in e.text for e in c.log_lines(tier=3, ticket="T1"))
    c.session.shutdown(10)


# ---------------------------------------------------------------- errors shown, never raised

def test_empty_epic_and_missing_key_are_explained(tmp_path: Path) -> None:
    c = make_controller(make_session(tmp_path, provider=UnavailableProvider("no API key: set GEMINI_API_KEY")))
    assert "empty" in (c.plan("  ") or "")
    err = c.plan("Real work")
    assert err is not None and "GEMINI_API_KEY" in err
    assert c.banner == err
    c.session.shutdown(5)


def test_malformed_plan_is_reported(tmp_path: Path) -> None:
    c = make_controller(make_session(tmp_path, ScriptedProvider({1: [Reply(text="this is not JSON")]})))
    c.plan("Anything")
    pump(c, lambda: c.banner)
    assert "no valid answer after 3 tries" in c.banner
    c.session.shutdown(5)


def test_usage_event_is_logged_with_unknown_cost(tmp_path: Path) -> None:
    c = make_controller(make_session(tmp_path))
    c.apply(UsageRecorded(prov=Provenance(tier=3, ticket_id="T1", track_id="x"), record_id="r1",
                          usage=Usage(model="m", prompt_tokens=10)))
    assert "unknown" in c.log[-1].text
    c.session.shutdown(5)


# ---------------------------------------------------------------- settings

def test_settings_refuse_invalid_values_and_save_valid_ones(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    save_config(Config(), path)
    c = make_controller(make_session(tmp_path, cfg=load_config(path)), config_path=path)
    data = c.cfg.model_dump(mode="python")
    data["engine"]["max_workers"] = 0
    err = c.save_settings(data)
    assert err is not None and "engine.max_workers" in err
    assert c.cfg.engine.max_workers == 4, "nothing changes when refused"
    data["engine"]["max_workers"] = 2
    data["budget"]["max_tokens"] = 5000
    assert c.save_settings(data) is None
    assert c.cfg.engine.max_workers == 2 and load_config(path).budget.max_tokens == 5000
    c.session.shutdown(5)


def test_layout_is_saved_only_when_it_changed(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    c = make_controller(make_session(tmp_path), config_path=path)
    c.shutdown(5, layout={"width": c.cfg.gui.width, "left_width": c.cfg.gui.left_width})
    assert not path.exists(), "an unchanged layout does not write the file"
    c2 = make_controller(make_session(tmp_path / "again"), config_path=path)
    c2.shutdown(5, layout={"width": 1111, "left_width": 333})
    saved = load_config(path)
    assert (saved.gui.width, saved.gui.left_width) == (1111, 333)


def test_switch_is_refused_while_approvals_wait(tmp_path: Path) -> None:
    c = make_controller(make_session(tmp_path))
    c.plan("Epic")
    pump(c, lambda: c.pending)
    err = c.switch(provider="scripted")
    assert err is not None and "first" in err
    c.session.shutdown(5)


def _demo_run_to_done(c: AppController) -> dict[str, Any]:
    c.plan("Add OAuth login")
    pump(c, lambda: all_done(c), decide=approve_all)
    return {"total": c.session.ledger.total().total_tokens}


def test_restart_restores_tracks_panes_and_usage(tmp_path: Path) -> None:
    c = make_controller(make_session(tmp_path))
    before = _demo_run_to_done(c)
    track_id = c.active_track
    tier3 = c.streams.text(ticket_stream_id(3, track_id, "T4"))
    c.shutdown(10)

    c2 = make_controller(make_session(tmp_path))
    assert track_id in c2.tracks and c2.tracks[track_id].status.value == "done"
    assert c2.session.ledger.total().total_tokens == before["total"]
    assert c2.load_track(track_id) is None
    pump(c2, lambda: c2.active_track == track_id)
    assert "Add OAuth login" in c2.streams.text("tier1")
    assert "Work on T4 is complete" in c2.streams.text(ticket_stream_id(3, track_id, "T4"))
    assert "Work on T4 is complete" in tier3
    assert "[T4] Work on T4 is complete" in c2.streams.text("tier3:all")
    c2.shutdown(5)


@pytest.mark.parametrize("limit", [1000])
def test_restored_long_output_says_it_is_a_tail(tmp_path: Path, limit: int) -> None:
    cfg = Config()
    cfg = cfg.updated({"gui": {"stream_tail_chars": limit}})
    c = make_controller(make_session(tmp_path, ScriptedProvider({3: [Reply(text="x" * 5000)]}), cfg))
    c.plan("Long output")
    pump(c, lambda: all_done(c), decide=approve_all)
    tid = c.active_track
    c.shutdown(10)
    c2 = make_controller(make_session(tmp_path, cfg=cfg))
    c2.load_track(tid)
    pump(c2, lambda: c2.active_track == tid)
    buf = c2.streams.buffers[ticket_stream_id(3, tid, "T1")]
    assert buf.dropped and len(buf.text) == limit
    c2.shutdown(5)


def test_auto_approval_ticked_in_settings_applies_to_the_next_request(tmp_path: Path) -> None:
    c = make_controller(make_session(tmp_path))
    data = c.cfg.model_dump(mode="python")
    data["approvals"]["auto"] = ["tool"]
    assert c.save_settings(data) is None
    c.plan("Write the notes")
    seen: set[str] = set()

    def decide(c: AppController) -> None:
        for req in list(c.pending.values()):
            seen.add(req.kind.value)
            assert c.approve(req.id) is None
    pump(c, lambda: all_done(c), decide=decide)
    assert seen == {"plan", "tickets"}, "tool calls were approved by the live policy"
    assert any("by policy config" in e.text for e in c.log)
    c.session.shutdown(10)
