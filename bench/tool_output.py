"""How run_command copes with a flood of output: throughput, peak memory growth, and what the model is shown.

A child process prints `--mb` megabytes (default 100) in 1 MB lines; run_command streams it to a spill file
and keeps only a head and a tail in memory. Printed: seconds, MB/s, the growth of this process's peak RSS
(VmHWM) during the run, the spill file's size, and the size of the text the model would get. Then the same run
with the redactor (conductor/redact.py: every byte a command prints is redacted before the spill file or the
model sees it) replaced by a pass-through, side by side, so its cost is visible.

    .venv/bin/python bench/tool_output.py             # 100 MB
    .venv/bin/python bench/tool_output.py --mb 1000   # 1 GB (needs the disk space for the spill file)

A benchmark, not a test: it prints figures and exits 0 unless something crashes (pass --check to exit 1 when
the peak RSS grows by more than 20 MB or the spill file is incomplete).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conductor.events import Provenance  # noqa: E402
from conductor.tools.base import ToolContext  # noqa: E402
from conductor.tools import process  # noqa: E402
from conductor.tools.command import RunCommand  # noqa: E402


def peak_rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class _PassThrough:
    """Stands in for the redactor in the comparison run."""

    def stream(self) -> _PassThrough:
        return self

    def feed(self, chunk: bytes) -> bytes:
        return chunk

    def flush(self) -> bytes:
        return b""


def run_once(mb: int, text: Path | None = None) -> tuple[dict[str, object], float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        ws, spill = Path(tmp) / "ws", Path(tmp) / "spill.log"
        ws.mkdir()
        # The bench plays the person who approved the command (an interpreter given code needs one).
        ctx = ToolContext(ws, Provenance(), spill_path=spill, human_approved=True)
        tool = RunCommand(default_timeout_s=600)
        warm = tool.run({"argv": [sys.executable, "-c", "print(1)"]}, ctx)  # warm up threads and imports
        if text is None:
            writer = (f"import sys\nb = b'x' * 1048575 + b'\\n'\n"
                      f"for _ in range({mb}): sys.stdout.buffer.write(b)\n")
        else:  # real text, repeated to exactly `mb` MB
            writer = (f"import sys\nt = open({str(text)!r}, 'rb').read()\nb = (t * (1048576 // len(t) + 1))[:1048576]\n"
                      f"for _ in range({mb}): sys.stdout.buffer.write(b)\n")
        before, t0 = peak_rss_kb(), time.perf_counter()
        out = tool.run({"argv": [sys.executable, "-c", writer]}, ctx)
        secs, growth_mb = time.perf_counter() - t0, (peak_rss_kb() - before) / 1024
        full = Path(str(out["full_output_path"]))
        assert full != Path(str(warm["full_output_path"]))
        return out, secs, growth_mb, full.stat().st_size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--text", type=Path, help="print this file's text (repeated) instead of lines of 'x'")
    args = ap.parse_args()
    expected = args.mb * 1048576
    text = args.text.resolve() if args.text else None
    out, secs, growth_mb, size = run_once(args.mb, text)
    real = process.redact.current
    process.redact.current = lambda: _PassThrough()  # type: ignore[assignment,return-value]
    try:
        _, plain_secs, _, _ = run_once(args.mb, text)
    finally:
        process.redact.current = real
    print(f"output        {out['output_bytes'] / 1048576:.0f} MB in {secs:.2f} s ({args.mb / secs:.0f} MB/s), "
          f"redacted; without the redactor {plain_secs:.2f} s ({args.mb / plain_secs:.0f} MB/s)")
    print(f"peak RSS      +{growth_mb:.1f} MB during the run")
    print(f"spill file    {size} bytes ({'complete' if size == expected else 'INCOMPLETE'})")
    print(f"model sees    {len(out['output'])} characters (truncated={out['truncated']})")
    if args.check and (growth_mb > 20 or size != expected):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
