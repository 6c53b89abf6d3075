"""The one typed vocabulary of what happened to an epic or a track, and the one pure `apply`.

Every state change is a frozen record. The owner of the state (the engine for a track, the planning run for
an epic) builds a record, applies it to its own state with `apply`, journals it, then publishes it; journal
replay, the GUI's view-model and the CLI apply the very same records with the very same function, so none of
them can drift from the others. No record type string exists outside this module: writers pass records,
readers `match` on their classes.

`apply` has no I/O and no threads: it changes only the `Track` it is given (copying a 1,000-ticket track per
record would make replay quadratic), and records that do not change a track (usage, model turns, tool calls,
approvals, planning steps) leave it untouched.

Type strings are the journal's wire names. The first ones (`ticket_update`, `epic_record`, ...) predate this
module and are kept, so journals written before it still replay.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias, TypeVar, assert_never

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError, model_validator

from conductor.approval_payloads import legacy_payload
from conductor.approval_types import ApprovalDecision, ApprovalRequest
from conductor.model import Ticket, TicketPlan, TicketStatus, Track, TrackProposal, TrackStatus, utc_now
from conductor.usage import UsageRecord


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------- track state

class TicketPatch(BaseModel):
    """The fields of a ticket that one update sets. Only fields given explicitly are applied (a field given
    as None clears it; a field not given is left alone)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    status: TicketStatus | None = None
    attempts: int | None = None
    attempt_limit: int | None = None
    continues_attempt: bool | None = None
    blocked_reason: str | None = None
    failed_reason: str | None = None
    last_hint: str | None = None
    model_used: str | None = None
    spawn_prompt: str | None = None
    title: str | None = None
    description: str | None = None
    depends_on: list[str] | None = None
    target_files: list[str] | None = None
    acceptance_criteria: list[str] | None = None
    step_mode: bool | None = None
    model_override: str | None = None

    def items(self) -> list[tuple[str, Any]]:
        return [(k, getattr(self, k)) for k in self.model_fields_set]


EDITABLE_FIELDS = frozenset({"title", "description", "depends_on", "target_files", "acceptance_criteria",
                             "step_mode", "model_override"})
"""The ticket fields a person may edit (the rest are the engine's bookkeeping)."""


class TrackPatch(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    status: TrackStatus | None = None
    workspace: str | None = None

    def items(self) -> list[tuple[str, Any]]:
        return [(k, getattr(self, k)) for k in self.model_fields_set]


class TrackCreated(_Record):
    type: Literal["track_created"] = "track_created"
    track: Track


class TicketsSet(_Record):
    type: Literal["tickets_set"] = "tickets_set"
    tickets: list[Ticket]


class TicketUpdated(_Record):
    type: Literal["ticket_update"] = "ticket_update"
    ticket_id: str
    fields: TicketPatch
    reason: str | None = None
    """Why, in words, for the log (not state)."""


class TrackUpdated(_Record):
    type: Literal["track_update"] = "track_update"
    fields: TrackPatch
    reason: str | None = None


# ---------------------------------------------------------------- what the tiers did (keyed: idempotency)

class UsageLogged(_Record):
    type: Literal["usage"] = "usage"
    key: str
    record: UsageRecord


class ModelTurn(_Record):
    """A completed model turn of a worker, journalled before its tool calls run (a resume replays it)."""

    type: Literal["model_turn"] = "model_turn"
    key: str
    message: dict[str, JsonValue]


class ToolCallStarted(_Record):
    """The intent, journalled before a side effect runs: what will run, and the file's pre-image."""

    type: Literal["tool_started"] = "tool_started"
    key: str
    tool: str
    args: dict[str, JsonValue]
    path: str | None = None
    pre_sha256: str | None = None
    """The file's content hash before a write/edit (None: the file did not exist)."""
    post_sha256: str | None = None
    """The hash the write/edit will leave (when it can be known up front)."""
    command: str | None = None


class ToolCallFinished(_Record):
    type: Literal["tool_result"] = "tool_result"
    key: str
    result: dict[str, JsonValue]


class AllowRuleAdded(_Record):
    type: Literal["allow_rule"] = "allow_rule"
    key: str
    track_id: str
    argv: list[str]
    command: str


class UnattendedWrite(_Record):
    """A write or edit ran in this track without a person (automatic approval): from then on the track's allow
    rules stop matching (it may have planted code an allowed `make` or `pytest` runs). See tools/policy.py."""
    type: Literal["unattended_write"] = "unattended_write"
    key: str
    track_id: str
    path: str
    tool: str


class ApprovalAsked(_Record):
    type: Literal["approval_requested"] = "approval_requested"
    key: str
    request: ApprovalRequest
    """Its payload is typed by kind (conductor.approval_payloads)."""


class ApprovalDecided(_Record):
    type: Literal["approval_resolved"] = "approval_resolved"
    key: str
    request: ApprovalRequest
    decision: ApprovalDecision

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: object) -> object:
        """A decision journalled before typed payloads carried a plain dict payload without its kind: the
        request's kind types it."""
        if isinstance(data, dict) and isinstance(data.get("request"), dict) and isinstance(data.get("decision"), dict):
            request, decision = data["request"], data["decision"]
            payload = request.get("payload")
            kind = request.get("kind") or (payload.get("kind") if isinstance(payload, dict) else None)
            if isinstance(decision.get("payload"), dict) and kind is not None:
                data = {**data, "decision": {**decision, "payload": legacy_payload(str(kind), decision["payload"])}}
        return data

    @property
    def approved(self) -> bool:
        return self.decision.approved


