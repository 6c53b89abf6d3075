"""The data of approvals, pure and frozen: kinds, requests, decisions and who decided. (The broker that turns
them into futures is conductor.approvals; the payload of each kind is in conductor.approval_payloads.)"""

from __future__ import annotations

import time
from collections.abc import Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from conductor.approval_payloads import ApprovalPayload, legacy_payload
from conductor.provenance import Provenance


class DecidedBy(StrEnum):
    """Who decided an approval: a person, a policy (automatic approval, an allow rule, a test's), nobody in
    time, or nobody at all (withdrawn by a cancel or a shutdown: not a decision, asked again later)."""

    PERSON = "person"
    POLICY = "policy"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


def decider_from_json(by: str, policy: object = None) -> tuple[DecidedBy, str | None]:
    """Read `by` as journalled, including the free strings written before the enum ('user', 'policy:<name>')."""
    if by == "user":
        return DecidedBy.PERSON, None
    if by.startswith("policy:"):
        return DecidedBy.POLICY, by.removeprefix("policy:")
    return DecidedBy(by), policy if isinstance(policy, str) else None


class ApprovalKind(StrEnum):
    PLAN = "plan"
    """Tier 1's tracks, before any track is created."""
    TICKETS = "tickets"
    """Tier 2's ticket DAG for one track, before anything runs."""
    SPAWN = "spawn"
    """Step mode: the exact prompt and context of one worker, before the call."""
    TOOL = "tool"
    """A write, edit or command a worker asked for."""


_DECIDERS = frozenset(d.value for d in DecidedBy)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ApprovalRequest(_Frozen):
    id: str
    prov: Provenance
    title: str
    payload: ApprovalPayload
    """What is asked, typed by kind: the request's kind is its payload's."""
    created: float = Field(default_factory=time.time)

    @property
    def kind(self) -> ApprovalKind:
        return ApprovalKind(self.payload.kind)

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: object) -> object:
        """Requests journalled before typed payloads: `kind` beside the payload, which was a plain dict."""
        if isinstance(data, dict) and "kind" in data:
            data = dict(data)
            kind = data.pop("kind")
            if isinstance(data.get("payload"), dict):
                data["payload"] = legacy_payload(str(kind), data["payload"])
        return data

    def to_json(self) -> dict[str, JsonValue]:
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, d: Mapping[str, object]) -> ApprovalRequest:
        return cls.model_validate(d)


class ApprovalDecision(_Frozen):
    request_id: str
    approved: bool
    payload: ApprovalPayload | None = None
    """What to act on when approved: the original payload or the person's edit (of the request's kind)."""
    reason: str | None = None
    """Why it was rejected; returned to the model for tool requests."""
    remember: bool = False
    """'Always allow this exact form for this track' (tool requests)."""
    by: DecidedBy = DecidedBy.PERSON
    edited: bool = False
    policy: str | None = None
    """Which policy decided (when `by` is POLICY)."""

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: object) -> object:
        """Decisions journalled before `by` was an enum said 'user' or 'policy:<name>'."""
        if isinstance(data, dict) and isinstance(data.get("by"), str) and data["by"] not in _DECIDERS:
            by, policy = decider_from_json(data["by"], data.get("policy"))
            data = {**data, "by": by, "policy": policy}
        return data

    @property
    def by_person(self) -> bool:
        return self.by == DecidedBy.PERSON

    def describe_decider(self) -> str:
        return f"policy {self.policy}" if self.by == DecidedBy.POLICY else self.by.value

    def to_json(self) -> dict[str, JsonValue]:
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, d: Mapping[str, object], kind: ApprovalKind | str | None = None) -> ApprovalDecision:
        """A journalled decision; `kind` (the request's) types a payload written before payloads had one."""
        data = dict(d)
        payload = data.get("payload")
        if kind is not None and isinstance(payload, dict):
            data["payload"] = legacy_payload(str(kind), payload)
        return cls.model_validate(data)
