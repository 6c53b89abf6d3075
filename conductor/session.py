"""The session: everything one running app needs, wired once, used by the CLI and the GUI alike.

It owns the event queue, the approval broker (whose decisions are journalled before they take effect),
the usage ledger (rebuilt from the journals on start), the tracks store, the provider, the planning flow
(Tier 1 → plan approval → Tier 2 per track → tickets approval) and one engine per running track.

The planning flow is resumable: each step's result is journalled (the Tier 1 proposal, the plan decision,
the created tracks, each Tier 2 proposal and its decision), so after a restart a pending approval comes back
and the flow continues from where it stopped.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conductor import dag
from conductor.approvals import ApprovalBroker, ApprovalDecision, ApprovalKind, ApprovalRequest
from conductor.config import Config
from conductor.engine import Engine, EngineDeps
from conductor.errors import Cancelled, StoreError
from conductor.limits import ModelLimits
from conductor.events import ErrorRaised, EventQueue, Notice, Provenance, StatusChanged, TrackLoaded
from conductor.model import Ticket, TicketPlan, TicketSpec, Track, TrackProposal, TrackSpec, TrackStatus
from conductor.providers.base import Provider
from conductor.store import Journal, TrackStore, slug
from conductor.tiers.call import CallDeps
from conductor.tiers.planning import propose_tickets, propose_tracks
from conductor.comms import CommsLog
from conductor.tools import CommandPolicy, Toolbox, workspace_toolbox
from conductor.usage import PriceTable, UsageLedger, UsageRecord


def _comms_factory(store: TrackStore) -> Any:
    logs: dict[str, Any] = {}
    lock = threading.Lock()

    def comms_for(track_id: str) -> Any:
        with lock:
            if track_id not in logs:
                logs[track_id] = CommsLog(store.track_dir(track_id) / "comms.jsonl")
            return logs[track_id]
    return comms_for


@dataclass
class PlanHandle:
    """A planning run in the background. `wait` returns the ids of the tracks whose tickets were approved."""

    epic_id: str
    future: Future[list[str]]
    cancel: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float | None = None) -> list[str]:
        return self.future.result(timeout)


class Session:
    def __init__(self, cfg: Config, *, workspace: Path, tracks_dir: Path, provider: Provider,
                 events: EventQueue | None = None, toolbox: Toolbox | None = None, auto_run: bool = True,
                 linger: bool = True, limits: ModelLimits | None = None) -> None:
        self.cfg = cfg
        self.workspace = Path(workspace).resolve()
        self.store = TrackStore(Path(tracks_dir))
        self.provider = provider
        self.events = events or EventQueue()
        self.broker = ApprovalBroker(self.events)
        self.ledger = UsageLedger(PriceTable(cfg.prices))
        self.limits = limits or ModelLimits.from_config(cfg)
        """One gate per model for every call of this session (planning and all tracks' workers)."""
        self.toolbox = toolbox or workspace_toolbox(self.workspace)
        self.auto_run = auto_run
        """Start a track's run as soon as its tickets are approved."""
        self.linger = linger
        self.engines: dict[str, Engine] = {}
        self.plans: dict[str, PlanHandle] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        self._comms_for = _comms_factory(self.store)
        self._allow = CommandPolicy.from_config(cfg)
        # Read at each request, so kinds ticked or unticked in Settings apply at once.
        self.broker.add_policy("config", lambda r: ApprovalDecision(r.id, True, r.payload)
                               if r.kind.value in self.cfg.approvals.auto else None)
        self.broker.on_requested.append(self._journal_request)
        self.broker.on_resolved.append(self._journal_decision)
        self.store.remove_stale_temp_files()
        self._load_usage()

    # ---------------- journals ----------------

    def _journal_for(self, prov: Provenance) -> Journal:
        if prov.track_id:
            return self.store.journal(prov.track_id)
        return self.store.journal(prov.trace_id or "unknown", epic=True)

    def _journal_request(self, req: ApprovalRequest) -> None:
        self._journal_for(req.prov).append("approval_requested", {"key": req.id, "request": req.to_json()})

    def _journal_decision(self, req: ApprovalRequest, d: ApprovalDecision) -> None:
        if d.by == "cancelled":
            return  # not a decision: the request stays pending in the journal and comes back after a restart
        self._journal_for(req.prov).append("approval_resolved", {"key": req.id, "request": req.to_json(),
                                                                  "decision": d.to_json()})

    def _load_usage(self) -> None:
        """Rebuild the ledger from every journal (usage survives a restart, each record counted once)."""
        roots = [p for p in self.store.root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))]
        epics = self.store.root / "_epics"
        for folder in roots:
            self._load_usage_from(self.store.journal(folder.name))
        if epics.is_dir():
            for folder in epics.iterdir():
                if folder.is_dir():
                    self._load_usage_from(self.store.journal(folder.name, epic=True))

    def _load_usage_from(self, journal: Journal) -> None:
        for w in journal.warnings:
            self.events.post(Notice(prov=Provenance(), message=w, level="warning"))
        for rec in journal.records():
            if rec.type == "usage":
                self.ledger.record(UsageRecord.from_json(rec.data["record"]))

    def call_deps(self) -> CallDeps:
        return CallDeps(provider=self.provider, events=self.events, ledger=self.ledger, cfg=self.cfg,
                        limits=self.limits)

    # ---------------- planning ----------------

    def plan_epic(self, epic: str) -> PlanHandle:
        """Start planning on a background thread: Tier 1, plan approval, Tier 2 per track, tickets approval."""
        if not epic.strip():
            raise ValueError("the epic is empty: describe the work first")
        epic_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{slug(epic, 24)}-{uuid.uuid4().hex[:4]}"
        self.store.journal(epic_id, epic=True).append("epic_created", {"epic": epic, "workspace": str(self.workspace)})
        return self._start_plan(epic_id)

    def _start_plan(self, epic_id: str) -> PlanHandle:
        handle = PlanHandle(epic_id, Future())
        self.plans[epic_id] = handle
        self._spawn(f"conductor-plan-{epic_id[-4:]}", self._plan_flow, handle)
        return handle

    def _spawn(self, name: str, fn: Any, *args: Any) -> threading.Thread:
        th = threading.Thread(target=fn, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(th)
        th.start()
        return th

    def _plan_flow(self, h: PlanHandle) -> None:
        try:
            h.future.set_result(self._plan_steps(h))
        except BaseException as exc:
            fatal = not isinstance(exc, Cancelled)
            self.events.post(ErrorRaised(prov=Provenance(trace_id=h.epic_id, tier=1),
                                         message=f"planning stopped: {exc}", error_type=type(exc).__name__,
                                         fatal=fatal))
            h.future.set_exception(exc)

    def _plan_steps(self, h: PlanHandle) -> list[str]:
        journal = self.store.journal(h.epic_id, epic=True)
        created = journal.find("epic_record", "tracks")
        if created is None:
            epic = next(r.data["epic"] for r in journal.records() if r.type == "epic_created")
            specs = self._approved_plan(h, journal, epic)
            if not specs:
                return []
            track_ids = [self._create_track(h.epic_id, epic, s) for s in specs]
            journal.append("epic_record", {"key": "tracks", "track_ids": track_ids})
        else:
            track_ids = created.data["track_ids"]
        approved = []
        for tid in track_ids:  # Tier 2 per track, one after another: each waits for its own approval
            if self._plan_tickets(tid, h.cancel):
                approved.append(tid)
        return approved

    def _approved_plan(self, h: PlanHandle, journal: Journal, epic: str) -> list[TrackSpec]:
        prov = Provenance(trace_id=h.epic_id, tier=1)
        rec = journal.find("epic_record", "proposal")
        if rec is None:
            out = self.store.output_path(self.store.epic_dir(h.epic_id), "tier1")
            deps = self.call_deps().with_(journal=journal, sink=lambda t: self.store.append_output(out, t))
            proposal = propose_tracks(epic, self.workspace, deps, prov=prov, cancel=h.cancel,
                                      raw_dir=self.store.epic_dir(h.epic_id))
            journal.append("epic_record", {"key": "proposal", "proposal": proposal.model_dump(mode="json")})
        else:
            proposal = TrackProposal.model_validate(rec.data["proposal"])
        payload = {"epic": epic, "tracks": [t.model_dump(mode="json") for t in proposal.tracks]}
        decision = self._decide(ApprovalKind.PLAN, prov, f"plan-{h.epic_id}", "Review the plan", payload,
                                _validate_plan, journal, h.cancel)
        if not decision.approved:
            self.events.post(Notice(prov=prov, message=f"plan rejected: {decision.reason}"))
            return []
        assert decision.payload is not None
        return [TrackSpec.model_validate(t) for t in decision.payload["tracks"]]

    def _decide(self, kind: ApprovalKind, prov: Provenance, request_id: str, title: str, payload: dict[str, Any],
                validator: Any, journal: Journal, cancel: threading.Event) -> ApprovalDecision:
        """A journalled decision if there is one (after a restart), else ask and wait."""
        done = journal.find("approval_resolved", request_id)
        if done is not None:
            return ApprovalDecision.from_json(done.data["decision"])
        pending = self.broker.request(kind, prov, title, payload, validator=validator, request_id=request_id)
        return pending.wait(cancel, self.cfg.approvals.timeout_s or None)

    def _create_track(self, epic_id: str, epic: str, spec: TrackSpec) -> str:
        track = Track(id=self.store.new_track_id(spec.title), title=spec.title, goal=spec.goal, scope=spec.scope,
                      acceptance_criteria=spec.acceptance_criteria, epic=epic, trace_id=epic_id)
        self.store.create_track(track)
        tier1 = self.store.output_path(self.store.epic_dir(epic_id), "tier1")
        if tier1.exists():
            self.store.append_output(self.store.output_path(self.store.track_dir(track.id), "tier1"),
                                     tier1.read_text("utf-8"))
        self.events.post(TrackLoaded(prov=Provenance(trace_id=epic_id, track_id=track.id), track=track))
        return track.id

    def _plan_tickets(self, track_id: str, cancel: threading.Event) -> bool:
        """Tier 2 for one track, then the tickets approval. True when tickets were approved."""
        loaded = self.store.load_track(track_id)
        track, journal = loaded.track, loaded.journal
        if track.tickets:
            return True
        prov = Provenance(trace_id=track.trace_id, track_id=track.id, tier=2)
        rec = journal.find("track_record", "ticket_proposal")
        if rec is None:
            out = self.store.output_path(self.store.track_dir(track.id), "tier2")
            deps = self.call_deps().with_(journal=journal, sink=lambda t: self.store.append_output(out, t),
                                          comms=self._comms_for(track.id) if self._comms_for else None)
            plan = propose_tickets(track, self.workspace, deps, prov=prov, cancel=cancel,
                                   raw_dir=self.store.track_dir(track.id) / "outputs")
            journal.append("track_record", {"key": "ticket_proposal", "plan": plan.model_dump(mode="json")})
        else:
            plan = TicketPlan.model_validate(rec.data["plan"])
        payload = {"track_id": track.id, "track_title": track.title,
                   "tickets": [t.model_dump(mode="json") for t in plan.tickets]}
        decision = self._decide(ApprovalKind.TICKETS, prov, f"tickets-{track.id}", f"Review tickets: {track.title}",
                                payload, _validate_tickets, journal, cancel)
        if not decision.approved:
            self.events.post(Notice(prov=prov, message=f"tickets for {track.title!r} rejected: {decision.reason}"))
            return False
        assert decision.payload is not None
        self.set_tickets(track_id, [TicketSpec.model_validate(t) for t in decision.payload["tickets"]])
        if self.auto_run:
            self.run_track(track_id)
        return True

    def set_tickets(self, track_id: str, specs: list[TicketSpec]) -> Track:
        dag.ensure_valid(specs)
        loaded = self.store.load_track(track_id)
        track = loaded.track
        tickets = [Ticket.from_spec(s) for s in specs]
        loaded.journal.append("tickets_set", {"tickets": [t.model_dump(mode="json") for t in tickets]})
        loaded.journal.append("track_update", {"fields": {"status": TrackStatus.READY.value}})
        track.tickets, track.status = tickets, TrackStatus.READY
        track.journal_seq = loaded.journal.last_seq
        self.store.save_snapshot(track)
        self.store.write_spec(track)
        self.events.post(TrackLoaded(prov=Provenance(trace_id=track.trace_id, track_id=track.id), track=track))
        return track

    # ---------------- running ----------------

    def run_track(self, track_id: str) -> Engine:
        """Start (or resume) a track's run. Interrupted tickets continue their attempt from the journal."""
        with self._lock:
            existing = self.engines.get(track_id)
            if existing is not None and existing.alive:
                existing.resume()
                return existing
        loaded = self.store.load_track(track_id)
        for w in loaded.warnings:
            self.events.post(Notice(prov=Provenance(track_id=track_id), message=w, level="warning"))
        track = loaded.track
        if not track.tickets:
            raise StoreError(f"track {track_id!r} has no approved tickets yet")
        if loaded.interrupted:
            self.events.post(Notice(prov=Provenance(track_id=track_id),
                                    message=f"resuming: {', '.join(loaded.interrupted)} were interrupted and "
                                            "continue from their journal"))
        self.events.post(TrackLoaded(prov=Provenance(trace_id=track.trace_id, track_id=track.id),
                                     track=track.model_copy(deep=True)))
        deps = EngineDeps(cfg=self.cfg, call=self.call_deps(), broker=self.broker, workspace=self.workspace,
                          toolbox=self.toolbox, store=self.store, allow=self._allow, comms_for=self._comms_for,
                          protected=(self.store.root,))
        engine = Engine(track, deps, journal=loaded.journal, resumed=set(loaded.interrupted), linger=self.linger)
        with self._lock:
            self.engines[track_id] = engine
        return engine.start()

    def engine(self, track_id: str) -> Engine | None:
        return self.engines.get(track_id)

    def command(self, track_id: str, name: str, **args: Any) -> None:
        """Send a command (pause, resume, cancel, retry, skip, edit, cancel_ticket) to a track's engine,
        starting an engine first when the track is not running (e.g. retry after a restart)."""
        eng = self.engines.get(track_id)
        if eng is None or not eng.alive:
            if name in ("pause", "cancel", "cancel_ticket"):
                raise ValueError(f"track {track_id!r} is not running")
            eng = self.run_track(track_id)
            if name == "resume":
                return
        eng.send(name, **args)

    # ---------------- tracks and approvals ----------------

    def list_tracks(self) -> list[Track]:
        return self.store.list_tracks()

    def load_track(self, track_id: str) -> Track:
        eng = self.engines.get(track_id)
        track = eng.track.model_copy(deep=True) if eng is not None else self.store.load_track(track_id).track
        self.events.post(TrackLoaded(prov=Provenance(trace_id=track.trace_id, track_id=track.id), track=track))
        return track

    def archive_track(self, track_id: str) -> None:
        eng = self.engines.get(track_id)
        if eng is not None and eng.alive and eng.track.status == TrackStatus.RUNNING:
            raise ValueError(f"track {track_id!r} is running; cancel it before archiving")
        loaded = self.store.load_track(track_id)
        loaded.journal.append("track_update", {"fields": {"status": TrackStatus.ARCHIVED.value}})
        loaded.track.status = TrackStatus.ARCHIVED
        loaded.track.journal_seq = loaded.journal.last_seq
        self.store.save_snapshot(loaded.track)
        self.events.post(StatusChanged(prov=Provenance(track_id=track_id), old=None, new="archived"))

    def pending_approvals(self) -> list[ApprovalRequest]:
        return self.broker.pending()

    def resolve_approval(self, request_id: str, *, approved: bool, payload: dict[str, Any] | None = None,
                         reason: str | None = None, remember: bool = False) -> ApprovalDecision:
        return self.broker.resolve(request_id, approved=approved, payload=payload, reason=reason, remember=remember)

    def recover(self) -> list[str]:
        """After a restart: continue planning flows that were waiting for an approval. Returns the epic ids."""
        resumed = []
        epics = self.store.root / "_epics"
        for folder in sorted(epics.iterdir()) if epics.is_dir() else []:
            journal = self.store.journal(folder.name, epic=True)
            if journal.find("epic_record", "proposal") is None or self._plan_finished(journal):
                continue
            resumed.append(folder.name)
            self._start_plan(folder.name)
        return resumed

    def _plan_finished(self, journal: Journal) -> bool:
        rec = journal.find("epic_record", "tracks")
        if rec is None:
            done = journal.find("approval_resolved", f"plan-{journal.path.parent.name}")
            return done is not None and not done.data["decision"]["approved"]
        for tid in rec.data["track_ids"]:
            try:
                loaded = self.store.load_track(tid)
            except StoreError:
                continue
            if not loaded.track.tickets and loaded.journal.find("track_record", "ticket_proposal") is not None \
                    and loaded.journal.find("approval_resolved", f"tickets-{tid}") is None:
                return False
        return True

    # ---------------- shutdown ----------------

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop planning, cancel and join every engine and thread, save state, close files. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for h in list(self.plans.values()):
            h.cancel.set()
        for eng in list(self.engines.values()):
            eng.shutdown(timeout)
        with self._lock:
            threads = list(self._threads)
        for th in threads:
            th.join(timeout)
            if th.is_alive():
                raise TimeoutError(f"thread {th.name} did not stop within {timeout}s")
        self.provider.close()
        self.store.close()


def _validate_plan(payload: dict[str, Any]) -> None:
    try:
        TrackProposal.model_validate({"tracks": payload.get("tracks")})
    except Exception as exc:
        raise ValueError(f"invalid plan: {exc}") from None


def _validate_tickets(payload: dict[str, Any]) -> None:
    try:
        plan = TicketPlan.model_validate({"tickets": payload.get("tickets")})
    except Exception as exc:
        raise ValueError(f"invalid tickets: {exc}") from None
    problems = dag.problems(plan.tickets)
    if problems:
        raise ValueError("; ".join(problems))


__all__ = ["PlanHandle", "Session"]
