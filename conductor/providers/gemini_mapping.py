"""Pure translation between our provider vocabulary and the Gemini API's, on plain dicts.

No google-genai import here (the provider imports the SDK lazily): requests become dicts the SDK accepts
(`GenerateContentConfig(**config_kwargs(...))`, `contents=to_contents(...)`), and streamed responses are
read as dicts (`chunk.model_dump(mode="json", exclude_none=True)`). Field names are read in either
spelling (snake_case from the SDK's dump, camelCase from the wire).

Invariants:
- a model turn that carries `Message.native` is sent back verbatim (thought signatures survive);
- every ToolCall has a non-empty id: Gemini's own, or one derived from (ticket, attempt, turn, call index);
- usage is cumulative: each `usageMetadata` replaces the previous one;
- error messages name the HTTP status and the server's message, never the API key.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from conductor.errors import BadRequest, CallTimeout, ProviderError, ProviderUnavailable, RateLimited, StreamInterrupted
from conductor.events import Provenance
from conductor.messages import Message, ToolCall, ToolResult, ToolSpec
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
from conductor.providers.gemini_quota import daily_violation, quota_error
from conductor.providers.tool_names import WireNames, wire_name

SAFETY_FINISHES = frozenset({"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "IMAGE_SAFETY",
                             "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"})
THINKING_LEVELS = {"minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH"}
THINKING_BUDGETS = {"minimal": 512, "low": 2048, "medium": 8192, "high": 24576}
"""Gemini 2.5 token budgets per level (2.5 Flash allows up to 24,576; Pro up to 32,768 and at least 128)."""


def field(obj: Any, name: str, default: Any = None) -> Any:
    """`obj[name]` under its snake_case or camelCase spelling; `default` when absent or None."""
    if not isinstance(obj, Mapping):
        return default
    head, *rest = name.split("_")
    for key in (name, head + "".join(p[:1].upper() + p[1:] for p in rest)):
        value = obj.get(key)
        if value is not None:
            return value
    return default


# --- request: thinking ---

def model_generation(model: str) -> tuple[int, int] | None:
    """(major, minor) of a Gemini model name, e.g. (3, 8) for `gemini-3.8-flash`; None when not Gemini."""
    m = re.match(r"^(?:models/)?gemini-(\d+)(?:\.(\d+))?", model)
    return (int(m[1]), int(m[2] or 0)) if m else None


def thinking_config(model: str, level: str) -> dict[str, Any] | None:
    """The ThinkingConfig for a tier's level on this model, or None to leave the model's default.

    Gemini 3.x takes a `thinking_level`; "off" sends nothing (3.x cannot switch thinking off).
    Gemini 2.5 takes a `thinking_budget`: "off" is 0 where allowed (Flash, Flash-Lite), 128 on Pro
    (its minimum). Older and unknown models get no thinking config at all.
    """
    gen = model_generation(model)
    if gen is None or level not in ("off", *THINKING_LEVELS):
        return None
    if gen[0] >= 3:
        return None if level == "off" else {"thinking_level": THINKING_LEVELS[level]}
    if gen == (2, 5):
        pro = "-pro" in model
        if level == "off":
            return {"thinking_budget": 128 if pro else 0}
        return {"thinking_budget": min(THINKING_BUDGETS[level], 32768 if pro else 24576)}
    return None


# --- request: tools, contents, config ---

def function_declaration(spec: ToolSpec) -> dict[str, Any]:
    """A FunctionDeclaration dict; the arguments' schema goes as standard JSON Schema."""
    return {"name": wire_name(spec.name), "description": spec.description, "parameters_json_schema": spec.parameters}


def _call_ids(content: Mapping[str, Any] | None) -> set[str]:
    ids = set()
    for part in field(content, "parts", []):
        call = field(part, "function_call")
        if call and field(call, "id"):
            ids.add(field(call, "id"))
    return ids


