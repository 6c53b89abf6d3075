"""Remote Tier 3 against the local executor: one big DAG over 1, 2 and 4 `conductor worker` processes on this machine
through a real redis-server, beside the same DAG on local threads, in one run.

The DAG is bench/dag_makespan.py's generator (each ticket depends on 0-3 of the `--window` tickets before it),
planned through the real planning path (Tier 2 answers it) and run by the real engine, with git (a branch per
track, a worktree and a commit per ticket: remote workers need it, so the local run has it too). Every model call
is the scripted provider's demo worker at a fixed latency L: Tier 3 looks (list_dir), writes its target
(write_file: a tool approval answered on the desktop by policy, so it travels over Redis and back for the remote
runs), reports; Tier 4 passes. The work per ticket W is (model calls per ticket, counted from the ledger) x L.

For each run it prints

    bound     = max(critical path x W, tickets x W / slots)       slots = worker processes x threads (local: threads)
    makespan  = first attempt dispatched to last attempt finished (the engine's dispatch log)
    ratio     = makespan / bound
    per-ticket attempt time (engine dispatch -> result) and its overhead over W: git, tools, journal, and for the
    remote runs the queue, the bus (events, approvals) and the fetch/push of the ticket's branch;
    dispatch overhead = remote overhead - local overhead at the same slots: what going through Redis costs a ticket.

    .venv/bin/python bench/distributed.py                                  # the full run: 1,000 tickets (long)
    .venv/bin/python bench/distributed.py --tickets 20 --processes 1 2     # CI smoke (a minute)

A benchmark, not a test: it prints figures and exits 0 unless a run fails (a ticket not done, a worker that died).
Needs redis-server (Debian's package) and the `distributed` extra (dramatiq, redis).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dag_makespan import random_dag

from conductor import dag
from conductor.config import Config
from conductor.model import Ticket, TicketStatus, TrackStatus
from conductor.providers.scripted import Reply, ScriptedProvider
from conductor.session import Session

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


# ---------------------------------------------------------------- infrastructure


class Redis:
    """redis-server on a unix socket in `folder`, append-only (as a production broker would run)."""

    def __init__(self, folder: Path) -> None:
        self.sock = folder / "redis.sock"
        self.proc = subprocess.Popen(
            [REDIS, "--port", "0", "--unixsocket", str(self.sock), "--unixsocketperm", "700", "--dir", str(folder),
             "--appendonly", "yes", "--save", "", "--logfile", str(folder / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis
        client = redis.Redis(unix_socket_path=str(self.sock))
        deadline = time.monotonic() + 15
        while True:  # poll PING until it answers (a bench script, not a test: bounded polling is fine here)
            try:
                client.ping()
                break
            except (redis.ConnectionError, OSError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"redis-server did not start (see {folder / 'redis.log'})") from None
                time.sleep(0.02)  # ok-sleep: waiting for a child process's socket, no event to wait on
        client.close()

    @property
    def url(self) -> str:
        return f"unix://{self.sock}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def make_repo(root: Path) -> tuple[Path, Path]:
    repo, remote = root / "repo", root / "remote.git"
    repo.mkdir(parents=True)
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "bench@example.invalid")
    git(repo, "config", "user.name", "bench")
    (repo / "README.md").write_text("bench\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    git(root, "init", "-q", "--bare", str(remote))
    return repo, remote


def plan_reply(tickets: list[Ticket]) -> Reply:
    """Tier 2's answer: the DAG, each ticket writing its own file."""
    return Reply(text=json.dumps({"tickets": [
        {"id": t.id, "title": t.title, "description": f"Write notes/{t.id}.md.", "depends_on": t.depends_on,
         "target_files": [f"notes/{t.id}.md"], "acceptance_criteria": ["the file exists"], "step_mode": False,
         "model_override": None} for t in tickets]}))


