"""Remote Tier 3 end to end: a real redis-server, real `conductor worker` processes, a real git remote.

What must hold (issue 13): two workers run a 20-ticket DAG whose tool approvals a person answers on the desktop,
every ticket done once, streams and usage back, the desktop's ledger equal to what the workers' provider reported;
a worker killed mid-ticket, a worker stopped (SIGSTOP) and the broker killed mid-run all end with every ticket
done exactly once.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conductor.config import Config
from conductor.distributed.commands import Distributed, attach
from conductor.distributed.schema import Keys
from conductor.events import StreamDelta, ToolCalled, UsageRecorded
from conductor.model import TicketStatus, TrackStatus
from conductor.providers.scripted import Reply, ScriptedProvider
from conductor.session import Session
from tests.dist_support import PersonAnswers, RedisServer, WorkerProcess, redis_server  # noqa: F401
from tests.git_support import make_repo, sh_git
from tests.helpers import wait_for

pytestmark = pytest.mark.timeout(240)


def dag_plan(n: int) -> Reply:
    """n tickets, each writing its own file; ticket i depends on i-1 when i is odd (chains and fan-out)."""
    tickets = []
    for i in range(1, n + 1):
        deps = [f"T{i - 1}"] if i > 1 and i % 2 == 1 else ([f"T{i - 2}"] if i > 2 else [])
        tickets.append({"id": f"T{i}", "title": f"Write t{i}", "description": f"Create src/t{i}.py.",
                        "depends_on": deps, "target_files": [f"src/t{i}.py"], "acceptance_criteria": ["exists"],
                        "step_mode": False, "model_override": None})
    return Reply(text=json.dumps({"tickets": tickets}))


def dist_config(tmp: Path, *, beat: float = 0.3) -> Config:
    return Config().updated({"engine": {"max_workers": 8}, "git": {"worktrees_root": str(tmp / "desk-worktrees")},
                             "distributed": {"beat_interval_s": beat, "heartbeat_timeout_ms": 1500,
                                             "namespace": "t" + tmp.name[-12:].replace("_", "")}})


@dataclass
class Desk:
    session: Session
    dist: Distributed
    person: PersonAnswers
    events: list[object]


@pytest.fixture
def desk_factory(tmp_path: Path) -> Iterator[object]:
    made: list[Desk] = []

    def make(url: str, cfg: Config, n: int, *, latency: float = 0.0) -> tuple[Desk, Path]:
        repo = make_repo(tmp_path)
        remote = tmp_path / "remote.git"
        sh_git(tmp_path, "init", "-q", "--bare", str(remote))
        provider = ScriptedProvider({2: [dag_plan(n)]}, latency_s=latency)
        session = Session(cfg, workspace=repo, tracks_dir=tmp_path / "tracks", provider=provider, linger=False)
        session.broker.auto_approve({"plan", "tickets", "spawn"})
        dist = attach(session, cfg, broker=url, remote=str(remote))
        assert dist is not None
        seen: list[object] = []
        session.events.post = _tap(session.events.post, seen)  # type: ignore[method-assign]
        desk = Desk(session, dist, PersonAnswers(session), seen)
        made.append(desk)
        return desk, repo

    yield make
    for d in made:
        d.session.shutdown()
        d.dist.close()
        d.person.stop()


def _tap(post, seen):  # type: ignore[no-untyped-def]
    def tapped(ev):  # type: ignore[no-untyped-def]
        seen.append(ev)
        return post(ev)
    return tapped


def run_epic(desk: Desk, timeout: float = 120) -> str:
    (track_id,) = desk.session.plan_epic("Build the twenty files").wait(timeout=30)
    desk.session.engines[track_id].join(timeout=timeout)
    return track_id


def merges_per_ticket(repo: Path, branch: str) -> dict[str, int]:
    log = sh_git(repo, "log", "--first-parent", "--format=%B%x00", branch)
    counts: dict[str, int] = {}
    for body in log.split("\x00"):
        for m in re.finditer(r"Conductor-Merged: \S+?/(T\d+)/a\d+", body):
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def worker_usage(w: WorkerProcess) -> tuple[int, int]:
    m = re.search(r"usage: (\d+) calls, (\d+) tokens", w.output())
    assert m, f"worker {w.name} printed no usage line:\n{w.output()[-2000:]}"
    return int(m.group(1)), int(m.group(2))


def test_two_workers_run_a_20_ticket_dag_with_desktop_approvals(redis_server: RedisServer, tmp_path: Path,
                                                                 desk_factory) -> None:  # type: ignore[no-untyped-def]
    cfg = dist_config(tmp_path)
    desk, repo = desk_factory(redis_server.url, cfg, 20)
    workers = [WorkerProcess(redis_server.url, f"w{i}", tmp_path, namespace=cfg.distributed.namespace, threads=2) for i in (1, 2)]
    try:
        tid = run_epic(desk)
        track = desk.session.engines[tid].track
        assert track.status == TrackStatus.DONE, [(t.id, t.status, t.failed_reason) for t in track.tickets]
        assert all(t.status == TicketStatus.DONE and t.attempts == 1 for t in track.tickets), \
            [(t.id, t.attempts, t.failed_reason) for t in track.tickets if t.attempts != 1]
        merges = merges_per_ticket(repo, f"conductor/{tid}")
        assert merges == {f"T{i}": 1 for i in range(1, 21)}, merges
        for i in range(1, 21):
            assert f"T{i}" in sh_git(repo, "show", f"conductor/{tid}:src/t{i}.py")
        assert len(desk.person.answered) == 20  # every write approved by the person, on the desktop
        kinds = {type(e) for e in desk.events}
        assert {StreamDelta, ToolCalled, UsageRecorded} <= kinds
        assert not desk.dist.closers[1].rejected  # type: ignore[attr-defined]
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0], [w.output()[-3000:] for w in workers]
    # the ledger equals what the workers' provider reported, call for call and token for token
    remote = {t: tot for t, tot in desk.session.ledger.by_tier().items() if t in (3, 4)}
    calls = sum(tot.calls for tot in remote.values())
    tokens = sum(tot.total_tokens for tot in remote.values())
    reported = [worker_usage(w) for w in workers]
    assert all(c > 0 for c, _ in reported), reported  # both workers took tickets
    assert (calls, tokens) == (sum(c for c, _ in reported), sum(t for _, t in reported))


def test_a_real_worker_dead_letters_a_malformed_message(redis_server: RedisServer,
                                                                    tmp_path: Path) -> None:
    import dramatiq
    import redis

    from conductor.distributed.bus import advertise, open_bus
    from conductor.distributed.worker import ACTOR

    cfg = dist_config(tmp_path)
    bus = open_bus(redis_server.url, cfg.distributed)
    advertise(bus)
    w = WorkerProcess(redis_server.url, "w1", tmp_path, namespace=cfg.distributed.namespace, threads=1)
    try:
        keys = Keys(cfg.distributed.namespace)
        msg = dramatiq.Message(queue_name=cfg.distributed.queue, actor_name=ACTOR, args=('{"kind": "attempt"}',),
                               kwargs={}, options={})
        bus.broker.enqueue(msg)
        client = redis.Redis.from_url(redis_server.url)
        entries = wait_for(lambda: client.hvals(keys.dlq), timeout=30, what="a dead letter")
        assert "malformed message" in json.loads(entries[0])["reason"]
    finally:
        assert w.stop() == 0, w.output()[-2000:]
        bus.close()


def test_worker_for_another_namespace_refuses_to_start(redis_server: RedisServer, tmp_path: Path) -> None:
    cfg = dist_config(tmp_path)
    from conductor.distributed.bus import advertise, open_bus
    bus = open_bus(redis_server.url, cfg.distributed)
    advertise(bus)
    bus.close()
    proc = subprocess.run(
        [*_worker_argv(redis_server.url, tmp_path), "--namespace", "elsewhere"], capture_output=True, text=True,
        timeout=60, check=False)
    assert proc.returncode == 2
    assert "different broker or namespace" in proc.stderr and "namespace 'elsewhere'" in proc.stderr


def _worker_argv(url: str, tmp: Path) -> list[str]:
    import sys
    cfg = tmp / "worker-config.toml"
    cfg.write_text("")
    return [sys.executable, "-m", "conductor.cli", "--config", str(cfg), "worker", "--broker", url, "--provider",
            "scripted", "--workdir", str(tmp / "wd")]


def test_gevent_patched_worker_refuses_to_start(redis_server: RedisServer, tmp_path: Path) -> None:
    """gevent is not installed here, so the child plants what gevent.monkey.patch_all leaves behind (its `saved`
    table, the same thing Dramatiq's own is_gevent_active reads) before the worker starts."""
    import sys
    argv = _worker_argv(redis_server.url, tmp_path)[3:]
    code = ("import sys, types; m = types.ModuleType('gevent.monkey'); m.saved = {'threading': {'Lock': None}}; "
            "sys.modules['gevent'] = types.ModuleType('gevent'); sys.modules['gevent.monkey'] = m; "
            f"from conductor.cli import main; sys.exit(main({argv!r}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "gevent-monkeypatched" in proc.stderr


def test_killed_worker_ticket_completes_once_elsewhere(redis_server: RedisServer, tmp_path: Path,
                                                       desk_factory) -> None:  # type: ignore[no-untyped-def]
    cfg = dist_config(tmp_path)
    desk, repo = desk_factory(redis_server.url, cfg, 4, latency=0.0)
    victim = WorkerProcess(redis_server.url, "victim", tmp_path, namespace=cfg.distributed.namespace, threads=1, latency=0.4, chunk_delay=0.05)
    keys = Keys(cfg.distributed.namespace)
    import redis
    client = redis.Redis.from_url(redis_server.url)
    (track_id,) = desk.session.plan_epic("Build four files").wait(timeout=30)
    wait_for(lambda: client.zcard(keys.leases) > 0 and client.keys(keys.lease("*")), timeout=60,
             what="the victim holding a lease")
    victim.signal(signal.SIGKILL)
    victim.proc.wait()
    rescuer = WorkerProcess(redis_server.url, "rescuer", tmp_path, namespace=cfg.distributed.namespace, threads=2)
    try:
        desk.session.engines[track_id].join(timeout=120)
        track = desk.session.engines[track_id].track
        assert track.status == TrackStatus.DONE, [(t.id, t.status, t.failed_reason) for t in track.tickets]
        assert merges_per_ticket(repo, f"conductor/{track_id}") == {f"T{i}": 1 for i in range(1, 5)}
        dispatcher = desk.dist.closers[1]
        assert dispatcher.reassigned, "the killed worker's ticket was not reassigned"  # type: ignore[attr-defined]
    finally:
        rescuer.stop()
        victim.stop()


def _lease_holder(client, keys: Keys) -> str | None:  # type: ignore[no-untyped-def]
    from conductor.distributed.schema import Lease
    for key in client.keys(keys.lease("*")):
        raw = client.get(key)
        if raw is not None:
            return Lease.model_validate_json(raw).worker
    return None


def test_stopped_worker_goes_offline_its_ticket_is_reassigned_and_its_late_result_rejected(
        redis_server: RedisServer, tmp_path: Path, desk_factory) -> None:  # type: ignore[no-untyped-def]
    import redis

    from conductor.distributed.schema import WorkerInfo
    cfg = dist_config(tmp_path)
    desk, repo = desk_factory(redis_server.url, cfg, 2)
    keys = Keys(cfg.distributed.namespace)
    client = redis.Redis.from_url(redis_server.url)
    sleepy = WorkerProcess(redis_server.url, "sleepy", tmp_path, namespace=cfg.distributed.namespace, threads=2,
                           latency=0.6)
    rescuer = None
    try:
        (track_id,) = desk.session.plan_epic("Build two files").wait(timeout=30)
        wait_for(lambda: _lease_holder(client, keys) == "sleepy", timeout=60, what="sleepy holding a lease")
        sleepy.signal(signal.SIGSTOP)
        rescuer = WorkerProcess(redis_server.url, "rescuer", tmp_path, namespace=cfg.distributed.namespace)
        dispatcher = desk.dist.closers[1]
        wait_for(lambda: dispatcher.reassigned, timeout=60, what="a reassignment")  # type: ignore[attr-defined]
        info = WorkerInfo.model_validate_json(client.get(keys.worker("sleepy")))
        assert info.offline() and info.heartbeat_age() > 3 * info.beat_interval_s
        desk.session.engines[track_id].join(timeout=120)
        track = desk.session.engines[track_id].track
        assert track.status == TrackStatus.DONE, [(t.id, t.status, t.failed_reason) for t in track.tickets]
        sleepy.signal(signal.SIGCONT)
        wait_for(lambda: dispatcher.rejected, timeout=60, what="the late result rejected")  # type: ignore[attr-defined]
        assert {rid for rid, _ in dispatcher.rejected} <= set(dispatcher.reassigned)  # type: ignore[attr-defined]
        assert merges_per_ticket(repo, f"conductor/{track_id}") == {"T1": 1, "T2": 1}
    finally:
        sleepy.stop()
        if rescuer is not None:
            rescuer.stop()


def test_broker_killed_mid_run_and_restarted_loses_nothing(redis_server: RedisServer, tmp_path: Path,
                                                           desk_factory) -> None:  # type: ignore[no-untyped-def]
    cfg = dist_config(tmp_path, beat=0.5)
    desk, repo = desk_factory(redis_server.url, cfg, 8)
    workers = [WorkerProcess(redis_server.url, f"w{i}", tmp_path, namespace=cfg.distributed.namespace,
                             latency=0.15) for i in (1, 2)]
    try:
        (track_id,) = desk.session.plan_epic("Build eight files").wait(timeout=30)
        engine = desk.session.engines[track_id]
        wait_for(lambda: sum(t.status == TicketStatus.DONE for t in engine.track.tickets) >= 2, timeout=90,
                 what="two tickets done")
        redis_server.kill()
        # down until every worker has noticed (their logs say so), then back on the same append-only file
        wait_for(lambda: all("unreachable" in w.output() or "Consumer encountered a connection error" in w.output()
                             for w in workers), timeout=60, what="the workers noticing the broker is gone")
        redis_server.start()
        engine.join(timeout=150)
        track = engine.track
        assert track.status == TrackStatus.DONE, [(t.id, t.status, t.failed_reason) for t in track.tickets]
        assert merges_per_ticket(repo, f"conductor/{track_id}") == {f"T{i}": 1 for i in range(1, 9)}
    finally:
        for w in workers:
            w.stop()


def test_a_long_approval_wait_parks_the_attempt_and_the_answer_resumes_it(redis_server: RedisServer,
                                                                          tmp_path: Path, desk_factory) -> None:  # type: ignore[no-untyped-def]
    """Nobody answers within approval_wait_s: the worker saves the attempt (journal + worktree changes), acks
    and frees its thread; the person's later answer resumes it on a worker, where the write then happens."""
    from conductor.events import Notice
    cfg = dist_config(tmp_path).updated({"distributed": {"approval_wait_s": 0.5}})
    desk, repo = desk_factory(redis_server.url, cfg, 1)
    desk.person.stop()  # this person answers late, by hand, below
    desk.session.broker.on_requested.clear()
    w = WorkerProcess(redis_server.url, "w1", tmp_path, namespace=cfg.distributed.namespace, threads=1)
    try:
        (track_id,) = desk.session.plan_epic("Build one file").wait(timeout=30)
        wait_for(lambda: any(isinstance(e, Notice) and "parked" in e.message for e in desk.events), timeout=60,
                 what="the attempt parking")
        client = __import__("redis").Redis.from_url(redis_server.url)
        wait_for(lambda: json.loads(client.get(Keys(cfg.distributed.namespace).worker("w1")))["current"] == [],
                 timeout=10, what="the worker holding no attempt while the person thinks")
        (req,) = desk.session.pending_approvals()
        desk.session.resolve_approval(req.id, approved=True)
        desk.session.engines[track_id].join(timeout=60)
        track = desk.session.engines[track_id].track
        assert track.status == TrackStatus.DONE, [(t.id, t.status, t.failed_reason) for t in track.tickets]
        assert track.tickets[0].attempts == 1
        assert "T1" in sh_git(repo, "show", f"conductor/{track_id}:src/t1.py")
        assert merges_per_ticket(repo, f"conductor/{track_id}") == {"T1": 1}
    finally:
        w.stop()


def test_broker_password_only_from_the_environment_and_never_shown(redis_server: RedisServer, tmp_path: Path) -> None:
    import os
    import sys

    import redis

    from conductor.config import parse_config
    from conductor.distributed.bus import advertise, open_bus
    from conductor.errors import ConfigError
    secret = "s3cr3t-broker-pass"
    cfg = dist_config(tmp_path)
    bus = open_bus(redis_server.url, cfg.distributed)
    advertise(bus)
    bus.close()
    redis.Redis.from_url(redis_server.url).config_set("requirepass", secret)
    with_pw = f"unix://:{secret}@{redis_server.sock}"
    with pytest.raises(ConfigError, match="carries a password"):
        parse_config({"distributed": {"broker_url": with_pw}})
    argv = [sys.executable, "-m", "conductor.cli", "--config", str(tmp_path / "c.toml"), "worker", "--provider",
            "scripted", "--namespace", cfg.distributed.namespace, "--workdir", str(tmp_path / "wd")]
    (tmp_path / "c.toml").write_text("")
    env = {k: v for k, v in os.environ.items() if k != "CONDUCTOR_BROKER_URL"}
    refused = subprocess.run([*argv, "--broker", with_pw], capture_output=True, text=True, timeout=60, env=env,
                             check=False)
    assert refused.returncode == 2 and "environment variable CONDUCTOR_BROKER_URL" in refused.stderr
    assert secret not in refused.stderr + refused.stdout
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**env, "CONDUCTOR_BROKER_URL": with_pw})
    try:
        first = proc.stdout.readline() if proc.stdout else ""
        assert first.startswith("worker ") and "thread(s) on queue" in first, first
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, first + out
    assert secret not in first + out


