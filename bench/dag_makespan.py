"""How close the real engine gets to the best possible makespan on big random DAGs, and what it costs in CPU.

For each seeded random DAG (default 3 DAGs of 1,000 tickets; each ticket depends on 0-3 random tickets among
the `--window` before it, so the graph is wide enough for 8 workers), it runs:

  * the REAL engine (conductor.engine.Engine) with the real store and journal (fsync as in production;
    --no-journal for the engine alone) and the scripted provider at a fixed latency L per call. The script gives every ticket exactly one Tier 3 call ("done", no tool calls) and
    one Tier 4 call (pass), so each ticket's work is 2·L of waiting;
  * a level-by-level executor: one barrier per DAG level (conductor.dag.levels), every ticket of a level
    submitted to a ThreadPoolExecutor(workers), each waiting the same 2·L (two waits of L), wait for all,
    next level.

and prints, per DAG and overall, makespan / lower bound where

    lower bound = max(critical path (tickets) × 2·L, tickets × 2·L / workers)

plus the engine's CPU: the engine thread's own CPU per ticket (time.thread_time inside it: scheduling, records,
journal appends), the whole process's CPU per ticket (all threads: engine, workers, tiers, journal), the CPU
per ticket of a baseline that makes the same provider calls directly (ScriptedProvider.stream, latency 0, no
engine, no tiers), and their difference.

Targets (issue 8, journal on): engine thread CPU <= 0.3 ms per ticket; makespan within 1.03 of the bound at
1,000 tickets / 8 workers / 50 ms; ahead of the level-by-level executor (the one asked at 5,000 / 64 / 20 ms).
Each is printed MET or MISSED on its own line.

    .venv/bin/python bench/dag_makespan.py                        # the full run (2-3 minutes today)
    .venv/bin/python bench/dag_makespan.py --tickets 200 --dags 1 # CI smoke (a few seconds)
    .venv/bin/python bench/dag_makespan.py --tickets 5000 --workers 64 --latency 0.02 --dags 1   # wide
    .venv/bin/python bench/dag_makespan.py --profile 25           # + cProfile of the engine thread, top 25

This is a benchmark, not a test: it prints figures and always exits 0 unless something crashes
(pass --check to exit 1 when the target is missed).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conductor import dag  # noqa: E402
from conductor.approvals import ApprovalBroker  # noqa: E402
from conductor.config import Config  # noqa: E402
from conductor.engine import Engine, EngineDeps  # noqa: E402
from conductor.events import EventQueue, Provenance  # noqa: E402
from conductor.messages import user  # noqa: E402
from conductor.model import Ticket, TicketStatus, Track, TrackStatus  # noqa: E402
from conductor.providers.base import ProviderRequest  # noqa: E402
from conductor.providers.scripted import Reply, ScriptedProvider  # noqa: E402
from conductor.store import TrackStore  # noqa: E402
from conductor.tiers.call import CallDeps  # noqa: E402
from conductor.tools.base import Toolbox  # noqa: E402
from conductor.usage import PriceTable, UsageLedger  # noqa: E402

RATIO_TARGET = 1.03
CPU_TARGET_MS = 0.3
TIER3_REPLY = Reply(text="done")
TIER4_REPLY = Reply(text='{"verdict":"pass","hint":""}')


def random_dag(n: int, seed: int, window: int, max_deps: int) -> list[Ticket]:
    rnd = random.Random(seed)
    out: list[Ticket] = []
    for i in range(n):
        lo = max(0, i - window)
        k = min(rnd.randint(0, max_deps), i - lo)
        deps = sorted(rnd.sample(range(lo, i), k)) if k else []
        out.append(Ticket(id=f"T{i:05d}", title=f"ticket {i}", depends_on=[f"T{j:05d}" for j in deps]))
    return out


@dataclass
class EngineRun:
    makespan: float
    cpu: float
    engine_cpu: float
    span_from_log: float
    max_concurrency: int
    profile: str = ""


class _ProfiledEngine(Engine):
    """The real engine with cProfile around its own thread's main loop (the bench's wrapper, not an edit)."""

    profiler: cProfile.Profile | None = None

    def _main(self) -> None:
        prof = cProfile.Profile()
        self.profiler = prof
        prof.enable()
        try:
            super()._main()
        finally:
            prof.disable()


def run_engine(tickets: list[Ticket], workers: int, latency: float, profile_top: int = 0,
               journal: bool = True) -> EngineRun:
    cfg = Config()
    cfg = cfg.updated({"engine": {"max_workers": workers}})
    events = EventQueue()
    provider = ScriptedProvider({3: [TIER3_REPLY], 4: [TIER4_REPLY]}, latency_s=latency)
    call = CallDeps(provider=provider, events=events, ledger=UsageLedger(PriceTable(cfg.prices)), cfg=cfg)
    track = Track(id="bench-dag", title="bench", goal="makespan", status=TrackStatus.READY,
                  tickets=[t.model_copy(deep=True) for t in tickets])
    with tempfile.TemporaryDirectory() as ws:
        store = TrackStore(Path(ws) / "tracks") if journal else None
        track_journal = store.create_track(track) if store is not None else None
        deps = EngineDeps(cfg=cfg, call=call.with_(journal=track_journal), broker=ApprovalBroker(events),
                          workspace=Path(ws), toolbox=Toolbox([]), store=store)
        cls = _ProfiledEngine if profile_top else Engine
        engine = cls(track, deps, journal=track_journal, linger=False)
        cpu0, t0 = time.process_time(), time.perf_counter()
        engine.start()
        done = engine.join(timeout=600)
        makespan, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        if store is not None:
            store.close()
    bad = [t.id for t in done.tickets if t.status != TicketStatus.DONE]
    if bad or done.status != TrackStatus.DONE:
        raise SystemExit(f"engine run did not finish: track {done.status}, {len(bad)} tickets not done: {bad[:5]}")
    calls = provider.calls()
    if len(calls) != 2 * len(tickets):
        raise SystemExit(f"expected {2 * len(tickets)} provider calls, got {len(calls)}: the script is not 2 per ticket")
    log = engine.dispatch_log
    span = max(e for _, _, e in log) - min(s for _, s, _ in log)
    # Max concurrency from the dispatch log (start/end sweep).
    points = sorted([(s, 1) for _, s, _ in log] + [(e, -1) for _, _, e in log], key=lambda p: (p[0], p[1]))
    cur = peak = 0
    for _, d in points:
        cur += d
        peak = max(peak, cur)
    text = ""
    if profile_top and isinstance(engine, _ProfiledEngine) and engine.profiler is not None:
        buf = io.StringIO()
        pstats.Stats(engine.profiler, stream=buf).sort_stats("cumulative").print_stats(profile_top)
        buf.write("\n--- by own time ---\n")
        pstats.Stats(engine.profiler, stream=buf).sort_stats("tottime").print_stats(profile_top)
        text = buf.getvalue()
    events.drain(max_items=10**9)
    return EngineRun(makespan, cpu, engine.cpu_s, span, peak, text)


def run_levels(tickets: list[Ticket], workers: int, latency: float) -> tuple[float, float]:
    """A barrier per level; each ticket waits 2·L (as two waits of L, like two provider calls)."""
    lv = dag.levels(tickets)

    def work() -> None:
        ev = threading.Event()
        ev.wait(latency)
        ev.wait(latency)

    cpu0, t0 = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for level in lv:
            wait([pool.submit(work) for _ in level])
    return time.perf_counter() - t0, time.process_time() - cpu0


def provider_baseline_cpu(tickets: list[Ticket]) -> float:
    """CPU seconds to make the same 2 calls per ticket directly on the scripted provider (latency 0)."""
    provider = ScriptedProvider({3: [TIER3_REPLY], 4: [TIER4_REPLY]}, latency_s=0.0)
    cancel = threading.Event()
    cpu0 = time.process_time()
    for t in tickets:
        for tier in (3, 4):
            req = ProviderRequest(model="gemini-3.5-flash-lite", tier=tier, system="s",
                                  messages=(user(f"TICKET: {t.id}"),), prov=Provenance(ticket_id=t.id, tier=tier))
            for _ in provider.stream(req, cancel):
                pass
    return time.process_time() - cpu0


def ideal_units(tickets: list[Ticket], workers: int) -> int:
    """The makespan, in tickets of work, of the engine's own scheduling policy (dag.ReadyTracker: critical path
    first, ties in readiness order) with zero overhead: every ticket takes exactly one unit. The lower bound is
    not always reachable by any list schedule; this says how close the policy itself can get, so the rest of the
    engine's ratio is overhead (journal, threads, wake-ups)."""
    import heapq

    nodes = [t.model_copy(update={"status": TicketStatus.TODO}) for t in tickets]
    ready = dag.ReadyTracker(nodes)
    now, running = 0, []  # heap of (finish unit, ticket id)
    while True:
        while len(running) < workers and (tid := ready.first()) is not None:
            ready.update(tid, TicketStatus.RUNNING)
            heapq.heappush(running, (now + 1, tid))
        if not running:
            return now
        now = running[0][0]
        while running and running[0][0] == now:
            ready.update(heapq.heappop(running)[1], TicketStatus.DONE)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tickets", type=int, default=1000)
    ap.add_argument("--dags", type=int, default=3)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--latency", type=float, default=0.05, help="seconds per provider call (L)")
    ap.add_argument("--window", type=int, default=100, help="dependencies are drawn from this many earlier tickets")
    ap.add_argument("--max-deps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="cProfile the engine thread on the first DAG and print the top N functions")
    ap.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    ap.add_argument("--no-journal", action="store_true", help="run the engine without a store and journal")
    args = ap.parse_args(argv)

    per_ticket = 2 * args.latency
    print(f"dag_makespan: {args.dags} DAG(s) x {args.tickets} tickets, {args.workers} workers, L = {args.latency}s "
          f"per call, work = 2L = {per_ticket:.3f}s per ticket, deps 0-{args.max_deps} within {args.window}")
    print(f"python {sys.version.split()[0]}, lower bound = max(critical path x 2L, tickets x 2L / workers); "
          f"journal {'off' if args.no_journal else 'on (real store, fsync per batch)'}")
    print()
    hdr = (f"{'dag':>3} {'cp':>5} {'width':>6} {'bound s':>8} | {'engine s':>8} {'ratio':>6} {'peak':>4} "
           f"{'eng ms/tkt':>10} {'cpu ms/tkt':>10} | {'levels s':>8} {'ratio':>6}")
    print(hdr)
    print("-" * len(hdr))
    eng_ratios, lvl_ratios, eng_cpu, eng_span_ratios, eng_thread, ideal_ratios = [], [], [], [], [], []
    profile_text = ""
    for k in range(args.dags):
        tickets = random_dag(args.tickets, args.seed + k, args.window, args.max_deps)
        cp = int(dag.critical_path_length(tickets))
        width = max(len(level) for level in dag.levels(tickets))
        bound = max(cp * per_ticket, args.tickets * per_ticket / args.workers)
        er = run_engine(tickets, args.workers, args.latency, profile_top=args.profile if k == 0 else 0,
                        journal=not args.no_journal)
        profile_text = profile_text or er.profile
        lvl_s, _ = run_levels(tickets, args.workers, args.latency)
        eng_ratios.append(er.makespan / bound)
        ideal_ratios.append(ideal_units(tickets, args.workers) * per_ticket / bound)
        eng_span_ratios.append(er.span_from_log / bound)
        lvl_ratios.append(lvl_s / bound)
        eng_cpu.append(er.cpu / args.tickets)
        eng_thread.append(er.engine_cpu / args.tickets)
        print(f"{k:>3} {cp:>5} {width:>6} {bound:>8.2f} | {er.makespan:>8.2f} {er.makespan / bound:>6.3f} "
              f"{er.max_concurrency:>4} {1000 * er.engine_cpu / args.tickets:>10.3f} {1000 * er.cpu / args.tickets:>10.2f} | "
              f"{lvl_s:>8.2f} {lvl_s / bound:>6.3f}")
    base = provider_baseline_cpu(random_dag(args.tickets, args.seed, args.window, args.max_deps)) / args.tickets
    print()
    eng, lvl = statistics.mean(eng_ratios), statistics.mean(lvl_ratios)
    print(f"engine makespan / bound (mean): {eng:.3f}   (first start to last end, from dispatch_log: "
          f"{statistics.mean(eng_span_ratios):.3f})")
    print(f"level-by-level makespan / bound (mean): {lvl:.3f}")
    ideal = statistics.mean(ideal_ratios)
    print(f"ideal schedule / bound (mean): {ideal:.3f}   (the engine's own policy with zero overhead: the best it "
          f"can reach on these DAGs; engine / ideal: {eng / ideal:.3f})")
    cpu = statistics.mean(eng_cpu)
    print(f"engine thread CPU: {1000 * statistics.mean(eng_thread):.3f} ms per ticket (scheduling, records, journal)")
    print(f"engine run CPU: {1000 * cpu:.2f} ms per ticket (process CPU over the run, all threads); "
          f"provider-only baseline for the same 2 calls/ticket: {1000 * base:.2f} ms; "
          f"overhead: {1000 * (cpu - base):.2f} ms per ticket")
    asked = (args.tickets, args.workers, args.latency) == (1000, 8, 0.05)  # where issue 8 asks for RATIO_TARGET
    if not asked:
        print(f"target engine makespan <= {RATIO_TARGET} x bound: asked at 1,000 tickets / 8 workers / 50 ms only")
    checks = [*([(f"engine makespan <= {RATIO_TARGET} x bound", eng <= RATIO_TARGET)] if asked else []),
              (f"engine thread CPU <= {CPU_TARGET_MS} ms per ticket",
               1000 * statistics.mean(eng_thread) <= CPU_TARGET_MS),
              ("engine ahead of level-by-level", eng < lvl)]
    for name, met in checks:
        print(f"target {name}: {'MET' if met else 'MISSED'}")
    ok = all(met for _, met in checks)
    if profile_text:
        print("\ncProfile of the engine thread (first DAG):")
        print(profile_text)
    return 1 if (args.check and not ok) else 0


if __name__ == "__main__":
    raise SystemExit(main())