class Workers:
    """`conductor worker` processes (the scripted provider at latency L), started and stopped together."""

    def __init__(self, url: str, namespace: str, root: Path, n: int, threads: int, latency: float, beat: float) -> None:
        cfg = root / "worker-config.toml"
        cfg.write_text("")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("CONDUCTOR_BROKER_URL", None)
        self.logs = [root / f"w{i}.log" for i in range(n)]
        self.procs = [subprocess.Popen(
            [sys.executable, "-m", "conductor.cli", "--config", str(cfg), "worker", "--broker", url,
             "--threads", str(threads), "--name", f"w{i}", "--workdir", str(root / f"wd{i}"), "--provider",
             "scripted", "--namespace", namespace, "--beat", str(beat), "--latency", str(latency)],
            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=str(root))
            for i, log in enumerate(self.logs)]

    def wait_online(self, url: str, namespace: str, timeout: float = 60) -> None:
        """Until every worker heartbeats (read with the monitor: what the GUI would show)."""
        import redis

        from conductor.distributed.monitor import ClusterReader
        client = redis.Redis.from_url(url)
        reader = ClusterReader(client, namespace)
        deadline = time.monotonic() + timeout
        try:
            while len(reader.read().online) < len(self.procs):
                dead = [(i, p.returncode) for i, p in enumerate(self.procs) if p.poll() is not None]
                if dead or time.monotonic() > deadline:
                    raise SystemExit(f"workers did not come up ({dead or 'timeout'}):\n" + self.tail())
                time.sleep(0.05)  # ok-sleep: waiting for child processes' first heartbeat
        finally:
            client.close()

    def tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in self.logs if p.exists())

    def stop(self) -> list[int]:
        for p in self.procs:
            p.terminate()
        return [p.wait(60) for p in self.procs]


# ---------------------------------------------------------------- one run


@dataclass
class Run:
    label: str
    slots: int
    makespan: float
    attempt_times: list[float]
    calls_per_ticket: float
    wall: float
    attempts: int
    """Attempts run in all (more than the tickets: retries, or attempts reassigned from a silent worker)."""


def drain(session: Session, stop: threading.Event) -> threading.Thread:
    """Nobody reads the events in a bench: take them so the queue does not grow for the whole run."""
    def loop() -> None:
        while not stop.is_set():
            session.events.get(timeout=0.2)
            session.events.drain(100_000)
    th = threading.Thread(target=loop, name="bench-drain", daemon=True)
    th.start()
    return th


