"""Issue 8: an attempt without git starts as soon as its `running` line is written, while the committer's fsync
is still under way (the fsync was a third of the time from one attempt's end to the next one's start at
1,000 tickets / 8 workers). An attempt with git still waits for the fsync (it acts on git before it journals
anything of its own), and a fsync that fails after an early start stops the run and cancels the attempt, with
nothing of the batch published."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conductor import store as store_mod
from conductor.approvals import ApprovalBroker
from conductor.config import Config
from conductor.engine import Engine, EngineDeps
from conductor.events import ErrorRaised, EventQueue, RecordApplied
from conductor.model import Ticket, TicketStatus, Track, TrackStatus
from conductor.messages import ToolCall
from conductor.providers.base import ProviderRequest
from conductor.providers.scripted import Reply, ScriptedProvider, demo_reply
from conductor.records import TicketUpdated
from conductor.session import Session
from conductor.store import Journal, TrackStore
from conductor.tiers.call import CallDeps
from conductor.tools import workspace_toolbox
from conductor.tools.base import Toolbox
from conductor.usage import PriceTable, UsageLedger
from tests.git_support import make_repo

PASS = Reply(text='{"verdict":"pass","hint":""}')


class CommitterGate:
    """A journal system call (os.fsync, store.write_all) whose calls from the engine's committer thread wait for
    `gate`, or fail with `fail`; every other thread's go straight through."""

    def __init__(self, real: Callable[..., None], fail: OSError | None = None) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.fail = fail
        self._real = real

    def __call__(self, *args: object) -> None:
        if threading.current_thread().name.startswith("conductor-journal-") and not self.gate.is_set():
            self.entered.set()
            if self.fail is not None:
                raise self.fail
            self.gate.wait(30)
        self._real(*args)


def committer_fsync_gate(fail: bool = False) -> CommitterGate:
    return CommitterGate(os.fsync, OSError(errno.EIO, "Input/output error (injected)") if fail else None)


def committer_write_gate(fail: bool = False) -> CommitterGate:
    return CommitterGate(store_mod.write_all,
                         OSError(errno.ENOSPC, "No space left on device (injected)") if fail else None)


@pytest.fixture
def committer_fsync(monkeypatch: pytest.MonkeyPatch) -> Iterator[CommitterGate]:
    gated = committer_fsync_gate()
    monkeypatch.setattr(store_mod.os, "fsync", gated)
    yield gated
    gated.gate.set()  # never leave a committer waiting


def tier3_started(latency_s: float | None = None) -> tuple[threading.Event, ScriptedProvider]:
    called = threading.Event()

    def worker(req: ProviderRequest, n: int) -> Reply:
        called.set()
        return Reply(text="done", latency_s=latency_s)
    return called, ScriptedProvider({3: worker, 4: [PASS]})


def engine_on(tmp: Path, provider: ScriptedProvider, *, tools: bool = False) -> tuple[Engine, TrackStore, EventQueue,
                                                                                     Journal]:
    cfg = Config()
    events = EventQueue()
    call = CallDeps(provider=provider, events=events, ledger=UsageLedger(PriceTable(cfg.prices)), cfg=cfg)
    track = Track(id="early", title="early start", goal="start before the fsync", status=TrackStatus.READY,
                  tickets=[Ticket(id="T1", title="the one ticket")])
    store = TrackStore(tmp / "tracks")
    journal = store.create_track(track)
    broker = ApprovalBroker(events)
    broker.auto_approve({"tool"})
    (tmp / "ws").mkdir(exist_ok=True)
    deps = EngineDeps(cfg=cfg, call=call.with_(journal=journal), broker=broker, workspace=tmp / "ws",
                      toolbox=workspace_toolbox(tmp / "ws") if tools else Toolbox([]), store=store)
    return Engine(track, deps, journal=journal), store, events, journal


def running_lines(journal_path: Path) -> list[TicketUpdated]:
    return [r for r in Journal(journal_path).records()
            if isinstance(r, TicketUpdated) and r.fields.status == TicketStatus.RUNNING]


def test_without_git_the_attempt_starts_while_its_running_line_is_being_fsynced(
        tmp_path: Path, committer_fsync: CommitterGate) -> None:
    called, provider = tier3_started()
    engine, store, events, journal = engine_on(tmp_path, provider)
    engine.start()
    try:
        assert committer_fsync.entered.wait(10), "the committer never reached its fsync"
        assert called.wait(10), "the attempt waited for the fsync of its running line"
        assert committer_fsync.entered.is_set() and not committer_fsync.gate.is_set()
        assert running_lines(journal.path), "the attempt started before its running line was even written"
        assert not [e for e in events.drain(10_000) if isinstance(e, RecordApplied)], \
            "a record was published before the fsync acknowledged it"
    finally:
        committer_fsync.gate.set()
    track = engine.join(30)
    store.close()
    assert [t.status for t in track.tickets] == [TicketStatus.DONE]


