"""Typed outcomes of the git layer, as discriminated unions (`kind`) the engine handles with `match`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from conductor.git.names import AttemptKey
from conductor.git.runner import GitError

MergeStrategy = Literal["merge", "squash"]


class TrackCheckedOut(GitError):
    """The track branch is checked out somewhere (the person did `git checkout conductor/x`): moving it would
    change what that checkout shows under the person's feet, so the conductor refuses."""


class NotMerged(GitError):
    """A revert or rewind named a ticket or attempt that has no merge or commit on the track."""


@dataclass(frozen=True)
class TrackBranch:
    """The integration branch of a track. Journal it: `base_sha` is what 'changes so far' compare against."""

    track: str
    branch: str
    base_ref: str
    base_sha: str
    created: bool
    """False when the branch already existed (a resume)."""


@dataclass(frozen=True)
class AttemptWorktree:
    """One attempt's worktree. Journal branch, path and base_sha before the worker starts."""

    key: AttemptKey
    branch: str
    path: Path
    base_sha: str
    """The commit the attempt branch was created from (the track tip after the ticket's dependencies merged)."""
    workspace: Path
    """Where the worker's tools are rooted: `path`, or its sub-folder when the workspace is a sub-folder of the
    repository."""
    resumed: bool = False
    """The worktree already existed and was reused (a resume)."""


@dataclass(frozen=True)
class Committed:
    sha: str
    files: tuple[str, ...]
    already: bool = False
    """This attempt's commit was already there (a resume): nothing was committed now."""
    kind: Literal["committed"] = "committed"


@dataclass(frozen=True)
class NoChanges:
    message: str
    kind: Literal["no_changes"] = "no_changes"


@dataclass(frozen=True)
class HookRejected:
    """A commit hook refused the commit; `output` is what it printed (a hint for the next attempt)."""

    output: str
    kind: Literal["hook_rejected"] = "hook_rejected"


CommitResult = Committed | NoChanges | HookRejected


@dataclass(frozen=True)
class CleanMerge:
    tree: str
    kind: Literal["clean"] = "clean"


@dataclass(frozen=True)
class Conflicts:
    files: tuple[str, ...]
    kind: Literal["conflicts"] = "conflicts"


MergeCheck = CleanMerge | Conflicts


@dataclass(frozen=True)
class Merged:
    commit: str
    """The new track tip (the merge or squash commit)."""
    ticket_commit: str
    already: bool = False
    kind: Literal["merged"] = "merged"


@dataclass(frozen=True)
class NeedsMerge:
    """The ticket's commit conflicts with the track: a worker (in a new attempt) or the person resolves it."""

    files: tuple[str, ...]
    track_tip: str
    ticket_commit: str
    kind: Literal["needs_merge"] = "needs_merge"


@dataclass(frozen=True)
class TrackMoved:
    """The track branch moved between reading it and updating it; nothing was written. Retry."""

    expected: str
    actual: str | None
    kind: Literal["track_moved"] = "track_moved"


MergeResult = Merged | NeedsMerge | TrackMoved


@dataclass(frozen=True)
class Reverted:
    commit: str
    """The revert commit (the new track tip, or the one made earlier when `already`)."""
    reverted_merge: str
    key: str
    already: bool = False
    kind: Literal["reverted"] = "reverted"


@dataclass(frozen=True)
class RevertConflicts:
    """Later tickets changed the same lines: the revert cannot be computed without a person."""

    files: tuple[str, ...]
    kind: Literal["revert_conflicts"] = "revert_conflicts"


RevertResult = Reverted | RevertConflicts | TrackMoved


@dataclass(frozen=True)
class Removed:
    path: Path
    parked: bool = False
    """The clean worktree was kept for the next attempt of the track instead of deleted."""
    kind: Literal["removed"] = "removed"


@dataclass(frozen=True)
class KeptDirty:
    """The worktree has changes nobody committed: it is kept (never deleted without force)."""

    path: Path
    changes: tuple[str, ...]
    kind: Literal["kept_dirty"] = "kept_dirty"


RemoveResult = Removed | KeptDirty


@dataclass(frozen=True)
class Rewound:
    """A new attempt whose branch starts at an earlier attempt's commit; merge `commit` to use it."""

    worktree: AttemptWorktree
    commit: str
    from_attempt: int
    kind: Literal["rewound"] = "rewound"


@dataclass(frozen=True)
class Resolution:
    """A merge of the track tip into an attempt's worktree, left for a worker or the person to finish.
    `files` are the conflicted files (with conflict markers); commit the attempt when they are resolved."""

    files: tuple[str, ...]
    track_tip: str
    kind: Literal["resolution"] = "resolution"


@dataclass(frozen=True)
class TrackSummary:
    """What a track branch holds, for the finished-track view and a pull request description."""

    branch: str
    base_sha: str
    tip: str
    merged: tuple[str, ...]
    """Attempt keys merged, oldest first (a reverted one is listed here and in `reverted`)."""
    reverted: tuple[str, ...]
    commits: int
    """Commits on the track branch since its base (first-parent: one per merge or revert)."""
    files: tuple[str, ...]
    """Files the track changes against its base."""
