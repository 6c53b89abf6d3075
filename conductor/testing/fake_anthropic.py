"""A fake Anthropic Messages API server on 127.0.0.1; the real `anthropic` SDK talks to it.

    POST /v1/messages     stream=true: SSE (`event: message_start` ... `event: message_stop`); else JSON
    GET  /v1/models       the model list

Answers come from the same `Script`s as the fake Gemini server (see `dialect_server`): thoughts become a
`thinking` block (with a signature), text a `text` block, function calls `tool_use` blocks whose input is
streamed as `input_json_delta` pieces. Usage is delivered the way Anthropic does it and recorded as
delivered (`ResponseRecord.usage`): `message_start` carries input_tokens (cache excluded),
cache_read_input_tokens, cache_creation_input_tokens and a first output_tokens; `message_delta` carries
the cumulative output_tokens (thinking included) with output_tokens_details.thinking_tokens.

Faults: HTTP errors in Anthropic's error shape (429 with retry-after, 529 overloaded, 400 "prompt is too
long", 401), an `event: error` mid-stream, a cut connection, a stream without message_delta/stop, a
refusal (`stop_reason: "refusal"`, from finish_reason="SAFETY") and max_tokens. The x-api-key header is
redacted at capture.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from conductor.testing.dialect_server import DialectServer, gemini_usage, illegal_function_name, text_pieces
from conductor.testing.fake_gemini import _Handler
from conductor.testing.gemini_script import (
    PipelineScript,
    RequestRecord,
    ResponseRecord,
    Script,
    ScriptSource,
    classify_request,
)

DEFAULT_MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5")
STOP = {"STOP": "end_turn", "MAX_TOKENS": "max_tokens", "SAFETY": "refusal", "PROHIBITED_CONTENT": "refusal"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               529: "overloaded_error"}


class MessagesRecord(RequestRecord):
    """A Messages API request, with the same accessors as a Gemini request."""

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list((self.body or {}).get("messages") or []) if isinstance(self.body, dict) else []

    def _blocks(self, role: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for m in self.messages:
            if m.get("role") == role:
                c = m.get("content")
                out += [{"type": "text", "text": c}] if isinstance(c, str) else list(c or [])
        return out

    @property
    def system_text(self) -> str:
        sys = (self.body or {}).get("system") or ""
        return sys if isinstance(sys, str) else "".join(b.get("text", "") for b in sys)

    @property
    def user_text(self) -> str:
        return "\n".join(b.get("text", "") for b in self._blocks("user") if b.get("type") == "text")

    @property
    def response_schema(self) -> dict[str, Any] | None:
        fmt = ((self.body or {}).get("output_config") or {}).get("format") or {}
        return fmt.get("schema") if fmt.get("type") == "json_schema" else None

    @property
    def schema_fields(self) -> set[str]:
        schema = self.response_schema
        if schema is not None:
            return set((schema.get("properties") or {}).keys())
        return {name for name in ("tracks", "tickets", "verdict") if f'"{name}"' in self.system_text}

    @property
    def function_declarations(self) -> list[dict[str, Any]]:
        return list((self.body or {}).get("tools") or [])

    @property
    def function_responses(self) -> list[dict[str, Any]]:
        names = {b.get("id"): b.get("name") for b in self._blocks("assistant") if b.get("type") == "tool_use"}
        out = []
        for b in self._blocks("user"):
            if b.get("type") == "tool_result":
                content = b.get("content")
                text = content if isinstance(content, str) else "".join(x.get("text", "") for x in content or [])
                try:
                    resp = json.loads(text)
                except ValueError:
                    resp = text
                out.append({"name": names.get(b.get("tool_use_id")), "id": b.get("tool_use_id"), "response": resp})
        return out

    @property
    def model_turns(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("role") == "assistant"]

    @property
    def function_names(self) -> list[tuple[str, object]]:
        """Every function name the request carries, with where it is: the tools, and the history's tool_use."""
        body = self.body if isinstance(self.body, dict) else {}
        out: list[tuple[str, object]] = [(f"tools.{i}.name", t.get("name"))
                                         for i, t in enumerate(body.get("tools") or [])]
        for i, m in enumerate(self.messages):
            blocks = m.get("content")
            out += [(f"messages.{i}.content.{j}.name", b.get("name")) for j, b in enumerate(blocks or [])
                    if not isinstance(blocks, str) and b.get("type") == "tool_use"]
        return out

    @property
    def streamed(self) -> bool:
        return bool((self.body or {}).get("stream"))