def test_a_failed_fsync_after_an_early_start_stops_the_run_and_cancels_the_attempt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    failing = committer_fsync_gate(fail=True)
    monkeypatch.setattr(store_mod.os, "fsync", failing)
    called, provider = tier3_started(latency_s=60.0)  # still waiting for its model when the fsync fails
    engine, store, events, journal = engine_on(tmp_path, provider)
    engine.start()
    with pytest.raises(RuntimeError, match="crashed"):
        engine.join(20)  # within 20 s: the 60 s model call was cancelled, not waited for
    failing.gate.set()
    store.close()
    posted = events.drain(10_000)
    assert not [e for e in posted if isinstance(e, RecordApplied)], "a refused batch was published"
    fatal = [e for e in posted if isinstance(e, ErrorRaised) and e.fatal]
    assert fatal and "refused a write" in fatal[0].message
    assert not running_lines(journal.path), "the unacknowledged running line outlived its failed fsync"
    assert not provider.sent, "the attempt was not cancelled: its model call ran to the end"


def test_with_git_the_attempt_still_waits_for_the_fsync(tmp_path: Path, committer_fsync: CommitterGate) -> None:
    repo = make_repo(tmp_path)
    called = threading.Event()

    def respond(req: ProviderRequest, n: int) -> Reply:
        if req.tier == 3:
            called.set()
        return demo_reply(req, n)
    cfg = Config().updated({"git": {"worktrees_root": str(tmp_path / "worktrees")}})
    session = Session(cfg, workspace=repo, tracks_dir=tmp_path / "tracks", provider=ScriptedProvider(fallback=respond),
                      linger=False)
    session.broker.auto_approve({"plan", "tickets", "spawn", "tool"})
    try:
        (track_id,) = session.plan_epic("Add OAuth login to the app").wait(timeout=20)
        assert committer_fsync.entered.wait(20), "the committer never reached its fsync"
        assert not called.wait(1.0), "an attempt in a git worktree started before its running line was durable"
        committer_fsync.gate.set()
        assert called.wait(20)
        track = session.engines[track_id].join(timeout=60)
        assert all(t.status == TicketStatus.DONE for t in track.tickets)
    finally:
        committer_fsync.gate.set()
        session.shutdown()


