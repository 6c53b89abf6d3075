"""Run one bench script on an earlier revision and on this tree, in one run, and print both side by side.

Shared machines are noisy, so a figure means something only next to its baseline measured in the same run:

    .venv/bin/python bench/compare.py --rev bb08b11 -- dag_makespan.py --dags 1
    .venv/bin/python bench/compare.py --rev bb08b11 --new-args "--no-journal" -- dag_makespan.py --dags 1

The earlier revision is checked out with `git worktree add --detach` into a temporary folder (removed
afterwards) and its own copy of the bench runs against its own code; then this tree's does. Arguments after
`--` go to both; `--old-args` / `--new-args` add arguments to one side only (a flag the old bench lacks).
`--repeat N` alternates the two sides N times and prints each run, then the median of every figure.
`--same-bench` runs THIS tree's copy of the bench script on both sides (when the bench itself was fixed or
extended: the earlier code is then measured by the same yardstick).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
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
    ap.add_argument("--same-bench", action="store_true", help="run this tree's bench script on both sides")
    ap.add_argument("--repeat", type=int, default=1, help="alternate the two sides this many times; print medians")
    opts = ap.parse_args(argv[:cut])
    script, *common = argv[cut + 1:]
    old_args, new_args = [*common, *shlex.split(opts.old_args)], [*common, *shlex.split(opts.new_args)]
    befores: list[str] = []
    afters: list[str] = []
    with tempfile.TemporaryDirectory(prefix="conductor-bench-") as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", "--quiet", str(old), opts.rev],
                       check=True)
        try:
            if opts.same_bench:
                shutil.copy2(HERE / "bench" / script, old / "bench" / script)
            if not (old / "bench" / script).exists():
                print(f"{script} does not exist at {opts.rev}", file=sys.stderr)
                return 2
            for i in range(opts.repeat):  # alternate, so a load that comes and goes hits both sides alike
                befores.append(run(old, script, old_args))
                afters.append(run(HERE, script, new_args))
                if opts.repeat > 1:
                    print(f"--- run {i + 1} of {opts.repeat}\n[{opts.rev}]\n{befores[-1]}\n[this tree]\n{afters[-1]}\n",
                          flush=True)
        finally:
            subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(old)], check=False)
    rule = "=" * 100
    yardstick = " (this tree's bench)" if opts.same_bench else ""
    medians = f", median of {opts.repeat} alternating runs" if opts.repeat > 1 else ""
    print(f"{rule}\n{script}{yardstick} at {opts.rev} {' '.join(common)} {opts.old_args}{medians}\n{rule}\n"
          f"{median_text(befores)}\n")
    print(f"{rule}\n{script} at this tree {' '.join(common)} {opts.new_args}{medians}\n{rule}\n{median_text(afters)}")
    return 0


def _like(value: float, text: str) -> str:
    """`value` written the way `text` writes its figure (decimals, sign, thousands separators)."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    return f"{value:+,.{decimals}f}" if text[0] in "+-" else f"{value:,.{decimals}f}"


_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")


def median_text(outputs: list[str]) -> str:
    """The first output with each figure replaced by the median of that figure over all the outputs (lines whose
    figures do not line up across runs are shown from the first run as they are)."""
    if len(outputs) == 1:
        return outputs[0]
    runs = [o.splitlines() for o in outputs]
    lines = []
    for i, line in enumerate(runs[0]):
        figures = [[float(x.replace(",", "")) for x in _NUMBER.findall(r[i])] if i < len(r) else [] for r in runs]
        if any(len(f) != len(figures[0]) for f in figures):
            lines.append(line)
            continue
        values = iter([statistics.median(col) for col in zip(*figures, strict=True)])
        lines.append(_NUMBER.sub(lambda m, v=values: _like(next(v), m.group(0)), line))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
