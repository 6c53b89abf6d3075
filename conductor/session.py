"""The session: everything one running app needs, wired once, used by the CLI and the GUI alike.

It owns the event queue, the approval broker (whose decisions are journalled before they take effect),
the usage ledger (rebuilt from the journals on start) and the tracks store; it starts one planning run
(conductor.planning_run) per epic and one engine per running track, and does nothing else: the state belongs
to those actors, and everyone else sees it through the records they publish.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from conductor.approval_payloads import ApprovalPayload
from conductor.approvals import ApprovalBroker, ApprovalDecision, ApprovalRequest, DecidedBy
from conductor.comms import CommsLog
from conductor.config import Config
from conductor.engine import Cancel, CancelTicket, Engine, EngineCommand, EngineDeps, Pause, ReplaceConfig, Resume
from conductor.errors import ApprovalError, ConductorError, StoreError, UserError
from conductor.events import ErrorRaised, EventQueue, Notice, Provenance, RecordApplied, TrackLoaded
from conductor.gitwork import NoGit, open_git_work
from conductor.limits import ModelLimits
from conductor.model import TicketSpec, Track, TrackStatus
from conductor.planning_run import PlanHandle, PlanningDeps, PlanningRun, set_tickets, unfinished_epics
from conductor.providers.base import Provider
from conductor.records import ApprovalAsked, ApprovalDecided, RecordError, UsageLogged, apply, record_type, track_update
from conductor.settings import ApplySettings, settled_config
from conductor.store import Journal, LoadedTrack, TrackStore
from conductor.tiers.call import CallDeps
from conductor.tools import CommandPolicy, Toolbox, workspace_toolbox
from conductor.tools.mcp_tools import McpServers
from conductor.usage import PriceTable, UsageLedger
from conductor.workspace_guard import check_track_workspace

if TYPE_CHECKING:
    from conductor.distributed.api import RemoteAttempts


def _comms_factory(store: TrackStore) -> Callable[[str], CommsLog]:
    logs: dict[str, CommsLog] = {}
    lock = threading.Lock()

    def comms_for(track_id: str) -> CommsLog:
        with lock:
            if track_id not in logs:
                logs[track_id] = CommsLog(store.track_dir(track_id) / "comms.jsonl")
            return logs[track_id]
    return comms_for


class AwaitingGitInit(UserError):
    """A run waits for the person's answer: initialise a git repository in the workspace, or not."""


