"""Waiting helpers for tests: wait on conditions with a deadline, never sleep."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
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
    cfg.limits.open_s = 0.05
    cfg.limits.max_open_s = 0.2
    return cfg


def journal_lines(*paths: Path) -> list[dict]:
    """The parsed records of journals written by another process; a torn tail (writer alive or killed) is
    skipped, as the app itself would drop it."""
    out = []
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out
