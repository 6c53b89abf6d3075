"""The pure Gemini mapping, on dict fixtures: requests, usage, finish reasons, tool-call ids, errors."""

from __future__ import annotations

import pytest

from conductor.errors import (BadRequest, CallTimeout, ProviderError, ProviderUnavailable, RateLimited,
                              StreamInterrupted)
from conductor.events import Provenance
from conductor.messages import Message, ToolCall, ToolResult, ToolSpec, user
from conductor.model import Review, Usage
from conductor.providers import gemini_mapping as gm
from conductor.providers.base import Finish, ProviderRequest, TextChunk, ToolCallChunk, UsageChunk

LIST_DIR = ToolSpec("list_dir", "List a folder.", {"type": "object", "properties": {"path": {"type": "string"}}})


def req(**kw) -> ProviderRequest:  # type: ignore[no-untyped-def]
    base = {"model": "gemini-3.8-flash", "tier": 3, "system": "sys", "messages": (user("hi"),)}
    return ProviderRequest(**{**base, **kw})


# --- thinking ---

@pytest.mark.parametrize("model, level, expected", [
    ("gemini-3.8-flash", "off", None),
    ("gemini-3.8-flash", "minimal", {"thinking_level": "MINIMAL"}),
    ("gemini-3.1-pro-preview", "high", {"thinking_level": "HIGH"}),
    ("models/gemini-3.5-flash-lite", "medium", {"thinking_level": "MEDIUM"}),
    ("gemini-2.5-flash", "off", {"thinking_budget": 0}),
    ("gemini-2.5-flash-lite", "low", {"thinking_budget": 2048}),
    ("gemini-2.5-pro", "off", {"thinking_budget": 128}),
    ("gemini-2.5-pro", "high", {"thinking_budget": 24576}),
    ("gemini-2.0-flash", "high", None),
    ("some-other-model", "high", None),
])
def test_thinking_config_per_model_family(model: str, level: str, expected: dict | None) -> None:
    assert gm.thinking_config(model, level) == expected


# --- contents ---

def test_user_and_plain_model_turns() -> None:
    contents = gm.to_contents([user("a"), Message(role="model", text="b"), user("c")])
    assert contents == [{"role": "user", "parts": [{"text": "a"}]}, {"role": "model", "parts": [{"text": "b"}]},
                        {"role": "user", "parts": [{"text": "c"}]}]


def test_native_model_content_is_sent_verbatim_and_ids_echo_only_when_gemini_gave_them() -> None:
    native = {"role": "model", "parts": [
        {"text": "looking", "thought_signature": "c2ln"},
        {"function_call": {"name": "list_dir", "args": {"path": "."}, "id": "g-1"}},
        {"function_call": {"name": "list_dir", "args": {"path": "src"}}, "thought_signature": "c2lnMg=="}]}
    model = Message(role="model", text="looking", native=native,
                    tool_calls=(ToolCall("g-1", "list_dir", {"path": "."}), ToolCall("T1-a1-t0-c1", "list_dir")))
    results = Message(role="tool", tool_results=(ToolResult("g-1", "list_dir", True, {"entries": ["a"]}),
                                                 ToolResult("T1-a1-t0-c1", "list_dir", False, error="nope")))
    contents = gm.to_contents([user("go"), model, results])
    assert contents[1] is native
    assert contents[2] == {"role": "user", "parts": [
        {"function_response": {"name": "list_dir", "response": {"ok": True, "entries": ["a"]}, "id": "g-1"}},
        {"function_response": {"name": "list_dir", "response": {"ok": False, "error": "nope"}}}]}


def test_model_turn_without_native_is_rebuilt_and_tool_results_merge_with_a_following_user_turn() -> None:
    model = Message(role="model", tool_calls=(ToolCall("c1", "list_dir", {"path": "."}),))
    results = Message(role="tool", tool_results=(ToolResult("c1", "list_dir", True, {"entries": []}),))
    contents = gm.to_contents([user("go"), model, results, user("hint: be brief")])
    assert contents[1] == {"role": "model", "parts": [
        {"function_call": {"id": "c1", "name": "list_dir", "args": {"path": "."}}}]}
    assert contents[2]["parts"][0]["function_response"]["id"] == "c1"
    assert contents[2]["parts"][1] == {"text": "hint: be brief"}
    assert len(contents) == 3


# --- config ---

def test_config_for_a_planning_tier() -> None:
    kw = gm.config_kwargs(req(tier=4, response_schema=Review, thinking="low", max_output_tokens=512))
    assert kw["system_instruction"] == "sys"
    assert kw["response_mime_type"] == "application/json" and kw["response_schema"] is Review
    assert kw["automatic_function_calling"] == {"disable": True}
    assert kw["automatic_continuation"] is False
    assert kw["thinking_config"] == {"thinking_level": "LOW"}
    assert kw["max_output_tokens"] == 512
    assert "tools" not in kw and "http_options" not in kw