# ---------------------------------------------------------------- git (conductor/gitwork.py): keyed, no track state

class GitTrackStarted(_Record):
    """The track's integration branch exists (created now, or found on a resume): 'changes so far' compare
    against `base_sha`."""

    type: Literal["git_track"] = "git_track"
    key: str
    """The branch name."""
    branch: str
    base_ref: str
    base_sha: str
    created: bool


class GitAttemptStarted(_Record):
    """An attempt's worktree, journalled before its worker uses it (reconcile reads these on start)."""

    type: Literal["git_attempt"] = "git_attempt"
    key: str
    """The attempt key (`<track>/<ticket>/a<n>`)."""
    ticket_id: str
    attempt: int
    branch: str
    path: str
    base_sha: str


class GitAttemptCommitted(_Record):
    type: Literal["git_commit"] = "git_commit"
    key: str
    ticket_id: str
    attempt: int
    sha: str
    files: list[str]


class GitAttemptMerged(_Record):
    """The engine merged an attempt's commit into the track branch (`commit` is the new track tip)."""

    type: Literal["git_merge"] = "git_merge"
    key: str
    ticket_id: str
    attempt: int
    commit: str
    ticket_commit: str


class GitMergeConflict(_Record):
    """An attempt's commit conflicts with the track branch: the ticket waits in needs_merge."""

    type: Literal["git_conflict"] = "git_conflict"
    key: str
    ticket_id: str
    attempt: int
    files: list[str]
    ticket_commit: str
    track_tip: str


class GitTicketReverted(_Record):
    """The person reverted a merged ticket: a revert commit on the track branch (`commit`, the new tip) undoes
    the merge `reverted_merge` of attempt `attempt_key`."""

    type: Literal["git_revert"] = "git_revert"
    key: str
    """The reverted attempt's key (`<track>/<ticket>/a<n>`)."""
    ticket_id: str
    commit: str
    reverted_merge: str


class GitTicketRewound(_Record):
    """The person rewound a ticket to an earlier attempt: that attempt's commit is now the ticket's work on the
    track (a later merge of the ticket, if any, was reverted first: `reverted`)."""

    type: Literal["git_rewind"] = "git_rewind"
    key: str
    """The attempt rewound to (`<track>/<ticket>/a<n>`)."""
    ticket_id: str
    to_attempt: int
    ticket_commit: str
    reverted: str | None = None
    """The revert commit of the ticket's later merge, when there was one."""


