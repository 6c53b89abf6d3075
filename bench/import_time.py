"""Import time of the app's entry points and of the Gemini SDK, each in a fresh interpreter (median of runs).

    .venv/bin/python bench/import_time.py [--runs 7]

Why: the provider imports google-genai lazily so that start-up (the GUI's first frame, `conductor --help`)
does not pay for it. `conductor.providers.gemini` should cost a few milliseconds; `google.genai` is the
price paid on the first model call instead. Modules that do not exist yet are skipped with a message.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = (("conductor.providers.gemini", ""),
           ("conductor.providers.gemini", "conductor.config, conductor.providers.base"),
           ("google.genai", ""), ("conductor.cli", ""), ("gui_app", ""))
"""(module, modules imported before the clock starts): the second row is the provider's own cost."""
_PROBE = ("import sys, time\n"
          "{pre}\n"
          "t = time.perf_counter()\n"
          "import {name}\n"
          "dt = time.perf_counter() - t\n"
          "print(dt, int('google.genai' in sys.modules))\n")


def exists(name: str) -> bool:
    if (ROOT / f"{name}.py").exists():
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def one_run(name: str, pre: str = "") -> tuple[float, bool]:
    """Seconds to import `name` in a new interpreter (its start-up and the `pre` imports excluded)."""
    code = _PROBE.format(name=name, pre=f"import {pre}" if pre else "")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"importing {name} failed:\n{out.stderr.strip()[-2000:]}")
    seconds, sdk = out.stdout.split()
    return float(seconds), sdk == "1"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args(argv)
    print(f"import time, median of {args.runs} fresh interpreters ({sys.executable})")
    for name, pre in TARGETS:
        label = f"{name} [own: deps preloaded]" if pre else name
        if not exists(name):
            print(f"  {label:52} skipped: no such module here")
            continue
        try:
            runs = [one_run(name, pre) for _ in range(args.runs)]
        except RuntimeError as exc:
            print(f"  {label:52} skipped: {exc}")
            continue
        times = [t for t, _ in runs]
        sdk = "   (pulls in google.genai!)" if runs[0][1] and name != "google.genai" else ""
        print(f"  {label:52} median {statistics.median(times) * 1000:7.1f} ms   "
              f"min {min(times) * 1000:7.1f} ms   max {max(times) * 1000:7.1f} ms{sdk}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
