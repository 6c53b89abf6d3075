"""Close the app while a plan approval waits, start again: the same approval is back, Tier 1 is not asked
(or paid for) again, and the flow continues to a finished track."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import wait_for

from conductor.config import Config
from conductor.model import TicketStatus
from conductor.providers.scripted import ScriptedProvider
from conductor.session import Session


def test_pending_plan_approval_survives_a_restart(workspace: Path, tmp_path: Path) -> None:
    tracks = tmp_path / "tracks"
    first = ScriptedProvider()
    s1 = Session(Config(), workspace=workspace, tracks_dir=tracks, provider=first, linger=False)
    s1.plan_epic("Add OAuth login")
    (req,) = wait_for(lambda: s1.broker.pending(), 10, "the plan approval")
    assert req.kind.value == "plan"
    s1.shutdown()
    assert len(first.calls(tier=1)) == 1

    again = ScriptedProvider()
    s2 = Session(Config(), workspace=workspace, tracks_dir=tracks, provider=again, linger=False)
    try:
        assert len(s2.recover()) == 1
        (back,) = wait_for(lambda: s2.broker.pending(), 10, "the plan approval, again")
        assert (back.id, back.kind, back.payload) == (req.id, req.kind, req.payload)
        s2.resolve_approval(back.id, approved=True)
        (tickets,) = wait_for(lambda: s2.broker.pending(), 10, "the tickets approval")
        assert tickets.kind.value == "tickets"
        s2.broker.auto_approve({"tool"})
        s2.resolve_approval(tickets.id, approved=True)
        (engine,) = wait_for(lambda: list(s2.engines.values()), 10, "the run")
        track = engine.join(30)
        assert all(t.status == TicketStatus.DONE for t in track.tickets)
        assert again.calls(tier=1) == []  # the proposal came from the journal
        assert s2.ledger.by_tier()[1].calls == 1  # and its usage was counted once, from the first run
    finally:
        s2.shutdown()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_kill_during_planning_is_resumed_from_the_cli(tmp_path: Path, seed: int) -> None:
    """Issue 9 class 5: kill -9 the CLI at a random moment of planning; `run --resume-planning` continues it
    (Tier 1 is not asked again once its proposal is journalled) and the track is planned and run once."""
    import os
    import random
    import signal
    import subprocess
    import sys

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "README.md").write_text("# project\n")
    tracks = tmp_path / "tracks"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    base = [sys.executable, "-m", "conductor.cli", "--tracks-dir", str(tracks), "run", "--workspace", str(ws),
            "--provider", "scripted", "--approve", "all"]
    proc = subprocess.Popen([*base, "--epic", "Plan me", "--latency", "0.15"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # The random moment is counted from the first planning line (printed once the epic is journalled), not
    # from process start: under load, interpreter start-up alone can outlast a fixed delay, and a kill before
    # anything is durable leaves nothing to resume (a different scenario from the one this test is about).
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first, proc.communicate()[1][-2000:]
    try:
        proc.wait(timeout=random.Random(seed).uniform(0.0, 1.0))
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    proc.communicate()
    done = subprocess.run([*base, "--resume-planning"], env=env, capture_output=True, text=True, timeout=120)

    def listed() -> list[str]:
        out = subprocess.run([sys.executable, "-m", "conductor.cli", "--tracks-dir", str(tracks), "tracks"],
                             env=env, capture_output=True, text=True, timeout=60).stdout
        return [ln for ln in out.splitlines() if ln.strip() and not ln.startswith("no tracks")]

    if "no interrupted planning" not in done.stdout:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (row,) = listed()
    if " interrupted " in row:  # the kill landed in the run, after planning: the person resumes the track
        resumed = subprocess.run([*base, "--resume", row.split()[0]], env=env, capture_output=True, text=True,
                                 timeout=120)
        assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
        (row,) = listed()
    assert " done " in row, row


def test_a_kill_right_after_a_track_is_made_adopts_it_on_resume(tmp_path: Path) -> None:
    """The track's folder and journal are written, `tracks_created` is not: the resume adopts the track under the
    id journalled before it was made (tracks_creating), instead of making a second copy of it."""
    import os
    import subprocess
    import sys

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "README.md").write_text("# project\n")
    tracks = tmp_path / "tracks"
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(repo)}
    args = ["--tracks-dir", str(tracks), "run", "--workspace", str(ws), "--provider", "scripted", "--approve", "all"]
    # a kill -9 at the exact moment: the first track exists on disk, nothing after it is journalled
    killer = ("import os, sys\n"
              "from conductor import store\n"
              "made = store.TrackStore.create_track\n"
              "def create_then_die(self, track):\n"
              "    made(self, track)\n"
              "    os._exit(9)\n"
              "store.TrackStore.create_track = create_then_die\n"
              "from conductor.cli import main\n"
              "sys.exit(main(sys.argv[1:]))\n")
    died = subprocess.run([sys.executable, "-c", killer, *args, "--epic", "Plan me"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert died.returncode == 9, died.stdout[-2000:] + died.stderr[-2000:]
    assert len([p for p in tracks.iterdir() if not p.name.startswith("_")]) == 1
    done = subprocess.run([sys.executable, "-m", "conductor.cli", *args, "--resume-planning"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    made = sorted(p.name for p in tracks.iterdir() if not p.name.startswith("_"))
    assert len(made) == 1, f"the plan has one track, the store holds {made}"
