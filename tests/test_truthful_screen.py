"""The screen never misreports a run (issue 8): each misreport a new user met, driven through the GUI pilot
where the user saw it. Each of these failed on the code before the record vocabulary.

- Skip broke the DAG: skipping a ticket whose own dependency still ran let the ticket after it run first.
- A rejected write ended "done": the stream never showed it, the worker was not made to deal with it, QA
  passed the ticket.
- Labels went stale: after pause or a budget stop the ticket header said "running"; after planning ended the
  status bar still said Tier 1 was reading the epic.
- Restart was not seamless: the interrupted track came back "stalled", not loaded, "0 approvals pending".
- The demo forgot everything: a new scratch folder on every start.
"""

from __future__ import annotations

import threading
from pathlib import Path

from gui_support import answer_until, app_factory, done, make_controller, make_session, plan  # noqa: F401

from conductor.app import demo_folders
from conductor.config import Config
from conductor.app import AppController
from conductor.events import ticket_stream_id
from conductor.gui import tags
from conductor.providers.base import ProviderRequest
from conductor.providers.scripted import Reply, ScriptedProvider, demo_reply
from conductor.records import TicketUpdated
from conductor.session import Session


class Gate:
    """Holds one ticket's Tier 3 call until released (a worker that is still running)."""

    def __init__(self, ticket: str) -> None:
        self.ticket = ticket
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, req: ProviderRequest, n: int) -> Reply:
        if req.tier == 3 and req.prov.ticket_id == self.ticket:
            self.entered.set()
            assert self.release.wait(30), "the test never released the held worker"
        return demo_reply(req, n)


def status_order(c: AppController, status: str) -> dict[str, int]:
    """Journal seq at which each ticket reached `status` (the journal is what the engine did)."""
    journal = c.session.store.journal(c.active_track or "")
    return {e.record.ticket_id: e.seq for e in journal.entries()
            if isinstance(e.record, TicketUpdated) and e.record.fields.status == status}


def test_skipping_a_ticket_never_lets_its_dependents_overtake_its_running_dependency(tmp_path: Path,
                                                                                     app_factory) -> None:
    gate = Gate("T4")
    c = make_controller(make_session(tmp_path, ScriptedProvider(fallback=gate)))
    p = app_factory(c).pilot
    plan(p)
    answer_until(p, gate.entered.is_set)                    # "Implement the core" (T4) is running
    p.wait_until(lambda: p.value(tags.ticket_cell("T4", "status")) == "running")
    p.click(tags.ticket_action("T5", "skip"))               # skip "Write the tests", which waits for T4
    p.wait_until(lambda: p.value(tags.ticket_cell("T5", "status")) == "skipped")
    p.frame(10)
    assert p.value(tags.ticket_cell("T6", "status")) == "todo", "T6 must wait for T4 through the skipped T5"
    gate.release.set()
    answer_until(p, lambda: done(c))
    started, finished = status_order(c, "running"), status_order(c, "done")
    assert finished["T4"] < started["T6"], "'Document the change' ran before 'Implement the core' finished"


def test_a_rejected_write_is_shown_in_its_stream_and_the_ticket_is_not_done_on_it(tmp_path: Path,
                                                                                     app_factory) -> None:
    c = make_controller(make_session(tmp_path, ScriptedProvider()))
    p = app_factory(c).pilot
    plan(p)
    rejected: list[str] = []

    def reject_once(p: object, req: object) -> None:
        assert c.reject(req.id, "not in notes/, please") is None  # type: ignore[attr-defined]
        rejected.append(req.id)  # type: ignore[attr-defined]

    answer_until(p, lambda: bool(rejected), {("tool", "T1"): reject_once})
    key = ticket_stream_id(3, c.active_track, "T1")
    p.wait_until(lambda: "rejected by the user: not in notes/, please" in c.streams.text(key),
                 what="the rejection in T1's own stream")
    p.wait_until(lambda: "is NOT in the workspace" in c.streams.text(key), what="the worker reacting to it")
    answer_until(p, lambda: done(c))
    t1 = c.tracks[c.active_track].ticket("T1")
    assert t1.attempts == 2, "QA must fail the attempt whose write was rejected; the next one did the work"
    assert (c.session.workspace / "notes" / "survey.md").exists()
    assert "review failed" in p.value(tags.LOG_TEXT)


def test_labels_follow_the_records_after_pause_budget_stop_and_planning(tmp_path: Path, app_factory) -> None:
    gate = Gate("T1")
    c = make_controller(make_session(tmp_path, ScriptedProvider(fallback=gate)))
    p = app_factory(c).pilot
    plan(p)
    answer_until(p, gate.entered.is_set)
    p.wait_until(lambda: "planning finished: 1 track(s) ready" in p.value(tags.LOG_TEXT))
    assert "Tier 1 is reading" not in p.value(tags.STATUS_MESSAGE)
    p.click(tags.PAUSE)
    p.wait_until(lambda: "paused" in p.value(tags.ACTIVE_TRACK_LABEL), what="the header to say paused")
    gate.release.set()
    answer_until(p, lambda: p.value(tags.ticket_cell("T1", "status")) == "done")  # a running one finishes
    p.frame(5)
    assert "paused" in p.value(tags.ACTIVE_TRACK_LABEL) and "running" not in p.value(tags.ACTIVE_TRACK_LABEL)
    assert p.value(tags.ticket_cell("T2", "status")) in ("ready", "todo"), "nothing starts while paused"


