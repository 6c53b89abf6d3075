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
    import sys
    from pathlib import Path
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


def _scenario(tmp: Path, rnd: random.Random, max_kills: int) -> int:
    repo = make_repo(tmp)
    make_person_busy(repo)
    before = person_state(repo)
    script = tmp / "child.py"
    script.write_text(_CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    kills = 0
    for _ in range(max_kills + 20):
        proc = subprocess.Popen([sys.executable, str(script), str(tmp), str(repo)], cwd=tmp, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=rnd.uniform(0.4, 3.0) if kills < max_kills else 120)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            kills += 1
            continue
        assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{out.decode()}\n{err.decode()[-3000:]}"
        break
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
