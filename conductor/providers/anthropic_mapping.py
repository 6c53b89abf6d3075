"""Pure translation between our provider vocabulary and Anthropic's Messages API, on plain dicts.

No `anthropic` import here. Requests become keyword arguments for `client.messages.create`; stream events
are read as dicts (`event.to_dict()`).

Usage: Anthropic counts `input_tokens` WITHOUT the cache reads and cache writes, and `output_tokens` WITH
thinking (`output_tokens_details.thinking_tokens` is a part of it). Ours: prompt = input + cache read +
cache creation (cached = the reads, cache_write = the creation); output = output - thinking; thinking =
thinking. `message_delta`'s counts are cumulative: each replaces the last.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from conductor.errors import StreamInterrupted
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
from conductor.providers.gemini_mapping import synth_call_id
from conductor.providers.openai_mapping import schema_instructions
from conductor.providers.tool_names import WireNames, wire_name

NATIVE = "anthropic"
STOP: dict[str, FinishReason] = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "tool_calls",
                                 "max_tokens": "max_tokens", "model_context_window_exceeded": "max_tokens",
                                 "refusal": "safety", "pause_turn": "other"}
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384}
EFFORT = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}
_THINKING_MODELS = re.compile(r"claude-(?:3-7-sonnet|(?:opus|sonnet|haiku)-[4-9])")


def thinking_mode(model: str, configured: str) -> str:
    """"budget" | "adaptive" | "off": the profile's choice, or (auto) budgeted thinking on models that have it."""
    if configured != "auto":
        return configured
    return "budget" if _THINKING_MODELS.search(model) else "off"


def tool_param(spec: ToolSpec) -> dict[str, Any]:
    return {"name": wire_name(spec.name), "description": spec.description, "input_schema": spec.parameters}


def assistant_message(msg: Message) -> dict[str, Any]:
    """A model turn: its native content verbatim (thinking blocks and their signatures survive), else rebuilt."""
    if msg.native is not None and msg.native.get("format") == NATIVE:
        return dict(msg.native["message"])
    blocks: list[dict[str, Any]] = [{"type": "text", "text": msg.text}] if msg.text else []
    blocks += [{"type": "tool_use", "id": c.id, "name": wire_name(c.name), "input": c.args} for c in msg.tool_calls]
    return {"role": "assistant", "content": blocks or [{"type": "text", "text": "(no text)"}]}


