"""Kill a headless run with SIGKILL mid-track, resume it, and check every ticket is done exactly once.

Why a subprocess: only a real kill shows that what is on disk (snapshot + journal) is enough to continue.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from helpers import journal_lines, wait_for

CLI = [sys.executable, "-m", "conductor.cli"]


def done_counts(journal: Path) -> Counter[str]:
    return Counter(r["data"]["ticket_id"] for r in journal_lines(journal)
                   if r["type"] == "ticket_update" and r["data"]["fields"].get("status") == "done")


def test_sigkill_mid_track_then_resume_completes_each_ticket_once(workspace: Path, tmp_path: Path) -> None:
    tracks = tmp_path / "tracks"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run = subprocess.Popen([*CLI, "--tracks-dir", str(tracks), "run", "--epic", "Add OAuth login", "--workspace",
                            str(workspace), "--provider", "scripted", "--approve", "all", "--workers", "2",
                            "--latency", "0.15"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        def two_done() -> Path | None:
            for j in tracks.glob("*/events.jsonl"):
                if sum(done_counts(j).values()) >= 2:
                    return j
            assert run.poll() is None, "the run ended before it could be killed"
            return None
        journal = wait_for(two_done, 60, "two tickets done")
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(10)
    assert run.returncode == -signal.SIGKILL
    before = done_counts(journal)
    assert 2 <= sum(before.values()) < 6, "killed mid-track"

    track_id = journal.parent.name
    resumed = subprocess.run([*CLI, "--tracks-dir", str(tracks), "run", "--resume", track_id, "--workspace",
                              str(workspace), "--provider", "scripted", "--approve", "all"],
                             capture_output=True, text=True, timeout=120, env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = done_counts(journal)
    assert after == Counter({f"T{i}": 1 for i in range(1, 7)}), after
    lines = journal_lines(journal)
    assert [r["seq"] for r in lines] == list(range(1, len(lines) + 1))  # no gap, no torn line left behind

    listing = subprocess.run([*CLI, "--tracks-dir", str(tracks), "tracks"], capture_output=True, text=True, timeout=60)
    assert f"{track_id}" in listing.stdout and "done" in listing.stdout and "6/6 tickets" in listing.stdout


def test_cli_reports_a_bad_config_key_and_a_missing_key(tmp_path: Path, workspace: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[engine]\nmax_workers = 'many'\n")
    r = subprocess.run([*CLI, "--config", str(bad), "tracks"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "engine.max_workers" in r.stderr and str(bad) in r.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    r = subprocess.run([*CLI, "--tracks-dir", str(tmp_path / "t"), "run", "--epic", "x", "--workspace", str(workspace),
                        "--provider", "gemini"], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2
    assert "GEMINI_API_KEY" in r.stderr and "--provider scripted" in r.stderr
