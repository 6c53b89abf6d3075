"""Typed, immutable events and the one thread-safe queue that carries them to the GUI (or the CLI).

Any thread may `post`; one consumer `drain`s a bounded batch per frame. `seq` is assigned under a lock
at post time, so queue order and seq order are the same. Nothing here knows about threads' owners,
files or the GUI.
"""

from __future__ import annotations

import copy
import itertools
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from conductor.approval_types import ApprovalRequest, DecidedBy
from conductor.model import Track, Usage
from conductor.provenance import Provenance as Provenance  # re-exported: most consumers take it from here
from conductor.provenance import ticket_stream_id as ticket_stream_id
from conductor.records import Record

if TYPE_CHECKING:  # only named in an annotation: the monitor's types load when a broker is configured
    from conductor.distributed.monitor import ClusterStatus


@dataclass(frozen=True, kw_only=True)
class Event:
    kind: ClassVar[str] = "event"
    seq: int = 0
    ts: float = field(default_factory=time.time)
    prov: Provenance = field(default_factory=Provenance)

    # Flat accessors, so consumers need not know about Provenance.
    @property
    def trace_id(self) -> str:
        return self.prov.trace_id

    @property
    def track_id(self) -> str | None:
        return self.prov.track_id

    @property
    def ticket_id(self) -> str | None:
        return self.prov.ticket_id

    @property
    def tier(self) -> int | None:
        return self.prov.tier

    @property
    def attempt(self) -> int:
        return self.prov.attempt


@dataclass(frozen=True, kw_only=True)
class StreamDelta(Event):
    """A piece of streamed model text for the pane `stream_id`."""

    kind: ClassVar[str] = "stream_delta"
    stream_id: str
    text: str
    thought: bool = False
    replayed: bool = False
    """True when re-shown from the journal on resume (not a new model call)."""
    stamps: tuple[float, ...] = ()
    """When several deltas were merged into this one (`EventQueue.merge_stream_deltas`): when each was made (the
    first is `ts`), so a consumer can still tell how long every piece waited. Empty for a single delta."""

    def made(self) -> tuple[float, ...]:
        """When each piece of this delta was made."""
        return self.stamps or (self.ts,)


@dataclass(frozen=True, kw_only=True)
class StreamReset(Event):
    """The partial output of `stream_id` is discarded (a retry after a broken stream follows)."""

    kind: ClassVar[str] = "stream_reset"
    stream_id: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class UsageRecorded(Event):
    """One model call's usage, recorded once in the ledger. `usage.cost_usd` is None when unknown."""

    kind: ClassVar[str] = "usage_recorded"
    record_id: str
    usage: Usage


@dataclass(frozen=True, kw_only=True)
class RecordApplied(Event):
    """A record (conductor.records) the owner of a track or an epic has applied and journalled. Consumers apply
    the same record with the same `records.apply`, so what they show is what the journal says."""

    kind: ClassVar[str] = "record_applied"
    record: Record
    journal_seq: int = 0
    """The journal line the record was written as (0: not journalled); a consumer that applied every record up
    to it holds exactly the state a replay of the journal up to it gives."""


@dataclass(frozen=True, kw_only=True)
class TrackLoaded(Event):
    """A track's full state (tickets included), sent when it is created or loaded: a private copy the receiver
    owns. Later changes arrive as `RecordApplied`."""

    kind: ClassVar[str] = "track_loaded"
    track: Track
    interrupted: tuple[str, ...] = ()
    """Tickets that were in flight when the app stopped (they continue on resume)."""
    will_ask_again: int = 0
    """Approvals that were pending when the app stopped and are asked again when the track resumes."""


@dataclass(frozen=True, kw_only=True)
class ApprovalRequested(Event):
    kind: ClassVar[str] = "approval_requested"
    request: ApprovalRequest


@dataclass(frozen=True, kw_only=True)
class ApprovalResolved(Event):
    kind: ClassVar[str] = "approval_resolved"
    request_id: str
    approval_kind: str
    approved: bool
    edited: bool = False
    reason: str | None = None
    by: DecidedBy = DecidedBy.PERSON
    policy: str | None = None
    """Which policy decided, when `by` is POLICY."""


@dataclass(frozen=True, kw_only=True)
class ToolCalled(Event):
    kind: ClassVar[str] = "tool_called"
    call_id: str
    name: str
    args: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class ToolResulted(Event):
    kind: ClassVar[str] = "tool_resulted"
    call_id: str
    name: str
    ok: bool
    summary: str
    replayed: bool = False


@dataclass(frozen=True, kw_only=True)
class ErrorRaised(Event):
    """Something went wrong that the user should see. `fatal` means the run (or plan) stopped."""

    kind: ClassVar[str] = "error"
    message: str
    error_type: str
    fatal: bool = False


@dataclass(frozen=True, kw_only=True)
class Notice(Event):
    """Informational line for the log (plan saved, run resumed, torn journal line dropped, ...)."""

    kind: ClassVar[str] = "notice"
    message: str
    level: str = "info"


@dataclass(frozen=True, kw_only=True)
class RunFinished(Event):
    """An engine run for a track ended (all terminal, stalled, or cancelled)."""

    kind: ClassVar[str] = "run_finished"
    status: str
    counts: dict[str, int]


