"""Reconcile on start: what the journal says about each attempt against what git and the disk hold.

The engine passes the journalled attempts of a track (branch, worktree path, base commit, phase). For each one
this looks at `git worktree list --porcelain`, the refs and the folder, repairs only what is safe to repair,
and reports everything it found:

  * stale lock files left by a killed git (index.lock, HEAD.lock, a branch's .lock) of OUR worktrees and OUR
    branches are removed, so the next step does not fail with "File exists";
  * a worktree registered but whose folder is gone is unregistered (its branch and commits stay);
  * a half-made worktree (crash during `worktree add`) or a half-removed one is removed: nothing of a worker
    is in it; the next `start_attempt` makes it again;
  * a worktree with uncommitted changes is never deleted: it is reported `dirty_kept`;
  * a folder at an attempt's path that git does not know is moved aside (never deleted) and reported;
  * a worktree of this track that no journalled attempt names is reported `orphan` and left alone.

Only this track's worktrees (below its worktrees folder, with our lock reason) are ever changed: never a
global `git worktree prune`, which would also drop the person's own worktrees on an unplugged disk.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from conductor.git.names import AttemptKey, slug
from conductor.git.runner import is_within
from conductor.git.track import LOCK_CREATING, LOCK_READY, LOCK_REMOVING, TrackGit, status_paths

Phase = Literal["creating", "running", "committed", "merged", "removed"]
FindingKind = Literal["ok", "stale_lock_removed", "missing_unregistered", "incomplete_removed", "dirty_kept",
                      "stray_moved_aside", "branch_missing", "orphan", "absent", "removed"]


@dataclass(frozen=True)
class JournalledAttempt:
    key: AttemptKey
    branch: str
    path: Path
    base_sha: str
    phase: Phase


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    key: str | None
    path: Path | None
    detail: str


@dataclass(frozen=True)
class ReconcileReport:
    findings: tuple[Finding, ...]

    def of(self, kind: FindingKind) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    def lines(self) -> list[str]:
        return [f"{f.kind}: {f.key or str(f.path)}: {f.detail}" for f in self.findings]


def _admin_dir(tg: TrackGit, path: Path) -> Path | None:
    """The .git/worktrees/<id> folder of the worktree at `path` (git's own layout: its `gitdir` file names
    the worktree's .git file)."""
    base = tg.repo.common_dir / "worktrees"
    if not base.is_dir():
        return None
    want = os.path.realpath(path / ".git")
    for d in base.iterdir():
        try:
            target = (d / "gitdir").read_text().strip()
        except OSError:
            continue
        if os.path.realpath(target) == want:
            return d
    return None


def clear_stale_locks(tg: TrackGit, attempts: Sequence[JournalledAttempt]) -> list[Finding]:
    """Remove lock files a killed git left on our branches and our worktrees. Call only on start, when no
    worker and no git of ours runs."""
    found: list[Finding] = []
    refs = tg.repo.common_dir / "refs" / "heads"
    branches = [(None, tg.branch)] + [(a.key.text, a.branch) for a in attempts]
    candidates: list[tuple[str | None, Path]] = [(k, refs / f"{b}.lock") for k, b in branches]
    for a in attempts:
        admin = _admin_dir(tg, a.path)
        if admin is not None:
            candidates += [(a.key.text, admin / name) for name in ("index.lock", "HEAD.lock", "ORIG_HEAD.lock",
                                                                   "MERGE_HEAD.lock")]
    for key, lock in candidates:
        if lock.is_file():
            lock.unlink()
            found.append(Finding("stale_lock_removed", key, lock, "left by a git that was killed"))
    return found


def reconcile(tg: TrackGit, attempts: Sequence[JournalledAttempt]) -> ReconcileReport:
    findings = clear_stale_locks(tg, attempts)
    entries = {os.path.realpath(e.path): e for e in tg.repo.worktrees()}
    named = set()
    for a in attempts:
        real = os.path.realpath(a.path)
        named.add(real)
        key = a.key.text
        if tg.repo.branch_sha(a.branch) is None and a.phase != "creating":
            findings.append(Finding("branch_missing", key, a.path, f"branch {a.branch!r} is gone"))
        entry = entries.get(real)
        if entry is None:
            if a.path.exists():
                aside = tg.move_aside(a.path)
                findings.append(Finding("stray_moved_aside", key, a.path,
                                        f"a folder git does not know as a worktree; moved to {str(aside)!r}"))
            else:
                findings.append(Finding("absent", key, a.path, "no worktree (none needed in phase "
                                        f"{a.phase!r})" if a.phase == "removed" else "no worktree yet"))
            continue
        if not a.path.is_dir():
            tg.repo.run("worktree", "remove", "--force", "--force", str(a.path))
            findings.append(Finding("missing_unregistered", key, a.path, "its folder was gone; unregistered "
                                    "(the branch and its commits are kept)"))
            continue
        reason = entry.locked or ""
        if reason.startswith((LOCK_CREATING, LOCK_REMOVING)):
            tg.discard_incomplete(a.path)
            what = "made" if reason.startswith(LOCK_CREATING) else "removed"
            findings.append(Finding("incomplete_removed", key, a.path,
                                    f"half {what} when the app stopped; removed (start_attempt makes it again)"))
            continue
        changes = status_paths(tg.repo.status_porcelain(a.path))
        if changes:
            findings.append(Finding("dirty_kept", key, a.path,
                                    f"{len(changes)} uncommitted change(s) kept: {', '.join(changes[:5])}"))
        elif a.phase == "removed":
            tg.repo.run("worktree", "remove", "--force", "--force", str(a.path))
            findings.append(Finding("removed", key, a.path, "clean, and its attempt was done; removed"))
        else:
            findings.append(Finding("ok", key, a.path, f"clean worktree on {entry.branch or 'a detached HEAD'}"))
    track_root = tg.root / slug(tg.track)
    for real, e in entries.items():
        if real in named or not is_within(e.path, track_root):
            continue
        if (e.locked or "").startswith((LOCK_READY, LOCK_CREATING, LOCK_REMOVING)):
            findings.append(Finding("orphan", None, e.path, "a worktree of this track that no journalled attempt "
                                    "names; left as it is"))
    return ReconcileReport(tuple(findings))
