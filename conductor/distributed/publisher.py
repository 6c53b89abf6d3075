"""Worker → desktop: events XADDed to `{ns}:events` by one thread per worker process, in batches.

Posting never blocks an attempt on the network: events are queued and written in pipelined batches. While Redis
is unreachable (a restart) the batch is kept and retried; `publish(..., wait=True)` returns only once the event
is written (a result is acknowledged to Dramatiq only after the desktop can read it).
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from conductor.distributed.wire import BusEvent, Payload, encode

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

STREAM_MAXLEN = 1_000_000
"""Approximate cap of the events stream (far above what a desktop that reads it ever leaves unread)."""
BATCH = 256


@dataclass
class _Item:
    text: str
    written: threading.Event | None = None


@dataclass
class RequestChannel:
    """One dispatch of one request: stamps its events with the ids and a sequence number from 1."""

    publisher: EventPublisher
    request_id: str
    trace_id: str
    dispatch: int
    worker: str
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, payload: Payload, *, wait: bool = False) -> None:
        with self._lock:  # seq order = queue order
            ev = BusEvent(self.request_id, self.trace_id, self.dispatch, next(self._seq), self.worker, payload)
            self.publisher.put(encode(ev), wait=wait)


class EventPublisher:
    def __init__(self, client: redis.Redis, stream: str, *, retry_s: float = 0.2,
                 stopped: Callable[[], bool] = lambda: False) -> None:
        self.client = client
        self.stream = stream
        self.retry_s = retry_s
        self._stopped = stopped
        self._q: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="conductor-bus-publisher", daemon=True)
        self._thread.start()

    def put(self, text: str, *, wait: bool = False) -> None:
        item = _Item(text, threading.Event() if wait else None)
        self._q.put(item)
        if item.written is not None:
            item.written.wait()

    def close(self) -> None:
        """Write what is queued, then stop."""
        self._q.put(None)
        self._thread.join()

    def _run(self) -> None:
        import redis as redis_mod

        while True:
            first = self._q.get()
            if first is None:
                return
            batch = [first]
            closing = False
            while len(batch) < BATCH:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    closing = True
                    break
                batch.append(nxt)
            while True:
                try:
                    pipe = self.client.pipeline(transaction=False)
                    for item in batch:
                        pipe.xadd(self.stream, {"e": item.text}, maxlen=STREAM_MAXLEN, approximate=True)
                    pipe.execute()
                    break
                except (redis_mod.ConnectionError, redis_mod.TimeoutError, OSError) as exc:
                    # Redis is restarting: keep the batch (nothing is lost, order is kept) and try again
                    log.warning("event stream unreachable (%s); retrying", type(exc).__name__)
                    self._closed.wait(self.retry_s)
            for item in batch:
                if item.written is not None:
                    item.written.set()
            if closing:
                return
