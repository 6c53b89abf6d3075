"""What travels over the bus: the attempt message (desktop → worker) and the events (worker → desktop).

Every message and every event carries the trace id and the request id (track/ticket/attempt); events also carry
the dispatch number and a per-request sequence number, so the desktop drops a duplicate (request id, seq) and a
late dispatch. Parsing never raises anything but `WireError`, whose text says what is wrong (it becomes the
dead-letter reason).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError, model_validator

from conductor import errors as _errors
from conductor.approval_types import ApprovalDecision, ApprovalRequest
from conductor.config import Config, config_to_toml, parse_config
from conductor.distributed.schema import parse_request_id
from conductor.errors import ConductorError, ConfigError
from conductor.events import (
    ErrorRaised,
    Event,
    Notice,
    StreamDelta,
    StreamReset,
    ToolCalled,
    ToolResulted,
    UsageRecorded,
)
from conductor.model import Ticket, Track
from conductor.records import Record, RecordError, from_data, record_type, to_data

WIRE_VERSION = 1


class WireError(ValueError):
    """A message or event that cannot be used; the text says why (and becomes the dead-letter reason)."""


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AttemptMessage(_Wire):
    """One Tier 3 attempt for a worker: everything it needs but the code, which it fetches from `git_remote`."""

    kind: Literal["attempt"] = "attempt"
    v: int = WIRE_VERSION
    namespace: str
    bus_id: str
    trace_id: str
    request_id: str
    dispatch: int = Field(ge=1)
    track: Track
    """The track as the desktop's engine saw it at dispatch (prompts read sibling tickets)."""
    ticket: Ticket
    model: str
    config_toml: str
    """The desktop's configuration as config.toml text (TOML keeps its dates; it never holds an API key)."""
    git_remote: str
    track_branch: str
    track_tip: str
    """The commit of the track branch the attempt starts from (pushed to the remote before the message)."""
    resolve_from: str | None = None
    """A resolve attempt's starting commit (pushed as refs/conductor/resolve/…)."""
    resolve_ref: str | None = None
    resume_decision: dict[str, Any] | None = None
    """A resumed (parked) attempt: the decision (ApprovalDecision JSON) for the approval it parked on."""

    _config: Config | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _parse_config(self) -> AttemptMessage:
        try:
            self._config = parse_config(tomllib.loads(self.config_toml), source="the message's config")
        except (ConfigError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(str(exc)) from None
        return self

    @property
    def config(self) -> Config:
        assert self._config is not None  # set by the validator
        return self._config

    def ids(self) -> tuple[str, str, int]:
        return parse_request_id(self.request_id)


def config_text(cfg: Config) -> str:
    return config_to_toml(cfg)


def parse_attempt(body: str) -> AttemptMessage:
    """The attempt in `body`, checked; WireError with the reason otherwise."""
    try:
        msg = AttemptMessage.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise WireError(f"malformed message: {where}: {first['msg']} ({exc.error_count()} problem(s))") from None
    if msg.v != WIRE_VERSION:
        raise WireError(f"malformed message: wire version {msg.v}, this worker speaks {WIRE_VERSION}")
    try:
        track_id, ticket_id, attempt = msg.ids()
    except ValueError as exc:
        raise WireError(f"malformed message: {exc}") from None
    if (track_id, ticket_id, attempt) != (msg.track.id, msg.ticket.id, attempt) or attempt < 1:
        raise WireError(f"malformed message: request id {msg.request_id!r} does not name track {msg.track.id!r}, "
                        f"ticket {msg.ticket.id!r}")
    return msg


# --- events, worker → desktop ------------------------------------------------------------------------------

ForwardedEvent: TypeAlias = StreamDelta | StreamReset | UsageRecorded | ToolCalled | ToolResulted | Notice | ErrorRaised
_FORWARDED: dict[str, type[Event]] = {c.kind: c for c in (StreamDelta, StreamReset, UsageRecorded, ToolCalled,
                                                          ToolResulted, Notice, ErrorRaised)}
_ADAPTERS: dict[str, TypeAdapter[Any]] = {k: TypeAdapter(c) for k, c in _FORWARDED.items()}

def is_forwarded(event: Event) -> bool:
    """Whether the desktop shows this kind of event from a remote attempt."""
    return event.kind in _FORWARDED


BusKind = Literal["started", "event", "record", "approval", "review", "result", "parked", "dead", "rejected",
                  "released"]


@dataclass(frozen=True)
class Started:
    worker: str


@dataclass(frozen=True)
class Forwarded:
    event: Event


@dataclass(frozen=True)
class Journalled:
    record: Record


@dataclass(frozen=True)
class AskApproval:
    request: ApprovalRequest


@dataclass(frozen=True)
class Reviewing:
    pass


@dataclass(frozen=True)
class Finished:
    """The attempt ended on the worker: passed (hint None), failed review (hint), or raised (`error_type`)."""

    hint: str | None
    commit: str | None
    branch: str | None
    error_type: str | None = None
    error: str = ""


@dataclass(frozen=True)
class Parked:
    call_id: str
    """The approval the attempt waits on; its answer resumes it."""


@dataclass(frozen=True)
class DeadLettered:
    reason: str


@dataclass(frozen=True)
class Released:
    """The worker stopped (SIGTERM) mid-attempt and gave the dispatch back undone: the desktop dispatches it
    again at once (not a lost worker: no reassignment is counted)."""

    reason: str


Payload: TypeAlias = (Started | Forwarded | Journalled | AskApproval | Reviewing | Finished | Parked | DeadLettered
                      | Released)


@dataclass(frozen=True)
class BusEvent:
    request_id: str
    trace_id: str
    dispatch: int
    seq: int
    worker: str
    payload: Payload


def encode(ev: BusEvent) -> str:
    body: dict[str, Any]
    kind: str
    match ev.payload:
        case Started(worker=w):
            kind, body = "started", {"worker": w}
        case Forwarded(event=e):
            kind, body = "event", {"type": e.kind, "event": _ADAPTERS[e.kind].dump_python(e, mode="json")}
        case Journalled(record=r):
            kind, body = "record", {"type": record_type(type(r)), "data": to_data(r)}
        case AskApproval(request=req):
            kind, body = "approval", req.to_json()
        case Reviewing():
            kind, body = "review", {}
        case Finished() as f:
            kind, body = "result", {"hint": f.hint, "commit": f.commit, "branch": f.branch,
                                    "error_type": f.error_type, "error": f.error}
        case Parked(call_id=c):
            kind, body = "parked", {"call_id": c}
        case DeadLettered(reason=r):
            kind, body = "dead", {"reason": r}
        case Released(reason=r):
            kind, body = "released", {"reason": r}
    return json.dumps({"rid": ev.request_id, "trace": ev.trace_id, "dispatch": ev.dispatch, "seq": ev.seq,
                       "worker": ev.worker, "kind": kind, "body": body}, ensure_ascii=False)


def decode(text: str) -> BusEvent:
    """The event in `text`; WireError naming the problem otherwise."""
    try:
        d = json.loads(text)
        body = d["body"]
        kind = d["kind"]
        payload: Payload
        if kind == "started":
            payload = Started(str(body["worker"]))
        elif kind == "event":
            if body["type"] not in _ADAPTERS:
                raise WireError(f"event type {body['type']!r} is not forwarded")
            payload = Forwarded(_ADAPTERS[body["type"]].validate_python(body["event"]))
        elif kind == "record":
            payload = Journalled(from_data(body["type"], body["data"]))
        elif kind == "approval":
            payload = AskApproval(ApprovalRequest.from_json(body))
        elif kind == "review":
            payload = Reviewing()
        elif kind == "result":
            payload = Finished(body["hint"], body["commit"], body["branch"], body["error_type"], body["error"])
        elif kind == "parked":
            payload = Parked(str(body["call_id"]))
        elif kind == "dead":
            payload = DeadLettered(str(body["reason"]))
        elif kind == "released":
            payload = Released(str(body["reason"]))
        else:
            raise WireError(f"unknown event kind {kind!r}")
        return BusEvent(str(d["rid"]), str(d["trace"]), int(d["dispatch"]), int(d["seq"]), str(d["worker"]), payload)
    except WireError:
        raise
    except (ValueError, KeyError, TypeError, ValidationError, RecordError) as exc:
        raise WireError(f"malformed event: {type(exc).__name__}: {exc}") from None


# --- errors across the wire -----------------------------------------------------------------------------------


class RemoteError(ConductorError):
    """An attempt raised on a worker something that is not one of Conductor's own errors."""


def error_from_wire(error_type: str, message: str) -> ConductorError:
    """The exception a worker reported, rebuilt as the same Conductor error class (so the engine treats a remote
    attempt's failure exactly like a local one's); anything else is a RemoteError."""
    cls = getattr(_errors, error_type, None)
    if isinstance(cls, type) and issubclass(cls, ConductorError):
        try:
            return cls(message)
        except TypeError:  # a class whose constructor wants more than a message
            pass
    return RemoteError(f"{error_type}: {message}")


def decision_from_wire(d: dict[str, Any]) -> ApprovalDecision:
    try:
        return ApprovalDecision.from_json(d)
    except (KeyError, ValueError, TypeError) as exc:
        raise WireError(f"malformed approval answer: {exc}") from None
