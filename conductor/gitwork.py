"""The run's side of git: one `GitWork` per track wires conductor/git into the engine and the attempts.

Who calls what (the threads never share a live object but this one, whose git calls are thread-safe):
  * the engine thread, on start: `start_track` (reconcile with the journalled attempts, then the track branch);
  * a worker thread, per attempt: `begin` (the attempt's worktree, from the track tip), `protected`, `commit`,
    `release` — each journalled by the attempt before what follows uses it;
  * the engine thread, after QA passed: `merge`, one at a time (the only place the track branch moves).

A workspace that is not a repository gets no GitWork (`open_git_work` returns the reason instead): the run then
works in the workspace itself with one worker, since parallel workers in one shared tree overwrite each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from conductor.config import GitConfig
from conductor.git import (
    AttemptKey,
    AttemptWorktree,
    BranchNaming,
    CommitResult,
    GitError,
    GitSettings,
    JournalledAttempt,
    MergeResult,
    NotARepository,
    ReconcileReport,
    RemoveResult,
    Resolution,
    TrackBranch,
    TrackGit,
    TrackMoved,
    open_repository,
    reconcile,
)
from conductor.records import (
    GitAttemptCommitted,
    GitAttemptMerged,
    GitAttemptStarted,
    GitTrackStarted,
    Record,
)

MERGE_RETRIES = 5
"""A `TrackMoved` (someone else moved the track branch between our read and our write) is retried this often."""


@dataclass(frozen=True)
class NoGit:
    """Why the run works without git: said to the person in a warning."""

    reason: str


class GitWork:
    def __init__(self, tg: TrackGit, cfg: GitConfig, tracks_dir: Path) -> None:
        self.tg = tg
        self.cfg = cfg
        self.tracks_dir = tracks_dir

    @property
    def branch(self) -> str:
        return self.tg.branch

    # -- engine thread --------------------------------------------------------------------------------------

    def start_track(self, records: Sequence[Record]) -> tuple[TrackBranch, ReconcileReport]:
        """On every start and resume: repair what a kill left (journalled attempts against git), then create
        (or find) the track branch."""
        report = reconcile(self.tg, journalled_attempts(self.tg.track, records))
        return self.tg.create_track(self.cfg.base_ref or None), report

    def merge(self, ticket: str, attempt: int, commit: str, title: str) -> MergeResult:
        """Merge an attempt's commit into the track branch (idempotent: an attempt merged before a kill is
        found by its trailer). A moved track tip is read again and the merge retried."""
        result: MergeResult = self.tg.merge_attempt(ticket, attempt, commit, title=title)
        for _ in range(MERGE_RETRIES):
            if not isinstance(result, TrackMoved):
                break
            result = self.tg.merge_attempt(ticket, attempt, commit, title=title)
        return result

    # -- worker thread --------------------------------------------------------------------------------------

    def begin(self, ticket: str, attempt: int, *, start_point: str | None = None) -> AttemptWorktree:
        return self.tg.start_attempt(ticket, attempt, start_point=start_point)

    def begin_resolution(self, wt: AttemptWorktree) -> Resolution:
        return self.tg.begin_resolution(wt)

    def protected(self, wt: AttemptWorktree) -> tuple[Path, ...]:
        """Everything a worker in `wt` must not reach: the person's checkout, .git, sibling worktrees, and the
        tracks folder (journals, approvals)."""
        return self.tg.forbidden_roots(wt, [self.tracks_dir])

    def commit(self, wt: AttemptWorktree, *, model: str, title: str) -> CommitResult:
        return self.tg.commit_attempt(wt, model=model, title=title)

    def attempt_commit(self, ticket: str, attempt: int) -> str | None:
        return self.tg.attempt_commit(ticket, attempt)

    def release(self, wt: AttemptWorktree, *, force: bool = False) -> RemoveResult:
        return self.tg.remove_attempt(wt, force=force)

    def close(self) -> None:
        self.tg.drain_pool()


def open_git_work(workspace: Path, track_id: str, cfg: GitConfig, tracks_dir: Path) -> GitWork | NoGit:
    """The track's GitWork when the workspace is in a git repository with a commit; else why not."""
    if not cfg.enabled:
        return NoGit("git is turned off in the configuration ([git] enabled = false)")
    try:
        repo = open_repository(workspace)
    except NotARepository:
        return NoGit("the workspace is not a git repository (or has no commit yet)")
    except GitError as exc:
        return NoGit(f"git cannot be used in the workspace ({exc})")
    naming = BranchNaming(track=cfg.track_branch, ticket=cfg.ticket_branch)
    settings = GitSettings(naming=naming, merge_strategy=cfg.merge_strategy,
                           worktrees_root=Path(cfg.worktrees_root).expanduser() if cfg.worktrees_root else None)
    return GitWork(TrackGit(repo, track_id, settings), cfg, tracks_dir)


def journalled_attempts(track_id: str, records: Sequence[Record]) -> list[JournalledAttempt]:
    """Each journalled attempt with the furthest phase the journal proves it reached."""
    started: dict[str, GitAttemptStarted] = {}
    phase: dict[str, str] = {}
    for rec in records:
        match rec:
            case GitAttemptStarted():
                started[rec.key] = rec
                phase.setdefault(rec.key, "running")
            case GitAttemptCommitted():
                phase[rec.key] = "committed"
            case GitAttemptMerged():
                phase[rec.key] = "merged"
            case _:
                pass
    out: list[JournalledAttempt] = []
    for key, s in started.items():
        p = phase[key]
        out.append(JournalledAttempt(AttemptKey(track_id, s.ticket_id, s.attempt), s.branch, Path(s.path),
                                     s.base_sha, "merged" if p == "merged" else "committed" if p == "committed"
                                     else "running"))
    return out


def track_started(tb: TrackBranch) -> GitTrackStarted:
    return GitTrackStarted(key=tb.branch, branch=tb.branch, base_ref=tb.base_ref, base_sha=tb.base_sha,
                           created=tb.created)


def attempt_started(ticket: str, attempt: int, wt: AttemptWorktree) -> GitAttemptStarted:
    return GitAttemptStarted(key=wt.key.text, ticket_id=ticket, attempt=attempt, branch=wt.branch,
                             path=str(wt.path), base_sha=wt.base_sha)
