"""One model call, done properly: budget check, streaming to the pane and the output file, usage recorded
exactly once per provider attempt, one retry budget for transient failures (including those inside a stream,
which the SDK does not retry) through the model's shared gate (conductor/limits.py: cooldowns, circuit
breaker, daily quota), and finish reasons turned into errors where they mean one.

Every tier goes through `call_model`; nothing else talks to a provider.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from conductor.config import Config
from conductor.errors import (
    CallTimeout,
    Cancelled,
    OutputTruncated,
    ProviderError,
    QuotaExhausted,
    SafetyBlocked,
    TransientProviderError,
)
from conductor.events import EventQueue, Notice, Provenance, StreamDelta, StreamReset, UsageRecorded
from conductor.limits import ModelLimits, Wait, is_outage
from conductor.messages import Message, ToolCall
from conductor.model import Usage
from conductor.providers.base import Finish, Provider, ProviderRequest, TextChunk, ToolCallChunk, UsageChunk
from conductor.records import Record, UsageLogged
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
    limits: ModelLimits | None = None
    """The per-model gates. One per session (every worker and planning call shares it); None makes one from
    `cfg` (a CallDeps on its own, as in tests)."""

    def __post_init__(self) -> None:
        if self.limits is None:
            self.limits = ModelLimits.from_config(self.cfg)

    @property
    def gates(self) -> ModelLimits:
        assert self.limits is not None  # set in __post_init__
        return self.limits

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


_PROCESS_TOKEN = uuid.uuid4().hex[:6]
_CALLS = itertools.count(1)


def _unique_suffix() -> str:
    """Unique across processes (a random token drawn once) and within one (a counter): a uuid4 per call read
    os.urandom on the worker thread, a system call whose GIL hand-back cost ~0.4 ms per call with 8+ workers."""
    return f"{_PROCESS_TOKEN}{next(_CALLS):x}"


def record_usage(deps: CallDeps, prov: Provenance, record_id: str, usage: Usage,
                 with_records: tuple[Record, ...] = ()) -> Usage:
    """Price the usage, add it to the ledger once, journal it (with `with_records`, the caller's record of the same
    call, in the same write), and tell the GUI."""
    priced = deps.ledger.priced(usage)
    rec = UsageRecord(record_id=record_id, tier=prov.tier or 0, model=usage.model, usage=priced,
                      track_id=prov.track_id, ticket_id=prov.ticket_id, attempt=prov.attempt, ts=time.time())
    counted = deps.ledger.record(rec)
    records: list[Record] = [UsageLogged(key=record_id, record=rec)] if counted else []
    records.extend(with_records)
    if deps.journal is not None and records:
        # Not fsynced on its own: the next synced line of this journal (the engine's batch, a tool intent)
        # makes it durable; a kill -9 loses nothing written, only a power cut could lose the last few.
        deps.journal.append_many(records, sync=False)
    if counted:
        deps.events.post(UsageRecorded(prov=prov, record_id=record_id, usage=priced))
    return priced


def call_model(req: ProviderRequest, deps: CallDeps, *, cancel: threading.Event, call_no: int = 1,
               stream_id: str | None = None, turn: Callable[[Message], Record] | None = None) -> CallResult:
    """Run one model call through the model's shared gate, with one retry budget.

    Every request first passes `deps.limits` (rate, cooldown after a 429, circuit breaker). Each failed HTTP
    request (the SDK's own retries included) spends the budget, `cfg.retry.max_retries`. A call that spends
    it on an outage (429, 503, a cut stream: never the ticket's fault) does not fail: it trips the model's
    circuit and waits, on the same attempt and model, until a probe gets through. Other transient failures
    (500, deadline) raise once the budget is spent. Raises ProviderError subclasses, QuotaExhausted (a daily
    quota: not retried), BudgetExceeded, Cancelled, OutputTruncated (MAX_TOKENS) or SafetyBlocked.

    `turn` makes the caller's record of the answer (a worker's ModelTurn) from its message: journalled in the same
    write as the call's usage (one write(2) less per call, each a GIL hand-back on a busy worker thread)."""
    prov = req.prov
    stream_id = stream_id or prov.stream_id
    budget = deps.cfg.retry.max_retries
    failed = 0
    retries = 0
    parked = False
    while True:
        deps.ledger.check_budget(deps.cfg.budget, req.model, track_id=prov.track_id)
        go = deps.gates.acquire(req.model, cancel, on_wait=lambda w: _tell_wait(deps, prov, req.model, w))
        record_id = f"{stream_id}#a{prov.attempt}.c{call_no}.r{retries}.{_unique_suffix()}"
        try:
            result = _one_attempt(req, deps, cancel, stream_id, record_id, retries, turn)
        except QuotaExhausted as exc:
            deps.gates.exhausted(req.model, go, exc)
            raise
        except TransientProviderError as exc:
            if exc.usage is not None:
                record_usage(deps, prov, record_id, exc.usage.model_copy(update={"partial": True}))
            deps.gates.failed(req.model, go, exc)
            failed += max(exc.http_requests, 1)
            retries += 1
            if failed > budget:
                if not is_outage(exc):
                    raise
                deps.gates.trip(req.model)  # from now on only the model's probe requests go out
                if not parked:
                    parked = True
                    deps.events.post(Notice(prov=prov, level="warning", message=(
                        f"{req.model} is unavailable ({type(exc).__name__}: {exc}); retry budget spent, so "
                        f"{prov.describe() or 'this call'} waits on the same attempt and model until a probe "
                        "gets through (not counted as a failed attempt)")))
            deps.events.post(StreamReset(prov=prov, stream_id=stream_id,
                                         reason=f"{type(exc).__name__}: {exc}; "
                                                + (f"retry {retries} of {budget}" if failed <= budget
                                                   else "waiting for the model to recover")))
            if deps.sink is not None:
                deps.sink(f"\n\n[discarded: {type(exc).__name__}: {exc}; retrying]\n\n")
        except Cancelled:
            deps.gates.released(req.model, go)
            raise
        except ProviderError:
            deps.gates.succeeded(req.model, go)  # the model answered (a 400, a safety block...): it is up
            raise
        except BaseException:
            deps.gates.released(req.model, go)
            raise
        else:
            deps.gates.succeeded(req.model, go)
            return result


def _tell_wait(deps: CallDeps, prov: Provenance, model: str, wait: Wait) -> None:
    deps.events.post(Notice(prov=prov, message=f"waiting for {model}: {wait.reason}"))


def _one_attempt(req: ProviderRequest, deps: CallDeps, cancel: threading.Event, stream_id: str, record_id: str,
                 retries: int, turn: Callable[[Message], Record] | None = None) -> CallResult:
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
    full = "".join(text)
    msg = finish.message if finish.message.tool_calls or not calls else Message("model", full, tuple(calls))
    answered = finish.reason not in ("max_tokens", "safety")
    with_turn = (turn(msg),) if turn is not None and answered else ()
    if usage is None:  # never record a zero that means "unknown": say so instead
        deps.events.post(Notice(prov=prov, level="warning",
                                message=f"{deps.provider.name} reported no token usage for a {req.model} call; "
                                        "it is missing from the ledger"))
        final = Usage(model=req.model, partial=True)
        if with_turn and deps.journal is not None:
            deps.journal.append_many(list(with_turn), sync=False)
    else:
        final = record_usage(deps, prov, record_id, usage, with_turn)
    if deps.comms is not None:
        deps.comms.log("model_response", prov, {"model": req.model, "finish": finish.reason, "text": full,
                                                "tool_calls": [c.to_json() for c in calls],
                                                "usage": final.model_dump(mode="json")})
    if finish.reason == "max_tokens":
        raise OutputTruncated(f"the model stopped at its output limit ({req.max_output_tokens or 'default'} "
                              f"tokens) after {len(full)} characters", partial_text=full, usage=final)
    if finish.reason == "safety":
        raise SafetyBlocked(f"blocked for safety{': ' + finish.detail if finish.detail else ''}", usage=final)
    return CallResult(full, tuple(msg.tool_calls) or tuple(calls), msg, final, finish.reason, retries)
