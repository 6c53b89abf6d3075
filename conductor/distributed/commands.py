"""The command line of distributed mode: `conductor worker`, and `conductor run --broker URL --remote GIT_URL`.

Imported by conductor.cli only when one of them is used (a plain run imports neither redis nor dramatiq)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from conductor.config import Config
from conductor.errors import ConfigError, MissingApiKey
from conductor.session import Session


def add_worker_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from conductor.providers.factory import PROVIDERS

    w = sub.add_parser("worker", help="run Tier 3 attempts sent by a desktop over Redis (Dramatiq)")
    w.add_argument("--broker", help="redis://HOST:PORT/DB or unix:///path/redis.sock (default: $CONDUCTOR_BROKER_URL; "
                                    "a URL with a password only through that variable)")
    w.add_argument("--threads", type=int, default=2, help="attempts run at once (also the prefetch; default 2)")
    w.add_argument("--name", help="this worker's name in the monitor (default: HOST-PID)")
    w.add_argument("--namespace", help="the desktop's namespace (default: the config's distributed.namespace)")
    w.add_argument("--queue", help="the queue to take attempts from (default: the config's distributed.queue)")
    w.add_argument("--workdir", help="where clones, worktrees and parked state live (default: "
                                     "$XDG_STATE_HOME/conductor/worker-NAME)")
    w.add_argument("--beat", type=float, help="seconds between heartbeats (default: distributed.beat_interval_s)")
    w.add_argument("--provider", default="gemini", metavar="NAME",
                   help=f"this worker's model endpoint: {', '.join(PROVIDERS)} or a configured one; its API key comes "
                        "from THIS machine's environment (the desktop never sends one)")
    w.add_argument("--base-url", help="send the provider's requests (and its API key) to this URL")
    w.add_argument("--latency", type=float, default=0.0, help="scripted provider: seconds before each answer")
    w.add_argument("--chunk-delay", type=float, default=0.0, help="scripted provider: seconds between chunks")


def add_run_flags(run: argparse.ArgumentParser) -> None:
    run.add_argument("--broker", help="run Tier 3 on `conductor worker` processes through this Redis (redis://HOST:"
                                      "PORT/DB or unix://PATH); default: the config's [distributed], else local "
                                      "threads")
    run.add_argument("--remote", help="the git remote the workers fetch from and push to (with --broker)")


def cmd_worker(args: argparse.Namespace, cfg: Config) -> int:
    import logging
    import os

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("dramatiq").setLevel(logging.WARNING)
    from conductor.distributed.bus import BusRefused, broker_url, open_bus
    from conductor.distributed.worker import WorkerRuntime, default_name
    from conductor.providers.factory import make_provider

    dcfg = cfg.distributed.model_copy(update={k: v for k, v in (("namespace", args.namespace),
                                                                ("queue", args.queue)) if v})
    try:
        url = broker_url(dcfg, args.broker)
        if url is None:
            raise BusRefused(f"no broker: pass --broker redis://HOST:PORT/DB or set {dcfg.broker_url_env}")
        if args.threads < 1:
            raise ConfigError("--threads must be at least 1")
        provider = make_provider(args.provider, cfg, latency_s=args.latency, chunk_delay_s=args.chunk_delay,
                                 base_url=args.base_url)
        name = args.name or default_name()
        state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
        workdir = Path(args.workdir).expanduser().resolve() if args.workdir else state / "conductor" / f"worker-{name}"
        bus = open_bus(url, dcfg)
        try:
            runtime = WorkerRuntime(bus, name=name, threads=args.threads, workdir=workdir, provider=provider,
                                    queue=dcfg.queue, beat_interval_s=args.beat or dcfg.beat_interval_s)
        except BaseException:
            bus.close()
            raise
    except (ConfigError, MissingApiKey, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    runtime.start()
    print(f"worker {name}: {args.threads} thread(s) on queue {dcfg.queue!r} of {bus.shown} (namespace "
          f"{dcfg.namespace!r}); work folder {workdir}", flush=True)
    # A short timeout, not a bare wait(): a signal the kernel hands to another of this process's threads only
    # flags the handler for the main thread, which runs it when it next runs Python, and a main thread asleep in an
    # untimed lock wait never does. Seen: a SIGTERM acted on only after the attempt's 30 s model call had ended.
    while not stop.wait(0.2):
        pass
    print(f"worker {name}: stopping (running attempts finish first)", flush=True)
    import faulthandler
    faulthandler.dump_traceback_later(20, exit=False)  # a stop that hangs says where, on stderr
    runtime.stop()
    faulthandler.cancel_dump_traceback_later()
    bus.close()
    totals = runtime.ledger.by_tier().values()
    print(f"worker {name}: usage: {sum(t.calls for t in totals)} calls, {sum(t.total_tokens for t in totals)} tokens "
          f"(as the provider reported them; the desktop's ledger holds the same)", flush=True)
    return 0


@dataclass
class Distributed:
    """What `run --broker` attached to a session; `close` after the session shut down."""

    closers: list[object] = field(default_factory=list)
    closed: bool = False

    def close(self) -> None:
        """Idempotent (the session's shutdown calls it, and so may its owner)."""
        if self.closed:
            return
        self.closed = True
        for c in reversed(self.closers):
            stop = getattr(c, "stop", None) or getattr(c, "close", None)
            if callable(stop):
                stop()


def attach(session: Session, cfg: Config, *, broker: str | None, remote: str | None,
           workdir: Path | None = None) -> Distributed | None:
    """With a broker configured: Tier 3 of every track of `session` goes to the queue (and, with
    distributed.local_threads, this process serves the queue too). None: no broker, local threads as always.
    Raises ConfigError (BusRefused) saying what is missing."""
    from conductor.distributed.bus import broker_url, open_bus
    from conductor.distributed.dispatch import Dispatcher
    from conductor.distributed.worker import WorkerRuntime, default_name

    dcfg = cfg.distributed
    url = broker_url(dcfg, broker)
    if url is None:
        return None
    git_remote = remote or dcfg.remote
    if not git_remote:
        raise ConfigError("a broker needs a git remote the workers reach: pass --remote GIT_URL (or set "
                          "distributed.remote)")
    bus = open_bus(url, dcfg)
    out = Distributed([bus])
    dispatcher = Dispatcher(bus, cfg, git_remote=git_remote, events=session.events, broker=session.broker,
                            ledger=session.ledger, workspace=session.workspace)
    out.closers.append(dispatcher)
    session.remote = dispatcher
    session.closers.append(out.close)
    if dcfg.local_threads:
        runtime = WorkerRuntime(bus, name=f"{default_name()}-desktop", threads=dcfg.local_threads,
                                workdir=workdir or session.store.root / "_worker", provider=session.provider,
                                queue=dcfg.queue, beat_interval_s=dcfg.beat_interval_s)
        runtime.start()
        out.closers.append(runtime)
    return out
