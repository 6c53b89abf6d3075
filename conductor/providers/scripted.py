"""A deterministic, offline provider: role-aware scripts with latency, chunking, usage and injected faults.

It powers the tests and the labelled offline demo. No ML here, only procedural code: each call asks the
script for a `Reply` by tier (and ticket), then streams it in chunks, waiting on the cancel event (never
sleeping) between chunks so a cancel stops it at once.

    provider = ScriptedProvider()                                   # the demo script for every tier
    provider = ScriptedProvider({1: [Reply(text="not json")]})      # tier 1 scripted, others from the demo
    provider = ScriptedProvider({(3, "T2"): [Reply(fault=ProviderUnavailable("503"))], ...})

A key's replies are used in order; the last one repeats. A value may also be a callable
`(request, n) -> Reply` where n counts that key's calls from 0.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conductor.errors import CallTimeout, Cancelled, ProviderError, StreamInterrupted
from conductor.messages import Message, ToolCall
from conductor.model import Usage
from conductor.providers.base import (
    Finish,
    FinishReason,
    Provider,
    ProviderEvent,
    ProviderRequest,
    TextChunk,
    ToolCallChunk,
    UsageChunk,
)

_THINKING_TOKENS = {"off": 0, "minimal": 8, "low": 24, "medium": 64, "high": 160}


@dataclass(frozen=True)
class Reply:
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish: FinishReason | None = None
    """None: 'tool_calls' when there are calls, else 'stop'."""
    usage: Usage | None = None
    """None: estimated from the text sizes (never zero)."""
    fault: ProviderError | None = None
    """Raised before anything streams (a transient error, a bad request, ...)."""
    interrupt_after: int | None = None
    """Raise StreamInterrupted after this many chunks (partial usage attached)."""
    chunk_chars: int | None = None
    latency_s: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class SentCall:
    tier: int
    ticket_id: str | None
    attempt: int
    text: str
    usage: Usage


Responder = Sequence[Reply] | Callable[[ProviderRequest, int], Reply]


def estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _request_text(req: ProviderRequest) -> str:
    parts = [req.system]
    for m in req.messages:
        parts.append(m.text)
        parts += [json.dumps(c.args) for c in m.tool_calls]
        parts += [json.dumps(r.for_model()) for r in m.tool_results]
    return "\n".join(parts)


class ScriptedProvider(Provider):
    """Deterministic offline provider. Records every request it receives in `requests`."""

    __test__ = False
    name = "scripted"
    offline = True

    def __init__(self, script: Mapping[Any, Responder] | None = None, *, latency_s: float = 0.0,
                 chunk_delay_s: float = 0.0, chunk_chars: int = 24, fallback: Callable[[ProviderRequest, int], Reply]
                 | None = None) -> None:
        self.script = dict(script or {})
        self.latency_s = latency_s
        self.chunk_delay_s = chunk_delay_s
        self.chunk_chars = chunk_chars
        self.fallback = fallback or demo_reply
        self.requests: list[ProviderRequest] = []
        self.sent: list[SentCall] = []
        """Every completed call: what was streamed and the final usage reported (tests compare the ledger)."""
        self._calls: dict[Any, int] = {}
        self._lock = threading.Lock()

    # -- choosing a reply --

    def _key_for(self, req: ProviderRequest) -> Any:
        ticket_key = (req.tier, req.prov.ticket_id)
        if ticket_key in self.script:
            return ticket_key
        if req.tier in self.script:
            return req.tier
        return ("fallback", req.tier, req.prov.ticket_id)

    def _reply(self, req: ProviderRequest) -> Reply:
        with self._lock:
            self.requests.append(req)
            key = self._key_for(req)
            n = self._calls.get(key, 0)
            self._calls[key] = n + 1
        responder = self.script.get(key, None)
        if responder is None:
            return self.fallback(req, n)
        reply = responder(req, n) if callable(responder) else responder[min(n, len(responder) - 1)]
        assert isinstance(reply, Reply), f"a script for {key!r} gave {type(reply).__name__}, not a Reply"
        return reply

    def calls(self, tier: int | None = None) -> list[ProviderRequest]:
        with self._lock:
            return [r for r in self.requests if tier is None or r.tier == tier]

    # -- streaming --

    def _usage(self, req: ProviderRequest, reply: Reply, text_so_far: str, partial: bool,
               prompt_tokens: int | None = None) -> Usage:
        if reply.usage is not None and not partial:
            return reply.usage.model_copy(update={"model": reply.usage.model or req.model})
        calls = "".join(json.dumps(c.args) for c in reply.tool_calls) if not partial else ""
        prompt = prompt_tokens if prompt_tokens is not None else estimate_tokens(_request_text(req))
        return Usage(model=req.model, prompt_tokens=prompt,
                     output_tokens=estimate_tokens(text_so_far + calls) if (text_so_far or calls) else 0,
                     thinking_tokens=_THINKING_TOKENS.get(req.thinking, 0), partial=partial)

    @staticmethod
    def _wait(cancel: threading.Event, seconds: float, deadline: float | None, what: str) -> None:
        """Wait like a slow model: a cancel wins at once, and the request's deadline is kept."""
        limit = seconds if deadline is None else min(seconds, max(deadline - time.monotonic(), 0.0))
        if limit > 0 and cancel.wait(limit):
            raise Cancelled(f"cancelled {what}")
        if cancel.is_set():
            raise Cancelled(f"cancelled {what}")
        if deadline is not None and time.monotonic() >= deadline and seconds > limit:
            raise CallTimeout(f"scripted model still silent at its deadline ({what})")

    def stream(self, request: ProviderRequest, cancel: threading.Event) -> Iterator[ProviderEvent]:
        reply = self._reply(request)
        deadline = time.monotonic() + request.timeout_s if request.timeout_s else None
        latency = self.latency_s if reply.latency_s is None else reply.latency_s
        self._wait(cancel, latency, deadline, "before the first chunk")
        if reply.fault is not None:
            raise reply.fault
        size = reply.chunk_chars or self.chunk_chars
        chunks = [reply.text[i:i + size] for i in range(0, len(reply.text), size)]
        sent = ""
        prompt = estimate_tokens(_request_text(request))
        for i, chunk in enumerate(chunks):
            if reply.interrupt_after is not None and i >= reply.interrupt_after:
                raise StreamInterrupted("scripted: stream cut mid-way",
                                        usage=self._usage(request, reply, sent, partial=True))
            if i:
                self._wait(cancel, self.chunk_delay_s, deadline, "mid-stream")
            sent += chunk
            yield TextChunk(chunk)
            yield UsageChunk(Usage(model=request.model, prompt_tokens=prompt))  # cumulative, like Gemini's
        if reply.interrupt_after is not None:
            raise StreamInterrupted("scripted: stream ended without a finish reason",
                                    usage=self._usage(request, reply, sent, partial=True))
        for call in reply.tool_calls:
            yield ToolCallChunk(call)
        final = self._usage(request, reply, reply.text, partial=False, prompt_tokens=prompt)
        with self._lock:
            self.sent.append(SentCall(request.tier, request.prov.ticket_id, request.prov.attempt, reply.text, final))
        yield UsageChunk(final)
        finish = reply.finish or ("tool_calls" if reply.tool_calls else "stop")
        yield Finish(finish, Message(role="model", text=reply.text, tool_calls=reply.tool_calls), reply.detail)


