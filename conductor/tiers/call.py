"""One model call, done properly: budget check, streaming to the pane and the output file, usage recorded
exactly once per provider attempt, our own retry with backoff for transient failures (including those inside
a stream, which the SDK does not retry), and finish reasons turned into errors where they mean one.

Every tier goes through `call_model`; nothing else talks to a provider.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from conductor.config import Config
from conductor.errors import (
    CallTimeout,
    Cancelled,
    OutputTruncated,
    ProviderError,
    RateLimited,
    SafetyBlocked,
    TransientProviderError,
)
from conductor.events import EventQueue, Notice, Provenance, StreamDelta, StreamReset, UsageRecorded
from conductor.messages import Message, ToolCall
from conductor.model import Usage
from conductor.providers.base import Finish, Provider, ProviderRequest, TextChunk, ToolCallChunk, UsageChunk
from conductor.records import UsageData, UsageLogged
from conductor.store import Journal
from conductor.usage import UsageLedger, UsageRecord


class CommsSink(Protocol):
    def log(self, kind: str, prov: Provenance, data: dict[str, Any]) -> None: ...


@dataclass
class CallDeps:
    """What a model call needs. One per session; the `journal`/`comms`/`sink` vary per track and ticket."""

    provider: Provider
    events: EventQueue
    ledger: UsageLedger
    cfg: Config
    journal: Journal | None = None
    """Usage records are journalled here (so the ledger survives a restart)."""
    comms: CommsSink | None = None
    sink: Callable[[str], None] | None = None
    """Receives the streamed text (the ticket's output file)."""
    rng: random.Random = field(default_factory=random.Random)

    def with_(self, **kw: Any) -> CallDeps:
        return CallDeps(**{**self.__dict__, **kw})


@dataclass(frozen=True)
class CallResult:
    text: str
    tool_calls: tuple[ToolCall, ...]
    message: Message
    usage: Usage
    finish: str
    retries: int


def backoff_delay(retry: int, cfg: Config, rng: random.Random, hint_s: float | None = None) -> float:
    """Exponential backoff with jitter for retry n (1-based), capped; a server hint wins when it is longer."""
    r = cfg.retry
    base = min(r.initial_delay_s * (2 ** (retry - 1)), r.max_delay_s)
    delay = base * (1 - r.jitter * rng.random())
    if hint_s is not None:
        delay = max(delay, min(hint_s, max(r.max_delay_s, hint_s)))
    return float(delay)


def record_usage(deps: CallDeps, prov: Provenance, record_id: str, usage: Usage) -> Usage:
    """Price the usage, add it to the ledger once, journal it, and tell the GUI."""
    priced = deps.ledger.priced(usage)
    rec = UsageRecord(record_id=record_id, tier=prov.tier or 0, model=usage.model, usage=priced,
                      track_id=prov.track_id, ticket_id=prov.ticket_id, attempt=prov.attempt, ts=time.time())
    if deps.ledger.record(rec):
        if deps.journal is not None:
            # Not fsynced on its own: the next synced line of this journal (the engine's batch, a tool intent)
            # makes it durable; a kill -9 loses nothing written, only a power cut could lose the last few.
            deps.journal.append(UsageLogged(key=record_id, record=UsageData.model_validate(rec.to_json())),
                                sync=False)
        deps.events.post(UsageRecorded(prov=prov, record_id=record_id, usage=priced))
    return priced


def call_model(req: ProviderRequest, deps: CallDeps, *, cancel: threading.Event, call_no: int = 1,
               stream_id: str | None = None) -> CallResult:
    """Run one model call with retries. Raises ProviderError subclasses (after retries), BudgetExceeded,
    Cancelled, OutputTruncated (MAX_TOKENS) or SafetyBlocked."""
    prov = req.prov
    stream_id = stream_id or prov.stream_id
    retries = 0
    while True:
        deps.ledger.check_budget(deps.cfg.budget, req.model, track_id=prov.track_id)
        record_id = f"{stream_id}#a{prov.attempt}.c{call_no}.r{retries}.{uuid.uuid4().hex[:6]}"
        try:
            return _one_attempt(req, deps, cancel, stream_id, record_id, retries)
        except TransientProviderError as exc:
            if exc.usage is not None:
                record_usage(deps, prov, record_id, exc.usage.model_copy(update={"partial": True}))
            retries += 1
            if retries > deps.cfg.retry.max_retries:
                raise
            hint = exc.retry_after_s if isinstance(exc, RateLimited) else None
            delay = backoff_delay(retries, deps.cfg, deps.rng, hint)
            deps.events.post(StreamReset(prov=prov, stream_id=stream_id,
                                         reason=f"{type(exc).__name__}: {exc}; retry {retries} of "
                                                f"{deps.cfg.retry.max_retries} in {delay:.1f}s"))
            if deps.sink is not None:
                deps.sink(f"\n\n[discarded: {type(exc).__name__}: {exc}; retrying]\n\n")
            if cancel.wait(delay):
                raise Cancelled(f"cancelled while backing off after {type(exc).__name__}") from None


def _one_attempt(req: ProviderRequest, deps: CallDeps, cancel: threading.Event, stream_id: str, record_id: str,
                 retries: int) -> CallResult:
    prov = req.prov
    timeout = req.timeout_s or deps.cfg.engine.call_timeout_s
    req = replace(req, timeout_s=timeout)  # providers enforce it while waiting, not only between chunks
    if deps.comms is not None:
        deps.comms.log("model_request", prov, {"model": req.model, "system": req.system, "retry": retries,
                                               "messages": [m.to_json() for m in req.messages],
                                               "tools": [t.name for t in req.tools]})
    deadline = time.monotonic() + timeout
    text: list[str] = []
    calls: list[ToolCall] = []
    usage: Usage | None = None
    finish: Finish | None = None
    try:
        for ev in deps.provider.stream(req, cancel):
            if isinstance(ev, TextChunk):
                if not ev.thought:
                    text.append(ev.text)
                    if deps.sink is not None:
                        deps.sink(ev.text)
                deps.events.post(StreamDelta(prov=prov, stream_id=stream_id, text=ev.text, thought=ev.thought))
            elif isinstance(ev, ToolCallChunk):
                calls.append(ev.call)
            elif isinstance(ev, UsageChunk):
                usage = ev.usage
            elif isinstance(ev, Finish):
                finish = ev
            if time.monotonic() > deadline:
                raise CallTimeout(f"model call exceeded its {timeout:g}s deadline", usage=usage)
    except ProviderError as exc:
        if exc.usage is None and usage is not None:
            exc.usage = usage
        raise
    except Cancelled:
        if usage is not None:
            record_usage(deps, prov, record_id, usage.model_copy(update={"partial": True}))
        raise
    if finish is None:
        raise AssertionError(f"provider {deps.provider.name!r} ended a stream without Finish or an error")
    if usage is None:  # never record a zero that means "unknown": say so instead
        deps.events.post(Notice(prov=prov, level="warning",
                                message=f"{deps.provider.name} reported no token usage for a {req.model} call; "
                                        "it is missing from the ledger"))
        final = Usage(model=req.model, partial=True)
    else:
        final = record_usage(deps, prov, record_id, usage)
    full = "".join(text)
    if deps.comms is not None:
        deps.comms.log("model_response", prov, {"model": req.model, "finish": finish.reason, "text": full,
                                                "tool_calls": [c.to_json() for c in calls],
                                                "usage": final.model_dump(mode="json")})
    if finish.reason == "max_tokens":
        raise OutputTruncated(f"the model stopped at its output limit ({req.max_output_tokens or 'default'} "
                              f"tokens) after {len(full)} characters", partial_text=full, usage=final)
    if finish.reason == "safety":
        raise SafetyBlocked(f"blocked for safety{': ' + finish.detail if finish.detail else ''}", usage=final)
    msg = finish.message if finish.message.tool_calls or not calls else Message("model", full, tuple(calls))
    return CallResult(full, tuple(msg.tool_calls) or tuple(calls), msg, final, finish.reason, retries)
