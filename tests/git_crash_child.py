"""A conductor's git steps for a small track, run as a child process that the test kills with SIGKILL at a
random moment, then runs again to resume. Usage: git_crash_child.py REPO WORKTREES_ROOT JOURNAL

The journal is what an engine would keep: one JSON line per attempt phase, written before the step it
announces (fsynced). On start the child reconciles with it, then runs every step again: each is idempotent,
so a resume finishes what the kill interrupted exactly once."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conductor.git import (
    AttemptKey,
    Committed,
    GitSettings,
    Identity,
    JournalledAttempt,
    KeptDirty,
    Merged,
    TrackGit,
    open_repository,
    reconcile,
)

TICKETS = {"T1": ["a.py"], "T2": ["b.py"], "T3": ["new/t3.py"]}
ORDER = ["T1", "T2", "T3"]  # T3 depends on T1 and T2


def content(ticket: str, name: str) -> str:
    return f"# written by {ticket}\nVALUE = {ticket!r}\n"


def journal_read(path: Path) -> dict[str, dict[str, str]]:
    state: dict[str, dict[str, str]] = {}
    if not path.exists():
        return state
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a torn last line from the kill
            continue
        state[rec["ticket"]] = rec
    return state


def journal_write(path: Path, rec: dict[str, str]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")
        f.flush()
        os.fsync(f.fileno())


def arm_crash(spec: str) -> None:
    """CONDUCTOR_CRASH_AT='<git subcommand words>|<occurrence>|<seconds>': when that git command starts for the
    n-th time, let it run for the given seconds, then SIGKILL this whole process group (git included)."""
    import signal
    import subprocess

    from conductor.git import runner

    words, nth, after = spec.split("|")
    want, count = words.split(), {"n": 0}
    real_run = subprocess.run

    def run(argv, **kw):  # type: ignore[no-untyped-def]
        args = [a for a in argv[1:] if a not in ("--no-pager",)]
        plain = [a for i, a in enumerate(args) if a != "-c" and (i == 0 or args[i - 1] != "-c")]
        if plain[:len(want)] == want:
            count["n"] += 1
            if count["n"] == int(nth):
                kw.pop("capture_output", None)
                kw.pop("check", None)
                kw.pop("timeout", None)
                data = kw.pop("input", None)
                if data is not None:
                    kw["stdin"] = subprocess.PIPE
                proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
                if data is not None:
                    assert proc.stdin is not None
                    proc.stdin.write(data)
                    proc.stdin.close()
                try:
                    proc.wait(timeout=float(after))
                except subprocess.TimeoutExpired:
                    pass
                print(f"crash: killing during {words}", flush=True)
                os.killpg(0, signal.SIGKILL)
        return real_run(argv, **kw)

    runner.subprocess.run = run  # type: ignore[attr-defined]


def main() -> int:
    if os.environ.get("CONDUCTOR_CRASH_AT"):
        arm_crash(os.environ["CONDUCTOR_CRASH_AT"])
    repo_dir, root, journal = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    tg = TrackGit(open_repository(repo_dir), "trk", GitSettings(worktrees_root=root,
                                                               author=Identity("Bot", "bot@example.com")))
    known = journal_read(journal)
    attempts = [JournalledAttempt(AttemptKey("trk", t, 1), r["branch"], Path(r["path"]), r.get("base", ""),
                                  r["phase"])  # type: ignore[arg-type]
                for t, r in known.items()]
    report = reconcile(tg, attempts)
    for line in report.lines():
        print("reconcile:", line, flush=True)
    tg.create_track()
    for ticket in ORDER:
        key = AttemptKey("trk", ticket, 1)
        if known.get(ticket, {}).get("phase") == "removed":
            continue
        base = {"ticket": ticket, "branch": tg.attempt_branch(key), "path": str(tg.attempt_path(key))}
        if tg.find_merge(key) is None:
            journal_write(journal, {**base, "phase": "creating"})
            wt = tg.start_attempt(ticket, 1)
            base["path"] = str(wt.path)
            journal_write(journal, {**base, "base": wt.base_sha, "phase": "running"})
            for name in TICKETS[ticket]:
                (wt.path / name).parent.mkdir(parents=True, exist_ok=True)
                (wt.path / name).write_text(content(ticket, name))
            res = tg.commit_attempt(wt, model="scripted", title=f"{ticket} work")
            if not isinstance(res, Committed):
                print("unexpected commit result", res, flush=True)
                return 3
            journal_write(journal, {**base, "base": wt.base_sha, "phase": "committed"})
            merged = tg.merge_attempt(ticket, 1)
            if not isinstance(merged, Merged):
                print("unexpected merge result", merged, flush=True)
                return 4
        else:
            wt = tg.start_attempt(ticket, 1) if tg.attempt_entry(key) is not None else None
        journal_write(journal, {**base, "phase": "merged"})
        if wt is not None:
            removed = tg.remove_attempt(wt)
            if isinstance(removed, KeptDirty):
                print("dirty after merge", removed, flush=True)
                return 5
        journal_write(journal, {**base, "phase": "removed"})
    tg.drain_pool()
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
