"""The scheduler: the single owner of one track's ticket state.

One engine thread takes commands (pause, resume, cancel, retry, skip, edit) and worker results from its
inbox and decides what runs next; a ticket is dispatched the moment its last dependency is done (no
level barriers). Workers run on a bounded ThreadPoolExecutor and never touch ticket state: they report
back through the inbox. Every state change is journalled, then published as an event.

Every state change is a record (conductor.records): built here, applied to the engine's own track with the one
`apply`, appended to the journal, and — after one fsync for the whole batch of a message (group commit) —
published as `RecordApplied`, so replay, the view-model and the CLI see exactly what the engine saw. Work a
record allows (a worker launch) starts only after that fsync.

Commands are typed (`EngineCommand`) and handled with `match`; an unknown one cannot be sent.

Shutdown order: stop dispatching → set every worker's cancel event and reject their pending approvals →
wait for the workers (executor shutdown) → journal and snapshot the final state → the engine thread exits.
"""

from __future__ import annotations

import errno
import functools
import queue
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeAlias, assert_never

from conductor import dag, gcfreeze
from conductor.approval_payloads import SpawnPayload
from conductor.approvals import ApprovalDecision, DecidedBy
from conductor.attempt import AttemptResult, EngineDeps, Workbench, run_attempt
from conductor.config import Config
from conductor.errors import (
    BadRequest,
    BudgetExceeded,
    Cancelled,
    ConductorError,
    PlanInvalid,
    ProviderError,
    QuotaExhausted,
    SafetyBlocked,
    StoreError,
    UserError,
)
from conductor.events import ErrorRaised, Event, Notice, Provenance, RecordApplied, RunFinished
from conductor.git import AttemptKey, GitError, Merged, NeedsMerge, RevertConflicts, Reverted, TrackMoved
from conductor.git.base_merge import BaseMerged, BaseMergePlan, BaseMergeRefused
from conductor.gitwork import GitWork, track_started
from conductor.model import ACTIVE_STATUSES, Ticket, TicketStatus, Track, TrackStatus
from conductor.records import (
    EDITABLE_FIELDS,
    ApprovalDecided,
    GitAttemptMerged,
    GitBaseMerged,
    GitMergeConflict,
    GitTicketReverted,
    GitTicketRewound,
    Record,
    TicketUpdated,
    apply,
    ticket_update,
    track_update,
    trusted_ticket_update,
)
from conductor.store import Journal, JournalFence, fenced
from conductor.tiers import prompts
from conductor.tiers.worker import worker_prompt
from conductor.tools.base import ToolContext

SNAPSHOT_EVERY = 2000
"""Journal records between background snapshots of a running track (at least; see below)."""
SNAPSHOT_RECORDS_PER_TICKET = 10


# --- commands (from any thread) ---

@dataclass(frozen=True)
class Pause:
    pass


@dataclass(frozen=True)
class Resume:
    pass


@dataclass(frozen=True)
class Cancel:
    pass


@dataclass(frozen=True)
class Shutdown:
    pass


@dataclass(frozen=True)
class Retry:
    ticket_id: str


@dataclass(frozen=True)
class Skip:
    ticket_id: str


@dataclass(frozen=True)
class CancelTicket:
    ticket_id: str


@dataclass(frozen=True)
class Snapshot:
    """Ask for a copy of the engine's track, taken on its own thread after everything before it is journalled and
    published: `reply` gets (journal seq the copy includes, the copy)."""

    reply: Future[tuple[int, Track]] = field(default_factory=Future, compare=False)


@dataclass(frozen=True)
class Edit:
    ticket_id: str
    fields: dict[str, Any] = field(default_factory=dict)
    """Editable ticket fields only (records.EDITABLE_FIELDS); anything else is refused with its name."""


@dataclass(frozen=True)
class RevertTicket:
    """Undo a merged ticket with a revert commit on the track branch (the person was asked first)."""

    ticket_id: str


@dataclass(frozen=True)
class RewindTicket:
    """Make an earlier attempt's commit the ticket's work on the track (a later merge is reverted first)."""

    ticket_id: str
    to_attempt: int


@dataclass(frozen=True)
class MergeIntoBase:
    """Merge the track branch into its base exactly as the plan the person approved shows."""

    plan: BaseMergePlan



@dataclass(frozen=True)
class ReplaceConfig:
    """The person applied new settings (conductor/settings.py): attempts launched from now on use `cfg`; an
    attempt already running keeps the config it started with."""

    cfg: Config


EngineCommand: TypeAlias = (Pause | Resume | Cancel | Shutdown | Retry | Skip | CancelTicket | Edit | Snapshot
                            | RevertTicket | RewindTicket | MergeIntoBase | ReplaceConfig)


def command_name(cmd: EngineCommand) -> str:
    return type(cmd).__name__.lower()


# --- worker results ---


@dataclass(frozen=True)
class _WorkerDone:
    ticket_id: str
    attempt: int
    outcome: str
    """pass | fail | error"""
    hint: str = ""
    error: BaseException | None = None
    commit: str | None = None
    """With git: the attempt's commit, merged by the engine before the ticket is done."""


def _outcome(ticket_id: str, attempt: int, res: AttemptResult | BaseException) -> _WorkerDone:
    """An attempt's end as the engine's inbox takes it (from a local worker thread or a remote worker)."""
    if isinstance(res, BaseException):
        return _WorkerDone(ticket_id, attempt, "error", error=res)
    return _WorkerDone(ticket_id, attempt, "pass" if res.hint is None else "fail", res.hint or "", commit=res.commit)


@dataclass(frozen=True)
class _Progress:
    ticket_id: str
    attempt: int
    status: TicketStatus


@dataclass(frozen=True)
class _SpawnDecided:
    ticket_id: str
    attempt: int
    decision: ApprovalDecision


@dataclass(frozen=True)
class _CommitFailed:
    """The journal refused a batch (disk full, I/O error): nothing of it was published; its attempts were not started,
    or (started early, see _Committer) are cancelled by the run stopping."""

    error: OSError


_Launch = tuple[Ticket, int, str, threading.Event, str | None, Workbench]
"""(ticket snapshot, attempt, model, cancel, commit a resolve attempt starts from)."""


@dataclass(frozen=True, slots=True)
class _Started:
    """An attempt the engine started as its batch was handed over (early start, see _Committer): the committer
    opens its journal fence once the batch is written and fsynced, or cancels it and opens the fence refused."""

    cancel: threading.Event
    fence: JournalFence


_Batch = tuple[list[Event | Record], list[_Launch | _Started], list[Callable[[int], None]]]


