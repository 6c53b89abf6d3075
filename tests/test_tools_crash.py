"""Kill -9 around an approved side effect, restart, and check it ran exactly once (reliability.md F1).

A small script drives ToolGate + Journal in a child process, as a worker would: a person (a thread) approves
each call, the broker's hook journals the decision, the gate journals the result. The parent SIGKILLs the
child at a chosen point and starts it again on the same journal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers import journal_lines, wait_for

REPO = Path(__file__).resolve().parents[1]

DRIVER = textwrap.dedent("""
    import json, os, signal, sys, threading
    from pathlib import Path
    from conductor.approvals import ApprovalBroker
    from conductor.events import Provenance
    from conductor.messages import ToolCall
    from conductor.records import ApprovalDecided
    from conductor.store import Journal
    from conductor.tools import ToolContext, ToolGate, workspace_toolbox

    ws, jpath, die_in_hook = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "die-in-hook"
    journal = Journal(jpath)
    broker = ApprovalBroker()
    asked = []

    def journal_decision(req, decision):  # what the session wires: the decision is on disk first
        journal.append(ApprovalDecided(key=req.id, request=req, decision=decision))
        if die_in_hook:  # the crash window between "approved" and "done"
            os.kill(os.getpid(), signal.SIGKILL)

    def person(req):  # approves at once, from another thread
        asked.append(req.payload.call_id)
        threading.Thread(target=broker.resolve, args=(req.id,), kwargs={"approved": True}).start()

    broker.on_resolved.append(journal_decision)
    broker.on_requested.append(person)
    gate = ToolGate(workspace_toolbox(ws), broker, journal)
    ctx = ToolContext(ws, Provenance(track_id="T", ticket_id="K", tier=3, attempt=1))
    calls = [ToolCall("c1", "run_command", {"argv": [sys.executable, "append.py"]}),
             ToolCall("c2", "write_file", {"path": "after.txt", "content": "second step\\n"})]
    for call in calls:
        result, replayed = gate.run(call, ctx)
        print(json.dumps({"call": call.id, "ok": result.ok, "replayed": replayed, "asked": list(asked)}),
              flush=True)
        if sys.stdin.readline().strip() != "next":  # the parent decides: go on, or SIGKILL us here
            break
""")


def _start(ws: Path, journal: Path, mode: str = "") -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(ws), str(journal), mode], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "append.py").write_text("open('counter.txt', 'a').write('ran\\n')\n")  # not idempotent on purpose
    return ws, tmp_path / "track" / "events.jsonl"


def _finish(proc: subprocess.Popen[str]) -> list[dict]:
    """Answer 'next' to every step and collect the step reports."""
    steps = []
    for _ in range(2):
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line, proc.stderr.read()  # type: ignore[union-attr]
        steps.append(json.loads(line))
        proc.stdin.write("next\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
    assert proc.wait(30) == 0
    return steps


def test_kill_after_the_approved_command_is_journalled_then_resume(tmp_path: Path) -> None:
    ws, journal = _setup(tmp_path)
    first = _start(ws, journal)
    step = json.loads(first.stdout.readline())  # type: ignore[union-attr]
    assert step == {"call": "c1", "ok": True, "replayed": False, "asked": ["c1"]}
    first.send_signal(signal.SIGKILL)  # right after the result is journalled, before anything else
    assert first.wait(30) == -signal.SIGKILL
    assert (ws / "counter.txt").read_text() == "ran\n" and not (ws / "after.txt").exists()

    steps = _finish(_start(ws, journal))
    assert steps[0] == {"call": "c1", "ok": True, "replayed": True, "asked": []}  # not run, not asked again
    assert steps[1] == {"call": "c2", "ok": True, "replayed": False, "asked": ["c2"]}
    assert (ws / "counter.txt").read_text() == "ran\n"  # exactly once
    assert (ws / "after.txt").read_text() == "second step\n"


def test_kill_between_the_journalled_approval_and_the_action_asks_again_and_runs_once(tmp_path: Path) -> None:
    ws, journal = _setup(tmp_path)
    dead = _start(ws, journal, "die-in-hook")
    assert dead.wait(30) == -signal.SIGKILL
    assert not (ws / "counter.txt").exists()  # the decision was on disk; the command had not run
    types = [json.loads(line)["type"] for line in journal.read_text().splitlines()]
    assert types == ["approval_resolved"]

    steps = _finish(_start(ws, journal))
    assert steps[0] == {"call": "c1", "ok": True, "replayed": False, "asked": ["c1"]}  # asked again, ran once
    assert (ws / "counter.txt").read_text() == "ran\n"
    steps = _finish(_start(ws, journal))  # a third start replays both
    assert [s["replayed"] for s in steps] == [True, True] and all(s["asked"] == [] for s in steps)
    assert (ws / "counter.txt").read_text() == "ran\n"


def _journal(tracks: Path) -> list[dict]:
    return journal_lines(*tracks.glob("*/events.jsonl"))


def _written(tracks: Path) -> list[str]:
    return [r["data"]["result"]["output"]["path"] for r in _journal(tracks)
            if r["type"] == "tool_result" and r["data"]["result"]["name"] == "write_file" and r["data"]["result"]["ok"]]


def test_through_the_cli_a_journalled_write_is_not_repeated_on_resume(tmp_path: Path) -> None:
    ws, tracks = tmp_path / "ws", tmp_path / "tracks"
    ws.mkdir()
    cli = [sys.executable, "-m", "conductor.cli", "--tracks-dir", str(tracks), "run"]
    common = ["--workspace", str(ws), "--provider", "scripted", "--approve", "all", "--workers", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.Popen([*cli, "--epic", "Add login", *common, "--latency", "0.2"], cwd=tmp_path, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _written(tracks) or run.poll() is not None, 60, "a journalled write")
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(10)
    assert run.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    before = {p: (ws / p).stat() for p in _written(tracks)}
    assert before
    track = next(p.parent.name for p in tracks.glob("*/events.jsonl") if not p.parent.name.startswith("_"))

    resumed = subprocess.run([*cli, "--resume", track, *common], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    for path, st in before.items():  # an atomic rewrite would give a new inode
        assert ((ws / path).stat().st_ino, (ws / path).stat().st_mtime_ns) == (st.st_ino, st.st_mtime_ns), path
    keys = [r["data"]["key"] for r in _journal(tracks) if r["type"] == "tool_result"]
    assert len(keys) == len(set(keys)), "a tool call was executed twice"
    assert len(_written(tracks)) > len(before)  # the resumed run did the rest
