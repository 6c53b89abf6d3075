"""Bad model output never becomes a plan: malformed JSON is repaired or rejected with the raw output kept,
bad graphs are rejected before anything runs (ids named), and truncated output is never parsed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conductor.approval_payloads import TicketsPayload
from conductor.config import Config
from conductor.errors import PlanInvalid
from conductor.events import ErrorRaised
from conductor.providers.scripted import Reply, ScriptedProvider, demo_tickets, demo_tracks
from conductor.session import Session

GOOD_TRACKS = json.dumps(demo_tracks("Add OAuth login"))


def make_session(workspace: Path, tmp_path: Path, provider: ScriptedProvider, repairs: int = 2) -> Session:
    cfg = Config()
    cfg = cfg.updated({"engine": {"repair_attempts": repairs}})
    s = Session(cfg, workspace=workspace, tracks_dir=tmp_path / "tracks", provider=provider, linger=False)
    s.broker.auto_approve({"plan", "tickets", "spawn", "tool"})
    return s


def test_malformed_plan_is_repaired_with_the_errors_fed_back(workspace: Path, tmp_path: Path) -> None:
    provider = ScriptedProvider({1: [Reply(text="Sure! Here are the tracks: {tracks: oops"),
                                     Reply(text=json.dumps({"tracks": [{"title": "x"}]})),
                                     Reply(text=GOOD_TRACKS)]})
    s = make_session(workspace, tmp_path, provider)
    try:
        ids = s.plan_epic("Add OAuth login").wait(20)
        assert len(ids) == 1
        tier1 = provider.calls(tier=1)
        assert len(tier1) == 3
        repair = tier1[2].messages[-1].text
        assert "<validation_errors>" in repair and "tracks.0.goal: Field required" in repair
    finally:
        s.shutdown()


def test_plan_that_stays_invalid_is_rejected_with_raw_output_saved(workspace: Path, tmp_path: Path) -> None:
    provider = ScriptedProvider({1: [Reply(text="I cannot produce JSON today.")]})
    s = make_session(workspace, tmp_path, provider, repairs=2)
    try:
        handle = s.plan_epic("Add OAuth login")
        with pytest.raises(PlanInvalid) as info:
            handle.wait(20)
        assert len(provider.calls(tier=1)) == 3
        raw = Path(info.value.raw_output_path or "")
        assert raw.read_text().count("I cannot produce JSON today.") == 3
        assert s.list_tracks() == []  # never a silent empty plan: no track at all
        errors = [e for e in s.events.drain(100_000) if isinstance(e, ErrorRaised)]
        assert errors and errors[-1].fatal and "no valid answer after 3 tries" in errors[-1].message
    finally:
        s.shutdown()


@pytest.mark.parametrize("mutate, named", [
    (lambda ts: ts[0]["depends_on"].append("T6"), "dependency cycle T1 -> T6 -> T5 -> T4 -> T3 -> T1"),
    (lambda ts: ts[2]["depends_on"].append("T99"), "ticket 'T3' depends on unknown ticket 'T99'"),
    (lambda ts: ts[4].update(id="T2"), "duplicate ticket id 'T2'"),
    (lambda ts: ts[1]["depends_on"].append("T2"), "ticket 'T2' depends on itself"),
])
def test_bad_ticket_graphs_are_rejected_before_anything_runs(workspace: Path, tmp_path: Path, mutate, named) -> None:
    tickets = demo_tickets("x")
    mutate(tickets["tickets"])
    provider = ScriptedProvider({2: [Reply(text=json.dumps(tickets))]})
    s = make_session(workspace, tmp_path, provider, repairs=1)
    try:
        with pytest.raises(PlanInvalid) as info:
            s.plan_epic("Add OAuth login").wait(20)
        assert any(named in p for p in info.value.errors), info.value.errors
        assert named in provider.calls(tier=2)[1].messages[-1].text  # the repair quoted the problem
        assert provider.calls(tier=3) == []
        (track,) = s.list_tracks()
        assert track.tickets == []
    finally:
        s.shutdown()


def test_edited_tickets_with_a_cycle_cannot_be_approved(workspace: Path, tmp_path: Path) -> None:
    s = Session(Config(), workspace=workspace, tracks_dir=tmp_path / "tracks", provider=ScriptedProvider(),
                linger=False)
    s.broker.auto_approve({"plan"})
    try:
        handle = s.plan_epic("Add OAuth login")
        got = threading_wait(lambda: s.broker.pending())
        (req,) = got
        assert req.kind.value == "tickets"
        assert isinstance(req.payload, TicketsPayload)
        first = req.payload.tickets[0].model_copy(update={"depends_on": ["T4"]})
        payload = req.payload.model_copy(update={"tickets": (first, *req.payload.tickets[1:])})
        with pytest.raises(ValueError, match="dependency cycle"):
            s.resolve_approval(req.id, approved=True, payload=payload)
        assert [r.id for r in s.broker.pending()] == [req.id]  # still pending, nothing ran
        s.resolve_approval(req.id, approved=False, reason="not now")
        assert handle.wait(10) == []
    finally:
        s.shutdown()


def test_truncated_output_is_never_parsed_as_a_plan(workspace: Path, tmp_path: Path) -> None:
    # Valid JSON, but the model says it stopped at its limit: it must not be trusted.
    provider = ScriptedProvider({1: [Reply(text=GOOD_TRACKS, finish="max_tokens")]})
    s = make_session(workspace, tmp_path, provider, repairs=1)
    try:
        with pytest.raises(PlanInvalid, match="cut off at the output limit"):
            s.plan_epic("Add OAuth login").wait(20)
        first, second = provider.calls(tier=1)
        assert second.max_output_tokens == 2 * (first.max_output_tokens or 0)
        assert len(second.messages) == len(first.messages)  # the truncated text is not appended
        assert s.list_tracks() == []
    finally:
        s.shutdown()


def threading_wait(fn, timeout: float = 10.0):
    """Wait for fn() to return something truthy, on a condition variable fed by the broker hooks."""
    import threading
    import time
    cond = threading.Condition()
    deadline = time.monotonic() + timeout
    with cond:
        while True:
            got = fn()
            if got:
                return got
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("condition not met")
            cond.wait(min(left, 0.02))
