"""A per-day quota error is told apart from a per-minute rate limit on the body Gemini really sends (several
violations at once, a RetryInfo that means nothing for a daily quota), through the real SDK."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from conductor.config import Config
from conductor.errors import QuotaExhausted, RateLimited
from conductor.messages import user
from conductor.providers.base import ProviderRequest
from conductor.providers.gemini import GeminiProvider
from conductor.providers.gemini_quota import daily_violation, next_reset, quota_error
from conductor.testing.fake_gemini import FakeGeminiServer, Script, error_body

KEY = "quota-test-key"
REQ = ProviderRequest(model="gemini-3.5-flash-lite", tier=3, system="You are a worker.", messages=(user("go"),))


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


def call(script: Script) -> BaseException:
    with FakeGeminiServer(script) as server:
        p = GeminiProvider(Config(), api_key=KEY, base_url=server.url)
        try:
            with pytest.raises((QuotaExhausted, RateLimited)) as info:
                list(p.stream(REQ, threading.Event()))
        finally:
            p.close()
        assert len(server.generate_requests()) == 1
    return info.value


def test_a_daily_quota_error_is_quota_exhausted_naming_the_quota_model_and_reset() -> None:
    err = call(Script.quota_exhausted(model="gemini-3.5-flash-lite", per="Day", limit="250"))
    assert isinstance(err, QuotaExhausted) and err.status == 429
    assert err.quota_id == "GenerateRequestsPerDayPerProjectPerModel" and err.model == "gemini-3.5-flash-lite"
    assert err.resets_at is not None and 0 < err.resets_at - dt.datetime.now().timestamp() <= 25 * 3600
    msg = str(err)
    assert "limit 250" in msg and "midnight Pacific time" in msg and "You exceeded your current quota" in msg
    assert KEY not in msg


def test_a_per_minute_quota_error_stays_a_rate_limit_with_its_delay() -> None:
    err = call(Script.quota_exhausted(per="Minute", retry_delay="26s"))
    assert isinstance(err, RateLimited) and err.retry_after_s == 26.0


def test_a_bare_429_is_a_rate_limit() -> None:
    assert isinstance(call(Script.rate_limited(retry_delay=None)), RateLimited)


@pytest.mark.parametrize("body", [
    None, {}, {"error": None}, {"error": {"details": "nonsense"}}, {"error": {"details": [None, 3, "x"]}},
    {"error": {"details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": None}]}},
    {"error": {"details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [7, {}]}]}},
])
def test_damaged_error_details_are_not_a_daily_quota(body: object) -> None:
    assert daily_violation(body) is None


def test_a_daily_violation_listed_among_per_minute_ones_wins() -> None:
    body = error_body(429, "quota", "47s", [
        {"quotaId": "GenerateContentInputTokensPerModelPerMinute-FreeTier"},
        {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
         "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
         "quotaDimensions": {"location": "global", "model": "gemini-2.0-flash"}}])
    v = daily_violation(body)
    assert v is not None and v.model == "gemini-2.0-flash"
    assert v.quota_id == "GenerateRequestsPerDayPerProjectPerModel-FreeTier"


def test_the_reset_is_the_next_midnight_in_california() -> None:
    noon_utc = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC).timestamp()  # 04:00 PST
    assert next_reset(noon_utc) == dt.datetime(2026, 11, 28, 8, 0, tzinfo=dt.UTC).timestamp()
    summer = dt.datetime(2026, 7, 1, 6, 59, tzinfo=dt.UTC).timestamp()  # 23:59 PDT
    assert next_reset(summer) == dt.datetime(2026, 7, 1, 7, 0, tzinfo=dt.UTC).timestamp()


def test_the_message_says_when_the_reset_time_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    import conductor.providers.gemini_quota as gq
    monkeypatch.setattr(gq, "next_reset", lambda now: None)
    v = daily_violation(error_body(429, "q", None, [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel"}]))
    assert v is not None
    err = quota_error(v, "q", now_epoch=0)
    assert err.resets_at is None and "exact time is unknown" in str(err)
