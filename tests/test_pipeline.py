"""The whole headless pipeline through the real engine with the scripted provider.

Why here: this is the contract the GUI and CLI rely on — events on the one queue, dependency order, and a
ledger that equals what the provider reported. Each assertion would fail if that part were missing.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from conductor.config import Config
from conductor.events import RecordApplied, StreamDelta, UsageRecorded
from conductor.model import TicketStatus, TrackStatus
from conductor.providers.scripted import ScriptedProvider
from conductor.records import TicketUpdated
from conductor.session import Session


def run_epic(workspace: Path, tracks: Path, provider: ScriptedProvider, cfg: Config | None = None,
             kinds: set[str] = {"plan", "tickets", "spawn", "tool"}) -> tuple[Session, list]:
    cfg = cfg or Config()
    session = Session(cfg, workspace=workspace, tracks_dir=tracks, provider=provider, linger=False)
    session.broker.auto_approve(kinds)
    handle = session.plan_epic("Add OAuth login to the app")
    track_ids = handle.wait(timeout=20)
    assert track_ids, "planning approved no track"
    for tid in track_ids:
        session.engines[tid].join(timeout=30)
    events = session.events.drain(max_items=1_000_000)
    return session, events


def test_epic_to_done_with_diamond_and_chain(workspace: Path, tmp_path: Path, thread_baseline: set[int]) -> None:
    provider = ScriptedProvider(latency_s=0.002)
    cfg = Config()
    cfg = cfg.updated({"engine": {"max_workers": 3}})
    session, events = run_epic(workspace, tmp_path / "tracks", provider, cfg)
    try:
        (track_id,) = session.engines
        track = session.engines[track_id].track
        deps = {t.id: t.depends_on for t in track.tickets}
        # The DAG Tier 2 produced has a diamond (T1 -> T2, T3 -> T4) and a chain (T4 -> T5 -> T6).
        assert deps == {"T1": [], "T2": ["T1"], "T3": ["T1"], "T4": ["T2", "T3"], "T5": ["T4"], "T6": ["T5"]}
        assert all(t.status == TicketStatus.DONE for t in track.tickets)
        assert track.status == TrackStatus.DONE

        # No ticket started before all of its dependencies finished (event order = seq order).
        seqs = [e.seq for e in events]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        def status_seqs(status: str) -> dict[str, int]:
            return {e.record.ticket_id: e.seq for e in events if isinstance(e, RecordApplied)
                    and isinstance(e.record, TicketUpdated) and e.record.fields.status == status}
        started, finished = status_seqs("running"), status_seqs("done")
        for tid, ds in deps.items():
            for d in ds:
                assert finished[d] < started[tid], f"{tid} started before its dependency {d} finished"

        # Every ticket's Tier 3 stream arrived under its stream id, complete and in order.
        streamed: dict[str, str] = defaultdict(str)
        for e in events:
            if isinstance(e, StreamDelta):
                streamed[e.stream_id] += e.text
        for t in track.tickets:
            sent = "".join(c.text for c in provider.sent if c.tier == 3 and c.ticket_id == t.id)
            assert sent and streamed[f"tier3:{track_id}/{t.id}"] == sent
            assert streamed[f"tier4:{track_id}/{t.id}"] == "".join(c.text for c in provider.sent
                                                       if c.tier == 4 and c.ticket_id == t.id)
        assert streamed["tier1"] and streamed[f"tier2:{track_id}"]

        # The ledger's per-tier totals equal the usage the provider reported: no zeros, nothing twice.
        by_tier = session.ledger.by_tier()
        assert set(by_tier) == {1, 2, 3, 4}
        for tier, tot in by_tier.items():
            calls = [c.usage for c in provider.sent if c.tier == tier]
            assert tot.calls == len(calls)
            assert tot.prompt_tokens == sum(u.prompt_tokens for u in calls) > 0
            assert tot.output_tokens == sum(u.output_tokens for u in calls) > 0
            assert tot.thinking_tokens == sum(u.thinking_tokens for u in calls) > 0
            assert tot.cost_usd is not None and tot.cost_usd > 0
        recorded = [e for e in events if isinstance(e, UsageRecorded)]
        assert len(recorded) == len(provider.sent) == len({e.record_id for e in recorded})

        # Everything is on disk: the snapshot, the journal, the outputs.
        folder = tmp_path / "tracks" / track_id
        assert (folder / "track.toml").exists() and (folder / "events.jsonl").exists()
        assert (folder / "outputs" / "tickets.log").exists()
        t6 = session.store.read_output(session.store.ticket_output(track_id, "T6"))
        assert t6.count("Work on T6 is complete") == 1
    finally:
        session.shutdown()
    leaked = [t for t in __import__("threading").enumerate() if t.ident not in thread_baseline]
    assert not leaked, f"threads left alive: {leaked}"


def test_ledger_is_rebuilt_from_the_journals_after_restart(workspace: Path, tmp_path: Path) -> None:
    provider = ScriptedProvider()
    session, _ = run_epic(workspace, tmp_path / "tracks", provider)
    before = session.ledger.total()
    session.shutdown()
    again = Session(Config(), workspace=workspace, tracks_dir=tmp_path / "tracks", provider=ScriptedProvider())
    try:
        after = again.ledger.total()
        assert (after.calls, after.total_tokens, after.cost_usd) == (before.calls, before.total_tokens, before.cost_usd)
        assert after.calls == len(provider.sent)
    finally:
        again.shutdown()
