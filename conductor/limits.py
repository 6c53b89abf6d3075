"""One gate per model, shared by every worker of a session: a rate limiter and a circuit breaker.

A 429 storm or an outage is the model's problem, not a ticket's. So the waiting happens here, once for
everyone, instead of in each worker's own retry loop (which multiplied requests and escalated tickets):

- **cooldown** — after a failure every caller of that model waits until `cooldown_until`: the server's
  retry hint when it gave one, else a shared exponential backoff on the consecutive failures;
- **circuit breaker** — after `breaker_failures` consecutive failures (or when a call spends its retry
  budget) the circuit opens: nobody calls the model for `open_s` (doubling on each re-open, capped at
  `max_open_s`, never shorter than the server's hint); then it half-opens and exactly ONE caller probes.
  A probe that succeeds closes the circuit and everybody goes; one that fails opens it again;
- **rate** — an optional `requests_per_minute` spaces request starts per model;
- **quota** — a per-day quota error holds the gate shut until the quota resets (or `quota_hold_s` when the
  reset time is unknown): callers get QuotaExhausted at once, without a request.

`ModelGate` is the pure state machine (every method takes `now`; no locks, no clock reads), so it is
property-tested directly. `ModelLimits` wraps one gate per model behind a lock and blocks callers, with an
injectable `Clock` so tests compress a 150 s storm into a fraction of a second.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from conductor.config import Config
from conductor.errors import (
    CallTimeout,
    Cancelled,
    ProviderError,
    ProviderUnavailable,
    QuotaExhausted,
    RateLimited,
    StreamInterrupted,
    TransientProviderError,
)

POLL_REAL_S = 0.05
"""Longest real wait between checks of a caller's cancel event (waits end early on any gate change)."""


# --- time ---

class Clock(Protocol):
    """Seconds on a monotonic scale, and how long a wait of that many seconds really lasts."""

    def now(self) -> float: ...

    def to_real(self, seconds: float) -> float: ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    def to_real(self, seconds: float) -> float:
        return seconds


# --- policy ---

@dataclass(frozen=True)
class LimitsPolicy:
    breaker_failures: int = 5
    open_s: float = 10.0
    max_open_s: float = 120.0
    initial_delay_s: float = 1.0
    max_delay_s: float = 30.0
    jitter: float = 0.5
    requests_per_minute: float | None = None
    quota_hold_s: float = 900.0

    def __post_init__(self) -> None:
        if self.breaker_failures < 1:
            raise ValueError(f"breaker_failures must be at least 1, not {self.breaker_failures}")
        if self.requests_per_minute is not None and self.requests_per_minute <= 0:
            raise ValueError(f"requests_per_minute must be positive, not {self.requests_per_minute}")
        for name in ("open_s", "max_open_s", "initial_delay_s", "max_delay_s", "quota_hold_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, not {getattr(self, name)}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within 0..1, not {self.jitter}")

    @classmethod
    def from_config(cls, cfg: Config) -> LimitsPolicy:
        lim, r = cfg.limits, cfg.retry
        return cls(breaker_failures=lim.breaker_failures, open_s=lim.open_s, max_open_s=lim.max_open_s,
                   initial_delay_s=r.initial_delay_s, max_delay_s=r.max_delay_s, jitter=r.jitter,
                   requests_per_minute=lim.requests_per_minute, quota_hold_s=lim.quota_hold_s)

    def backoff(self, failures: int, rnd: float) -> float:
        """Shared exponential backoff after `failures` consecutive failures (rnd in [0, 1) draws the jitter)."""
        base = min(self.initial_delay_s * (2.0 ** min(max(failures - 1, 0), 30)), self.max_delay_s)
        return base * (1 - self.jitter * rnd)

    def open_period(self, trips: int) -> float:
        return min(self.open_s * (2.0 ** min(max(trips - 1, 0), 30)), self.max_open_s)


def is_outage(exc: TransientProviderError) -> bool:
    """True when a transient failure says the MODEL is unavailable (rate limited, overloaded, the stream cut),
    which is never the ticket's fault: the call waits it out instead of failing the attempt. A 500 INTERNAL
    (which can mean "this input is too long") and a call past its deadline may be the request's own doing:
    those still fail the attempt once the retry budget is spent."""
    if isinstance(exc, (RateLimited, StreamInterrupted)):
        return True
    if isinstance(exc, CallTimeout):
        return False
    if isinstance(exc, ProviderUnavailable):
        return exc.status != 500
    return False


