"""The planning actor: epic → Tier 1 proposal → plan approval → tracks → Tier 2 tickets → tickets approval.

One `PlanningRun` per epic, on its own thread, the single owner of that epic's planning state. Each step's
result is a record in the epic's journal (then in each track's journal), so the run is resumable from the GUI
and the CLI alike: after a restart a pending approval comes back and Tier 1/2 are not asked (or paid) again.
Every step is also published as a `PlanningStep` record, so the status bar says where planning is — and that
it has ended.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import assert_never

from conductor import dag
from conductor.approval_payloads import P, PlanPayload, SpawnPayload, TicketsPayload, ToolPayload
from conductor.approvals import ApprovalBroker, ApprovalDecision, Validator
from conductor.comms import CommsLog
from conductor.config import Config
from conductor.errors import ApprovalError, Cancelled, StoreError, UserError
from conductor.events import ErrorRaised, EventQueue, Notice, Provenance, RecordApplied, TrackLoaded
from conductor.model import Ticket, TicketSpec, Track, TrackSpec, TrackStatus
from conductor.records import (
    ApprovalDecided,
    EpicCreated,
    PlanningStep,
    ProposalReceived,
    StepName,
    TicketProposalReceived,
    TicketsSet,
    TracksCreated,
    TracksCreating,
    apply,
    track_update,
)
from conductor.store import Journal, TrackStore, slug
from conductor.tiers.call import CallDeps
from conductor.tiers.planning import propose_tickets, propose_tracks


@dataclass
class PlanHandle:
    """A planning run in the background. `wait` returns the ids of the tracks whose tickets were approved."""

    epic_id: str
    future: Future[list[str]]
    cancel: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float | None = None) -> list[str]:
        return self.future.result(timeout)


@dataclass
class PlanningDeps:
    config: Callable[[], Config]
    """The current config, read at each step (a Settings change applies from the next step on)."""
    store: TrackStore
    broker: ApprovalBroker
    events: EventQueue
    workspace: Path
    call_deps: Callable[[], CallDeps]
    comms_for: Callable[[str], CommsLog]
    spawn: Callable[[str, Callable[[], None]], threading.Thread]
    on_tickets_approved: Callable[[str], None]
    """Called with a track id once its tickets are approved (the session starts the run when auto_run)."""


def new_epic_id(epic: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{slug(epic, 24)}-{uuid.uuid4().hex[:4]}"


class PlanningRun:
    """Plans one epic. `start` runs it on its own thread; `resume` continues one found on disk."""

    def __init__(self, epic_id: str, deps: PlanningDeps) -> None:
        self.epic_id = epic_id
        self.deps = deps
        self.handle = PlanHandle(epic_id, Future())
        self.journal = deps.store.journal(epic_id, epic=True)

    @classmethod
    def create(cls, epic: str, deps: PlanningDeps) -> PlanningRun:
        if not epic.strip():
            raise UserError("the epic is empty: describe the work first")
        run = cls(new_epic_id(epic), deps)
        run.journal.append(EpicCreated(epic=epic, workspace=str(deps.workspace)))
        return run

    def start(self) -> PlanHandle:
        self.deps.spawn(f"conductor-plan-{self.epic_id[-4:]}", self._main)
        return self.handle

    # ---------------- the actor's thread

    def _main(self) -> None:
        try:
            approved = self._steps()
            self._step("finished", f"planning finished: {len(approved)} track(s) ready" if approved
                       else "planning finished: nothing approved")
            self.handle.future.set_result(approved)
        except BaseException as exc:  # noqa: BLE001 — the actor's end, whatever it is, is reported and handed on
            # A shutdown (Cancelled) is not an end: the run resumes on the next start. Anything else is.
            self._step("stopped", f"planning stopped: {exc}", journal=not isinstance(exc, Cancelled))
            self.deps.events.post(ErrorRaised(prov=self._prov(1), message=f"planning stopped: {exc}",
                                              error_type=type(exc).__name__, fatal=not isinstance(exc, Cancelled)))
            self.handle.future.set_exception(exc)

    def _prov(self, tier: int, track_id: str | None = None) -> Provenance:
        return Provenance(trace_id=self.epic_id, track_id=track_id, tier=tier)

    def _step(self, step: StepName, detail: str, track_id: str | None = None, *, journal: bool = True) -> None:
        """Journal and publish where planning is: the status bar shows it, and a restart knows whether this
        run ended (finished, rejected, stopped by an error) or must continue."""
        rec = PlanningStep(step=step, detail=detail, track_id=track_id)
        seq = self.journal.append(rec, sync=False).seq if journal else 0
        self.deps.events.post(RecordApplied(prov=self._prov(1, track_id), record=rec, journal_seq=seq))

    def _steps(self) -> list[str]:
        created = self.journal.find(TracksCreated)
        if created is None:
            epic_rec = self.journal.find(EpicCreated)
            if epic_rec is None:
                raise StoreError(f"{self.journal.path}: no epic_created record; this planning run cannot resume")
            specs = self._approved_plan(epic_rec.epic)
            if not specs:
                return []
            intent = self.journal.find(TracksCreating)  # ids journalled before any track is made: a kill
            if intent is None or len(intent.track_ids) != len(specs):  # mid-way is resumed under the same ids
                chosen: list[str] = []
                for s in specs:
                    chosen.append(self.deps.store.new_track_id(s.title, taken=chosen))
                intent = TracksCreating(track_ids=chosen)
                self.journal.append(intent)
            track_ids = [self._create_track(epic_rec.epic, s, tid)
                         for s, tid in zip(specs, intent.track_ids, strict=True)]
            self.journal.append(TracksCreated(track_ids=track_ids))
            self._step("tracks_created", f"planning: {len(track_ids)} track(s) created")
        else:
            track_ids = list(created.track_ids)
        approved = []
        for tid in track_ids:  # Tier 2 per track, one after another: each waits for its own approval
            if self._plan_tickets(tid):
                approved.append(tid)
        return approved

    def _approved_plan(self, epic: str) -> list[TrackSpec]:
        prov = self._prov(1)
        rec = self.journal.find(ProposalReceived)
        if rec is None:
            self._step("tier1", "planning: Tier 1 is reading the epic")
            store = self.deps.store
            out = store.output_path(store.epic_dir(self.epic_id), "tier1")
            deps = self.deps.call_deps().with_(journal=self.journal, sink=lambda t: store.append_output(out, t))
            proposal = propose_tracks(epic, self.deps.workspace, deps, prov=prov, cancel=self.handle.cancel,
                                      raw_dir=store.epic_dir(self.epic_id))
            self.journal.append(ProposalReceived(proposal=proposal))
        else:
            proposal = rec.proposal
        self._step("plan_review", f"planning: waiting for your review of {len(proposal.tracks)} track(s)")
        payload = PlanPayload(epic=epic, tracks=tuple(proposal.tracks))
        decision = self._decide(prov, f"plan-{self.epic_id}", "Review the plan", payload, None, self.journal)
        match decision.payload:
            case PlanPayload(tracks=tracks) if decision.approved:
                return [t.model_copy() for t in tracks]
            case None | PlanPayload():
                self._step("rejected", f"plan rejected: {decision.reason}")
                self.deps.events.post(Notice(prov=prov, message=f"plan rejected: {decision.reason}"))
                return []
            case TicketsPayload() | SpawnPayload() | ToolPayload() as other:
                raise ApprovalError(f"plan approval plan-{self.epic_id} was decided with a {other.kind} payload")
            case _:
                assert_never(decision.payload)

    def _decide(self, prov: Provenance, request_id: str, title: str, payload: P, validator: Validator[P] | None,
                journal: Journal) -> ApprovalDecision:
        """A journalled decision if there is one (after a restart), else ask and wait."""
        done = journal.find(ApprovalDecided, request_id)
        if done is not None:
            return done.decision
        pending = self.deps.broker.request(prov, title, payload, validator=validator, request_id=request_id)
        return pending.wait(self.handle.cancel, self.deps.config().approvals.timeout_s or None)

    def _create_track(self, epic: str, spec: TrackSpec, track_id: str) -> str:
        store = self.deps.store
        if store.track_created(track_id):  # made before a kill: adopted, never made twice
            self.deps.events.post(TrackLoaded(prov=Provenance(trace_id=self.epic_id, track_id=track_id),
                                              track=store.load_track(track_id).track))
            return track_id
        track = Track(id=track_id, title=spec.title, goal=spec.goal, scope=spec.scope,
                      acceptance_criteria=spec.acceptance_criteria, epic=epic, trace_id=self.epic_id,
                      workspace=str(self.deps.workspace))
        store.create_track(track)
        tier1 = store.output_path(store.epic_dir(self.epic_id), "tier1")
        store.flush_outputs()  # outputs are written by the store's thread: read the whole file
        if tier1.exists():
            store.append_output(store.output_path(store.track_dir(track.id), "tier1"), tier1.read_text("utf-8"))
        self.deps.events.post(TrackLoaded(prov=Provenance(trace_id=self.epic_id, track_id=track.id),
                                          track=track.model_copy(deep=True)))
        return track.id

    def _plan_tickets(self, track_id: str) -> bool:
        """Tier 2 for one track, then the tickets approval. True when tickets were approved."""
        store = self.deps.store
        loaded = store.load_track(track_id)
        track, journal = loaded.track, loaded.journal
        if track.tickets:
            return True
        prov = self._prov(2, track.id)
        rec = journal.find(TicketProposalReceived)
        if rec is None:
            self._step("tier2", f"planning: Tier 2 is writing tickets for {track.title!r}", track.id)
            out = store.output_path(store.track_dir(track.id), "tier2")
            deps = self.deps.call_deps().with_(journal=journal, sink=lambda t: store.append_output(out, t),
                                               comms=self.deps.comms_for(track.id))
            plan = propose_tickets(track, self.deps.workspace, deps, prov=prov, cancel=self.handle.cancel,
                                   raw_dir=store.track_dir(track.id) / "outputs")
            journal.append(TicketProposalReceived(plan=plan))
        else:
            plan = rec.plan
        self._step("tickets_review", f"planning: waiting for your review of {len(plan.tickets)} ticket(s) for "
                                     f"{track.title!r}", track.id)
        payload = TicketsPayload(track_id=track.id, track_title=track.title, tickets=tuple(plan.tickets))
        decision = self._decide(prov, f"tickets-{track.id}", f"Review tickets: {track.title}", payload,
                                validate_tickets, journal)
        match decision.payload:
            case TicketsPayload(tickets=tickets) if decision.approved:
                set_tickets(store, self.deps.events, track_id, [t.model_copy() for t in tickets])
                self.deps.on_tickets_approved(track_id)
                return True
            case None | TicketsPayload():
                self.deps.events.post(Notice(prov=prov, message=f"tickets for {track.title!r} rejected: "
                                                                f"{decision.reason}"))
                return False
            case PlanPayload() | SpawnPayload() | ToolPayload() as other:
                raise ApprovalError(f"tickets approval tickets-{track.id} was decided with a {other.kind} payload")
            case _:
                assert_never(decision.payload)


def set_tickets(store: TrackStore, events: EventQueue, track_id: str, specs: list[TicketSpec]) -> Track:
    """Give a track its approved tickets (journalled, snapshotted, published)."""
    dag.ensure_valid(specs)
    loaded = store.load_track(track_id)
    track = loaded.track
    for rec in (TicketsSet(tickets=[Ticket.from_spec(s) for s in specs]), track_update(status=TrackStatus.READY)):
        loaded.journal.append(rec)
        apply(track, rec)
    track.journal_seq = loaded.journal.last_seq
    store.save_snapshot(track)
    store.write_spec(track)
    events.post(TrackLoaded(prov=Provenance(trace_id=track.trace_id, track_id=track.id),
                            track=track.model_copy(deep=True)))
    return track


def unfinished_epics(store: TrackStore) -> list[str]:
    """Epics on disk whose planning stopped part way — killed or shut down at any step, Tier 1 included — and
    did not end (finished, rejected, or stopped by an error)."""
    out = []
    epics = store.root / "_epics"
    for folder in sorted(epics.iterdir()) if epics.is_dir() else []:
        if not folder.is_dir():
            continue
        journal = store.journal(folder.name, epic=True)
        if journal.find(EpicCreated) is not None and not _finished(store, folder.name, journal):
            out.append(folder.name)
    return out


def _finished(store: TrackStore, epic_id: str, journal: Journal) -> bool:
    steps = [r for r in journal.records() if isinstance(r, PlanningStep)]
    if steps:
        return steps[-1].step in ("finished", "rejected", "stopped")
    # Journals written before planning steps were journalled: judge by the decisions.
    if journal.find(ProposalReceived) is None:
        return True
    created = journal.find(TracksCreated)
    if created is None:
        done = journal.find(ApprovalDecided, f"plan-{epic_id}")
        return done is not None and not done.approved
    for tid in created.track_ids:
        try:
            loaded = store.load_track(tid)
        except StoreError:
            continue
        if not loaded.track.tickets and loaded.journal.find(TicketProposalReceived) is not None \
                and loaded.journal.find(ApprovalDecided, f"tickets-{tid}") is None:
            return False
    return True


def validate_tickets(payload: TicketsPayload) -> None:
    """An edited ticket DAG: each ticket was validated when the payload was built; the graph is checked here
    (unknown, duplicate or cyclic ids, each named)."""
    problems = dag.problems(list(payload.tickets))
    if problems:
        raise ValueError("; ".join(problems))
