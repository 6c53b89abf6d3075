"""The data of approvals, pure and frozen: kinds, requests, decisions and who decided. (The broker that turns
them into futures is conductor.approvals.)"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

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


@dataclass(frozen=True)
class ApprovalRequest:
    id: str
    kind: ApprovalKind
    prov: Provenance
    title: str
    payload: dict[str, Any]
    created: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        p = self.prov
        return {"id": self.id, "kind": self.kind.value, "title": self.title, "payload": self.payload,
                "created": self.created, "prov": {"trace_id": p.trace_id, "track_id": p.track_id,
                                                  "ticket_id": p.ticket_id, "tier": p.tier, "attempt": p.attempt}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ApprovalRequest:
        return cls(id=d["id"], kind=ApprovalKind(d["kind"]), title=d["title"], payload=d["payload"],
                   created=d.get("created", 0.0), prov=Provenance(**d["prov"]))


@dataclass(frozen=True)
class ApprovalDecision:
    request_id: str
    approved: bool
    payload: dict[str, Any] | None = None
    """What to act on when approved: the original payload or the user's edit."""
    reason: str | None = None
    """Why it was rejected; returned to the model for tool requests."""
    remember: bool = False
    """'Always allow this exact form for this track' (tool requests)."""
    by: DecidedBy = DecidedBy.PERSON
    edited: bool = False
    policy: str | None = None
    """Which policy decided (when `by` is POLICY)."""

    @property
    def by_person(self) -> bool:
        return self.by == DecidedBy.PERSON

    def describe_decider(self) -> str:
        return f"policy {self.policy}" if self.by == DecidedBy.POLICY else self.by.value

    def to_json(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "approved": self.approved, "payload": self.payload,
                "reason": self.reason, "remember": self.remember, "by": self.by.value, "edited": self.edited,
                "policy": self.policy}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ApprovalDecision:
        by, policy = decider_from_json(str(d.get("by", "person")), d.get("policy"))
        return cls(request_id=d["request_id"], approved=bool(d["approved"]), payload=d.get("payload"),
                   reason=d.get("reason"), remember=bool(d.get("remember", False)), by=by,
                   edited=bool(d.get("edited", False)), policy=policy)
