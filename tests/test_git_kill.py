"""kill -9 at random moments of a run on a git repository: resume finishes every git step exactly once.

A child process runs a real session (six tickets, a diamond and a chain, three workers) on a real repository;
the parent kills it with SIGKILL at random moments and starts it again until the track is done. Then: every
ticket is merged into the track branch exactly once, every merged attempt is one commit, the track holds every
ticket's file, and the person's checkout (HEAD, index, status, stash) is as it was.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.git_support import make_person_busy, make_repo, person_state, sh_git

REPO = Path(__file__).resolve().parent.parent

_CHILD = textwrap.dedent('''
    import os, sys
    from pathlib import Path
    if os.environ.get("CONDUCTOR_CRASH_AT"):  # kill -9 this process group at a random moment inside a git step
        sys.path.insert(0, os.environ["CONDUCTOR_TESTS_DIR"])
        from git_crash_child import arm_crash
        arm_crash(os.environ["CONDUCTOR_CRASH_AT"])
    from conductor.config import Config
    from conductor.providers.scripted import ScriptedProvider
    from conductor.session import Session

    root, ws = Path(sys.argv[1]), Path(sys.argv[2])
    cfg = Config()
    cfg = cfg.updated({"engine": {"max_workers": 3}})
    cfg = cfg.updated({"approvals": {"auto": ["plan", "tickets", "tool"]}})
    cfg = cfg.updated({"git": {"worktrees_root": str(root / "worktrees")}})
    session = Session(cfg, workspace=ws, tracks_dir=root / "tracks", linger=False,
                      provider=ScriptedProvider(latency_s=0.02, chunk_delay_s=0.002))
    if session.recover():
        for h in list(session.plans.values()):
            h.wait(60)
    tracks = session.list_tracks()
    if not tracks:
        session.plan_epic("Write the notes").wait(60)
        tracks = session.list_tracks()
    (track,) = tracks
    engine = session.engines.get(track.id) or session.run_track(track.id)
    done = engine.join(120)
    session.shutdown()
    print("STATUS", done.status.value, [(t.id, t.status.value, t.blocked_reason) for t in done.tickets], flush=True)
    sys.exit(0 if done.status.value == "done" else 3)
''')


AIMED_STEPS = {"worktree add": 2, "add --all": 4, "write-tree": 4, "commit-tree": 8, "merge-tree": 4,
               "update-ref": 12}
"""git subcommands of a worktree add, a commit and a merge, each with how many times a run surely calls it (the
engine pools worktrees: only the first attempts of a run add one)."""
STEP_CHOICES = [*sorted(AIMED_STEPS), "update-ref", "update-ref"]
"""update-ref moves a branch (an attempt's, on its commit, or the track's, on a merge): the moment after it, before
the journal knows, is the one a resume must get exactly right, so it is aimed at more often."""


def _aim(rnd: random.Random, first: bool) -> str:
    """CONDUCTOR_CRASH_AT for git_crash_child.arm_crash: a random step, a random call of it, a random moment while
    it runs (git is killed with the engine, as in a power cut, when it has not finished by then). Worktrees are
    added only at the start of a track (then pooled), so a track's first run aims there half the time."""
    step = "worktree add" if first and rnd.random() < 0.5 else rnd.choice(STEP_CHOICES)
    return f"{step}|{rnd.randint(1, AIMED_STEPS[step])}|{rnd.uniform(0.0, 0.04):.4f}"


def _scenario(tmp: Path, rnd: random.Random, max_kills: int, *, aimed: bool = False,
              landed: list[str] | None = None) -> int:
    repo = make_repo(tmp)
    make_person_busy(repo)
    before = person_state(repo)
    script = tmp / "child.py"
    script.write_text(_CHILD)
    env = {k: v for k, v in os.environ.items() if k != "CONDUCTOR_CRASH_AT"}
    env.update(PYTHONPATH=str(REPO), CONDUCTOR_TESTS_DIR=str(Path(__file__).resolve().parent))
    kills = 0
    for i in range(max_kills + 20):
        armed = aimed and kills < max_kills
        run_env = {**env, "CONDUCTOR_CRASH_AT": _aim(rnd, first=i == 0)} if armed else env
        proc = subprocess.Popen([sys.executable, str(script), str(tmp), str(repo)], cwd=tmp, env=run_env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            timeout = 120 if armed or kills >= max_kills else rnd.uniform(0.4, 3.0)
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            kills += 1
            continue
        if proc.returncode == -signal.SIGKILL and armed:  # it killed itself inside the aimed git step
            kills += 1
            if landed is not None:
                landed += [line.split("during ", 1)[1] for line in out.decode().splitlines()
                           if line.startswith("crash: killing during ")]
            continue
        assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{out.decode()}\n{err.decode()[-3000:]}"
        break  # the track is done (an armed run whose aimed call never came finishes it too)
    else:
        pytest.fail("the track never finished")
    (track_branch,) = [b for b in sh_git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/conductor/")
                       .split() if "--" not in b]
    merges = sh_git(repo, "log", "--first-parent", "--format=%H %(trailers:key=Conductor-Merged,valueonly,separator=)",
                    f"{before.head.strip()}..{track_branch}").splitlines()
    keys = [line.split()[1] for line in merges if len(line.split()) == 2]
    tickets = sorted(k.split("/")[1] for k in keys)
    assert tickets == ["T1", "T2", "T3", "T4", "T5", "T6"], f"merged: {keys} (after {kills} kills)"
    for line in merges:
        sha = line.split()[0]
        count = sh_git(repo, "rev-list", "--count", f"{sha}^1..{sha}^2").strip()
        assert count == "1", f"merge {line} brought {count} commits (one commit per attempt; {kills} kills)"
    files = set(sh_git(repo, "ls-tree", "-r", "--name-only", track_branch).split())
    assert {f"notes/{n}.md" for n in ("survey", "model", "interface", "core", "tests", "docs")} <= files
    assert person_state(repo) == before, f"the person's checkout changed (after {kills} kills)"
    return kills


def test_random_kills_during_a_git_run_merge_every_ticket_exactly_once(tmp_path: Path) -> None:
    rnd = random.Random(20261127)
    kills, n = 0, 0
    while kills < 8:
        n += 1
        kills += _scenario(tmp_path / f"s{n}", rnd, 8 - kills)
    print(f"kill -9 x {kills} over {n} git tracks: every ticket merged once")


def test_kills_aimed_inside_worktree_add_commit_and_merge_of_the_real_engine_resume_exactly_once(
        tmp_path: Path) -> None:
    """The engine (a real session on the scripted provider) is killed with its git child at a random moment
    inside `worktree add`, the commit's `add`/`write-tree`/`commit-tree`/`update-ref` and the merge's
    `merge-tree`/`commit-tree`/`update-ref`, chosen by an armed hook, then resumed: every invariant holds."""
    rnd = random.Random(20261128)
    landed: list[str] = []
    kills, n = 0, 0
    while kills < 16 or not {"worktree add", "merge-tree"} <= set(landed) or \
            not {"write-tree", "commit-tree", "add --all"} & set(landed):
        n += 1
        assert n <= 16, f"the aimed kills landed only in {sorted(set(landed))} over {n - 1} tracks"
        kills += _scenario(tmp_path / f"s{n}", rnd, 6, aimed=True, landed=landed)
    print(f"aimed kill -9 x {kills} over {n} git tracks, inside: {sorted(set(landed))}")
