"""Close the app while a plan approval waits, start again: the same approval is back, Tier 1 is not asked
(or paid for) again, and the flow continues to a finished track."""

from __future__ import annotations

from pathlib import Path

from helpers import wait_for

from conductor.config import Config
from conductor.model import TicketStatus
from conductor.providers.scripted import ScriptedProvider
from conductor.session import Session


def test_pending_plan_approval_survives_a_restart(workspace: Path, tmp_path: Path) -> None:
    tracks = tmp_path / "tracks"
    first = ScriptedProvider()
    s1 = Session(Config(), workspace=workspace, tracks_dir=tracks, provider=first, linger=False)
    s1.plan_epic("Add OAuth login")
    (req,) = wait_for(lambda: s1.broker.pending(), 10, "the plan approval")
    assert req.kind.value == "plan"
    s1.shutdown()
    assert len(first.calls(tier=1)) == 1

    again = ScriptedProvider()
    s2 = Session(Config(), workspace=workspace, tracks_dir=tracks, provider=again, linger=False)
    try:
        assert len(s2.recover()) == 1
        (back,) = wait_for(lambda: s2.broker.pending(), 10, "the plan approval, again")
        assert (back.id, back.kind, back.payload) == (req.id, req.kind, req.payload)
        s2.resolve_approval(back.id, approved=True)
        (tickets,) = wait_for(lambda: s2.broker.pending(), 10, "the tickets approval")
        assert tickets.kind.value == "tickets"
        s2.broker.auto_approve({"tool"})
        s2.resolve_approval(tickets.id, approved=True)
        (engine,) = wait_for(lambda: list(s2.engines.values()), 10, "the run")
        track = engine.join(30)
        assert all(t.status == TicketStatus.DONE for t in track.tickets)
        assert again.calls(tier=1) == []  # the proposal came from the journal
        assert s2.ledger.by_tier()[1].calls == 1  # and its usage was counted once, from the first run
    finally:
        s2.shutdown()