# --- the demo script: plausible, deterministic answers for every tier ---

def demo_tracks(epic: str) -> dict[str, Any]:
    title = epic.strip().splitlines()[0][:80] if epic.strip() else "Untitled epic"
    return {"tracks": [{
        "title": title,
        "goal": f"Deliver: {title}",
        "scope": "The workspace's own code and tests; no new dependencies.",
        "acceptance_criteria": ["Every ticket's acceptance criteria are met", "The workspace's tests pass"],
    }]}


def demo_tickets(track_title: str) -> dict[str, Any]:
    """A diamond (T1 -> T2, T3 -> T4) followed by a chain (T4 -> T5 -> T6)."""
    def t(tid: str, title: str, deps: list[str], target: str) -> dict[str, Any]:
        return {"id": tid, "title": title, "description": f"{title} for '{track_title}'.", "depends_on": deps,
                "target_files": [target], "acceptance_criteria": [f"{target} describes: {title.lower()}"],
                "step_mode": False, "model_override": None}
    return {"tickets": [
        t("T1", "Survey the workspace", [], "notes/survey.md"),
        t("T2", "Design the data model", ["T1"], "notes/model.md"),
        t("T3", "Design the interface", ["T1"], "notes/interface.md"),
        t("T4", "Implement the core", ["T2", "T3"], "notes/core.md"),
        t("T5", "Write the tests", ["T4"], "notes/tests.md"),
        t("T6", "Document the change", ["T5"], "notes/docs.md"),
    ]}