def anthropic_usage(g: Mapping[str, int]) -> dict[str, Any]:
    """A Gemini-style script usage as Anthropic reports it: input excludes cache reads and writes; output
    includes thinking."""
    prompt = g.get("promptTokenCount", 0) + g.get("toolUsePromptTokenCount", 0)
    read, write = g.get("cachedContentTokenCount", 0), g.get("cacheWriteTokenCount", 0)
    thinking = g.get("thoughtsTokenCount", 0)
    usage: dict[str, Any] = {"input_tokens": max(prompt - read - write, 0), "cache_read_input_tokens": read,
                             "cache_creation_input_tokens": write,
                             "output_tokens": g.get("candidatesTokenCount", 0) + thinking}
    if thinking:
        usage["output_tokens_details"] = {"thinking_tokens": thinking}
    return usage


class FakeAnthropicServer(DialectServer):
    """The fake Messages API server. Use as a context manager; thread-safe."""

    key_headers = ("x-api-key", "authorization")
    record_cls = MessagesRecord
    name = "fake-anthropic"

    def __init__(self, script: ScriptSource | Mapping[str, ScriptSource] | None = None, *,
                 classify: Callable[[RequestRecord], str] = classify_request,
                 models: Sequence[str] = DEFAULT_MODELS, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(script if script is not None else PipelineScript(), classify=classify, models=models,
                         host=host, port=port)

    def route(self, method: str, path: str) -> str | None:
        if method == "POST" and path.rstrip("/").endswith("/v1/messages"):
            return "chat"
        if method == "GET" and path.rstrip("/").endswith("/v1/models"):
            return "models"
        return None

    def serve_models(self, h: _Handler, record: RequestRecord) -> None:
        if self.models_status is not None:
            self._error(h, self.models_status, "model list unavailable", None)
            return
        data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-09-29T00:00:00Z"}
                for m in self.models]
        self._send_json(h, 200, {"data": data, "has_more": False, "first_id": self.models[0] if self.models else None,
                                 "last_id": self.models[-1] if self.models else None})

    def _error(self, h: _Handler, status: int, message: str, etype: str | None,
               headers: Mapping[str, str] | None = None) -> None:
        kind = etype or ERROR_TYPES.get(status, "api_error")
        self._send_json(h, status, {"type": "error", "error": {"type": kind, "message": message or kind},
                                    "request_id": "req_fake"}, headers)

    def serve_chat(self, h: _Handler, record: RequestRecord) -> None:
        assert isinstance(record, MessagesRecord)
        script, n = self._next_script(record)
        rec = ResponseRecord(request_seq=record.seq, role=record.role, n=n,
                             kind="stream" if record.streamed else "unary")
        try:
            if script.latency_s and self._stopping.wait(script.latency_s):
                return
            if (refusal := illegal_function_name(record.function_names)) is not None:
                rec.kind = "http 400 function name"
                self._error(h, 400, refusal, None)
                return
            if script.http_status is not None:
                rec.kind = f"http {script.http_status}"
                extra = {"retry-after": script.retry_after} if script.retry_after else {}
                self._error(h, script.http_status, script.error_message, script.error_type, extra)
                return
            usage = anthropic_usage(gemini_usage(script, max(1, len(json.dumps(record.messages)) // 4)))
            if record.streamed:
                self._chat_stream(h, record, script, usage, rec)
            else:
                self._chat_unary(h, record, script, usage, rec)
        except OSError:
            rec.client_disconnected = True
            h.close_connection = True
        finally:
            self._add_response(rec)

    def _blocks(self, script: Script, n: int) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if script.thoughts:
            blocks.append({"type": "thinking", "thinking": "".join(script.thoughts),
                           "signature": script.thought_signature or f"sig-{n}"})
        text = "".join(text_pieces(script))
        if text or not script.function_calls:
            blocks.append({"type": "text", "text": text})
        for i, c in enumerate(script.function_calls):
            blocks.append({"type": "tool_use", "id": c.get("id") or f"toolu_{n}_{i}", "name": c["name"],
                           "input": dict(c.get("args") or {})})
        return blocks

    def _stop(self, script: Script) -> str | None:
        if script.finish_reason is None:
            return None
        if script.function_calls and script.finish_reason == "STOP":
            return "tool_use"
        return STOP.get(script.finish_reason, "end_turn")

    def _chat_unary(self, h: _Handler, record: MessagesRecord, script: Script, usage: dict[str, Any],
               rec: ResponseRecord) -> None:
        body = {"id": f"msg_{rec.request_seq}", "type": "message", "role": "assistant", "model": record.model,
                "content": self._blocks(script, rec.n), "stop_reason": self._stop(script) or "end_turn",
                "stop_sequence": None, "usage": usage}
        rec.usage, rec.completed = usage, True
        self._add_response(rec)
        self._send_json(h, 200, body)

    def _events(self, script: Script, n: int, record: MessagesRecord, usage: dict[str, Any]
                ) -> list[tuple[str, dict[str, Any]]]:
        start_usage = {k: v for k, v in usage.items() if k != "output_tokens_details"} | {"output_tokens": 1}
        events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": {
            "id": f"msg_{record.seq}", "type": "message", "role": "assistant", "model": record.model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": start_usage}})]
        for i, block in enumerate(self._blocks(script, n)):
            kind = block["type"]
            if kind == "thinking":
                events.append(("content_block_start", {"type": "content_block_start", "index": i, "content_block": {
                    "type": "thinking", "thinking": "", "signature": ""}}))
                for t in script.thoughts:
                    events.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                           "delta": {"type": "thinking_delta", "thinking": t}}))
                events.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                       "delta": {"type": "signature_delta",
                                                                 "signature": block["signature"]}}))
            elif kind == "text":
                events.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                       "content_block": {"type": "text", "text": ""}}))
                for piece in text_pieces(script):
                    events.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                           "delta": {"type": "text_delta", "text": piece}}))
            else:
                events.append(("content_block_start", {"type": "content_block_start", "index": i, "content_block": {
                    "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}}))
                args = json.dumps(block["input"])
                half = max(len(args) // 2, 1)
                for piece in (args[:half], args[half:]):
                    if piece:
                        events.append(("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {
                            "type": "input_json_delta", "partial_json": piece}}))
            events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
            if i == 0:
                events.append(("ping", {"type": "ping"}))
        stop = self._stop(script)
        if stop is not None:
            delta_usage = {"output_tokens": usage["output_tokens"]}
            if "output_tokens_details" in usage:
                delta_usage["output_tokens_details"] = usage["output_tokens_details"]
            events.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop,
                                                                                "stop_sequence": None},
                                             "usage": delta_usage}))
            events.append(("message_stop", {"type": "message_stop"}))
        return events

    def _chat_stream(self, h: _Handler, record: MessagesRecord, script: Script, usage: dict[str, Any],
                rec: ResponseRecord) -> None:
        self.start_sse(h)
        events = self._events(script, rec.n, record, usage)
        for i, (name, data) in enumerate(events):
            if i and script.chunk_delay_s and self._pause(h, script.chunk_delay_s, rec):
                return
            if self._fault(h, script, i, rec):
                return
            if name == "message_start":
                rec.usage = dict(data["message"]["usage"])
            elif name == "message_delta":
                rec.usage = {**(rec.usage or {}), **data["usage"]}
            if name == "message_stop":
                rec.completed = True
                self._add_response(rec)
            self.sse(h, data, event=name)
        if self._fault(h, script, len(events), rec):
            return
        if not rec.completed:
            rec.kind = "no finish"
        self.end_body(h)

    def _fault(self, h: _Handler, script: Script, i: int, rec: ResponseRecord) -> bool:
        if script.error_after == i:
            rec.kind = "error event"
            kind = ERROR_TYPES.get(script.error_code, "api_error")
            self.sse(h, {"type": "error", "error": {"type": kind, "message": "Overloaded"}}, event="error")
            self.end_body(h)
            return True
        if script.bad_event_after == i:
            rec.kind = "bad event"
            self.sse(h, "{this is not json", event="content_block_delta")
            self.end_body(h)
            return True
        if script.cut_after == i:
            rec.kind = "cut"
            self.cut(h)
            return True
        return False


__all__ = ["FakeAnthropicServer", "MessagesRecord", "PipelineScript", "Script", "anthropic_usage"]
