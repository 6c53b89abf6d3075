"""The conversation vocabulary shared by providers, tiers and tools: messages, tool specs, calls, results.

Pure frozen dataclasses; each converts to and from JSON for the journal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["user", "model", "tool"]


@dataclass(frozen=True)
class ToolSpec:
    """A tool as declared to the model: name, description, JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]
    mutating: bool = False
    """True for writes, edits and commands: these go through a `tool` approval unless a policy allows them."""


@dataclass(frozen=True)
class ToolCall:
    id: str
    """Stable within (ticket, attempt): the idempotency key of the side effect."""
    name: str
    args: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "args": self.args}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ToolCall:
        return cls(id=d["id"], name=d["name"], args=d.get("args") or {})


@dataclass(frozen=True)
class ToolResult:
    """What a tool returns to the model. Errors are results too: the model can act on them."""

    call_id: str
    name: str
    ok: bool
    output: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def for_model(self) -> dict[str, Any]:
        """The function-response body sent back to the model."""
        if self.ok:
            return {"ok": True, **self.output}
        return {"ok": False, "error": self.error or "failed", **self.output}

    def summary(self, limit: int = 160) -> str:
        text = (self.error or "") if not self.ok else ", ".join(f"{k}={v!r}" for k, v in self.output.items())
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def to_json(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "name": self.name, "ok": self.ok, "output": self.output, "error": self.error}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ToolResult:
        return cls(call_id=d["call_id"], name=d["name"], ok=d["ok"], output=d.get("output") or {},
                   error=d.get("error"))


@dataclass(frozen=True)
class Message:
    """One turn. A model turn may carry tool calls; a tool turn carries their results.

    `native` keeps the provider's own content verbatim (for Gemini: the Content dict with thought
    signatures), so it can be sent back unchanged on the next request.
    """

    role: Role
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()
    native: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "text": self.text, "tool_calls": [c.to_json() for c in self.tool_calls],
                "tool_results": [r.to_json() for r in self.tool_results], "native": self.native}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Message:
        return cls(role=d["role"], text=d.get("text", ""),
                   tool_calls=tuple(ToolCall.from_json(c) for c in d.get("tool_calls", [])),
                   tool_results=tuple(ToolResult.from_json(r) for r in d.get("tool_results", [])),
                   native=d.get("native"))


def user(text: str) -> Message:
    return Message(role="user", text=text)
