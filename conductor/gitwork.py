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

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from conductor.config import GitConfig, author_parts
from conductor.git import (
    AttemptKey,
    AttemptWorktree,
    BranchNaming,
    CommitResult,
    GitError,
    GitSettings,
    Identity,
    JournalledAttempt,
    MergeResult,
    NotARepository,
    ReconcileReport,
    RemoveResult,
    Resolution,
    RevertResult,
    TrackBranch,
    TrackGit,
    TrackMoved,
    TrackSummary,
    open_repository,
    reconcile,
)
from conductor.git.base_merge import BaseMergePlan, BaseMergeResult, merge_into_base, plan_base_merge
from conductor.git.diffs import Diff, diff_commits
from conductor.records import (
    GitAttemptCommitted,
    GitAttemptMerged,
    GitAttemptStarted,
    GitTicketReverted,
    GitTrackStarted,
    Record,
)

MERGE_RETRIES = 5
"""A `TrackMoved` (someone else moved the track branch between our read and our write) is retried this often."""


@dataclass(frozen=True)
class NoGit:
    """Why the run works without git: said to the person in a warning."""

    reason: str
    can_init: bool = False
    """The workspace is a folder outside any repository: the person may be offered `git init` (asked)."""


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

    def protected_for_context(self) -> tuple[Path, ...]:
        """What a spawn approval's context read must not reach besides the sandbox's own rules: the tracks folder."""
        return (self.tracks_dir,)

    def commit(self, wt: AttemptWorktree, *, model: str, title: str) -> CommitResult:
        return self.tg.commit_attempt(wt, model=model, title=title)

    def attempt_commit(self, ticket: str, attempt: int) -> str | None:
        return self.tg.attempt_commit(ticket, attempt)

    def release(self, wt: AttemptWorktree, *, force: bool = False) -> RemoveResult:
        return self.tg.remove_attempt(wt, force=force)

    def close(self) -> None:
        self.tg.drain_pool()

    # -- what a person asks for (the engine thread for what moves a branch; any thread for what only reads) --

    def revert(self, ticket: str) -> RevertResult:
        """A revert commit on the track branch that undoes the ticket's newest merge (idempotent)."""
        return self.tg.revert_ticket(ticket)

    def ticket_diff(self, commit: str, base: str) -> Diff:
        """What one attempt's commit changed against the commit it started from."""
        return diff_commits(self.tg.repo, base, commit)

    def track_diff(self) -> Diff:
        """The track's changes so far against its base (call start_track or set_base first)."""
        if self.tg.base_sha is None:
            raise GitError(f"the base of track {self.tg.track!r} is unknown; run the track once first")
        return diff_commits(self.tg.repo, self.tg.base_sha, self.tg.tip())

    def set_base(self, base_sha: str) -> None:
        """The fork point journalled by the run (for a track whose engine is not running)."""
        self.tg.base_sha = base_sha

    def summary(self) -> TrackSummary:
        return self.tg.summary()

    def plan_base_merge(self, base_ref: str) -> BaseMergePlan:
        return plan_base_merge(self.tg, base_ref)

    def merge_into_base(self, plan: BaseMergePlan) -> BaseMergeResult:
        return merge_into_base(self.tg, plan)

    def context_snapshot(self, paths: Sequence[str]) -> tempfile.TemporaryDirectory[str]:
        """The named files as the track branch holds them now, in a temporary folder (regular files only: a
        symlink or a submodule in the tree is left out), so what a spawn approval shows is what the worker's
        worktree will hold, never the person's checkout. The caller removes it (a context manager)."""
        tip = self.tg.tip()
        tmp = tempfile.TemporaryDirectory(prefix="conductor-context-")
        root = Path(tmp.name)
        prefix = self.tg.repo.prefix
        for rel in dict.fromkeys(paths):
            clean = Path(rel)
            if clean.is_absolute() or ".." in clean.parts or not rel.strip():
                continue  # read_context names what the sandbox refuses; nothing is read from outside here
            spec = f"{tip}:{prefix}{clean.as_posix()}"
            res = self.tg.repo.git.run(self.tg.repo.toplevel, "ls-tree", "-z", "--format=%(objectmode) %(objecttype)",
                                       tip, "--", f"{prefix}{clean.as_posix()}", ok=(0, 128))
            mode = res.text.strip("\0").split(" ")
            if res.returncode != 0 or len(mode) != 2 or mode[1] != "blob" or mode[0] not in ("100644", "100755"):
                continue
            data = self.tg.repo.git.run(self.tg.repo.toplevel, "cat-file", "blob", spec).stdout
            target = root / clean
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return tmp


