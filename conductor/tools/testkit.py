"""Helpers to drive the tool gate from tests, demos and the GUI pilot, without sleeping.

    waiter = ApprovalWaiter(broker)             # sees every request a person must answer
    job = Background(lambda: gate.run(call, ctx))
    req = waiter.next()                         # blocks until the gate asks (queue.Empty after the timeout)
    broker.resolve(req.id, approved=True)
    result, replayed = job.result()
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from conductor.approvals import ApprovalBroker, ApprovalRequest

T = TypeVar("T")


class ApprovalWaiter:
    """Collects the requests a broker raises for a person (its `on_requested` hook), in order."""

    def __init__(self, broker: ApprovalBroker) -> None:
        self._q: queue.Queue[ApprovalRequest] = queue.Queue()
        broker.on_requested.append(self._q.put)

    def next(self, timeout: float = 10.0) -> ApprovalRequest:
        """The next request; raises queue.Empty when none came within `timeout` seconds."""
        return self._q.get(timeout=timeout)

    def empty(self) -> bool:
        return self._q.empty()


class Background(Generic[T]):
    """Runs `fn` on a thread; `result()` joins it and returns its value or raises its exception."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), name="background", daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], T]) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # noqa: BLE001 — handed to the joining thread
            self._error = exc

    def result(self, timeout: float = 30.0) -> T:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"background job still running after {timeout}s")
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]
