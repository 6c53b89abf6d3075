"""kill -9 at random points of a track's git steps (worktree add, commit, merge, remove), then resume.

The child runs the steps in its own process group; the test SIGKILLs the whole group (git children too, as a
power cut or an OOM kill would) after a random delay, then runs the child again to resume. Invariants after
every resume: one commit per attempt, every ticket merged exactly once and in dependency order, no worktree
or stale lock left, and the person's checkout (HEAD, status, index, stash) exactly as before.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.git_support import make_person_busy, make_repo, person_state, sh_git
from tests.helpers import wait_for

CHILD = Path(__file__).with_name("git_crash_child.py")
TICKETS = {"T1": ["a.py"], "T2": ["b.py"], "T3": ["new/t3.py"]}
CRASH_STEPS = {"worktree add": 1, "checkout": 2, "status": 3, "add --all": 3, "diff": 3, "write-tree": 3,
               "merge-tree": 3, "commit-tree": 6, "update-ref": 12, "worktree remove": 1}
"""git subcommands the crash is armed on, with how many times an uncut run calls each at least (the three
tickets share one pooled worktree: one add, one final remove)."""


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _run_child(args: list[str], kill_after: float | None,
               crash_at: str | None = None) -> subprocess.CompletedProcess[str] | None:
    env = {k: v for k, v in os.environ.items() if k != "CONDUCTOR_CRASH_AT"}
    if crash_at:
        env["CONDUCTOR_CRASH_AT"] = crash_at
    proc = subprocess.Popen([sys.executable, str(CHILD), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, env=env)
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            wait_for(lambda: _group_gone(proc.pid), what="the killed process group to be gone")
            return None
    out, _ = proc.communicate(timeout=120)
    if proc.returncode == -signal.SIGKILL:  # it killed itself at its armed point
        wait_for(lambda: _group_gone(proc.pid), what="the killed process group to be gone")
        return None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def _check_invariants(tmp: Path, repo: Path) -> None:
    branch = "conductor/trk"
    merged = sh_git(repo, "log", "--first-parent", "--reverse",
                    "--format=%(trailers:key=Conductor-Merged,valueonly)", branch).split()
    assert merged == ["trk/T1/a1", "trk/T2/a1", "trk/T3/a1"], merged  # each exactly once, in DAG order
    for ticket, files in TICKETS.items():
        attempt = f"conductor/trk--{ticket}"
        tip_keys = sh_git(repo, "log", "-1", "--format=%(trailers:key=Conductor-Key,valueonly)", attempt).split()
        assert tip_keys == [f"trk/{ticket}/a1"]
        # one commit per attempt: the parent of the attempt's commit is already on the track
        sh_git(repo, "merge-base", "--is-ancestor", f"{attempt}^", branch)
        keys = sh_git(repo, "log", "--format=%(trailers:key=Conductor-Key,valueonly)", branch).split()
        assert keys.count(f"trk/{ticket}/a1") == 1
        for name in files:
            assert sh_git(repo, "show", f"{branch}:{name}") == f"# written by {ticket}\nVALUE = {ticket!r}\n"
    wts = sh_git(repo, "worktree", "list", "--porcelain").count("worktree ")
    assert wts == 1, sh_git(repo, "worktree", "list")
    leftovers = [p for p in (repo / ".git").rglob("*.lock")]
    assert leftovers == []
    track_dir = tmp / "wts" / "trk"
    assert not track_dir.exists() or not any(track_dir.iterdir())


def _one_round(tmp: Path, delay: float | None, crash_at: str | None = None) -> tuple[bool, str, str]:
    """Kill after `delay` (None: run uncut), resume, check. Returns (killed, last journalled phase, resume output)."""
    repo = make_repo(tmp)
    make_person_busy(repo)
    before = person_state(repo)
    journal = tmp / "journal.jsonl"
    args = [str(repo), str(tmp / "wts"), str(journal)]
    killed = (delay is not None or crash_at is not None) and _run_child(args, delay, crash_at) is None
    phase = journal.read_text().splitlines()[-1][-40:] if journal.exists() and journal.read_text() else "start"
    resumed = _run_child(args, kill_after=None)
    assert resumed is not None
    assert resumed.returncode == 0 and "DONE" in resumed.stdout, resumed.stdout
    _check_invariants(tmp, repo)
    assert person_state(repo) == before
    return killed, phase, resumed.stdout


def _loop(tmp_path: Path, rounds: int, seed: int) -> None:
    rng = random.Random(seed)
    probe = tmp_path / "probe"
    probe.mkdir()
    repo = make_repo(probe)
    start = time.monotonic()  # an uncut run: how long the whole sequence takes on this machine now
    done = _run_child([str(repo), str(probe / "wts"), str(probe / "journal.jsonl")], kill_after=None)
    full_s = time.monotonic() - start
    assert done is not None and done.returncode == 0, done
    kills = repaired = 0
    for i in range(rounds):
        d = tmp_path / f"r{i}"
        d.mkdir()
        if i % 2:  # a kill at a random moment
            killed, _phase, out = _one_round(d, rng.uniform(0.2 * full_s, full_s))
        else:  # a kill inside a chosen git step, some milliseconds after it started
            step = rng.choice(sorted(CRASH_STEPS))
            at = f"{step}|{rng.randint(1, CRASH_STEPS[step])}|{rng.uniform(0.0, 0.02):.4f}"
            killed, _phase, out = _one_round(d, None, at)
            assert killed, f"the armed crash {at!r} did not fire"
        kills += killed
        repaired += "incomplete_removed" in out or "stale_lock_removed" in out
    print(f"uncut run {full_s:.2f}s; {kills}/{rounds} rounds killed mid-way; "
          f"{repaired} resumes repaired a half-made worktree or a stale lock")
    assert kills >= rounds // 2


@pytest.mark.timeout(900)
def test_kill_9_at_random_points_then_resume(tmp_path: Path) -> None:
    _loop(tmp_path, 20, seed=int(os.environ.get("CONDUCTOR_CRASH_SEED", "10")))


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_kill_9_at_random_points_then_resume_100_times(tmp_path: Path) -> None:
    if os.environ.get("CONDUCTOR_SLOW") != "1":
        pytest.skip("set CONDUCTOR_SLOW=1 to run the 100-kill loop")
    _loop(tmp_path, 100, seed=int(os.environ.get("CONDUCTOR_CRASH_SEED", "100")))
