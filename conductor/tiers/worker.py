"""Tier 3: one stateless worker attempt on one ticket.

A fresh context (the ticket, its track, the target files), a stream into the ticket's pane, and a loop over
tool calls through the approval gate. Each completed model turn is journalled before its tool calls run, so
a resumed attempt replays journalled turns instead of paying for them again, and the gate never repeats a
journalled side effect.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from conductor import redact
from conductor.errors import ProviderError
from conductor.events import Provenance, StreamDelta, ToolCalled, ToolResulted
from conductor.messages import Message, user
from conductor.model import Ticket, Track
from conductor.providers.base import ProviderRequest
from conductor.records import ModelTurn
from conductor.store import Journal
from conductor.stream_notes import tool_call_line, tool_result_line
from conductor.tiers import prompts
from conductor.tiers.call import CallDeps, call_model
from conductor.tools.base import ToolContext
from conductor.tools.gate import ToolGate


class ToolLoopExceeded(ProviderError):
    """The worker kept calling tools past the turn limit."""


@dataclass
class WorkerReport:
    text: str
    """The worker's final answer (its summary)."""
    actions: list[str] = field(default_factory=list)
    """One line per tool call: name, args summary, outcome."""
    turns: int = 0


NOT_DONE = "NOT DONE"
"""Marks an action that changed nothing (rejected or failed) in the list Tier 4 reads."""


def action_line(name: str, args: dict[str, object], ok: bool, error: str | None) -> str:
    """One line of the action list Tier 4 judges: what was asked, and whether it happened."""
    call = f"{name}({', '.join(f'{k}={str(v)[:60]!r}' for k, v in args.items())})"
    return f"{call} -> ok" if ok else f"{call} -> {NOT_DONE}: {error or 'failed'}"


def worker_prompt(track: Track, ticket: Ticket, tool_ctx: ToolContext) -> str:
    """The exact first message a worker sees (shown, editable, in the spawn approval)."""
    if ticket.spawn_prompt:
        return ticket.spawn_prompt
    context = prompts.read_context(tool_ctx.workspace, ticket.target_files, protected=tool_ctx.protected)
    return prompts.tier3_user(track, ticket, context)


def run_worker(track: Track, ticket: Ticket, model: str, deps: CallDeps, gate: ToolGate, tool_ctx: ToolContext,
               *, prov: Provenance, cancel: threading.Event, journal: Journal | None) -> WorkerReport:
    cfg = deps.cfg
    messages: list[Message] = [user(worker_prompt(track, ticket, tool_ctx))]
    actions: list[str] = []
    for turn in range(1, cfg.engine.max_tool_turns + 1):
        key = f"{track.id}/{ticket.id}/{prov.attempt}/turn{turn}"
        done = journal.find(ModelTurn, key) if journal is not None else None
        if done is not None:
            msg = Message.from_json(dict(done.message))
            if msg.text:
                deps.events.post(StreamDelta(prov=prov, stream_id=prov.stream_id, text=msg.text, replayed=True))
        else:
            req = ProviderRequest(model=model, tier=3, system=prompts.TIER3_SYSTEM, messages=tuple(messages),
                                  tools=gate.toolbox.specs(), thinking=cfg.thinking.tier3,
                                  max_output_tokens=cfg.engine.max_output_tokens, prov=prov)
            # Journalled with the call's usage, durable with the next synced line (a tool call's intent is synced
            # before it runs).
            record = (lambda m, k=key: ModelTurn(key=k, message=m.to_json())) if journal is not None else None
            if journal is deps.journal:
                msg = call_model(req, deps, cancel=cancel, call_no=turn, turn=record).message
            else:
                msg = call_model(req, deps, cancel=cancel, call_no=turn).message
                if journal is not None:
                    journal.append(ModelTurn(key=key, message=msg.to_json()), sync=False)
        messages.append(msg)
        if not msg.tool_calls:
            final = msg.text.strip() or "\n".join(m.text for m in messages if m.role == "model").strip()
            return WorkerReport(final, actions, turn)
        results = []
        for call in msg.tool_calls:
            deps.events.post(ToolCalled(prov=prov, call_id=call.id, name=call.name, args=dict(call.args)))
            result, replayed = gate.run(call, tool_ctx)
            deps.events.post(ToolResulted(prov=prov, call_id=call.id, name=call.name, ok=result.ok,
                                          summary=result.summary(), replayed=replayed))
            if deps.sink is not None and not replayed:  # the output file reads as the live pane does
                deps.sink(redact.text(f"\n{tool_call_line(call.name, dict(call.args))}\n"
                                      f"\n{tool_result_line(call.name, result.ok, result.summary())}\n"))
            actions.append(action_line(call.name, dict(call.args), result.ok, result.error))
            results.append(result)
        messages.append(Message(role="tool", tool_results=tuple(results)))
    raise ToolLoopExceeded(f"worker used {cfg.engine.max_tool_turns} turns without finishing")
