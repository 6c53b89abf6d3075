"""What Conductor keeps in Redis when Tier 3 runs on remote workers: key names and the typed records a monitor reads.

This module is the contract between the dispatcher/workers (conductor/distributed/) and anything that watches them
(the GUI's monitoring view, bench/distributed.py). It only names keys and parses values; it opens no connection and
imports neither redis nor dramatiq, so a monitor can import it cheaply. Changes are additive only: a field may be
added with a default, never renamed or removed.

Layout, all under one namespace prefix `ns` (default "conductor"; see `Keys`):

  {ns}:desktop                  string  DesktopInfo JSON: the desktop that owns this namespace (workers check it)
  {ns}:workers                  zset    worker name → last heartbeat (unix seconds)
  {ns}:worker:{name}            string  WorkerInfo JSON, refreshed every beat; expires after `offline_after_s` * 4
  {ns}:leases                   zset    request id → lease expiry (unix seconds); an entry may outlive its lease key
  {ns}:lease:{request id}       string  Lease JSON, PX = 3 beats; gone (or expired in the zset) = the worker is silent
                                        (it names the dispatch holding it; an older dispatch never takes it back)
  {ns}:dlq                      hash    entry id → DeadLetter JSON (the dead-letter queue)
  {ns}:events                   stream  worker → desktop events (field "e": one JSON event); group "desktop"
  {ns}:dramatiq:{queue}         list    Dramatiq's ready queue for `queue` (message ids); LLEN = queue depth
  {ns}:dramatiq:{queue}.msgs    hash    Dramatiq's message bodies for `queue`

Dead letters are retried or discarded by the desktop (it owns enqueueing): a monitor pushes a `DlqAction` JSON onto
`{ns}:dlq:actions` (a list) and the desktop's dispatcher applies it — retry re-enqueues the entry's payload as a
new message on its queue with a fresh delivery count and removes the entry; discard removes the entry. Both are
idempotent (an unknown entry id is ignored). `dlq_action_json` builds the value to LPUSH.
"""

from __future__ import annotations

import re
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
"""Bumped only if a key changes meaning (never for added fields)."""

DEFAULT_NAMESPACE = "conductor"
ATTEMPTS_QUEUE = "conductor-attempts"
"""Dramatiq queue of Tier 3 attempt (and resume) messages."""
EVENTS_GROUP = "desktop"
"""The consumer group the desktop reads `{ns}:events` with."""
BEAT_INTERVAL_S = 10.0
"""Default seconds between worker heartbeats (and lease refreshes); tests use far less."""
MISSED_BEATS_OFFLINE = 3
"""A worker (or an attempt's lease) silent for this many beats is offline."""

_NAMESPACE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_QUEUE = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]{0,99}$")


def valid_namespace(ns: str) -> str:
    """`ns` unchanged, or ValueError naming what is wrong (it becomes part of every key)."""
    if not _NAMESPACE.match(ns):
        raise ValueError(f"namespace {ns!r}: use 1-64 letters, digits, '_', '.' or '-'")
    return ns


def valid_queue(name: str) -> str:
    if not _QUEUE.match(name):
        raise ValueError(f"queue name {name!r}: start with a letter or '_', then letters, digits, '.', '_' or '-'")
    return name


