"""The approval gate every tool call passes through. Enforced here, in code, not by prompts.

Order for one call:
  1. A result already journalled under (track, ticket, attempt, call id) is returned as is: never run twice.
  2. Read-only tools run at once.
  3. Mutating tools run only if a policy allows that exact form, or after a `tool` approval; the approval
     decision is journalled (by the broker's hook) before the tool runs; an edited payload is what runs.
  4. The result is journalled with its idempotency key before it is returned to the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conductor.approvals import ApprovalBroker, ApprovalKind
from conductor.messages import ToolCall, ToolResult
from conductor.store import Journal
from conductor.tools.base import ToolContext, Toolbox

AllowPolicy = Callable[[ToolCall, ToolContext], bool]
"""True when a mutating call may run without asking (an exact form the config or the user allowed)."""


def idempotency_key(ctx: ToolContext, call_id: str) -> str:
    p = ctx.prov
    return f"{p.track_id}/{p.ticket_id}/{p.attempt}/{call_id}"


class ToolGate:
    def __init__(self, toolbox: Toolbox, broker: ApprovalBroker, journal: Journal | None,
                 allow: AllowPolicy | None = None, approval_timeout_s: float | None = None) -> None:
        self.toolbox = toolbox
        self.broker = broker
        self.journal = journal
        self.allow = allow or (lambda call, ctx: False)
        self.approval_timeout_s = approval_timeout_s

    def run(self, call: ToolCall, ctx: ToolContext) -> tuple[ToolResult, bool]:
        """Run one call through the gate. Returns (result, replayed)."""
        key = idempotency_key(ctx, call.id)
        if self.journal is not None:
            done = self.journal.find("tool_result", key)
            if done is not None:
                return ToolResult.from_json(done.data["result"]), True
        tool = self.toolbox.get(call.name)
        if tool is not None and tool.spec.mutating and not self.allow(call, ctx):
            approved = self._ask(call, ctx)
            if isinstance(approved, ToolResult):
                return self._record(key, approved), False
            call = approved
        result = self.toolbox.execute(call, ctx)
        return self._record(key, result), False

    def _ask(self, call: ToolCall, ctx: ToolContext) -> ToolCall | ToolResult:
        tool = self.toolbox.get(call.name)
        assert tool is not None
        try:
            preview = tool.preview(dict(call.args), ctx)
        except Exception as exc:  # a preview failure must not hide the request: show the error instead
            preview = {"preview_error": f"{type(exc).__name__}: {exc}"}
        payload: dict[str, Any] = {"tool": call.name, "call_id": call.id, "args": dict(call.args), **preview}

        def same_tool(edited: dict[str, Any]) -> None:
            if edited.get("tool") != call.name or edited.get("call_id") != call.id:
                raise ValueError("an approval is bound to its own tool call; the tool and call id cannot change")
            if not isinstance(edited.get("args"), dict):
                raise ValueError("args must be an object")

        pending = self.broker.request(ApprovalKind.TOOL, ctx.prov, f"{call.name}: {_short(call.args)}", payload,
                                      validator=same_tool)
        try:
            decision = pending.wait(ctx.cancel, self.approval_timeout_s)
        except TimeoutError:
            self.broker.cancel_where(lambda r: r.id == pending.request.id, "approval timed out")
            return ToolResult(call.id, call.name, False, error="not approved: the approval timed out")
        if decision.request_id != pending.request.id:
            raise AssertionError("approval decision bound to another request")
        if not decision.approved:
            return ToolResult(call.id, call.name, False,
                              error=f"rejected by the user: {decision.reason or 'no reason given'}")
        assert decision.payload is not None
        return ToolCall(call.id, call.name, dict(decision.payload["args"]))

    def _record(self, key: str, result: ToolResult) -> ToolResult:
        if self.journal is not None:
            self.journal.append("tool_result", {"key": key, "result": result.to_json()})
        return result


def _short(args: dict[str, Any], limit: int = 80) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in args.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"