def test_an_early_attempt_never_acts_before_its_running_line_is_durable_and_a_late_failed_fsync_stops_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing disk is often slow to say so: here the attempt has had its model answer with a tool call and is
    about to act when its `running` line's fsync fails. The tool call must not have run (its intent waits behind
    the fence until the line is durable), nothing of the attempt is journalled, and the run stops on the refused
    write instead of settling as done. (Before the fence opened only after the fsync, the attempt wrote its file
    and finished on a line that was then refused.)"""
    at_fence = threading.Event()
    """The attempt is ready to act: waiting at its fence, or (had the fence let it by) past its first append."""
    real_fsync, real_wait, real_append = os.fsync, store_mod.JournalFence.wait, store_mod.Journal.append_many

    def slow_eio(fd: int) -> None:
        if threading.current_thread().name.startswith("conductor-journal-"):
            at_fence.wait(20)  # fails only once the attempt is ready to act
            raise OSError(errno.EIO, "Input/output error (injected, late)")
        real_fsync(fd)

    def wait(self: store_mod.JournalFence) -> None:
        if not self._open.is_set():
            at_fence.set()
        real_wait(self)

    def append_many(self: Journal, recs: list, **kw: object) -> list:  # type: ignore[type-arg]
        out = real_append(self, recs, **kw)  # type: ignore[arg-type]
        if threading.current_thread().name.startswith("conductor-worker"):
            at_fence.set()
        return out
    monkeypatch.setattr(store_mod.os, "fsync", slow_eio)
    monkeypatch.setattr(store_mod.JournalFence, "wait", wait)
    monkeypatch.setattr(store_mod.Journal, "append_many", append_many)

    def worker(req: ProviderRequest, n: int) -> Reply:
        if not any(m.role == "model" for m in req.messages):
            return Reply(text="writing", tool_calls=(ToolCall("w1", "write_file", {"path": "out.txt", "content": "x"}),))
        return Reply(text="done")
    engine, store, events, journal = engine_on(tmp_path, ScriptedProvider({3: worker, 4: [PASS]}), tools=True)
    engine.start()
    with pytest.raises(RuntimeError, match="crashed"):
        engine.join(30)
    store.close()
    assert at_fence.is_set(), "the scenario did not happen: the attempt never reached its first journal append"
    assert not (tmp_path / "ws" / "out.txt").exists(), "the tool call ran before its attempt's start was durable"
    posted = events.drain(10_000)
    fatal = [e for e in posted if isinstance(e, ErrorRaised) and e.fatal]
    assert fatal and "refused a write" in fatal[0].message
    records = Journal(journal.path).records()
    assert not [r for r in records if type(r).__name__ in ("ModelTurn", "UsageLogged", "ToolCallStarted")]
    assert not [r for r in records if isinstance(r, TicketUpdated) and r.fields.status == TicketStatus.DONE]
    assert not [e for e in posted if isinstance(e, RecordApplied)], "a refused batch was published"


def own_records(journal_path: Path) -> list[object]:
    """What an attempt journals itself: model turns and usage (the engine's lines are TicketUpdated/TrackUpdated)."""
    return [r for r in Journal(journal_path).records() if type(r).__name__ in ("ModelTurn", "UsageLogged")]


def test_the_attempt_starts_before_its_running_line_is_written_and_journals_nothing_before_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gated = committer_write_gate()
    monkeypatch.setattr(store_mod, "write_all", gated)
    called, provider = tier3_started(latency_s=0.0)  # answers at once: its records are ready before the line
    engine, store, events, journal = engine_on(tmp_path, provider)
    engine.start()
    try:
        assert called.wait(10), "the attempt waited for its running line to be written"
        assert gated.entered.wait(10) and not gated.gate.is_set()
        assert not running_lines(journal.path) and not own_records(journal.path), \
            "the attempt's own records reached the journal before the line that started it"
    finally:
        gated.gate.set()
    track = engine.join(30)
    store.close()
    assert [t.status for t in track.tickets] == [TicketStatus.DONE]
    entries = Journal(journal.path).entries()
    running = min(e.seq for e in entries if isinstance(e.record, TicketUpdated)
                  and e.record.fields.status == TicketStatus.RUNNING)
    own = [e.seq for e in entries if type(e.record).__name__ in ("ModelTurn", "UsageLogged")]
    assert own and min(own) > running


def test_a_refused_write_after_an_early_start_cancels_the_attempt_and_none_of_its_records_follow(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refused = committer_write_gate(fail=True)
    monkeypatch.setattr(store_mod, "write_all", refused)
    called, provider = tier3_started(latency_s=0.0)
    engine, store, events, journal = engine_on(tmp_path, provider)
    engine.start()
    with pytest.raises(RuntimeError, match="crashed"):
        engine.join(20)
    refused.gate.set()
    store.close()
    assert refused.entered.is_set()
    fatal = [e for e in events.drain(10_000) if isinstance(e, ErrorRaised) and e.fatal]
    assert fatal and "refused a write" in fatal[0].message
    assert not running_lines(journal.path)
    assert not own_records(journal.path), "records of an attempt whose start was never journalled"


@pytest.mark.parametrize("disk_latency_s", [0.0, 0.02])
def test_a_failed_fsync_with_a_model_that_answers_at_once_leaves_neither_the_line_nor_the_attempts_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, disk_latency_s: float) -> None:
    """From the review of the fence: with the fence opened once the line was written (before its fsync), a model
    that answered at once let the attempt's records land during the fsync, so the refused line could no longer be
    cut off, or (racing the cut) they landed with no line before them. Eight runs each, since it was a race."""
    real = os.fsync

    def eio(fd: int) -> None:
        if threading.current_thread().name.startswith("conductor-journal-"):
            threading.Event().wait(disk_latency_s)  # a slow disk failing: device time, not a wait for a thread
            raise OSError(errno.EIO, "Input/output error (injected)")
        real(fd)
    monkeypatch.setattr(store_mod.os, "fsync", eio)
    outcomes = []
    for i in range(8):
        _, provider = tier3_started(latency_s=0.0)
        engine, store, _, journal = engine_on(tmp_path / str(i), provider)
        engine.start()
        with pytest.raises(RuntimeError, match="crashed"):
            engine.join(20)
        store.close()
        outcomes.append((bool(running_lines(journal.path)), bool(own_records(journal.path))))
    assert outcomes == [(False, False)] * 8, f"(running line in the file, the attempt's records in it): {outcomes}"
