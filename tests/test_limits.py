"""The per-model gate: the pure state machine under random event sequences (hypothesis), and the shared
blocking wrapper with a hand-driven clock: every worker waits out a 429's delay together, an open circuit
lets exactly one probe through, a spent daily quota refuses without a request."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from helpers import wait_for
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from conductor.errors import CallTimeout, Cancelled, ProviderUnavailable, QuotaExhausted, RateLimited, StreamInterrupted
from conductor.limits import Breaker, Go, LimitsPolicy, ModelGate, ModelLimits, Refuse, Wait, is_outage

POLICY = LimitsPolicy(breaker_failures=3, open_s=10, max_open_s=60, initial_delay_s=1, max_delay_s=8, jitter=0.5)


# --- the pure gate, driven by hypothesis ---

class GateMachine(RuleBasedStateMachine):
    """Random admits, outcomes, trips and quota errors at increasing times; the invariants hold throughout."""

    @initialize(rpm=st.one_of(st.none(), st.floats(1, 600)), failures=st.integers(1, 6))
    def setup(self, rpm: float | None, failures: int) -> None:
        self.policy = LimitsPolicy(breaker_failures=failures, open_s=5, max_open_s=40, initial_delay_s=0.5,
                                   max_delay_s=10, requests_per_minute=rpm, quota_hold_s=100)
        self.gate = ModelGate(self.policy)
        self.now = 0.0
        self.out: list[Go] = []  # requests in flight
        self.failures_since_success = 0
        self.last_plain_go: float | None = None

    @rule(dt=st.floats(0, 30))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule()
    def admit(self) -> None:
        before = (self.gate.state, self.gate.cooldown_until, self.gate.open_until, self.gate.quota,
                  self.gate.quota_until)
        adm = self.gate.admit(self.now)
        state, cooldown, open_until, quota, quota_until = before
        if isinstance(adm, Go):
            assert self.now >= cooldown, "admitted during a cooldown"
            assert quota is None or self.now >= quota_until, "admitted while the daily quota is spent"
            assert not (state is Breaker.OPEN and self.now < open_until), "admitted through an open circuit"
            if adm.probe:
                assert not any(g.probe for g in self.out), "two probes at once"
            else:
                assert self.gate.state is Breaker.CLOSED
                rpm = self.policy.requests_per_minute
                if rpm is not None and self.last_plain_go is not None:
                    assert self.now - self.last_plain_go >= 60 / rpm - 1e-9, "rate limit not kept"
                self.last_plain_go = self.now
            self.out.append(adm)
        elif isinstance(adm, Refuse):
            assert quota is not None and self.now < quota_until
        else:
            assert isinstance(adm, Wait)
            assert adm.until is None or adm.until > self.now

    @precondition(lambda self: self.out)
    @rule(i=st.integers(0, 100), hint=st.one_of(st.none(), st.floats(0, 100)), rnd=st.floats(0, 0.999))
    def fail(self, i: int, hint: float | None, rnd: float) -> None:
        go = self.out.pop(i % len(self.out))
        self.gate.failed(self.now, go, hint, rnd)
        self.failures_since_success += 1
        if hint is not None:
            assert self.gate.cooldown_until >= self.now + hint, "the server's delay was not honoured"
        if go.probe:
            assert self.gate.state is Breaker.OPEN, "a failed probe must re-open the circuit"

    @precondition(lambda self: self.out)
    @rule(i=st.integers(0, 100))
    def succeed(self, i: int) -> None:
        go = self.out.pop(i % len(self.out))
        self.gate.succeeded(self.now, go)
        self.failures_since_success = 0
        assert self.gate.state is Breaker.CLOSED and self.gate.consecutive == 0

    @precondition(lambda self: self.out)
    @rule(i=st.integers(0, 100))
    def release(self, i: int) -> None:
        self.gate.released(self.out.pop(i % len(self.out)))

    @rule()
    def trip(self) -> None:
        self.gate.trip(self.now)
        assert self.gate.state is not Breaker.CLOSED

    @precondition(lambda self: self.out)
    @rule(i=st.integers(0, 100), hold=st.one_of(st.none(), st.floats(0, 500)))
    def quota(self, i: int, hold: float | None) -> None:
        go = self.out.pop(i % len(self.out))
        self.gate.exhausted(self.now, go, QuotaExhausted("daily quota"), hold)
        assert self.gate.quota is not None and self.gate.state is Breaker.OPEN
        assert self.gate.quota_until == self.now + (self.policy.quota_hold_s if hold is None else hold)

    @invariant()
    def breaker_opens_after_enough_failures(self) -> None:
        if getattr(self, "gate", None) is not None and self.failures_since_success >= self.policy.breaker_failures:
            assert self.gate.state is not Breaker.CLOSED

    @invariant()
    def no_lost_probe(self) -> None:
        """The probe flag is set only while a probe is really in flight (else the gate would wedge)."""
        if getattr(self, "gate", None) is not None:
            assert self.gate.probe_out == any(g.probe for g in self.out)


TestGateMachine = GateMachine.TestCase
TestGateMachine.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)


@given(events=st.lists(st.tuples(st.floats(0, 20), st.one_of(st.none(), st.floats(0, 50))), min_size=1,
                       max_size=40))
@settings(max_examples=200, deadline=None)
def test_a_gate_always_recovers_once_the_failures_stop(events: list[tuple[float, float | None]]) -> None:
    """Liveness: whatever happened, once every request is back and time passes, someone is let through."""
    gate, now = ModelGate(POLICY), 0.0
    for dt, hint in events:
        now += dt
        adm = gate.admit(now)
        if isinstance(adm, Go):
            gate.failed(now, adm, hint, 0.3)
    later = max(gate.cooldown_until, gate.open_until, now) + 1e-6
    assert isinstance(gate.admit(later), Go)


@given(failures=st.integers(1, 40))
def test_open_periods_double_and_stay_capped(failures: int) -> None:
    assert POLICY.open_period(failures) <= POLICY.max_open_s
    assert POLICY.open_period(1) == POLICY.open_s
    assert POLICY.backoff(failures, 0.0) <= POLICY.max_delay_s


def test_bad_policies_are_refused_with_the_setting_named() -> None:
    with pytest.raises(ValueError, match="breaker_failures"):
        LimitsPolicy(breaker_failures=0)
    with pytest.raises(ValueError, match="requests_per_minute"):
        LimitsPolicy(requests_per_minute=0)
    with pytest.raises(ValueError, match="jitter"):
        LimitsPolicy(jitter=2)


def test_which_failures_are_the_models_and_which_may_be_the_tickets() -> None:
    assert is_outage(RateLimited("429"))
    assert is_outage(ProviderUnavailable("503", status=503))
    assert is_outage(ProviderUnavailable("connection refused"))
    assert is_outage(StreamInterrupted("cut"))
    assert not is_outage(ProviderUnavailable("500 internal", status=500))  # can be "input too long"
    assert not is_outage(CallTimeout("deadline"))


# --- the shared wrapper, with a clock the test moves ---

class HandClock:
    """Time moves only when the test says so; waits are short real polls."""

    def __init__(self) -> None:
        self.t = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self.t

    def set(self, t: float) -> None:
        with self._lock:
            self.t = t

    def to_real(self, seconds: float) -> float:
        return 0.001


@pytest.fixture
def clock() -> HandClock:
    return HandClock()


@pytest.fixture
def limits(clock: HandClock) -> ModelLimits:
    return ModelLimits(POLICY, clock=clock, wall=lambda: 1_000_000.0)


class Workers:
    """Threads that each acquire the gate once and record when they got through (by the test's clock)."""

    def __init__(self, limits: ModelLimits, clock: HandClock, n: int, model: str = "m") -> None:
        self.admitted: list[tuple[float, Go]] = []
        self.errors: list[BaseException] = []
        self.cancel = threading.Event()
        self._lock = threading.Lock()

        def run() -> None:
            try:
                go = limits.acquire(model, self.cancel)
                with self._lock:
                    self.admitted.append((clock.now(), go))
            except BaseException as exc:  # noqa: BLE001 - recorded for the test to assert on
                with self._lock:
                    self.errors.append(exc)

        self.threads = [threading.Thread(target=run, daemon=True) for _ in range(n)]
        for th in self.threads:
            th.start()

    def join(self) -> None:
        self.cancel.set()
        for th in self.threads:
            th.join(5)
        assert not any(th.is_alive() for th in self.threads)

    def count(self) -> int:
        with self._lock:
            return len(self.admitted)


@pytest.fixture
def workers(limits: ModelLimits, clock: HandClock) -> Iterator[list[Workers]]:
    made: list[Workers] = []
    yield made
    for w in made:
        w.join()


def test_a_429_with_a_delay_holds_every_worker_until_the_delay_passes(limits: ModelLimits, clock: HandClock,
                                                                      workers: list[Workers]) -> None:
    go = limits.acquire("m", threading.Event())
    limits.failed("m", go, RateLimited("429", retry_after_s=30))
    w = Workers(limits, clock, 4)
    workers.append(w)
    wait_for(lambda: limits.view("m").waiting == 4, what="4 workers waiting")
    clock.set(29.9)
    wait_for(lambda: limits.view("m").waiting == 4, what="still waiting")
    assert w.count() == 0
    clock.set(30.0)
    wait_for(lambda: w.count() == 4, what="all 4 through once the delay passed")
    assert all(t >= 30.0 for t, _ in w.admitted)
    assert limits.acquire("other-model", threading.Event()) == Go()  # another model is not held back


def test_an_open_circuit_lets_exactly_one_probe_through_then_everyone(limits: ModelLimits, clock: HandClock,
                                                                      workers: list[Workers]) -> None:
    for _ in range(POLICY.breaker_failures):
        limits.failed("m", Go(), ProviderUnavailable("503", status=503))  # three workers' requests fail
    assert limits.view("m").state is Breaker.OPEN
    w = Workers(limits, clock, 5)
    workers.append(w)
    wait_for(lambda: limits.view("m").waiting == 5, what="5 waiting on the open circuit")
    clock.set(POLICY.open_s + POLICY.max_delay_s)  # past the cooldown and the open period
    wait_for(lambda: w.count() == 1, what="one probe")
    assert limits.view("m").waiting == 4 and w.admitted[0][1].probe
    limits.failed("m", w.admitted[0][1], ProviderUnavailable("503", status=503))  # the probe fails: re-open
    assert limits.view("m").state is Breaker.OPEN and limits.view("m").trips == 2
    clock.set(clock.now() + 2 * POLICY.open_s - 0.01)
    wait_for(lambda: limits.view("m").waiting == 4, what="still held")
    assert w.count() == 1
    clock.set(clock.now() + POLICY.max_delay_s)
    wait_for(lambda: w.count() == 2, what="a second probe")
    limits.succeeded("m", w.admitted[1][1])
    wait_for(lambda: w.count() == 5, what="everyone through after the probe succeeded")
    assert limits.view("m").state is Breaker.CLOSED


def test_a_spent_daily_quota_refuses_everyone_without_a_request(limits: ModelLimits, clock: HandClock) -> None:
    go = limits.acquire("m", threading.Event())
    limits.exhausted("m", go, QuotaExhausted("daily quota exhausted", quota_id="PerDay", resets_at=1_000_000 + 3600))
    for _ in range(3):
        with pytest.raises(QuotaExhausted, match="daily quota"):
            limits.acquire("m", threading.Event())
    clock.set(3599)
    with pytest.raises(QuotaExhausted):
        limits.acquire("m", threading.Event())
    clock.set(3600)
    assert limits.acquire("m", threading.Event()).probe  # after the reset one probe finds out


def test_a_waiting_caller_is_cancelled_promptly(limits: ModelLimits, clock: HandClock) -> None:
    limits.trip("m")
    cancel = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            limits.acquire("m", cancel)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    th = threading.Thread(target=run)
    th.start()
    wait_for(lambda: limits.view("m").waiting == 1)
    cancel.set()
    th.join(2)
    assert not th.is_alive() and isinstance(errors[0], Cancelled)


def test_a_cancelled_probe_hands_the_probe_to_the_next_caller(limits: ModelLimits, clock: HandClock) -> None:
    limits.trip("m")
    clock.set(POLICY.open_s)
    probe = limits.acquire("m", threading.Event())
    assert probe.probe
    limits.released("m", probe)
    assert limits.acquire("m", threading.Event()).probe