class Keys:
    """Every Redis key name under one namespace."""

    def __init__(self, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.ns = valid_namespace(namespace)

    @property
    def desktop(self) -> str:
        return f"{self.ns}:desktop"

    @property
    def workers(self) -> str:
        return f"{self.ns}:workers"

    def worker(self, name: str) -> str:
        return f"{self.ns}:worker:{name}"

    @property
    def leases(self) -> str:
        return f"{self.ns}:leases"

    def lease(self, request_id: str) -> str:
        return f"{self.ns}:lease:{request_id}"

    @property
    def dlq(self) -> str:
        return f"{self.ns}:dlq"

    @property
    def dlq_actions(self) -> str:
        return f"{self.ns}:dlq:actions"

    @property
    def events(self) -> str:
        return f"{self.ns}:events"

    @property
    def dramatiq_namespace(self) -> str:
        """The `namespace` given to Dramatiq's RedisBroker: its keys are `{this}:{queue}`."""
        return f"{self.ns}:dramatiq"

    def queue(self, queue: str) -> str:
        """Dramatiq's ready list for `queue`: LLEN is the number of messages waiting."""
        return f"{self.dramatiq_namespace}:{valid_queue(queue)}"

    def queue_bodies(self, queue: str) -> str:
        return f"{self.dramatiq_namespace}:{valid_queue(queue)}.msgs"

    # -- keys of the bus guarantees (not for monitors, but named here so nothing else invents them) --

    def result(self, request_id: str, dispatch: int) -> str:
        """SET NX by the worker that finished `dispatch` of the request: a duplicate never reports twice."""
        return f"{self.ns}:result:{request_id}:{dispatch}"

    def claim(self, request_id: str, dispatch: int) -> str:
        """SET NX by the worker that starts `dispatch` of the request: a duplicated message never runs twice."""
        return f"{self.ns}:claim:{request_id}:{dispatch}"

    def dispatch(self, request_id: str) -> str:
        """The request's current dispatch number (INCR by the desktop on every (re)assignment)."""
        return f"{self.ns}:dispatch:{request_id}"

    def deliveries(self, request_id: str) -> str:
        """Our own delivery counter (INCR per delivery; a SIGKILL redelivery is not a Dramatiq retry)."""
        return f"{self.ns}:deliveries:{request_id}"

    def approval(self, call_id: str) -> str:
        """The desktop LPUSHes the decision (ApprovalAnswer JSON); the waiting worker BLPOPs it."""
        return f"{self.ns}:approval:{call_id}"

    def cancel(self, request_id: str) -> str:
        """Set by the desktop when the person cancels a running remote attempt; its worker sees it at the next beat."""
        return f"{self.ns}:cancel:{request_id}"

    def parked(self, request_id: str) -> str:
        """A parked attempt's saved state (ParkedAttempt JSON), until its resume message runs."""
        return f"{self.ns}:parked:{request_id}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class DesktopInfo(_Model):
    """Written by the desktop when it opens the bus; a worker refuses to start without it (wrong namespace or
    broker), and drops a message whose `bus_id` differs (sent through another broker)."""

    namespace: str
    bus_id: str
    """Random id minted once per namespace (SET NX); every message carries it."""
    host: str
    pid: int
    started: float
    schema_version: int = SCHEMA_VERSION


class WorkerInfo(_Model):
    name: str
    host: str
    pid: int
    threads: int
    started: float
    """Unix seconds."""
    last_beat: float
    beat_interval_s: float = BEAT_INTERVAL_S
    current: list[str] = Field(default_factory=list)
    """Request ids of the attempts it is running now."""
    done: int = 0
    """Attempts it has finished since it started (throughput = done / (last_beat - started))."""
    stopping: bool = False

    def heartbeat_age(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.last_beat)

    def offline(self, now: float | None = None) -> bool:
        """Silent for three beats: offline (its attempts are reassigned by the desktop)."""
        return self.heartbeat_age(now) > MISSED_BEATS_OFFLINE * self.beat_interval_s


class Lease(_Model):
    request_id: str
    """'{track id}/{ticket id}/{attempt}'."""
    dispatch: int
    """Which (re)assignment of the request holds it; a late result of an older dispatch is rejected."""
    worker: str
    acquired: float
    renewed: float
    ttl_s: float


class DeadLetter(_Model):
    entry_id: str
    queue: str
    reason: str
    """Why it is here, for a person: 'malformed message: …', 'delivered 5 times (max 4): poison attempt', …"""
    payload: str
    """The message body exactly as received (what a retry re-enqueues)."""
    deliveries: int
    time: float
    message_id: str = ""
    request_id: str = ""
    """Empty when the message was too malformed to carry one."""
    trace_id: str = ""
    worker: str = ""


class DlqAction(_Model):
    action: Literal["retry", "discard"]
    entry_id: str


def dlq_action_json(action: Literal["retry", "discard"], entry_id: str) -> str:
    """The value a monitor LPUSHes onto `Keys.dlq_actions`."""
    return DlqAction(action=action, entry_id=entry_id).model_dump_json()


def request_id(track_id: str, ticket_id: str, attempt: int) -> str:
    return f"{track_id}/{ticket_id}/{attempt}"


def parse_request_id(rid: str) -> tuple[str, str, int]:
    """(track id, ticket id, attempt); ValueError naming the id when it is not one."""
    parts = rid.split("/")
    if len(parts) != 3 or not parts[0] or not parts[1] or not parts[2].isdigit():
        raise ValueError(f"request id {rid!r}: expected 'track/ticket/attempt'")
    return parts[0], parts[1], int(parts[2])
