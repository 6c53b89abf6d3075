"""Read the cluster's state out of Redis for the monitoring view and the bench: one typed `ClusterStatus` snapshot.

A pure reader of the keys `conductor.distributed.schema` names (worker registry and heartbeats, leases, the
dead-letter queue, Dramatiq's queues, the desktop record), plus the two dead-letter commands a person may give
(retry, discard), which are sent the way the schema says: a `DlqAction` pushed for the desktop's dispatcher.

Nothing here imports Dear PyGui or starts a thread (`monitor_poller` polls this on a background thread), and
`redis` is imported only for type checking: the caller hands in a client.

The registry is written by other machines, so every entry is read as hostile: an entry that is not JSON, fails
validation, names another worker, has a heartbeat in the future or a key of the wrong type becomes a
`DamagedEntry` row saying what is wrong with which key, and the rest of the snapshot is still read. Counts are
capped (a registry of a million names must not stall the poller); what was left out is counted, never hidden.
"""

from __future__ import annotations

import json
import math
import time
import unicodedata
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, assert_never

from pydantic import ValidationError

from conductor.distributed.schema import (
    ATTEMPTS_QUEUE,
    DeadLetter,
    DesktopInfo,
    Keys,
    WorkerInfo,
    dlq_action_json,
)

if TYPE_CHECKING:
    import redis

MAX_WORKERS = 500
"""Workers read per snapshot (the rest are counted in `ClusterStatus.workers_left_out`)."""
MAX_DEAD_LETTERS = 200
MAX_LEASES = 2000
MAX_TEXT = 200
"""Characters of any one string from Redis kept for display."""
FUTURE_SLACK_S = 300.0
"""A heartbeat further in the future than this (clock skew aside) is damaged, not 'online forever'."""
THROUGHPUT_WINDOW_S = 300.0
"""Throughput is measured over the last five minutes of snapshots."""
MIN_THROUGHPUT_SPAN_S = 2.0
"""Below this much time between the oldest and newest sample there is no figure yet (None, never a 0)."""


class MonitorError(Exception):
    """A monitor command that could not be done (the message says why, for a person)."""


# ---------------------------------------------------------------- the snapshot


@dataclass(frozen=True)
class WorkerStatus:
    name: str
    last_beat: float
    """Unix seconds of its latest heartbeat (from its registry entry, else from the heartbeat set)."""
    heartbeat_age_s: float
    online: bool
    """False once it missed three beats (`schema.MISSED_BEATS_OFFLINE`), or when its entry expired."""
    info: WorkerInfo | None
    """None when its registry entry expired (it was silent for long): only the heartbeat set still names it."""

    @property
    def host(self) -> str | None:
        return self.info.host if self.info is not None else None

    @property
    def threads(self) -> int | None:
        return self.info.threads if self.info is not None else None

    @property
    def current(self) -> tuple[str, ...]:
        return tuple(self.info.current) if self.info is not None else ()


@dataclass(frozen=True)
class DamagedEntry:
    """An entry that could not be read: which key (and entry), and what is wrong with it."""

    key: str
    entry: str
    problem: str
    section: Literal["workers", "dead_letters", "leases", "queues", "desktop"]


@dataclass(frozen=True)
class QueueStatus:
    name: str
    ready: int
    """Messages waiting to be taken (LLEN of Dramatiq's list)."""
    in_flight: int
    """Taken by a worker process, not yet acknowledged (bodies kept minus the ready ones)."""
    delayed: int
    """Waiting in Dramatiq's delay queue (retries with backoff, delayed sends)."""
    dramatiq_dead: int
    """In Dramatiq's own dead-letter set (`.XQ`: retries exhausted), apart from Conductor's dead-letter queue."""


@dataclass(frozen=True)
class Throughput:
    per_minute: float | None
    """Attempts finished per minute over `window_s`; None until two snapshots far enough apart were seen."""
    window_s: float
    finished: int
    """Attempts finished by the workers seen now, since each started (their own counters)."""


