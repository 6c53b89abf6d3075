"""The one channel to the GUI: seq stamped under a lock so queue order == seq order with many producers,
drain bounded by items and time, events immutable.

Why: the GUI applies events in queue order and trusts seq to detect gaps; a frame must never drain forever;
a consumer must not be able to change an event another consumer also sees.
"""

from __future__ import annotations

import dataclasses
import threading

import pytest

from conductor.events import (ErrorRaised, Event, EventQueue, Notice, Provenance, RunFinished, StreamDelta,
                              UsageRecorded)
from conductor.model import Usage


def test_seq_strictly_increases_in_queue_order_with_8_producers() -> None:
    q = EventQueue()
    producers, per = 8, 2_000
    barrier = threading.Barrier(producers, timeout=10)
    errors: list[BaseException] = []

    def produce(k: int) -> None:
        try:
            barrier.wait()
            for i in range(per):
                q.post(StreamDelta(prov=Provenance(ticket_id=f"P{k}", attempt=i), stream_id=f"p{k}", text=str(i)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors and not any(t.is_alive() for t in threads)

    events = q.drain(max_items=10**9)
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, producers * per + 1))  # strictly increasing, no gap, no duplicate
    # Each producer's own events keep their order.
    for k in range(producers):
        mine = [e.attempt for e in events if e.ticket_id == f"P{k}"]
        assert mine == list(range(per))
    # The producers really interleaved (the barrier started them together), so the lock mattered.
    owners = [e.ticket_id for e in events]
    switches = sum(a != b for a, b in zip(owners, owners[1:]))
    assert switches > producers - 1  # more switches than running one after another would give


def test_post_returns_the_stamped_copy_and_leaves_the_original_alone() -> None:
    q = EventQueue()
    ev = Notice(message="hello")
    stamped = q.post(ev)
    assert ev.seq == 0 and stamped.seq == 1 and stamped.message == "hello"
    assert q.post(Notice(message="again")).seq == 2
    assert q.get(timeout=1) is not None and q.qsize() == 1


def test_drain_respects_max_items() -> None:
    q = EventQueue()
    for i in range(10):
        q.post(Notice(message=str(i)))
    first = q.drain(max_items=3)
    assert [e.seq for e in first] == [1, 2, 3]
    assert q.qsize() == 7
    rest = q.drain(max_items=100)
    assert [e.seq for e in rest] == list(range(4, 11))
    assert q.drain() == [] and q.empty()


def test_drain_stops_once_its_time_budget_is_spent() -> None:
    q = EventQueue()
    for i in range(50):
        q.post(Notice(message=str(i)))
    got = q.drain(max_items=1_000, budget_s=0.0)
    assert len(got) == 1  # a spent budget still makes progress, one event
    assert q.qsize() == 49
    assert len(q.drain(max_items=1_000, budget_s=10.0)) == 49


def test_get_times_out_with_none() -> None:
    assert EventQueue().get(timeout=0.01) is None


@pytest.mark.parametrize("ev", [
    Notice(message="m"),
    StreamDelta(stream_id="tier3:T1", text="x"),
    RunFinished(status="done", counts={}),
    UsageRecorded(record_id="r", usage=Usage(model="m")),
    ErrorRaised(message="e", error_type="X"),
])
def test_events_are_immutable(ev: Event) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.seq = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.prov = Provenance()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.prov.ticket_id = "other"  # type: ignore[misc]


def test_flat_accessors_and_stream_ids() -> None:
    prov = Provenance(trace_id="run", track_id="tr", ticket_id="T1", tier=3, attempt=2)
    ev = StreamDelta(prov=prov, stream_id=prov.stream_id, text="x")
    assert (ev.trace_id, ev.track_id, ev.ticket_id, ev.tier, ev.attempt) == ("run", "tr", "T1", 3, 2)
    assert prov.stream_id == "tier3:tr/T1"  # unique at the source: two tracks may both have a T1
    assert prov.with_(tier=4).stream_id == "tier4:tr/T1"
    assert Provenance(track_id="tr", tier=2).stream_id == "tier2:tr"
    assert Provenance(tier=1).stream_id == "tier1"
    assert prov.describe() == "tier 3, track tr, ticket T1, attempt 2"
    kinds = {cls.kind for cls in (Notice, StreamDelta, RunFinished, UsageRecorded, ErrorRaised)}
    assert len(kinds) == 5
