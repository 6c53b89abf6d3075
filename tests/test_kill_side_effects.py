"""kill -9 at random moments never repeats a side effect (issue 9 class 5, reliability F1).

A child process runs a real session on a six-ticket track whose workers each edit their own file and run a
command; the commands and edits count themselves (a line per run in a marker file, the ticket's id in its
note). The parent kills the child with SIGKILL at a random moment — not at chosen points — and starts it
again, over and over, until the track is done. Then every side effect must have happened exactly once:

  * an edit whose intent was journalled but whose result was not is reconciled by its file's pre/post image
    (applied once, never twice);
  * a command in the same position goes to a person ("may already have run"); the child's stand-in person
    looks at the marker before answering, as a person would, and no policy answers in its place.

CI runs a short loop; the slow-marked test runs at least 100 kills.
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

REPO = Path(__file__).resolve().parent.parent
TICKETS = ["T1", "T2", "T3", "T4", "T5", "T6"]

_CHILD = textwrap.dedent('''
    import sys, threading
    from pathlib import Path
    from conductor.approval_payloads import ToolPayload
    from conductor.config import Config
    from conductor.messages import ToolCall
    from conductor.providers.scripted import Reply, ScriptedProvider, demo_reply
    from conductor.session import Session

    root, bump = Path(sys.argv[1]), sys.argv[2]
    ws = root / "ws"
    cfg = Config()
    cfg = cfg.updated({"engine": {"max_workers": 3}})
    cfg = cfg.updated({"approvals": {"auto": ["plan", "tickets", "tool"]}})   # writes and edits; every command waits for a person

    def script(req, n):
        if req.tier != 3:
            return demo_reply(req, n)
        t, turns = req.prov.ticket_id, sum(1 for m in req.messages if m.role == "model")
        if turns == 0:
            return Reply(text="editing\\n", tool_calls=(ToolCall(f"{t}-edit", "edit_file", {
                "path": f"notes/{t}.md", "search": "END\\n", "replace": f"{t}\\nEND\\n"}),))
        if turns == 1:
            return Reply(text="marking\\n", tool_calls=(ToolCall(f"{t}-cmd", "run_command", {"argv": [bump, t]}),))
        return Reply(text=f"{t} is done\\n")

    session = Session(cfg, workspace=ws, tracks_dir=root / "tracks", linger=False,
                      provider=ScriptedProvider(fallback=script, latency_s=0.02, chunk_delay_s=0.002))

    def person():  # approves commands; answers "may already have run" the way a person would: by looking
        while True:
            for req in session.pending_approvals():
                if req.kind.value != "tool":
                    continue
                ran = (ws / "marks" / f"{req.prov.ticket_id}.txt").read_text().count("ran")
                try:
                    if isinstance(req.payload, ToolPayload) and req.payload.interrupted and ran:
                        session.resolve_approval(req.id, approved=False, reason="it already ran")
                    else:
                        session.resolve_approval(req.id, approved=True)
                except Exception:
                    pass
            threading.Event().wait(0.01)  # ok-sleep: a polling stand-in for a person
    threading.Thread(target=person, daemon=True).start()

    if session.recover():  # planning that a kill interrupted continues where it stopped
        for h in list(session.plans.values()):
            h.wait(60)
    tracks = session.list_tracks()
    if not tracks:
        session.plan_epic("Mark every ticket").wait(60)
        tracks = session.list_tracks()
    (track,) = tracks
    engine = session.engines.get(track.id) or session.run_track(track.id)
    done = engine.join(120)
    session.shutdown()
    print("STATUS", done.status.value, flush=True)
    sys.exit(0 if done.status.value == "done" else 3)
''')

_BUMP = textwrap.dedent('''\
    #!{python}
    import sys
    from pathlib import Path
    p = Path("marks") / (sys.argv[1] + ".txt")
    with open(p, "a") as f:
        f.write("ran\\n")
''')


def _scenario(tmp: Path, rnd: random.Random, max_kills: int) -> int:
    """One track driven to done through random kills. Returns how many kills landed."""
    ws = tmp / "ws"
    (ws / "notes").mkdir(parents=True)
    (ws / "marks").mkdir()
    for t in TICKETS:
        (ws / "notes" / f"{t}.md").write_text("END\n")
        (ws / "marks" / f"{t}.txt").write_text("start\n")
    bump = tmp / "bin" / "bump"
    bump.parent.mkdir()
    bump.write_text(_BUMP.format(python=sys.executable))
    bump.chmod(0o755)
    script = tmp / "child.py"
    script.write_text(_CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    kills = 0
    for _ in range(max_kills + 20):
        proc = subprocess.Popen([sys.executable, str(script), str(tmp), str(bump)], cwd=ws, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=rnd.uniform(0.3, 2.5) if kills < max_kills else 120)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            kills += 1
            continue
        assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{out.decode()}\n{err.decode()[-3000:]}"
        break
    else:
        pytest.fail("the track never finished")
    for t in TICKETS:
        marks = (ws / "marks" / f"{t}.txt").read_text()
        assert marks.count("ran") == 1, f"{t}'s command ran {marks.count('ran')} times (after {kills} kills)"
        note = (ws / "notes" / f"{t}.md").read_text()
        assert note == f"{t}\nEND\n", f"{t}'s edit was applied {note.count(t)} times: {note!r}"
    return kills


def _kill_loop(tmp_path: Path, total_kills: int, seed: int) -> None:
    rnd = random.Random(seed)
    kills, n = 0, 0
    while kills < total_kills:
        n += 1
        kills += _scenario(tmp_path / f"s{n}", rnd, min(12, total_kills - kills))
    print(f"kill -9 x {kills} over {n} tracks: 0 repeated side effects")


def test_random_kills_never_repeat_an_edit_or_a_command(tmp_path: Path) -> None:
    _kill_loop(tmp_path, total_kills=12, seed=20261127)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_hundred_random_kills_never_repeat_a_side_effect(tmp_path: Path) -> None:
    _kill_loop(tmp_path, total_kills=100, seed=7)