class _JobCount:
    """Worker jobs submitted and not yet returned (a cancelled attempt can outlive its ticket's `_active` entry)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._n = 0

    def submit(self, pool: ThreadPoolExecutor, job: Callable[..., None], *args: Any) -> None:
        """Counted from the submit (a job waiting for a thread counts). Raises RuntimeError as pool.submit does."""
        with self._lock:
            self._n += 1
        try:
            pool.submit(self._run, job, *args)
        except BaseException:
            self._done()
            raise

    def _run(self, job: Callable[..., None], *args: Any) -> None:
        try:
            job(*args)
        finally:
            self._done()

    def _done(self) -> None:
        with self._lock:
            self._n -= 1

    def idle(self) -> bool:
        with self._lock:
            return self._n == 0


class _Committer:
    """Writes the engine's batches to the journal on its own thread — one write and one fsync per batch — and
    only then publishes their events, in batch order. The engine thread never waits for the disk; the journal
    still comes first.

    Attempts start after the fsync, or with `start_before_fsync` (`early`) as soon as the engine hands their batch
    over: the engine submits them itself (`_Started`), and each attempt's journal appends wait behind a fence
    (store.JournalFence) that this thread opens once their `running` line is written and fsynced. Until then the
    attempt builds its prompt and makes its first model call, which is what overlaps the write and the fsync
    (at 1,000 tickets / 8 workers the fsync was a third of the time from one attempt's end to the next one's start,
    the hand-over and write another 0.5 ms). Why that is safe:
    - nothing of the attempt reaches the journal, and no tool call of it runs (its intent is journalled first),
      before its `running` line is durable;
    - a kill before that loses at most a model call in flight: its usage is journalled behind the fence, never
      twice, and the restarted ticket begins the same attempt afresh.
    The engine asks for it only without git: an attempt in a worktree (or on a remote worker) acts on git before it
    journals anything of its own. Should the write or the fsync fail, the attempts started are cancelled at once
    and their fences open refused (every append of theirs fails: no record of an attempt whose start is not in the
    journal ever lands), and the run stops as before (`_CommitFailed`, or at the settling barrier); their events
    were never published.
    An early attempt's own events (stream text, tool lines) may reach the event queue before the `RecordApplied`
    of its `running` line: consumers start an attempt's pane on its first event, whichever it is."""

    def __init__(self, journal: Journal, post: Callable[[Event], object], submit: Callable[..., object],
                 prov: Callable[[Record], Provenance], failed: Callable[[OSError], None], name: str,
                 start_before_fsync: bool = False) -> None:
        self.journal = journal
        self._post, self._submit, self._prov, self._failed = post, submit, prov, failed
        self._early = start_before_fsync
        self._queue: queue.SimpleQueue[_Batch | threading.Event | None] = queue.SimpleQueue()
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def commit(self, batch: _Batch) -> None:
        self._queue.put(batch)

    @property
    def early(self) -> bool:
        return self._early

    def fence(self) -> JournalFence:
        return JournalFence(self._thread)

    @property
    def failed(self) -> bool:
        return self._error is not None

    @property
    def error(self) -> OSError | None:
        return self._error

    def barrier(self) -> None:
        """Wait until every batch handed over so far is written (or refused)."""
        done = threading.Event()
        self._queue.put(done)
        while not done.wait(0.5):
            if not self._thread.is_alive():  # it died (a bug): never wait forever for it
                raise OSError(errno.EIO, "the journal's committer thread stopped; later records may be unwritten")

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            while True:  # everything queued meanwhile: its batches share one write and one fsync
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            batches: list[_Batch] = []
            for item in items:
                if isinstance(item, tuple):
                    batches.append(item)
                    continue
                self._write(batches)  # a barrier or the end waits for the batches before it
                batches = []
                if item is None:
                    return
                item.set()
            self._write(batches)

    def _write(self, batches: list[_Batch]) -> None:
        """Group commit: the batches' records in one append (one fsync), then each batch's events, launches and
        callbacks in batch order. With the disk busy, the engine hands over a batch per message it handled;
        one fsync per batch made fsyncs (~1.5 ms each beside the output files' metadata) a third of the time
        from a worker's end to the next start at 1,000 tickets / 8 workers."""
        if not batches:
            return
        if self._error is not None:  # the journal is refusing writes: nothing after the failure may take effect
            self._refuse(batches, self._error, started=False)
            return
        records = [x for items, _, _ in batches for x in items if not isinstance(x, Event)]
        started = False

        def start() -> None:
            nonlocal started
            started = True
            for _, launches, _ in batches:
                for launch in launches:
                    if not isinstance(launch, _Started):
                        self._submit(*launch)

        try:
            if not records:
                entries = []
            elif self._early:
                entries = self.journal.append_many(records, before_sync=start)
            else:
                entries = self.journal.append_many(records)
        except OSError as exc:
            self._error = exc
            self._refuse(batches, exc, started=started)
            self._failed(exc)
            return
        seqs = iter([e.seq for e in entries])
        last = entries[0].seq - 1 if entries else self.journal.last_seq
        for items, launches, after in batches:
            for x in items:
                if isinstance(x, Event):
                    self._post(x)
                else:
                    last = next(seqs)
                    self._post(RecordApplied(prov=self._prov(x), record=x, journal_seq=last))
            for launch in launches:
                if isinstance(launch, _Started):
                    launch.fence.open()  # only now, written and fsynced: see the class docstring
                elif not started:
                    self._submit(*launch)
            for fn in after:
                fn(last)  # the seq of this batch's last record: a snapshot dumped with it includes no later one

    @staticmethod
    def _refuse(batches: list[_Batch], error: OSError, *, started: bool) -> None:
        """Attempts that run already are stopped now, before the engine thread even hears of the failure."""
        for _, launches, _ in batches:
            for launch in launches:
                if isinstance(launch, _Started):
                    launch.cancel.set()
                    launch.fence.open(refused=error)
                elif started:
                    launch[3].set()


def _sizes(ctx: ToolContext, files: list[str]) -> dict[str, int]:
    """Characters each context file adds to a worker's first prompt (path and text, as read_context sends it)."""
    read = prompts.read_context(ctx.workspace, list(files), protected=ctx.protected)
    return {p: len(p) + len(read[p]) if p in read else 0 for p in files}  # 0: not there (the worker sees none)


def _answer_snapshot(reply: Future[tuple[int, Track]], copy: Track, seq: int) -> None:
    reply.set_result((seq, copy))


