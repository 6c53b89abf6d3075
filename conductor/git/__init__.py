"""Git for Conductor: a branch per track, a worktree per ticket attempt, merges without a checkout.

    repo = open_repository(workspace)               # NotARepository(can_init=...) -> ask, then init_repository
    tg = TrackGit(repo, track_id, GitSettings(...))
    track = tg.create_track(base_ref)                # journal track.base_sha
    wt = tg.start_attempt(ticket, attempt)           # after the ticket's dependencies merged; journal wt
    protected = tg.forbidden_roots(wt, [tracks_dir]) # the worker's ToolContext(workspace=wt.workspace, protected=...)
    tg.commit_attempt(wt, model=..., title=...)      # Committed | NoChanges | HookRejected
    tg.merge_attempt(ticket, attempt)                # Merged | NeedsMerge(files) | TrackMoved
    tg.remove_attempt(wt)                            # Removed | KeptDirty
    tg.revert_ticket(ticket); tg.rewind(ticket, k, n); tg.changes_so_far(track); tg.ticket_diff(commit)
    reconcile(tg, journalled_attempts)               # on start, before anything else
"""

from conductor.git.diffs import Diff, DiffLine, FileDiff, Hunk, diff_commits
from conductor.git.names import AttemptKey, BranchNaming, slug
from conductor.git.reconcile import (
    Finding,
    JournalledAttempt,
    ReconcileReport,
    reconcile,
)
from conductor.git.repo import (
    NotARepository,
    Repository,
    WorktreeEntry,
    default_worktrees_root,
    init_repository,
    open_repository,
    parse_worktree_list,
)
from conductor.git.results import (
    AttemptWorktree,
    CleanMerge,
    CommitResult,
    Committed,
    Conflicts,
    HookRejected,
    KeptDirty,
    MergeCheck,
    Merged,
    MergeResult,
    MergeStrategy,
    NeedsMerge,
    NoChanges,
    NotMerged,
    Removed,
    RemoveResult,
    Resolution,
    RevertConflicts,
    Reverted,
    RevertResult,
    Rewound,
    TrackBranch,
    TrackCheckedOut,
    TrackMoved,
    TrackSummary,
)
from conductor.git.runner import Git, GitError, GitNotInstalled, GitTimeout, Identity
from conductor.git.track import GitSettings, TrackGit

__all__ = [
    "AttemptKey", "AttemptWorktree", "BranchNaming", "CleanMerge", "CommitResult", "Committed", "Conflicts", "Diff",
    "DiffLine", "FileDiff", "Finding", "Git", "GitError", "GitNotInstalled", "GitSettings", "GitTimeout",
    "HookRejected", "Hunk", "Identity", "JournalledAttempt", "KeptDirty", "MergeCheck", "MergeResult",
    "MergeStrategy", "Merged", "NeedsMerge", "NoChanges", "NotARepository", "NotMerged", "ReconcileReport",
    "RemoveResult", "Removed", "Repository", "Resolution", "RevertConflicts", "RevertResult", "Reverted", "Rewound",
    "TrackBranch", "TrackCheckedOut", "TrackGit", "TrackMoved", "TrackSummary", "WorktreeEntry", "default_worktrees_root",
    "diff_commits", "init_repository", "open_repository", "parse_worktree_list", "reconcile", "slug",
]