class Session:
    def __init__(self, cfg: Config, *, workspace: Path, tracks_dir: Path, provider: Provider,
                 events: EventQueue | None = None, toolbox: Toolbox | None = None, auto_run: bool = True,
                 linger: bool = True, force_workspace: bool = False,
                 limits: ModelLimits | None = None, check_command: str | None = None,
                 path_first: tuple[str, ...] = ()) -> None:
        self._cfg = cfg
        self.check_command = check_command
        """This workspace's checks, instead of `[git] check_command` (the offline demo's own project: its pytest
        suite), kept out of the config so saving Settings never writes it; None: the config's."""
        self.path_first = path_first
        """Folders this session's commands search before PATH (the demo's interpreter folder, for its pytest)."""
        self.workspace = Path(workspace).resolve()
        self.store = TrackStore(Path(tracks_dir))
        self.provider = provider
        self.events = events or EventQueue()
        self.broker = ApprovalBroker(self.events)
        self.ledger = UsageLedger(PriceTable.for_config(cfg))
        self.limits = limits or ModelLimits.from_config(cfg)
        """One gate per model for every call of this session (planning and all tracks' workers)."""
        self.mcp = McpServers.from_config(cfg.mcp, self.store.root / "_mcp",
                                          on_problem=self._mcp_problem)  # started on first Tier 3 use
        self.toolbox = toolbox or workspace_toolbox(self.workspace, sources=(self.mcp,) if self.mcp else ())
        self.auto_run = auto_run
        """Start a track's run as soon as its tickets are approved."""
        self.linger = linger
        self.force_workspace = force_workspace
        """Run resumed tracks here although they recorded another workspace (the person said so)."""
        self.offer_git_init: Callable[[str, str], None] | None = None
        """Set by a front end that can ask (the GUI): a track about to run in a folder that is not a repository
        calls it (track id, why) instead of starting, once per workspace; the person's answer starts the run."""
        self.git_init_answered: set[Path] = set()
        """Workspaces whose person already answered the git init question (this session)."""
        self.engines: dict[str, Engine] = {}
        self.remote: RemoteAttempts | None = None
        """Set (conductor.distributed) when a broker is configured: Tier 3 attempts go to remote workers."""
        self.closers: list[Callable[[], None]] = []
        """Called last on shutdown, after the engines stopped (the distributed dispatcher and its bus)."""
        self.plans: dict[str, PlanHandle] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._settings_lock = threading.Lock()
        self._closed = False
        self._comms_for = _comms_factory(self.store)
        self._allow = CommandPolicy.from_config(cfg)
        # Read at each request, so kinds ticked or unticked in Settings apply at once.
        self.broker.add_policy("config", lambda r: ApprovalDecision(request_id=r.id, approved=True, payload=r.payload)
                               if r.kind.value in self.cfg.approvals.auto else None)
        self._decisions: queue.SimpleQueue[ApprovalDecision | None] = queue.SimpleQueue()
        self._decision_thread = threading.Thread(target=self._decision_writer, name="conductor-decisions",
                                                 daemon=True)
        self._decision_thread.start()
        self.broker.on_requested.append(self._journal_request)
        self.broker.on_resolved.append(self._journal_decision)
        self.store.remove_stale_temp_files()
        self._load_usage()

    @property
    def cfg(self) -> Config:
        """The current config: an immutable value, replaced only by `apply_settings`."""
        return self._cfg

    def apply_settings(self, cmd: ApplySettings) -> Config:
        """Handle a Settings change: validate (ConfigError names the key), write the file when asked, then swap
        the new value in — for the session's readers, the price table, the allow rules, and each running engine
        (attempts launched from now on; a running attempt keeps its config). Nothing changes when it fails."""
        with self._settings_lock:  # two changes at once: one after the other, each over the last
            new = settled_config(self._cfg, cmd)
            self._cfg = new
            self.ledger.prices = PriceTable.for_config(new)
            self._allow.set_config_rules(new.approvals.allow_commands)
            with self._lock:  # every engine, started or not: one registered now still gets it at its start
                engines = list(self.engines.values())
            for eng in engines:
                eng.send(ReplaceConfig(new))
        return new

    def _mcp_problem(self, message: str) -> None:
        self.events.post(ErrorRaised(prov=Provenance(), message=message, error_type="McpUnavailable"))

    # ---------------- journals ----------------

    def _journal_for(self, prov: Provenance) -> Journal:
        if prov.track_id:
            return self.store.journal(prov.track_id)
        return self.store.journal(prov.trace_id or "unknown", epic=True)

    def _journal_request(self, req: ApprovalRequest) -> None:
        self._journal_for(req.prov).append(ApprovalAsked(key=req.id, request=req))

    def _journal_decision(self, req: ApprovalRequest, d: ApprovalDecision) -> None:
        if d.by == DecidedBy.CANCELLED:
            return  # not a decision: the request stays pending in the journal and comes back after a restart
        self._journal_for(req.prov).append(ApprovalDecided(key=req.id, request=req, decision=d))

    def _load_usage(self) -> None:
        """Rebuild the ledger from every journal (usage survives a restart, each record counted once)."""
        if not self.store.root.is_dir():
            return
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
        for entry in journal.entries():
            if entry.type != record_type(UsageLogged):
                continue  # only usage lines are decoded: a long journal is mostly other records
            try:
                rec = entry.record
            except RecordError as exc:
                self.events.post(Notice(prov=Provenance(), level="warning",
                                        message=f"{journal.path}: seq {entry.seq} skipped: {exc}"))
                continue
            assert isinstance(rec, UsageLogged)
            self.ledger.record(rec.record)

    def call_deps(self) -> CallDeps:
        return CallDeps(provider=self.provider, events=self.events, ledger=self.ledger, cfg=self.cfg,
                        limits=self.limits)

    # ---------------- planning ----------------

    def _planning_deps(self) -> PlanningDeps:
        return PlanningDeps(config=lambda: self.cfg, store=self.store, broker=self.broker, events=self.events,
                            workspace=self.workspace, call_deps=self.call_deps, comms_for=self._comms_for,
                            spawn=self._spawn, on_tickets_approved=self._tickets_approved)

    def plan_epic(self, epic: str) -> PlanHandle:
        """Start planning on a background thread: Tier 1, plan approval, Tier 2 per track, tickets approval."""
        run = PlanningRun.create(epic, self._planning_deps())
        return self._start_plan(run)

    def _start_plan(self, run: PlanningRun) -> PlanHandle:
        self.plans[run.epic_id] = run.handle
        return run.start()

    def _spawn(self, name: str, fn: Callable[[], None]) -> threading.Thread:
        th = threading.Thread(target=fn, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(th)
        th.start()
        return th

    def _tickets_approved(self, track_id: str) -> None:
        if self.auto_run:
            try:
                self.run_track(track_id)
            except AwaitingGitInit:
                pass  # the person is being asked whether to initialise a repository; their answer runs it

    def set_tickets(self, track_id: str, specs: list[TicketSpec]) -> Track:
        return set_tickets(self.store, self.events, track_id, specs)

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
        check_track_workspace(track, self.workspace, loaded.journal, force=self.force_workspace)
        if loaded.interrupted:
            self.events.post(Notice(prov=Provenance(track_id=track_id),
                                    message=f"resuming: {', '.join(loaded.interrupted)} were interrupted and "
                                            "continue from their journal"))
        self._publish_loaded(loaded)
        git = open_git_work(self.workspace, track_id, self.cfg.git, self.store.root)
        if isinstance(git, NoGit) and git.can_init and self.offer_git_init is not None and self.cfg.git.offer_init \
                and self.workspace not in self.git_init_answered:
            self.offer_git_init(track_id, git.reason)  # asked; never initialised on its own
            raise AwaitingGitInit(f"{self.workspace} is not a git repository: answer whether to initialise one "
                                  f"(track {track_id} runs after your answer)")
        if isinstance(git, NoGit):  # never parallel workers in one shared tree: they would overwrite each other
            self.events.post(Notice(prov=Provenance(track_id=track_id), level="warning", message=(
                f"{git.reason}: the track runs ONE worker at a time in the workspace itself, with no branch, no "
                "per-ticket commit and no undo. Initialise a repository (git init, one commit) to get a branch per "
                "track and a worktree per ticket.")))
        cfg = self._cfg  # one value for the whole set-up; a change after this reaches the engine below
        deps = EngineDeps(cfg=cfg, call=self.call_deps().with_(cfg=cfg), broker=self.broker, workspace=self.workspace,
                          toolbox=self.toolbox, store=self.store, allow=self._allow, comms_for=self._comms_for,
                          protected=(self.store.root,), git=None if isinstance(git, NoGit) else git,
                          max_workers=1 if isinstance(git, NoGit) else None, check_command=self.check_command,
                          path_first=self.path_first, remote=self.remote)
        engine = Engine(track, deps, journal=loaded.journal, resumed=set(loaded.interrupted), linger=self.linger)
        with self._lock:
            self.engines[track_id] = engine
            if self._cfg is not cfg:  # Settings changed while it was being set up: apply_settings may not see it
                engine.send(ReplaceConfig(self._cfg))
        return engine.start()

    def _publish_loaded(self, loaded: LoadedTrack) -> None:
        t = loaded.track
        self.events.post(TrackLoaded(prov=Provenance(trace_id=t.trace_id, track_id=t.id), track=t.model_copy(deep=True),
                                     interrupted=tuple(loaded.interrupted),
                                     will_ask_again=len(self.unanswered_approvals(t.id, loaded.journal))))

    def unanswered_approvals(self, track_id: str, journal: Journal | None = None) -> list[str]:
        """Approval requests journalled for a track and never decided: asked again when the track resumes."""
        journal = journal or self.store.journal(track_id)
        asked = [rec.key for rec in journal.records() if isinstance(rec, ApprovalAsked)]
        return [k for k in dict.fromkeys(asked) if journal.find(ApprovalDecided, k) is None]

    def in_background(self, what: str, fn: Callable[[], object]) -> threading.Thread:
        """Run `fn` on a session thread (loading a track reads, and may repair, files: never on the GUI
        thread); a failure is published as an error naming `what`, never raised into the caller's frame."""
        def work() -> None:
            try:
                fn()
            except (ConductorError, ValueError, OSError) as exc:
                self.events.post(ErrorRaised(prov=Provenance(), error_type=type(exc).__name__,
                                             message=f"Cannot {what}: {exc}"))
        return self._spawn(f"conductor-{what.split()[0]}", work)

    def engine(self, track_id: str) -> Engine | None:
        return self.engines.get(track_id)

    def command(self, track_id: str, command: EngineCommand) -> None:
        """Send a command to a track's engine, starting an engine first when the track is not running (a retry
        after a restart); pause/cancel of a track that is not running is refused with a message."""
        eng = self.engines.get(track_id)
        if eng is None or not eng.alive:
            if isinstance(command, (Pause, Cancel, CancelTicket)):
                raise UserError(f"track {track_id!r} is not running")
            eng = self.run_track(track_id)
            if isinstance(command, Resume):
                return
        eng.send(command)

    # ---------------- tracks and approvals ----------------

    def list_tracks(self) -> list[Track]:
        return self.store.list_tracks()

    def load_track(self, track_id: str) -> Track:
        eng = self.engines.get(track_id)
        if eng is not None:
            track = eng.track.model_copy(deep=True)  # the engine's thread may be applying: a copy, published
            self.events.post(TrackLoaded(prov=Provenance(trace_id=track.trace_id, track_id=track.id), track=track))
            return track
        loaded = self.store.load_track(track_id)
        self._publish_loaded(loaded)
        return loaded.track

    def archive_track(self, track_id: str) -> None:
        eng = self.engines.get(track_id)
        if eng is not None and eng.alive and eng.track.status == TrackStatus.RUNNING:
            raise UserError(f"track {track_id!r} is running; cancel it before archiving")
        loaded = self.store.load_track(track_id)
        rec = track_update(status=TrackStatus.ARCHIVED, reason="archived by the user")
        loaded.journal.append(rec)
        apply(loaded.track, rec)
        loaded.track.journal_seq = loaded.journal.last_seq
        self.store.save_snapshot(loaded.track)
        self.events.post(RecordApplied(prov=Provenance(track_id=track_id), record=rec))

    def pending_approvals(self) -> list[ApprovalRequest]:
        return self.broker.pending()

    def resolve_approval(self, request_id: str, *, approved: bool, payload: ApprovalPayload | None = None,
                         reason: str | None = None, remember: bool = False,
                         background: bool = False) -> ApprovalDecision:
        """A person's decision. It is validated here (ValueError names what is wrong with an edit); with
        `background` (the GUI thread) the journal write and fsync, then the release of the waiting work, happen on
        the session's decisions thread, so the frame loop never waits for the disk."""
        if not background:
            return self.broker.resolve(request_id, approved=approved, payload=payload, reason=reason,
                                       remember=remember)
        decision = self.broker.decide(request_id, approved=approved, payload=payload, reason=reason,
                                      remember=remember)
        self._decisions.put(decision)
        return decision

    def _decision_writer(self) -> None:
        while (decision := self._decisions.get()) is not None:
            try:
                self.broker.finish(decision)
            except ApprovalError as exc:  # decided twice (a double click): the first one stands
                self.events.post(Notice(prov=Provenance(), level="warning", message=f"not recorded again: {exc}"))
            except OSError as exc:  # not journalled, so not decided: it stays pending, and the person is told
                self.events.post(ErrorRaised(prov=Provenance(), error_type=type(exc).__name__,
                                             message=f"the decision on {decision.request_id} could not be saved "
                                                     f"({exc}); it is still pending"))

    def recover(self) -> list[str]:
        """After a restart: continue planning runs that were waiting for an approval. Returns the epic ids."""
        resumed = unfinished_epics(self.store)
        for epic_id in resumed:
            self._start_plan(PlanningRun(epic_id, self._planning_deps()))
        return resumed

    # ---------------- shutdown ----------------

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop planning, cancel and join every engine and thread, save state, close files. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._decisions.put(None)
        self._decision_thread.join(timeout)
        self.mcp.interrupt_startup()  # a worker waiting for a server to start must not hold up the engines
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
        self.mcp.close()
        for close in self.closers:
            close()
        self.provider.close()
        self.store.close()


__all__ = ["AwaitingGitInit", "PlanHandle", "Session"]