def one_run(label: str, tickets: list[Ticket], root: Path, latency: float, *, slots: int, redis_url: str | None,
            processes: int = 0, threads: int = 0, beat: float = 1.0, verbose: bool = False) -> Run:
    root.mkdir(parents=True)
    repo, remote = make_repo(root)
    cfg = Config().updated({"engine": {"max_workers": slots}, "git": {"worktrees_root": str(root / "worktrees")},
                            "distributed": {"namespace": f"bench{os.getpid()}{root.name}", "beat_interval_s": beat}})
    provider = ScriptedProvider({2: [plan_reply(tickets)]}, latency_s=latency)
    session = Session(cfg, workspace=repo, tracks_dir=root / "tracks", provider=provider, linger=False)
    session.broker.auto_approve({"plan", "tickets", "spawn", "tool"})
    stop = threading.Event()
    drainer = drain(session, stop)
    dist = workers = None
    codes: list[int] = []
    t0 = time.perf_counter()
    phases: dict[str, float] = {}
    try:
        if redis_url is not None:
            from conductor.distributed.commands import attach
            dist = attach(session, cfg, broker=redis_url, remote=str(remote))
            workers = Workers(redis_url, cfg.distributed.namespace, root, processes, threads, latency, beat)
            workers.wait_online(redis_url, cfg.distributed.namespace)
        phases["workers up"] = time.perf_counter() - t0
        (track_id,) = session.plan_epic("bench the DAG").wait(timeout=600)
        phases["planned"] = time.perf_counter() - t0
        engine = session.engines[track_id]
        done = engine.join(timeout=3600)
        phases["run done"] = time.perf_counter() - t0
    finally:
        session.shutdown(30)
        phases["session closed"] = time.perf_counter() - t0
        if workers is not None:
            codes = workers.stop()
            phases["workers stopped"] = time.perf_counter() - t0
        if dist is not None:
            dist.close()
        stop.set()
        drainer.join(5)
    wall = time.perf_counter() - t0
    if verbose:
        print(f"  {label}: " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()), flush=True)
    bad = [(t.id, t.status.value, t.failed_reason) for t in done.tickets if t.status != TicketStatus.DONE]
    if bad or done.status != TrackStatus.DONE or any(codes):
        tail = workers.tail() if workers is not None else ""
        raise SystemExit(f"{label}: track {done.status.value}, {len(bad)} tickets not done {bad[:3]}, worker exit "
                         f"codes {codes}\n{tail}")
    log = engine.dispatch_log
    calls = sum(t.calls for tier, t in session.ledger.by_tier().items() if tier in (3, 4))
    return Run(label, slots, max(e for _, _, e in log) - min(s for _, s, _ in log), [e - s for _, s, e in log],
               calls / len(tickets), wall, sum(t.attempts for t in done.tickets))


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tickets", type=int, default=1000)
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4], help="worker process counts to run")
    ap.add_argument("--threads", type=int, default=4, help="threads per worker process (and its prefetch)")
    ap.add_argument("--latency", type=float, default=0.05, help="seconds per model call (L)")
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--max-deps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--beat", type=float, default=10.0,
                    help="worker heartbeat seconds (distributed.beat_interval_s's default; a short beat on a "
                         "loaded machine makes workers look offline and their attempts reassigned)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (repos, journals, worker logs)")
    ap.add_argument("--verbose", action="store_true", help="print each run's phases as it goes")
    args = ap.parse_args(argv)
    if not Path(REDIS).exists():
        print("bench/distributed.py: redis-server is not installed (apt-get install redis-server)", file=sys.stderr)
        return 2

    tickets = random_dag(args.tickets, args.seed, args.window, args.max_deps)
    cp = int(dag.critical_path_length(tickets))
    root = Path(tempfile.mkdtemp(prefix="bdist-", dir="/tmp"))
    server = Redis(root)
    print(f"distributed: {args.tickets} tickets (critical path {cp}), L = {args.latency}s per model call, "
          f"{args.threads} threads per worker process, processes {args.processes}; redis-server on a unix socket "
          f"(append-only); python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    hdr = (f"{'run':<16} {'slots':>5} {'W s':>6} {'bound s':>8} {'makespan s':>10} {'ratio':>6} "
           f"{'attempts':>8} {'attempt ms':>10} {'overhead ms':>11} {'dispatch ms/ticket':>18}")
    rows: list[str] = []

    def row(r: Run, local: Run | None) -> str:
        w = r.calls_per_ticket * args.latency
        bound = max(cp * w, args.tickets * w / r.slots)
        overhead = statistics.mean(r.attempt_times) - w
        extra = ""
        if local is not None:  # what the same ticket costs more through Redis than on a local thread
            local_overhead = statistics.mean(local.attempt_times) - local.calls_per_ticket * args.latency
            extra = f"{1000 * (overhead - local_overhead):>18.1f}"
        return (f"{r.label:<16} {r.slots:>5} {w:>6.3f} {bound:>8.2f} {r.makespan:>10.2f} {r.makespan / bound:>6.2f} "
                f"{r.attempts:>8} {1000 * (overhead + w):>10.1f} {1000 * overhead:>11.1f} {extra}")

    try:
        for n in args.processes:  # each pair's rows are printed as soon as it ran (a long run shows progress)
            slots = n * args.threads
            local = one_run(f"local x{slots}", tickets, root / f"local{n}", args.latency, slots=slots, redis_url=None,
                            verbose=args.verbose)
            remote = one_run(f"{n} worker{'s' if n > 1 else ''} x{args.threads}", tickets, root / f"remote{n}",
                             args.latency, slots=slots, redis_url=server.url, processes=n, threads=args.threads,
                             beat=args.beat, verbose=args.verbose)
            rows += [row(local, None), row(remote, local)]
            print(f"  {rows[-2]}\n  {rows[-1]}", flush=True)
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}")

    print()
    print(hdr)
    print("-" * len(hdr))
    print("\n".join(rows))
    print()
    print("W: model calls per ticket (counted from the ledger) x L. "
          "bound: max(critical path x W, tickets x W / slots).")
    print("attempt: engine dispatch -> result, mean per ticket; overhead: attempt - W; dispatch: remote overhead minus "
          "the local run's at the same slots (queue, bus round trips, branch fetch/push).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
