"""The OpenAI-compatible provider: the real `openai` SDK against the fake chat-completions server, one test
per endpoint quirk, usage without double counting, errors translated once, structured output per profile."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from conductor.config import parse_config
from conductor.errors import (AuthFailed, ContextTooLong, ProviderUnavailable, RateLimited, SafetyBlocked,
                              StreamInterrupted)
from conductor.events import Provenance
from conductor.messages import Message, ToolResult, ToolSpec, user
from conductor.model import TrackProposal
from conductor.providers.base import Finish, ProviderEvent, ProviderRequest, TextChunk, ToolCallChunk, UsageChunk
from conductor.providers.endpoints import resolve_endpoint
from conductor.providers.openai_compat import OpenAICompatProvider
from conductor.testing.fake_openai import FakeOpenAIServer, Quirks, Script

KEY = "sk-openai-test-key-123"
TOOLS = (ToolSpec("read_file", "Read a file", {"type": "object", "properties": {"path": {"type": "string"}}}),)
USAGE = {"promptTokenCount": 1200, "candidatesTokenCount": 24, "thoughtsTokenCount": 16,
         "cachedContentTokenCount": 1024}
CALLS = [{"name": "read_file", "args": {"path": "a.py"}}, {"name": "read_file", "args": {"path": "b.py"}}]


def provider_for(server: FakeOpenAIServer, **compat: object) -> OpenAICompatProvider:
    cfg = parse_config({"endpoints": {"local": {"kind": "openai", "base_url": server.url + "/v1",
                                                "api_key_env": "LOCAL_KEY", "compat": compat}}})
    return OpenAICompatProvider(resolve_endpoint(cfg, "local", {"LOCAL_KEY": KEY}))


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(Script(text="hello")) as s:
        yield s


def run(p: OpenAICompatProvider, req: ProviderRequest | None = None) -> list[ProviderEvent]:
    req = req or ProviderRequest(model="m", tier=3, system="You are a worker.", messages=(user("go"),), tools=TOOLS,
                                 prov=Provenance(ticket_id="T1", attempt=1))
    try:
        return list(p.stream(req, threading.Event()))
    finally:
        p.close()


def parts(events: list[ProviderEvent]) -> tuple[str, list[tuple[str, dict[str, object]]], UsageChunk, Finish]:
    text = "".join(e.text for e in events if isinstance(e, TextChunk) and not e.thought)
    calls = [(e.call.name, e.call.args) for e in events if isinstance(e, ToolCallChunk)]
    usage = [e for e in events if isinstance(e, UsageChunk)][-1]
    finish = events[-1]
    assert isinstance(finish, Finish)
    return text, calls, usage, finish


def test_text_tools_and_usage_with_cached_and_reasoning_counted_once(fake: FakeOpenAIServer) -> None:
    fake.set_script(Script(text="Let me read.", function_calls=CALLS, usage=USAGE))
    text, calls, usage, finish = parts(run(provider_for(fake)))
    assert text == "Let me read." and calls == [("read_file", {"path": "a.py"}), ("read_file", {"path": "b.py"})]
    assert finish.reason == "tool_calls" and [c.name for c in finish.message.tool_calls] == ["read_file"] * 2
    u = usage.usage
    # OpenAI: prompt 1200 (1024 cached), completion 40 (16 reasoning). Ours: 1200 prompt, 24 output, 16 thinking.
    assert (u.prompt_tokens, u.output_tokens, u.thinking_tokens, u.cached_tokens) == (1200, 24, 16, 1024)
    assert u.total_tokens == 1200 + 40 and not u.estimated
    req = fake.generate_requests()[0]
    assert req.body["stream"] is True and req.body["stream_options"] == {"include_usage": True}
    assert req.body["tools"][0]["function"]["name"] == "read_file" and req.key_matches(KEY)
    assert KEY not in json.dumps(req.headers)


def test_quirk_final_chunk_with_choices_null() -> None:
    with FakeOpenAIServer(Script(text="fine", usage=USAGE), quirks=Quirks(choices_null_final=True)) as s:
        text, _, usage, finish = parts(run(provider_for(s)))
    assert text == "fine" and finish.reason == "stop" and usage.usage.prompt_tokens == 1200


def test_quirk_tool_call_deltas_without_an_index() -> None:
    with FakeOpenAIServer(Script(function_calls=CALLS, usage=USAGE), quirks=Quirks(tool_index=False)) as s:
        _, calls, _, finish = parts(run(provider_for(s)))
        raw = [d for r in [s.responses()] for d in r]
    assert calls == [("read_file", {"path": "a.py"}), ("read_file", {"path": "b.py"})] and raw
    assert finish.reason == "tool_calls"


def test_quirk_tool_calls_not_streamed_is_learned_then_sent_unstreamed() -> None:
    with FakeOpenAIServer(Script(text="ok", function_calls=CALLS[:1], usage=USAGE),
                          quirks=Quirks(stream_tools=False)) as s:
        p = provider_for(s)
        first = parts(run(p))
        assert p.profile.stream_tools is False and "unstreamed" in p.profile.learned["stream_tools"]
        second = parts(run(p))
        kinds = [r.kind for r in s.responses()]
        bodies = [r.body for r in s.generate_requests()]
    assert first[1] == second[1] == [("read_file", {"path": "a.py"})]
    assert first[2].usage.prompt_tokens == 1200 and not first[2].usage.estimated
    assert kinds == ["unary (stream ignored)", "unary"] and bodies[1]["stream"] is False


def test_configured_stream_tools_false_sends_tool_requests_unstreamed_but_streams_the_rest(
        fake: FakeOpenAIServer) -> None:
    p = provider_for(fake, stream_tools=False)
    run(p)
    run(p, ProviderRequest(model="m", tier=1, system="s", messages=(user("hi"),)))
    streamed = [r.body["stream"] for r in fake.generate_requests()]
    assert streamed == [False, True]


def test_quirk_include_usage_refused_is_retried_once_remembered_and_estimated() -> None:
    with FakeOpenAIServer(Script(text="a complete answer", usage=USAGE), quirks=Quirks(usage="reject_options")) as s:
        p = provider_for(s)
        text, _, usage, finish = parts(run(p))
        assert p.profile.stream_usage is False
        parts(run(p))
        bodies = [r.body for r in s.generate_requests()]
    assert text == "a complete answer" and finish.reason == "stop"
    assert usage.usage.estimated and usage.usage.prompt_tokens > 0 and usage.usage.output_tokens > 0
    assert ["stream_options" in b for b in bodies] == [True, False, False]  # retried once, then never sent


def test_usage_never_reported_is_estimated_never_zero() -> None:
    with FakeOpenAIServer(Script(text="x" * 400), quirks=Quirks(usage="never")) as s:
        _, _, usage, _ = parts(run(provider_for(s)))
    assert usage.usage.estimated and usage.usage.output_tokens == 100 and usage.usage.prompt_tokens >= 1


def test_quirk_usage_missing_after_an_interrupted_stream_is_estimated_and_partial(fake: FakeOpenAIServer) -> None:
    fake.set_script(Script(text="partial answer " * 10, cut_after=3, chunk_chars=10))
    with pytest.raises(StreamInterrupted) as info:
        run(provider_for(fake))
    u = info.value.usage
    assert u is not None and u.estimated and u.partial and u.output_tokens >= 1 and u.prompt_tokens >= 1


def test_continuous_usage_keeps_the_last_counts_of_a_broken_stream() -> None:
    with FakeOpenAIServer(Script(text="partial answer " * 10, cut_after=4, chunk_chars=10, usage=USAGE),
                          quirks=Quirks(usage="continuous")) as s:
        with pytest.raises(StreamInterrupted) as info:
            run(provider_for(s, continuous_usage=True))
        delivered = s.responses()[0].usage
        sent = s.generate_requests()[0].body["stream_options"]
    u = info.value.usage
    assert sent == {"include_usage": True, "continuous_usage_stats": True}
    assert u is not None and u.partial and not u.estimated
    assert delivered is not None and u.prompt_tokens == delivered["prompt_tokens"]


def test_llama_cpp_timings_on_the_final_chunk_are_ignored() -> None:
    with FakeOpenAIServer(Script(text="ok", usage=USAGE), quirks=Quirks(timings=True)) as s:
        text, _, usage, _ = parts(run(provider_for(s)))
    assert text == "ok" and usage.usage.prompt_tokens == 1200


def test_reasoning_content_is_streamed_as_thoughts_not_answer(fake: FakeOpenAIServer) -> None:
    fake.set_script(Script(text="answer", thoughts=["thinking hard"], usage=USAGE))
    events = run(provider_for(fake))
    assert [e.text for e in events if isinstance(e, TextChunk) and e.thought] == ["thinking hard"]
    assert parts(events)[3].message.text == "answer"


def test_tool_results_go_back_as_tool_messages_and_the_turn_verbatim(fake: FakeOpenAIServer) -> None:
    fake.set_script([Script(function_calls=CALLS[:1], usage=USAGE), Script(text="done", usage=USAGE)])
    p = provider_for(fake)
    finish = parts(run(p))[3]
    call = finish.message.tool_calls[0]
    follow = (user("go"), finish.message,
              Message("user", tool_results=(ToolResult(call.id, call.name, True, {"content": "x = 1"}),)))
    run(p, ProviderRequest(model="m", tier=3, system="You are a worker.", messages=follow, tools=TOOLS))
    second = fake.generate_requests()[1]
    assert [m["role"] for m in second.messages] == ["system", "user", "assistant", "tool"]
    assert second.messages[2]["tool_calls"][0]["id"] == call.id == second.messages[3]["tool_call_id"]
    assert second.function_responses[0]["response"] == {"ok": True, "content": "x = 1"}


def test_structured_output_json_schema_or_instructions_per_profile(fake: FakeOpenAIServer) -> None:
    req = ProviderRequest(model="m", tier=1, system="You are the orchestrator.", messages=(user("epic"),),
                          response_schema=TrackProposal)
    run(provider_for(fake), req)
    run(provider_for(fake, json_schema=False), req)
    with_schema, instructed = fake.generate_requests()
    assert with_schema.body["response_format"]["type"] == "json_schema"
    assert with_schema.schema_fields == {"tracks"}
    assert "response_format" not in instructed.body and '"tracks"' in instructed.system_text


def test_reasoning_effort_only_where_the_profile_allows(fake: FakeOpenAIServer) -> None:
    req = ProviderRequest(model="m", tier=1, system="s", messages=(user("x"),), thinking="high", max_output_tokens=900)
    run(provider_for(fake), req)
    run(provider_for(fake, reasoning=True), req)
    local, reasoning = (r.body for r in fake.generate_requests())
    assert "reasoning_effort" not in local and local["max_tokens"] == 900
    assert reasoning["reasoning_effort"] == "high" and reasoning["max_completion_tokens"] == 900


@pytest.mark.parametrize("script, error, words", [
    (Script(http_status=429, error_message="slow down", retry_after="3"), RateLimited, "rate limited"),
    (Script(http_status=503, error_message="overloaded"), ProviderUnavailable, "overloaded"),
    (Script(http_status=401, error_message="Incorrect API key provided"), AuthFailed, "$LOCAL_KEY"),
    (Script(http_status=400, error_message="This model's maximum context length is 8192 tokens",
            error_type="context_length_exceeded"), ContextTooLong, "context"),
    (Script(http_status=400, error_message="flagged", error_type="content_policy_violation"), SafetyBlocked, "safety"),
    (Script(text="abc", error_after=1), StreamInterrupted, "stream broke"),
    (Script(text="abc", bad_event_after=1), StreamInterrupted, "stream broke"),
    (Script(text="abc", finish_reason=None), StreamInterrupted, "finish reason"),
], ids=["429", "503", "401", "context", "policy", "error-event", "bad-event", "no-finish"])
def test_errors_are_translated_once_into_our_tree(fake: FakeOpenAIServer, script: Script, error: type,
                                                   words: str) -> None:
    fake.set_script(script)
    with pytest.raises(error) as info:
        run(provider_for(fake))
    assert words in str(info.value) and KEY not in str(info.value)
    if error is RateLimited:
        assert info.value.retry_after_s == 3.0  # type: ignore[attr-defined]
    assert len(fake.generate_requests()) == 1  # the SDK's own retries are off: ours decide


def test_content_filter_finish_is_a_safety_finish(fake: FakeOpenAIServer) -> None:
    fake.set_script(Script(text="no", finish_reason="SAFETY", usage=USAGE))
    assert parts(run(provider_for(fake)))[3].reason == "safety"


def test_the_model_list_comes_from_the_endpoint(fake: FakeOpenAIServer) -> None:
    p = provider_for(fake)
    try:
        assert "llama3.1:8b" in p.list_models()
        fake.models_status = 500
        assert p.list_models() == []
    finally:
        p.close()


def test_a_request_refused_before_its_stream_records_no_usage(fake: FakeOpenAIServer) -> None:
    fake.set_script(Script.unavailable(503))
    with pytest.raises(ProviderUnavailable) as info:
        run(provider_for(fake))
    assert info.value.usage is None  # nothing was generated: no estimate either


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_cancel_and_deadline_cut_a_silent_stream_promptly(dialect: str, thread_baseline: set[int]) -> None:
    """The model pauses GAP seconds between events: a cancel (or the call's deadline) ends the call well before
    the next event arrives, because the socket is cut under the blocked read."""
    import time

    from conductor.errors import CallTimeout, Cancelled
    from conductor.providers.anthropic_provider import AnthropicProvider
    from conductor.testing.fake_anthropic import FakeAnthropicServer

    gap = 4.0
    slow = Script(text="first words, then a long silence", chunk_chars=12, chunk_delay_s=gap)
    server = FakeOpenAIServer(slow) if dialect == "openai" else FakeAnthropicServer(slow)
    with server:
        p: OpenAICompatProvider | AnthropicProvider
        if isinstance(server, FakeOpenAIServer):
            p = provider_for(server)
        else:
            p = AnthropicProvider(resolve_endpoint(parse_config({}), "anthropic", {
                "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": server.url}))
        cancel = threading.Event()
        req = ProviderRequest(model="claude-haiku-4-5", tier=3, system="s", messages=(user("go"),))
        cancelled_at = 0.0
        with pytest.raises(Cancelled):
            for ev in p.stream(req, cancel):
                if isinstance(ev, TextChunk):
                    cancelled_at = time.monotonic()
                    cancel.set()  # the next event is `gap` seconds away
        assert cancelled_at and time.monotonic() - cancelled_at < gap / 2
        started = time.monotonic()
        with pytest.raises(CallTimeout):
            list(p.stream(ProviderRequest(model="claude-haiku-4-5", tier=3, system="s", messages=(user("go"),),
                                          timeout_s=0.3), threading.Event()))
        assert time.monotonic() - started < gap / 2
        p.close()
    alive = {t.ident for t in threading.enumerate()} - thread_baseline
    assert not [t.name for t in threading.enumerate() if t.ident in alive and "watch" in t.name]


def test_hostile_tool_arguments_reach_the_gate_as_data_not_a_crash(fake: FakeOpenAIServer) -> None:
    """Arguments that are not JSON (or not an object) are handed on for the tool to refuse, never executed."""
    from conductor.providers.openai_mapping import ChatAssembler
    req = ProviderRequest(model="m", tier=3, system="s", messages=(user("go"),), prov=Provenance(ticket_id="T9"))
    turn = ChatAssembler(req, "m")
    turn.feed({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "function": {"name": "write_file", "arguments": '{"path": "a.py", '}},
        {"index": 1, "id": "c2", "function": {"name": "run", "arguments": "[1, 2]"}}]}}]})
    turn.feed({"choices": None, "usage": None})
    turn.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    finish, calls = turn.finish()
    (a, b) = finish.message.tool_calls
    assert a.args == {"_unparsed_arguments": '{"path": "a.py", '} and a.id == "T9-a0-t0-c0"  # a stable id
    assert b.args == {"_arguments": [1, 2]} and b.id == "c2" and len(calls) == 2


def test_a_turn_from_another_provider_is_rebuilt_not_sent_verbatim() -> None:
    from conductor.messages import ToolCall
    from conductor.providers.openai_mapping import to_messages
    gemini_turn = Message("model", "looked", (ToolCall("x1", "list_dir", {"path": "."}),),
                          native={"role": "model", "parts": [{"text": "looked", "thoughtSignature": "c2ln"}]})
    (_, assistant) = to_messages("sys", (gemini_turn,))
    assert assistant == {"role": "assistant", "content": "looked", "tool_calls": [
        {"id": "x1", "type": "function", "function": {"name": "list_dir", "arguments": '{"path": "."}'}}]}


def test_a_refused_json_schema_is_learned_and_the_schema_goes_into_the_instructions() -> None:
    import json as _json
    answer = Script(text=_json.dumps({"tracks": [{"title": "T", "goal": "G"}]}), usage=USAGE)
    with FakeOpenAIServer(answer, quirks=Quirks(json_schema=False)) as s:
        p = provider_for(s)
        req = ProviderRequest(model="m", tier=1, system="You are the orchestrator.", messages=(user("epic"),),
                              response_schema=TrackProposal)
        first = parts(run(p, req))
        assert p.profile.json_schema is False and "json_schema" in p.profile.learned
        parts(run(p, req))
        kinds = [r.kind for r in s.responses()]
        last = s.generate_requests()[-1]
    assert TrackProposal.model_validate_json(first[0]).tracks[0].title == "T"
    assert kinds.count("http 400 response_format") == 2 and kinds[-1] == "stream"  # never asked a third time
    assert "response_format" not in last.body and '"tracks"' in last.system_text


TOUCH = ToolSpec("mcp:local/touch", "Create a file.", {"type": "object", "properties": {"path": {"type": "string"}}},
                 mutating=True)


@pytest.mark.parametrize("history", ["native", "rebuilt"])
def test_mcp_tool_names_cross_the_wire_legal_and_come_back_as_ours(fake: FakeOpenAIServer, history: str) -> None:
    """`mcp:local/touch` is not a legal OpenAI function name (the endpoint refuses the whole request): it is sent
    as its wire name, called back under it, reaches our gate as ours, and goes back in the history as the wire
    name again, whether the model turn is this dialect's native message or rebuilt (another provider's turn)."""
    from conductor.providers.tool_names import wire_name
    wire = wire_name(TOUCH.name)
    tools = (*TOOLS, TOUCH)
    fake.set_script([Script(function_calls=[{"name": wire, "args": {"path": "x.txt"}}], usage=USAGE),
                     Script(text="done", usage=USAGE)])
    p = provider_for(fake)
    events = run(p, ProviderRequest(model="m", tier=3, system="s", messages=(user("go"),), tools=tools))
    _, calls, _, finish = parts(events)
    assert calls == [(TOUCH.name, {"path": "x.txt"})] and finish.reason == "tool_calls"
    call = finish.message.tool_calls[0]
    assert call.name == TOUCH.name
    turn = finish.message if history == "native" else Message("model", tool_calls=(call,))
    follow = (user("go"), turn, Message("tool", tool_results=(ToolResult(call.id, TOUCH.name, True, {"ok": True}),)))
    assert isinstance(run(p, ProviderRequest(model="m", tier=3, system="s", messages=follow, tools=tools))[-1], Finish)
    first, second = fake.generate_requests()
    assert [d["name"] for d in first.function_declarations] == ["read_file", wire] and wire != TOUCH.name
    assert [d["name"] for d in second.function_declarations] == ["read_file", wire]
    assert second.model_turns[-1]["tool_calls"][0]["function"]["name"] == wire
    assert second.function_responses == [{"name": wire, "id": call.id, "response": {"ok": True}}]


def test_a_hallucinated_illegal_tool_name_reaches_the_gate_as_is_and_goes_back_legal(fake: FakeOpenAIServer) -> None:
    """A model that calls `files/read` (no such tool, not a legal name) gets the gate's refusal on the next turn;
    that turn must not be refused whole because the history repeats the illegal name."""
    from conductor.providers.tool_names import wire_name
    fake.set_script([Script(function_calls=[{"name": "files/read", "args": {}}], usage=USAGE),
                     Script(text="sorry", usage=USAGE)])
    p = provider_for(fake)
    finish = run(p)[-1]
    assert isinstance(finish, Finish) and [c.name for c in finish.message.tool_calls] == ["files/read"]
    call = finish.message.tool_calls[0]
    follow = (user("go"), finish.message,
              Message("tool", tool_results=(ToolResult(call.id, call.name, False, error="unknown tool"),)))
    assert isinstance(run(p, ProviderRequest(model="m", tier=3, system="s", messages=follow, tools=TOOLS))[-1], Finish)
    sent = fake.generate_requests()[1].model_turns[-1]["tool_calls"][0]["function"]["name"]
    assert sent == wire_name("files/read") != "files/read"
