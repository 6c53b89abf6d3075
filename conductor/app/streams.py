"""The bounded per-pane stream buffers: one tail per stream plus one aggregate pane per tier."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from conductor import redact
from conductor.events import Event, StreamDelta
from conductor.stream_notes import attempt_header, last_attempt

AGGREGATES = {2: "tier2", 3: "tier3:all", 4: "tier4"}
"""The pane that gathers every stream of a tier."""


class StreamBuffer:
    """The tail of one stream: keeps the last `limit` characters (the full text is on disk).

    Appends are O(1). The text a pane shows is redacted incrementally: what was redacted once stays, except its
    last `redact.STREAM_CARRY` characters, which are redacted again together with the text appended after
    them, so a secret split across two deltas is still caught; building the text after an append costs the
    carry plus the new text, not the whole tail (256 busy panes cannot each re-scan 20,000 characters a frame).
    Memory stays flat however long the stream runs. `version` bumps on every change so a view pushes text only
    when it changed.
    """

    def __init__(self, key: str, limit: int) -> None:
        self.key = key
        self.limit = limit
        self.version = 0
        self.dropped = False
        """True once older text was dropped: the pane shows a tail."""
        self._settled = ""
        """Redacted, final: never scanned again."""
        self._carry = ""
        """Redacted once; scanned again with what follows it."""
        self._parts: list[str] = []
        """Raw text appended since the text was last built."""
        self._pending = 0
        self._len = 0
        self._cache: str | None = ""

    def append(self, text: str) -> None:
        if not text:
            return
        self._parts.append(text)
        self._pending += len(text)
        self._len += len(text)
        self._cache = None
        self.version += 1
        if self._pending > self.limit * 1.25 + redact.STREAM_CARRY:  # nobody asked for the text for long: cut
            joined = "".join(self._parts)[-(self.limit + redact.STREAM_CARRY):]
            # the raw cut may split a secret: it lies in the first STREAM_CARRY characters, never shown
            self._parts, self._pending, self._settled, self._carry = [joined], len(joined), "", ""
            self.dropped = True

    def replace(self, text: str, is_tail: bool) -> None:
        self._settled, self._carry, self._parts, self._pending, self._len, self._cache = "", "", [], 0, 0, ""
        self.dropped = is_tail
        self.append(text)
        self.version += 1

    @property
    def text(self) -> str:
        if self._cache is None:
            carry = redact.text(self._carry + "".join(self._parts))
            self._parts, self._pending = [], 0
            settled = self._settled
            if len(carry) > redact.STREAM_CARRY:
                settled, carry = settled + carry[:-redact.STREAM_CARRY], carry[-redact.STREAM_CARRY:]
            over = len(settled) + len(carry) - self.limit
            if over > 0:
                settled, self.dropped = settled[min(over, len(settled)):], True
            self._settled, self._carry = settled, carry
            self._cache = (settled + carry)[-self.limit:]
        return self._cache

    def __len__(self) -> int:
        return min(self._len, self.limit)


class Streams:
    """Every pane's buffer. Per-stream buffers (`tier3:T2@track`) plus one aggregate per tier.

    Aggregates of concurrent streams (Tier 3 "all", Tier 4) are line-based: each complete line is prefixed
    with its ticket id, so interleaved workers stay readable. Tier 2 (one track at a time) gets a header per
    track instead.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffers: dict[str, StreamBuffer] = {}
        self._partial: dict[str, str] = {}
        self._last_source: dict[str, str] = {}
        self._attempt: dict[str, int] = {}
        """The attempt whose header each pane shows last (live or read back from disk)."""

    def get(self, key: str) -> StreamBuffer:
        buf = self.buffers.get(key)
        if buf is None:
            buf = self.buffers[key] = StreamBuffer(key, self.limit)
        return buf

    def text(self, key: str) -> str:
        buf = self.buffers.get(key)
        return buf.text if buf is not None else ""

    def add(self, key: str, tier: int | None, label: str, text: str) -> None:
        """Append to the stream's own buffer and to its tier's aggregate."""
        self.get(key).append(text)
        agg = AGGREGATES.get(tier or 0)
        if agg is None or agg == key:
            return
        if tier == 2:
            self._add_with_header(agg, key, label, text)
        else:
            self._add_lines(agg, key, label, text)

    def _add_with_header(self, agg: str, source: str, label: str, text: str) -> None:
        buf = self.get(agg)
        if self._last_source.get(agg) != source:
            self._last_source[agg] = source
            buf.append(("\n\n" if len(buf) else "") + f"── {label} ──\n")
        buf.append(text)

    def _add_lines(self, agg: str, source: str, label: str, text: str) -> None:
        pending = self._partial.get(source, "") + text
        *complete, rest = pending.split("\n")
        self._partial[source] = rest
        if complete:
            self.get(agg).append("".join(f"[{label}] {line}\n" for line in complete))

    def flush(self, key: str, tier: int | None, label: str) -> None:
        """A call ended: push its unfinished last line to the aggregate."""
        rest = self._partial.pop(key, "")
        agg = AGGREGATES.get(tier or 0)
        if rest and agg is not None and tier != 2:
            self.get(agg).append(f"[{label}] {rest}\n")

    def note(self, key: str, tier: int | None, label: str, text: str) -> None:
        """A line from the app itself (a retry notice) in the stream and its aggregate."""
        self.flush(key, tier, label)
        self.add(key, tier, label, f"\n{text}\n")

    def restore(self, key: str, text: str, is_tail: bool) -> None:
        """A pane filled from its output file: remembers the attempt its last header names, so the live header
        of that attempt is not shown twice and the next one is."""
        self.get(key).replace(text, is_tail)
        self._attempt[key] = max(self._attempt.get(key, 0), last_attempt(text))

    def begin_attempt(self, key: str, tier: int | None, label: str, attempt: int, ts: float) -> None:
        """Show the attempt separator the output file has, once per attempt, before that attempt's first text."""
        if attempt <= 0 or attempt <= self._attempt.get(key, 0):
            return
        self._attempt[key] = attempt
        header = attempt_header(attempt, ts)
        self.flush(key, tier, label)
        self.get(key).append(header)  # byte for byte what the output file holds
        agg = AGGREGATES.get(tier or 0)
        if agg is None or agg == key:
            return
        if tier == 2:
            self._add_with_header(agg, key, label, header)
        else:
            self.get(agg).append(f"[{label}] {header.strip()}\n")


