"""One ticket attempt, on a worker thread: the Tier 3 worker, then the Tier 4 review.

An attempt works on a snapshot of its ticket and never touches the engine's state; it reports back only
through the callbacks the engine gives it. The `Workbench` builds the per-ticket plumbing an attempt (and a
spawn approval) needs: the output file sinks, the tool context, the approval gate.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, assert_never

from conductor.approvals import ApprovalBroker
from conductor.checks import run_check
from conductor.config import Config
from conductor.events import Notice, Provenance, StreamDelta
from conductor.git import AttemptWorktree, Committed, GitError, HookRejected, KeptDirty, NoChanges
from conductor.git_events import CheckRan
from conductor.gitwork import GitWork, attempt_started
from conductor.model import Ticket, Track
from conductor.records import GitAttemptCommitted
from conductor.store import Journal, TrackStore
from conductor.tiers.call import CallDeps
from conductor.tiers.reviewer import review_ticket
from conductor.tiers.worker import run_worker
from conductor.tools.base import Toolbox, ToolContext
from conductor.tools.gate import AllowPolicy, ToolGate

if TYPE_CHECKING:
    from conductor.distributed.api import RemoteAttempts


@dataclass
class EngineDeps:
    cfg: Config
    call: CallDeps
    broker: ApprovalBroker
    workspace: Path
    toolbox: Toolbox
    store: TrackStore | None = None
    allow: AllowPolicy | None = None
    comms_for: Callable[[str], Any] | None = None
    """track id → comms log (or None)."""
    protected: tuple[Path, ...] = ()
    git: GitWork | None = None
    """The track's git (a worktree per attempt, merges by the engine); None: work in `workspace` itself."""
    max_workers: int | None = None
    """Overrides the configured worker count (1 when the workspace is a shared tree without git)."""
    check_command: str | None = None
    """Overrides `[git] check_command` for this workspace (the demo's own project); None: the config's."""
    path_first: tuple[str, ...] = ()
    """Folders commands search before PATH in this session (ToolContext.path_first)."""

    def checks(self) -> str:
        """The command QA runs in each ticket's tree ('' when none)."""
        return (self.check_command if self.check_command is not None else self.cfg.git.check_command).strip()
    remote: RemoteAttempts | None = None
    """With a broker configured (and git): attempts run on `conductor worker` processes instead of local threads."""


class Workbench:
    """Per-track factory for what an attempt uses; safe to call from any thread."""

    def __init__(self, track_id: str, deps: EngineDeps, journal: Journal | None) -> None:
        self.track_id = track_id
        self.deps = deps
        self.journal = journal

    def comms(self) -> Any:
        return self.deps.comms_for(self.track_id) if self.deps.comms_for else None

    def call_deps(self, ticket_id: str, *, tier: int, attempt: int) -> CallDeps:
        """Call plumbing whose streamed text goes to the ticket's output file, under an attempt header."""
        store, sink = self.deps.store, None
        if store is not None:
            path = store.ticket_output(self.track_id, ticket_id, tier)
            store.append_output(path, f"\n\n## attempt {attempt} · {time.strftime('%H:%M:%S')}\n\n")
            sink = lambda text, p=path: store.append_output(p, text)
        return self.deps.call.with_(journal=self.journal, sink=sink, comms=self.comms())

    def tool_ctx(self, prov: Provenance, cancel: threading.Event, *, workspace: Path | None = None,
                 protected: tuple[Path, ...] | None = None) -> ToolContext:
        """Tools rooted at `workspace` (an attempt's worktree) or else the track's workspace."""
        spill = None
        if self.deps.store is not None and prov.ticket_id:
            spill = self.deps.store.ticket_dir(self.track_id, prov.ticket_id) / f"a{prov.attempt}.cmd.log"
        return ToolContext(workspace=workspace or self.deps.workspace, prov=prov, cancel=cancel, spill_path=spill,
                           protected=self.deps.protected if protected is None else protected,
                           path_first=self.deps.path_first)

    def gate(self) -> ToolGate:
        return ToolGate(self.deps.toolbox, self.deps.broker, self.journal, allow=self.deps.allow,
                        approval_timeout_s=self.deps.cfg.approvals.timeout_s or None, comms=self.comms())

    def qa_pane(self, ticket_id: str, prov: Provenance | None = None) -> Callable[[str], None]:
        """Appends text to the ticket's QA output file and, given the QA provenance, to its live Tier 4 pane."""
        store, events = self.deps.store, self.deps.call.events
        path = store.ticket_output(self.track_id, ticket_id, 4) if store is not None else None

        def show(text: str) -> None:
            if store is not None and path is not None:
                store.append_output(path, text)
            if prov is not None:
                events.post(StreamDelta(prov=prov, stream_id=prov.stream_id, text=text))
        return show

    def raw_dir(self) -> Path:
        """Where a tier's unparseable answers are kept."""
        if self.deps.store is not None:
            return self.deps.store.track_dir(self.track_id) / "outputs"
        return Path(tempfile.gettempdir())


@dataclass(frozen=True)
class AttemptResult:
    hint: str | None
    """None: QA passed; else why it failed (the hint for the next attempt)."""
    commit: str | None = None
    """With git: the attempt's commit, for the engine to merge (None: the attempt changed nothing)."""


