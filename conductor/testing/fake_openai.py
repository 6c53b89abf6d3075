"""A fake OpenAI-compatible chat-completions server on 127.0.0.1 (OpenAI, Ollama /v1, llama.cpp, vLLM).

    POST {prefix}/chat/completions    stream=true: SSE `data: {chunk}` ... `data: [DONE]`; stream=false: JSON
    GET  {prefix}/models              the model list

The real `openai` SDK talks to it. Answers come from the same `Script`s as the fake Gemini server (see
`dialect_server`); `Quirks` make it behave like a particular endpoint:

    usage="on_request"        usage only when the request sends stream_options.include_usage (OpenAI, vLLM)
    usage="never"             never any usage in a stream (old servers; usage must then be estimated)
    usage="reject_options"    HTTP 400 for any request with stream_options (Azure, some proxies, old Ollama)
    usage="continuous"        usage on every chunk (vLLM's continuous_usage_stats)
    choices_null_final        the usage chunk carries `"choices": null` (vLLM), not `[]`
    tool_index=False          tool-call deltas without an `index`, each call whole in one delta (old Ollama)
    stream_tools=False        a streamed request WITH tools is answered with one plain JSON completion
    json_schema=False         HTTP 400 for a `response_format` of type json_schema (older llama.cpp / proxies)
    timings                   llama.cpp's non-standard `timings` object on the final chunk

Usage is recorded as delivered, in OpenAI's format (`ResponseRecord.usage`): prompt_tokens (cached
included), completion_tokens (reasoning included), prompt_tokens_details.cached_tokens,
completion_tokens_details.reasoning_tokens. The Authorization header is redacted at capture (only a
fingerprint of the key is kept).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

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

DEFAULT_MODELS = ("gpt-5", "gpt-5-mini", "llama3.1:8b")
FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter", "PROHIBITED_CONTENT": "content_filter"}


@dataclass(frozen=True)
class Quirks:
    usage: Literal["on_request", "never", "reject_options", "continuous"] = "on_request"
    choices_null_final: bool = False
    tool_index: bool = True
    stream_tools: bool = True
    json_schema: bool = True
    timings: bool = False


class ChatRecord(RequestRecord):
    """A chat-completions request, with the same accessors as a Gemini request (so `classify_request` and
    `PipelineScript` work unchanged)."""

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list((self.body or {}).get("messages") or []) if isinstance(self.body, dict) else []

    def _text(self, role: str) -> str:
        out = []
        for m in self.messages:
            if m.get("role") == role:
                c = m.get("content")
                out.append(c if isinstance(c, str) else "".join(p.get("text", "") for p in c or []))
        return "\n".join(out)

    @property
    def system_text(self) -> str:
        return self._text("system") or self._text("developer")

    @property
    def user_text(self) -> str:
        return self._text("user")

    @property
    def response_schema(self) -> dict[str, Any] | None:
        fmt = (self.body or {}).get("response_format") or {}
        return (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None

    @property
    def schema_fields(self) -> set[str]:
        schema = self.response_schema
        if schema is not None:
            return set((schema.get("properties") or {}).keys())
        found = set()  # the schema went into the instructions instead (an endpoint without json_schema)
        for name in ("tracks", "tickets", "verdict"):
            if f'"{name}"' in self.system_text:
                found.add(name)
        return found

    @property
    def function_declarations(self) -> list[dict[str, Any]]:
        return [t.get("function") or {} for t in (self.body or {}).get("tools") or []]

    @property
    def function_responses(self) -> list[dict[str, Any]]:
        names = {c.get("id"): (c.get("function") or {}).get("name") for m in self.messages
                 if m.get("role") == "assistant" for c in m.get("tool_calls") or []}
        out = []
        for m in self.messages:
            if m.get("role") == "tool":
                try:
                    resp = json.loads(m.get("content") or "null")
                except ValueError:
                    resp = m.get("content")
                out.append({"name": names.get(m.get("tool_call_id")), "id": m.get("tool_call_id"), "response": resp})
        return out

    @property
    def model_turns(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("role") == "assistant"]

    @property
    def streamed(self) -> bool:
        return bool((self.body or {}).get("stream"))

    @property
    def function_names(self) -> list[tuple[str, object]]:
        """Every function name the request carries, with where it is: the tools, and the history's calls."""
        body = self.body if isinstance(self.body, dict) else {}
        out: list[tuple[str, object]] = [(f"tools[{i}].function.name", (t.get("function") or {}).get("name"))
                                         for i, t in enumerate(body.get("tools") or [])]
        for i, m in enumerate(self.messages):
            out += [(f"messages[{i}].tool_calls[{j}].function.name", (c.get("function") or {}).get("name"))
                    for j, c in enumerate(m.get("tool_calls") or [])]
        return out

    @property
    def include_usage(self) -> bool:
        return bool(((self.body or {}).get("stream_options") or {}).get("include_usage"))