def test_a_budget_stop_says_paused_everywhere(tmp_path: Path, app_factory) -> None:
    cfg = Config()
    cfg = cfg.updated({"budget": {"max_tokens": 600}})
    c = make_controller(make_session(tmp_path, cfg=cfg))
    p = app_factory(c).pilot
    plan(p)
    answer_until(p, lambda: p.shown(tags.BANNER) and "budget" in p.value(tags.BANNER_TEXT))
    p.wait_until(lambda: "paused" in p.value(tags.ACTIVE_TRACK_LABEL), what="the header to say paused")
    p.wait_until(lambda: c.counts()["running"] == 0)
    rows = c.ticket_rows()
    assert not [r for r in rows if r.status == "running"], rows
    assert "paused" in p.value(tags.STATUS_MESSAGE) or "finished" in p.value(tags.STATUS_MESSAGE)


def test_reopening_loads_the_interrupted_track_and_says_what_resume_asks_again(tmp_path: Path,
                                                                               app_factory) -> None:
    cfg = Config()
    cfg = cfg.updated({"engine": {"step_mode": True}})
    c = make_controller(make_session(tmp_path, cfg=cfg))
    h = app_factory(c)
    p = h.pilot
    plan(p)
    answer_until(p, lambda: bool(c.ticket_rows()) and c.ticket_rows()[0].status == "done"
                 and len(p.pending("spawn")) == 2, hold={("spawn", "T2"), ("spawn", "T3")})
    track_id = c.active_track
    assert h.close() == []

    c2 = make_controller(make_session(tmp_path, cfg=cfg))
    p2 = app_factory(c2).pilot
    p2.frame(2)
    assert c2.active_track == track_id, "the interrupted track is loaded without looking for it"
    assert {r.id: r.status for r in c2.ticket_rows()}["T2"] == "interrupted"
    message = p2.value(tags.STATUS_MESSAGE)
    assert "2 approvals will be asked again — Resume" in message, message
    p2.click(tags.track_resume(track_id))                     # one action brings them back
    p2.wait_until(lambda: len(p2.pending("spawn")) == 2, what="both spawn approvals asked again")
    answer_until(p2, lambda: done(c2))


def test_the_demo_keeps_one_folder_and_its_tracks_across_starts(tmp_path: Path, app_factory) -> None:
    home = tmp_path / "demo-home"
    ws, tracks = demo_folders(home)
    assert demo_folders(home) == (ws, tracks), "the second start reuses the same folders"
    assert (ws / ".git").is_dir(), "the demo's own project is a git repository (a branch per track)"
    own = tmp_path / "mine"
    own.mkdir()
    assert demo_folders(home, own)[0] == own.resolve(), "--demo honours --workspace"

    c = make_controller(Session(Config(), workspace=ws, tracks_dir=tracks, provider=ScriptedProvider()), demo=True)
    h = app_factory(c)
    plan(h.pilot)
    answer_until(h.pilot, lambda: done(c))
    track_id = c.active_track
    assert h.close() == []

    ws2, tracks2 = demo_folders(home)
    c2 = make_controller(Session(Config(), workspace=ws2, tracks_dir=tracks2, provider=ScriptedProvider()),
                         demo=True)
    assert track_id in c2.tracks and c2.tracks[track_id].status.value == "done"
    c2.session.shutdown(5)

    fresh_ws, fresh_tracks = demo_folders(home, fresh=True)
    assert not fresh_tracks.exists() and fresh_ws.is_dir()
    assert any(p.name.startswith("demo-home.old-") for p in tmp_path.iterdir()), "the old demo is set aside"


def test_answering_approvals_never_fsyncs_on_the_gui_thread(tmp_path: Path, app_factory,
                                                             monkeypatch: object) -> None:
    """Issue 8: one approval path for every kind, and the journal's fsync happens off the GUI thread."""
    import os

    gui = threading.current_thread()
    on_gui: list[str] = []
    real = os.fsync

    def watched(fd: int) -> None:
        if threading.current_thread() is gui:
            on_gui.append("fsync")
        real(fd)

    cfg = Config()
    cfg = cfg.updated({"engine": {"step_mode": True}})  # plan, tickets, spawn and tool approvals all come through the dialogs
    c = make_controller(make_session(tmp_path, cfg=cfg))
    p = app_factory(c).pilot
    plan(p)
    monkeypatch.setattr(os, "fsync", watched)  # type: ignore[attr-defined]
    answered: set[str] = set()

    def count(p: object, req: object) -> None:
        answered.add(req.kind.value)  # type: ignore[attr-defined]
        assert c.approve(req.id) is None  # type: ignore[attr-defined]

    answer_until(p, lambda: done(c), {(k, t): count for k in ("plan", "tickets") for t in (None,)}
                 | {("spawn", "T1"): count, ("tool", "T1"): count})
    assert answered == {"plan", "tickets", "spawn", "tool"}
    assert on_gui == [], f"{len(on_gui)} fsync(s) on the GUI thread"
