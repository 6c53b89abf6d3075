"""`conductor worker` on SIGTERM: out in seconds, nothing lost, no thread left using a closed bus.

An attempt waiting on a person is parked (the answer resumes it on another worker); an attempt in the middle of a
model call is given back undone and dispatched again at once. Each ticket ends done exactly once.
"""

from __future__ import annotations

import ctypes
import os
import platform
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conductor.config import Config
from conductor.distributed.schema import Keys
from conductor.events import Notice
from conductor.model import TicketStatus, TrackStatus
from tests.dist_support import RedisServer, WorkerProcess, redis_server  # noqa: F401
from tests.git_support import sh_git
from tests.helpers import wait_for
from tests.test_distributed_redis import desk_factory, dist_config, merges_per_ticket  # noqa: F401

pytestmark = pytest.mark.timeout(240)

PROMPT_EXIT_S = 5.0
"""Dramatiq's own stop waited 30 s for an attempt that waits on a person; a stop must not wait for anyone."""


def _terminate_timed(w: WorkerProcess, *, thread: int | None = None) -> float:
    t0 = time.monotonic()
    if thread is None:
        w.signal(signal.SIGTERM)
    else:  # to one thread: the kernel may hand a process's signal to any thread that does not block it
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.syscall(SYS_TGKILL, w.proc.pid, thread, signal.SIGTERM) == 0, ctypes.get_errno()
    w.proc.wait(timeout=60)
    return time.monotonic() - t0


SYS_TGKILL = 234
"""tgkill(2) on x86-64."""


def _other_thread(pid: int) -> int:
    """A thread of process `pid` that is not its main thread."""
    tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    others = [t for t in tids if t != pid]
    assert others, f"process {pid} has one thread"
    return others[-1]


def _clean_exit(w: WorkerProcess) -> None:
    out = w.output()
    assert w.proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out and "closed file" not in out, out[-3000:]


def test_sigterm_while_an_approval_waits_parks_it_and_exits_at_once(
        redis_server: RedisServer, tmp_path: Path, desk_factory) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    cfg = dist_config(tmp_path).updated({"distributed": {"approval_wait_s": 600}})
    desk, repo = desk_factory(redis_server.url, cfg, 1)
    desk.person.stop()  # nobody answers until the worker is gone
    desk.session.broker.on_requested.clear()
    w1 = WorkerProcess(redis_server.url, "w1", tmp_path, namespace=cfg.distributed.namespace, threads=1)
    w2 = None
    try:
        (track_id,) = desk.session.plan_epic("Build one file").wait(timeout=30)
        wait_for(lambda: len(desk.session.pending_approvals()) == 1, timeout=60, what="the write asked on the desktop")
        took = _terminate_timed(w1)
        assert took < PROMPT_EXIT_S, f"the worker took {took:.1f} s to stop:\n{w1.output()[-3000:]}"
        _clean_exit(w1)
        wait_for(lambda: any(isinstance(e, Notice) and "parked" in e.message for e in desk.events), timeout=30,
                 what="the attempt parked by the stopping worker")
        w2 = WorkerProcess(redis_server.url, "w2", tmp_path, namespace=cfg.distributed.namespace, threads=1)
        (req,) = desk.session.pending_approvals()
        desk.session.resolve_approval(req.id, approved=True)
        desk.session.engines[track_id].join(timeout=90)
        track = desk.session.engines[track_id].track
        assert track.status == TrackStatus.DONE, [(t.id, t.status, t.failed_reason) for t in track.tickets]
        assert track.tickets[0].attempts == 1
        assert "T1" in sh_git(repo, "show", f"conductor/{track_id}:src/t1.py")
        assert merges_per_ticket(repo, f"conductor/{track_id}") == {"T1": 1}
    finally:
        w1.stop()
        if w2 is not None:
            w2.stop()


@dataclass
class MidCall:
    cfg: Config
    desk: Any
    repo: Path
    client: Any
    slow: WorkerProcess
    track_id: str


@contextmanager
def slow_worker_mid_call(redis_url: str, tmp_path: Path, make_desk: Any) -> Iterator[MidCall]:
    """One desktop, one epic, and a worker whose every model call takes 30 s, running the attempt: a SIGTERM now
    lands inside a model call. The beat is long enough that a loaded machine never makes the worker look offline:
    the attempt must come back by the worker's word (Released), not by its lease running out."""
    import redis

    cfg = dist_config(tmp_path, beat=3.0)
    desk, repo = make_desk(redis_url, cfg, 1)
    keys = Keys(cfg.distributed.namespace)
    client = redis.Redis.from_url(redis_url)
    slow = WorkerProcess(redis_url, "slow", tmp_path, namespace=cfg.distributed.namespace, threads=1,
                         latency=30.0, beat=3.0)
    try:
        (track_id,) = desk.session.plan_epic("Build one file").wait(timeout=30)
        wait_for(lambda: bool(client.keys(keys.lease("*"))), timeout=60, what="the slow worker running the attempt")
        yield MidCall(cfg, desk, repo, client, slow, track_id)
    finally:
        slow.stop()
        client.close()