@dataclass(frozen=True)
class LeaseStatus:
    request_id: str
    expires: float
    expired: bool


@dataclass(frozen=True)
class ClusterStatus:
    namespace: str
    taken_at: float
    poll_ms: float
    desktop: DesktopInfo | None
    workers: tuple[WorkerStatus, ...]
    queues: tuple[QueueStatus, ...]
    throughput: Throughput
    dead_letters: tuple[DeadLetter, ...]
    """Newest first."""
    damaged: tuple[DamagedEntry, ...]
    leases: tuple[LeaseStatus, ...] = ()
    workers_left_out: int = 0
    dead_letters_left_out: int = 0
    leases_left_out: int = 0

    @property
    def online(self) -> tuple[WorkerStatus, ...]:
        return tuple(w for w in self.workers if w.online)

    @property
    def offline(self) -> tuple[WorkerStatus, ...]:
        return tuple(w for w in self.workers if not w.online)

    def damaged_in(self, section: str) -> tuple[DamagedEntry, ...]:
        return tuple(d for d in self.damaged if d.section == section)


# ---------------------------------------------------------------- commands


@dataclass(frozen=True)
class RetryDeadLetter:
    """Enqueue the entry's message again (fresh delivery count) and drop the entry."""

    entry_id: str


@dataclass(frozen=True)
class DiscardDeadLetter:
    """Drop the entry for good."""

    entry_id: str


DlqCommand = RetryDeadLetter | DiscardDeadLetter


def send_dlq_command(client: redis.Redis, namespace: str, command: DlqCommand) -> str:
    """Hand a retry or discard to the desktop's dispatcher (schema: a `DlqAction` on `{ns}:dlq:actions`).
    Returns what was done, for a person; raises MonitorError when the entry is not in the queue any more or
    cannot be retried, or redis.RedisError when Redis cannot be reached.

    An entry that is not a readable DeadLetter has no message to re-enqueue and no request a dispatcher could
    finish: discarding it removes it here (HDEL), and retrying it is refused with the reason."""
    keys = Keys(namespace)
    match command:
        case RetryDeadLetter(entry_id=entry_id):
            action: Literal["retry", "discard"] = "retry"
        case DiscardDeadLetter(entry_id=entry_id):
            action = "discard"
        case _:
            assert_never(command)
    raw = client.hget(keys.dlq, entry_id)
    if raw is None:
        raise MonitorError(f"dead letter {clean(entry_id)!r} is no longer in {keys.dlq} (already retried or "
                           "discarded?)")
    problem = _dead_letter_problem(entry_id, raw)[1]
    if problem is not None:
        if action == "retry":
            raise MonitorError(f"dead letter {clean(entry_id)!r} cannot be retried: it is unreadable ({problem}); "
                               "discard it")
        client.hdel(keys.dlq, entry_id)
        return f"unreadable dead letter {clean(entry_id)} removed"
    client.lpush(keys.dlq_actions, dlq_action_json(action, entry_id))
    return f"{action} of dead letter {clean(entry_id)} sent to the desktop's dispatcher"


def _dead_letter_problem(entry: str, raw: object) -> tuple[DeadLetter | None, str | None]:
    """(the entry, None) or (None, what is wrong with it)."""
    doc, problem = _parse_json(raw)
    if problem is not None:
        return None, problem
    try:
        dl = DeadLetter.model_validate(doc)
    except ValidationError as exc:
        return None, _validation_text(exc)
    if dl.entry_id != entry:
        return None, f"entry names another id ({clean(dl.entry_id, 60)!r})"
    if not math.isfinite(dl.time):
        return None, f"time {dl.time!r} is not a time"
    return dl, None


# ---------------------------------------------------------------- throughput across snapshots


