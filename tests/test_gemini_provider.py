"""GeminiProvider end to end: the real google-genai SDK against the fake Gemini server on 127.0.0.1.

What the SDK sends (system instruction, response schema, tool declarations, thinking, function responses
with the verbatim model content) and what we make of the answers (deltas, cumulative usage, tool calls).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator

import pytest

from conductor.config import Config
from conductor.errors import CallTimeout, Cancelled, NetworkForbidden
from conductor.events import Provenance
from conductor.messages import Message, ToolResult, ToolSpec, user
from conductor.model import Review, TicketPlan, TrackProposal, Usage
from conductor.providers.base import (Finish, ProviderRequest, TextChunk, ToolCallChunk, UsageChunk,
                                      real_model_requests)
from conductor.providers.gemini import GeminiProvider
from conductor.testing.fake_gemini import FakeGeminiServer, PipelineScript, Script, get_field

KEY = "test-key-not-a-secret"
LIST_DIR = ToolSpec("list_dir", "List a folder.", {"type": "object", "properties": {"path": {"type": "string"}},
                                                   "required": ["path"]})


@pytest.fixture
def provider(server: FakeGeminiServer) -> Iterator[GeminiProvider]:
    p = GeminiProvider(Config(), api_key=KEY, base_url=server.url, sdk_retry_initial_delay_s=0.01,
                       sdk_retry_max_delay_s=0.02)
    yield p
    p.close()


def request(tier: int, **kw) -> ProviderRequest:  # type: ignore[no-untyped-def]
    base = {1: dict(system="You are the orchestrator.", response_schema=TrackProposal, thinking="high"),
            2: dict(system="You are the tech lead.", response_schema=TicketPlan, thinking="medium"),
            3: dict(system="You are a worker.", tools=(LIST_DIR,), thinking="low"),
            4: dict(system="You are QA.", response_schema=Review, thinking="low")}[tier]
    args = {"model": "gemini-3.8-flash", "tier": tier, "messages": (user("EPIC: add a greeting"),),
            "prov": Provenance(tier=tier, ticket_id="T1" if tier >= 3 else None, attempt=1), **base, **kw}
    return ProviderRequest(**args)


def collect(provider: GeminiProvider, req: ProviderRequest, cancel: threading.Event | None = None) -> list:
    return list(provider.stream(req, cancel or threading.Event()))


def test_planning_request_carries_system_schema_and_thinking(provider: GeminiProvider,
                                                             server: FakeGeminiServer) -> None:
    events = collect(provider, request(1))
    fin = events[-1]
    assert isinstance(fin, Finish) and fin.reason == "stop"
    assert TrackProposal.model_validate_json(fin.message.text).tracks[0].title == "Track 1"
    assert "".join(e.text for e in events if isinstance(e, TextChunk)) == fin.message.text
    [rec] = server.generate_requests()
    assert rec.path == "/v1/models/gemini-3.8-flash:streamGenerateContent" and rec.query == {"alt": "sse"}
    assert rec.system_text == "You are the orchestrator."
    assert get_field(rec.generation_config, "response_mime_type") == "application/json"
    assert rec.schema_fields == {"tracks"}
    assert get_field(get_field(rec.generation_config, "thinking_config"), "thinking_level") == "HIGH"
    assert rec.key_matches(KEY) and rec.headers["x-goog-api-key"] == "<redacted>"
    assert rec.function_declarations == []


def test_gemini_25_gets_a_thinking_budget_and_v1beta_is_honoured(server: FakeGeminiServer) -> None:
    cfg = Config()
    cfg = cfg.updated({"gemini": {"api_version": "v1beta"}})
    p = GeminiProvider(cfg, api_key=KEY, base_url=server.url)
    try:
        collect(p, request(2, model="gemini-2.5-flash", thinking="off"))
    finally:
        p.close()
    [rec] = server.generate_requests()
    assert rec.api_version == "v1beta" and rec.model == "gemini-2.5-flash"
    assert get_field(get_field(rec.generation_config, "thinking_config"), "thinking_budget") == 0
    assert rec.schema_fields == {"tickets"}


def test_usage_is_cumulative_and_the_last_chunk_matches_the_server_token_for_token(
        provider: GeminiProvider, server: FakeGeminiServer) -> None:
    usage = {"promptTokenCount": 4321, "candidatesTokenCount": 765, "thoughtsTokenCount": 89,
             "cachedContentTokenCount": 1000, "toolUsePromptTokenCount": 12, "totalTokenCount": 5187}
    server.set_script(Script(text="a fairly long answer, streamed in several pieces", usage=usage, chunk_chars=8))
    events = collect(provider, request(4, model="gemini-3.5-flash-lite"))
    usages = [e.usage for e in events if isinstance(e, UsageChunk)]
    assert len(usages) > 2
    assert [u.output_tokens for u in usages] == sorted(u.output_tokens for u in usages)  # cumulative, growing
    assert usages[-1] == Usage(model="gemini-3.5-flash-lite", prompt_tokens=4321, output_tokens=765,
                               thinking_tokens=89, cached_tokens=1000, tool_use_prompt_tokens=12)
    assert server.usage_sent() == [usage]


def test_worker_tool_round_trip_keeps_the_thought_signature_and_matches_responses(
        provider: GeminiProvider, server: FakeGeminiServer) -> None:
    first = collect(provider, request(3))
    calls = [e.call for e in first if isinstance(e, ToolCallChunk)]
    fin = first[-1]
    assert fin.reason == "tool_calls" and [c.name for c in calls] == ["list_dir"]
    assert calls[0].id == "T1-a1-t0-c0"  # the fake gives no id: a deterministic one is made
    assert len(server.generate_requests()) == 1  # automatic function calling did not run the tool
    [rec1] = server.generate_requests()
    assert rec1.tool_names == ["list_dir"]
    decl = rec1.function_declarations[0]
    assert get_field(decl, "parameters_json_schema") == LIST_DIR.parameters
    assert get_field(get_field(rec1.body, "tool_config"), "function_calling_config") == {"mode": "AUTO"}

    result = ToolResult(calls[0].id, "list_dir", True, {"entries": ["README.md", "src/"]})
    second_req = request(3, messages=(user("EPIC: add a greeting"), fin.message,
                                      Message(role="tool", tool_results=(result,))))
    second = collect(provider, second_req)
    assert second[-1].reason == "stop" and "Work complete" in second[-1].message.text
    rec2 = server.generate_requests()[-1]
    sent_signature = base64.b64encode(b"sig-call-0").decode()
    [model_turn] = rec2.model_turns
    assert model_turn["parts"][-1]["thoughtSignature"] == sent_signature
    assert model_turn["parts"][-1]["functionCall"] == {"name": "list_dir", "args": {"path": "."}}
    assert rec2.function_responses == [{"name": "list_dir", "response": result.for_model()}]


def test_gemini_call_ids_are_kept_and_echoed(server: FakeGeminiServer, provider: GeminiProvider) -> None:
    server.set_script(PipelineScript(call_ids=True))
    first = collect(provider, request(3))
    call = first[-1].message.tool_calls[0]
    assert call.id == "call-0"
    result = ToolResult(call.id, call.name, False, error="not a folder")
    collect(provider, request(3, messages=(user("go"), first[-1].message, Message(role="tool",
                                                                                 tool_results=(result,)))))
    assert server.generate_requests()[-1].function_responses == [
        {"name": "list_dir", "response": {"ok": False, "error": "not a folder"}, "id": "call-0"}]


def test_thoughts_stream_as_thought_chunks_but_stay_out_of_the_text(provider: GeminiProvider,
                                                                     server: FakeGeminiServer) -> None:
    server.set_script(Script(thoughts=["Considering the plan."], text='{"verdict": "pass", "hint": ""}'))
    events = collect(provider, request(4))
    assert events[0] == TextChunk("Considering the plan.", thought=True)
    assert events[-1].message.text == '{"verdict": "pass", "hint": ""}'


def test_malformed_json_text_is_streamed_as_is(provider: GeminiProvider, server: FakeGeminiServer) -> None:
    server.set_script(Script(text='{"tracks": [ {"title": "unterminated'))
    fin = collect(provider, request(1))[-1]
    assert fin.reason == "stop" and fin.message.text == '{"tracks": [ {"title": "unterminated'


def test_cancel_between_chunks(provider: GeminiProvider, server: FakeGeminiServer) -> None:
    server.set_script(Script(text="x" * 200, chunk_chars=10))
    cancel = threading.Event()
    seen = []
    with pytest.raises(Cancelled):
        for ev in provider.stream(request(3), cancel):
            seen.append(ev)
            cancel.set()
    assert len([e for e in seen if isinstance(e, TextChunk)]) == 1
    assert len(server.generate_requests()) == 1


def test_cancel_while_waiting_for_the_next_chunk_cuts_the_stream(provider: GeminiProvider,
                                                                  server: FakeGeminiServer) -> None:
    server.set_script(Script(text=["first", "second"], chunk_delay_s=30))
    cancel = threading.Event()
    stream = provider.stream(request(3), cancel)
    assert next(stream) == TextChunk("first")
    next(stream)  # its usage
    timer = threading.Timer(0.1, cancel.set)  # fires while the reader is blocked in the socket
    timer.start()
    with pytest.raises(Cancelled):
        next(stream)
    timer.join()
    assert server.wait_for_responses(1)
    assert server.responses()[0].completed is False


def test_deadline_ends_a_silent_stream_with_call_timeout(provider: GeminiProvider,
                                                         server: FakeGeminiServer) -> None:
    server.set_script(Script(text=["first", "second"], chunk_delay_s=30))
    with pytest.raises(CallTimeout) as info:
        collect(provider, request(3, timeout_s=0.3))
    assert info.value.usage is not None and info.value.usage.partial
    assert len(server.generate_requests()) == 1


def test_concurrent_streams_share_one_client(provider: GeminiProvider, server: FakeGeminiServer) -> None:
    server.set_script(Script(text="parallel answer", chunk_chars=4))
    results: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(collect(provider, request(4))[-1].message.text)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors and results == ["parallel answer"] * 6
    assert len(server.generate_requests()) == 6


def test_list_models_and_count_tokens(provider: GeminiProvider, server: FakeGeminiServer) -> None:
    assert "gemini-3.8-flash" in provider.list_models()
    assert provider.count_tokens(request(1)) > 0
    assert [r.action for r in server.requests()] == ["list", "countTokens"]
    server.models_status = 503
    assert provider.list_models() == []


def test_real_endpoint_refused_when_real_requests_are_off() -> None:
    p = GeminiProvider(Config(), api_key=KEY)
    with real_model_requests(False), pytest.raises(NetworkForbidden):
        collect(p, request(1))
    with real_model_requests(False):
        assert p.list_models() == []
    assert p.offline is False and "googleapis" in p.base_url


def test_watcher_thread_and_connections_are_released(server: FakeGeminiServer) -> None:
    before = {t.ident for t in threading.enumerate()}
    p = GeminiProvider(Config(), api_key=KEY, base_url=server.url)
    collect(p, request(4))
    p.close()
    server.stop()
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert leftover == []
