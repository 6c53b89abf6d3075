"""Coalescing stream deltas per frame: the panes end with exactly the text they would have had delta by delta,
and nothing that is not a delta (a reset, a status change) moves across the text around it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from conductor.app.streams import Streams, coalesce
from conductor.events import Event, Notice, Provenance, StreamDelta, StreamReset


def provenance(ticket: str) -> Provenance:
    return Provenance(track_id="tr", ticket_id=ticket, tier=3, attempt=1)


def apply(streams: Streams, events: list[Event]) -> None:
    for ev in events:
        match ev:
            case StreamDelta():
                streams.add(ev.stream_id, ev.tier, ev.ticket_id or "", ev.text)
            case StreamReset():
                streams.get(ev.stream_id).replace("", False)
            case _:
                pass


_delta = st.builds(lambda t, text: StreamDelta(prov=provenance(t), stream_id=f"tier3:{t}", text=text),
                   st.sampled_from(["T1", "T2", "T3"]), st.text(alphabet="ab \n", max_size=12))
_reset = st.builds(lambda t: StreamReset(prov=provenance(t), stream_id=f"tier3:{t}", reason="retry"), st.sampled_from(["T1", "T2"]))
_other = st.just(Notice(message="note"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_delta, _delta, _delta, _reset, _other), max_size=60))
def test_coalesced_batches_leave_the_same_text_in_every_pane(batch: list[Event]) -> None:
    """Each stream's pane is identical; the 'all' pane holds the same lines, each worker's in its order (lines
    of different workers that arrived within one frame may be grouped by worker instead of interleaved)."""
    one_by_one, joined = Streams(10_000), Streams(10_000)
    apply(one_by_one, batch)
    apply(joined, coalesce(batch))
    own = lambda s: {k: b.text for k, b in s.buffers.items() if k != "tier3:all"}  # noqa: E731
    assert own(one_by_one) == own(joined)
    a, b = one_by_one.text("tier3:all").splitlines(), joined.text("tier3:all").splitlines()
    assert sorted(a) == sorted(b)
    for worker in ("[T1]", "[T2]", "[T3]"):
        assert [x for x in a if x.startswith(worker)] == [x for x in b if x.startswith(worker)]


def test_one_delta_per_stream_and_nothing_crosses_a_reset() -> None:
    d = lambda t, x: StreamDelta(prov=provenance(t), stream_id=f"tier3:{t}", text=x)  # noqa: E731
    batch: list[Event] = [d("T1", "a"), d("T2", "x"), d("T1", "b"), StreamReset(prov=provenance("T1"), reason="retry",
                                                                                   stream_id="tier3:T1"),
                          d("T1", "c"), d("T1", "d")]
    out = coalesce(batch)
    assert [(type(e).__name__, getattr(e, "text", "")) for e in out] == [
        ("StreamDelta", "ab"), ("StreamDelta", "x"), ("StreamReset", ""), ("StreamDelta", "cd")]
    assert out[0].seq == batch[0].seq and out[0].ts == batch[0].ts, "the first delta's time: latency is honest"


def test_replayed_and_thought_deltas_are_never_merged_into_live_text() -> None:
    p = provenance("T1")
    batch: list[Event] = [StreamDelta(prov=p, stream_id="tier3:T1", text="old", replayed=True),
                          StreamDelta(prov=p, stream_id="tier3:T1", text="think", thought=True),
                          StreamDelta(prov=p, stream_id="tier3:T1", text="new")]
    out = coalesce(batch)
    assert [(e.text, e.replayed, e.thought) for e in out] == [("old", True, False), ("think", False, True),
                                                              ("new", False, False)]
