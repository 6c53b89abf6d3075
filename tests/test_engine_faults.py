"""Faults inside a run: transient errors are retried, failing reviews escalate and land on the failed shelf
with dependents blocked, safety blocks wait for a human, budgets pause, cancels stop promptly."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from helpers import fast_config, wait_for

from conductor.approval_payloads import SpawnPayload
from conductor.config import Config
from conductor.engine import Resume, Retry
from conductor.errors import BadRequest, ProviderUnavailable, RateLimited
from conductor.events import ErrorRaised, StreamReset
from conductor.model import TicketStatus, TrackStatus
from conductor.providers.base import ProviderRequest
from conductor.providers.scripted import Reply, ScriptedProvider, demo_reply
from conductor.session import Session
from conductor.settings import ApplySettings

FAIL = Reply(text='{"verdict": "fail", "hint": "add a test for the error path"}')


def start(workspace: Path, tmp_path: Path, provider: ScriptedProvider, cfg: Config | None = None,
          linger: bool = False) -> tuple[Session, str]:
    s = Session(cfg or fast_config(), workspace=workspace, tracks_dir=tmp_path / "tracks", provider=provider,
                linger=linger)
    s.broker.auto_approve({"plan", "tickets", "spawn", "tool"})
    (tid,) = s.plan_epic("Add OAuth login").wait(20)
    return s, tid


def first_then_demo(first: Reply, times: int = 1):  # type: ignore[no-untyped-def]
    def responder(req: ProviderRequest, n: int) -> Reply:
        return first if n < times else demo_reply(req, n)
    return responder


def test_transient_error_is_retried_and_the_ticket_completes(workspace: Path, tmp_path: Path) -> None:
    provider = ScriptedProvider({(3, "T2"): first_then_demo(Reply(fault=ProviderUnavailable("503 overloaded")), 2),
                                 (3, "T3"): first_then_demo(Reply(text="partial output " * 5, interrupt_after=1)),
                                 (3, "T4"): first_then_demo(Reply(fault=RateLimited("429", retry_after_s=0.05)))})
    s, tid = start(workspace, tmp_path, provider)
    try:
        track = s.engines[tid].join(30)
        assert all(t.status == TicketStatus.DONE for t in track.tickets)
        assert all(t.attempts == 1 for t in track.tickets)  # retried inside the attempt, not a new attempt
        resets = [e for e in s.events.drain(100_000) if isinstance(e, StreamReset)]
        assert {e.stream_id.split("/")[-1] for e in resets} == {"T2", "T3", "T4"}
        assert len([e for e in resets if e.stream_id.endswith("/T2")]) == 2
        # the interrupted stream's partial usage is recorded once and marked partial
        partial = [r for r in s.ledger.records() if r.usage.partial]
        assert [(r.ticket_id, r.tier) for r in partial] == [("T3", 3)]
        # the discarded partial output is marked in the file, and the good output follows
        out = s.store.read_output(s.store.ticket_output(tid, "T3"))
        assert out.index("[discarded: StreamInterrupted") < out.index("Work on T3 is complete")
    finally:
        s.shutdown()


def test_retries_stay_within_the_budget(workspace: Path, tmp_path: Path) -> None:
    # A 500 INTERNAL can be the request's own doing (too long an input), so a spent budget fails the attempt;
    # a 429/503 never does (tests/test_storms.py).
    cfg = fast_config()
    cfg = cfg.updated({"retry": {"max_retries": 2}})
    cfg = cfg.updated({"engine": {"max_attempts": 1}})
    provider = ScriptedProvider({(3, "T1"): [Reply(fault=ProviderUnavailable("500 internal", status=500))]})
    s, tid = start(workspace, tmp_path, provider, cfg)
    try:
        track = s.engines[tid].join(30)
        t1 = track.ticket("T1")
        assert t1.status == TicketStatus.FAILED and "ProviderUnavailable" in (t1.failed_reason or "")
        assert len([r for r in provider.calls(tier=3) if r.prov.ticket_id == "T1"]) == 3  # 1 + 2 retries
    finally:
        s.shutdown()


def test_failing_review_escalates_then_lands_on_the_failed_shelf(workspace: Path, tmp_path: Path) -> None:
    cfg = fast_config()
    cfg = cfg.updated({"engine": {"max_attempts": 3}})
    provider = ScriptedProvider({(4, "T2"): [FAIL]})
    s, tid = start(workspace, tmp_path, provider, cfg)
    try:
        track = s.engines[tid].join(30)
        st = {t.id: t.status for t in track.tickets}
        assert st == {"T1": "done", "T2": "failed", "T3": "done", "T4": "blocked", "T5": "blocked", "T6": "blocked"}
        t2 = track.ticket("T2")
        assert t2.attempts == 3 and "review failed: add a test for the error path" in (t2.failed_reason or "")
        assert "dependency 'T2' failed" in (track.ticket("T4").blocked_reason or "")
        assert "dependency 'T4' is blocked: dependency 'T2' failed" in (track.ticket("T5").blocked_reason or "")
        assert track.status == TrackStatus.STALLED
        t2_calls = [r for r in provider.calls(tier=3) if r.prov.ticket_id == "T2" and len(r.messages) == 1]
        assert [r.model for r in t2_calls] == list(cfg.models.ladder)  # each attempt one rung up
        assert "QA HINT FROM THE LAST ATTEMPT: add a test for the error path" in t2_calls[1].messages[0].text
        assert provider.calls(tier=3) and not [r for r in provider.calls(tier=3) if r.prov.ticket_id == "T4"]
    finally:
        s.shutdown()


def test_retry_from_the_failed_shelf_unblocks_dependents(workspace: Path, tmp_path: Path) -> None:
    cfg = fast_config()
    cfg = cfg.updated({"engine": {"max_attempts": 1}})
    provider = ScriptedProvider({(4, "T2"): first_then_demo(FAIL)})
    s, tid = start(workspace, tmp_path, provider, cfg, linger=True)
    try:
        eng = s.engines[tid]
        eng.join(30)
        assert eng.track.ticket("T2").status == TicketStatus.FAILED
        s.command(tid, Retry("T2"))
        wait_for(lambda: eng.track.status == TrackStatus.DONE, 30, "track done after retry")
        assert all(t.status == TicketStatus.DONE for t in eng.track.tickets)
        assert eng.track.ticket("T2").attempts == 2
    finally:
        s.shutdown()


def test_safety_block_waits_for_a_human_and_bad_request_is_not_retried(workspace: Path, tmp_path: Path) -> None:
    provider = ScriptedProvider({(3, "T2"): [Reply(text="", finish="safety", detail="SAFETY")],
                                 (3, "T3"): [Reply(fault=BadRequest("400 INVALID_ARGUMENT: bad model name"))]})
    s, tid = start(workspace, tmp_path, provider)
    try:
        track = s.engines[tid].join(30)
        t2, t3 = track.ticket("T2"), track.ticket("T3")
        assert t2.status == TicketStatus.BLOCKED and "safety" in (t2.blocked_reason or "")
        assert t3.status == TicketStatus.FAILED and "400 INVALID_ARGUMENT" in (t3.failed_reason or "")
        for t in ("T2", "T3"):
            assert len([r for r in provider.calls(tier=3) if r.prov.ticket_id == t]) == 1
    finally:
        s.shutdown()


def test_budget_exceeded_pauses_the_run_with_a_message(workspace: Path, tmp_path: Path) -> None:
    cfg = fast_config()
    cfg = cfg.updated({"budget": {"max_tokens": 2_500}})  # planning fits; the run does not
    s, tid = start(workspace, tmp_path, ScriptedProvider(), cfg, linger=True)
    try:
        eng = s.engines[tid]
        wait_for(lambda: eng.track.status == TrackStatus.PAUSED, 20, "paused on budget")
        eng.join(20)
        errors = [e for e in s.events.drain(100_000) if isinstance(e, ErrorRaised)]
        assert any("token budget spent" in e.message for e in errors)
        assert any(t.status != TicketStatus.DONE for t in eng.track.tickets)
        # raising the budget and resuming finishes the track without repeating finished work
        s.apply_settings(ApplySettings({"budget": {"max_tokens": None}}))  # the person raises it in Settings
        s.command(tid, Resume())
        wait_for(lambda: eng.track.status == TrackStatus.DONE, 30, "done after resume")
    finally:
        s.shutdown()


def test_cancel_stops_a_streaming_worker_within_a_second(workspace: Path, tmp_path: Path,
                                                          thread_baseline: set[int]) -> None:
    provider = ScriptedProvider({3: [Reply(text="x" * 4000, chunk_chars=8)]}, chunk_delay_s=0.01)
    s, tid = start(workspace, tmp_path, provider)
    try:
        eng = s.engines[tid]
        wait_for(lambda: eng.track.ticket("T1").status == TicketStatus.RUNNING, 10, "T1 running")
        t0 = time.monotonic()
        eng.cancel()
        eng.join(5)
        assert time.monotonic() - t0 < 1.0
        assert eng.track.ticket("T1").status == TicketStatus.CANCELLED
        assert eng.track.status == TrackStatus.CANCELLED
    finally:
        s.shutdown()
    leaked = [t for t in threading.enumerate() if t.ident not in thread_baseline]
    assert not leaked, f"threads left alive after cancel: {leaked}"


def test_step_mode_runs_the_edited_spawn_prompt(workspace: Path, tmp_path: Path) -> None:
    cfg = fast_config()
    cfg = cfg.updated({"engine": {"step_mode": True}})
    s = Session(cfg, workspace=workspace, tracks_dir=tmp_path / "tracks", provider=ScriptedProvider(), linger=False)
    provider = s.provider
    s.broker.auto_approve({"plan", "tickets", "tool"})
    try:
        (tid,) = s.plan_epic("Add OAuth login").wait(20)
        approved: set[str] = set()
        while len(approved) < 6:  # T2 and T3 ask at the same time: approvals queue up, none is lost
            for req in wait_for(lambda: s.broker.pending(), 10, "a spawn approval"):
                assert isinstance(req.payload, SpawnPayload) and req.payload.prompt.startswith("TICKET:")
                payload = req.payload.model_copy(update={"prompt": req.payload.prompt + "\nEXTRA: keep it short"})
                s.resolve_approval(req.id, approved=True, payload=payload if req.prov.ticket_id == "T1" else None)
                approved.add(req.prov.ticket_id or "")
        assert approved == {"T1", "T2", "T3", "T4", "T5", "T6"}
        track = s.engines[tid].join(30)
        assert all(t.status == TicketStatus.DONE for t in track.tickets)
        first = [r for r in provider.calls(tier=3) if r.prov.ticket_id == "T1"][0]  # type: ignore[attr-defined]
        assert first.messages[0].text.endswith("EXTRA: keep it short")
    finally:
        s.shutdown()


def test_a_call_past_its_deadline_is_cut_and_retried_within_the_budget(workspace: Path, tmp_path: Path) -> None:
    cfg = fast_config()
    cfg = cfg.updated({"engine": {"call_timeout_s": 0.2}})
    cfg = cfg.updated({"engine": {"max_attempts": 1}})
    cfg = cfg.updated({"retry": {"max_retries": 1}})
    provider = ScriptedProvider({(3, "T1"): [Reply(text="never arrives", latency_s=30)]})
    s, tid = start(workspace, tmp_path, provider, cfg)
    try:
        t0 = time.monotonic()
        t1 = s.engines[tid].join(30).ticket("T1")
        assert time.monotonic() - t0 < 5  # cut at the deadline, not after the model's 30 s
        assert t1.status == TicketStatus.FAILED and "CallTimeout" in (t1.failed_reason or "")
        assert len([r for r in provider.calls(tier=3) if r.prov.ticket_id == "T1"]) == 2  # 1 + 1 retry
        assert all(r.timeout_s == 0.2 for r in provider.calls())  # the deadline travels with the request
    finally:
        s.shutdown()


def test_a_full_disk_stops_the_run_with_a_message_and_costs_no_attempt(workspace: Path, tmp_path: Path) -> None:
    """Issue 9 class 9: the journal refusing a write (ENOSPC) used to leave join() hanging and charge the ticket
    an attempt. Now the run stops at once with a message naming the journal; nothing after the last written
    record took effect, and on resume the interrupted ticket continues the same attempt."""
    import errno

    from conductor.store import Journal

    gate, entered = threading.Event(), threading.Event()

    def slow_t1(req: ProviderRequest, n: int) -> Reply:
        if req.tier == 3 and req.prov.ticket_id == "T1":
            entered.set()  # launched, so its 'running' record (attempt 1) is on disk
            gate.wait(10)
        return demo_reply(req, n)

    s, tid = start(workspace, tmp_path, ScriptedProvider(fallback=slow_t1))
    engine = s.engines[tid]
    journal = s.store.journal(tid)
    real = Journal.append_many

    def full(self: Journal, recs: list, *, sync: bool = True, before_sync=None):  # type: ignore[no-untyped-def,type-arg]
        if self is journal:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, recs, sync=sync, before_sync=before_sync)

    assert entered.wait(20)
    assert engine._committer is not None
    engine._committer.barrier()  # the attempt starts as its running line is handed over: wait until it is written
    Journal.append_many = full  # type: ignore[method-assign]
    try:
        gate.set()
        t0 = time.monotonic()
        try:
            engine.join(timeout=20)
            raise AssertionError("join() returned as if the run were fine")
        except RuntimeError as exc:
            assert "No space left" in str(exc.__cause__)
        assert time.monotonic() - t0 < 15
    finally:
        Journal.append_many = real  # type: ignore[method-assign]
    errors = [e.message for e in s.events.drain(10**6) if isinstance(e, ErrorRaised)]
    # Whoever meets the full disk first (the engine's journal writer, or a worker's usage line) stops the run.
    assert any("the run stopped" in m and "No space left" in m for m in errors), errors
    s.shutdown()
    again = Session(fast_config(), workspace=workspace, tracks_dir=tmp_path / "tracks",
                    provider=ScriptedProvider(), linger=False)
    loaded = again.store.load_track(tid)
    assert loaded.track.ticket("T1").attempts == 1, "the refused write cost no attempt"
    again.shutdown()
