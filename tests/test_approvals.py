"""Approval requests as futures: distinct kinds, policies, validators, edits, rejections, exactly-one-wins
resolution, the journal hook before the waiter is released, cancellation and timeouts.

Why: the approval gate is the safety boundary. A decision must bind to one request, be recorded before the
side effect it allows, and a waiting worker must stop promptly when the user cancels.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from conductor.approval_payloads import ApprovalPayload, SpawnPayload, ToolPayload
from conductor.approvals import (ApprovalBroker, ApprovalDecision, ApprovalKind, ApprovalRequest, DecidedBy,
                                 PendingApproval)
from conductor.errors import ApprovalError, Cancelled
from conductor.events import ApprovalRequested, ApprovalResolved, EventQueue, Provenance
from helpers import sample_payload

PROV = Provenance(trace_id="run", track_id="tr", ticket_id="T1", tier=3, attempt=1)


def ask(broker: ApprovalBroker, kind: ApprovalKind = ApprovalKind.TOOL, ticket: str = "T1",
        payload: ApprovalPayload | None = None, **kw: Any) -> PendingApproval:
    return broker.request(PROV.with_(ticket_id=ticket), f"{kind.value} for {ticket}",
                          payload if payload is not None else sample_payload(kind.value), **kw)


def cmd(text: str) -> ToolPayload:
    return sample_payload("tool", text)  # type: ignore[no-any-return]


def spawn(prompt: str) -> SpawnPayload:
    return sample_payload("spawn", prompt)  # type: ignore[no-any-return]


def run_thread(fn: Any) -> threading.Thread:
    th = threading.Thread(target=fn, daemon=True)
    th.start()
    return th


# ---------------------------------------------------------------- kinds, events

def test_kinds_are_distinct_and_carried_on_requests_and_events() -> None:
    assert sorted(k.value for k in ApprovalKind) == ["plan", "spawn", "tickets", "tool"]
    q = EventQueue()
    broker = ApprovalBroker(q)
    pendings = {k: ask(broker, k) for k in ApprovalKind}
    assert len({p.request.id for p in pendings.values()}) == 4
    for kind, p in pendings.items():
        assert p.request.kind is kind and p.request.id.startswith(kind.value + "-")
        assert p.request.prov.ticket_id == "T1"
    requested = [e for e in q.drain() if isinstance(e, ApprovalRequested)]
    assert [e.request.kind for e in requested] == list(ApprovalKind)
    assert all(e.ticket_id == "T1" and e.track_id == "tr" for e in requested)

    broker.resolve(pendings[ApprovalKind.SPAWN].request.id, approved=True)
    (resolved,) = [e for e in q.drain() if isinstance(e, ApprovalResolved)]
    assert resolved.approval_kind == "spawn" and resolved.approved and resolved.by == DecidedBy.PERSON
    assert [r.kind for r in broker.pending()] == [ApprovalKind.PLAN, ApprovalKind.TICKETS, ApprovalKind.TOOL]
    assert [r.kind for r in broker.pending(ApprovalKind.TOOL)] == [ApprovalKind.TOOL]


def test_request_and_decision_json_round_trip() -> None:
    broker = ApprovalBroker()
    p = ask(broker, ApprovalKind.PLAN)
    assert ApprovalRequest.from_json(p.request.to_json()) == p.request
    d = broker.resolve(p.request.id, approved=False, reason="no")
    assert ApprovalDecision.from_json(d.to_json()) == d


# ---------------------------------------------------------------- policies

def test_auto_approve_policy_decides_only_its_kinds() -> None:
    q = EventQueue()
    broker = ApprovalBroker(q)
    broker.auto_approve({"tool", ApprovalKind.PLAN})
    asked: list[ApprovalRequest] = []
    broker.on_requested.append(asked.append)

    tool = ask(broker, ApprovalKind.TOOL, payload=cmd("ls"))
    assert tool.done and tool.decision.approved and tool.decision.payload == cmd("ls")
    assert (tool.decision.by, tool.decision.policy) == (DecidedBy.POLICY, "auto:plan,tool")
    assert tool.wait(timeout=1).approved

    spawn = ask(broker, ApprovalKind.SPAWN)
    tickets = ask(broker, ApprovalKind.TICKETS)
    assert not spawn.done and not tickets.done
    assert [r.id for r in asked] == [spawn.request.id, tickets.request.id]  # only those reach a person
    assert {r.id for r in broker.pending()} == {spawn.request.id, tickets.request.id}
    resolved = [e for e in q.drain() if isinstance(e, ApprovalResolved)]
    assert [(e.approval_kind, e.by, e.policy) for e in resolved] == [("tool", DecidedBy.POLICY, "auto:plan,tool")]


def test_policies_are_asked_in_order_and_may_reject() -> None:
    broker = ApprovalBroker()
    def deny_rm(r: ApprovalRequest) -> ApprovalDecision | None:
        match r.payload:
            case ToolPayload(args={"command": str(command)}) if "rm" in command:
                return ApprovalDecision(request_id=r.id, approved=False, reason="rm is never allowed")
        return None

    broker.add_policy("deny-rm", deny_rm)
    broker.auto_approve({"tool"})
    denied = ask(broker, payload=cmd("rm -rf x"))
    allowed = ask(broker, payload=cmd("ls"))
    assert denied.decision.approved is False and denied.decision.reason == "rm is never allowed"
    assert (denied.decision.by, denied.decision.policy) == (DecidedBy.POLICY, "deny-rm")
    assert allowed.decision.approved and allowed.decision.by == DecidedBy.POLICY
    assert (allowed.decision.policy or "").startswith("auto")


# ---------------------------------------------------------------- validators, edits, rejections

def _no_empty_prompt(payload: SpawnPayload) -> None:
    if not payload.prompt.strip():
        raise ValueError("the prompt is empty")


def test_validator_rejects_a_bad_edit_and_the_request_stays_pending() -> None:
    q = EventQueue()
    broker = ApprovalBroker(q)
    p = ask(broker, ApprovalKind.SPAWN, payload=spawn("do it"), validator=_no_empty_prompt)
    q.drain()
    with pytest.raises(ValueError, match="the prompt is empty"):
        broker.resolve(p.request.id, approved=True, payload=spawn("   "))
    assert not p.done
    assert [r.id for r in broker.pending()] == [p.request.id]
    assert q.drain() == []  # nothing was announced as resolved
    d = broker.resolve(p.request.id, approved=True, payload=spawn("do it better"))
    assert d.approved and d.edited and d.payload == spawn("do it better")


def test_an_edited_payload_is_what_the_decision_carries() -> None:
    q = EventQueue()
    broker = ApprovalBroker(q)
    p = ask(broker, payload=cmd("pytest"))
    d = broker.resolve(p.request.id, approved=True, payload=cmd("pytest -q tests/unit"))
    assert d.edited is True and d.payload == cmd("pytest -q tests/unit")
    assert p.wait(timeout=1) == d
    assert p.request.payload == cmd("pytest")  # the request still shows what was asked
    (ev,) = [e for e in q.drain() if isinstance(e, ApprovalResolved)]
    assert ev.edited is True


def test_approving_unchanged_is_not_an_edit() -> None:
    broker = ApprovalBroker()
    p = ask(broker, payload=cmd("ls"), validator=lambda _p: (_ for _ in ()).throw(AssertionError("called")))
    d = broker.resolve(p.request.id, approved=True, payload=cmd("ls"))
    assert d.edited is False and d.payload == cmd("ls")


def test_a_rejection_carries_a_reason_and_no_payload() -> None:
    broker = ApprovalBroker()
    p = ask(broker)
    d = broker.resolve(p.request.id, approved=False, reason="too risky", payload=cmd("ignored"))
    assert d.approved is False and d.reason == "too risky" and d.payload is None
    q = ask(broker)
    assert broker.resolve(q.request.id, approved=False).reason  # a default reason, never empty


def test_resolving_twice_or_unknown_is_an_approval_error() -> None:
    broker = ApprovalBroker()
    p = ask(broker)
    broker.resolve(p.request.id, approved=True)
    with pytest.raises(ApprovalError):
        broker.resolve(p.request.id, approved=False)
    with pytest.raises(ApprovalError, match="nope"):
        broker.resolve("nope", approved=True)
    assert p.decision.approved is True  # the first decision stands


# ---------------------------------------------------------------- concurrency

def test_two_concurrent_resolves_exactly_one_wins() -> None:
    for _ in range(25):
        broker = ApprovalBroker()
        p = ask(broker)
        loser_done = threading.Event()

        def slow_journal(_req: ApprovalRequest, _d: ApprovalDecision) -> None:
            # Hold the winner inside the hook until the other resolver has finished: the two really overlap.
            loser_done.wait(timeout=2)

        broker.on_resolved.append(slow_journal)
        barrier = threading.Barrier(2, timeout=5)
        outcomes: list[tuple[bool, Any]] = []
        lock = threading.Lock()

        def resolver(approved: bool) -> None:
            barrier.wait()
            try:
                d = broker.resolve(p.request.id, approved=approved, reason=None if approved else "no")
                with lock:
                    outcomes.append((True, d))
            except ApprovalError as exc:
                with lock:
                    outcomes.append((False, exc))
                loser_done.set()

        threads = [run_thread(lambda: resolver(True)), run_thread(lambda: resolver(False))]
        for t in threads:
            t.join(timeout=5)
        assert not any(t.is_alive() for t in threads)
        wins = [x for ok, x in outcomes if ok]
        assert len(outcomes) == 2 and len(wins) == 1, outcomes
        assert p.wait(timeout=1) == wins[0]


def test_the_on_resolved_hook_runs_before_wait_returns() -> None:
    broker = ApprovalBroker()
    p = ask(broker)
    order: list[str] = []
    lock = threading.Lock()
    waiter_returned = threading.Event()
    waiting = threading.Event()

    def journal(_req: ApprovalRequest, _d: ApprovalDecision) -> None:
        # If the waiter were released before this hook, it would return within this window and we'd see it.
        early = waiter_returned.wait(timeout=0.3)
        with lock:
            order.append("hook" + (" (waiter already released!)" if early else ""))
        assert not p.done

    def waiter() -> None:
        waiting.set()
        p.wait(timeout=5)
        with lock:
            order.append("waiter")
        waiter_returned.set()

    broker.on_resolved.append(journal)
    th = run_thread(waiter)
    assert waiting.wait(timeout=5)
    broker.resolve(p.request.id, approved=True)
    th.join(timeout=5)
    assert order == ["hook", "waiter"]


def test_a_hook_that_raises_leaves_the_request_pending() -> None:
    q = EventQueue()
    broker = ApprovalBroker(q)
    p = ask(broker, ApprovalKind.SPAWN, payload=spawn("x"), validator=_no_empty_prompt)
    q.drain()

    def disk_full(_req: ApprovalRequest, _d: ApprovalDecision) -> None:
        raise OSError(28, "No space left on device")

    broker.on_resolved.append(disk_full)
    with pytest.raises(OSError, match="No space"):
        broker.resolve(p.request.id, approved=True)
    assert not p.done and p.decision is None
    assert [r.id for r in broker.pending()] == [p.request.id]
    assert q.drain() == []  # not announced: it was not recorded, so not decided
    with pytest.raises(TimeoutError):
        p.wait(timeout=0.05)

    broker.on_resolved.remove(disk_full)
    with pytest.raises(ValueError, match="empty"):  # the validator survived the failed attempt
        broker.resolve(p.request.id, approved=True, payload=spawn(""))
    assert broker.resolve(p.request.id, approved=True).approved
    assert p.done


# ---------------------------------------------------------------- waiting

def test_wait_raises_cancelled_promptly_when_its_cancel_event_is_set() -> None:
    broker = ApprovalBroker()
    p = ask(broker)
    cancel = threading.Event()
    started = threading.Event()
    result: dict[str, Any] = {}

    def waiter() -> None:
        started.set()
        try:
            p.wait(cancel=cancel)
        except Cancelled as exc:
            result["raised_at"] = time.monotonic()
            result["exc"] = exc

    th = run_thread(waiter)
    assert started.wait(timeout=5)
    set_at = time.monotonic()
    cancel.set()
    th.join(timeout=5)
    assert not th.is_alive()
    assert isinstance(result.get("exc"), Cancelled) and p.request.id in str(result["exc"])
    assert result["raised_at"] - set_at < 0.5
    assert not p.done  # cancelling the wait does not decide the request


def test_wait_times_out() -> None:
    p = ask(ApprovalBroker())
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match=p.request.id):
        p.wait(timeout=0.2)
    elapsed = time.monotonic() - t0
    assert 0.2 <= elapsed < 1.0


def test_wait_returns_at_once_when_already_decided_and_callbacks_fire() -> None:
    broker = ApprovalBroker()
    p = ask(broker)
    seen: list[ApprovalDecision] = []
    p.add_done_callback(seen.append)
    d = broker.resolve(p.request.id, approved=True)
    late: list[ApprovalDecision] = []
    p.add_done_callback(late.append)
    assert seen == [d] and late == [d]
    assert p.wait(cancel=threading.Event(), timeout=0) == d


def test_cancel_where_rejects_only_matching_requests() -> None:
    q = EventQueue()
    broker = ApprovalBroker(q)
    a = ask(broker, ticket="T1")
    b = ask(broker, ApprovalKind.SPAWN, ticket="T1")
    c = ask(broker, ticket="T2")
    q.drain()
    n = broker.cancel_where(lambda r: r.prov.ticket_id == "T1", "ticket cancelled")
    assert n == 2
    for p in (a, b):
        assert p.done and p.decision.approved is False
        assert p.decision.reason == "ticket cancelled" and p.decision.by == "cancelled"
    assert not c.done and [r.id for r in broker.pending()] == [c.request.id]
    assert {e.request_id for e in q.drain() if isinstance(e, ApprovalResolved)} == {a.request.id, b.request.id}
    assert broker.cancel_where(lambda r: r.prov.ticket_id == "T1", "again") == 0