def model_content(msg: Message) -> dict[str, Any]:
    """A model turn: its native content verbatim, else rebuilt from text and tool calls."""
    if msg.native is not None:
        return msg.native
    parts: list[dict[str, Any]] = [{"text": msg.text}] if msg.text or not msg.tool_calls else []
    parts += [{"function_call": {"id": c.id, "name": wire_name(c.name), "args": c.args}} for c in msg.tool_calls]
    return {"role": "model", "parts": parts}


def function_response_part(result: ToolResult, known_ids: set[str]) -> dict[str, Any]:
    """A function_response part; the id is echoed only when Gemini gave that call an id itself."""
    body: dict[str, Any] = {"name": wire_name(result.name), "response": result.for_model()}
    if result.call_id in known_ids:
        body["id"] = result.call_id
    return {"function_response": body}


def to_contents(messages: Iterable[Message]) -> list[dict[str, Any]]:
    """Our conversation as Gemini contents. Tool results go back as a user turn of function_response
    parts; consecutive user-side turns are merged (the API wants the turns to alternate)."""
    contents: list[dict[str, Any]] = []
    last_ids: set[str] = set()
    for msg in messages:
        if msg.role == "model":
            content = model_content(msg)
            last_ids = _call_ids(content)
            contents.append(content)
            continue
        parts = [function_response_part(r, last_ids) for r in msg.tool_results]
        if msg.text or not parts:
            parts.append({"text": msg.text})
        if contents and contents[-1].get("role") == "user":
            contents[-1] = {"role": "user", "parts": [*contents[-1]["parts"], *parts]}
        else:
            contents.append({"role": "user", "parts": parts})
    return contents


def config_kwargs(request: ProviderRequest, *, timeout_ms: int | None = None) -> dict[str, Any]:
    """Keyword arguments for `types.GenerateContentConfig`.

    Automatic function calling is always disabled (every tool call must pass our approval gate), and so is
    automatic continuation (a call is one request, so its usage and retries stay ours to count).
    """
    kw: dict[str, Any] = {"automatic_function_calling": {"disable": True}, "automatic_continuation": False}
    if request.system:
        kw["system_instruction"] = request.system
    if request.max_output_tokens:
        kw["max_output_tokens"] = request.max_output_tokens
    if request.response_schema is not None:
        kw["response_mime_type"] = "application/json"
        kw["response_schema"] = request.response_schema
    if request.tools:
        kw["tools"] = [{"function_declarations": [function_declaration(t) for t in request.tools]}]
        kw["tool_config"] = {"function_calling_config": {"mode": "AUTO"}}
    thinking = thinking_config(request.model, request.thinking)
    if thinking is not None:
        kw["thinking_config"] = thinking
    if timeout_ms is not None:
        kw["http_options"] = {"timeout": timeout_ms}
    return kw


# --- response: usage, finish reasons, tool call ids ---

def usage_from_metadata(md: Mapping[str, Any], model: str, *, partial: bool = False) -> Usage:
    """Gemini usageMetadata (either spelling) → our Usage. Missing counts are 0."""
    def n(name: str) -> int:
        return int(field(md, name, 0) or 0)
    return Usage(model=model.removeprefix("models/"), prompt_tokens=n("prompt_token_count"),
                 output_tokens=n("candidates_token_count"), thinking_tokens=n("thoughts_token_count"),
                 cached_tokens=n("cached_content_token_count"),
                 tool_use_prompt_tokens=n("tool_use_prompt_token_count"), partial=partial)


def map_finish_reason(reason: str, has_calls: bool) -> FinishReason:
    """Gemini's finishReason → ours. STOP with function calls is a tool turn."""
    reason = reason.upper()
    if reason == "STOP":
        return "tool_calls" if has_calls else "stop"
    if reason == "MAX_TOKENS":
        return "max_tokens"
    if reason in SAFETY_FINISHES:
        return "safety"
    return "other"


def synth_call_id(prov: Provenance, turn: int, index: int) -> str:
    """A deterministic id for a call Gemini gave none: stable within (ticket, attempt, turn, index)."""
    owner = prov.ticket_id or prov.track_id or f"tier{prov.tier or 0}"
    return f"{owner}-a{prov.attempt}-t{turn}-c{index}"