class GitBaseMerged(_Record):
    """The person merged the finished track branch into its base branch (asked, with the diff stat shown)."""

    type: Literal["git_base_merge"] = "git_base_merge"
    key: str
    """The base branch and the track tip merged (`<branch>@<tip>`)."""
    base_branch: str
    commit: str
    """The base branch's new tip."""
    track_tip: str
    files: list[str]


# ---------------------------------------------------------------- planning (epic journal, then track journal)

class EpicCreated(_Record):
    type: Literal["epic_created"] = "epic_created"
    epic: str
    workspace: str
    at: str = Field(default_factory=utc_now)


class ProposalReceived(_Record):
    """Tier 1's proposal, kept so a restart does not pay for it again."""

    type: Literal["proposal_received"] = "proposal_received"
    proposal: TrackProposal


class TracksCreating(_Record):
    """The intent before planning creates its tracks: the ids it is about to use. A restart before
    `tracks_created` adopts the tracks that exist under those ids and creates the rest, never a second copy."""

    type: Literal["tracks_creating"] = "tracks_creating"
    track_ids: list[str]


class TracksCreated(_Record):
    type: Literal["tracks_created"] = "tracks_created"
    track_ids: list[str]


class TicketProposalReceived(_Record):
    """Tier 2's ticket proposal for one track (in the track's journal)."""

    type: Literal["ticket_proposal_received"] = "ticket_proposal_received"
    plan: TicketPlan


StepName: TypeAlias = Literal["tier1", "plan_review", "tracks_created", "tier2", "tickets_review", "finished",
                              "rejected", "stopped"]


class PlanningStep(_Record):
    """Where a planning run is, in words the status bar shows (and whether it has ended)."""

    type: Literal["planning_step"] = "planning_step"
    step: StepName
    detail: str = ""
    track_id: str | None = None


Record: TypeAlias = Annotated[
    TrackCreated | TicketsSet | TicketUpdated | TrackUpdated | UsageLogged | ModelTurn | ToolCallStarted
    | ToolCallFinished | AllowRuleAdded | UnattendedWrite | ApprovalAsked | ApprovalDecided | EpicCreated
    | ProposalReceived | TracksCreating | TracksCreated | TicketProposalReceived | PlanningStep | GitTrackStarted
    | GitAttemptStarted | GitAttemptCommitted | GitAttemptMerged | GitMergeConflict | GitTicketReverted
    | GitTicketRewound | GitBaseMerged,
    Field(discriminator="type")]

_ADAPTER: TypeAdapter[Record] = TypeAdapter(Record)

SINGLETON_KEYS: dict[type[BaseModel], str] = {EpicCreated: "epic", ProposalReceived: "proposal",
                                              TracksCreating: "tracks_intent", TracksCreated: "tracks",
                                              TicketProposalReceived: "ticket_proposal"}
"""Records that appear at most once per journal are found under a fixed key."""


def record_type(cls: type[BaseModel]) -> str:
    """The wire name of a record class."""
    default = cls.model_fields["type"].default
    assert isinstance(default, str)
    return default


def record_key(rec: Record) -> str | None:
    """The idempotency key a journal indexes this record under (None: not indexed)."""
    key = getattr(rec, "key", None)
    if isinstance(key, str):
        return key
    return SINGLETON_KEYS.get(type(rec))


def to_data(rec: Record) -> dict[str, Any]:
    """The record's journal `data` (its fields but the type), JSON-ready."""
    data = rec.model_dump(mode="json", exclude={"type"}, exclude_unset=False)
    if isinstance(rec, TicketUpdated | TrackUpdated):
        data["fields"] = rec.fields.model_dump(mode="json", exclude_unset=True)
    return data


class RecordError(ValueError):
    """A journal line that verifies but is not a record this version understands."""


def from_data(type_: str, data: dict[str, Any]) -> Record:
    """Parse one journal record; lines written before this module (legacy names) are converted."""
    if type_ == "epic_record":
        if data.get("key") == "proposal":
            type_, data = "proposal_received", {"proposal": data.get("proposal")}
        elif data.get("key") == "tracks":
            type_, data = "tracks_created", {"track_ids": data.get("track_ids")}
    elif type_ == "track_record" and data.get("key") == "ticket_proposal":
        type_, data = "ticket_proposal_received", {"plan": data.get("plan")}
    try:
        return _ADAPTER.validate_python({**data, "type": type_})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise RecordError(f"{type_} record: {where}: {first.get('msg')}") from None