@dataclass
class ThroughputMeter:
    """Attempts finished per minute, from the workers' own `done` counters across snapshots. A worker is known
    by (name, started), so one that restarts counts from zero again instead of making a negative step."""

    window_s: float = THROUGHPUT_WINDOW_S
    _samples: deque[tuple[float, dict[tuple[str, float], int]]] = field(default_factory=deque)

    def add(self, now: float, workers: Sequence[WorkerStatus]) -> Throughput:
        counts = {(w.name, w.info.started): w.info.done for w in workers if w.info is not None}
        self._samples.append((now, counts))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()
        first_t = self._samples[0][0]
        span = now - first_t
        finished = sum(counts.values())
        if span < MIN_THROUGHPUT_SPAN_S:
            return Throughput(None, span, finished)
        delta = self._finished_between()
        return Throughput(delta * 60.0 / span, span, finished)

    def _finished_between(self) -> int:
        """Attempts finished within the window: each worker's own counter difference. A worker that started inside
        the window counts from zero (a restart included); one that was running before it was first seen counts
        from that sighting; one gone since counts what it did up to its last sighting."""
        window_start = self._samples[0][0]
        seen_first: dict[tuple[str, float], int] = {}
        seen_last: dict[tuple[str, float], int] = {}
        for _, counts in self._samples:
            for k, v in counts.items():
                seen_first.setdefault(k, 0 if k[1] >= window_start else v)
                seen_last[k] = v
        return sum(max(0, seen_last[k] - seen_first[k]) for k in seen_last)


# ---------------------------------------------------------------- reading