def test_sigterm_mid_model_call_gives_the_attempt_back_and_exits_at_once(
        redis_server: RedisServer, tmp_path: Path, desk_factory) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    with slow_worker_mid_call(redis_server.url, tmp_path, desk_factory) as m, ExitStack() as later:
        cfg, desk, repo, slow, track_id = m.cfg, m.desk, m.repo, m.slow, m.track_id
        took = _terminate_timed(slow)
        assert took < PROMPT_EXIT_S, f"the worker took {took:.1f} s to stop:\n{slow.output()[-3000:]}"
        _clean_exit(slow)
        w2 = WorkerProcess(redis_server.url, "w2", tmp_path, namespace=cfg.distributed.namespace, threads=1,
                           beat=3.0)
        later.callback(w2.stop)
        desk.session.engines[track_id].join(timeout=90)
        track = desk.session.engines[track_id].track
        assert track.status == TrackStatus.DONE, [(t.id, t.status, t.failed_reason) for t in track.tickets]
        assert track.tickets[0].status == TicketStatus.DONE and track.tickets[0].attempts == 1
        assert merges_per_ticket(repo, f"conductor/{track_id}") == {"T1": 1}
        dispatcher = desk.dist.closers[1]
        assert not dispatcher.reassigned  # type: ignore[attr-defined]  # given back, not lost


def test_attempt_reassigned_onto_the_worker_still_running_it_completes_once(
        redis_server: RedisServer, tmp_path: Path, desk_factory) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """The only worker stops answering (SIGSTOP) long enough to be offline, so its attempt is reassigned — onto
    itself, once it runs again, while its older dispatch of the same attempt is still running there. Both want
    the attempt's one branch and worktree: the older must stop and clean up before the newer starts."""
    import redis

    cfg = dist_config(tmp_path)
    desk, repo = desk_factory(redis_server.url, cfg, 2)
    keys = Keys(cfg.distributed.namespace)
    client = redis.Redis.from_url(redis_server.url)
    w = WorkerProcess(redis_server.url, "only", tmp_path, namespace=cfg.distributed.namespace, threads=3,
                      latency=0.5, chunk_delay=0.05)
    try:
        (track_id,) = desk.session.plan_epic("Build two files").wait(timeout=30)
        wait_for(lambda: bool(client.keys(keys.lease("*"))), timeout=60, what="the worker running an attempt")
        w.signal(signal.SIGSTOP)
        dispatcher = desk.dist.closers[1]
        wait_for(lambda: dispatcher.reassigned, timeout=60, what="a reassignment")  # type: ignore[attr-defined]
        w.signal(signal.SIGCONT)
        desk.session.engines[track_id].join(timeout=120)
        track = desk.session.engines[track_id].track
        assert track.status == TrackStatus.DONE, [(t.id, t.status, t.failed_reason) for t in track.tickets]
        assert all(t.attempts == 1 for t in track.tickets), [(t.id, t.attempts, t.failed_reason)
                                                              for t in track.tickets]
        assert merges_per_ticket(repo, f"conductor/{track_id}") == {"T1": 1, "T2": 1}
        out = w.output()
        assert "index.lock" not in out and "was released" not in out, out[-3000:]
    finally:
        w.stop()
        client.close()


@pytest.mark.skipif(platform.machine() != "x86_64", reason="tgkill's syscall number is x86-64's")
def test_sigterm_taken_by_another_thread_still_stops_the_worker_at_once(
        redis_server: RedisServer, tmp_path: Path, desk_factory) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """The kernel may hand SIGTERM to any of the worker's threads. Python runs the handler on the main thread,
    which must wake up to do so: asleep in an untimed wait it only did once the 30 s model call had ended (seen in
    CI under load, where the signal landed on a busy thread)."""
    with slow_worker_mid_call(redis_server.url, tmp_path, desk_factory) as m:
        took = _terminate_timed(m.slow, thread=_other_thread(m.slow.proc.pid))
        assert took < PROMPT_EXIT_S, f"the worker took {took:.1f} s to stop:\n{m.slow.output()[-3000:]}"
        _clean_exit(m.slow)
