"""Poll the cluster's state on a background thread and post each snapshot to the app's one event queue.

The GUI thread never touches Redis: it reads the latest `ClusterPolled` event the view-model applied, and hands
dead-letter commands (retry, discard) to `submit`, which this thread carries out before its next poll. A poll
that fails posts the error (the view then says its snapshot is stale, and why); the next poll tries again.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from conductor import redact
from conductor.distributed.monitor import ClusterReader, DlqCommand, MonitorError, send_dlq_command
from conductor.distributed.schema import ATTEMPTS_QUEUE
from conductor.events import ClusterPolled, Event, Notice

if TYPE_CHECKING:
    import redis

POLL_INTERVAL_S = 2.0


class _Stop:
    pass


_STOP = _Stop()


class ClusterPoller:
    """One thread: every `interval_s` (and right after a command) read a snapshot and post it."""

    def __init__(self, connect: Callable[[], redis.Redis], namespace: str, post: Callable[[Event], object], *,
                 queues: Sequence[str] = (ATTEMPTS_QUEUE,), interval_s: float = POLL_INTERVAL_S) -> None:
        self._connect = connect
        self.namespace = namespace
        self.queues = tuple(queues)
        self._post = post
        self.interval_s = interval_s
        self._inbox: queue.SimpleQueue[DlqCommand | _Stop | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._reader: ClusterReader | None = None
        self.polls = 0

    def start(self) -> ClusterPoller:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="conductor-cluster-monitor", daemon=True)
            self._thread.start()
        return self

    def submit(self, command: DlqCommand) -> None:
        """Carry out a dead-letter command on the poller's thread (its outcome arrives as a Notice)."""
        self._inbox.put(command)

    def poll_now(self) -> None:
        self._inbox.put(None)

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop and join; True when the thread ended in time."""
        th = self._thread
        if th is None:
            return True
        self._inbox.put(_STOP)
        th.join(timeout)
        return not th.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ---------------- the thread

    def _run(self) -> None:
        next_poll = 0.0
        while True:
            wait = max(0.0, next_poll - time.monotonic())
            try:
                item = self._inbox.get(timeout=wait) if wait > 0 else self._inbox.get_nowait()
            except queue.Empty:
                item = None
            match item:
                case _Stop():
                    return
                case None:
                    pass
                case _:
                    self._command(item)
            self._poll()
            next_poll = time.monotonic() + self.interval_s

    def _client(self) -> redis.Redis:
        if self._reader is None:
            self._reader = ClusterReader(self._connect(), self.namespace, self.queues)
        return self._reader.client

    def _poll(self) -> None:
        self.polls += 1
        try:
            import redis
        except ImportError:
            self._post(ClusterPolled(status=None, error="the redis package is not installed: "
                                                        "pip install -e '.[distributed]'"))
            return
        try:
            self._client()
            assert self._reader is not None
            status = self._reader.read()
        except (redis.RedisError, OSError, ValueError) as exc:
            self._post(ClusterPolled(status=None, error=_describe(exc)))
            return
        self._post(ClusterPolled(status=status))

    def _command(self, command: DlqCommand) -> None:
        try:
            import redis
        except ImportError:
            return  # said by the poll that follows
        try:
            done = send_dlq_command(self._client(), self.namespace, command)
        except MonitorError as exc:
            self._post(Notice(message=str(exc), level="warning"))
            return
        except (redis.RedisError, OSError, ValueError) as exc:
            self._post(Notice(message=f"could not send the dead-letter command: {_describe(exc)}", level="error"))
            return
        self._post(Notice(message=done))


def _describe(exc: BaseException) -> str:
    """An error for a person, with any credential in it (a broker URL with a password) redacted."""
    return redact.text(f"{type(exc).__name__}: {exc}")[:500]