def test_local_and_remote_workers_serve_one_track(redis_server: RedisServer, tmp_path: Path,
                                                  desk_factory) -> None:  # type: ignore[no-untyped-def]
    import redis

    from conductor.distributed.schema import WorkerInfo
    cfg = dist_config(tmp_path).updated({"distributed": {"local_threads": 1}})
    desk, repo = desk_factory(redis_server.url, cfg, 8, latency=0.05)
    client = redis.Redis.from_url(redis_server.url)
    keys = Keys(cfg.distributed.namespace)
    remote = WorkerProcess(redis_server.url, "far", tmp_path, namespace=cfg.distributed.namespace, threads=1,
                           latency=0.05)
    try:
        track_id = run_epic(desk)
        assert desk.session.engines[track_id].track.status == TrackStatus.DONE
        assert merges_per_ticket(repo, f"conductor/{track_id}") == {f"T{i}": 1 for i in range(1, 9)}
        infos = [WorkerInfo.model_validate_json(client.get(keys.worker(n.decode())))
                 for n in client.zrange(keys.workers, 0, -1)]
        done = {i.name: i.done for i in infos}
        assert done.get("far", 0) >= 1 and any(n.endswith("-desktop") and d >= 1 for n, d in done.items()), done
    finally:
        remote.stop()