def test_config_for_a_worker_declares_tools_as_json_schema() -> None:
    kw = gm.config_kwargs(req(tools=(LIST_DIR,), thinking="off"), timeout_ms=1500)
    assert kw["tools"] == [{"function_declarations": [
        {"name": "list_dir", "description": "List a folder.", "parameters_json_schema": LIST_DIR.parameters}]}]
    assert kw["tool_config"] == {"function_calling_config": {"mode": "AUTO"}}
    assert "thinking_config" not in kw and "response_schema" not in kw
    assert kw["http_options"] == {"timeout": 1500}


# --- usage and finish ---

def test_usage_maps_every_count_in_either_spelling() -> None:
    camel = {"promptTokenCount": 1200, "candidatesTokenCount": 340, "thoughtsTokenCount": 56,
             "cachedContentTokenCount": 700, "toolUsePromptTokenCount": 9, "totalTokenCount": 1605}
    snake = {"prompt_token_count": 1200, "candidates_token_count": 340, "thoughts_token_count": 56,
             "cached_content_token_count": 700, "tool_use_prompt_token_count": 9}
    expected = Usage(model="gemini-3.8-flash", prompt_tokens=1200, output_tokens=340, thinking_tokens=56,
                     cached_tokens=700, tool_use_prompt_tokens=9)
    assert gm.usage_from_metadata(camel, "models/gemini-3.8-flash") == expected
    assert gm.usage_from_metadata(snake, "gemini-3.8-flash") == expected
    assert gm.usage_from_metadata({"promptTokenCount": 5}, "m").output_tokens == 0


@pytest.mark.parametrize("reason, calls, expected", [
    ("STOP", False, "stop"), ("STOP", True, "tool_calls"), ("MAX_TOKENS", False, "max_tokens"),
    ("SAFETY", False, "safety"), ("PROHIBITED_CONTENT", False, "safety"), ("BLOCKLIST", False, "safety"),
    ("SPII", False, "safety"), ("RECITATION", False, "safety"), ("MALFORMED_FUNCTION_CALL", False, "other"),
    ("OTHER", False, "other"), ("FinishReason.STOP", False, "other"),
])
def test_finish_reasons(reason: str, calls: bool, expected: str) -> None:
    assert gm.map_finish_reason(reason, calls) == expected


def chunk(parts: list[dict] | None = None, finish: str | None = None, usage: dict | None = None,
          block: str | None = None) -> dict:
    out: dict = {}
    if parts is not None or finish:
        cand: dict = {"content": {"role": "model", "parts": parts or []}}
        if finish:
            cand["finish_reason"] = finish
        out["candidates"] = [cand]
    if usage:
        out["usage_metadata"] = usage
    if block:
        out["prompt_feedback"] = {"block_reason": block}
    return out


def test_assembler_yields_deltas_cumulative_usage_and_the_whole_turn() -> None:
    r = req(prov=Provenance(ticket_id="T7", attempt=2, tier=3),
            messages=(user("a"), Message(role="model", text="x"), user("b")))
    turn = gm.TurnAssembler(r)
    events = turn.feed(chunk([{"text": "pondering", "thought": True}], usage={"prompt_token_count": 10}))
    events += turn.feed(chunk([{"text": "Hello "}], usage={"prompt_token_count": 10, "candidates_token_count": 2}))
    events += turn.feed(chunk([{"function_call": {"name": "list_dir", "args": {"path": "."}},
                                "thought_signature": "c2ln"},
                               {"function_call": {"name": "read_file", "args": {"path": "a"}, "id": "g9"}}],
                              finish="STOP", usage={"prompt_token_count": 10, "candidates_token_count": 7,
                                                    "thoughts_token_count": 3}))
    assert events[0] == TextChunk("pondering", thought=True)
    assert [e.usage.output_tokens for e in events if isinstance(e, UsageChunk)] == [0, 2, 7]
    calls = [e.call for e in events if isinstance(e, ToolCallChunk)]
    assert calls == [ToolCall("T7-a2-t1-c0", "list_dir", {"path": "."}), ToolCall("g9", "read_file", {"path": "a"})]
    fin = turn.finish()
    assert fin.reason == "tool_calls" and fin.message.text == "Hello "
    assert fin.message.native["parts"][2]["thought_signature"] == "c2ln"
    assert len(fin.message.native["parts"]) == 4


def test_assembler_prompt_block_is_a_safety_finish() -> None:
    turn = gm.TurnAssembler(req())
    turn.feed(chunk(block="PROHIBITED_CONTENT", usage={"prompt_token_count": 4}))
    fin = turn.finish()
    assert fin == Finish("safety", Message(role="model"), "prompt blocked: PROHIBITED_CONTENT")


