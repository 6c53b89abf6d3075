"""Waiting helpers for tests: wait on conditions with a deadline, never sleep."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(fn: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """Re-check `fn` until it returns something truthy; TimeoutError after `timeout` seconds.

    The pause between checks is a wait on an Event that nobody sets, i.e. a bounded block, not a sleep
    that a slow thread could race: the deadline, not the pacing, decides the outcome."""
    tick = threading.Event()
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not met within {timeout}s")
        tick.wait(0.01)


def fast_config():  # type: ignore[no-untyped-def]
    from conductor.config import Config
    cfg = Config()
    cfg.retry.initial_delay_s = 0.01
    cfg.retry.max_delay_s = 0.05
    return cfg
