"""Many streams at once, off the GUI thread: the event queue joins each stream's waiting deltas as they are
posted, so the consumer takes one item per busy stream however many deltas arrived, with exactly the text,
order and timestamps they had; and a pane's text is redacted incrementally (an append costs the carry plus the
new text, not a re-scan of the whole tail), still catching a secret split across deltas."""

from __future__ import annotations

import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conductor import redact
from conductor.app.streams import StreamBuffer
from conductor.events import Event, EventQueue, Notice, Provenance, StreamDelta, StreamReset


def prov(ticket: str, attempt: int = 1) -> Provenance:
    return Provenance(track_id="tr", ticket_id=ticket, tier=3, attempt=attempt)


def delta(ticket: str, text: str, *, ts: float = 0.0, attempt: int = 1, thought: bool = False) -> StreamDelta:
    return StreamDelta(prov=prov(ticket, attempt), stream_id=f"tier3:{ticket}", text=text, ts=ts or 1.0,
                       thought=thought)


def merging() -> EventQueue:
    q = EventQueue()
    q.merge_stream_deltas()
    return q


def test_a_storm_of_256_streams_is_taken_as_one_item_per_stream_with_every_piece_and_its_time() -> None:
    q = merging()
    for n in range(40):
        for w in range(256):
            q.post(delta(f"W{w:03d}", f"<{w}:{n}>", ts=1000.0 + n))
    out = q.drain(100_000)
    assert len(out) == 256, "one item per stream, not one per delta"
    for w, ev in enumerate(out):
        assert isinstance(ev, StreamDelta) and ev.stream_id == f"tier3:W{w:03d}"
        assert ev.text == "".join(f"<{w}:{n}>" for n in range(40))
        assert ev.made() == tuple(1000.0 + n for n in range(40)), "each piece keeps when it was made"
        assert ev.ts == 1000.0 and ev.seq == w + 1, "the first piece's seq and time"
    assert q.empty() and q.drain() == []


def test_nothing_joins_across_another_event_and_a_taken_run_is_closed() -> None:
    q = merging()
    q.post(delta("A", "a1"))
    q.post(delta("B", "b1"))
    q.post(delta("A", "a2"))
    q.post(StreamReset(prov=prov("A"), stream_id="tier3:A", reason="retry"))
    q.post(delta("A", "a3"))
    q.post(delta("A", "a4", attempt=2))  # another attempt: its own run
    q.post(delta("A", "t", thought=True))  # thoughts never mix with text
    first = q.drain(1)
    q.post(delta("A", "a5", attempt=2))  # the attempt-2 run is still queued: it joins
    rest = q.drain()
    q.post(delta("A", "a6"))  # the attempt-1 run was taken: a new item
    last = q.drain()
    shape = [(type(e).__name__, getattr(e, "text", ""), e.attempt) for e in first + rest + last]
    assert shape == [("StreamDelta", "a1a2", 1), ("StreamDelta", "b1", 1), ("StreamReset", "", 1),
                     ("StreamDelta", "a3", 1), ("StreamDelta", "a4a5", 2), ("StreamDelta", "t", 1),
                     ("StreamDelta", "a6", 1)]
    seqs = [e.seq for e in first + rest]
    assert seqs == sorted(seqs)


def test_replayed_deltas_stay_as_they_are_and_a_queue_that_does_not_merge_is_unchanged() -> None:
    q = merging()
    replayed = StreamDelta(prov=prov("A"), stream_id="tier3:A", text="old", replayed=True)
    q.post(replayed)
    q.post(replayed)
    assert [e.text for e in q.drain()] == ["old", "old"]
    plain = EventQueue()
    for text in ("x", "y", "z"):
        plain.post(delta("A", text))
    assert [e.text for e in plain.drain()] == ["x", "y", "z"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(
    st.builds(lambda t, x: delta(t, x), st.sampled_from(["A", "B", "C"]), st.text(alphabet="ab\n", max_size=5)),
    st.builds(lambda t: StreamReset(prov=prov(t), stream_id=f"tier3:{t}", reason="r"), st.sampled_from(["A", "B"])),
    st.just(Notice(message="n"))), max_size=40), st.lists(st.integers(1, 6), min_size=1, max_size=10))
