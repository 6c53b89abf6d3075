"""Plain data: tracks, tickets, statuses, usage. Pure pydantic v2, no I/O, no threads."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

Tier = Literal[1, 2, 3, 4]
TIER_NAMES: dict[int, str] = {1: "Tier 1 · Orchestrator", 2: "Tier 2 · Tech lead", 3: "Tier 3 · Worker",
                              4: "Tier 4 · QA"}

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def utc_now() -> str:
    """An ISO-8601 UTC timestamp, second precision: the one time format on disk."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


class TicketStatus(StrEnum):
    TODO = "todo"
    """Waiting for its dependencies."""
    READY = "ready"
    """Every dependency is done; waiting for a worker slot (or a resume)."""
    AWAITING_APPROVAL = "awaiting_approval"
    """Step mode: the spawn approval is pending."""
    RUNNING = "running"
    """A Tier 3 worker is on it."""
    REVIEW = "review"
    """Tier 4 is checking the worker's result."""
    DONE = "done"
    FAILED = "failed"
    """On the failed shelf: out of attempts, or a permanent error. The user can retry, edit or skip."""
    BLOCKED = "blocked"
    """Cannot run: a dependency failed or was blocked, or a safety block needs a human. `blocked_reason` says why."""
    SKIPPED = "skipped"
    """The user skipped it; dependents treat it as satisfied."""
    CANCELLED = "cancelled"
    """Stopped by the user while running; resumable."""
    INTERRUPTED = "interrupted"
    """The app stopped while this ticket was in flight; it continues its attempt when the track resumes."""
    NEEDS_MERGE = "needs_merge"
    """Passed QA, but its commit conflicts with the track branch (`blocked_reason` names the files): a retry
    starts a resolve attempt from that commit."""


TERMINAL_STATUSES = frozenset({TicketStatus.DONE, TicketStatus.FAILED, TicketStatus.BLOCKED, TicketStatus.SKIPPED,
                               TicketStatus.CANCELLED, TicketStatus.INTERRUPTED})
SATISFIED_STATUSES = frozenset({TicketStatus.DONE, TicketStatus.SKIPPED})
ACTIVE_STATUSES = frozenset({TicketStatus.AWAITING_APPROVAL, TicketStatus.RUNNING, TicketStatus.REVIEW})


class TrackStatus(StrEnum):
    PLANNED = "planned"
    """Approved by the user; tickets not generated yet."""
    READY = "ready"
    """Tickets approved; not started."""
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    """Every ticket done or skipped."""
    STALLED = "stalled"
    """Nothing can run: some tickets failed or are blocked."""
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    """The app stopped while this track was running; Resume continues it."""
    ARCHIVED = "archived"


# --- what the planning tiers produce (also the response schemas sent to the model) ---

class TrackSpec(BaseModel):
    """One track proposed by Tier 1."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    goal: str = Field(min_length=1)
    scope: str = ""
    acceptance_criteria: list[str] = Field(default_factory=list)


class TrackProposal(BaseModel):
    """Tier 1's whole answer: the tracks an epic splits into."""

    model_config = ConfigDict(extra="forbid")
    tracks: list[TrackSpec] = Field(min_length=1)


class TicketSpec(BaseModel):
    """One ticket proposed by Tier 2."""

    model_config = ConfigDict(extra="forbid")
    id: str
    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    depends_on: list[str] = Field(default_factory=list)
    target_files: list[str] = Field(default_factory=list)
    acceptance_criteria: list[str] = Field(default_factory=list)
    step_mode: bool = False
    model_override: str | None = None

    @field_validator("id")
    @classmethod
    def _id_is_safe(cls, v: str) -> str:
        if not _ID_RE.fullmatch(v):  # fullmatch: `$` also matches before a final newline ("T1\n")
            raise ValueError(f"ticket id {v!r} must be 1-64 letters, digits, '-', '_' or '.', starting with a letter "
                             "or digit")
        return v


class TicketPlan(BaseModel):
    """Tier 2's whole answer: the tickets of one track."""

    model_config = ConfigDict(extra="forbid")
    tickets: list[TicketSpec] = Field(min_length=1)


