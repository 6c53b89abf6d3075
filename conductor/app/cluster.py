"""The monitoring view's model: the latest cluster snapshot (conductor.distributed.monitor), whether it is stale and
why, the dead-letter commands sent and not yet seen applied, and the rows and labels the view shows.

Everything here runs on the GUI thread and does no I/O: the poller (conductor.distributed.monitor_poller) reads
Redis on its own thread and posts `ClusterPolled` events, which `apply` takes. Labels are derived from the snapshot
only, so what the view says is what Redis said at `taken_at` (and the header says when that was).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from conductor.config import DistributedConfig
from conductor.events import ClusterPolled, Event

if TYPE_CHECKING:
    import redis

    from conductor.distributed.monitor import ClusterStatus, DlqCommand, WorkerStatus
    from conductor.distributed.monitor_poller import ClusterPoller

Level = Literal["ok", "warning", "error", "dim"]
SENT_FORGET_S = 60.0
"""A sent command whose entry is still listed after this long is shown as not applied (the dispatcher is down?)."""


@dataclass(frozen=True)
class WorkerRowView:
    name: str
    host: str
    threads: str
    heartbeat: str
    current: str
    state: str
    level: Level


@dataclass(frozen=True)
class QueueRowView:
    name: str
    ready: str
    running: str
    delayed: str
    dramatiq_dead: str


@dataclass(frozen=True)
class DeadLetterRowView:
    entry_id: str
    when: str
    queue: str
    request: str
    reason: str
    deliveries: str
    sent: str
    """'' or what was asked for and not yet seen applied ('retry sent 3 s ago')."""
    readable: bool
    """False: an unreadable entry (reason says why); it can be discarded, not retried."""


def fmt_age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s ago" if seconds < 10 else f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s ago"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h {(seconds % 3600) // 60:02.0f} min ago"
    return f"{seconds / 86400:.1f} days ago"


def fmt_clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


class ClusterModel:
    """State and derived rows of the monitoring view (GUI thread only)."""

    def __init__(self, broker_url: str | None, shown_url: str, dcfg: DistributedConfig) -> None:
        self.broker_url = broker_url
        self.shown_url = shown_url
        self.namespace = dcfg.namespace
        self.queue = dcfg.queue
        self.status: ClusterStatus | None = None
        self.error: str | None = None
        self.error_at: float | None = None
        self.polls = 0
        self.version = 0
        self.sent: dict[str, tuple[str, float]] = {}
        """entry id → (action, when sent), until the entry leaves the dead-letter queue."""
        self.poller: ClusterPoller | None = None

    @classmethod
    def from_config(cls, dcfg: DistributedConfig) -> ClusterModel:
        """The model for this config: a broker from the environment, else the config file; none: local threads.
        A bad broker setting is shown in the view (as a poll error), never raised here."""
        from conductor.distributed.bus import broker_url, shown_url
        try:
            url = broker_url(dcfg)
        except ValueError as exc:
            model = cls(None, "", dcfg)
            model.error = str(exc)
            return model
        return cls(url, shown_url(url) if url else "", dcfg)

    @property
    def configured(self) -> bool:
        return self.broker_url is not None

    # ---------------- the poller (started by the GUI, stopped at shutdown)

    def start(self, post: Callable[[Event], object], interval_s: float | None = None) -> None:
        if not self.configured or self.poller is not None:
            return
        from conductor.distributed.monitor_poller import POLL_INTERVAL_S, ClusterPoller
        url = self.broker_url
        assert url is not None

        def connect() -> redis.Redis:
            import redis as redis_mod
            return redis_mod.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

        self.poller = ClusterPoller(connect, self.namespace, post, queues=(self.queue,),
                                    interval_s=interval_s or POLL_INTERVAL_S).start()

    def stop(self, timeout: float = 5.0) -> list[str]:
        if self.poller is None:
            return []
        ok = self.poller.stop(timeout)
        self.poller = None
        return [] if ok else ["the cluster monitor's thread did not stop in time"]

    def submit(self, command: DlqCommand) -> str | None:
        """Send a dead-letter command through the poller's thread. Returns the problem, or None."""
        if self.poller is None:
            return "the cluster monitor is not running (no broker configured)"
        from conductor.distributed.monitor import RetryDeadLetter
        self.poller.submit(command)
        self.sent[command.entry_id] = ("retry" if isinstance(command, RetryDeadLetter) else "discard", time.time())
        self.version += 1
        return None

    # ---------------- events

    def apply(self, ev: ClusterPolled) -> None:
        self.polls += 1
        if ev.status is None:
            self.error, self.error_at = ev.error or "the poll failed without saying why", ev.ts
        else:
            self.status, self.error, self.error_at = ev.status, None, None
            listed = {d.entry_id for d in ev.status.dead_letters} | {
                d.entry for d in ev.status.damaged if d.section == "dead_letters"}
            self.sent = {e: v for e, v in self.sent.items() if e in listed}
        self.version += 1

    # ---------------- what the view shows

    def header(self, now: float) -> tuple[str, Level]:
        """One line: where it reads from and how fresh the snapshot is; STALE with the error when polls fail."""
        where = f"Broker {self.shown_url} · namespace {self.namespace}"
        s = self.status
        if self.error is not None:
            since = f" {fmt_age(now - self.error_at)}" if self.error_at is not None else ""
            shown = (f" Showing the snapshot of {fmt_clock(s.taken_at)} ({fmt_age(now - s.taken_at)})."
                     if s is not None else " Nothing has been read yet.")
            return f"STALE — the last poll failed{since}: {self.error.rstrip('. ')}.{shown}  ({where})", "error"
        if s is None:
            return f"{where} · waiting for the first poll…", "dim"
        return f"{where} · polled {fmt_age(max(0.0, now - s.taken_at))} ({s.poll_ms:.0f} ms)", "ok"

    def summary(self) -> str:
        s = self.status
        if s is None:
            return ""
        parts = [f"Workers: {len(s.online)} online, {len(s.offline)} offline"
                 + (f" (+{s.workers_left_out} not listed)" if s.workers_left_out else "")]
        for q in s.queues:
            parts.append(f"queue {q.name}: {q.ready} waiting, {q.in_flight} taken")
        parts.append(self.throughput_text())
        expired = sum(1 for le in s.leases if le.expired)
        parts.append(f"leases: {len(s.leases) + s.leases_left_out} held" + (f" ({expired} expired)" if expired else ""))
        parts.append(f"dead letters: {len(s.dead_letters) + len(s.damaged_in('dead_letters'))}"
                     + (f" (+{s.dead_letters_left_out} not listed)" if s.dead_letters_left_out else ""))
        if s.desktop is None:
            parts.append("no desktop has advertised this namespace")
        else:
            parts.append(f"desktop: {s.desktop.host} (pid {s.desktop.pid})")
        return "  ·  ".join(parts)

    def throughput_text(self) -> str:
        s = self.status
        if s is None:
            return ""
        t = s.throughput
        if t.per_minute is None:
            return f"throughput: measuring… ({t.finished} finished so far)"
        return f"throughput: {t.per_minute:.1f} attempts/min over the last {t.window_s:.0f} s"

    def worker_rows(self) -> list[WorkerRowView]:
        s = self.status
        if s is None:
            return []
        rows = [self._worker_row(w) for w in s.workers]
        rows += [WorkerRowView(d.entry, "—", "—", "—", d.problem, f"UNREADABLE ({d.key})", "error")
                 for d in s.damaged_in("workers")]
        return rows

    @staticmethod
    def _worker_row(w: WorkerStatus) -> WorkerRowView:
        beat = fmt_age(w.heartbeat_age_s)
        if w.info is None:
            return WorkerRowView(w.name, "—", "—", beat, "—", "OFFLINE (its registry entry expired)", "error")
        current = ", ".join(w.current) if w.current else "idle"
        state: str
        level: Level
        if w.info.stopping:
            state, level = "stopping", "warning"
        elif w.online:
            state, level = "online", "ok"
        else:
            missed = int(w.heartbeat_age_s // w.info.beat_interval_s)
            state, level = f"OFFLINE ({missed} beats missed)", "error"
        return WorkerRowView(w.name, w.info.host, str(w.info.threads), beat, current, state, level)

    def queue_rows(self) -> list[QueueRowView]:
        s = self.status
        if s is None:
            return []
        return [QueueRowView(q.name, str(q.ready), str(q.in_flight), str(q.delayed), str(q.dramatiq_dead))
                for q in s.queues]

    def dead_letter_rows(self, now: float) -> list[DeadLetterRowView]:
        s = self.status
        if s is None:
            return []
        rows = [DeadLetterRowView(d.entry_id, fmt_clock(d.time), d.queue, d.request_id or "(none)", d.reason,
                                  str(d.deliveries), self._sent(d.entry_id, now), True) for d in s.dead_letters]
        rows += [DeadLetterRowView(d.entry, "—", "—", "—", f"UNREADABLE: {d.problem}", "—", self._sent(d.entry, now),
                                   False) for d in s.damaged_in("dead_letters")]
        return rows

    def _sent(self, entry_id: str, now: float) -> str:
        got = self.sent.get(entry_id)
        if got is None:
            return ""
        action, at = got
        if now - at > SENT_FORGET_S:
            return f"{action} sent {fmt_age(now - at)}, not applied yet: is the desktop's dispatcher running?"
        return f"{action} sent…"

    def problems(self) -> list[str]:
        """Unreadable keys outside the worker and dead-letter tables (queues, leases, the desktop record)."""
        s = self.status
        if s is None:
            return []
        return [f"{d.key}: {d.problem}" for d in s.damaged if d.section not in ("workers", "dead_letters")]