def to_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Our conversation as Anthropic messages; tool results go back as tool_result blocks in a user turn, and
    consecutive user turns are merged (the API wants the roles to alternate)."""
    out: list[dict[str, Any]] = []
    for msg in messages:
        if msg.role == "model":
            out.append(assistant_message(msg))
            continue
        blocks: list[dict[str, Any]] = [{"type": "tool_result", "tool_use_id": r.call_id,
                                         "content": json.dumps(r.for_model()), "is_error": not r.ok}
                                        for r in msg.tool_results]
        if msg.text or not blocks:
            blocks.append({"type": "text", "text": msg.text or "(empty)"})
        if out and out[-1]["role"] == "user":
            out[-1] = {"role": "user", "content": [*out[-1]["content"], *blocks]}
        else:
            out.append({"role": "user", "content": blocks})
    return out


def request_kwargs(request: ProviderRequest, model: str, *, json_schema: bool, thinking: str,
                   default_max_tokens: int) -> dict[str, Any]:
    system = request.system
    kw: dict[str, Any] = {"model": model}
    output_config: dict[str, Any] = {}
    if request.response_schema is not None:
        if json_schema:
            output_config["format"] = {"type": "json_schema", "schema": _schema(request.response_schema)}
        else:
            system = f"{system}\n\n{schema_instructions(request.response_schema)}".strip()
    if system:
        kw["system"] = system
    kw["messages"] = to_messages(request.messages)
    if request.tools:
        kw["tools"] = [tool_param(t) for t in request.tools]
    max_tokens = request.max_output_tokens or default_max_tokens
    mode = thinking_mode(model, thinking) if request.thinking != "off" else "off"
    if mode == "budget" and request.thinking in THINKING_BUDGETS:
        budget = THINKING_BUDGETS[request.thinking]
        kw["thinking"] = {"type": "enabled", "budget_tokens": budget}
        max_tokens += budget  # thinking counts toward max_tokens, which must exceed the budget
    elif mode == "adaptive" and request.thinking in EFFORT:
        kw["thinking"] = {"type": "adaptive"}
        output_config["effort"] = EFFORT[request.thinking]
    kw["max_tokens"] = max_tokens
    if output_config:
        kw["output_config"] = output_config
    return kw


def _schema(schema: type[BaseModel]) -> dict[str, Any]:
    return schema.model_json_schema()


def usage_from_anthropic(u: Mapping[str, Any], model: str, *, partial: bool = False) -> Usage:
    inp = int(u.get("input_tokens") or 0)
    read = int(u.get("cache_read_input_tokens") or 0)
    write = int(u.get("cache_creation_input_tokens") or 0)
    out = int(u.get("output_tokens") or 0)
    thinking = min(int((u.get("output_tokens_details") or {}).get("thinking_tokens") or 0), out)
    return Usage(model=model, prompt_tokens=inp + read + write, output_tokens=out - thinking, thinking_tokens=thinking,
                 cached_tokens=read, cache_write_tokens=write, partial=partial)


class MessageAssembler:
    """Folds Messages API stream events (dicts) into our events and one closing `Finish`. One per stream."""

    def __init__(self, request: ProviderRequest, model: str) -> None:
        self.request = request
        self.model = model
        self.turn = sum(1 for m in request.messages if m.role == "model")
        self.names = WireNames(request.tools)
        self.blocks: dict[int, dict[str, Any]] = {}
        self.raw_usage: dict[str, Any] = {}
        self.usage: Usage | None = None
        self.stop_reason: str | None = None
        self.stopped = False

    def feed(self, event: Mapping[str, Any]) -> list[ProviderEvent]:
        kind = event.get("type")
        events: list[ProviderEvent] = []
        if kind == "message_start":
            self._usage(((event.get("message") or {}).get("usage")) or {}, events)
        elif kind == "content_block_start":
            self.blocks[int(event.get("index", len(self.blocks)))] = dict(event.get("content_block") or {})
        elif kind == "content_block_delta":
            events += self._delta(int(event.get("index", 0)), event.get("delta") or {})
        elif kind == "message_delta":
            self.stop_reason = (event.get("delta") or {}).get("stop_reason") or self.stop_reason
            self._usage(event.get("usage") or {}, events)
        elif kind == "message_stop":
            self.stopped = True
        elif kind == "message":  # an unstreamed answer
            for i, block in enumerate(event.get("content") or []):
                self.blocks[i] = dict(block)
                if block.get("type") == "text" and block.get("text"):
                    events.append(TextChunk(block["text"]))
            self.stop_reason = event.get("stop_reason")
            self._usage(event.get("usage") or {}, events)
            self.stopped = True
        return events

    def _usage(self, u: Mapping[str, Any], events: list[ProviderEvent]) -> None:
        fresh = {k: v for k, v in u.items() if v is not None}
        if not fresh:
            return
        self.raw_usage = {**self.raw_usage, **fresh}
        self.usage = usage_from_anthropic(self.raw_usage, self.model)
        events.append(UsageChunk(self.usage))

    def _delta(self, index: int, delta: Mapping[str, Any]) -> list[ProviderEvent]:
        block = self.blocks.setdefault(index, {"type": "text", "text": ""})
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] = block.get("text", "") + delta.get("text", "")
            return [TextChunk(delta.get("text", ""))] if delta.get("text") else []
        if kind == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
            return [TextChunk(delta.get("thinking", ""), thought=True)] if delta.get("thinking") else []
        if kind == "signature_delta":
            block["signature"] = block.get("signature", "") + delta.get("signature", "")
        elif kind == "input_json_delta":
            block["_partial_json"] = block.get("_partial_json", "") + delta.get("partial_json", "")
        return []

    def content(self) -> list[dict[str, Any]]:
        """The turn's blocks as they go back to the API (tool inputs parsed, our scratch keys dropped)."""
        out = []
        for _, block in sorted(self.blocks.items()):
            b = {k: v for k, v in block.items() if not k.startswith("_") and k != "citations"}
            if block.get("type") == "tool_use" and "_partial_json" in block:
                raw = block["_partial_json"]
                try:
                    b["input"] = json.loads(raw) if raw.strip() else {}
                except ValueError:
                    b["input"] = {"_unparsed_arguments": raw}
            if b.get("type") == "text" and not b.get("text"):
                continue  # the API refuses empty text blocks
            out.append(b)
        return out

    def partial_usage(self) -> Usage | None:
        return self.usage.model_copy(update={"partial": True}) if self.usage is not None else None

    def finish(self) -> tuple[Finish, list[ProviderEvent]]:
        if not self.stopped or self.stop_reason is None:
            raise StreamInterrupted("the Anthropic stream ended without message_stop", usage=self.partial_usage())
        content = self.content()
        calls = [ToolCall(id=str(b.get("id") or synth_call_id(self.request.prov, self.turn, i)),
                          name=self.names.ours(str(b["name"])), args=_args(b.get("input")))
                 for i, b in enumerate(c for c in content if c.get("type") == "tool_use")]
        reason = STOP.get(self.stop_reason, "other")
        if reason == "stop" and calls:
            reason = "tool_calls"
        detail = self.stop_reason if reason in ("safety", "other") else ""
        text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
        # The turn goes back verbatim, so a name the model made up that is not legal (no tool has it) is made
        # legal there, or the next request would be refused whole; the wire names of our tools are unchanged.
        native = [{**b, "name": wire_name(str(b["name"]))} if b.get("type") == "tool_use" else b for b in content]
        msg = Message(role="model", text=text, tool_calls=tuple(calls),
                      native={"format": NATIVE, "message": {"role": "assistant", "content": native
                                                            or [{"type": "text", "text": "(no text)"}]}})
        return Finish(reason, msg, detail), [ToolCallChunk(c) for c in calls]


def _args(value: object) -> dict[str, Any]:
    """A tool_use input as call arguments (a non-object input is passed on, wrapped, for the tool to refuse)."""
    return dict(value) if isinstance(value, dict) else {"_arguments": value}
