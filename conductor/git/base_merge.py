"""Merging a finished track branch into its base branch: only when the person asks, after they saw the plan.

`plan_base_merge` reads (never writes): which branch is the base, what the merge would change (a diff stat),
and whether it can happen at all — the base may have moved since the track forked, in a way that conflicts
(`merge-tree --write-tree` names the files), or it may be a detached HEAD. `merge_into_base` then does exactly
what the person saw: it refuses when the base or the track moved since the plan, writes the merge commit with
`commit-tree`, and moves the base branch with one compare-and-swap. When the base branch is checked out (the
person's own checkout, usually), the checkout is fast-forwarded to that commit with `git merge --ff-only`, so
git itself refuses (and changes nothing) when an uncommitted change of the person's would be overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from conductor.git.results import CleanMerge, Conflicts
from conductor.git.runner import GitError
from conductor.git.track import TrackGit

BASE_MERGED_TRAILER = "Conductor-Base-Merge"


@dataclass(frozen=True)
class FileStat:
    path: str
    added: int | None
    """None for a binary file (git counts no lines)."""
    deleted: int | None


@dataclass(frozen=True)
class BaseMergePlan:
    """What "merge into base" would do, for the person to read before saying yes."""

    track_branch: str
    base_branch: str | None
    """The branch the track merges into (None: the base is not a branch, see `refused`)."""
    base_sha: str
    """The base branch's tip when the plan was made (the merge refuses if it moved since)."""
    track_tip: str
    stat: tuple[FileStat, ...]
    conflicts: tuple[str, ...] = ()
    """Files the base changed since the fork in a way that conflicts with the track (nothing is merged)."""
    checked_out_at: Path | None = None
    """Where the base branch is checked out: that checkout is fast-forwarded (git refuses if it would lose
    uncommitted work)."""
    refused: str | None = None
    """Why it cannot be merged (conflicts, nothing to merge, a detached base); None when it can."""

    @property
    def files(self) -> list[str]:
        return [f.path for f in self.stat]

    def stat_lines(self) -> list[str]:
        out = []
        for f in self.stat:
            counts = "binary" if f.added is None else f"+{f.added} -{f.deleted}"
            out.append(f"{f.path}  {counts}")
        added = sum(f.added or 0 for f in self.stat)
        deleted = sum(f.deleted or 0 for f in self.stat)
        out.append(f"{len(self.stat)} file{'s' if len(self.stat) != 1 else ''} changed, +{added} -{deleted}")
        return out


@dataclass(frozen=True)
class BaseMerged:
    base_branch: str
    commit: str
    """The base branch's new tip (the merge commit)."""
    track_tip: str
    files: tuple[str, ...]
    kind: Literal["base_merged"] = "base_merged"


@dataclass(frozen=True)
class BaseMergeRefused:
    reason: str
    conflicts: tuple[str, ...] = ()
    kind: Literal["base_merge_refused"] = "base_merge_refused"


BaseMergeResult = BaseMerged | BaseMergeRefused


def base_branch_of(tg: TrackGit, base_ref: str) -> str | None:
    """The branch `base_ref` names (`HEAD`: the branch the person has checked out now); None when detached or not
    a branch."""
    if base_ref.startswith("-"):
        return None
    res = tg.repo.git.run(tg.repo.toplevel, "rev-parse", "--symbolic-full-name", base_ref, ok=(0, 128))
    full = res.line if res.returncode == 0 else ""
    return full[len("refs/heads/"):] if full.startswith("refs/heads/") else None


def _numstat(tg: TrackGit, old: str, new: str) -> tuple[FileStat, ...]:
    out = tg.repo.git.run(tg.repo.toplevel, "diff", "--numstat", "-z", "--no-renames", "--no-ext-diff",
                          "--no-textconv", old, new, "--").stdout.decode("utf-8", errors="surrogateescape")
    stats: list[FileStat] = []
    for rec in out.split("\0"):
        if not rec:
            continue
        added, deleted, path = rec.split("\t", 2)
        stats.append(FileStat(path, None if added == "-" else int(added), None if deleted == "-" else int(deleted)))
    return tuple(stats)