def open_git_work(workspace: Path, track_id: str, cfg: GitConfig, tracks_dir: Path) -> GitWork | NoGit:
    """The track's GitWork when the workspace is in a git repository with a commit; else why not."""
    if not cfg.enabled:
        return NoGit("git is turned off in the configuration ([git] enabled = false)")
    try:
        repo = open_repository(workspace)
    except NotARepository as exc:
        return NoGit("the workspace is not a git repository (or has no commit yet)", can_init=exc.can_init)
    except GitError as exc:
        return NoGit(f"git cannot be used in the workspace ({exc})")
    root = Path(cfg.worktrees_root).expanduser() if cfg.worktrees_root else None
    return GitWork(TrackGit(repo, track_id, git_settings(cfg, root)), cfg, tracks_dir)


def git_settings(cfg: GitConfig, worktrees_root: Path | None) -> GitSettings:
    """The git layer's settings from `[git]` (branch names, merge strategy, commit author), with the worktrees
    under `worktrees_root` (None: the user's state folder)."""
    parts = author_parts(cfg.author) if cfg.author else None
    return GitSettings(naming=BranchNaming(track=cfg.track_branch, ticket=cfg.ticket_branch),
                       merge_strategy=cfg.merge_strategy, author=Identity(*parts) if parts else None,
                       worktrees_root=worktrees_root)


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


@dataclass(frozen=True)
class AttemptCommit:
    """One attempt's commit as the journal has it, and the commit it started from."""

    ticket_id: str
    attempt: int
    sha: str
    base_sha: str
    files: tuple[str, ...]
    merged: bool
    reverted: bool = False


def attempt_commits(records: Sequence[Record], ticket: str | None = None) -> list[AttemptCommit]:
    """Every journalled attempt commit (of one ticket, or all), oldest first, with whether it was merged (and
    later reverted)."""
    base: dict[str, str] = {}
    found: dict[str, AttemptCommit] = {}
    for rec in records:
        match rec:
            case GitAttemptStarted() if ticket is None or rec.ticket_id == ticket:
                base[rec.key] = rec.base_sha
            case GitAttemptCommitted() if ticket is None or rec.ticket_id == ticket:
                found[rec.key] = AttemptCommit(rec.ticket_id, rec.attempt, rec.sha, base.get(rec.key, f"{rec.sha}^1"),
                                               tuple(rec.files), merged=False)
            case GitAttemptMerged() if rec.key in found:
                c = found[rec.key]
                found[rec.key] = AttemptCommit(c.ticket_id, c.attempt, c.sha, c.base_sha, c.files, merged=True)
            case GitTicketReverted() if rec.key in found:
                c = found[rec.key]
                found[rec.key] = AttemptCommit(c.ticket_id, c.attempt, c.sha, c.base_sha, c.files, c.merged,
                                               reverted=True)
            case _:
                pass
    return sorted(found.values(), key=lambda c: (c.ticket_id, c.attempt))


def journalled_base(records: Sequence[Record]) -> str | None:
    """The fork point of the track branch, from the newest git_track record."""
    base = None
    for rec in records:
        if isinstance(rec, GitTrackStarted):
            base = rec.base_sha
    return base
