"""Run one bench script on an earlier revision and on this tree, in one run, and print both side by side.

Shared machines are noisy, so a figure means something only next to its baseline measured in the same run:

    .venv/bin/python bench/compare.py --rev bb08b11 -- dag_makespan.py --dags 1
    .venv/bin/python bench/compare.py --rev bb08b11 --new-args "--no-journal" -- dag_makespan.py --dags 1

The earlier revision is checked out with `git worktree add --detach` into a temporary folder (removed
afterwards) and its own copy of the bench runs against its own code; then this tree's does. Arguments after
`--` go to both; `--old-args` / `--new-args` add arguments to one side only (a flag the old bench lacks).

With `--repeat N` the two sides alternate N times (old, new, old, new, ...), so a burst of load on a shared
machine hits both, and every "label: number" line the bench prints is summarised as a median per side; each
side's output is also printed once more with every figure replaced by its median over the runs (for benches
whose lines hold several figures, e.g. "frame time  p50 12.0 ms  p99 30.1 ms").

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
    ap.add_argument("--repeat", type=int, default=1, help="alternate the two sides this many times; print medians")
    ap.add_argument("--same-bench", action="store_true", help="run this tree's bench script on both sides")
    opts = ap.parse_args(argv[:cut])
    script, *common = argv[cut + 1:]
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
            for _ in range(max(1, opts.repeat)):
                befores.append(run(old, script, [*common, *shlex.split(opts.old_args)]))
                afters.append(run(HERE, script, [*common, *shlex.split(opts.new_args)]))
        finally:
            subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(old)], check=False)
    rule = "=" * 100
    for i, (before, after) in enumerate(zip(befores, afters, strict=True)):
        run_no = f" (run {i + 1} of {len(befores)})" if len(befores) > 1 else ""
        yardstick = " (this tree's bench)" if opts.same_bench else ""
        print(f"{rule}\n{script}{yardstick} at {opts.rev} {' '.join(common)} {opts.old_args}{run_no}\n{rule}\n"
              f"{before}\n")
        print(f"{rule}\n{script} at this tree {' '.join(common)} {opts.new_args}{run_no}\n{rule}\n{after}\n")
    if len(befores) > 1:
        print(f"{rule}\nmedians over {len(befores)} alternating runs\n{rule}")
        old_figs, new_figs = _figures(befores), _figures(afters)
        width = max((len(k) for k in old_figs | new_figs), default=10)
        print(f"{'':{width}}  {opts.rev:>12} {'this tree':>12}")
        for key in [k for k in new_figs if k in old_figs]:
            print(f"{key:{width}}  {statistics.median(old_figs[key]):>12.3f} {statistics.median(new_figs[key]):>12.3f}"
                  f"   (old {_runs(old_figs[key])}; new {_runs(new_figs[key])})")
        print(f"{rule}\n{script} at {opts.rev}, every figure the median of {len(befores)} runs\n{rule}\n"
              f"{median_text(befores)}\n")
        print(f"{rule}\n{script} at this tree, every figure the median of {len(afters)} runs\n{rule}\n"
              f"{median_text(afters)}")
    return 0


def _like(value: float, text: str) -> str:
    """`value` written the way `text` writes its figure (decimals, sign, thousands separators)."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    return f"{value:+,.{decimals}f}" if text[0] in "+-" else f"{value:,.{decimals}f}"


_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")


def median_text(outputs: list[str]) -> str:
    """The first output with each figure replaced by the median of that figure over all the outputs (a line whose
    figures do not line up across the runs is shown as the first run printed it)."""
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


_FIGURE = re.compile(r"^([A-Za-z][^:]{0,80} [^:]{0,80}):\s+(-?[0-9]+(?:\.[0-9]+)?)")


def _figures(outputs: list[str]) -> dict[str, list[float]]:
    """Every `label: number` line of each run (the first number after the colon), by label."""
    out: dict[str, list[float]] = {}
    for text in outputs:
        for line in text.splitlines():
            m = _FIGURE.match(line)
            if m:
                out.setdefault(m.group(1), []).append(float(m.group(2)))
    return out


def _runs(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


if __name__ == "__main__":
    raise SystemExit(main())
