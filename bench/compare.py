"""Run one bench script on an earlier revision and on this tree, in one run, and print both side by side.

Shared machines are noisy, so a figure means something only next to its baseline measured in the same run:

    .venv/bin/python bench/compare.py --rev bb08b11 -- dag_makespan.py --dags 1
    .venv/bin/python bench/compare.py --rev bb08b11 --new-args "--no-journal" -- dag_makespan.py --dags 1

The earlier revision is checked out with `git worktree add --detach` into a temporary folder (removed
afterwards) and its own copy of the bench runs against its own code; then this tree's does. Arguments after
`--` go to both; `--old-args` / `--new-args` add arguments to one side only (a flag the old bench lacks).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def run(tree: Path, script: str, args: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run([sys.executable, str(tree / "bench" / script), *args], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=3600)
    out = proc.stdout + (f"\n[exit {proc.returncode}]\n{proc.stderr[-2000:]}" if proc.returncode else "")
    return out.rstrip()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    cut = argv.index("--")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rev", required=True, help="the earlier revision (a commit, tag or branch)")
    ap.add_argument("--old-args", default="", help="extra arguments for the earlier revision's bench only")
    ap.add_argument("--new-args", default="", help="extra arguments for this tree's bench only")
    opts = ap.parse_args(argv[:cut])
    script, *common = argv[cut + 1:]
    with tempfile.TemporaryDirectory(prefix="conductor-bench-") as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", "--quiet", str(old), opts.rev],
                       check=True)
        try:
            if not (old / "bench" / script).exists():
                print(f"{script} does not exist at {opts.rev}", file=sys.stderr)
                return 2
            before = run(old, script, [*common, *shlex.split(opts.old_args)])
        finally:
            subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(old)], check=False)
    after = run(HERE, script, [*common, *shlex.split(opts.new_args)])
    rule = "=" * 100
    print(f"{rule}\n{script} at {opts.rev} {' '.join(common)} {opts.old_args}\n{rule}\n{before}\n")
    print(f"{rule}\n{script} at this tree {' '.join(common)} {opts.new_args}\n{rule}\n{after}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
