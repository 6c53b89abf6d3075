"""Time from `python gui_app.py` to its first rendered frame.

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python bench/first_frame.py [--runs 5] [-- app args]

Spawns the app with CONDUCTOR_EXIT_AFTER_FIRST_FRAME=1 (it prints 'FIRST_FRAME <unix time>' at the end of its
first frame and exits) and prints the delay from spawn to that frame, per run and the median. Figures only
(target: under 1.5 s). Without an API key the app opens in its 'no key' state, which is what a new user sees.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_run(python: str, app_args: list[str], env: dict[str, str]) -> float:
    start = time.time()
    proc = subprocess.run([python, str(ROOT / "gui_app.py"), *app_args], env=env, capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("FIRST_FRAME "):
            return float(line.split()[1]) - start
    raise RuntimeError(f"no FIRST_FRAME line (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("app_args", nargs="*", help="arguments for gui_app.py (after --)")
    args = ap.parse_args()
    env = {**os.environ, "CONDUCTOR_EXIT_AFTER_FIRST_FRAME": "1"}
    python = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
    times = [one_run(python, args.app_args, env) for _ in range(args.runs)]
    runs = "  ".join(f"{t * 1000:.0f}" for t in times)
    print(f"first_frame: median {statistics.median(times) * 1000:.0f} ms, best {min(times) * 1000:.0f} ms, "
          f"worst {max(times) * 1000:.0f} ms over {len(times)} runs (ms: {runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
