"""Streaming load on the real app: N simulated workers each post stream deltas at a steady rate into the one
event queue, while the GUI renders.

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python bench/gui_stream.py [--seconds 30] [--workers 16]
        [--rate 100] [--tab all|first] [--source auto|threads|ingest]

Where the deltas come from (`--source`) follows how that many workers reach the app:
  * threads: one posting thread per worker, as local Tier 3 workers are (the engine runs at most 64 of them:
    `[engine] max_workers` is capped there);
  * ingest: every worker's deltas arrive as wire messages through one thread, as remote workers' do (the
    dispatcher's ingest thread reads them from Redis in batches, decodes each with `distributed.wire.decode` and
    posts it). Here the messages are made in the bench instead of read from Redis: the Redis round trip is left
    out, the decoding is not;
  * auto (the default): threads up to 64 workers, ingest above (256 workers can only be remote ones).

Each worker streams into its ticket's own pane (`tier3:<track>/<ticket>`, as real workers do) and, line by
line, into the Tier 3 "all" pane; `--tab` says which of the two is in front (default: "all", where every
worker shows). Prints frame time p50/p99, delta-to-screen latency p50/p99 (from the delta's creation to the
end of the frame that applied it; a delta merged with others on its way counts once per piece, each with its
own creation time), peak RSS and RSS at 5 s and at half time vs at the end. Figures only: no assertions
(targets on a 2-core software-rendered machine: p99 frame <= 16.7 ms, p99 latency <= 50 ms, memory flat after
5 s). Memory: every pane keeps the last `[gui] stream_tail_chars` (20,000) characters; at 100 deltas/s of
~20 characters a pane's tail is full after ~10 s and memory is flat from then on (the half-time figure), not
from 5 s: the tails are the bound, and the growth before it is them filling.

To measure an earlier revision with this same bench: `bench/compare.py --rev <rev> --same-bench -- gui_stream.py`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = ("refactor the token parser ", "add a unit test for it ", "check the edge cases\n", "rename the helper ",
         "update the docs\n", "run the checks again ")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Histogram:
    """Milliseconds in 0.1 ms bins up to 2 s: constant memory, so the bench does not grow the RSS it reports."""

    BINS = 20_000

    def __init__(self) -> None:
        self.counts = [0] * (self.BINS + 1)
        self.n = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, ms: float) -> None:
        self.counts[min(max(int(ms * 10), 0), self.BINS)] += 1
        self.n += 1
        self.total += ms
        self.max = max(self.max, ms)

    def pct(self, q: float) -> float:
        target, seen = q * self.n, 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= target and c:
                return i / 10
        return float("nan")

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")


def ticks(rate: float, seconds: float, stop: threading.Event) -> Iterator[int]:
    """0, 1, 2, ... at `rate` a second on a fixed schedule for `seconds` (a bench thread may wait; tests never do)."""
    start, n = time.perf_counter(), 0
    while not stop.is_set():
        due = start + n / rate
        if due - start >= seconds:
            return
        delay = due - time.perf_counter()
        if delay > 0 and stop.wait(delay):
            return
        yield n
        n += 1


def producer(events, track_id: str, ticket: str, rate: float, seconds: float, stop: threading.Event) -> None:
    """One worker: `rate` deltas a second."""
    from conductor.events import Provenance, StreamDelta
    prov = Provenance(track_id=track_id, ticket_id=ticket, tier=3, attempt=1)
    for n in ticks(rate, seconds, stop):
        events.post(StreamDelta(prov=prov, stream_id=prov.stream_id, text=WORDS[n % len(WORDS)], ts=time.time()))


LOCAL_WORKERS_MAX = 64
"""`[engine] max_workers` is capped here (conductor.config): more workers than this are remote ones."""


def ingest(events, track_id: str, workers: int, rate: float, seconds: float, stop: threading.Event) -> None:
    """The remote path: each worker's delta is a wire message (`BusEvent` with the delta forwarded, as a remote
    worker publishes it) that one thread decodes and posts, `rate` rounds a second, every worker once a round."""
    from conductor.distributed import wire
    from conductor.events import Provenance, StreamDelta
    templates = []  # per worker and word: the message as it arrives, its timestamp filled in when it is made
    for i in range(workers):
        prov = Provenance(track_id=track_id, ticket_id=f"W{i:02d}", tier=3, attempt=1)
        templates.append([wire.encode(wire.BusEvent(f"req-{i}", "bench", 1, 0, f"worker-{i % 8}", wire.Forwarded(
            StreamDelta(prov=prov, stream_id=prov.stream_id, text=word, ts=0.125)))) for word in WORDS])
    for n in ticks(rate, seconds, stop):
        for words in templates:
            ev = wire.decode(words[n % len(WORDS)].replace('"ts": 0.125', f'"ts": {time.time()!r}', 1))
            assert isinstance(ev.payload, wire.Forwarded)
            events.post(ev.payload.event)


def build_app(workers: int):
    from conductor.app import AppController
    from conductor.config import Config
    from conductor.events import Provenance, TrackLoaded
    from conductor.gui.loop import GuiApp
    from conductor.model import Ticket, Track, TrackStatus
    from conductor.providers.scripted import ScriptedProvider
    from conductor.session import Session

    root = Path(tempfile.mkdtemp(prefix="conductor-bench-"))
    (root / "ws").mkdir()
    session = Session(Config(), workspace=root / "ws", tracks_dir=root / "tracks", provider=ScriptedProvider())
    controller = AppController(session, provider_name="scripted")
    track = Track(id="bench-track", title="Streaming bench", goal="load", status=TrackStatus.RUNNING,
                  tickets=[Ticket(id=f"W{i:02d}", title=f"Worker {i}", status="running") for i in range(workers)])
    session.events.post(TrackLoaded(prov=Provenance(track_id=track.id), track=track))
    app = GuiApp(controller, render=True).build()
    app.show()
    return app, session


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--rate", type=float, default=100.0, help="deltas per second per worker")
    ap.add_argument("--tab", choices=("all", "first"), default="all",
                    help="the Tier 3 pane in front: every worker's lines, or the first ticket's own pane")
    ap.add_argument("--source", choices=("auto", "threads", "ingest"), default="auto",
                    help="one posting thread per worker (local workers) or one ingest thread for all (remote ones); "
                         f"auto: threads up to {LOCAL_WORKERS_MAX} workers")
    args = ap.parse_args()
    source = args.source if args.source != "auto" else ("threads" if args.workers <= LOCAL_WORKERS_MAX else "ingest")

    from conductor.events import StreamDelta
    from conductor.gui.display import NO_DISPLAY_HELP, display_available
    if not display_available():
        print(f"gui_stream: {NO_DISPLAY_HELP}", file=sys.stderr)
        return 1
    app, session = build_app(args.workers)
    for _ in range(10):  # warm up: fonts, first layout
        app.frame()
    if args.tab == "all":
        import dearpygui.dearpygui as dpg

        from conductor.gui import tags
        dpg.set_value(tags.TIER3_TABS, tags.tier3_tab("tier3:all"))
        app.frame()

    frame_ms, latency_ms = Histogram(), Histogram()
    rss: list[tuple[float, float]] = []

    def measure(_app, events) -> None:
        now = time.time()
        for ev in events:
            if isinstance(ev, StreamDelta):
                for made in getattr(ev, "stamps", ()) or (ev.ts,):  # merged deltas: each piece's own wait
                    latency_ms.add((now - made) * 1000)

    app.after_frame.append(measure)
    stop = threading.Event()
    if source == "threads":
        threads = [threading.Thread(target=producer, args=(session.events, "bench-track", f"W{i:02d}", args.rate,
                                                           args.seconds, stop), daemon=True)
                   for i in range(args.workers)]
    else:
        threads = [threading.Thread(target=ingest, args=(session.events, "bench-track", args.workers, args.rate,
                                                         args.seconds, stop), daemon=True)]
    start = time.perf_counter()
    gui_cpu, proc_cpu = time.thread_time(), time.process_time()
    for t in threads:
        t.start()
    next_sample = start
    while any(t.is_alive() for t in threads) or not session.events.empty():
        t0 = time.perf_counter()
        app.frame()
        frame_ms.add((time.perf_counter() - t0) * 1000)
        if t0 >= next_sample:
            rss.append((t0 - start, rss_mb()))
            next_sample += 1.0
    elapsed = time.perf_counter() - start
    gui_cpu, proc_cpu = time.thread_time() - gui_cpu, time.process_time() - proc_cpu
    stop.set()
    rss.append((elapsed, rss_mb()))
    app.close()

    mark = min(5.0, args.seconds / 3)  # "after 5 s" (a third of the run in short smoke runs)
    at10 = next((m for t, m in rss if t >= mark), rss[0][1])
    came = "one thread per worker" if source == "threads" else "one ingest thread"
    print(f"gui_stream: {args.workers} workers x {args.rate:.0f} deltas/s for {args.seconds:.0f} s, "
          f"'{args.tab}' pane in front, deltas from {came} "
          f"({latency_ms.n:,} deltas in {elapsed:.1f} s, {frame_ms.n:,} frames, {frame_ms.n / elapsed:.0f} fps)")
    print(f"  frame time      p50 {frame_ms.pct(.5):6.1f} ms   p99 {frame_ms.pct(.99):6.1f} ms   "
          f"max {frame_ms.max:6.1f} ms")
    print(f"  delta->screen   p50 {latency_ms.pct(.5):6.1f} ms   p99 {latency_ms.pct(.99):6.1f} ms   "
          f"mean {latency_ms.mean:6.1f} ms")
    # CPU is what a frame costs whatever else the machine runs (wall times above are what it got): the GUI
    # thread's own, and the whole process's (the 'workers' threads, and llvmpipe's raster threads, included).
    print(f"  cpu             GUI thread {gui_cpu / max(frame_ms.n, 1) * 1000:6.2f} ms a frame   "
          f"process {proc_cpu / elapsed:4.2f} cores, of which the {len(threads)} posting thread(s) are part")
    half = next((m for t, m in rss if t >= args.seconds / 2), rss[-1][1])
    print(f"  memory (RSS)    peak {max(m for _, m in rss):6.1f} MB   at {mark:.0f} s {at10:6.1f} MB   "
          f"end {rss[-1][1]:6.1f} MB   (end - at {mark:.0f} s: {rss[-1][1] - at10:+.1f} MB; "
          f"end - at {args.seconds / 2:.0f} s: {rss[-1][1] - half:+.1f} MB)")
    every5 = [m for t, m in rss if t >= 0][::5]  # a sample a second: every 5th, from the start
    print("  RSS every 5 s   " + "  ".join(f"{m:.1f}" for m in every5) + " MB  (each pane's tail fills up to its "
          "limit first, then stays)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
