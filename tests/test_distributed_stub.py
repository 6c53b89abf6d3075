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
    cfg = Config().updated({"distributed": {"max_deliveries": max_deliveries}})
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


def test_events_round_trip_and_hostile_events_are_refused() -> None:
    from conductor.approval_payloads import ToolPayload
    from conductor.approval_types import ApprovalRequest
    from conductor.distributed.wire import (
        AskApproval,
        BusEvent,
        DeadLettered,
        Finished,
        Forwarded,
        Journalled,
        Parked,
        Reviewing,
        Started,
        WireError,
        encode,
        error_from_wire,
    )
    from conductor.errors import ProviderUnavailable, SafetyBlocked
    from conductor.events import Provenance, StreamDelta, UsageRecorded
    from conductor.model import Usage
    from conductor.records import UsageLogged
    from conductor.usage import UsageRecord
    prov = Provenance(trace_id="tr", track_id="trk", ticket_id="T1", tier=3, attempt=1)
    usage = Usage(model="m", prompt_tokens=3, output_tokens=4)
    payloads = [Started("w"), Forwarded(StreamDelta(prov=prov, stream_id="s", text="hi")),
                Forwarded(UsageRecorded(prov=prov, record_id="r1", usage=usage)),
                Journalled(UsageLogged(key="r1", record=UsageRecord(record_id="r1", tier=3, model="m", usage=usage,
                                                                    track_id="trk", ticket_id="T1", attempt=1,
                                                                    ts=1.0))),
                AskApproval(ApprovalRequest(id="tool-1", prov=prov, title="write", payload=ToolPayload(
                    tool="write_file", call_id="c1", args={"path": "a"}, provenance=prov))),
                Reviewing(), Finished(None, "abc", "b"), Finished("hint", None, None, "SafetyBlocked", "no"),
                Parked("tool-1"), DeadLettered("why")]
    for i, p in enumerate(payloads, 1):
        ev = BusEvent("trk/T1/1", "tr", 2, i, "w", p)
        back = decode(encode(ev))
        assert (back.request_id, back.trace_id, back.dispatch, back.seq, back.worker) == ("trk/T1/1", "tr", 2, i, "w")
        assert type(back.payload) is type(p)
    for bad in ["", "[]", '{"rid": 1}', '{"rid":"a","trace":"t","dispatch":1,"seq":1,"worker":"w","kind":"event",'
                '"body":{"type":"track_loaded","event":{}}}',
                '{"rid":"a","trace":"t","dispatch":"x","seq":1,"worker":"w","kind":"review","body":{}}',
                '{"rid":"a","trace":"t","dispatch":1,"seq":1,"worker":"w","kind":"rm -rf","body":{}}']:
        with pytest.raises(WireError):
            decode(bad)
    assert isinstance(error_from_wire("SafetyBlocked", "x"), SafetyBlocked)
    assert isinstance(error_from_wire("ProviderUnavailable", "x"), ProviderUnavailable)
    assert type(error_from_wire("KeyError", "x")).__name__ == "RemoteError"
    assert type(error_from_wire("__class__", "x")).__name__ == "RemoteError"


def test_an_edit_made_on_the_desktop_is_validated_by_the_worker_before_the_tool_runs(
        redis_server: RedisServer, tmp_path: Path) -> None:  # noqa: F811
    """The desktop cannot validate an edit (it has no tool); the worker does, with the tool's own validator: an
    answer edited beyond the call's args is refused there and nothing runs."""
    import threading

    from conductor.distributed.wire import AskApproval
    from conductor.messages import ToolCall
    from tests.helpers import wait_for
    client = redis.Redis.from_url(redis_server.url)
    keys = Keys(NS)
    client.set(keys.desktop, DesktopInfo(namespace=NS, bus_id="bus-1", host="h", pid=1, started=0).model_dump_json())
    broker = StubBroker()
    broker.emit_after("process_boot")

    def t3(req, n):  # type: ignore[no-untyped-def]
        if not any(m.role == "model" for m in req.messages):
            return Reply(text="writing", tool_calls=(ToolCall("c1", "write_file", {"path": "x.txt", "content": "x"}),))
        return Reply(text="done")
    runtime = WorkerRuntime(Bus(redis_server.url, keys, client, broker), name="w", threads=1, workdir=tmp_path / "wd",
                            provider=ScriptedProvider({(3, "T1"): t3}), beat_interval_s=0.2)
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()
    repo = make_repo(tmp_path)
    remote = tmp_path / "remote.git"
    sh_git(tmp_path, "init", "-q", "--bare", str(remote))
    sh_git(repo, "push", "-q", str(remote), "HEAD:refs/heads/conductor/trk")
    try:
        broker.enqueue(dramatiq.Message(queue_name="conductor-attempts", actor_name=ACTOR,
                                        args=(attempt(remote, tip_of(remote)),), kwargs={}, options={}))

        def asked() -> list[object]:
            evs = [decode(f[b"e"].decode()).payload for _i, f in client.xrange(keys.events)]
            return [p for p in evs if isinstance(p, AskApproval)]
        (ask,) = wait_for(asked, timeout=60, what="the approval request")
        req = ask.request  # type: ignore[attr-defined]
        # args that fit the tool, but a field the gate does not look at is changed too: only the tool's validator,
        # which runs on the worker, refuses it (an edit may change args and nothing else)
        asked = req.payload.model_dump(mode="json")
        edited = {**asked, "can_remember": not asked.get("can_remember"), "args": {"path": "pwned.txt", "content": "x"}}
        client.lpush(keys.approval(req.id), json.dumps({"request_id": req.id, "approved": True, "payload": edited,
                                                        "by": "person"}))
        threading.Thread(target=broker.join, args=("conductor-attempts",), kwargs={"timeout": 60_000}).run()
        assert results(client) == ["trk/T1/1#1"]
        finished = [decode(f[b"e"].decode()).payload for _i, f in client.xrange(keys.events)][-1]
        assert finished.commit is None  # type: ignore[attr-defined]  # nothing was written, nothing ran
        assert not list((tmp_path / "wd").rglob("pwned.txt")) and not list((tmp_path / "wd").rglob("x.txt"))
        from conductor.distributed.wire import Forwarded
        from conductor.events import ToolResulted
        summaries = [p.event.summary for _i, f in client.xrange(keys.events)
                     if isinstance(p := decode(f[b"e"].decode()).payload, Forwarded)
                     and isinstance(p.event, ToolResulted)]
        assert any("refused here: only 'args' can be edited" in x for x in summaries), summaries
    finally:
        worker.stop()
        runtime.publisher.close()
        client.close()
