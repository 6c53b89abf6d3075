"""A clock that runs faster than real time, for storms and outages in tests.

`ScaledClock(100)` makes 150 simulated seconds pass in 1.5 real seconds: `now()` reads simulated seconds and
`to_real` turns a simulated wait into the real one. Give the same clock to the fake server's `Storm` and to
`ModelLimits`, and a 150 s storm, its Retry-After hints and the breaker's open periods all shrink together.
"""

from __future__ import annotations

import time


class ScaledClock:
    def __init__(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError(f"a clock's speed must be positive, not {speed}")
        self.speed = speed
        self._start = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._start) * self.speed

    def to_real(self, seconds: float) -> float:
        return seconds / self.speed
