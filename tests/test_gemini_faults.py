"""Every injected fault, through the real SDK: the error or finish we translate it to, and how many
requests the server received (the SDK's own retries stay within the configured attempts)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from conductor.config import Config
from conductor.errors import (BadRequest, ProviderUnavailable, RateLimited, StreamInterrupted)
from conductor.messages import user
from conductor.model import TrackProposal
from conductor.providers.base import Finish, ProviderRequest, TextChunk
from conductor.providers.gemini import GeminiProvider
from conductor.testing.fake_gemini import FakeGeminiServer, Script

KEY = "test-key-for-faults"
ATTEMPTS = 3
USAGE = {"promptTokenCount": 50, "candidatesTokenCount": 20, "totalTokenCount": 70}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def server() -> Iterator[FakeGeminiServer]:
    with FakeGeminiServer(Script(text="ok")) as s:
        yield s


def make_provider(url: str, **kw) -> GeminiProvider:  # type: ignore[no-untyped-def]
    cfg = Config()
    cfg = cfg.updated({"gemini": {"sdk_retry_attempts": ATTEMPTS}})
    return GeminiProvider(cfg, api_key=KEY, base_url=url, sdk_retry_initial_delay_s=0.01,
                          sdk_retry_max_delay_s=0.02, **kw)


@pytest.fixture
def provider(server: FakeGeminiServer) -> Iterator[GeminiProvider]:
    p = make_provider(server.url)
    yield p
    p.close()


REQ = ProviderRequest(model="gemini-3.8-flash", tier=1, system="You are the orchestrator.",
                      messages=(user("EPIC: x"),), response_schema=TrackProposal)


def run(provider: GeminiProvider) -> list:
    return list(provider.stream(REQ, threading.Event()))


def hits(server: FakeGeminiServer) -> int:
    return len(server.generate_requests())


# --- before the stream ---

def test_429_with_retry_info_is_rate_limited_with_the_delay_and_not_retried_by_the_sdk(
        provider: GeminiProvider, server: FakeGeminiServer) -> None:
    server.set_script(Script.rate_limited(retry_delay="2s"))
    with pytest.raises(RateLimited) as info:
        run(provider)
    assert info.value.retry_after_s == 2.0 and info.value.status == 429
    assert "429" in str(info.value) and "Resource has been exhausted" in str(info.value)
    assert hits(server) == 1  # 429 goes to our retry layer, which honours the delay


def test_429_retry_after_header(provider: GeminiProvider, server: FakeGeminiServer) -> None:
    server.set_script(Script.rate_limited(retry_delay=None, retry_after="7"))
    with pytest.raises(RateLimited) as info:
        run(provider)
    assert info.value.retry_after_s == 7.0


def test_429_sdk_retries_stay_within_attempts_when_enabled(server: FakeGeminiServer) -> None:
    p = make_provider(server.url, sdk_retry_codes=(429, 503))
    server.set_script(Script.rate_limited())
    try:
        with pytest.raises(RateLimited):
            run(p)
    finally:
        p.close()
    assert hits(server) == ATTEMPTS


@pytest.mark.parametrize("status", [500, 503, 504])
def test_5xx_is_unavailable_after_the_sdk_attempts(provider: GeminiProvider, server: FakeGeminiServer,
                                                   status: int) -> None:
    server.set_script(Script.unavailable(status))
    with pytest.raises(ProviderUnavailable) as info:
        run(provider)
    assert info.value.status == status and str(status) in str(info.value)
    assert hits(server) == ATTEMPTS


def test_503_twice_then_success_is_recovered_by_the_sdk(provider: GeminiProvider,
                                                        server: FakeGeminiServer) -> None:
    server.set_script([Script.unavailable(), Script.unavailable(), Script(text='{"tracks": []}')])
    fin = run(provider)[-1]
    assert isinstance(fin, Finish) and fin.reason == "stop"
    assert hits(server) == 3


@pytest.mark.parametrize("status", [400, 403, 404])
def test_4xx_is_a_bad_request_naming_status_and_message_but_not_the_key(
        provider: GeminiProvider, server: FakeGeminiServer, status: int) -> None:
    server.set_script(Script.bad_request(status, "API key not valid. Please pass a valid API key."))
    with pytest.raises(BadRequest) as info:
        run(provider)
    msg = str(info.value)
    assert str(status) in msg and "API key not valid" in msg and KEY not in msg
    assert hits(server) == 1


def test_connection_refused_is_unavailable() -> None:
    with FakeGeminiServer() as gone:
        url = gone.url
    p = make_provider(url)
    try:
        with pytest.raises(ProviderUnavailable) as info:
            run(p)
    finally:
        p.close()
    assert "connect" in str(info.value).lower()


# --- inside the stream ---

def test_error_event_mid_stream_is_an_interruption_with_partial_usage(provider: GeminiProvider,
                                                                      server: FakeGeminiServer) -> None:
    server.set_script(Script.error_mid_stream(text=["partial ", "more"], after=1, code=503, usage=USAGE))
    seen: list = []
    with pytest.raises(StreamInterrupted) as info:
        for ev in provider.stream(REQ, threading.Event()):
            seen.append(ev)
    assert seen[0] == TextChunk("partial ")
    assert info.value.status == 503 and "503" in str(info.value)
    assert info.value.usage is not None and info.value.usage.partial and info.value.usage.prompt_tokens == 50
    assert hits(server) == 1  # the SDK never retries inside a stream


def test_rate_limit_error_mid_stream_is_still_an_interruption(provider: GeminiProvider,
                                                              server: FakeGeminiServer) -> None:
    server.set_script(Script.error_mid_stream(after=1, code=429, retry_delay="3s"))
    with pytest.raises(StreamInterrupted) as info:
        run(provider)
    assert info.value.status == 429 and getattr(info.value, "retry_after_s", None) == 3.0
    assert hits(server) == 1


def test_cut_connection_mid_stream_is_an_interruption(provider: GeminiProvider, server: FakeGeminiServer) -> None:
    server.set_script(Script.cut(text=["first ", "second"], after=1, usage=USAGE))
    with pytest.raises(StreamInterrupted) as info:
        run(provider)
    assert "RemoteProtocolError" in str(info.value) or "broke" in str(info.value)
    assert info.value.usage is not None and info.value.usage.partial
    assert hits(server) == 1


def test_cut_before_the_first_event_is_still_an_interruption(provider: GeminiProvider,
                                                             server: FakeGeminiServer) -> None:
    server.set_script(Script.cut(after=0))
    with pytest.raises(StreamInterrupted):
        run(provider)
    assert hits(server) == 1


def test_clean_close_without_finish_reason_is_an_interruption(provider: GeminiProvider,
                                                              server: FakeGeminiServer) -> None:
    server.set_script(Script.no_finish(text="half an answer", usage=USAGE))
    with pytest.raises(StreamInterrupted) as info:
        run(provider)
    assert "without a finish reason" in str(info.value)
    assert info.value.usage is not None and info.value.usage.partial
    assert info.value.usage.output_tokens == 20
    assert hits(server) == 1


def test_event_that_is_not_json_is_an_interruption(provider: GeminiProvider, server: FakeGeminiServer) -> None:
    server.set_script(Script(text=["good ", "then garbage"], bad_event_after=1))
    with pytest.raises(StreamInterrupted):
        run(provider)
    assert hits(server) == 1


# --- finishes that are data ---

@pytest.mark.parametrize("reason", ["SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION"])
def test_blocked_candidate_is_a_safety_finish(provider: GeminiProvider, server: FakeGeminiServer,
                                              reason: str) -> None:
    server.set_script(Script(text="I was saying", finish_reason=reason))
    fin = run(provider)[-1]
    assert isinstance(fin, Finish) and (fin.reason, fin.detail) == ("safety", reason)
    assert hits(server) == 1


def test_blocked_prompt_is_a_safety_finish(provider: GeminiProvider, server: FakeGeminiServer) -> None:
    server.set_script(Script.prompt_blocked("PROHIBITED_CONTENT", usage=USAGE))
    events = run(provider)
    fin = events[-1]
    assert isinstance(fin, Finish) and fin.reason == "safety" and "PROHIBITED_CONTENT" in fin.detail
    assert fin.message.text == "" and not [e for e in events if isinstance(e, TextChunk)]
    assert hits(server) == 1


def test_max_tokens_is_a_max_tokens_finish_with_the_text_so_far(provider: GeminiProvider,
                                                                 server: FakeGeminiServer) -> None:
    server.set_script(Script(text='{"tracks": [{"title": "cut sh', finish_reason="MAX_TOKENS"))
    fin = run(provider)[-1]
    assert fin.reason == "max_tokens" and fin.message.text == '{"tracks": [{"title": "cut sh'
    assert hits(server) == 1