def openai_usage(g: Mapping[str, int]) -> dict[str, Any]:
    """A Gemini-style script usage as OpenAI reports it (no token twice: reasoning is inside completion)."""
    prompt = g.get("promptTokenCount", 0) + g.get("toolUsePromptTokenCount", 0)
    completion = g.get("candidatesTokenCount", 0) + g.get("thoughtsTokenCount", 0)
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}
    if g.get("cachedContentTokenCount"):
        usage["prompt_tokens_details"] = {"cached_tokens": g["cachedContentTokenCount"], "audio_tokens": 0}
    if g.get("thoughtsTokenCount"):
        usage["completion_tokens_details"] = {"reasoning_tokens": g["thoughtsTokenCount"], "audio_tokens": 0}
    return usage


def _partial(final: Mapping[str, Any], i: int, n: int) -> dict[str, Any]:
    """Cumulative usage after event i of n (continuous usage stats)."""
    if i >= n - 1:
        return dict(final)
    done = final["completion_tokens"] * (i + 1) // n
    return {"prompt_tokens": final["prompt_tokens"], "completion_tokens": done,
            "total_tokens": final["prompt_tokens"] + done}


class FakeOpenAIServer(DialectServer):
    """The fake chat-completions server. Use as a context manager; thread-safe."""

    key_headers = ("authorization", "api-key")
    record_cls = ChatRecord
    name = "fake-openai"

    def __init__(self, script: ScriptSource | Mapping[str, ScriptSource] | None = None, *,
                 quirks: Quirks = Quirks(), classify: Callable[[RequestRecord], str] = classify_request,
                 models: Sequence[str] = DEFAULT_MODELS, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(script if script is not None else PipelineScript(), classify=classify, models=models,
                         host=host, port=port)
        self.quirks = quirks

    def route(self, method: str, path: str) -> str | None:
        if method == "POST" and path.rstrip("/").endswith("/chat/completions"):
            return "chat"
        if method == "GET" and path.rstrip("/").endswith("/models"):
            return "models"
        return None

    def serve_models(self, h: _Handler, record: RequestRecord) -> None:
        if self.models_status is not None:
            self._error(h, self.models_status, "model list unavailable", None)
            return
        self._send_json(h, 200, {"object": "list", "data": [{"id": m, "object": "model", "created": 1700000000,
                                                             "owned_by": "fake"} for m in self.models]})

    def _error(self, h: _Handler, status: int, message: str, etype: str | None,
               headers: Mapping[str, str] | None = None) -> None:
        kind = etype or {400: "invalid_request_error", 401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(
            status, "server_error")
        self._send_json(h, status, {"error": {"message": message or kind, "type": kind, "param": None,
                                              "code": etype or kind}}, headers)

    # -- chat --

    def serve_chat(self, h: _Handler, record: RequestRecord) -> None:
        assert isinstance(record, ChatRecord)
        script, n = self._next_script(record)
        rec = ResponseRecord(request_seq=record.seq, role=record.role, n=n, kind="stream" if record.streamed
                             else "unary")
        try:
            if script.latency_s and self._stopping.wait(script.latency_s):
                return
            if record.body and record.body.get("stream_options") is not None and self.quirks.usage == "reject_options":
                rec.kind = "http 400 stream_options"
                self._error(h, 400, "Unrecognized request argument supplied: stream_options", None)
                return
            if not self.quirks.json_schema and ((record.body or {}).get("response_format") or {}).get(
                    "type") == "json_schema":
                rec.kind = "http 400 response_format"
                self._error(h, 400, "response_format json_schema is not supported", None)
                return
            if (refusal := illegal_function_name(record.function_names)) is not None:
                rec.kind = "http 400 function name"
                self._error(h, 400, refusal, None)
                return
            if script.http_status is not None:
                rec.kind = f"http {script.http_status}"
                extra = {"Retry-After": script.retry_after} if script.retry_after else {}
                self._error(h, script.http_status, script.error_message, script.error_type, extra)
                return
            usage = openai_usage(gemini_usage(script, max(1, len(json.dumps(record.messages)) // 4)))
            if record.streamed and (self.quirks.stream_tools or not record.function_declarations):
                self._chat_stream(h, record, script, usage, rec)
            else:
                self._chat_unary(h, record, script, usage, rec)
        except OSError:
            rec.client_disconnected = True
            h.close_connection = True
        finally:
            self._add_response(rec)

    def _calls(self, script: Script, n: int) -> list[dict[str, Any]]:
        return [{"id": c.get("id") or f"call_{n}_{i}", "type": "function",
                 "function": {"name": c["name"], "arguments": json.dumps(c.get("args") or {})}}
                for i, c in enumerate(script.function_calls)]

    def _finish(self, script: Script) -> str | None:
        if script.finish_reason is None:
            return None
        if script.function_calls and script.finish_reason == "STOP":
            return "tool_calls"
        return FINISH.get(script.finish_reason, "stop")

    def _chat_unary(self, h: _Handler, record: ChatRecord, script: Script, usage: dict[str, Any],
               rec: ResponseRecord) -> None:
        if script.error_after is not None or script.cut_after is not None:
            rec.kind = "unary error"
            self._error(h, script.error_code, "failed while generating", None)
            return
        message: dict[str, Any] = {"role": "assistant", "content": "".join(text_pieces(script)) or None}
        calls = self._calls(script, rec.n)
        if calls:
            message["tool_calls"] = calls
        body = {"id": f"chatcmpl-{rec.request_seq}", "object": "chat.completion", "created": int(time.time()),
                "model": record.model, "choices": [{"index": 0, "message": message,
                                                    "finish_reason": self._finish(script) or "stop"}],
                "usage": usage}
        rec.kind = "unary" if not record.streamed else "unary (stream ignored)"
        rec.usage, rec.completed = usage, True
        self._add_response(rec)
        self._send_json(h, 200, body)

    def _deltas(self, script: Script, n: int) -> list[dict[str, Any]]:
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        deltas += [{"reasoning_content": t} for t in script.thoughts]
        deltas += [{"content": t} for t in text_pieces(script)]
        for i, call in enumerate(self._calls(script, n)):
            if not self.quirks.tool_index:  # old Ollama: the whole call at once, no index
                deltas.append({"tool_calls": [call]})
                continue
            args = call["function"]["arguments"]
            deltas.append({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                           "function": {"name": call["function"]["name"], "arguments": ""}}]})
            half = max(len(args) // 2, 1)
            for piece in (args[:half], args[half:]):
                if piece:
                    deltas.append({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
        return deltas

    def _chat_stream(self, h: _Handler, record: ChatRecord, script: Script, usage: dict[str, Any],
                rec: ResponseRecord) -> None:
        q = self.quirks
        send_usage = q.usage == "continuous" or (q.usage == "on_request" and record.include_usage)
        self.start_sse(h)
        deltas = self._deltas(script, rec.n)
        base = {"id": f"chatcmpl-{rec.request_seq}", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": record.model}
        finish = self._finish(script)
        for i, delta in enumerate(deltas):
            if i and script.chunk_delay_s and self._pause(h, script.chunk_delay_s, rec):
                return
            if self._fault(h, script, i, rec):
                return
            last = i == len(deltas) - 1
            chunk: dict[str, Any] = {**base, "choices": [{"index": 0, "delta": delta,
                                                         "finish_reason": finish if last else None}]}
            if q.usage == "continuous":
                chunk["usage"] = _partial(usage, i, len(deltas))
                rec.usage = chunk["usage"]
            if last and q.timings:
                chunk["timings"] = {"prompt_n": usage["prompt_tokens"], "predicted_n": usage["completion_tokens"]}
            self.sse(h, chunk)
        if self._fault(h, script, len(deltas), rec):
            return
        if finish is None:
            rec.kind = "no finish"
            self.sse(h, "[DONE]")
            self.end_body(h)
            return
        if send_usage:
            final = {**base, "choices": None if q.choices_null_final else [], "usage": usage}
            rec.usage = usage
            rec.completed = True
            self._add_response(rec)
            self.sse(h, final)
        else:
            rec.completed = True
            self._add_response(rec)
        self.sse(h, "[DONE]")
        self.end_body(h)

    def _fault(self, h: _Handler, script: Script, i: int, rec: ResponseRecord) -> bool:
        if script.error_after == i:
            rec.kind = "error event"
            self.sse(h, {"error": {"message": "The server had an error while processing your request.",
                                   "type": "server_error", "code": str(script.error_code)}})
            self.end_body(h)
            return True
        if script.bad_event_after == i:
            rec.kind = "bad event"
            self.sse(h, "{this is not json")
            self.end_body(h)
            return True
        if script.cut_after == i:
            rec.kind = "cut"
            self.cut(h)
            return True
        return False


__all__ = ["ChatRecord", "FakeOpenAIServer", "PipelineScript", "Quirks", "Script", "openai_usage"]