class TurnAssembler:
    """Folds a stream of response dicts into our events and, at the end, one `Finish` with the whole turn.

    The turn's parts are kept verbatim (as dicts) for `Message.native`. Not thread-safe: one per stream.
    """

    def __init__(self, request: ProviderRequest) -> None:
        self.model = request.model
        self.prov = request.prov
        self.turn = sum(1 for m in request.messages if m.role == "model")
        self.names = WireNames(request.tools)
        self.parts: list[dict[str, Any]] = []
        self.text: list[str] = []
        self.calls: list[ToolCall] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.finish_message = ""
        self.block_reason: str | None = None

    def feed(self, chunk: Mapping[str, Any]) -> list[ProviderEvent]:
        events: list[ProviderEvent] = []
        block = field(field(chunk, "prompt_feedback"), "block_reason")
        if block:
            self.block_reason = str(block)
        candidates = field(chunk, "candidates", [])
        if candidates:
            events += self._candidate(candidates[0])
        md = field(chunk, "usage_metadata")
        if md:
            self.usage = usage_from_metadata(md, self.model)
            events.append(UsageChunk(self.usage))
        return events

    def _candidate(self, cand: Mapping[str, Any]) -> list[ProviderEvent]:
        events: list[ProviderEvent] = []
        for part in field(field(cand, "content"), "parts", []):
            self.parts.append(dict(part))
            events += self._part(part)
        if field(cand, "finish_reason"):
            self.finish_reason = str(field(cand, "finish_reason"))
            self.finish_message = str(field(cand, "finish_message", ""))
        return events

    def _part(self, part: Mapping[str, Any]) -> list[ProviderEvent]:
        events: list[ProviderEvent] = []
        text = field(part, "text")
        if text:
            thought = bool(field(part, "thought", False))
            if not thought:
                self.text.append(text)
            events.append(TextChunk(text, thought=thought))
        call = field(part, "function_call")
        if call:
            cid = field(call, "id") or synth_call_id(self.prov, self.turn, len(self.calls))
            tc = ToolCall(id=str(cid), name=self.names.ours(str(field(call, "name", ""))),
                          args=dict(field(call, "args", {})))
            self.calls.append(tc)
            events.append(ToolCallChunk(tc))
        return events

    def partial_usage(self) -> Usage | None:
        return self.usage.model_copy(update={"partial": True}) if self.usage is not None else None

    def finish(self) -> Finish:
        """The closing event; raises StreamInterrupted when the stream ended without a finish reason."""
        if self.finish_reason is not None:
            reason = map_finish_reason(self.finish_reason, bool(self.calls))
            detail = self.finish_reason if reason in ("safety", "other") else ""
            if self.finish_message:
                detail = f"{detail}: {self.finish_message}" if detail else self.finish_message
            msg = Message(role="model", text="".join(self.text), tool_calls=tuple(self.calls),
                          native={"role": "model", "parts": self.parts})
            return Finish(reason, msg, detail)
        if self.block_reason is not None:
            return Finish("safety", Message(role="model"), f"prompt blocked: {self.block_reason}")
        raise StreamInterrupted("the Gemini stream ended without a finish reason "
                                f"(after {len(''.join(self.text))} characters)", usage=self.partial_usage())


# --- errors ---

def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret replaced (so no message can carry the API key)."""
    for s in secrets:
        if s:
            text = text.replace(s, "[redacted]")
    return text


def _parse_duration(value: Any) -> float | None:
    """A google.protobuf.Duration in JSON form ("2s", "0.5s", "1.500s") or a bare number → seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*s?\s*", str(value))
    return float(m[1]) if m else None