class Engine:
    def __init__(self, track: Track, deps: EngineDeps, *, journal: Journal | None = None, trace_id: str = "",
                 resumed: set[str] | None = None, linger: bool = False) -> None:
        self.track = track
        self.deps = deps
        self.cfg = deps.cfg
        self.journal = journal
        self.trace_id = trace_id or track.trace_id
        self.linger = linger
        """Keep the thread alive after the run settles (GUI: the user may retry or edit); False for the CLI."""
        self._resumed = set(resumed or ()) | {t.id for t in track.tickets
                                              if t.continues_attempt and t.status == TicketStatus.READY}
        """Tickets whose next launch continues their last attempt: interrupted ones read back, and ready ones
        whose `continues_attempt` says a resume already put them back (then a second kill came first)."""
        self._inbox: queue.SimpleQueue[EngineCommand | _WorkerDone | _Progress | _SpawnDecided | _CommitFailed] = \
            queue.SimpleQueue()
        self._active: dict[str, tuple[int, threading.Event]] = {}
        self._jobs = _JobCount()
        self._spawn_ok: set[tuple[str, int]] = set()
        self._spawn_prompts: dict[tuple[str, int], str] = {}
        """The prompt each pending spawn approval showed: an approval that did not change it stores nothing."""
        self._paused = False
        self._cancelled = False
        self._stopping = False
        self._idle = threading.Event()
        self._exited = threading.Event()
        self._crash: BaseException | None = None
        self._gc_held = False
        """This run holds a gcfreeze freeze (while busy)."""
        self._dirty = False
        self.dispatch_log: list[tuple[str, float, float]] = []
        """(ticket id, start, end) per attempt, for tests and benchmarks (monotonic seconds)."""
        self._starts: dict[str, float] = {}
        self._outbox: list[Event | Record] = []
        """Records and events of the current batch: journalled (one write, one fsync) and then published."""
        self._launches: list[_Launch] = []
        """Attempts the batch starts once it is written (see _Committer)."""
        self._after: list[Callable[[int], None]] = []
        """Called with the journal's last seq once the batch is written (snapshots, Snapshot replies)."""
        self._replies: list[Future[tuple[int, Track]]] = []
        self._launched: set[str] = set()
        """Tickets whose attempt holds a worker slot (running or in review)."""
        self.cpu_s = 0.0
        self._since_snapshot = 0
        """CPU seconds the engine thread itself used (benchmarks)."""
        self._bench = Workbench(track.id, deps, journal)
        self._max_workers = deps.max_workers or self.cfg.engine.max_workers
        self._resolve: dict[str, str] = {}
        """Tickets in needs_merge → the conflicting commit their resolve attempt starts from."""
        self._index()
        self._pool = ThreadPoolExecutor(max_workers=self._max_workers,
                                        thread_name_prefix=f"conductor-worker-{track.id[:12]}")
        self._committer: _Committer | None = None
        self._thread = threading.Thread(target=self._main, name=f"conductor-engine-{track.id[:12]}", daemon=True)

    def _index(self) -> None:
        """(Re)build the id index and the ready tracker; after an edit of the graph, and at start."""
        dag.ensure_valid(self.track.tickets)
        self._by_id = {t.id: t for t in self.track.tickets}
        self._ready = dag.ReadyTracker(self.track.tickets)
        self._cascade_due = True

    # ---------------- public API (any thread) ----------------

    def start(self) -> Engine:
        self._thread.start()
        return self

    def _gc_hold(self, busy: bool) -> None:
        """While the run is busy, what is loaded (the track, the app) is frozen out of full collections, which
        stopped every worker for ~85 ms in a 1,000-ticket run (see gcfreeze); released whenever it settles, so
        the cycles it dropped are collected then, also in the GUI where the engine thread lingers."""
        if busy != self._gc_held:
            self._gc_held = busy
            if busy:
                gcfreeze.freeze()
            else:
                gcfreeze.thaw()

    def send(self, command: EngineCommand) -> None:
        self._inbox.put(command)

    def pause(self) -> None:
        self.send(Pause())

    def resume(self) -> None:
        self.send(Resume())

    def cancel(self) -> None:
        self.send(Cancel())

    def retry(self, ticket_id: str) -> None:
        self.send(Retry(ticket_id))

    def skip(self, ticket_id: str) -> None:
        self.send(Skip(ticket_id))

    def cancel_ticket(self, ticket_id: str) -> None:
        self.send(CancelTicket(ticket_id))

    def edit(self, ticket_id: str, fields: dict[str, Any]) -> None:
        self.send(Edit(ticket_id, fields))

    def snapshot(self, timeout: float | None = None) -> tuple[int, Track]:
        """A consistent copy of the track and the journal seq it includes (blocks until the engine answers)."""
        if not self.alive:
            raise RuntimeError(f"the engine of track {self.track.id!r} is not running")
        cmd = Snapshot()
        self.send(cmd)
        return cmd.reply.result(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> Track:
        """Wait until the run settles (nothing running, nothing more to dispatch) and return the track.
        Re-raises an engine crash in the caller; TimeoutError if it does not settle in time."""
        if not self._idle.wait(timeout):
            raise TimeoutError(f"track {self.track.id!r} did not settle within {timeout}s")
        if self._crash is not None:
            raise RuntimeError(f"engine for {self.track.id!r} crashed") from self._crash
        if not self.linger:
            self._exited.wait(timeout)
        return self.track

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel running work, wait for every worker, save state, stop the thread."""
        if self._thread.is_alive():
            self._inbox.put(Shutdown())
            self._thread.join(timeout)
        else:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._thread.is_alive():
            raise TimeoutError(f"engine for {self.track.id!r} did not stop within {timeout}s")

    # ---------------- engine thread ----------------

    def _main(self) -> None:
        cpu0 = time.thread_time()
        if self.journal is not None:
            self._committer = _Committer(self.journal, self.deps.call.events.post, self._submit, self._rec_prov,
                                         lambda exc: self._inbox.put(_CommitFailed(exc)),
                                         name=f"conductor-journal-{self.track.id[:12]}",
                                         start_before_fsync=self.deps.git is None)
        try:
            self._gc_hold(True)
            self._start_run()
            while True:
                if self._cascade_due:
                    self._unblock_and_cascade()
                if not self._stopping:
                    self._dispatch()
                settled = self._settled()
                if settled:
                    self._finish_run()
                self._flush()
                if settled:
                    self._snapshot(force=True)
                    self._check_journal()
                    if self.deps.store is not None:
                        self.deps.store.flush_outputs()  # whoever joins reads complete output files
                    self._idle.set()
                    if not self.linger or self._stopping:
                        break  # the freeze is let go once the joiner is released (below)
                    self._gc_hold(False)  # lingering: the run's garbage is collected while it waits
                msg = self._inbox.get()
                self._idle.clear()
                self._gc_hold(True)
                self._handle(msg)
                while True:  # drain what else is waiting: one fsync for the whole batch
                    try:
                        msg = self._inbox.get_nowait()
                    except queue.Empty:
                        break
                    self._handle(msg)
        except BaseException as exc:  # noqa: BLE001 — a bug in the engine: make it visible, never hang the joiner
            self._crash = exc
            text = (f"the run stopped: {exc}" if isinstance(exc, ConductorError)  # a known condition, said plainly
                    else f"engine crashed: {exc!r}\n{traceback.format_exc()}")
            # Straight to the queue: when the journal is what failed, the committer drops every later batch.
            self.deps.call.events.post(ErrorRaised(prov=self._prov(), error_type=type(exc).__name__, fatal=True,
                                                   message=text))
            self._launches.clear()
            self._stop_workers("engine crashed")
            try:
                self._flush()
            except OSError:
                pass  # the crash is already being reported; a journal that cannot sync changes nothing here
        finally:
            self.cpu_s = time.thread_time() - cpu0
            # Workers that finished every job are idle: their threads end after the joiner is released (64 of
            # them took 0.12 s to join). Otherwise (a crash, a stop mid-attempt) the joiner waits for them.
            idle = self._crash is None and self._jobs.idle()
            self._pool.shutdown(wait=not idle, cancel_futures=True)
            if self.deps.git is not None:
                try:
                    self.deps.git.close()  # the parked worktrees (clean, no work in them)
                except GitError as exc:
                    self.deps.call.events.post(Notice(prov=self._prov(), level="warning",
                                                      message=f"parked worktrees were not removed: {exc}"))
            try:
                # Only if something changed since the snapshot the settled run took: a second dump of a 5,000-ticket
                # track cost ~1 s of CPU on the snapshot thread for nothing.
                self._snapshot()
            finally:
                if self._committer is not None:
                    self._committer.close()
                self._idle.set()
                self._exited.set()
                # Last, after the joiner is released: letting go of the freeze makes the next full collection walk
                # everything the run loaded (0.3 s for a 5,000-ticket track), housekeeping and not part of the run.
                self._gc_hold(False)
                self._pool.shutdown(wait=True)

    def _start_run(self) -> None:
        """Interrupted and cancelled tickets go back to ready and continue their attempt."""
        for t in self.track.tickets:  # starting a run resumes it: stopped attempts continue from their journal
            if t.status in (TicketStatus.INTERRUPTED, TicketStatus.CANCELLED):
                self._resumed.add(t.id)
                self._set(t, TicketStatus.READY, reason=f"resumed: continues its {t.status.value} attempt",
                          continues_attempt=t.attempts > 0)
        self._start_git()
        self._set_track(TrackStatus.RUNNING)
        self._outbox.append(Notice(prov=self._prov(), message=f"run started: {len(self.track.tickets)} tickets, "
                                                              f"{self._max_workers} workers"))

    def _start_git(self) -> None:
        """Reconcile the journalled attempts with git, then create (or find) the track branch; a GitError stops
        the run with its message (a ConductorError)."""
        git = self.deps.git
        if git is None:
            return
        records = self.journal.records() if self.journal is not None else []
        tb, report = git.start_track(records)
        self._commit(track_started(tb))
        for line in report.lines():
            if not line.startswith(("ok:", "absent:", "parked:", "released:")):
                self._post(Notice(prov=self._prov(), level="warning", message=f"git reconcile: {line}"))
        for rec in records:  # tickets waiting in needs_merge resolve from their conflicting commit
            if isinstance(rec, GitMergeConflict):
                t = self._by_id.get(rec.ticket_id)
                if t is not None and t.status == TicketStatus.NEEDS_MERGE:
                    self._resolve[t.id] = rec.ticket_commit
        verb = "created" if tb.created else "continues on"
        self._post(Notice(prov=self._prov(), message=f"track branch {tb.branch} {verb} (base {tb.base_sha[:12]}); "
                                                     "each ticket attempt works in its own worktree"))

    def _merge(self, t: Ticket, attempt: int, commit: str) -> bool:
        """Merge a passed attempt into the track branch (here only: one at a time). True when merged."""
        git = self.deps.git
        assert git is not None
        try:
            result = git.merge(t.id, attempt, commit, t.title)
        except GitError as exc:
            self._set(t, TicketStatus.BLOCKED, blocked_reason=f"merge failed: {exc} (fix it, then retry)")
            return False
        match result:
            case Merged():
                self._commit(GitAttemptMerged(key=AttemptKey(self.track.id, t.id, attempt).text, ticket_id=t.id,
                                              attempt=attempt, commit=result.commit,
                                              ticket_commit=result.ticket_commit))
                return True
            case NeedsMerge(files=files):
                self._commit(GitMergeConflict(key=AttemptKey(self.track.id, t.id, attempt).text, ticket_id=t.id,
                                              attempt=attempt, files=list(files), ticket_commit=result.ticket_commit,
                                              track_tip=result.track_tip))
                self._resolve[t.id] = result.ticket_commit
                self._set(t, TicketStatus.NEEDS_MERGE, failed_reason=None, blocked_reason=(
                    f"merge conflict with {git.branch} in: {', '.join(files)}; retry starts a resolve attempt from "
                    f"commit {result.ticket_commit[:12]} with the track merged in, for a worker to resolve"))
                return False
            case TrackMoved():
                self._set(t, TicketStatus.BLOCKED, blocked_reason=(
                    f"merge failed: {git.branch} kept moving under the conductor (something else writes it); retry"))
                return False
            case _:
                assert_never(result)

    def _flush(self) -> None:
        """Group commit: hand the batch's records, events and launches to the committer (journal, then publish,
        then start); without a journal, publish and start at once."""
        self._maybe_snapshot()
        for reply in self._replies:  # the state with every record of this batch, so equal to the journal's
            copy = self.track.model_copy(deep=True)
            self._after.append(functools.partial(_answer_snapshot, reply, copy))
        self._replies = []
        items, launches, after = self._outbox, self._launches, self._after
        self._outbox, self._launches, self._after = [], [], []
        committer = self._committer
        if committer is not None:
            handed: list[_Launch | _Started] = list(launches)
            if committer.early:
                for i, launch in enumerate(launches):  # started now; their journal appends wait for the write
                    fence = committer.fence()
                    self._submit(*launch, fence=fence)
                    handed[i] = _Started(launch[3], fence)
            committer.commit((items, handed, after))
            return
        for x in items:
            self.deps.call.events.post(x if isinstance(x, Event) else RecordApplied(prov=self._rec_prov(x), record=x))
        for launch in launches:
            self._submit(*launch)
        for fn in after:
            fn(0)

    def _submit(self, t: Ticket, attempt: int, model: str, cancel: threading.Event, resolve: str | None,
                bench: Workbench, fence: JournalFence | None = None) -> None:
        if self.deps.remote is not None and self.deps.git is not None:  # a broker: a `conductor worker` runs it
            from conductor.distributed.api import RemoteJob
            self.deps.remote.submit(RemoteJob(
                self.track, t, attempt, model, self._prov(t.id, attempt, tier=3), cancel, resolve, self.deps.git,
                self.journal, self.deps.store, on_review=lambda: self._inbox.put(
                    _Progress(t.id, attempt, TicketStatus.REVIEW)),
                on_done=lambda res: self._inbox.put(_outcome(t.id, attempt, res))))
            return
        try:
            self._jobs.submit(self._pool, self._worker_job, t, attempt, model, cancel, resolve, bench, fence)
        except RuntimeError:  # the run stopped (a crash, a shutdown) between this batch's commit and its start
            self._inbox.put(_outcome(t.id, attempt, Cancelled("the run stopped before this attempt started")))

    def _settled(self) -> bool:
        if self._active:
            return False
        if self._stopping or self._cancelled:
            return True
        if self._paused:
            return True  # nothing will start until a resume
        return not self._ready

    def _journal_refused(self, error: OSError) -> StoreError:
        err = StoreError(f"the journal {self.journal.path if self.journal else ''} refused a write ({error}); the run "
                         "stopped: no record after the last written one took effect, and attempts started meanwhile "
                         "were cancelled; free space (or fix the disk) and resume")
        err.__cause__ = error
        return err

    def _check_journal(self) -> None:
        """A batch the committer could not write stops the run, also when it is found only at the settling barrier
        (the `_CommitFailed` message behind it would never be read): a run never settles on refused records."""
        if self._committer is not None and (error := self._committer.error) is not None:
            raise self._journal_refused(error)

    def _finish_run(self) -> None:
        if self._idle.is_set():
            return
        counts = self.track.counts()
        if self._cancelled:
            status = TrackStatus.CANCELLED
        elif self._paused:
            status = TrackStatus.PAUSED
        elif all(t.status in (TicketStatus.DONE, TicketStatus.SKIPPED) for t in self.track.tickets):
            status = TrackStatus.DONE
        elif self._stopping and (self._ready or any(t.status == TicketStatus.INTERRUPTED for t in self.track.tickets)):
            status = TrackStatus.INTERRUPTED  # the app stopped mid-run: the next start offers to resume it
        else:
            status = TrackStatus.STALLED
        self._set_track(status)
        self._outbox.append(RunFinished(prov=self._prov(), status=status.value, counts=counts))

    def _handle(self, msg: EngineCommand | _WorkerDone | _Progress | _SpawnDecided | _CommitFailed) -> None:
        match msg:
            case _CommitFailed(error=error):
                raise self._journal_refused(error)
            case _WorkerDone():
                self._on_done(msg)
            case _Progress():
                if self._active.get(msg.ticket_id, (None,))[0] == msg.attempt:
                    self._set(self._by_id[msg.ticket_id], msg.status)
            case _SpawnDecided():
                self._on_spawn(msg)
            case (Pause() | Resume() | Cancel() | Shutdown() | Retry() | Skip() | CancelTicket() | Edit() | Snapshot()
                  | RevertTicket() | RewindTicket() | MergeIntoBase() | ReplaceConfig()):
                try:
                    self._command(msg)
                except (KeyError, ValueError, ConductorError) as exc:
                    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
                    self._post(ErrorRaised(prov=self._prov(), message=f"{command_name(msg)}: {text}",
                                           error_type=type(exc).__name__))
            case _:
                assert_never(msg)

    def _command(self, cmd: EngineCommand) -> None:
        match cmd:
            case Pause():
                self._cmd_pause()
            case Resume():
                self._cmd_resume()
            case Cancel():
                self._cmd_cancel()
            case Shutdown():
                self._cmd_shutdown()
            case Retry(ticket_id=tid):
                self._cmd_retry(tid)
            case Skip(ticket_id=tid):
                self._cmd_skip(tid)
            case CancelTicket(ticket_id=tid):
                self._cmd_cancel_ticket(tid)
            case Edit(ticket_id=tid, fields=fields):
                self._cmd_edit(tid, fields)
            case Snapshot(reply=reply):
                self._replies.append(reply)  # copied at the end of this batch, answered once it is written
            case RevertTicket(ticket_id=tid):
                self._cmd_revert(tid)
            case RewindTicket(ticket_id=tid, to_attempt=k):
                self._cmd_rewind(tid, k)
            case MergeIntoBase(plan=plan):
                self._cmd_merge_into_base(plan)
            case ReplaceConfig(cfg=cfg):
                self._replace_config(cfg)
            case _:
                assert_never(cmd)

    def _replace_config(self, cfg: Config) -> None:
        """New settings for what starts from now on: a running attempt holds its own Workbench (and so its own
        config) from launch to its end."""
        self.cfg = cfg
        self.deps = replace(self.deps, cfg=cfg, call=self.deps.call.with_(cfg=cfg))
        self._bench = Workbench(self.track.id, self.deps, self.journal)

    # -- dispatch --

    def _dispatch(self) -> None:
        if self._paused or self._cancelled:
            return
        while self._ready and len(self._launched) < self._max_workers:
            t = self._by_id[self._ready.first() or ""]
            attempt = t.attempts if (t.id in self._resumed and t.attempts > 0) else t.attempts + 1
            limit = t.attempt_limit or self.cfg.engine.max_attempts
            if attempt > limit:
                self._set(t, TicketStatus.FAILED, failed_reason=t.failed_reason or f"out of attempts ({limit})")
            elif (self.cfg.engine.step_mode or t.step_mode) and not self._spawn_approved(t, attempt):
                self._ask_spawn(t, attempt)
            else:
                self._launch(t, attempt)
        for tid in self._ready.take_new():  # the rest wait for a slot: say so (a launched one went straight on)
            t = self._by_id[tid]
            if t.status == TicketStatus.TODO:
                self._set(t, TicketStatus.READY)

    def _spawn_id(self, t: Ticket, attempt: int) -> str:
        return f"spawn-{self.track.id}-{t.id}-a{attempt}"

    def _spawn_approved(self, t: Ticket, attempt: int) -> bool:
        """Approved in this run, or journalled as approved before a restart (never asked twice)."""
        if (t.id, attempt) in self._spawn_ok:
            return True
        rec = self.journal.find(ApprovalDecided, self._spawn_id(t, attempt)) if self.journal else None
        return rec is not None and rec.approved

    def _ask_spawn(self, t: Ticket, attempt: int) -> None:
        model = self.cfg.model_for_attempt(attempt, t.model_override)
        prov = self._prov(t.id, attempt, tier=3)
        try:
            prompt, source, sizes = self._spawn_prompt(t, prov)
        except UserError as exc:  # the track branch cannot be read: say so on the ticket, never crash the run
            self._set(t, TicketStatus.BLOCKED, blocked_reason=f"{exc} (fix it, then retry)")
            return
        self._spawn_prompts[(t.id, attempt)] = prompt
        payload = SpawnPayload(ticket_id=t.id, attempt=attempt, model=model, system=prompts.TIER3_SYSTEM,
                               prompt=prompt, context_files=tuple(t.target_files), context_source=source,
                               context_chars=sizes)

        def check(edited: SpawnPayload) -> None:
            if edited.ticket_id != t.id or edited.attempt != attempt:
                raise ValueError("a spawn approval is bound to its ticket and attempt")
            if not edited.prompt.strip():
                raise ValueError("the prompt is empty")

        self._set(t, TicketStatus.AWAITING_APPROVAL)
        self._active[t.id] = (attempt, threading.Event())
        pending = self.deps.broker.request(prov, f"Start worker for {t.id}: {t.title}", payload,
                                           validator=check, request_id=self._spawn_id(t, attempt))
        pending.add_done_callback(lambda d: self._inbox.put(_SpawnDecided(t.id, attempt, d)))

    def _spawn_prompt(self, t: Ticket, prov: Provenance) -> tuple[str, str, dict[str, int]]:
        """The prompt a worker would start with, where its files were read, and each file's size as sent. With
        git the files come from the track branch (what the attempt's worktree will hold: its dependencies' work),
        never the person's checkout, whose uncommitted edits the worker would not see."""
        git = self.deps.git
        if git is None:
            ctx = self._bench.tool_ctx(prov, threading.Event())
            return worker_prompt(self.track, t, ctx), str(self.deps.workspace), _sizes(ctx, t.target_files)
        try:
            snapshot = git.context_snapshot(t.target_files)
            tip = git.tg.tip()
        except GitError as exc:
            raise UserError(f"cannot prepare the spawn approval of {t.id}: {exc}") from exc
        with snapshot as folder:
            ctx = self._bench.tool_ctx(prov, threading.Event(), workspace=Path(folder),
                                       protected=git.protected_for_context())
            return worker_prompt(self.track, t, ctx), f"{git.branch} at {tip[:12]}", _sizes(ctx, t.target_files)

    def _on_spawn(self, msg: _SpawnDecided) -> None:
        if self._active.get(msg.ticket_id, (None,))[0] != msg.attempt:
            return
        del self._active[msg.ticket_id]
        t = self._by_id[msg.ticket_id]
        d = msg.decision
        if not d.approved:
            if self._stopping:
                self._set(t, TicketStatus.INTERRUPTED, blocked_reason=None, reason="the app stopped")
            elif self._cancelled or d.by == DecidedBy.CANCELLED:
                self._set(t, TicketStatus.CANCELLED, blocked_reason=None)
            else:
                self._set(t, TicketStatus.BLOCKED, blocked_reason=f"spawn rejected: {d.reason}")
            return
        if d.edited and isinstance(d.payload, SpawnPayload):  # the broker keeps an edit to its request's kind
            fields: dict[str, Any] = {}
            generated = self._spawn_prompts.pop((t.id, msg.attempt), None)
            if generated is None:  # asked before a restart: the same prompt, built the same way
                try:
                    generated = self._spawn_prompt(t, self._prov(t.id, msg.attempt, tier=3))[0]
                except UserError:
                    generated = None  # unreadable now: the approved prompt is kept as the person's
            if d.payload.prompt != generated:
                fields["spawn_prompt"] = d.payload.prompt
            if d.payload.model:
                fields["model_override"] = d.payload.model
            self._update(t, **fields)
        self._spawn_ok.add((t.id, msg.attempt))
        self._set(t, TicketStatus.READY)

    def _launch(self, t: Ticket, attempt: int) -> None:
        model = self.cfg.model_for_attempt(attempt, t.model_override)
        cancel = threading.Event()
        self._active[t.id] = (attempt, cancel)
        self._launched.add(t.id)
        self._resumed.discard(t.id)
        self._set(t, TicketStatus.RUNNING, attempts=attempt, model_used=model)  # clears continues_attempt
        self._starts[t.id] = time.monotonic()
        snapshot = t.model_copy()  # shallow is enough: records replace fields, never mutate them in place
        resolve = self._resolve.pop(t.id, None)
        # starts once the batch is written (see _Committer), with the config (in the Workbench) this launch chose
        # its model from
        self._launches.append((snapshot, attempt, model, cancel, resolve, self._bench))

    # -- worker thread --

    def _worker_job(self, t: Ticket, attempt: int, model: str, cancel: threading.Event, resolve: str | None,
                    bench: Workbench, fence: JournalFence | None = None) -> None:
        try:
            with fenced(fence):
                res: AttemptResult | BaseException = run_attempt(
                    bench, self.track, t, model, prov=self._prov(t.id, attempt, tier=3), cancel=cancel,
                    on_review=lambda: self._inbox.put(_Progress(t.id, attempt, TicketStatus.REVIEW)),
                    resolve_from=resolve)
        except BaseException as exc:  # noqa: BLE001 — reported to the engine, which decides; never lost in the pool
            res = exc
        self._inbox.put(_outcome(t.id, attempt, res))

    # -- results --

    def _on_done(self, msg: _WorkerDone) -> None:
        if self._active.get(msg.ticket_id, (None,))[0] != msg.attempt:
            return  # a late result from a cancelled attempt
        del self._active[msg.ticket_id]
        self._launched.discard(msg.ticket_id)
        start = self._starts.pop(msg.ticket_id, time.monotonic())
        self.dispatch_log.append((msg.ticket_id, start, time.monotonic()))
        t = self._by_id[msg.ticket_id]
        limit = t.attempt_limit or self.cfg.engine.max_attempts
        if msg.outcome == "pass":
            if msg.commit is not None and self.deps.git is not None and not self._merge(t, msg.attempt, msg.commit):
                return
            self._set(t, TicketStatus.DONE, failed_reason=None, blocked_reason=None)
            return
        if msg.outcome == "fail":
            self._attempt_failed(t, msg.attempt, limit, f"review failed: {msg.hint}", hint=msg.hint)
            return
        exc = msg.error
        if self._stopping and isinstance(exc, ConductorError):
            self._resumed.add(t.id)
            self._set(t, TicketStatus.INTERRUPTED, reason="the app stopped; the attempt continues on resume")
        elif isinstance(exc, Cancelled) or (self._cancelled and isinstance(exc, ConductorError)):
            self._set(t, TicketStatus.CANCELLED)
        elif isinstance(exc, (BudgetExceeded, QuotaExhausted)):
            # Not the ticket's fault: the same attempt continues after a resume, also by a new engine (--resume)
            self._set(t, TicketStatus.INTERRUPTED, reason=f"paused ({type(exc).__name__}); the attempt continues "
                                                          "on resume")
            self._paused = True
            self._set_track(TrackStatus.PAUSED)
            self._post(ErrorRaised(prov=self._prov(t.id, msg.attempt), message=f"paused: {exc}",
                                   error_type=type(exc).__name__))
        elif isinstance(exc, SafetyBlocked):
            self._set(t, TicketStatus.BLOCKED, blocked_reason=f"safety: {exc} (a human must edit, retry or skip)")
        elif isinstance(exc, OSError):  # the disk (journal, outputs) failed under the worker: not the ticket's fault
            raise StoreError(f"ticket {t.id}, attempt {msg.attempt}: a write failed ({exc}); the run stopped and "
                             "the attempt continues on resume; free space (or fix the disk) and resume") from exc
        elif isinstance(exc, BadRequest):
            self._set(t, TicketStatus.FAILED, failed_reason=f"{type(exc).__name__}: {exc}")
        elif isinstance(exc, (ProviderError, PlanInvalid)):
            self._attempt_failed(t, msg.attempt, limit, f"{type(exc).__name__}: {exc}")
        else:
            detail = "".join(traceback.format_exception(exc)) if exc else "unknown"
            self._post(ErrorRaised(prov=self._prov(t.id, msg.attempt), message=f"worker error: {exc!r}\n{detail}",
                                   error_type=type(exc).__name__))
            self._attempt_failed(t, msg.attempt, limit, f"internal error: {exc!r}")

    def _attempt_failed(self, t: Ticket, attempt: int, limit: int, reason: str, hint: str | None = None) -> None:
        if attempt < limit:
            self._set(t, TicketStatus.READY, last_hint=hint if hint is not None else t.last_hint,
                      failed_reason=reason, reason=f"attempt {attempt} of {limit} failed: {reason}; retrying")
        else:
            self._set(t, TicketStatus.FAILED, failed_reason=f"{reason} (after {attempt} attempts)",
                      last_hint=hint if hint is not None else t.last_hint)

    # -- commands --

    def _cmd_pause(self) -> None:
        self._paused = True
        self._set_track(TrackStatus.PAUSED)

    def _cmd_resume(self) -> None:
        self._paused = False
        self._cancelled = False
        self._idle.clear()
        for t in self.track.tickets:  # cancelled attempts continue where their journal left off
            if t.status in (TicketStatus.CANCELLED, TicketStatus.INTERRUPTED) and t.id not in self._active:
                self._resumed.add(t.id)
                self._set(t, TicketStatus.READY, reason="resumed", continues_attempt=t.attempts > 0)
        self._set_track(TrackStatus.RUNNING)

    def _cmd_cancel(self) -> None:
        self._cancelled = True
        self._stop_workers("cancelled by the user")

    def _cmd_shutdown(self) -> None:
        self._stopping = True
        self._stop_workers("the app is shutting down")

    def _cmd_cancel_ticket(self, ticket_id: str) -> None:
        if ticket_id not in self._active:
            raise UserError(f"ticket {ticket_id!r} is not running")
        self._active[ticket_id][1].set()
        self.deps.broker.cancel_where(lambda r: r.prov.track_id == self.track.id and r.prov.ticket_id == ticket_id,
                                      "ticket cancelled")

    def _cmd_retry(self, ticket_id: str) -> None:
        t = self._idle_ticket(ticket_id, {TicketStatus.FAILED, TicketStatus.BLOCKED, TicketStatus.CANCELLED,
                                          TicketStatus.SKIPPED, TicketStatus.NEEDS_MERGE})
        self._set(t, TicketStatus.TODO, failed_reason=None, blocked_reason=None, reason="retry requested",
                  attempt_limit=t.attempts + self.cfg.engine.max_attempts)
        self._resume_after_user_action()

    def _cmd_skip(self, ticket_id: str) -> None:
        t = self._idle_ticket(ticket_id, set(TicketStatus) - ACTIVE_STATUSES - {TicketStatus.DONE})
        self._set(t, TicketStatus.SKIPPED, reason="skipped by the user")
        self._resume_after_user_action()

    def _cmd_edit(self, ticket_id: str, fields: dict[str, Any]) -> None:
        self._idle_ticket(ticket_id, set(TicketStatus) - ACTIVE_STATUSES)  # refuses a ticket in flight
        bad = set(fields) - EDITABLE_FIELDS
        if bad:
            raise UserError(f"cannot edit {sorted(bad)} of ticket {ticket_id!r}; editable: {sorted(EDITABLE_FIELDS)}")
        trial = [x.model_copy(update=fields) if x.id == ticket_id else x for x in self.track.tickets]
        dag.ensure_valid(trial)
        self._commit(ticket_update(ticket_id, reason="edited by the user", **fields))
        if "depends_on" in fields:
            self._index()

    # -- the person's git actions: one at a time with the merges, on this thread, journalled as records --

    def _git_or_refuse(self, what: str) -> GitWork:
        if self.deps.git is None:
            raise UserError(f"{what} needs the workspace to be a git repository (this track runs without git)")
        return self.deps.git

    def _cmd_revert(self, ticket_id: str) -> None:
        git = self._git_or_refuse(f"reverting {ticket_id}")
        t = self._idle_ticket(ticket_id, {TicketStatus.DONE})
        reverted = self._revert(git, t)
        why = f"reverted by you: revert commit {reverted.commit[:12]} on {git.branch}; retry runs the ticket again"
        self._set(t, TicketStatus.SKIPPED, reason=why, blocked_reason=why)

    def _revert(self, git: GitWork, t: Ticket) -> Reverted:
        """Revert the ticket's newest merge; a refusal (conflicts, a moving branch) names why, changing nothing."""
        try:
            result = git.revert(t.id)
        except GitError as exc:
            raise UserError(f"cannot revert {t.id}: {exc}") from exc
        match result:
            case Reverted():
                if not result.already:
                    self._commit(GitTicketReverted(key=result.key, ticket_id=t.id, commit=result.commit,
                                                   reverted_merge=result.reverted_merge))
                return result
            case RevertConflicts(files=files):
                raise UserError(f"cannot revert {t.id}: later tickets changed the same lines in "
                                f"{', '.join(files)}; nothing was changed (revert those tickets first)")
            case TrackMoved():
                raise UserError(f"cannot revert {t.id}: {git.branch} moved while the revert was written; try again")
            case _:
                assert_never(result)

    def _cmd_rewind(self, ticket_id: str, to_attempt: int) -> None:
        git = self._git_or_refuse(f"rewinding {ticket_id}")
        t = self._idle_ticket(ticket_id, set(TicketStatus) - ACTIVE_STATUSES - {TicketStatus.TODO,
                                                                                TicketStatus.READY})
        key = AttemptKey(self.track.id, t.id, to_attempt)
        commit = git.attempt_commit(t.id, to_attempt)
        if commit is None:
            raise UserError(f"cannot rewind {t.id}: attempt {to_attempt} made no commit")
        try:
            earlier = git.tg.find_merge(key)
        except GitError as exc:
            raise UserError(f"cannot rewind {t.id}: {exc}") from exc
        if earlier is not None:  # merged before: it is the ticket's work now, or it was reverted since
            raise UserError(f"cannot rewind {t.id} to attempt {to_attempt}: that attempt was merged before (commit "
                            f"{earlier.sha[:12]}); it is on {git.branch} already or was reverted: retry instead")
        reverted = self._revert(git, t).commit if t.status == TicketStatus.DONE else None
        if self._merge(t, to_attempt, commit):
            self._commit(GitTicketRewound(key=key.text, ticket_id=t.id, to_attempt=to_attempt, ticket_commit=commit,
                                          reverted=reverted))
            self._set(t, TicketStatus.DONE, failed_reason=None, blocked_reason=None,
                      reason=f"rewound by you to attempt {to_attempt} (commit {commit[:12]})")
        self._resume_after_user_action()

    def _cmd_merge_into_base(self, plan: BaseMergePlan) -> None:
        git = self._git_or_refuse("merging into the base branch")
        if self._active:
            raise UserError(f"tickets {', '.join(sorted(self._active))} are running; merge into the base when the "
                            "track has finished")
        try:
            result = git.merge_into_base(plan)
        except GitError as exc:
            raise UserError(f"merge into {plan.base_branch}: {exc}") from exc
        match result:
            case BaseMerged():
                self._commit(GitBaseMerged(key=f"{result.base_branch}@{result.track_tip}",
                                           base_branch=result.base_branch, commit=result.commit,
                                           track_tip=result.track_tip, files=list(result.files)))
                self._post(Notice(prov=self._prov(), message=(
                    f"{git.branch} merged into {result.base_branch} ({len(result.files)} files; commit "
                    f"{result.commit[:12]}), as you asked")))
            case BaseMergeRefused(reason=reason):
                raise UserError(f"not merged into the base: {reason}")
            case _:
                assert_never(result)

    def _idle_ticket(self, ticket_id: str, allowed: set[TicketStatus]) -> Ticket:
        t = self._by_id.get(ticket_id)
        if t is None:
            raise UserError(f"track {self.track.id!r} has no ticket {ticket_id!r}")
        if t.id in self._active or t.status not in allowed:
            raise UserError(f"ticket {ticket_id!r} is {t.status.value}; this needs one of "
                             f"{sorted(s.value for s in allowed)}")
        return t

    def _resume_after_user_action(self) -> None:
        """Retry/skip on a settled run: un-block cascaded tickets and run again."""
        self._cancelled = False
        self._idle.clear()
        if self.track.status in (TrackStatus.DONE, TrackStatus.STALLED, TrackStatus.CANCELLED):
            self._set_track(TrackStatus.PAUSED if self._paused else TrackStatus.RUNNING)

    def _stop_workers(self, reason: str) -> None:
        for _, cancel in self._active.values():
            cancel.set()
        self.deps.broker.cancel_where(lambda r: r.prov.track_id == self.track.id, reason)

    # -- cascade --

    def _unblock_and_cascade(self) -> None:
        """Run only after something failed, was blocked, retried, skipped or edited (not per message)."""
        self._cascade_due = False
        # Tickets blocked only because of a dependency come back when that dependency is no longer blocking.
        blocking = {t.id for t in self.track.tickets if t.status in (TicketStatus.FAILED, TicketStatus.BLOCKED)}
        for t in self.track.tickets:
            if t.status == TicketStatus.BLOCKED and (t.blocked_reason or "").startswith("dependency ") \
                    and not any(d in blocking for d in t.depends_on):
                self._set(t, TicketStatus.TODO, blocked_reason=None, reason="dependency no longer blocking")
        for tid, why in dag.blocking_cascade(self.track.tickets).items():
            self._set(self._by_id[tid], TicketStatus.BLOCKED, blocked_reason=why)

    # -- state changes: journal, then publish --

    def _prov(self, ticket_id: str | None = None, attempt: int = 0, tier: int | None = None) -> Provenance:
        return Provenance(trace_id=self.trace_id, track_id=self.track.id, ticket_id=ticket_id, tier=tier,
                          attempt=attempt)

    def _commit(self, rec: Record) -> None:
        """Apply a record to the engine's own track, journal it (synced with its batch), queue it to publish."""
        apply(self.track, rec)
        self._dirty = True
        self._outbox.append(rec)  # journalled with its batch in _flush, before anyone hears of it

    def _rec_prov(self, rec: Record) -> Provenance:
        if isinstance(rec, TicketUpdated):
            t = self._by_id.get(rec.ticket_id)
            return self._prov(rec.ticket_id, t.attempts if t is not None else 0, tier=3)
        return self._prov()

    def _update(self, t: Ticket, **fields: Any) -> None:
        if fields:
            self._commit(trusted_ticket_update(t.id, None, fields))

    def _set(self, t: Ticket, status: TicketStatus, reason: str | None = None, **fields: Any) -> None:
        old = t.status
        if t.continues_attempt and status != TicketStatus.READY and "continues_attempt" not in fields:
            fields["continues_attempt"] = False  # it left the queue another way (launched, skipped, cancelled)
        why = reason or fields.get("failed_reason") or fields.get("blocked_reason")
        self._commit(trusted_ticket_update(t.id, why, {"status": status, **fields}))
        self._ready.update(t.id, status)
        if status in (TicketStatus.FAILED, TicketStatus.BLOCKED, TicketStatus.SKIPPED) \
                or old in (TicketStatus.FAILED, TicketStatus.BLOCKED, TicketStatus.SKIPPED):
            self._cascade_due = True

    def _set_track(self, status: TrackStatus) -> None:
        if self.track.status != status:
            self._commit(track_update(status=status))

    def _post(self, event: Event) -> None:
        self._outbox.append(event)

    def _maybe_snapshot(self) -> None:
        """A snapshot only shortens replay, so take one after enough records (written in the background), not
        per message: serialising a 1,000-ticket track costs more than replaying a thousand records."""
        self._since_snapshot += sum(1 for x in self._outbox if not isinstance(x, Event))
        store = self.deps.store
        # Serialising costs in proportion to the track, replaying the tail too: snapshot every few records per
        # ticket, so a 5,000-ticket track is not dumped (~1 s of CPU each time) every 2,000 records.
        every = max(SNAPSHOT_EVERY, SNAPSHOT_RECORDS_PER_TICKET * len(self.track.tickets))
        if store is None or self.journal is None or self._since_snapshot < every:
            return
        self._since_snapshot = 0
        data = self.track.model_dump(mode="json", exclude_none=True)  # the state with this batch's records
        self._after.append(lambda seq: store.save_snapshot_data_later(self.track.id, {**data, "journal_seq": seq}))

    def _snapshot(self, force: bool = False) -> None:
        if self.deps.store is None or not (self._dirty or force):
            return
        if self._committer is not None and self._committer.failed:
            return  # the state is ahead of a journal that refused writes: the journal stays the truth
        if self._outbox or self._launches or self._after:
            self._flush()  # the snapshot must not include a record its journal does not have yet
        if self._committer is not None:
            self._committer.barrier()
            if self._committer.failed:
                return  # refused at the barrier: no snapshot ahead of the journal (the caller stops the run)
        if self.journal is not None:
            self.track.journal_seq = self.journal.last_seq
        self.deps.store.save_snapshot_later(self.track)  # written by the store's thread; close() waits for it
        self._dirty = False

__all__ = [
    "EDITABLE_FIELDS",
    "Cancel",
    "CancelTicket",
    "Edit",
    "Engine",
    "EngineCommand",
    "EngineDeps",
    "MergeIntoBase",
    "Pause",
    "ReplaceConfig",
    "Resume",
    "Retry",
    "RevertTicket",
    "RewindTicket",
    "Shutdown",
    "Skip",
    "Snapshot",
]