class Review(BaseModel):
    """Tier 4's verdict on one ticket's result."""

    model_config = ConfigDict(extra="forbid")
    verdict: Literal["pass", "fail"]
    hint: str = Field(default="", description="On fail: a short, concrete fix hint for the worker's next attempt.")


# --- runtime state ---

class Ticket(TicketSpec):
    """A ticket as the engine tracks it. Only the engine thread changes these."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)
    status: TicketStatus = TicketStatus.TODO
    attempts: int = 0
    """Attempts started so far (the current one included)."""
    attempt_limit: int = 0
    """Attempts allowed before the failed shelf; 0 means the config's max_attempts. A user retry raises it."""
    continues_attempt: bool = False
    """Ready again after an interruption: the next launch continues attempt `attempts` (its journalled intents
    reconciled) instead of starting a new one. On disk, so a second kill before that launch still knows it."""
    blocked_reason: str | None = None
    failed_reason: str | None = None
    last_hint: str | None = None
    """Tier 4's hint from the last failed review, fed to the next attempt."""
    model_used: str | None = None
    spawn_prompt: str | None = None
    """An edited prompt from the spawn approval; replaces the generated one for the next attempt."""

    @classmethod
    def from_spec(cls, spec: TicketSpec) -> Ticket:
        return cls(**spec.model_dump())


class Track(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    title: str
    goal: str
    scope: str = ""
    acceptance_criteria: list[str] = Field(default_factory=list)
    epic: str = ""
    trace_id: str = ""
    workspace: str = ""
    """The resolved folder the track was planned for; resume runs there (empty in tracks made before it was
    recorded: then a resume must name the workspace and force it)."""
    status: TrackStatus = TrackStatus.PLANNED
    created_at: str = Field(default_factory=utc_now)
    tickets: list[Ticket] = Field(default_factory=list)
    journal_seq: int = 0
    """The last journal seq this snapshot includes; replay applies only later lines."""
    _index: tuple[list[Ticket], dict[str, Ticket]] | None = PrivateAttr(default=None)

    def find(self, ticket_id: str) -> Ticket | None:
        """The ticket with this id, or None (O(1): the index follows the tickets list it was built from)."""
        private = self.__pydantic_private__  # a plain slot: pydantic's __getattr__ for `_index` is slow
        assert private is not None
        idx = private.get("_index")
        tickets = self.tickets
        if idx is None or idx[0] is not tickets or len(idx[1]) != len(tickets):
            idx = (tickets, {t.id: t for t in tickets})
            private["_index"] = idx
        return idx[1].get(ticket_id)

    def reindex(self) -> None:
        if self.__pydantic_private__ is not None:
            self.__pydantic_private__["_index"] = None

    def ticket(self, ticket_id: str) -> Ticket:
        t = self.find(ticket_id)
        if t is None:
            raise KeyError(f"track {self.id!r} has no ticket {ticket_id!r}")
        return t

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tickets:
            out[t.status.value] = out.get(t.status.value, 0) + 1
        return out

    def progress(self) -> float:
        """Fraction of tickets done or skipped (0.0 when there are none)."""
        if not self.tickets:
            return 0.0
        return sum(t.status in SATISFIED_STATUSES for t in self.tickets) / len(self.tickets)


class Usage(BaseModel):
    """Token usage of one model call, as the provider reported it.

    `prompt_tokens` includes `cached_tokens` and `cache_write_tokens` (Gemini's convention; providers whose
    API counts them apart add them in). `output_tokens` excludes thinking (providers whose output count
    includes reasoning subtract it), so no token is counted twice.
    `cost_usd` is None when the model has no price: unknown is never shown as free.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str
    prompt_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cached_tokens: int = 0
    tool_use_prompt_tokens: int = 0
    cache_write_tokens: int = 0
    """Prompt tokens written to a cache on this call (Anthropic's cache creation); part of `prompt_tokens`."""
    cost_usd: float | None = None
    partial: bool = False
    """True when the call broke off and these are the last counts seen."""
    estimated: bool = False
    """True when the endpoint reported no usage and these counts were estimated locally (never exact)."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens + self.thinking_tokens + self.tool_use_prompt_tokens