def _parse_retry_after(value: str, now: float | None = None) -> float | None:
    """A Retry-After header: delay seconds, or an HTTP date."""
    seconds = _parse_duration(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def retry_delay_s(details: Any, headers: Mapping[str, str] | None = None) -> float | None:
    """The server's retry hint: google.rpc.RetryInfo.retryDelay in the error details, else Retry-After."""
    err = field(details, "error", details) if isinstance(details, Mapping) else {}
    for d in field(err, "details", []) or []:
        if isinstance(d, Mapping) and str(d.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = _parse_duration(field(d, "retry_delay", ""))
            if delay is not None:
                return delay
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            return _parse_retry_after(str(value))
    return None


def error_for_status(code: int | None, message: str, *, status: str | None = None, details: Any = None,
                     headers: Mapping[str, str] | None = None, mid_stream: bool = False,
                     usage: Usage | None = None) -> ProviderError:
    """An API error (HTTP status + the server's message) → our error class.

    An error that arrives inside the stream is always a StreamInterrupted (status kept), so the retry
    layer discards the partial output; before the stream: 429 RateLimited (with the server's delay),
    408 CallTimeout, 5xx ProviderUnavailable, other 4xx BadRequest.
    """
    label = f"{code or '?'}{' ' + status if status else ''}"
    what = f"Gemini API error {label}: {message or 'no message'}"
    delay = retry_delay_s(details, headers)
    if mid_stream:
        err: ProviderError = StreamInterrupted(f"the stream broke: {what}", usage=usage, status=code)
        err.retry_after_s = delay  # type: ignore[attr-defined]  # a hint for the retry layer, if it looks
        return err
    if code == 429 and (daily := daily_violation(details)) is not None:
        return quota_error(daily, message, now_epoch=time.time(), status=code)  # not retried: see gemini_quota
    if code == 429:
        return RateLimited(f"rate limited: {what}", retry_after_s=delay, usage=usage, status=code)
    if code == 408:
        return CallTimeout(f"request timed out: {what}", usage=usage, status=code)
    if code is not None and code >= 500:
        return ProviderUnavailable(f"Gemini unavailable: {what}", usage=usage, status=code)
    return BadRequest(f"request rejected: {what}", usage=usage, status=code)


def _class_names(exc: BaseException) -> set[str]:
    return {c.__name__ for c in type(exc).__mro__}


def translate_exception(exc: BaseException, *, mid_stream: bool, usage: Usage | None = None,
                        secrets: Sequence[str] = ()) -> ProviderError:
    """Any exception from the SDK or its HTTP client → our error, told once, at the boundary.

    Recognised by duck typing (an `APIError` has `code`/`message`/`details`; transport errors by their
    httpx class names), so this module needs no SDK import and is testable with stand-ins.
    """
    if isinstance(exc, ProviderError):
        return exc
    names = _class_names(exc)
    text = redact(str(exc), secrets) or type(exc).__name__
    if "APIError" in names and isinstance(getattr(exc, "code", None), int):
        headers = getattr(getattr(exc, "response", None), "headers", None)
        return error_for_status(exc.code, redact(str(getattr(exc, "message", "") or ""), secrets),  # type: ignore[attr-defined]
                                status=getattr(exc, "status", None), details=getattr(exc, "details", None),
                                headers=dict(headers) if headers is not None else None, mid_stream=mid_stream,
                                usage=usage)
    if "TimeoutException" in names:
        return CallTimeout(f"Gemini request timed out ({type(exc).__name__}): {text}", usage=usage)
    if "ConnectError" in names:
        return ProviderUnavailable(f"cannot connect to the Gemini API: {text}", usage=usage)
    if names & {"UnknownApiResponseError", "RemoteProtocolError", "ReadError", "NetworkError", "ProtocolError",
                "StreamError", "DecodingError"} or isinstance(exc, ConnectionError):
        if mid_stream:
            return StreamInterrupted(f"the stream broke ({type(exc).__name__}): {text}", usage=usage)
        return ProviderUnavailable(f"the Gemini API connection failed ({type(exc).__name__}): {text}", usage=usage)
    if isinstance(exc, (ValueError, TypeError)) and not mid_stream:
        return BadRequest(f"the Gemini SDK refused the request ({type(exc).__name__}): {text}", usage=usage)
    return ProviderError(f"unexpected Gemini SDK error ({type(exc).__name__}): {text}", usage=usage)