def test_poison_attempt_is_dead_lettered_and_a_retry_from_the_queue_completes_it(
        redis_server: RedisServer, tmp_path: Path, desk_factory) -> None:  # type: ignore[no-untyped-def]
    """max_deliveries = 1: the worker killed mid-ticket makes the reassigned delivery the second one, so it is
    dead-lettered (the desktop says so); a monitor's `retry` action re-queues it and it completes."""
    import redis

    from conductor.distributed.schema import dlq_action_json
    cfg = dist_config(tmp_path).updated({"distributed": {"max_deliveries": 1}})
    desk, repo = desk_factory(redis_server.url, cfg, 1)
    keys = Keys(cfg.distributed.namespace)
    client = redis.Redis.from_url(redis_server.url)
    victim = WorkerProcess(redis_server.url, "victim", tmp_path, namespace=cfg.distributed.namespace, threads=1,
                           latency=0.5)
    rescuer = None
    try:
        (track_id,) = desk.session.plan_epic("Build one file").wait(timeout=30)
        wait_for(lambda: _lease_holder(client, keys) == "victim", timeout=60, what="the victim holding a lease")
        victim.signal(signal.SIGKILL)
        victim.proc.wait()
        rescuer = WorkerProcess(redis_server.url, "rescuer", tmp_path, namespace=cfg.distributed.namespace)
        entries = wait_for(lambda: client.hgetall(keys.dlq), timeout=60, what="the poison attempt dead-lettered")
        (entry_id, raw) = next(iter(entries.items()))
        assert "delivered 2 times (max 1)" in json.loads(raw)["reason"]
        assert desk.session.engines[track_id].track.tickets[0].status == TicketStatus.RUNNING  # waits for you
        client.lpush(keys.dlq_actions, dlq_action_json("retry", entry_id.decode()))
        desk.session.engines[track_id].join(timeout=60)
        assert desk.session.engines[track_id].track.status == TrackStatus.DONE
        assert merges_per_ticket(repo, f"conductor/{track_id}") == {"T1": 1}
        assert client.hlen(keys.dlq) == 0
    finally:
        victim.stop()
        if rescuer is not None:
            rescuer.stop()