@dataclass(frozen=True, kw_only=True)
class ClusterPolled(Event):
    """A snapshot of the remote workers (conductor.distributed.monitor), or why it could not be read."""

    kind: ClassVar[str] = "cluster_polled"
    status: ClusterStatus | None
    error: str | None = None
    """Set when the poll failed (`status` is then None and the last snapshot shown is stale)."""


E = TypeVar("E", bound=Event)


class _DeltaRun:
    """One stream's deltas waiting in the queue as ONE item: later deltas of the stream join it (on the
    producer's thread) until the consumer takes it or any other kind of event is posted."""

    __slots__ = ("first", "stamps", "texts")

    def __init__(self, first: StreamDelta) -> None:
        self.first = first
        self.texts = [first.text]
        self.stamps = [first.ts]

    def key(self) -> tuple[object, ...]:
        return _run_key(self.first)

    def event(self) -> StreamDelta:
        if len(self.texts) == 1:
            return self.first
        merged = _private_copy(self.first)  # not dataclasses.replace: 256 of these a frame, on the GUI thread
        object.__setattr__(merged, "text", "".join(self.texts))
        object.__setattr__(merged, "stamps", tuple(self.stamps))
        return merged


def _private_copy(event: E) -> E:
    """A shallow copy of a (frozen) event, several times cheaper than `dataclasses.replace`."""
    cls = type(event)
    slotted = _SLOTTED.get(cls)
    if slotted is None:
        slotted = _SLOTTED[cls] = any("__slots__" in vars(c) for c in cls.__mro__)
    if slotted:  # some fields live outside __dict__: the general way
        return copy.copy(event)
    twin = object.__new__(cls)
    twin.__dict__.update(event.__dict__)
    return twin


_SLOTTED: dict[type, bool] = {}


def _run_key(ev: StreamDelta) -> tuple[object, ...]:
    return (ev.stream_id, ev.prov, ev.thought)


class EventQueue:
    """The one channel from background threads to the GUI. `post` from any thread; one consumer drains.

    With `merge_stream_deltas()` (the GUI turns it on) a stream's deltas are joined while they wait: a delta
    posted while an earlier one of the same stream (same provenance) is still queued is appended to it, on the
    posting thread. The consumer then takes at most one item per busy stream, however many deltas arrived:
    with 256 workers at 100 deltas/s its cost per frame follows the number of streams, not of deltas. Any
    other event closes every open run, so a reset, a status change or an approval still lands exactly between
    the text before it and the text after it; the merged delta keeps the first one's seq and ts, and the
    `stamps` of all."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[Event | _DeltaRun] = queue.SimpleQueue()
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._listeners: list[Any] = []
        self._merge = False
        self._open: dict[tuple[object, ...], _DeltaRun] = {}
        """Runs still in the queue that a delta of their stream may join."""

    @property
    def merging(self) -> bool:
        return self._merge

    def merge_stream_deltas(self, on: bool = True) -> None:
        """Join each stream's waiting deltas (see the class doc). For a consumer that shows text, not one that
        counts deltas."""
        with self._lock:
            self._merge = on
            self._open.clear()

    def post(self, event: E) -> E:
        """Stamp the next seq on `event`, enqueue it and return the stamped copy."""
        stamped = _private_copy(event)  # made outside the lock: 256 posting threads wait on it as little as can be
        with self._lock:
            object.__setattr__(stamped, "seq", next(self._seq))  # nobody else holds the copy yet
            if self._merge and isinstance(stamped, StreamDelta) and not stamped.replayed:
                key = _run_key(stamped)
                run = self._open.get(key)
                if run is not None:
                    run.texts.append(stamped.text)
                    run.stamps.append(stamped.ts)
                else:
                    self._open[key] = run = _DeltaRun(stamped)
                    self._q.put(run)
            else:
                self._open.clear()  # nothing joins a run across another event: order is kept
                self._q.put(stamped)
        return stamped

    def _taken(self, items: list[Event | _DeltaRun]) -> list[Event]:
        """Close the runs among `items` (no delta joins them any more) and turn them into deltas."""
        if not any(type(i) is _DeltaRun for i in items):
            return cast(list[Event], items)  # no run among them: all are events
        out: list[Event] = []
        with self._lock:  # a producer appends under this lock: a run's text is complete once closed here
            for item in items:
                if type(item) is _DeltaRun:
                    key = item.key()
                    if self._open.get(key) is item:
                        del self._open[key]
                    out.append(item.event())
                else:
                    assert isinstance(item, Event)
                    out.append(item)
        return out

    def get(self, timeout: float | None = None) -> Event | None:
        """Block for the next event (None on timeout)."""
        try:
            item = self._q.get(timeout=timeout)
        except queue.Empty:
            return None
        return self._taken([item])[0]

    def drain(self, max_items: int = 512, budget_s: float | None = None) -> list[Event]:
        """Up to `max_items` events without blocking, stopping early once `budget_s` has passed."""
        out: list[Event | _DeltaRun] = []
        deadline = None if budget_s is None else time.perf_counter() + budget_s
        while len(out) < max_items:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                break
            if deadline is not None and time.perf_counter() >= deadline:
                break
        return self._taken(out)

    def empty(self) -> bool:
        return self._q.empty()

    def qsize(self) -> int:
        return self._q.qsize()