# --- the pure state machine ---

class Breaker(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True)
class Go:
    """Send the request. `probe`: this is the one half-open trial; report its outcome."""

    probe: bool = False


@dataclass(frozen=True)
class Wait:
    """Do not send yet. `until`: when to ask again (None: when the gate changes, e.g. a probe ends)."""

    until: float | None
    reason: str


@dataclass(frozen=True)
class Refuse:
    """Do not send at all: the model's daily quota is spent."""

    error: QuotaExhausted


Admission = Go | Wait | Refuse


@dataclass
class ModelGate:
    policy: LimitsPolicy
    state: Breaker = Breaker.CLOSED
    consecutive: int = 0
    """Consecutive failed requests, over every caller of the model."""
    trips: int = 0
    """Times the circuit opened since the last success (the open period doubles with each)."""
    open_until: float = 0.0
    cooldown_until: float = 0.0
    next_slot: float = 0.0
    probe_out: bool = False
    quota: QuotaExhausted | None = None
    quota_until: float = 0.0
    last_error: str = ""

    def admit(self, now: float) -> Admission:
        if self.quota is not None and now < self.quota_until:
            return Refuse(self.quota)
        if now < self.cooldown_until:
            return Wait(self.cooldown_until, f"cooling down after {self.last_error or 'a failure'}")
        if self.state is Breaker.OPEN:
            if now < self.open_until:
                return Wait(self.open_until, f"circuit open after {self.consecutive} consecutive failures")
            self.state = Breaker.HALF_OPEN
        if self.state is Breaker.HALF_OPEN:
            if self.probe_out:
                return Wait(None, "waiting for the probe request")
            self.probe_out = True
            return Go(probe=True)
        rpm = self.policy.requests_per_minute
        if rpm is not None:
            if now < self.next_slot:
                return Wait(self.next_slot, f"rate limit of {rpm:g} requests per minute")
            self.next_slot = now + 60.0 / rpm
        return Go()

    def succeeded(self, now: float, go: Go) -> None:
        """The model answered (a success, or an answer that is not an outage: a 400, a safety block...)."""
        self.consecutive = 0
        self.trips = 0
        self.state = Breaker.CLOSED
        self.quota = None
        if go.probe:
            self.probe_out = False

    def failed(self, now: float, go: Go, hint_s: float | None, rnd: float, what: str = "") -> None:
        """A request failed transiently. Everyone waits out the cooldown; enough failures open the circuit."""
        self.consecutive += 1
        self.last_error = what or self.last_error
        delay = self.policy.backoff(self.consecutive, rnd)
        if hint_s is not None:
            delay = max(delay, hint_s)
        self.cooldown_until = max(self.cooldown_until, now + delay)
        if go.probe:
            self.probe_out = False
        if go.probe or self.state is Breaker.HALF_OPEN or self.consecutive >= self.policy.breaker_failures:
            self._open(now, hint_s)

    def trip(self, now: float) -> None:
        """A caller spent its retry budget: stop everyone's retries; from now on only probes go out."""
        if self.state is Breaker.CLOSED:
            self._open(now, None)

    def exhausted(self, now: float, go: Go, error: QuotaExhausted, hold_s: float | None) -> None:
        """A per-day quota is spent: refuse every call until it resets (or `quota_hold_s`), then one probe."""
        hold = self.policy.quota_hold_s if hold_s is None else max(hold_s, 0.0)
        self.quota = error
        self.quota_until = now + hold
        self.state = Breaker.OPEN
        self.open_until = max(self.open_until, self.quota_until)
        if go.probe:
            self.probe_out = False

    def released(self, go: Go) -> None:
        """The request ended without an answer (cancelled): give the probe to someone else."""
        if go.probe:
            self.probe_out = False

    def _open(self, now: float, hint_s: float | None) -> None:
        self.trips += 1
        period = self.policy.open_period(self.trips)
        if hint_s is not None:
            period = max(period, hint_s)
        self.state = Breaker.OPEN
        self.open_until = max(self.open_until, now + period)