def test_whatever_the_drain_sizes_each_stream_gets_the_same_text_between_the_same_events(
        posted: list[Event], sizes: list[int]) -> None:
    q = merging()
    taken: list[Event] = []
    for i, ev in enumerate(posted):
        q.post(ev)
        if i % 3 == 2:
            taken += q.drain(sizes[i % len(sizes)])
    taken += q.drain(10_000)

    def segments(events: list[Event]) -> list[object]:
        """Per stream, its text between two events that are not deltas (the order the panes see)."""
        out: list[object] = []
        texts: dict[str, str] = {}
        for ev in events:
            if isinstance(ev, StreamDelta):
                texts[ev.stream_id] = texts.get(ev.stream_id, "") + ev.text
            else:
                out += [sorted(texts.items()), ev.kind]
                texts = {}
        return [*out, sorted(texts.items())]
    assert segments(taken) == segments(posted)
    assert sum(len(e.made()) for e in taken if isinstance(e, StreamDelta)) == sum(
        isinstance(e, StreamDelta) for e in posted)


def test_producers_racing_the_consumer_lose_no_piece_and_keep_each_streams_order() -> None:
    q = merging()
    workers, per = 16, 400
    start = threading.Barrier(workers + 1)

    def produce(w: int) -> None:
        start.wait()
        for n in range(per):
            q.post(delta(f"W{w}", f"{n},", ts=float(n + 1)))

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    start.wait()
    got: dict[str, str] = {}
    stamps: dict[str, list[float]] = {}
    items = 0
    while any(t.is_alive() for t in threads) or not q.empty():
        for ev in q.drain(random.randint(1, 64)):
            assert isinstance(ev, StreamDelta)
            items += 1
            got[ev.stream_id] = got.get(ev.stream_id, "") + ev.text
            stamps.setdefault(ev.stream_id, []).extend(ev.made())
    for t in threads:
        t.join()
    for ev in q.drain():
        assert isinstance(ev, StreamDelta)
        got[ev.stream_id] = got.get(ev.stream_id, "") + ev.text
        stamps.setdefault(ev.stream_id, []).extend(ev.made())
    assert got == {f"tier3:W{w}": "".join(f"{n}," for n in range(per)) for w in range(workers)}
    assert all(s == [float(n + 1) for n in range(per)] for s in stamps.values())


# ---------------- the pane's text, redacted incrementally

SECRET = "AIza" + "S" * 35


def test_building_the_text_after_an_append_scans_the_carry_and_the_new_text_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    buf = StreamBuffer("tier3:A", 20_000)
    for n in range(2000):
        buf.append(f"line {n} of a long worker answer\n")
    assert len(buf.text) == 20_000
    scanned: list[int] = []
    real = redact.text
    monkeypatch.setattr(redact, "text", lambda s: scanned.append(len(s)) or real(s))
    for _ in range(50):
        buf.append("more text\n")
        assert buf.text.endswith("more text\n")
    assert max(scanned) <= redact.STREAM_CARRY + len("more text\n"), "a 20,000-character re-scan per append"
    assert len(buf.text) == 20_000 and buf.dropped


@pytest.mark.parametrize("cut", [1, 4, 20, 38])
def test_a_secret_split_across_two_appends_is_still_redacted_by_the_short_scan(
        cut: int, monkeypatch: pytest.MonkeyPatch) -> None:
    buf = StreamBuffer("tier3:A", 20_000)
    buf.append("x" * 30_000 + " key: ")
    assert buf.text.endswith(" key: ")  # built before the secret's second half arrives
    scanned: list[int] = []
    real = redact.text
    monkeypatch.setattr(redact, "text", lambda s: scanned.append(len(s)) or real(s))
    buf.append(SECRET[:cut])
    assert buf.text.endswith(" key: " + SECRET[:cut])
    buf.append(SECRET[cut:] + " done\n")
    assert SECRET not in buf.text and buf.text.endswith(f" key: {redact.REDACTED} done\n")
    assert max(scanned) <= redact.STREAM_CARRY + len(SECRET) + 6


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet="ab \n", max_size=900), max_size=40), st.integers(1000, 3000),
       st.lists(st.booleans(), max_size=40))
def test_the_text_is_the_tail_of_everything_appended_whenever_it_is_built(
        parts: list[str], limit: int, builds: list[bool]) -> None:
    buf = StreamBuffer("k", limit)
    whole = ""
    for i, part in enumerate(parts):
        buf.append(part)
        whole += part
        if i < len(builds) and builds[i]:
            assert buf.text == whole[-limit:]
    assert buf.text == whole[-limit:]
    assert buf.dropped == (len(whole) > limit)
    assert len(buf) == min(len(whole), limit)


def test_posting_stamps_a_private_copy_in_order_even_for_an_event_class_with_slots() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True, kw_only=True, slots=True)
    class Slotted(Event):
        note: str

    q = merging()
    original = Notice(message="n")
    stamped = [q.post(original), q.post(Slotted(note="s")), q.post(delta("A", "x"))]
    assert original.seq == 0 and [e.seq for e in stamped] == [1, 2, 3]
    assert [e.seq for e in q.drain()] == [1, 2, 3]
    assert isinstance(stamped[1], Slotted) and stamped[1].note == "s"