# ---------------------------------------------------------------- the one apply

def apply(track: Track, rec: Record) -> bool:
    """Apply one record to `track`. Returns True when the track changed. Raises RecordError when the record
    names a ticket the track does not have (the caller decides how to report it)."""
    match rec:
        case TrackCreated(track=fresh):
            for name in Track.model_fields:
                if name != "journal_seq":
                    setattr(track, name, getattr(fresh, name).copy() if name == "tickets" else getattr(fresh, name))
            track.tickets = [t.model_copy() for t in fresh.tickets]
            return True
        case TicketsSet(tickets=tickets):
            track.tickets = [t.model_copy() for t in tickets]
            track.reindex()
            return True
        case TicketUpdated(ticket_id=tid, fields=patch):
            ticket = track.find(tid)
            if ticket is None:
                raise RecordError(f"ticket_update names ticket {tid!r}, which track {track.id!r} does not have")
            for k, v in patch.items():
                setattr(ticket, k, list(v) if isinstance(v, list) else v)
            return True
        case TrackUpdated(fields=patch):
            for k, v in patch.items():
                setattr(track, k, v)
            return True
        case (UsageLogged() | ModelTurn() | ToolCallStarted() | ToolCallFinished() | AllowRuleAdded()
              | UnattendedWrite() | ApprovalAsked() | ApprovalDecided() | EpicCreated() | ProposalReceived()
              | TracksCreating() | TracksCreated() | TicketProposalReceived() | PlanningStep() | GitTrackStarted()
              | GitAttemptStarted() | GitAttemptCommitted() | GitAttemptMerged() | GitMergeConflict()
              | GitTicketReverted() | GitTicketRewound() | GitBaseMerged()):
            return False
        case _:
            assert_never(rec)


def ticket_update(ticket_id: str, reason: str | None = None, **fields: Any) -> TicketUpdated:
    """A validated ticket update (for fields that come from outside: an edit, a test)."""
    return TicketUpdated(ticket_id=ticket_id, fields=TicketPatch(**fields), reason=reason)


def track_update(reason: str | None = None, **fields: Any) -> TrackUpdated:
    return TrackUpdated(fields=TrackPatch(**fields), reason=reason)


def trusted_ticket_update(ticket_id: str, reason: str | None, fields: dict[str, Any]) -> TicketUpdated:
    """The engine's own updates, built from values it already holds typed: no validation pass (it was the
    largest cost per ticket), the same record. Fields outside the patch are a bug, caught here."""
    if not fields.keys() <= _PATCH_UNSET.keys():
        raise RecordError(f"ticket_update has no field(s) {sorted(set(fields) - set(_PATCH_UNSET))}")
    patch = _trusted(TicketPatch, {**_PATCH_UNSET, **fields}, set(fields))
    return _trusted(TicketUpdated, {"type": "ticket_update", "ticket_id": ticket_id, "fields": patch, "reason": reason},
                    set(_UPDATE_FIELDS))


_PATCH_UNSET: dict[str, Any] = dict.fromkeys(TicketPatch.model_fields)
"""Every patch field unset (all default to None)."""
_UPDATE_FIELDS = frozenset({"ticket_id", "fields", "reason"})
_M = TypeVar("_M", bound=BaseModel)


def _trusted(cls: type[_M], values: dict[str, Any], fields_set: set[str]) -> _M:
    """What `model_construct` builds, without its per-field default lookup (which deep-copies each default and
    cost more than the rest of an engine state change: 13 µs → 6 µs per record). Only for models with no
    private attributes, no extras and no post-init; tests/test_records_stateful.py checks it equals
    `model_construct`."""
    m = cls.__new__(cls)
    object.__setattr__(m, "__dict__", values)
    object.__setattr__(m, "__pydantic_fields_set__", fields_set)
    object.__setattr__(m, "__pydantic_extra__", None)
    object.__setattr__(m, "__pydantic_private__", None)
    return m