def run_attempt(bench: Workbench, track: Track, ticket: Ticket, model: str, *, prov: Provenance,
                cancel: threading.Event, on_review: Callable[[], None],
                resolve_from: str | None = None) -> AttemptResult:
    """Worker, then review; with git, in the attempt's own worktree, committed once between the two.
    Raises what the tiers raise."""
    git = bench.deps.git
    if git is None:
        return AttemptResult(_work_and_review(bench, track, ticket, model, bench.tool_ctx(prov, cancel), prov=prov,
                                              cancel=cancel, on_review=on_review))
    return _run_in_worktree(bench, git, track, ticket, model, prov=prov, cancel=cancel, on_review=on_review,
                            resolve_from=resolve_from)


def _work_and_review(bench: Workbench, track: Track, ticket: Ticket, model: str, ctx: ToolContext, *,
                     prov: Provenance, cancel: threading.Event, on_review: Callable[[], None]) -> str | None:
    report = run_worker(track, ticket, model, bench.call_deps(ticket.id, tier=3, attempt=prov.attempt),
                        bench.gate(), ctx, prov=prov, cancel=cancel, journal=bench.journal)
    on_review()
    return _review(bench, ticket, report.text, report.actions, ctx, prov=prov, cancel=cancel)


def _review(bench: Workbench, ticket: Ticket, text: str, actions: list[str], ctx: ToolContext, *,
            prov: Provenance, cancel: threading.Event) -> str | None:
    """Tier 4: the workspace's checks first (in the tree the worker changed), then the review."""
    deps = bench.call_deps(ticket.id, tier=4, attempt=prov.attempt)  # writes the attempt header to the QA pane
    if command := bench.deps.checks():
        qa = prov.with_(tier=4)  # the output streams live into the ticket's QA pane, and into its output file
        check = run_check(bench.gate(), replace(ctx, prov=qa), command, bench.deps.cfg.git.check_timeout_s,
                          show=bench.qa_pane(ticket.id, qa))
        bench.deps.call.events.post(CheckRan(prov=qa, command=check.command, ran=check.ran,
                                             passed=check.passed, exit_code=check.exit_code))
        if check.ran and not check.passed:
            return check.hint()
        text += check.for_review()
    review = review_ticket(ticket, text, actions, deps, prov=prov, cancel=cancel, raw_dir=bench.raw_dir())
    return None if review.verdict == "pass" else (review.hint or "QA failed the ticket without a hint")


def _run_in_worktree(bench: Workbench, git: GitWork, track: Track, ticket: Ticket, model: str, *, prov: Provenance,
                     cancel: threading.Event, on_review: Callable[[], None], resolve_from: str | None) -> AttemptResult:
    wt = git.begin(ticket.id, prov.attempt, start_point=resolve_from)
    if bench.journal is not None:  # journalled before anything works in it: reconcile finds it after a kill
        bench.journal.append(attempt_started(ticket.id, prov.attempt, wt))
    settled = False
    """The worker's work is committed (or it made none): what is left in the tree came from the checks."""
    try:
        ctx = bench.tool_ctx(prov, cancel, workspace=wt.workspace, protected=git.protected(wt))
        commit = git.attempt_commit(ticket.id, prov.attempt)
        if commit is not None:  # committed before a restart: its work is in the commit, never redone
            settled = True
            on_review()
            text = f"(resumed) The attempt's work was committed before a restart as {commit[:12]}."
            return AttemptResult(_review(bench, ticket, text, [], ctx, prov=prov, cancel=cancel), commit)
        if resolve_from is not None and not wt.resumed:
            res = git.begin_resolution(wt)
            ticket = ticket.model_copy(update={"last_hint": (
                f"Your work merged with the track branch ({res.track_tip[:12]}) conflicts in: {', '.join(res.files)}. "
                "Those files hold git conflict markers (<<<<<<< ======= >>>>>>>): edit them so both changes are "
                "kept and no marker remains.")})
        report = run_worker(track, ticket, model, bench.call_deps(ticket.id, tier=3, attempt=prov.attempt),
                            bench.gate(), ctx, prov=prov, cancel=cancel, journal=bench.journal)
        result = git.commit(wt, model=model, title=ticket.title)
        match result:
            case Committed(sha=sha, files=files):
                commit = sha
                if bench.journal is not None:
                    bench.journal.append(GitAttemptCommitted(key=wt.key.text, ticket_id=ticket.id,
                                                             attempt=prov.attempt, sha=sha, files=list(files)))
            case NoChanges():
                commit = None
            case HookRejected(output=output):  # the tree keeps the uncommitted work: released as dirty (kept)
                return AttemptResult(f"a commit hook refused the attempt's commit:\n{output[-2000:]}")
            case _:
                assert_never(result)
        settled = True
        on_review()
        return AttemptResult(_review(bench, ticket, report.text, report.actions, ctx, prov=prov, cancel=cancel), commit)
    finally:
        # once the work is committed, whatever the checks left (caches, reports) is not work: force it away
        _release(bench, git, wt, prov, force=settled and bool(bench.deps.checks()))


def _release(bench: Workbench, git: GitWork, wt: AttemptWorktree, prov: Provenance, *, force: bool) -> None:
    try:
        gone = git.release(wt, force=force)
    except GitError as exc:
        bench.deps.call.events.post(Notice(prov=prov, level="warning",
                                           message=f"the worktree {wt.path} was not released: {exc}"))
        return
    if isinstance(gone, KeptDirty):
        bench.deps.call.events.post(Notice(prov=prov, level="warning", message=(
            f"the worktree {wt.path} has uncommitted changes ({', '.join(gone.changes[:5])}); it is kept")))
