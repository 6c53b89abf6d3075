"""Many attempts of one repository starting and ending at once, as the local engine's worker threads start them.

git reads every worktree's admin folder in `worktree add` and `worktree list` and fails on one another thread is
half way through making ("failed to read .git/worktrees/<id>/commondir"); the per-repository worktree lock in
conductor/git/repo.py serialises them. Two tracks share the repository (two TrackGit objects), as two engines do.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from conductor.git import AttemptWorktree, TrackGit
from tests.git_support import make_repo, sh_git, track_git

pytestmark = pytest.mark.timeout(180)

THREADS = 12
ROUNDS = 3


def _storm(tracks: list[TrackGit], rnd: int, errors: list[BaseException]) -> list[AttemptWorktree]:
    made: list[AttemptWorktree] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS * len(tracks))

    def one(tg: TrackGit, i: int) -> None:
        try:
            start.wait()
            wt = tg.start_attempt(f"T{rnd}-{i}", 1)
            with lock:
                made.append(wt)
        except BaseException as exc:  # noqa: BLE001 — collected and asserted below, with git's message
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=one, args=(tg, i)) for tg in tracks for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return made


def _release_all(tracks: dict[str, TrackGit], made: list[AttemptWorktree], errors: list[BaseException]) -> None:
    start = threading.Barrier(len(made))

    def one(wt: AttemptWorktree) -> None:
        try:
            start.wait()
            tracks[wt.key.track].remove_attempt(wt)
        except BaseException as exc:  # noqa: BLE001 — collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(wt,)) for wt in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_many_attempts_of_two_tracks_start_and_end_at_once(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tracks = [track_git(tmp_path, repo, "alpha", pool_size=4), track_git(tmp_path, repo, "beta", pool_size=4)]
    for tg in tracks:
        tg.create_track()
    by_id = {tg.track: tg for tg in tracks}
    errors: list[BaseException] = []
    for rnd in range(ROUNDS):  # later rounds also take parked worktrees while others are being added
        made = _storm(tracks, rnd, errors)
        assert not errors, [str(e) for e in errors[:3]]
        assert len(made) == THREADS * len(tracks)
        for wt in made:  # each attempt in its own worktree, on its own branch
            head = sh_git(wt.path, "rev-parse", "--abbrev-ref", "HEAD").strip()
            assert head == wt.branch, (wt.path, head, wt.branch)
        assert len({wt.path for wt in made}) == len(made)
        _release_all(by_id, made, errors)
        assert not errors, [str(e) for e in errors[:3]]
