"""The approval gate every tool call passes through. Enforced here, in code, not by prompts.

Order for one call:
  1. A result already journalled under (track, ticket, attempt, call id) is returned as is: never run twice.
  2. Read-only tools run at once.
  3. A mutating call is checked first (argument schema, then its preview: a path outside the workspace or an
     edit whose search text is absent fails here, without bothering anyone).
  4. It then runs only if the allow policy allows that exact form, or after a `tool` approval:
       - the payload shows the tool, the call id, the arguments, the preview (diff / exact argv and cwd) and the
         provenance; only `args` may be edited, and the edited args are what runs;
       - the decision must carry this request's id and this call's tool and id, or it is refused (an approval
         can't be replayed for another call);
       - a call only a person may approve (shell syntax) is refused when a policy (auto-approval) decided it;
       - the decision is journalled by the broker's `on_resolved` hook before it is released to us, so before
         the tool runs; "always allow" (remember) is journalled by the policy before the tool runs too.
  5. The intent (what is about to change: the file and its content hash before and after, or the command) is
     journalled, synced, right before a mutating call runs; the result is journalled with the same key after.
  6. On resume, an intent without a result is reconciled, never silently repeated: a file that already has
     the post-image is reported as done, one that still has the pre-image gets the approved change, anything
     else — and every command — goes to a person ("may already have run"), whom no policy can stand in for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from conductor.approval_payloads import FileChangePreview, PreviewFailed, ToolPayload, ToolPreview
from conductor.approval_types import ApprovalKind
from conductor.approvals import ApprovalBroker, ApprovalDecision, ApprovalRequest, DecidedBy
from conductor.errors import Cancelled, ToolError
from conductor.messages import ToolCall, ToolResult
from conductor.records import ToolCallFinished, ToolCallStarted
from conductor.store import Journal
from conductor.tools.base import Tool, Toolbox, ToolContext, file_sha256
from conductor.tools.previews import PREVIEWS
from conductor.tools.sandbox import resolve_write
from conductor.tools.schema import problems

if TYPE_CHECKING:
    from conductor.comms import CommsLog

AllowPolicy = Callable[[ToolCall, ToolContext], bool]
"""True when a mutating call may run without asking (an exact form the config or the user allowed)."""
RememberHook = Callable[[ToolCall, ToolContext, "Journal | None"], "str | None"]
"""Called with the approved call and the gate's journal when the person chose 'always allow'; returns why it
was not remembered (None when it was)."""


def idempotency_key(ctx: ToolContext, call_id: str) -> str:
    p = ctx.prov
    return f"{p.track_id}/{p.ticket_id}/{p.attempt}/{call_id}"


def decided_by_person(decision: ApprovalDecision) -> bool:
    """Approved by a person: never by a policy, and cancels and timeouts are never approvals."""
    return decision.approved and decision.by == DecidedBy.PERSON


class ToolGate:
    def __init__(self, toolbox: Toolbox, broker: ApprovalBroker, journal: Journal | None,
                 allow: AllowPolicy | None = None, approval_timeout_s: float | None = None, *,
                 remember: RememberHook | None = None, comms: CommsLog | None = None) -> None:
        self.toolbox = toolbox
        self.broker = broker
        self.journal = journal
        self.allow = allow or (lambda call, ctx: False)
        self.approval_timeout_s = approval_timeout_s or None  # config's 0 means wait forever
        self.remember = remember or getattr(allow, "remember", None)
        self.comms = comms
        load = getattr(allow, "load", None)
        if journal is not None and callable(load):  # the track's remembered allow rules, on resume
            load(journal)

    def run(self, call: ToolCall, ctx: ToolContext) -> tuple[ToolResult, bool]:
        """Run one call through the gate. Returns (result, replayed)."""
        key = idempotency_key(ctx, call.id)
        if self.journal is not None:
            done = self.journal.find(ToolCallFinished, key)
            if done is not None:
                result = ToolResult.from_json(dict(done.result))
                self._log("tool_result", ctx, {**result.to_json(), "replayed": True})
                return result, True
            started = self.journal.find(ToolCallStarted, key)
            if started is not None:  # it was approved and started when the app stopped: did it happen?
                return self._reconcile(key, started, call, ctx), False
        self._log("tool_call", ctx, call.to_json())
        tool = self.toolbox.get(call.name)
        if tool is None or not tool.spec.mutating:
            return self._record(key, ctx, self.toolbox.execute(call, ctx)), False
        outcome = self._authorize(tool, call, ctx)
        if isinstance(outcome, ToolResult):
            return self._record(key, ctx, outcome), False
        call, run_ctx = outcome
        taint = getattr(self.allow, "taint", None)
        if call.name != "run_command" and not run_ctx.human_approved and callable(taint):
            # A change no person saw: from now on this track's commands need a person (it may plant code that
            # an allowed `make` or `pytest` would run). Journalled before the write, so a crash can't lose it.
            taint(call, ctx, self.journal)
        return self._execute(key, tool, call, run_ctx), False

    def _execute(self, key: str, tool: Tool, call: ToolCall, ctx: ToolContext) -> ToolResult:
        """Journal the intent (synced), then run, then journal the result."""
        if self.journal is not None:
            try:
                intent = tool.intent(dict(call.args), ctx)
            except ToolError as exc:
                return self._record(key, ctx, _error(call, str(exc)))
            except (TypeError, KeyError, ValueError) as exc:
                return self._record(key, ctx, _error(call, f"bad arguments for {call.name}: {exc}"))
            self.journal.append(ToolCallStarted(key=key, tool=call.name, args=dict(call.args), path=intent.path,
                                                pre_sha256=intent.pre_sha256, post_sha256=intent.post_sha256,
                                                command=intent.command))
        return self._record(key, ctx, self.toolbox.execute(call, ctx))

    def _reconcile(self, key: str, started: ToolCallStarted, call: ToolCall, ctx: ToolContext) -> ToolResult:
        approved = ToolCall(call.id, started.tool, dict(started.args))
        tool = self.toolbox.get(started.tool)
        if tool is None:
            return self._record(key, ctx, _error(approved, f"{started.tool} is no longer available; it was "
                                                           "started before the app stopped and is not run again"))
        if started.path is not None and started.post_sha256 is not None:
            try:
                current = file_sha256(resolve_write(ctx.workspace, started.path, ctx.protected))
            except ToolError as exc:
                return self._record(key, ctx, _error(approved, str(exc)))
            if current == started.post_sha256:
                self._log("reconciled", ctx, {"call_id": call.id, "outcome": "already applied"})
                return self._record(key, ctx, ToolResult(call.id, started.tool, True, {
                    "path": started.path, "note": "this change was applied before the app stopped; not applied "
                                                  "again"}))
            if current == started.pre_sha256:
                self._log("reconciled", ctx, {"call_id": call.id, "outcome": "not applied yet: applying"})
                return self._record(key, ctx, self.toolbox.execute(approved, ctx))
            why = (f"{started.path!r} changed since this {started.tool} was approved (it has neither the content "
                   "before nor the content after it); it may have been partly applied")
        else:
            why = (f"{started.command or started.tool!r} was approved and started before the app stopped, and may "
                   "already have run")
        try:
            preview = tool.preview(dict(approved.args), ctx)
        except ToolError as exc:
            return self._record(key, ctx, _error(approved, f"not run again: {why}; and now: {exc}"))
        outcome = self._ask(tool, approved, ctx, preview, f"{why}: only a person can decide to run it again",
                            interrupted=why)
        if isinstance(outcome, ToolResult):
            err = outcome.error or ""
            return self._record(key, ctx, replace(outcome, error=f"not run again after the interruption: {err}"))
        run_call, run_ctx = outcome
        return self._record(key, ctx, self.toolbox.execute(run_call, run_ctx))

    # -- authorization --

    def _authorize(self, tool: Tool, call: ToolCall, ctx: ToolContext) -> tuple[ToolCall, ToolContext] | ToolResult:
        """The call to run and the context to run it with, or the error result that replaces it."""
        bad = problems(tool.spec.parameters, dict(call.args))
        if bad:
            return _error(call, f"bad arguments for {call.name}: " + "; ".join(bad))
        try:
            preview = tool.preview(dict(call.args), ctx)
        except ToolError as exc:  # it can't succeed as asked: tell the model, don't ask the person
            return _error(call, str(exc))
        except (TypeError, KeyError, ValueError) as exc:
            return _error(call, f"bad arguments for {call.name}: {type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 — an unexpected preview failure must not hide the request: show it instead
            preview = PreviewFailed(error=f"{type(exc).__name__}: {exc}")
        if self.allow(call, ctx):  # an exact rule; the policy itself never matches what only a person may run
            return call, ctx
        person_only = tool.requires_human(dict(call.args))
        return self._ask(tool, call, ctx, preview, person_only)

    def _ask(self, tool: Tool, call: ToolCall, ctx: ToolContext, preview: ToolPreview, person_only: str | None,
             interrupted: str | None = None) -> tuple[ToolCall, ToolContext] | ToolResult:
        payload = ToolPayload(tool=call.name, call_id=call.id, args=dict(call.args), provenance=ctx.prov,
                              preview=preview, needs_person=person_only,
                              can_remember=_can_remember(tool, dict(call.args)), interrupted=interrupted)
        title = f"{call.name}: {_short(call.args)}"
        if isinstance(preview, FileChangePreview) and preview.target:  # through a symlink: name what changes
            title = f"{call.name}: {preview.target} (through the symlink {preview.path!r})"
        request_id = self.broker.new_id(ApprovalKind.TOOL)
        PREVIEWS.register(request_id, tool, ctx)  # before anyone sees the request: an edit is previewed from here
        try:
            pending = self.broker.request(ctx.prov, title, payload, request_id=request_id,
                                          validator=_validator(tool, payload), human_only=person_only is not None)
        except BaseException:
            PREVIEWS.forget(request_id)
            raise
        try:
            decision = pending.wait(ctx.cancel, self.approval_timeout_s)
        except TimeoutError:
            self.broker.cancel_where(lambda r: r.id == pending.request.id, "approval timed out")
            return _error(call, "not approved: the approval timed out")
        finally:
            PREVIEWS.forget(pending.request.id)
        if decision.by == DecidedBy.CANCELLED:
            # Not an answer: the ticket or the app stopped. Nothing is recorded, so a resumed attempt asks again.
            raise Cancelled(f"tool approval {pending.request.id} withdrawn: {decision.reason}")
        self._log("approval", ctx, {"request_id": pending.request.id, **decision.to_json()})
        return self._check_decision(tool, call, ctx, pending.request, decision)

    def _check_decision(self, tool: Tool, call: ToolCall, ctx: ToolContext, request: ApprovalRequest,
                        decision: ApprovalDecision) -> tuple[ToolCall, ToolContext] | ToolResult:
        """Fail closed on anything that is not a clean approval of exactly this request."""
        if decision.request_id != request.id:
            return _error(call, f"refused: the decision belongs to approval {decision.request_id!r}, "
                                f"not to {request.id!r}")
        if not decision.approved:
            return _error(call, f"rejected by the user: {decision.reason or 'no reason given'}")
        final = decision.payload
        if not isinstance(final, ToolPayload):
            what = "no payload" if final is None else f"a {final.kind} payload"
            return _error(call, f"refused: the approval of {request.id!r} carries {what}, not this tool call")
        if final.tool != call.name or final.call_id != call.id:
            return _error(call, f"refused: the approval of {request.id!r} is for another call "
                                f"({final.tool!r} {final.call_id!r}), not {call.name!r} {call.id!r}")
        approved = ToolCall(call.id, call.name, dict(final.args))
        human = decided_by_person(decision)
        why = tool.requires_human(dict(approved.args))
        if why is not None and not human:
            return _error(call, f"not run: only a person can approve this {call.name} ({why}); "
                                f"it was decided by {decision.describe_decider()!r}. Use a plain argv without shell "
                                "syntax, "
                                "or ask the user to approve it.")
        if decision.remember and self.remember is not None:
            note = self.remember(approved, ctx, self.journal)
            if note:
                self._log("remember_refused", ctx, {"call_id": call.id, "why": note})
        return approved, dataclasses.replace(ctx, human_approved=human)

    # -- records --

    def _record(self, key: str, ctx: ToolContext, result: ToolResult) -> ToolResult:
        if self.journal is not None:
            self.journal.append(ToolCallFinished(key=key, result=result.to_json()))
        self._log("tool_result", ctx, result.to_json())
        return result

    def _log(self, kind: str, ctx: ToolContext, data: dict[str, Any]) -> None:
        if self.comms is not None:
            self.comms.log(kind, ctx.prov, data)


def _validator(tool: Tool, original: ToolPayload) -> Callable[[ToolPayload], None]:
    """Edits may change `args` only, and the edited args must fit the tool's schema."""

    def check(edited: ToolPayload) -> None:
        if edited.tool != original.tool or edited.call_id != original.call_id:
            raise ValueError("an approval is bound to its own tool call; the tool and call id cannot change")
        changed = sorted(k for k in ToolPayload.model_fields
                         if k != "args" and getattr(edited, k) != getattr(original, k))
        if changed:
            raise ValueError(f"only 'args' can be edited; these fields changed: {', '.join(changed)}")
        bad = problems(tool.spec.parameters, edited.args)
        if bad:
            raise ValueError("; ".join(bad))

    return check


def _can_remember(tool: Tool, args: dict[str, Any]) -> bool:
    """Whether 'always allow' is offered: only a tool that says this exact call may become a rule."""
    check = getattr(tool, "can_remember", None)
    return bool(check(args)) if callable(check) else False


def _error(call: ToolCall, message: str) -> ToolResult:
    return ToolResult(call.id, call.name, False, error=message)


def _short(args: dict[str, Any], limit: int = 80) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in args.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"
