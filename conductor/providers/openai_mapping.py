"""Pure translation between our provider vocabulary and OpenAI chat completions, on plain dicts.

No `openai` import here (the provider imports the SDK lazily). Requests become keyword arguments for
`client.chat.completions.create`; streamed chunks are read as dicts (`chunk.to_dict(exclude_none=True)`),
tolerating what real endpoints send:
- a final usage chunk with `"choices": null` (vLLM) or `[]`;
- tool-call deltas without an `index` (old Ollama): assembled by index, else by id, else as a new call;
- a whole completion instead of a stream (an endpoint that does not stream tool calls);
- `reasoning_content` / `reasoning` deltas (vLLM, llama.cpp, Ollama) as thought text.

Usage: `prompt_tokens` includes cached tokens, `completion_tokens` includes reasoning tokens. Ours keeps the
prompt as is and splits the completion into output + thinking, so no token is counted twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from conductor.errors import (
    AuthFailed,
    BadRequest,
    CallTimeout,
    ContextTooLong,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    SafetyBlocked,
    StreamInterrupted,
)
from conductor.messages import Message, ToolCall, ToolSpec
from conductor.model import Usage
from conductor.providers.base import (
    Finish,
    FinishReason,
    ProviderEvent,
    ProviderRequest,
    TextChunk,
    ToolCallChunk,
    UsageChunk,
)
from conductor.providers.gemini_mapping import _parse_retry_after, redact, synth_call_id
from conductor.providers.tool_names import WireNames, wire_name

NATIVE = "openai-chat"
"""`Message.native["format"]` of a turn this dialect produced (sent back verbatim on the next request)."""
REASONING_EFFORT = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}
FINISH = {"stop": "stop", "tool_calls": "tool_calls", "function_call": "tool_calls", "length": "max_tokens",
          "content_filter": "safety"}
CONTEXT_CODES = frozenset({"context_length_exceeded", "string_above_max_length"})
CONTEXT_WORDS = re.compile(r"context (length|window)|maximum context|too many tokens|prompt is too long|"
                           r"exceeds the (model's )?(maximum|max)", re.IGNORECASE)
SAFETY_CODES = frozenset({"content_policy_violation", "content_filter", "invalid_prompt"})


# --- request ---

def schema_instructions(schema: type[BaseModel]) -> str:
    """The schema as instructions, for endpoints without json_schema response formats (we validate anyway)."""
    return ("Answer with one JSON object only, no prose and no code fence, that validates against this JSON "
            f"schema:\n{json.dumps(schema.model_json_schema())}")


def response_format(schema: type[BaseModel]) -> dict[str, Any]:
    # strict=False: our pydantic schemas have optional fields with defaults, which strict mode forbids; the
    # answer is validated (and repaired) by us either way.
    return {"type": "json_schema", "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema(),
                                                   "strict": False}}


def tool_param(spec: ToolSpec) -> dict[str, Any]:
    return {"type": "function", "function": {"name": wire_name(spec.name), "description": spec.description,
                                             "parameters": spec.parameters}}


def assistant_message(msg: Message) -> dict[str, Any]:
    """A model turn: this dialect's native message verbatim, else rebuilt from text and tool calls."""
    if msg.native is not None and msg.native.get("format") == NATIVE:
        return dict(msg.native["message"])
    out: dict[str, Any] = {"role": "assistant", "content": msg.text or None}
    if msg.tool_calls:
        out["tool_calls"] = [_wire_call(c) for c in msg.tool_calls]
    return out


def _wire_call(call: ToolCall) -> dict[str, Any]:
    """A call as it goes back in the history: under its wire name (our `mcp:a/b` would fail the request)."""
    return {"id": call.id, "type": "function", "function": {"name": wire_name(call.name),
                                                            "arguments": json.dumps(call.args)}}


