"""The Anthropic provider: the real `anthropic` SDK against the fake Messages server — usage with cache reads,
cache writes and thinking counted once, thinking kept verbatim, tools to our gate, errors translated."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from conductor.config import parse_config
from conductor.errors import AuthFailed, ContextTooLong, ProviderUnavailable, RateLimited, StreamInterrupted
from conductor.messages import Message, ToolResult, ToolSpec, user
from conductor.model import TrackProposal
from conductor.providers.anthropic_provider import AnthropicProvider
from conductor.providers.base import Finish, ProviderEvent, ProviderRequest, TextChunk, ToolCallChunk, UsageChunk
from conductor.providers.endpoints import resolve_endpoint
from conductor.testing.fake_anthropic import FakeAnthropicServer, Script
from conductor.usage import PriceTable

KEY = "sk-ant-unit-test-key"
TOOLS = (ToolSpec("read_file", "Read a file", {"type": "object", "properties": {"path": {"type": "string"}}}),)
USAGE = {"promptTokenCount": 1250, "candidatesTokenCount": 30, "thoughtsTokenCount": 12,
         "cachedContentTokenCount": 1000, "cacheWriteTokenCount": 200}
MODEL = "claude-haiku-4-5"


@pytest.fixture
def fake() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer(Script(text="hello")) as s:
        yield s


def provider_for(server: FakeAnthropicServer, **compat: object) -> AnthropicProvider:
    cfg = parse_config({"endpoints": {"anthropic": {"kind": "anthropic", "compat": compat}}})
    return AnthropicProvider(resolve_endpoint(cfg, "anthropic", {"ANTHROPIC_API_KEY": KEY,
                                                                 "ANTHROPIC_BASE_URL": server.url}))


def run(p: AnthropicProvider, req: ProviderRequest | None = None) -> list[ProviderEvent]:
    req = req or ProviderRequest(model=MODEL, tier=3, system="You are a worker.", messages=(user("go"),), tools=TOOLS,
                                 thinking="low")
    try:
        return list(p.stream(req, threading.Event()))
    finally:
        p.close()


def test_usage_is_input_plus_cache_read_plus_cache_creation_plus_output_once(fake: FakeAnthropicServer) -> None:
    fake.set_script(Script(text="answer", thoughts=["let me think"], usage=USAGE))
    events = run(provider_for(fake))
    u = [e for e in events if isinstance(e, UsageChunk)][-1].usage
    sent = fake.responses()[0].usage
    assert sent is not None and sent["input_tokens"] == 50 and sent["output_tokens"] == 42
    assert (u.prompt_tokens, u.cached_tokens, u.cache_write_tokens) == (50 + 1000 + 200, 1000, 200)
    assert (u.output_tokens, u.thinking_tokens) == (30, 12) and u.total_tokens == 1250 + 42
    cost = PriceTable(parse_config({}).prices).cost(u)
    # 50 fresh at $1, 1000 cache reads at $0.10, 200 cache writes at $1.25, 42 output at $5 (per million)
    assert cost == pytest.approx((50 * 1 + 1000 * 0.1 + 200 * 1.25 + 42 * 5) / 1e6)


def test_thinking_streams_as_thought_and_goes_back_verbatim_with_its_signature(fake: FakeAnthropicServer) -> None:
    fake.set_script([Script(thoughts=["plan"], function_calls=[{"name": "read_file", "args": {"path": "a.py"}}],
                            thought_signature="c2lnbmVk", usage=USAGE), Script(text="done", usage=USAGE)])
    p = provider_for(fake)
    events = run(p)
    assert [e.text for e in events if isinstance(e, TextChunk) and e.thought] == ["plan"]
    calls = [e.call for e in events if isinstance(e, ToolCallChunk)]
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.reason == "tool_calls"
    assert [(c.name, c.args) for c in calls] == [("read_file", {"path": "a.py"})]
    follow = (user("go"), finish.message,
              Message("user", tool_results=(ToolResult(calls[0].id, "read_file", False, error="no such file"),)))
    run(p, ProviderRequest(model=MODEL, tier=3, system="You are a worker.", messages=follow, tools=TOOLS,
                           thinking="low"))
    first, second = fake.generate_requests()
    assert first.body["thinking"] == {"type": "enabled", "budget_tokens": 2048} and first.body["max_tokens"] > 2048
    assert first.body["system"] == "You are a worker." and first.body["tools"][0]["input_schema"]["type"] == "object"
    turn = second.model_turns[-1]["content"]
    assert turn[0] == {"type": "thinking", "thinking": "plan", "signature": "c2lnbmVk"}
    assert turn[-1]["type"] == "tool_use" and turn[-1]["input"] == {"path": "a.py"}
    result = second.messages[-1]["content"][0]
    assert result["type"] == "tool_result" and result["is_error"] is True and result["tool_use_id"] == calls[0].id


def test_thinking_off_sends_none_and_structured_answers_use_instructions(fake: FakeAnthropicServer) -> None:
    req = ProviderRequest(model=MODEL, tier=1, system="You are the orchestrator.", messages=(user("epic"),),
                          response_schema=TrackProposal, thinking="off")
    run(provider_for(fake), req)
    run(provider_for(fake, json_schema=True), req)
    instructed, schema = fake.generate_requests()
    assert "thinking" not in instructed.body and '"tracks"' in instructed.system_text
    assert schema.body["output_config"]["format"]["type"] == "json_schema" and schema.schema_fields == {"tracks"}


@pytest.mark.parametrize("script, error, words", [
    (Script(http_status=429, error_message="rate limit", retry_after="7"), RateLimited, "rate limited"),
    (Script(http_status=529, error_message="Overloaded"), ProviderUnavailable, "Overloaded"),
    (Script(http_status=401, error_message="invalid x-api-key"), AuthFailed, "$ANTHROPIC_API_KEY"),
    (Script(http_status=400, error_message="prompt is too long: 250000 tokens > 200000 maximum"), ContextTooLong,
     "context window"),
    (Script(text="abc", error_after=2), StreamInterrupted, "stream broke"),
    (Script(text="abc", finish_reason=None), StreamInterrupted, "message_stop"),
], ids=["429", "529", "401", "too-long", "error-event", "no-stop"])
def test_errors_are_translated(fake: FakeAnthropicServer, script: Script, error: type, words: str) -> None:
    fake.set_script(script)
    with pytest.raises(error) as info:
        run(provider_for(fake))
    assert words in str(info.value) and KEY not in str(info.value)
    if error is RateLimited:
        assert info.value.retry_after_s == 7.0  # type: ignore[attr-defined]
    assert len(fake.generate_requests()) == 1


def test_a_broken_stream_keeps_the_counts_seen_marked_partial(fake: FakeAnthropicServer) -> None:
    fake.set_script(Script(text="some words " * 6, chunk_chars=6, cut_after=4, usage=USAGE))
    with pytest.raises(StreamInterrupted) as info:
        run(provider_for(fake))
    u = info.value.usage
    assert u is not None and u.partial and not u.estimated and u.prompt_tokens == 1250  # from message_start


def test_a_refusal_is_a_safety_finish(fake: FakeAnthropicServer) -> None:
    fake.set_script(Script(text="I can't help with that", finish_reason="SAFETY", usage=USAGE))
    finish = run(provider_for(fake))[-1]
    assert isinstance(finish, Finish) and finish.reason == "safety" and finish.detail == "refusal"


def test_the_model_list_comes_from_the_endpoint(fake: FakeAnthropicServer) -> None:
    p = provider_for(fake)
    try:
        assert p.list_models() == ["claude-haiku-4-5", "claude-sonnet-4-5"]
    finally:
        p.close()


def test_a_server_silent_before_its_headers_times_out_at_the_call_deadline(fake: FakeAnthropicServer) -> None:
    import time

    from conductor.errors import CallTimeout
    fake.set_script(Script(text="late", latency_s=5.0))
    started = time.monotonic()
    with pytest.raises(CallTimeout):
        run(provider_for(fake), ProviderRequest(model=MODEL, tier=1, system="s", messages=(user("x"),), timeout_s=0.5))
    assert time.monotonic() - started < 4


TOUCH = ToolSpec("mcp:local/touch", "Create a file.", {"type": "object", "properties": {"path": {"type": "string"}}},
                 mutating=True)


@pytest.mark.parametrize("history", ["native", "rebuilt"])
def test_mcp_tool_names_cross_the_wire_legal_and_come_back_as_ours(fake: FakeAnthropicServer, history: str) -> None:
    """`mcp:local/touch` is not a legal Anthropic tool name (the API refuses the whole request): it is sent as its
    wire name, called back under it, reaches our gate as ours, and goes back in the history as the wire name
    again, whether the model turn is this dialect's native content or rebuilt (another provider's turn)."""
    from conductor.providers.tool_names import wire_name
    wire = wire_name(TOUCH.name)
    tools = (*TOOLS, TOUCH)
    fake.set_script([Script(function_calls=[{"name": wire, "args": {"path": "x.txt"}}], usage=USAGE),
                     Script(text="done", usage=USAGE)])
    p = provider_for(fake)
    events = run(p, ProviderRequest(model=MODEL, tier=3, system="s", messages=(user("go"),), tools=tools))
    calls = [e.call for e in events if isinstance(e, ToolCallChunk)]
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.reason == "tool_calls"
    assert [(c.name, c.args) for c in calls] == [(TOUCH.name, {"path": "x.txt"})]
    call = finish.message.tool_calls[0]
    assert call.name == TOUCH.name
    turn = finish.message if history == "native" else Message("model", tool_calls=(call,))
    follow = (user("go"), turn, Message("tool", tool_results=(ToolResult(call.id, TOUCH.name, True, {"ok": True}),)))
    assert isinstance(run(p, ProviderRequest(model=MODEL, tier=3, system="s", messages=follow, tools=tools))[-1],
                      Finish)
    first, second = fake.generate_requests()
    assert [d["name"] for d in first.function_declarations] == ["read_file", wire] and wire != TOUCH.name
    assert [d["name"] for d in second.function_declarations] == ["read_file", wire]
    assert [b["name"] for b in second.model_turns[-1]["content"] if b["type"] == "tool_use"] == [wire]
    assert second.function_responses == [{"name": wire, "id": call.id, "response": {"ok": True}}]


def test_a_hallucinated_illegal_tool_name_reaches_the_gate_as_is_and_goes_back_legal(
        fake: FakeAnthropicServer) -> None:
    """A model that calls `files/read` (no such tool, not a legal name) gets the gate's refusal on the next turn;
    that turn (its content goes back verbatim) must not be refused whole for repeating the illegal name."""
    from conductor.providers.tool_names import wire_name
    fake.set_script([Script(function_calls=[{"name": "files/read", "args": {}}], usage=USAGE),
                     Script(text="sorry", usage=USAGE)])
    p = provider_for(fake)
    finish = run(p)[-1]
    assert isinstance(finish, Finish) and [c.name for c in finish.message.tool_calls] == ["files/read"]
    call = finish.message.tool_calls[0]
    follow = (user("go"), finish.message,
              Message("tool", tool_results=(ToolResult(call.id, call.name, False, error="unknown tool"),)))
    assert isinstance(run(p, ProviderRequest(model=MODEL, tier=3, system="s", messages=follow, tools=TOOLS))[-1],
                      Finish)
    turn = fake.generate_requests()[1].model_turns[-1]["content"]
    assert [b["name"] for b in turn if b["type"] == "tool_use"] == [wire_name("files/read")]