def test_assembler_safety_finish_names_the_reason() -> None:
    turn = gm.TurnAssembler(req())
    turn.feed(chunk([{"text": "a"}], finish="RECITATION"))
    assert (turn.finish().reason, turn.finish().detail) == ("safety", "RECITATION")


def test_assembler_without_finish_raises_interrupted_with_partial_usage() -> None:
    turn = gm.TurnAssembler(req())
    turn.feed(chunk([{"text": "abc"}], usage={"prompt_token_count": 8, "candidates_token_count": 1}))
    with pytest.raises(StreamInterrupted) as info:
        turn.finish()
    assert info.value.usage is not None and info.value.usage.partial and info.value.usage.prompt_tokens == 8


# --- errors ---

RETRY_INFO = {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED", "details": [
    {"@type": "type.googleapis.com/google.rpc.QuotaFailure"},
    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"}]}}


def test_retry_delay_from_retry_info_then_retry_after() -> None:
    assert gm.retry_delay_s(RETRY_INFO) == 2.5
    assert gm.retry_delay_s({"error": {"code": 429}}, {"Retry-After": "7"}) == 7.0
    assert gm.retry_delay_s({"error": {"code": 429}}, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert gm.retry_delay_s({"error": {"code": 429}}, {}) is None
    assert gm.retry_delay_s("not a dict") is None


@pytest.mark.parametrize("code, cls", [(429, RateLimited), (500, ProviderUnavailable), (503, ProviderUnavailable),
                                       (504, ProviderUnavailable), (400, BadRequest), (403, BadRequest),
                                       (404, BadRequest), (408, CallTimeout)])
def test_status_before_the_stream(code: int, cls: type) -> None:
    err = gm.error_for_status(code, "the server's words", status="SOME_STATUS", details=RETRY_INFO)
    assert type(err) is cls
    assert str(code) in str(err) and "the server's words" in str(err) and err.status == code
    if cls is RateLimited:
        assert err.retry_after_s == 2.5


def test_any_status_mid_stream_is_an_interruption() -> None:
    usage = Usage(model="m", prompt_tokens=3, partial=True)
    for code in (429, 400, 503):
        err = gm.error_for_status(code, "boom", mid_stream=True, usage=usage, details=RETRY_INFO)
        assert type(err) is StreamInterrupted and err.usage == usage and err.status == code
        assert str(code) in str(err)


class APIError(Exception):
    """A stand-in with the SDK's APIError shape (duck typing: no SDK import needed)."""

    def __init__(self, code: int, body: dict, headers: dict | None = None) -> None:
        super().__init__(f"{code} {body}")
        self.code, self.details = code, body
        self.message, self.status = body["error"]["message"], body["error"]["status"]
        self.response = type("R", (), {"headers": headers or {}})()


class ClientError(APIError):
    pass


class RemoteProtocolError(Exception):
    pass


class ConnectError(Exception):
    pass


class TimeoutException(Exception):
    pass


class HttpxReadTimeout(TimeoutException):
    pass


def test_translate_sdk_and_transport_exceptions() -> None:
    assert isinstance(gm.translate_exception(ClientError(429, RETRY_INFO), mid_stream=False), RateLimited)
    assert isinstance(gm.translate_exception(ClientError(429, RETRY_INFO), mid_stream=True), StreamInterrupted)
    assert isinstance(gm.translate_exception(ConnectError("refused"), mid_stream=False), ProviderUnavailable)
    assert isinstance(gm.translate_exception(RemoteProtocolError("cut"), mid_stream=True), StreamInterrupted)
    assert isinstance(gm.translate_exception(RemoteProtocolError("cut"), mid_stream=False), ProviderUnavailable)
    assert isinstance(gm.translate_exception(HttpxReadTimeout("slow"), mid_stream=True), CallTimeout)
    assert isinstance(gm.translate_exception(ValueError("bad"), mid_stream=False), BadRequest)
    assert type(gm.translate_exception(RuntimeError("odd"), mid_stream=False)) is ProviderError


def test_translation_redacts_secrets() -> None:
    key = "AIza-secret-123"
    body = {"error": {"code": 400, "message": f"API key {key} not valid", "status": "INVALID_ARGUMENT"}}
    err = gm.translate_exception(ClientError(400, body), mid_stream=False, secrets=[key])
    assert key not in str(err) and "[redacted]" in str(err) and "400" in str(err)
    err2 = gm.translate_exception(ConnectError(f"failed for {key}"), mid_stream=False, secrets=[key])
    assert key not in str(err2)


def test_synthesized_ids_are_deterministic_and_non_empty() -> None:
    prov = Provenance(ticket_id="T3", attempt=1)
    assert gm.synth_call_id(prov, 2, 0) == gm.synth_call_id(prov, 2, 0) == "T3-a1-t2-c0"
    assert gm.synth_call_id(Provenance(tier=1), 0, 1) == "tier1-a0-t0-c1"