def plan_base_merge(tg: TrackGit, base_ref: str) -> BaseMergePlan:
    """What merging the track into the branch `base_ref` names would do (reads only)."""
    tip = tg.tip()
    branch = base_branch_of(tg, base_ref)
    if branch is None:
        return BaseMergePlan(tg.branch, None, "", tip, (), refused=(
            f"the track's base {base_ref!r} is not a branch (a detached HEAD or a commit): check out the branch "
            "the track should go into, or merge the track branch yourself"))
    if branch == tg.branch:
        return BaseMergePlan(tg.branch, branch, tip, tip, (), refused="the base is the track branch itself")
    base = tg.repo.branch_sha(branch)
    if base is None:
        return BaseMergePlan(tg.branch, branch, "", tip, (), refused=f"the base branch {branch!r} does not exist")
    where = tg.repo.checked_out_at(branch)
    if tg.repo.is_ancestor(tip, base):
        return BaseMergePlan(tg.branch, branch, base, tip, (), checked_out_at=where,
                             refused=f"{branch} already holds everything on {tg.branch}: nothing to merge")
    fork = tg.repo.run("merge-base", base, tip, ok=(0, 1)).strip() or base
    stat = _numstat(tg, fork, tip)
    match tg.check_merge(tip, base):
        case Conflicts(files=files):
            return BaseMergePlan(tg.branch, branch, base, tip, stat, conflicts=files, checked_out_at=where, refused=(
                f"{branch} moved since the track began, and its changes conflict with the track in: "
                f"{', '.join(files)}; nothing was merged (merge {tg.branch} yourself, or rebase it)"))
        case CleanMerge():
            return BaseMergePlan(tg.branch, branch, base, tip, stat, checked_out_at=where)


def merge_into_base(tg: TrackGit, plan: BaseMergePlan) -> BaseMergeResult:
    """Merge the track into its base exactly as `plan` showed; refuses (changing nothing) when the plan refused,
    or the base or the track moved since, or the person's checkout of the base cannot take the merge."""
    if plan.refused is not None or plan.base_branch is None:
        return BaseMergeRefused(plan.refused or "nothing to merge", plan.conflicts)
    branch = plan.base_branch
    with tg._merging:
        base, tip = tg.repo.branch_sha(branch), tg.tip()
        if base != plan.base_sha or tip != plan.track_tip:
            return BaseMergeRefused(f"{branch if base != plan.base_sha else tg.branch} moved since you looked at "
                                    "the merge; look at it again")
        match tg.check_merge(tip, base):
            case Conflicts(files=files):
                return BaseMergeRefused(f"the track conflicts with {branch} in: {', '.join(files)}", files)
            case CleanMerge(tree=tree):
                pass
        message = (f"Merge track {tg.track} ({tg.branch}) into {branch}\n\n"
                   f"{len(plan.stat)} files changed; merged by Conductor at the person's request.\n\n"
                   f"{BASE_MERGED_TRAILER}: {tg.branch}@{tip}\n")
        new = tg._commit_tree(tree, [base, tip], message)
        where = tg.repo.checked_out_at(branch)
        if where is None:
            if not tg.repo.update_ref(branch, new, base, f"merge {tg.branch} into {branch} (asked)"):
                return BaseMergeRefused(f"{branch} moved while the merge was written; nothing was merged")
        else:
            # The person's checkout has the base checked out: fast-forward it to the merge commit. git keeps
            # uncommitted changes it does not touch and refuses (changing nothing) when it would overwrite one.
            res = tg.repo.git.run(where, "merge", "--ff-only", "--quiet", new, ok=(0, 1, 128))
            if res.returncode != 0:
                detail = (res.stderr or res.text).strip().splitlines()
                return BaseMergeRefused(f"your checkout {str(where)!r} of {branch} cannot take the merge: "
                                        f"{' '.join(detail[:6]) or 'git merge --ff-only failed'}; nothing was merged")
        return BaseMerged(branch, new, tip, tuple(plan.files))


__all__ = ["BaseMergePlan", "BaseMergeRefused", "BaseMergeResult", "BaseMerged", "FileStat", "GitError",
           "base_branch_of", "merge_into_base", "plan_base_merge"]
