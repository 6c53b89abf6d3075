"""The git cost of one ticket: worktree add, commit, conflict check, merge, remove, on a big repository.

A repository of `--files` files (default 10,000, in folders of 100) is generated in a temp folder. Then
`--tickets` tickets run one after another through conductor.git, each editing two files of its own:

    start_attempt   branch from the track tip + a parked worktree switched to it (`git checkout`: only the
                    files that differ), or `git worktree add` (a full checkout) when the pool is empty
    commit_attempt  `git add --all` + one commit (hooks run: none installed here)
    check_merge     `git merge-tree --write-tree` of the ticket commit onto the track tip
    merge_attempt   idempotency lookup + the same check + commit-tree + update-ref (compare and swap)
    remove_attempt  status check (never delete a dirty worktree) + park it (`checkout --detach`, ignored files
                    deleted) while the pool has room, else `git worktree remove`

Printed: median and p90 of each step, and the per-ticket total (start + commit + merge + remove; the separate
check is shown for reference, merge_attempt already includes one), the same without the pool (a fresh
checkout per ticket), beside the wall time per ticket of the headless pipeline (real engine, Tier 3 + Tier 4 with the scripted provider, latency 0) on a small workspace.
Target: git overhead under 150 ms per ticket.

    .venv/bin/python bench/worktrees.py                       # 10,000 files, 20 tickets
    .venv/bin/python bench/worktrees.py --files 500 --tickets 5   # CI smoke

A benchmark, not a test: it prints figures and exits 0 unless something crashes (--check: exit 1 when the
median per-ticket total misses the target).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conductor.git import (
    Committed,
    GitSettings,
    Identity,
    Merged,
    Removed,
    TrackGit,
    open_repository,
)
from conductor.git.runner import git_env

T = TypeVar("T")
TARGET_MS = 150.0


def generate_repo(root: Path, files: int) -> Path:
    repo = root / "big-repo"
    repo.mkdir()
    for i in range(files):
        d = repo / f"pkg{i // 100:03d}"
        if i % 100 == 0:
            d.mkdir()
        (d / f"mod{i % 100:02d}.py").write_text(f"# module {i}\nVALUE_{i} = {i}\n\ndef f_{i}(x):\n    return x + {i}\n")
    env = git_env()
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=Bench", "-c", "user.email=b@example.com", "commit", "-qm", "generated"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    return repo


def timed(samples: dict[str, list[float]], step: str, fn: Callable[[], T]) -> T:
    start = time.perf_counter()
    out = fn()
    samples.setdefault(step, []).append((time.perf_counter() - start) * 1000)
    return out


def git_per_ticket(repo: Path, root: Path, tickets: int, files: int, *, pool: int = 4,
                   track: str = "bench") -> dict[str, list[float]]:
    tg = TrackGit(open_repository(repo), track, GitSettings(worktrees_root=root / "worktrees", pool_size=pool,
                                                           author=Identity("Bench", "b@example.com")))
    tg.create_track()
    samples: dict[str, list[float]] = {}
    for n in range(tickets):
        ticket = f"T{n + 1}"
        wt = timed(samples, "start_attempt", lambda t=ticket: tg.start_attempt(t, 1))
        for k in (2 * n, 2 * n + 1):  # the worker's edit of two files of its own (not timed)
            i = (k * 37) % files
            path = wt.path / f"pkg{i // 100:03d}" / f"mod{i % 100:02d}.py"
            path.write_text(path.read_text() + f"# edited by {ticket}\n")
        c = timed(samples, "commit_attempt", lambda w=wt: tg.commit_attempt(w, model="bench", title="edit"))
        assert isinstance(c, Committed), c
        timed(samples, "check_merge", lambda sha=c.sha: tg.check_merge(sha))
        m = timed(samples, "merge_attempt", lambda t=ticket, sha=c.sha: tg.merge_attempt(t, 1, sha))
        assert isinstance(m, Merged), m
        r = timed(samples, "remove_attempt", lambda w=wt: tg.remove_attempt(w))
        assert isinstance(r, Removed), r
    steps = ("start_attempt", "commit_attempt", "merge_attempt", "remove_attempt")
    samples["total"] = [sum(samples[s][i] for s in steps) for i in range(tickets)]
    return samples


def scripted_ticket_ms(root: Path) -> tuple[float, int]:
    """Wall ms per ticket of the headless pipeline with the scripted provider (latency 0)."""
    from conductor.config import Config
    from conductor.providers.scripted import ScriptedProvider
    from conductor.session import Session

    ws = root / "ws"
    ws.mkdir()
    (ws / "README.md").write_text("# demo workspace\n")
    (ws / "app.py").write_text("def add(a, b):\n    return a + b\n")
    session = Session(Config(), workspace=ws, tracks_dir=root / "tracks", provider=ScriptedProvider(), linger=False)
    session.broker.auto_approve({"plan", "tickets", "spawn", "tool"})
    start = time.perf_counter()
    handle = session.plan_epic("Add OAuth login to the app")
    track_ids = handle.wait(timeout=60)
    planned = time.perf_counter()
    count = 0
    for tid in track_ids:
        session.engines[tid].join(timeout=120)
        count += len(session.engines[tid].track.tickets)
    elapsed = time.perf_counter() - planned
    _ = start
    return elapsed * 1000 / max(count, 1), count


def fmt(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"median {statistics.median(values):7.1f} ms   p90 {p90:7.1f} ms"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--tickets", type=int, default=20)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-worktrees-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        repo = generate_repo(root, args.files)
        print(f"generated a repository of {args.files:,} files in {time.perf_counter() - t0:.1f}s; "
              f"git {subprocess.run(['git', '--version'], capture_output=True, text=True, check=True).stdout.split()[-1]}")
        samples = git_per_ticket(repo, root, args.tickets, args.files)
        print(f"\nper-ticket git overhead over {args.tickets} tickets:")
        for step in ("start_attempt", "commit_attempt", "check_merge", "merge_attempt", "remove_attempt"):
            print(f"  {step:<16} {fmt(samples[step])}")
        print(f"  {'TOTAL':<16} {fmt(samples['total'])}   (target < {TARGET_MS:.0f} ms; check_merge not added: "
              "merge_attempt includes it)")
        try:
            per, count = scripted_ticket_ms(root)
            print(f"\none scripted ticket (headless pipeline, Tier 3 + Tier 4, scripted provider, latency 0): "
                  f"{per:.1f} ms wall per ticket over {count} tickets")
        except Exception as exc:  # noqa: BLE001 - the pipeline's API is being reworked; git figures stand alone
            print(f"\none scripted ticket: not measured ({type(exc).__name__}: {exc})")
        fresh_n = min(5, args.tickets)
        fresh = git_per_ticket(repo, root, fresh_n, args.files, pool=0, track="bench-nopool")
        print(f"\nthe same without the worktree pool (pool_size=0: `worktree add` + `worktree remove` every ticket), "
              f"{fresh_n} tickets:")
        for step in ("start_attempt", "remove_attempt", "total"):
            print(f"  {step.upper() if step == 'total' else step:<16} {fmt(fresh[step])}")
        median = statistics.median(samples["total"])
        print(f"\ngit overhead per ticket: median {median:.1f} ms — "
              f"{'within' if median < TARGET_MS else 'OVER'} the {TARGET_MS:.0f} ms target")
    return 1 if args.check and median >= TARGET_MS else 0


if __name__ == "__main__":
    sys.exit(main())
