"""Reconcile on start, the worktree pool, and what is never deleted."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from conductor.git import (
    AttemptKey,
    Committed,
    JournalledAttempt,
    KeptDirty,
    Merged,
    Removed,
    reconcile,
)
from conductor.git.track import LOCK_CREATING
from tests.git_support import make_repo, person_state, sh_git, track_git


def journalled(tg, wt, phase: str = "running") -> JournalledAttempt:  # type: ignore[no-untyped-def]
    return JournalledAttempt(wt.key, wt.branch, wt.path, wt.base_sha, phase)  # type: ignore[arg-type]


def test_a_released_worktree_is_reused_without_leaking_the_previous_attempt(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"a.py": "A = 1\n", ".gitignore": "build/\n*.pyc\n"})
    tg = track_git(tmp_path, repo)
    tg.create_track()
    w1 = tg.start_attempt("T1", 1)
    (w1.path / "inflight.py").write_text("T1 work, never merged\n")
    assert isinstance(tg.commit_attempt(w1, model="m"), Committed)
    (w1.path / "build").mkdir()
    (w1.path / "build" / "out.bin").write_text("artifact of T1's tests\n")
    (w1.path / "cache.pyc").write_text("x")
    released = tg.remove_attempt(w1)
    assert isinstance(released, Removed) and released.parked
    w2 = tg.start_attempt("T2", 1)
    assert w2.path == w1.path  # the parked worktree was reused
    assert not (w2.path / "inflight.py").exists() and not (w2.path / "build").exists()
    assert not (w2.path / "cache.pyc").exists()
    assert sh_git(w2.path, "symbolic-ref", "HEAD").strip() == f"refs/heads/{w2.branch}"
    assert sh_git(w2.path, "status", "--porcelain") == ""
    assert tg.attempt_commit("T1", 1) is not None  # T1's commit stays on its branch


def test_pool_size_zero_removes_and_drain_empties_the_pool(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tg = track_git(tmp_path, repo, pool_size=0)
    tg.create_track()
    w = tg.start_attempt("T1", 1)
    res = tg.remove_attempt(w)
    assert isinstance(res, Removed) and not res.parked and not w.path.exists()
    pooled = track_git(tmp_path / "p", repo, track="other")
    w2 = pooled.start_attempt("T1", 1) if pooled.create_track() else None
    assert w2 is not None and isinstance(pooled.remove_attempt(w2), Removed)
    assert pooled.drain_pool() == [w2.path] and not w2.path.exists()
    assert sh_git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_two_threads_never_take_the_same_parked_worktree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tg = track_git(tmp_path, repo)
    tg.create_track()
    assert isinstance(tg.remove_attempt(tg.start_attempt("T0", 1)), Removed)
    barrier = threading.Barrier(2)
    got: dict[str, Path] = {}

    def start(ticket: str) -> None:
        barrier.wait()
        got[ticket] = tg.start_attempt(ticket, 1).path

    threads = [threading.Thread(target=start, args=(t,)) for t in ("T1", "T2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(set(got.values())) == 2


def test_reconcile_repairs_what_is_safe_and_never_deletes_work(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    before = person_state(repo)
    # the person's own worktree on an unplugged disk: a global prune would drop it
    sh_git(repo, "worktree", "add", "-q", "--detach", str(tmp_path / "person-usb"))
    os.rename(tmp_path / "person-usb", tmp_path / "person-usb-unplugged")
    tg = track_git(tmp_path, repo, pool_size=0)
    tg.create_track()
    dirty = tg.start_attempt("Tdirty", 1)
    (dirty.path / "a.py").write_text("uncommitted work\n")
    gone = tg.start_attempt("Tgone", 1)
    os.rename(gone.path, tmp_path / "elsewhere")
    import shutil
    shutil.rmtree(tmp_path / "elsewhere")
    locked = tg.start_attempt("Tlock", 1)
    admin = tg.admin_dir(locked.path)
    assert admin is not None
    (admin / "index.lock").write_text("")
    (repo / ".git" / "refs" / "heads" / "conductor" / "trk.lock").write_text("")
    half = tg.start_attempt("Thalf", 1)
    half_admin = tg.admin_dir(half.path)
    assert half_admin is not None
    (half_admin / "locked").write_text(f"{LOCK_CREATING} {half.key.text}")
    stray_key = AttemptKey("trk", "Tstray", 1)
    stray_path = tg.attempt_path(stray_key)
    stray_path.mkdir(parents=True)
    (stray_path / "someones-file.txt").write_text("not ours to delete\n")
    orphan = tg.start_attempt("Torphan", 1)

    attempts = [journalled(tg, w) for w in (dirty, gone, locked, half)]
    attempts.append(JournalledAttempt(stray_key, tg.attempt_branch(stray_key), stray_path, "", "creating"))
    report = reconcile(tg, attempts)
    kinds = {(f.kind, f.key) for f in report.findings}
    assert ("dirty_kept", "trk/Tdirty/a1") in kinds and (dirty.path / "a.py").read_text() == "uncommitted work\n"
    assert ("incomplete_removed", "trk/Thalf/a1") in kinds and not half.path.exists()
    assert ("stray_moved_aside", "trk/Tstray/a1") in kinds and not stray_path.exists()
    aside = list((tg.root / ".aside").iterdir())
    assert len(aside) == 1 and (aside[0] / "someones-file.txt").read_text() == "not ours to delete\n"
    assert {f.path.name for f in report.of("stale_lock_removed") if f.path} == {"index.lock", "trk.lock"}
    assert ("ok", "trk/Tlock/a1") in kinds
    assert [f.path for f in report.of("orphan")] == [orphan.path]
    gone_finding = [f for f in report.findings if f.key == "trk/Tgone/a1"]
    assert gone_finding and gone_finding[0].kind == "missing_unregistered"
    listed = sh_git(repo, "worktree", "list", "--porcelain")
    assert "person-usb" in listed and str(gone.path) not in listed
    # after reconcile every step works again
    again = tg.start_attempt("Thalf", 1)
    (again.path / "b.py").write_text("B = 'half, redone'\n")
    assert isinstance(tg.commit_attempt(again, model="m"), Committed)
    assert isinstance(tg.merge_attempt("Thalf", 1), Merged)
    assert isinstance(tg.remove_attempt(dirty), KeptDirty)
    assert person_state(repo) == before


def test_a_released_worktree_cannot_be_committed_into_by_its_old_attempt(tmp_path: Path) -> None:
    import pytest

    from conductor.git import GitError
    repo = make_repo(tmp_path)
    tg = track_git(tmp_path, repo)
    tg.create_track()
    w1 = tg.start_attempt("T1", 1)
    assert isinstance(tg.remove_attempt(w1), Removed)
    w2 = tg.start_attempt("T2", 1)
    assert w2.path == w1.path
    (w2.path / "a.py").write_text("T2's work\n")
    with pytest.raises(GitError, match="no longer holds"):
        tg.commit_attempt(w1, model="m")
    assert isinstance(tg.commit_attempt(w2, model="m"), Committed)


def test_a_parked_worktree_half_removed_by_a_kill_is_discarded_not_reused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tg = track_git(tmp_path, repo)
    tg.create_track()
    w1 = tg.start_attempt("T1", 1)
    assert isinstance(tg.remove_attempt(w1), Removed)
    (w1.path / ".git").unlink()  # what a kill inside `git worktree remove` leaves: .git goes first
    assert tg.parked() == []
    report = reconcile(tg, [])
    assert [f.kind for f in report.findings] == ["incomplete_removed"] and not w1.path.exists()
    w2 = tg.start_attempt("T2", 1)
    assert sh_git(w2.path, "status", "--porcelain") == ""
    assert tg.drain_pool() == [] and isinstance(tg.remove_attempt(w2), Removed) and tg.drain_pool() == [w2.path]