def clean(value: object, limit: int = MAX_TEXT) -> str:
    """A string from Redis made safe to show: decoded, control characters replaced, at most `limit` chars."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = str(value)
    text = "".join("�" if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(value: object) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _error_text(exc: BaseException) -> str:
    return clean(f"{type(exc).__name__}: {exc}", 300)


def _int(value: object, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"{what}: expected a number from Redis, got {clean(repr(value), 80)}")


def _validation_text(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "(top level)"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return clean(f"field {where}: {first.get('msg', 'invalid')}{more}", 300)


def _parse_json(raw: object) -> tuple[object | None, str | None]:
    """(document, None) or (None, problem)."""
    try:
        return json.loads(_text(raw)), None
    except (json.JSONDecodeError, RecursionError) as exc:
        return None, f"not JSON ({clean(str(exc), 120)})"


class ClusterReader:
    """Reads snapshots of one namespace. Keeps the throughput meter between snapshots (one reader per poller)."""

    def __init__(self, client: redis.Redis, namespace: str, queues: Sequence[str] = (ATTEMPTS_QUEUE,)) -> None:
        self.client = client
        self.keys = Keys(namespace)
        self.queues = tuple(queues)
        for q in self.queues:
            self.keys.queue(q)  # ValueError naming a bad queue name now, not at the first poll
        self.meter = ThroughputMeter()

    def read(self, now: float | None = None) -> ClusterStatus:
        """One snapshot (three round trips). Raises redis.RedisError / OSError when Redis cannot be read at all;
        anything wrong with one entry is a `DamagedEntry` instead."""
        t0 = time.perf_counter()
        now = time.time() if now is None else now
        k = self.keys
        damaged: list[DamagedEntry] = []

        pipe = self.client.pipeline(transaction=False)
        pipe.zcard(k.workers)
        pipe.zrevrange(k.workers, 0, MAX_WORKERS - 1, withscores=True)
        pipe.hlen(k.dlq)
        pipe.hscan(k.dlq, 0, count=MAX_DEAD_LETTERS)
        pipe.zcard(k.leases)
        pipe.zrange(k.leases, 0, MAX_LEASES - 1, withscores=True)
        pipe.get(k.desktop)
        for q in self.queues:
            pipe.llen(k.queue(q))
            pipe.hlen(k.queue_bodies(q))
            pipe.llen(k.queue(f"{q}.DQ"))
            pipe.zcard(k.queue(f"{q}.XQ"))
        first: list[object] = pipe.execute(raise_on_error=False)
        (n_workers, worker_rows, n_dlq, dlq_scan, n_leases, lease_rows, desktop_raw), rest = first[:7], first[7:]

        names, workers_total = self._worker_names(n_workers, worker_rows, damaged)
        pipe = self.client.pipeline(transaction=False)
        for name, _ in names:
            pipe.get(k.worker(_text(name)))
        second: list[object] = pipe.execute(raise_on_error=False) if names else []
        workers = [w for (name, score), raw in zip(names, second, strict=True)
                   if (w := self._worker(_text(name), score, raw, now, damaged)) is not None]
        workers.sort(key=lambda w: (not w.online, w.name))

        dead, dlq_left_out = self._dead_letters(n_dlq, dlq_scan, damaged)
        leases, leases_total = self._leases(n_leases, lease_rows, now, damaged)
        queues = self._queues(rest, damaged)
        desktop = self._desktop(desktop_raw, damaged)
        return ClusterStatus(
            namespace=k.ns, taken_at=now, poll_ms=(time.perf_counter() - t0) * 1000, desktop=desktop,
            workers=tuple(workers), queues=tuple(queues), throughput=self.meter.add(now, workers),
            dead_letters=tuple(dead), damaged=tuple(damaged), leases=tuple(leases),
            workers_left_out=max(0, workers_total - len(names)), dead_letters_left_out=dlq_left_out,
            leases_left_out=max(0, leases_total - len(leases)))

    # -- sections

    def _whole_key_problem(self, value: object, key: str, section: Literal["workers", "dead_letters", "leases",
                                                                              "queues", "desktop"],
                           damaged: list[DamagedEntry]) -> bool:
        """True (and a damaged row for the whole key) when the reply is an error, e.g. the key has the wrong type."""
        if isinstance(value, Exception):
            damaged.append(DamagedEntry(key, "(whole key)", _error_text(value), section))
            return True
        return False

    def _worker_names(self, count: object, rows: object,
                      damaged: list[DamagedEntry]) -> tuple[list[tuple[object, float]], int]:
        k = self.keys
        if self._whole_key_problem(count, k.workers, "workers", damaged) or \
                self._whole_key_problem(rows, k.workers, "workers", damaged):
            return [], 0
        assert isinstance(rows, list)
        return [(name, float(score)) for name, score in rows], _int(count, k.workers)

    def _worker(self, name: str, score: float, raw: object, now: float,
                damaged: list[DamagedEntry]) -> WorkerStatus | None:
        key = self.keys.worker(name)
        shown = clean(name)

        def bad(problem: str) -> None:
            damaged.append(DamagedEntry(key if len(key) <= MAX_TEXT else clean(key), shown, problem, "workers"))

        if isinstance(raw, Exception):
            bad(_error_text(raw))
            return None
        if raw is None:  # the entry expired: silent for long, only the heartbeat set remembers it
            if not math.isfinite(score) or score > now + FUTURE_SLACK_S:
                bad(f"heartbeat score {score!r} in {self.keys.workers} is not a time")
                return None
            return WorkerStatus(shown, score, max(0.0, now - score), False, None)
        doc, problem = _parse_json(raw)
        if problem is not None:
            bad(problem)
            return None
        try:
            info = WorkerInfo.model_validate(doc)
        except ValidationError as exc:
            bad(_validation_text(exc))
            return None
        if info.name != name:
            bad(f"entry names another worker ({clean(info.name, 60)!r})")
            return None
        if not math.isfinite(info.last_beat) or info.last_beat > now + FUTURE_SLACK_S:
            bad(f"last_beat {info.last_beat!r} is not a time up to now")
            return None
        if not math.isfinite(info.beat_interval_s) or info.beat_interval_s <= 0:
            bad(f"beat_interval_s {info.beat_interval_s!r} is not a positive number of seconds")
            return None
        if info.threads < 1:
            bad(f"threads {info.threads} is not a positive count")
            return None
        if not math.isfinite(info.started) or info.done < 0:
            bad("started or done is not a real count/time")
            return None
        safe = info.model_copy(update={"host": clean(info.host, 80), "current": [clean(c) for c in info.current[:50]],
                                       "name": shown})
        return WorkerStatus(shown, info.last_beat, info.heartbeat_age(now), not info.offline(now), safe)

    def _dead_letters(self, count: object, scan: object,
                      damaged: list[DamagedEntry]) -> tuple[list[DeadLetter], int]:
        """The entries read (newest first) and how many were not read (over MAX_DEAD_LETTERS)."""
        k = self.keys
        if self._whole_key_problem(count, k.dlq, "dead_letters", damaged) or \
                self._whole_key_problem(scan, k.dlq, "dead_letters", damaged):
            return [], 0
        total = _int(count, k.dlq)
        assert isinstance(scan, (list, tuple)) and len(scan) == 2
        items: dict[object, object] = scan[1]
        if len(items) < min(total, MAX_DEAD_LETTERS):  # HSCAN's count is a hint: read the rest (bounded)
            cursor, items = scan[0], dict(items)
            while _int(cursor, k.dlq) != 0 and len(items) < MAX_DEAD_LETTERS:
                cursor, more = self.client.hscan(k.dlq, cursor, count=MAX_DEAD_LETTERS)
                assert isinstance(more, dict)
                items.update({entry: value for entry, value in more.items()})
        out: list[DeadLetter] = []
        read = list(items.items())[:MAX_DEAD_LETTERS]
        for entry_raw, raw in read:
            entry = _text(entry_raw)
            dl, problem = _dead_letter_problem(entry, raw)
            if dl is None:
                # The entry id is kept exact (not cleaned) so the person can still discard it.
                damaged.append(DamagedEntry(k.dlq, entry, problem or "unreadable", "dead_letters"))
                continue
            out.append(dl.model_copy(update={"reason": clean(dl.reason, 500), "queue": clean(dl.queue),
                                             "request_id": clean(dl.request_id), "worker": clean(dl.worker),
                                             "trace_id": clean(dl.trace_id), "message_id": clean(dl.message_id)}))
        out.sort(key=lambda d: d.time, reverse=True)
        return out, max(0, total - len(read))

    def _leases(self, count: object, rows: object, now: float,
                damaged: list[DamagedEntry]) -> tuple[list[LeaseStatus], int]:
        k = self.keys
        if self._whole_key_problem(count, k.leases, "leases", damaged) or \
                self._whole_key_problem(rows, k.leases, "leases", damaged):
            return [], 0
        assert isinstance(rows, list)
        out = [LeaseStatus(clean(rid), float(score), float(score) <= now) for rid, score in rows]
        return out, _int(count, k.leases)

    def _queues(self, replies: list[object], damaged: list[DamagedEntry]) -> list[QueueStatus]:
        out: list[QueueStatus] = []
        for i, q in enumerate(self.queues):
            ready, bodies, delayed, dead = replies[4 * i: 4 * i + 4]
            problems = [(key, v) for key, v in ((self.keys.queue(q), ready), (self.keys.queue_bodies(q), bodies),
                                                (self.keys.queue(f"{q}.DQ"), delayed),
                                                (self.keys.queue(f"{q}.XQ"), dead)) if isinstance(v, Exception)]
            if problems:
                for key, v in problems:
                    damaged.append(DamagedEntry(key, q, _error_text(v) if isinstance(v, Exception) else "", "queues"))
                continue
            r, b = _int(ready, q), _int(bodies, q)
            out.append(QueueStatus(q, r, max(0, b - r), _int(delayed, q), _int(dead, q)))
        return out

    def _desktop(self, raw: object, damaged: list[DamagedEntry]) -> DesktopInfo | None:
        k = self.keys
        if raw is None or self._whole_key_problem(raw, k.desktop, "desktop", damaged):
            return None
        doc, problem = _parse_json(raw)
        if problem is None:
            try:
                info = DesktopInfo.model_validate(doc)
                return info.model_copy(update={"host": clean(info.host, 80)})
            except ValidationError as exc:
                problem = _validation_text(exc)
        damaged.append(DamagedEntry(k.desktop, "(desktop)", problem, "desktop"))
        return None