# --- the shared, blocking wrapper ---

@dataclass(frozen=True)
class GateView:
    """What a gate looks like now (for messages and tests)."""

    model: str
    state: Breaker
    consecutive: int
    trips: int
    waiting: int
    quota: bool


@dataclass
class ModelLimits:
    """The gates of every model, shared by all workers (and planning) of a session. Thread-safe."""

    policy: LimitsPolicy = field(default_factory=LimitsPolicy)
    clock: Clock = field(default_factory=MonotonicClock)
    rng: random.Random = field(default_factory=random.Random)
    wall: Callable[[], float] = time.time
    """Wall-clock seconds (a quota's reset time is a wall-clock time)."""

    def __post_init__(self) -> None:
        self._gates: dict[str, ModelGate] = {}
        self._waiting: dict[str, int] = {}
        self._cond = threading.Condition()

    @classmethod
    def from_config(cls, cfg: Config, *, clock: Clock | None = None) -> ModelLimits:
        return cls(LimitsPolicy.from_config(cfg), clock=clock or MonotonicClock())

    def _gate(self, model: str) -> ModelGate:
        gate = self._gates.get(model)
        if gate is None:
            gate = self._gates[model] = ModelGate(self.policy)
        return gate

    def acquire(self, model: str, cancel: threading.Event,
                on_wait: Callable[[Wait], None] | None = None) -> Go:
        """Block until this caller may send a request to `model`. Raises Cancelled, or QuotaExhausted when the
        model's daily quota is spent. `on_wait` is told (once per reason) why the caller waits."""
        told: set[str] = set()
        with self._cond:
            self._waiting[model] = self._waiting.get(model, 0) + 1
            try:
                while True:
                    if cancel.is_set():
                        raise Cancelled(f"cancelled while waiting for {model}")
                    now = self.clock.now()
                    adm = self._gate(model).admit(now)
                    if isinstance(adm, Go):
                        return adm
                    if isinstance(adm, Refuse):
                        raise _copy_quota(adm.error)
                    if on_wait is not None and adm.reason not in told:
                        told.add(adm.reason)
                        on_wait(adm)
                    real = POLL_REAL_S if adm.until is None else min(self.clock.to_real(adm.until - now), POLL_REAL_S)
                    self._cond.wait(max(real, 0.0005))
            finally:
                self._waiting[model] -= 1

    def succeeded(self, model: str, go: Go) -> None:
        self._change(lambda g, now: g.succeeded(now, go), model)

    def failed(self, model: str, go: Go, error: ProviderError) -> None:
        hint = getattr(error, "retry_after_s", None)  # RateLimited's, or one a broken stream carried
        hint = float(hint) if isinstance(hint, (int, float)) else None
        rnd = self.rng.random()
        self._change(lambda g, now: g.failed(now, go, hint, rnd, type(error).__name__), model)

    def trip(self, model: str) -> None:
        self._change(lambda g, now: g.trip(now), model)

    def exhausted(self, model: str, go: Go, error: QuotaExhausted) -> None:
        hold = None if error.resets_at is None else error.resets_at - self.wall()
        self._change(lambda g, now: g.exhausted(now, go, error, hold), model)

    def released(self, model: str, go: Go) -> None:
        self._change(lambda g, now: g.released(go), model)

    def view(self, model: str) -> GateView:
        with self._cond:
            g = self._gate(model)
            return GateView(model, g.state, g.consecutive, g.trips, self._waiting.get(model, 0), g.quota is not None)

    def _change(self, fn: Callable[[ModelGate, float], None], model: str) -> None:
        with self._cond:
            fn(self._gate(model), self.clock.now())
            self._cond.notify_all()


def _copy_quota(err: QuotaExhausted) -> QuotaExhausted:
    """A fresh exception per caller (one raised object shared by threads would share its traceback)."""
    return QuotaExhausted(str(err), model=err.model, quota_id=err.quota_id, resets_at=err.resets_at,
                          status=err.status)


__all__ = ["Admission", "Breaker", "Clock", "GateView", "Go", "LimitsPolicy", "ModelGate", "ModelLimits",
           "MonotonicClock", "Refuse", "Wait", "is_outage"]