def to_messages(system: str, messages: Sequence[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for msg in messages:
        if msg.role == "model":
            out.append(assistant_message(msg))
            continue
        for r in msg.tool_results:
            out.append({"role": "tool", "tool_call_id": r.call_id, "content": json.dumps(r.for_model())})
        if msg.text or not msg.tool_results:
            out.append({"role": "user", "content": msg.text})
    return out


def request_kwargs(request: ProviderRequest, model: str, *, json_schema: bool, reasoning: bool,
                   max_tokens: int | None) -> dict[str, Any]:
    """Keyword arguments for `chat.completions.create` (stream settings are added by the provider)."""
    system = request.system
    kw: dict[str, Any] = {"model": model}
    if request.response_schema is not None:
        if json_schema:
            kw["response_format"] = response_format(request.response_schema)
        else:
            system = f"{system}\n\n{schema_instructions(request.response_schema)}".strip()
    kw["messages"] = to_messages(system, request.messages)
    if request.tools:
        kw["tools"] = [tool_param(t) for t in request.tools]
        kw["tool_choice"] = "auto"
        kw["parallel_tool_calls"] = True
    if max_tokens:
        kw["max_completion_tokens" if reasoning else "max_tokens"] = max_tokens
    if reasoning and request.thinking in REASONING_EFFORT:
        kw["reasoning_effort"] = REASONING_EFFORT[request.thinking]
    return kw


# --- response ---

def usage_from_openai(u: Mapping[str, Any], model: str, *, partial: bool = False) -> Usage:
    """OpenAI usage → ours. Reasoning tokens move from output to thinking (never counted twice)."""
    prompt = int(u.get("prompt_tokens") or 0)
    completion = int(u.get("completion_tokens") or 0)
    pd, cd = u.get("prompt_tokens_details") or {}, u.get("completion_tokens_details") or {}
    reasoning = min(int(cd.get("reasoning_tokens") or 0), completion)
    cached = min(int(pd.get("cached_tokens") or 0), prompt)
    write = min(int(pd.get("cache_write_tokens") or 0), prompt - cached)
    return Usage(model=model, prompt_tokens=prompt, output_tokens=completion - reasoning, thinking_tokens=reasoning,
                 cached_tokens=cached, cache_write_tokens=write, partial=partial)


class ChatAssembler:
    """Folds chat-completion chunks (dicts) into our events and one closing `Finish`. One per stream."""

    def __init__(self, request: ProviderRequest, model: str) -> None:
        self.request = request
        self.model = model
        self.turn = sum(1 for m in request.messages if m.role == "model")
        self.names = WireNames(request.tools)
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.calls: list[dict[str, Any]] = []
        """Calls being assembled: {"index", "id", "name", "arguments"}."""
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.refusal: list[str] = []

    def feed(self, chunk: Mapping[str, Any]) -> list[ProviderEvent]:
        events: list[ProviderEvent] = []
        for choice in chunk.get("choices") or []:  # null (vLLM's last chunk) and [] are both "no choices"
            if choice.get("index", 0) != 0:
                continue
            events += self._delta(choice.get("delta") or choice.get("message") or {})
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        if chunk.get("usage"):
            self.usage = usage_from_openai(chunk["usage"], self.model)
            events.append(UsageChunk(self.usage))
        return events

    def _delta(self, delta: Mapping[str, Any]) -> list[ProviderEvent]:
        events: list[ProviderEvent] = []
        thought = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(thought, str) and thought:
            self.reasoning.append(thought)
            events.append(TextChunk(thought, thought=True))
        text = delta.get("content")
        if isinstance(text, str) and text:
            self.text.append(text)
            events.append(TextChunk(text))
        if isinstance(delta.get("refusal"), str) and delta["refusal"]:
            self.refusal.append(delta["refusal"])
        for tc in delta.get("tool_calls") or []:
            self._tool_delta(tc)
        return events

    def _tool_delta(self, tc: Mapping[str, Any]) -> None:
        """Assemble by index; without an index by id; else it is a new call (old Ollama sends each whole)."""
        fn = tc.get("function") or {}
        index, cid = tc.get("index"), tc.get("id")
        slot = None
        if index is not None:
            slot = next((c for c in self.calls if c["index"] == index), None)
        elif cid:
            slot = next((c for c in self.calls if c["id"] == cid), None)
        if slot is None:
            slot = {"index": index if index is not None else -1 - len(self.calls), "id": cid, "name": "",
                    "arguments": ""}
            self.calls.append(slot)
        if cid and not slot["id"]:
            slot["id"] = cid
        if fn.get("name"):
            slot["name"] += fn["name"] if slot["name"] != fn["name"] else ""
        args = fn.get("arguments")
        if isinstance(args, dict):  # some servers send parsed arguments
            slot["arguments"] = json.dumps(args)
        elif isinstance(args, str):
            slot["arguments"] += args

    def tool_calls(self) -> list[ToolCall]:
        out = []
        for i, c in enumerate(self.calls):
            try:
                args = json.loads(c["arguments"]) if c["arguments"].strip() else {}
            except ValueError:
                args = {"_unparsed_arguments": c["arguments"]}  # the tool gate reports it back to the model
            if not isinstance(args, dict):
                args = {"_arguments": args}
            cid = c["id"] or synth_call_id(self.request.prov, self.turn, i)
            out.append(ToolCall(id=str(cid), name=self.names.ours(str(c["name"])), args=args))
        return out

    def partial_usage(self) -> Usage | None:
        return self.usage.model_copy(update={"partial": True}) if self.usage is not None else None

    def finish(self) -> tuple[Finish, list[ProviderEvent]]:
        """The closing event, after the tool calls (emitted whole, once assembled). Raises StreamInterrupted
        when the stream ended with no finish reason."""
        if self.finish_reason is None:
            raise StreamInterrupted(f"the stream ended without a finish reason (after {len(''.join(self.text))} "
                                    "characters)", usage=self.partial_usage())
        calls = self.tool_calls()
        reason: FinishReason = FINISH.get(self.finish_reason, "other")  # type: ignore[assignment]
        if reason == "stop" and calls:
            reason = "tool_calls"
        detail = self.finish_reason if reason in ("safety", "other") else ""
        if self.refusal:
            reason, detail = "safety", "refusal: " + "".join(self.refusal)
        text = "".join(self.text)
        native: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            native["tool_calls"] = [_wire_call(c) for c in calls]
        msg = Message(role="model", text=text, tool_calls=tuple(calls), native={"format": NATIVE, "message": native})
        return Finish(reason, msg, detail), [ToolCallChunk(c) for c in calls]


# --- errors ---

def _body_error(body: Any) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        inner = body.get("error")
        return inner if isinstance(inner, Mapping) else body
    return {}


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """retry-after-ms (OpenAI), else Retry-After (seconds or an HTTP date)."""
    h = {k.lower(): v for k, v in (headers or {}).items()}
    if h.get("retry-after-ms"):
        try:
            return float(h["retry-after-ms"]) / 1000
        except ValueError:
            pass
    return _parse_retry_after(h["retry-after"]) if h.get("retry-after") else None


def error_for(status: int | None, message: str, code: str, *, who: str, key_env: str | None,
              headers: Mapping[str, str] | None, mid_stream: bool, usage: Usage | None) -> ProviderError:
    """An HTTP status + the server's error → our class (shared by the OpenAI and Anthropic providers)."""
    what = f"{who} error {status or '?'}{' ' + code if code else ''}: {message or 'no message'}"
    if mid_stream:
        err: ProviderError = StreamInterrupted(f"the stream broke: {what}", usage=usage, status=status)
        return err
    if status == 429:
        return RateLimited(f"rate limited: {what}", retry_after_s=retry_after_s(headers), usage=usage, status=status)
    if status in (408,):
        return CallTimeout(f"request timed out: {what}", usage=usage, status=status)
    if status is not None and (status >= 500 or status == 409):
        return ProviderUnavailable(f"{who} unavailable: {what}", usage=usage, status=status)
    if status in (401, 403):
        hint = f"; check ${key_env}" if key_env else ""
        return AuthFailed(f"the key was refused: {what}{hint}", usage=usage, status=status)
    if status == 413 or code in CONTEXT_CODES or CONTEXT_WORDS.search(message or ""):
        return ContextTooLong(f"the prompt does not fit the model's context window: {what}", usage=usage, status=status)
    if code in SAFETY_CODES:
        return SafetyBlocked(f"refused for safety: {what}", usage=usage, status=status)
    return BadRequest(f"request rejected: {what}", usage=usage, status=status)


def _class_names(exc: BaseException) -> set[str]:
    return {c.__name__ for c in type(exc).__mro__}


def translate_exception(exc: BaseException, *, who: str, key_env: str | None, mid_stream: bool,
                        usage: Usage | None = None, secrets: Sequence[str] = ()) -> ProviderError:
    """Any exception from the openai/anthropic SDK or httpx2 → our error, once, at the boundary (duck-typed,
    so no SDK import is needed). Messages never carry the key."""
    if isinstance(exc, ProviderError):
        return exc
    names = _class_names(exc)
    text = redact(str(exc), secrets) or type(exc).__name__
    if "APIStatusError" in names or ("APIError" in names and getattr(exc, "body", None) is not None):
        body = _body_error(getattr(exc, "body", None))
        status = getattr(exc, "status_code", None)
        message = redact(str(body.get("message") or getattr(exc, "message", "") or text), secrets)
        code = str(body.get("code") or body.get("type") or "")
        headers = getattr(getattr(exc, "response", None), "headers", None)
        # A 200 status means the error came inside the stream (an `error` event).
        inside = mid_stream or status == 200 or "APIStatusError" not in names
        return error_for(status if status != 200 else None, message, code, who=who, key_env=key_env,
                         headers=dict(headers) if headers is not None else None, mid_stream=inside, usage=usage)
    if "APITimeoutError" in names or "TimeoutException" in names:
        return CallTimeout(f"{who} request timed out: {text}", usage=usage)
    if "APIConnectionError" in names or "ConnectError" in names or isinstance(exc, ConnectionError):
        if mid_stream:
            return StreamInterrupted(f"the {who} stream broke ({type(exc).__name__}): {text}", usage=usage)
        return ProviderUnavailable(f"cannot reach {who}: {text}", usage=usage)
    if names & {"RemoteProtocolError", "ReadError", "NetworkError", "ProtocolError", "StreamError", "DecodingError",
                "JSONDecodeError", "APIResponseValidationError"}:
        if mid_stream:
            return StreamInterrupted(f"the {who} stream broke ({type(exc).__name__}): {text}", usage=usage)
        return ProviderUnavailable(f"the {who} connection failed ({type(exc).__name__}): {text}", usage=usage)
    if isinstance(exc, (ValueError, TypeError)) and not mid_stream:
        return BadRequest(f"the {who} SDK refused the request ({type(exc).__name__}): {text}", usage=usage)
    if mid_stream:
        return StreamInterrupted(f"the {who} stream broke ({type(exc).__name__}): {text}", usage=usage)
    return ProviderError(f"unexpected {who} SDK error ({type(exc).__name__}): {text}", usage=usage)
