"""The worker's message handling on Dramatiq's StubBroker (the queue in memory; claims, counters and the
dead-letter queue in a real redis-server): malformed and foreign messages are dead-lettered with their reason,
a duplicated request runs once, a poison attempt is dead-lettered after N deliveries, a stale dispatch is
dropped, and the actor is bound to the broker it was given — never Dramatiq's global one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
import redis
from dramatiq.brokers.stub import StubBroker

from conductor.config import Config
from conductor.distributed.bus import Bus
from conductor.distributed.schema import DeadLetter, DesktopInfo, Keys, request_id
from conductor.distributed.wire import AttemptMessage, config_text, decode
from conductor.distributed.worker import ACTOR, WorkerRuntime
from conductor.model import Ticket, Track
from conductor.providers.scripted import Reply, ScriptedProvider
from tests.dist_support import RedisServer, redis_server  # noqa: F401
from tests.git_support import make_repo, sh_git

NS = "stub"


@pytest.fixture
def stub(redis_server: RedisServer, tmp_path: Path) -> Iterator[tuple[WorkerRuntime, StubBroker, redis.Redis, Path]]:
    client = redis.Redis.from_url(redis_server.url)
    keys = Keys(NS)
    client.set(keys.desktop, DesktopInfo(namespace=NS, bus_id="bus-1", host="h", pid=1, started=0).model_dump_json())
    broker = StubBroker()  # passed explicitly: the global broker is never set or used
    broker.emit_after("process_boot")
    bus = Bus(redis_server.url, keys, client, broker)
    provider = ScriptedProvider({(3, "T1"): [Reply(text="Nothing to change; the ticket is done.")]})
    runtime = WorkerRuntime(bus, name="stub-worker", threads=2, workdir=tmp_path / "wd", provider=provider,
                            beat_interval_s=0.2)
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=2)
    worker.start()
    repo = make_repo(tmp_path)
    remote = tmp_path / "remote.git"
    sh_git(tmp_path, "init", "-q", "--bare", str(remote))
    sh_git(repo, "push", "-q", str(remote), "HEAD:refs/heads/conductor/trk")
    try:
        yield runtime, broker, client, remote
    finally:
        worker.stop()
        runtime.publisher.close()
        client.close()


def attempt(remote: Path, tip: str, *, dispatch: int = 1, bus_id: str = "bus-1", max_deliveries: int = 4) -> str:
    cfg = Config()
    cfg.distributed.max_deliveries = max_deliveries
    ticket = Ticket(id="T1", title="Do nothing")
    track = Track(id="trk", title="t", goal="g", tickets=[ticket])
    return AttemptMessage(namespace=NS, bus_id=bus_id, trace_id="trace-1", request_id=request_id("trk", "T1", 1),
                          dispatch=dispatch, track=track, ticket=ticket, model="gemini-2.5-flash",
                          config_toml=config_text(cfg), git_remote=str(remote), track_branch="conductor/trk",
                          track_tip=tip).model_dump_json()


def send(broker: StubBroker, *args: object) -> None:
    broker.enqueue(dramatiq.Message(queue_name="conductor-attempts", actor_name=ACTOR, args=args, kwargs={},
                                    options={}))
    broker.join("conductor-attempts", timeout=60_000)


def dead(client: redis.Redis) -> list[DeadLetter]:
    return sorted((DeadLetter.model_validate_json(v) for v in client.hvals(Keys(NS).dlq)), key=lambda d: d.time)


def results(client: redis.Redis) -> list[str]:
    out = []
    for _eid, fields in client.xrange(Keys(NS).events):
        ev = decode(fields[b"e"].decode())
        if type(ev.payload).__name__ == "Finished":
            out.append(f"{ev.request_id}#{ev.dispatch}")
    return out


def tip_of(remote: Path) -> str:
    return sh_git(remote, "rev-parse", "refs/heads/conductor/trk").strip()


def test_actor_is_bound_to_the_given_broker_not_the_global_one(stub) -> None:  # type: ignore[no-untyped-def]
    runtime, broker, _client, _remote = stub
    assert runtime.actor.broker is broker and ACTOR in broker.actors
    assert dramatiq.broker.global_broker is None  # never set, never created behind our back (get_broker would)


@pytest.mark.parametrize("args", [(42,), ("not json",), ('{"kind": "attempt", "request_id": "a/b/1"}',),
                                  ("{}", "extra")])
def test_malformed_messages_land_in_the_dead_letter_queue_with_a_reason(stub, args) -> None:  # type: ignore[no-untyped-def]
    _runtime, broker, client, _remote = stub
    send(broker, *args)
    (entry,) = dead(client)
    assert entry.reason.startswith("malformed message")
    assert entry.deliveries == 1 and entry.worker == "stub-worker"


def test_a_message_through_another_broker_is_dead_lettered(stub) -> None:  # type: ignore[no-untyped-def]
    _runtime, broker, client, remote = stub
    send(broker, attempt(remote, tip_of(remote), bus_id="someone-else"))
    (entry,) = dead(client)
    assert "another broker" in entry.reason and entry.request_id == "trk/T1/1"
    assert results(client) == []


def test_a_duplicated_request_runs_once(stub) -> None:  # type: ignore[no-untyped-def]
    _runtime, broker, client, remote = stub
    body = attempt(remote, tip_of(remote))
    send(broker, body)
    send(broker, body)
    assert results(client) == ["trk/T1/1#1"]
    assert dead(client) == []
    assert json.loads(client.get(Keys(NS).result("trk/T1/1", 1)))["worker"] == "stub-worker"


def test_a_poison_attempt_is_dead_lettered_after_n_deliveries(stub) -> None:  # type: ignore[no-untyped-def]
    """A SIGKILL redelivery is no Dramatiq retry: only our own counter stops an attempt that keeps losing its
    worker. Here each delivery's claim is dropped, as a killed worker would leave it unfinished."""
    _runtime, broker, client, remote = stub
    body = attempt(remote, tip_of(remote), max_deliveries=2)
    keys = Keys(NS)
    for _ in range(2):
        send(broker, body)
        client.delete(keys.claim("trk/T1/1", 1), keys.result("trk/T1/1", 1))
    send(broker, body)
    (entry,) = dead(client)
    assert "delivered 3 times (max 2)" in entry.reason and entry.deliveries == 3
    assert entry.payload == body


def test_a_reassigned_request_drops_its_stale_dispatch(stub) -> None:  # type: ignore[no-untyped-def]
    _runtime, broker, client, remote = stub
    client.set(Keys(NS).dispatch("trk/T1/1"), 2)
    send(broker, attempt(remote, tip_of(remote), dispatch=1))
    assert results(client) == []
    send(broker, attempt(remote, tip_of(remote), dispatch=2))
    assert results(client) == ["trk/T1/1#2"]
