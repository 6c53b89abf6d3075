"""Import time of the app's entry points and of the model SDKs, each in a fresh interpreter (median of runs).

    .venv/bin/python bench/import_time.py [--runs 7]

Why: the provider imports google-genai lazily so that start-up (the GUI's first frame, `conductor --help`)
does not pay for it. `conductor.providers.gemini` should cost a few milliseconds; `google.genai` is the
price paid on the first model call instead. The same holds for the `openai` and `anthropic` SDKs behind the
OpenAI-compatible and Anthropic providers and the routing provider: the last column says which SDKs an
import pulled in (it must be "-" for everything but the SDK rows). Modules that do not exist are skipped.
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
           ("conductor.providers.openai_compat", "conductor.config, conductor.providers.base"),
           ("conductor.providers.anthropic_provider", "conductor.config, conductor.providers.base"),
           ("conductor.providers.router", "conductor.config, conductor.providers.base"),
           ("google.genai", ""), ("openai", ""), ("anthropic", ""), ("conductor.cli", ""), ("gui_app", ""))
SDKS = ("google.genai", "openai", "anthropic", "dramatiq", "redis")
"""(module, modules imported before the clock starts): the second row is the provider's own cost."""
_PROBE = ("import sys, time\n"
          "{pre}\n"
          "t = time.perf_counter()\n"
          "import {name}\n"
          "dt = time.perf_counter() - t\n"
          "print(dt, ','.join(m for m in {sdks!r} if m in sys.modules) or '-')\n")


def exists(name: str) -> bool:
    if (ROOT / f"{name}.py").exists():
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def one_run(name: str, pre: str = "") -> tuple[float, str]:
    """Seconds to import `name` in a new interpreter (its start-up and the `pre` imports excluded), and the
    SDKs loaded by then."""
    code = _PROBE.format(name=name, pre=f"import {pre}" if pre else "", sdks=SDKS)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"importing {name} failed:\n{out.stderr.strip()[-2000:]}")
    seconds, sdks = out.stdout.split()
    return float(seconds), sdks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args(argv)
    print(f"import time, median of {args.runs} fresh interpreters ({sys.executable})")
    for name, pre in TARGETS:
        label = f"{name} [own: deps preloaded]" if pre else name
        if not exists(name):
            print(f"  {label:60} skipped: no such module here")
            continue
        try:
            runs = [one_run(name, pre) for _ in range(args.runs)]
        except RuntimeError as exc:
            print(f"  {label:60} skipped: {exc}")
            continue
        times = [t for t, _ in runs]
        sdks = runs[0][1]
        warn = "   (pulls in an SDK!)" if sdks != "-" and name not in SDKS else ""
        print(f"  {label:60} median {statistics.median(times) * 1000:7.1f} ms   "
              f"min {min(times) * 1000:7.1f} ms   max {max(times) * 1000:7.1f} ms   SDKs loaded: {sdks}{warn}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
