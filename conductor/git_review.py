"""What the person asks of a track's git outside a run's own steps, done off the GUI thread: diffs (a ticket's
commit, the track's changes so far), the plan of a merge into the base branch, the finished track's summary, a
tool approval's preview recomputed after an edit, and `git init` of a plain folder (only when the person said
yes). Each answer is a typed event on the one event queue (conductor/git_events.py); nothing here touches the
GUI, and nothing here moves a branch: reverts, rewinds and the merge into base are engine commands.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from conductor.approval_payloads import FileChangePreview
from conductor.errors import ConductorError
from conductor.events import Event, Provenance
from conductor.git import GitError, init_repository
from conductor.git.repo import files_to_commit
from conductor.git_events import (
    BaseMergePlanned,
    DiffReady,
    DiffSubject,
    GitInitOffered,
    GitSummaryReady,
    TicketDiffOf,
    ToolPreviewReady,
    TrackDiffOf,
)
from conductor.gitwork import GitWork, NoGit, attempt_commits, journalled_base, open_git_work
from conductor.records import GitTrackStarted
from conductor.tools.previews import PREVIEWS


class GitReview:
    """Background git work for one session. `post` is the session's event queue."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def _post(self, ev: Event) -> None:
        self.session.events.post(ev)

    def _submit(self, fn: Callable[[], None]) -> None:
        """On a session thread (joined by the session's shutdown). Answers may overtake each other: each carries
        what it answers (a subject, a revision), and the view-model keeps only the one it still waits for."""
        self.session.in_background("git review", fn)

    def close(self) -> None:
        """Nothing of its own to stop: its threads are the session's."""

    # -- the track's git, whether or not its engine runs --

    def git_for(self, track_id: str) -> GitWork | NoGit:
        eng = self.session.engines.get(track_id)
        if eng is not None and eng.alive and eng.deps.git is not None:
            git: GitWork = eng.deps.git
            return git
        found = open_git_work(self.session.workspace, track_id, self.session.cfg.git, self.session.store.root)
        if isinstance(found, NoGit):
            return found
        base = journalled_base(self.session.store.journal(track_id).records())
        if base is None:
            return NoGit(f"track {track_id!r} has no track branch yet (it has not run)")
        found.set_base(base)
        return found

    # -- diffs --

    def request_diff(self, track_id: str, subject: DiffSubject) -> None:
        self._submit(lambda: self._post(self._diff(track_id, subject)))

    def _diff(self, track_id: str, subject: DiffSubject) -> DiffReady:
        prov = Provenance(track_id=track_id)
        title = "changes so far" if isinstance(subject, TrackDiffOf) else f"ticket {subject.ticket_id}"
        try:
            git = self.git_for(track_id)
            if isinstance(git, NoGit):
                return DiffReady(prov=prov, subject=subject, title=title, error=git.reason)
            match subject:
                case TrackDiffOf():
                    tb = git.tg.base_sha or ""
                    return DiffReady(prov=prov, subject=subject, diff=git.track_diff(),
                                     title=f"{git.branch}: changes so far against its base {tb[:12]}")
                case TicketDiffOf(ticket_id=tid, attempt=n):
                    commits = attempt_commits(self.session.store.journal(track_id).records(), tid)
                    attempts = tuple(c.attempt for c in commits)
                    chosen = [c for c in commits if n is None or c.attempt == n]
                    if not chosen:
                        why = (f"attempt {n} of {tid} made no commit" if n is not None else
                               f"{tid} has no committed attempt yet (nothing to show)")
                        return DiffReady(prov=prov, subject=subject, title=title, error=why, attempts=attempts)
                    c = chosen[-1]
                    state = "merged" if c.merged and not c.reverted else "reverted" if c.reverted else "not merged"
                    return DiffReady(prov=prov, subject=subject, diff=git.ticket_diff(c.sha, c.base_sha),
                                     attempts=attempts, title=(f"ticket {tid}, attempt {c.attempt} ({state}): commit "
                                                               f"{c.sha[:12]} against {c.base_sha[:12]}"))
        except (ConductorError, OSError, ValueError) as exc:
            return DiffReady(prov=prov, subject=subject, title=title, error=f"no diff: {exc}")

    # -- merge into base: the plan the person reads before saying yes --

    def plan_base_merge(self, track_id: str) -> None:
        self._submit(lambda: self._post(self._plan(track_id)))

    def _plan(self, track_id: str) -> BaseMergePlanned:
        prov = Provenance(track_id=track_id)
        try:
            git = self.git_for(track_id)
            if isinstance(git, NoGit):
                return BaseMergePlanned(prov=prov, error=git.reason)
            base_ref = "HEAD"
            for rec in self.session.store.journal(track_id).records():
                if isinstance(rec, GitTrackStarted):
                    base_ref = rec.base_ref
            return BaseMergePlanned(prov=prov, plan=git.plan_base_merge(base_ref))
        except (ConductorError, OSError, ValueError) as exc:
            return BaseMergePlanned(prov=prov, error=f"cannot plan the merge into the base: {exc}")

    # -- the finished track --

    def summarise(self, track_id: str) -> None:
        self._submit(lambda: self._post(self._summary(track_id)))

    def _summary(self, track_id: str) -> GitSummaryReady:
        prov = Provenance(track_id=track_id)
        try:
            git = self.git_for(track_id)
            if isinstance(git, NoGit):
                return GitSummaryReady(prov=prov, error=git.reason)
            return GitSummaryReady(prov=prov, summary=git.summary())
        except (ConductorError, OSError, ValueError) as exc:
            return GitSummaryReady(prov=prov, error=str(exc))

    # -- a tool approval's preview, again, for edited arguments --

    def preview_tool(self, request_id: str, args: dict[str, Any], revision: int) -> None:
        self._submit(lambda: self._post(self._preview(request_id, args, revision)))

    def _preview(self, request_id: str, args: dict[str, Any], revision: int) -> ToolPreviewReady:
        found = PREVIEWS.get(request_id)
        if found is None:
            return ToolPreviewReady(request_id=request_id, revision=revision,
                                    error="this approval can no longer be previewed (it was decided or withdrawn)")
        tool, ctx = found
        try:
            preview = tool.preview(dict(args), ctx)
        except Exception as exc:  # noqa: BLE001 — an edit the tool refuses is shown to the person, never raised
            return ToolPreviewReady(prov=ctx.prov, request_id=request_id, revision=revision,
                                    error=f"{type(exc).__name__}: {exc}")
        return ToolPreviewReady(prov=ctx.prov, request_id=request_id, revision=revision,
                                diff=preview.diff if isinstance(preview, FileChangePreview) else "")

    # -- git init, asked --

    def offer_init(self, track_id: str, reason: str) -> None:
        """Count what a first commit would hold, then ask the person (a GitInitOffered event)."""
        ws: Path = self.session.workspace

        def work() -> None:
            try:
                n = len(files_to_commit(ws))
            except (GitError, OSError) as exc:
                n = -1
                reason_ = f"{reason} (the files could not be counted: {exc})"
            else:
                reason_ = reason
            self._post(GitInitOffered(prov=Provenance(track_id=track_id), workspace=str(ws), files=n,
                                      reason=reason_))
        self._submit(work)

    def init_and_run(self, track_id: str | None) -> None:
        """The person said yes: `git init` and commit what the folder holds, then run the track."""
        ws: Path = self.session.workspace

        def work() -> None:
            init_repository(ws)
            if track_id is not None:
                self.session.run_track(track_id)
        self.session.in_background(f"initialise a git repository in {ws}", work)
