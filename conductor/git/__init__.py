"""Git for Conductor: a branch per track, a worktree per ticket attempt, merges without a checkout.

How the engine uses it (every call is idempotent, keyed by track + ticket + attempt):

    repo = open_repository(workspace)               # NotARepository(can_init=True) -> ask, then init_repository
    tg = TrackGit(repo, track_id, GitSettings(...)) # one per track; thread-safe
    report = reconcile(tg, journalled_attempts)     # on start, before anything else; show report.lines()
    track = tg.create_track(base_ref)               # journal track.base_sha (also call it on resume)
    wt = tg.start_attempt(ticket, attempt)          # once the ticket's dependencies merged; journal wt
    ctx = ToolContext(wt.workspace, prov, protected=tg.forbidden_roots(wt, [tracks_dir]))
    tg.commit_attempt(wt, model=..., title=...)     # Committed | NoChanges | HookRejected
    tg.check_merge(commit) / tg.merge_attempt(ticket, attempt, commit)   # Merged | NeedsMerge(files) | TrackMoved
    tg.remove_attempt(wt)                           # Removed (parked for reuse) | KeptDirty
    # needs merge: w2 = tg.start_attempt(ticket, n + 1, start_point=commit); tg.begin_resolution(w2) -> files;
    #              a worker (or the person) resolves them in w2; tg.commit_attempt(w2, ...); tg.merge_attempt(...)
    tg.revert_ticket(ticket); tg.rewind(ticket, k, n); tg.ticket_diff(commit); tg.changes_so_far(track)
    tg.summary(); tg.drain_pool()                   # when the track is finished

Keep worktrees_root OUTSIDE the tracks folder (the default is the user's state folder): a worker's protected
folders include the tracks folder, and a worktree inside it could not be worked in.
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
    "TrackBranch", "TrackCheckedOut", "TrackGit", "TrackMoved", "TrackSummary", "WorktreeEntry",
    "default_worktrees_root",
    "diff_commits", "init_repository", "open_repository", "parse_worktree_list", "reconcile", "slug",
]
