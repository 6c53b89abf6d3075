"""Typed, immutable events and the one thread-safe queue that carries them to the GUI (or the CLI).

Any thread may `post`; one consumer `drain`s a bounded batch per frame. `seq` is assigned under a lock
at post time, so queue order and seq order are the same. Nothing here knows about threads' owners,
files or the GUI.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

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


def _with_seq(event: E, seq: int) -> E:
    """`replace(event, seq=seq)` at a fifth of the cost (no __init__ re-run: the fields are already checked);
    every event a run posts (~9 per ticket) is stamped here."""
    stamped = object.__new__(type(event))
    stamped.__dict__.update(event.__dict__)
    stamped.__dict__["seq"] = seq
    return stamped


class EventQueue:
    """The one channel from background threads to the GUI. `post` from any thread; one consumer drains."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._listeners: list[Any] = []

    def post(self, event: E) -> E:
        """Stamp the next seq on `event`, enqueue it and return the stamped copy."""
        with self._lock:
            stamped = _with_seq(event, next(self._seq))
            self._q.put(stamped)
        return stamped

    def get(self, timeout: float | None = None) -> Event | None:
        """Block for the next event (None on timeout)."""
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain(self, max_items: int = 512, budget_s: float | None = None) -> list[Event]:
        """Up to `max_items` events without blocking, stopping early once `budget_s` has passed."""
        out: list[Event] = []
        deadline = None if budget_s is None else time.perf_counter() + budget_s
        while len(out) < max_items:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                break
            if deadline is not None and time.perf_counter() >= deadline:
                break
        return out

    def empty(self) -> bool:
        return self._q.empty()

    def qsize(self) -> int:
        return self._q.qsize()
