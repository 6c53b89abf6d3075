"""Reconcile on start: what the journal says about each attempt against what git and the disk hold.

The engine passes the journalled attempts of a track (branch, worktree path, base commit, phase). This looks
at `git worktree list --porcelain`, the refs and the folders, repairs only what is safe to repair, and reports
everything it found:

  * stale lock files a killed git left (index.lock, HEAD.lock, a branch's .lock) on OUR worktrees and OUR
    branches are removed, so the next step does not fail with "File exists";
  * a worktree registered but whose folder is gone is unregistered (its branch and commits stay);
  * a worktree a crash left half made, half switched or half released is discarded: its lock reason proves
    it holds no work of a worker; the next `start_attempt` makes the attempt's worktree again;
  * a worktree with uncommitted changes is never deleted: it is reported `dirty_kept`;
  * a folder at an attempt's path that git does not know is moved aside (never deleted) and reported;
  * this track's parked worktrees are kept (re-parked if a crash left one unlocked and clean); any other
    worktree of the track that no journalled attempt names is reported `orphan` and left alone.

Only this track's worktrees (below its worktrees folder) are ever changed: never a global `git worktree
prune`, which would also drop the person's own worktrees on an unplugged disk.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from conductor.git.names import AttemptKey
from conductor.git.repo import WorktreeEntry
from conductor.git.runner import is_within
from conductor.git.track import INCOMPLETE, LOCK_PARKED, TrackGit, status_paths

Phase = Literal["creating", "running", "committed", "merged", "removed"]
FindingKind = Literal["ok", "stale_lock_removed", "missing_unregistered", "incomplete_removed", "dirty_kept",
                      "stray_moved_aside", "branch_missing", "orphan", "absent", "removed", "released", "parked"]


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
    """The .git/worktrees/<id> folder of the worktree at `path` (git's layout: its `gitdir` file names the
    worktree's .git file)."""
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
    candidates: list[tuple[str | None, Path]] = [(None, refs / f"{tg.branch}.lock")]
    candidates += [(a.key.text, refs / f"{a.branch}.lock") for a in attempts]
    ours = [e.path for e in tg.repo.worktrees() if is_within(e.path, tg.track_dir)]
    for path in ours + [a.path for a in attempts]:
        admin = _admin_dir(tg, path)
        if admin is not None:
            candidates += [(None, admin / n) for n in ("index.lock", "HEAD.lock", "ORIG_HEAD.lock")]
    seen: set[Path] = set()
    for key, lock in candidates:
        if lock not in seen and lock.is_file():
            seen.add(lock)
            lock.unlink()
            found.append(Finding("stale_lock_removed", key, lock, "left by a git that was killed"))
    return found


def _by_path(entries: list[WorktreeEntry], path: Path) -> WorktreeEntry | None:
    want = os.path.realpath(path)
    return next((e for e in entries if os.path.realpath(e.path) == want), None)


def reconcile(tg: TrackGit, attempts: Sequence[JournalledAttempt]) -> ReconcileReport:
    findings = clear_stale_locks(tg, attempts)
    matched: set[str] = set()
    for a in attempts:
        key = a.key.text
        if tg.repo.branch_sha(a.branch) is None and a.phase != "creating":
            findings.append(Finding("branch_missing", key, a.path, f"branch {a.branch!r} is gone"))
        entry = tg.attempt_entry(a.key)
        if entry is None:
            other = _by_path(tg.repo.worktrees(), a.path)
            if other is not None:
                findings.append(Finding("released", key, a.path, "its worktree was released (parked or serving "
                                        "another attempt)"))
            elif a.path.exists():
                aside = tg.move_aside(a.path)
                findings.append(Finding("stray_moved_aside", key, a.path,
                                        f"a folder git does not know as a worktree; moved to {str(aside)!r}"))
            else:
                findings.append(Finding("absent", key, a.path, "no worktree (none needed)" if a.phase == "removed"
                                        else "no worktree yet"))
            continue
        matched.add(os.path.realpath(entry.path))
        reason = entry.locked or ""
        if not entry.path.is_dir():
            tg.discard_incomplete(entry.path)
            findings.append(Finding("missing_unregistered", key, entry.path, "its folder was gone; unregistered "
                                    "(the branch and its commits are kept)"))
            continue
        if reason.startswith(INCOMPLETE):
            tg.discard_incomplete(entry.path)
            findings.append(Finding("incomplete_removed", key, entry.path,
                                    "a step on it was cut short; discarded (it held no work; start_attempt makes "
                                    "it again)"))
            continue
        changes = status_paths(tg.repo.status_porcelain(entry.path))
        if changes:
            findings.append(Finding("dirty_kept", key, entry.path,
                                    f"{len(changes)} uncommitted change(s) kept: {', '.join(changes[:5])}"))
        else:
            findings.append(Finding("ok", key, entry.path, f"clean worktree on {entry.branch or 'a detached HEAD'}"))
    for e in tg.repo.worktrees():
        real = os.path.realpath(e.path)
        if real in matched or not is_within(e.path, tg.track_dir):
            continue
        reason = e.locked or ""
        if reason == LOCK_PARKED and (e.path / ".git").is_file():
            findings.append(Finding("parked", None, e.path, "a clean worktree kept for reuse"))
        elif reason.startswith(INCOMPLETE) or reason == LOCK_PARKED or not e.path.is_dir():
            tg.discard_incomplete(e.path)
            findings.append(Finding("incomplete_removed", None, e.path, "a step on it was cut short; discarded"))
        elif e.detached and e.locked is None and not status_paths(tg.repo.status_porcelain(e.path)):
            tg.repo.run("worktree", "lock", "--reason", LOCK_PARKED, str(e.path))
            findings.append(Finding("parked", None, e.path, "a clean, free worktree (parked again)"))
        else:
            findings.append(Finding("orphan", None, e.path, "a worktree of this track that no journalled attempt "
                                    "names; left as it is"))
    return ReconcileReport(tuple(findings))
