"""Rate-limit storms, outages and a spent daily quota, from the fake Gemini server through the real SDK, over
whole multi-ticket runs. Time is compressed: the server's storm, its Retry-After hints, our backoff and the
circuit breaker all read one ScaledClock, so a 150 s storm passes in about a second and a half.

What must hold (issue 9, class 8; reliability.md L3/L4):
- a storm is not a ticket's fault: no ticket gets a second attempt or a pricier model; all finish after it;
- one failing turn makes a bounded number of HTTP requests (one budget spans the SDK's retries and ours);
- a per-day quota error pauses the track with a message naming the quota and its reset, after a handful
  of requests;
- planning (Tier 1 and 2) waits out a storm the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conductor.config import Config
from conductor.errors import ProviderUnavailable
from conductor.events import ErrorRaised, EventQueue, Notice, Provenance
from conductor.limits import ModelLimits
from conductor.messages import user
from conductor.model import TicketStatus, TrackProposal, TrackStatus
from conductor.providers.base import ProviderRequest
from conductor.providers.gemini import GeminiProvider
from conductor.session import Session
from conductor.testing.clock import ScaledClock
from conductor.testing.fake_gemini import FakeGeminiServer, PipelineScript, RequestRecord, Script, Storm
from conductor.tiers.call import CallDeps, call_model
from conductor.usage import PriceTable, UsageLedger

KEY = "storm-test-key"
SPEED = 100.0
"""Simulated seconds per real second."""
TICKETS = 6
WORKERS = 4


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def clock() -> ScaledClock:
    return ScaledClock(SPEED)


@pytest.fixture
def server() -> Iterator[FakeGeminiServer]:
    with FakeGeminiServer(PipelineScript(tickets=TICKETS)) as s:
        yield s


def storm_config() -> Config:
    """The shipped defaults (retry budget, backoff, breaker), with enough workers to make a crowd."""
    cfg = Config()
    cfg = cfg.updated({"engine": {"max_workers": WORKERS}})
    cfg = cfg.updated({"engine": {"max_attempts": 3}})
    return cfg


def session(cfg: Config, server: FakeGeminiServer, clock: ScaledClock, ws: Path, tracks: Path) -> Session:
    provider = GeminiProvider(cfg, api_key=KEY, base_url=server.url, sdk_retry_initial_delay_s=0.01,
                              sdk_retry_max_delay_s=0.02)
    s = Session(cfg, workspace=ws, tracks_dir=tracks, provider=provider, linger=False,
                limits=ModelLimits.from_config(cfg, clock=clock))
    s.broker.auto_approve({"plan", "tickets", "spawn", "tool"})
    return s


def plan(s: Session) -> str:
    (tid,) = s.plan_epic("Add a friendly greeting to the README").wait(timeout=60)
    return tid


def fan_out(record: RequestRecord) -> bool:
    """The storm starts when the fan-out tickets (T2.. depend on T1) run: the whole crowd of workers is hit."""
    return "TICKET: T1" not in record.user_text


def worker_requests(server: FakeGeminiServer) -> list[RequestRecord]:
    return server.generate_requests(role="tier3") + server.generate_requests(role="tier4")


# --- storms over a multi-ticket run ---

@pytest.mark.parametrize("seconds", [60, 150])
def test_a_429_storm_costs_no_attempt_and_no_pricier_model(server: FakeGeminiServer, clock: ScaledClock,
                                                           workspace: Path, tmp_path: Path, seconds: int) -> None:
    storm = Storm(clock.now, seconds, Script.rate_limited(retry_delay="10s"),
                  then=PipelineScript(tickets=TICKETS), roles={"tier3", "tier4"}, trigger=fan_out)
    server.set_script(storm)
    cfg = storm_config()
    s = session(cfg, server, clock, workspace, tmp_path / "tracks")
    try:
        tid = plan(s)
        track = s.engines[tid].join(timeout=60)
    finally:
        s.shutdown()
    assert storm.over and storm.refused > 0, "the storm never hit the workers"
    assert track.status == TrackStatus.DONE
    assert [t.status for t in track.tickets] == [TicketStatus.DONE] * TICKETS
    assert [t.attempts for t in track.tickets] == [1] * TICKETS, "a storm consumed an attempt"
    assert {t.model_used for t in track.tickets} == {cfg.models.tier3}, "a storm escalated a ticket"
    # The shared gate held the crowd back: the first requests of the crowd open the circuit, then one probe per
    # open period (10, 20, 40, 80 s...) instead of every worker retrying on its own.
    assert storm.refused <= WORKERS + cfg.limits.breaker_failures + 5, \
        f"{storm.refused} requests refused in a {seconds}s storm"


@pytest.mark.parametrize("fault", [Script.unavailable(503), Script.cut(after=1)], ids=["503", "cut"])
def test_an_outage_pauses_tickets_on_the_same_attempt_until_it_ends(
        server: FakeGeminiServer, clock: ScaledClock, workspace: Path, tmp_path: Path, fault: Script) -> None:
    storm = Storm(clock.now, 150, fault, then=PipelineScript(tickets=TICKETS), roles={"tier3"}, trigger=fan_out)
    server.set_script(storm)
    cfg = storm_config()
    s = session(cfg, server, clock, workspace, tmp_path / "tracks")
    try:
        tid = plan(s)
        track = s.engines[tid].join(timeout=60)
        events = s.events.drain(1_000_000)
    finally:
        s.shutdown()
    assert storm.over and storm.refused > 0
    assert [(t.status, t.attempts, t.model_used) for t in track.tickets] == \
        [(TicketStatus.DONE, 1, cfg.models.tier3)] * TICKETS
    waits = [e for e in events if isinstance(e, Notice) and e.message.startswith(f"waiting for {cfg.models.tier3}")]
    assert {e.prov.ticket_id for e in waits} >= {"T2"}, "nobody was told the tickets wait for the model"


def test_planning_waits_out_a_150s_storm(server: FakeGeminiServer, clock: ScaledClock, workspace: Path,
                                         tmp_path: Path) -> None:
    storm = Storm(clock.now, 150, Script.rate_limited(retry_delay="10s"), then=PipelineScript(tickets=TICKETS),
                  roles={"tier1", "tier2"})
    server.set_script(storm)
    s = session(storm_config(), server, clock, workspace, tmp_path / "tracks")
    try:
        tid = plan(s)
        track = s.engines[tid].join(timeout=60)
    finally:
        s.shutdown()
    assert storm.over and storm.refused_by_role.get("tier1", 0) > 0
    assert track.status == TrackStatus.DONE and len(track.tickets) == TICKETS
    assert storm.refused <= Config().limits.breaker_failures + 5  # one caller: its budget, then the probes


# --- a spent daily quota ---

def test_a_daily_quota_pauses_the_track_and_says_which_quota_and_when(
        server: FakeGeminiServer, clock: ScaledClock, workspace: Path, tmp_path: Path) -> None:
    cfg = storm_config()
    pipeline = PipelineScript(tickets=TICKETS)

    def responder(record: RequestRecord, n: int) -> Script:
        if record.role in ("tier3", "tier4"):
            return Script.quota_exhausted(model=cfg.models.tier3, per="Day", limit="250")
        return pipeline(record, n)

    server.set_script(responder)
    s = session(cfg, server, clock, workspace, tmp_path / "tracks")
    try:
        tid = plan(s)
        track = s.engines[tid].join(timeout=60)
        events = s.events.drain(1_000_000)
        calls = len(worker_requests(server))
        # resuming before the reset asks nobody: the gate refuses at once and the track pauses again
        again = s.run_track(tid).join(timeout=60)
        assert again.status == TrackStatus.PAUSED and len(worker_requests(server)) == calls
    finally:
        s.shutdown()
    assert track.status == TrackStatus.PAUSED
    assert calls <= WORKERS, f"{calls} requests after the quota was spent"
    assert not [t for t in track.tickets if t.status in (TicketStatus.FAILED, TicketStatus.BLOCKED)]
    assert all(t.attempts <= 1 for t in track.tickets)
    paused = [e for e in events if isinstance(e, ErrorRaised) and e.error_type == "QuotaExhausted"]
    assert paused, "the person was not told"
    msg = paused[0].message
    assert "GenerateRequestsPerDayPerProjectPerModel" in msg and "limit 250" in msg
    assert "resets at midnight Pacific time" in msg and cfg.models.tier3 in msg


def test_a_per_minute_quota_is_a_rate_limit_not_a_pause(server: FakeGeminiServer, clock: ScaledClock,
                                                        workspace: Path, tmp_path: Path) -> None:
    storm = Storm(clock.now, 30, Script.quota_exhausted(per="Minute", retry_delay="5s"),
                  then=PipelineScript(tickets=TICKETS), roles={"tier3"}, trigger=fan_out)
    server.set_script(storm)
    s = session(storm_config(), server, clock, workspace, tmp_path / "tracks")
    try:
        track = s.engines[plan(s)].join(timeout=60)
    finally:
        s.shutdown()
    assert storm.refused > 0 and track.status == TrackStatus.DONE
    assert all(t.attempts == 1 for t in track.tickets)


# --- HTTP requests per failing turn ---

REQ = ProviderRequest(model="gemini-3.8-flash", tier=1, system="You are the orchestrator.",
                      messages=(user("EPIC: greet"),), response_schema=TrackProposal,
                      prov=Provenance(trace_id="t", tier=1))


@pytest.mark.parametrize("sdk_attempts", [1, 3])
def test_one_failing_turn_makes_a_bounded_number_of_requests(server: FakeGeminiServer, clock: ScaledClock,
                                                             sdk_attempts: int) -> None:
    """A turn against a model that is down for 10 minutes: the old three layers made 45 requests and failed
    the ticket; now the SDK's requests count in the one budget, then only the breaker's probes go out."""
    outage = 600
    storm = Storm(clock.now, outage, Script.unavailable(503), then=PipelineScript())
    server.set_script(storm)
    cfg = Config()
    cfg = cfg.updated({"gemini": {"sdk_retry_attempts": sdk_attempts}})
    provider = GeminiProvider(cfg, api_key=KEY, base_url=server.url, sdk_retry_initial_delay_s=0.01,
                              sdk_retry_max_delay_s=0.02)
    deps = CallDeps(provider=provider, events=EventQueue(), ledger=UsageLedger(PriceTable(cfg.prices)), cfg=cfg,
                    limits=ModelLimits.from_config(cfg, clock=clock))
    try:
        result = call_model(REQ, deps, cancel=threading.Event())
    finally:
        provider.close()
    assert result.finish == "stop" and storm.over
    budget = cfg.retry.max_retries + 1
    # after the budget, one probe per open period: 10, 20, 40, 80, then every 120 s
    probes = 4 + (outage - 150) // cfg.limits.max_open_s + 1
    assert storm.refused <= (budget + sdk_attempts - 1) + probes * sdk_attempts, storm.refused


def test_a_500_is_still_the_attempts_failure_within_the_budget(server: FakeGeminiServer, clock: ScaledClock) -> None:
    server.set_script(Script.unavailable(500))
    cfg = Config()
    cfg = cfg.updated({"gemini": {"sdk_retry_attempts": 2}})
    provider = GeminiProvider(cfg, api_key=KEY, base_url=server.url, sdk_retry_initial_delay_s=0.01,
                              sdk_retry_max_delay_s=0.02)
    deps = CallDeps(provider=provider, events=EventQueue(), ledger=UsageLedger(PriceTable(cfg.prices)), cfg=cfg,
                    limits=ModelLimits.from_config(cfg, clock=clock))
    try:
        with pytest.raises(ProviderUnavailable):
            call_model(REQ, deps, cancel=threading.Event())
    finally:
        provider.close()
    assert len(server.generate_requests()) <= cfg.retry.max_retries + 2  # one budget, SDK retries included