def coalesce(batch: Sequence[Event]) -> list[Event]:
    """The batch with each stream's deltas joined into one (in arrival order), so a frame applies one delta per
    stream however many arrived: 256 workers at 100 deltas/s cost 256 appends a frame, not 25,600 a second.

    Deltas are joined only across other streams' deltas: any other event first applies the deltas before it,
    so a reset, a status change or an approval still lands exactly between the text before and after it.
    The merged delta keeps the first one's seq and timestamp, and the `stamps` of all. Each stream's pane gets
    exactly the same text; in a tier's "all" pane, lines of different workers that arrived within one frame come
    grouped by worker (each worker's lines in order) instead of interleaved line by line."""
    out: list[Event] = []
    pending: dict[tuple[object, ...], list[StreamDelta]] = {}

    def flush() -> None:
        for run in pending.values():
            first = run[0]
            out.append(first if len(run) == 1 else dataclasses.replace(
                first, text="".join(d.text for d in run), stamps=tuple(t for d in run for t in d.made())))
        pending.clear()

    for ev in batch:
        if type(ev) is StreamDelta and not ev.replayed:  # a replayed turn is shown whole or not at all: as is
            pending.setdefault((ev.stream_id, ev.prov, ev.thought), []).append(ev)
        else:
            flush()
            out.append(ev)
    flush()
    return out