def _ticket_field(req: ProviderRequest, name: str) -> str:
    for m in req.messages:
        for line in m.text.splitlines():
            if line.startswith(f"{name}:"):
                return line.split(":", 1)[1].strip()
    return ""


def demo_reply(req: ProviderRequest, n: int) -> Reply:
    """Tier 1: one track. Tier 2: a diamond and a chain. Tier 3: look around, write the target, report.
    Tier 4: pass."""
    if req.tier == 1:
        epic = req.messages[0].text.split("EPIC:", 1)[-1].strip() if req.messages else ""
        return Reply(text=json.dumps(demo_tracks(epic), indent=1))
    if req.tier == 2:
        return Reply(text=json.dumps(demo_tickets(_ticket_field(req, "TRACK") or "the track"), indent=1))
    if req.tier == 4:  # fails a ticket whose worker's change was rejected: nothing was changed
        not_done = [ln for ln in _request_text(req).splitlines() if "-> NOT DONE: rejected" in ln]
        if not_done:
            return Reply(text=json.dumps({"verdict": "fail", "hint": "A change was rejected by the user, so the "
                                          "ticket's work is not in the workspace: " + not_done[0].split(
                                              "NOT DONE: ", 1)[1][:200]}))
        return Reply(text=json.dumps({"verdict": "pass", "hint": ""}))
    ticket = req.prov.ticket_id or "ticket"
    tool_names = {t.name for t in req.tools}
    turns = sum(1 for m in req.messages if m.role == "model")
    if turns == 0 and "list_dir" in tool_names:
        return Reply(text=f"Looking at the workspace before starting {ticket}.\n",
                     tool_calls=(ToolCall(f"{ticket}-a{req.prov.attempt}-c1", "list_dir", {"path": "."}),))
    target = _ticket_field(req, "TARGET FILES").split(",")[0].strip() or f"notes/{ticket}.md"
    if turns == 1 and "write_file" in tool_names:
        body = f"# {ticket}\n\n{_ticket_field(req, 'TITLE')}\n\nWritten by the offline demo worker.\n"
        return Reply(text=f"Writing {target}.\n",
                     tool_calls=(ToolCall(f"{ticket}-a{req.prov.attempt}-c2", "write_file",
                                          {"path": target, "content": body}),))
    rejected = [r for m in req.messages for r in m.tool_results if not r.ok]
    if rejected:  # react to what the tools said instead of declaring success
        why = rejected[-1].error or "it failed"
        return Reply(text=f"I could not finish {ticket}: my {rejected[-1].name} was not applied ({why}). The "
                          f"change to {target} is NOT in the workspace; the ticket is not complete.\n")
    summary = (f"Work on {ticket} is complete. I reviewed the workspace, made the change to {target}, and "
               f"checked it against the acceptance criteria. Summary: the ticket's goal is met.\n")
    return Reply(text=summary)