def test_cli_run_with_broker_and_remote(redis_server: RedisServer, tmp_path: Path) -> None:
    """`conductor run --broker URL --remote GIT_URL` end to end, as a person types it, with one worker."""
    import sys
    repo = make_repo(tmp_path)
    remote = tmp_path / "remote.git"
    sh_git(tmp_path, "init", "-q", "--bare", str(remote))
    ns = "cli" + tmp_path.name[-8:].replace("_", "")
    (tmp_path / "desk.toml").write_text(f'[distributed]\nnamespace = "{ns}"\nbeat_interval_s = 0.3\n'
                                        f'[git]\nworktrees_root = "{tmp_path / "wt"}"\n')
    desk = subprocess.Popen(
        [sys.executable, "-m", "conductor.cli", "--config", str(tmp_path / "desk.toml"), "--tracks-dir",
         str(tmp_path / "tracks"), "run", "--epic", "Add a greeting", "--workspace", str(repo), "--provider",
         "scripted", "--approve", "all", "--broker", redis_server.url, "--remote", str(remote)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    import redis
    client = redis.Redis.from_url(redis_server.url)
    wait_for(lambda: client.exists(Keys(ns).desktop), timeout=60, what="the desktop advertising its namespace")
    worker = WorkerProcess(redis_server.url, "w1", tmp_path, namespace=ns)
    try:
        out, _ = desk.communicate(timeout=120)
    finally:
        worker.stop()
    assert desk.returncode == 0, out[-3000:]
    assert "run finished: done" in out
    assert "running" in worker.output() and "Finished(hint=None" in worker.output()


def test_the_desktop_app_session_follows_the_distributed_config(redis_server: RedisServer, tmp_path: Path) -> None:
    """The GUI opens its sessions through open_session: a [distributed] broker there sends Tier 3 to the queue
    (and the session's shutdown closes the dispatcher); an unreachable one says so and runs Tier 3 locally."""
    from conductor.app.session_factory import open_session
    from conductor.distributed.dispatch import Dispatcher
    repo = make_repo(tmp_path)
    cfg = dist_config(tmp_path).updated({"distributed": {"broker_url": redis_server.url,
                                                         "remote": str(tmp_path / "remote.git")}})
    session, note = open_session(cfg, workspace=repo, tracks_dir=tmp_path / "tracks", provider_name="scripted")
    assert isinstance(session.remote, Dispatcher) and note == ""
    threads = session.remote._threads  # type: ignore[attr-defined]
    session.shutdown()
    assert not any(t.is_alive() for t in threads)
    cfg = cfg.updated({"distributed": {"broker_url": f"unix://{tmp_path}/nothing-here.sock"}})
    session, note = open_session(cfg, workspace=repo, tracks_dir=tmp_path / "tracks2", provider_name="scripted")
    try:
        assert session.remote is None and "Tier 3 runs locally: cannot reach the broker" in note
    finally:
        session.shutdown()
