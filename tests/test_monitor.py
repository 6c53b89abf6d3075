"""The cluster monitor against a real redis-server: what it reads (workers, offline by three missed beats, queue
depth, throughput, dead letters), what it does with a hostile registry (a clear row per damaged entry, never a
crash), the dead-letter commands it sends, and the poller that posts snapshots to the one event queue."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from conductor.distributed.monitor import (
    MAX_WORKERS,
    ClusterReader,
    DiscardDeadLetter,
    MonitorError,
    RetryDeadLetter,
    ThroughputMeter,
    WorkerStatus,
    send_dlq_command,
)
from conductor.distributed.monitor_poller import ClusterPoller
from conductor.distributed.schema import ATTEMPTS_QUEUE, DeadLetter, DesktopInfo, DlqAction, Keys, WorkerInfo
from conductor.events import ClusterPolled, EventQueue, Notice
from tests.dist_support import RedisServer, redis_server  # noqa: F401

redis = pytest.importorskip("redis")

NOW = 1_800_000_000.0


@pytest.fixture
def r(redis_server: RedisServer) -> Iterator[Any]:  # noqa: F811
    client = redis.Redis(unix_socket_path=str(redis_server.sock), socket_timeout=5)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def ns() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def put_worker(r: Any, keys: Keys, name: str, *, age: float = 1.0, now: float = NOW, **kw: Any) -> WorkerInfo:
    info = WorkerInfo(**{"name": name, "host": f"{name}.lan", "pid": 100, "threads": 4, "started": now - 600,
                         "last_beat": now - age, "beat_interval_s": 10.0, **kw})
    r.zadd(keys.workers, {name: info.last_beat})
    r.set(keys.worker(name), info.model_dump_json())
    return info


def put_dead(r: Any, keys: Keys, entry_id: str, *, t: float = NOW - 5,
             reason: str = "malformed message: no id") -> None:
    dl = DeadLetter(entry_id=entry_id, queue=ATTEMPTS_QUEUE, reason=reason, payload='{"x":1}', deliveries=5, time=t,
                    request_id="tr/T1/1", worker="w1")
    r.hset(keys.dlq, entry_id, dl.model_dump_json())


def test_a_snapshot_reads_workers_queues_leases_and_dead_letters(r: Any, ns: str) -> None:
    k = Keys(ns)
    put_worker(r, k, "alpha", age=2.0, current=["tr/T1/1", "tr/T2/1"], done=7)
    put_worker(r, k, "beta", age=31.0, threads=2)                     # three beats (3 x 10 s) missed: offline
    r.zadd(k.workers, {"gamma": NOW - 400})                           # its entry expired long ago
    r.set(k.desktop, DesktopInfo(namespace=ns, bus_id="b1", host="desk", pid=1, started=NOW - 900).model_dump_json())
    q = ATTEMPTS_QUEUE
    r.rpush(k.queue(q), "m1", "m2", "m3")
    r.hset(k.queue_bodies(q), mapping={f"m{i}": "{}" for i in range(1, 6)})  # 5 kept, 3 ready: 2 taken
    r.rpush(k.queue(f"{q}.DQ"), "d1")
    r.zadd(k.queue(f"{q}.XQ"), {"x1": NOW, "x2": NOW})
    r.zadd(k.leases, {"tr/T1/1": NOW + 20, "tr/T9/1": NOW - 1})
    put_dead(r, k, "dl-old", t=NOW - 50)
    put_dead(r, k, "dl-new", t=NOW - 5, reason="delivered 5 times (max 4): poison attempt")

    s = ClusterReader(r, ns).read(now=NOW)

    assert [w.name for w in s.workers] == ["alpha", "beta", "gamma"]
    alpha, beta, gamma = s.workers
    assert alpha.online and alpha.host == "alpha.lan" and alpha.threads == 4
    assert alpha.current == ("tr/T1/1", "tr/T2/1") and alpha.heartbeat_age_s == pytest.approx(2.0)
    assert not beta.online and beta.heartbeat_age_s == pytest.approx(31.0)
    assert not gamma.online and gamma.info is None and gamma.host is None and gamma.heartbeat_age_s == 400
    assert s.queues[0].name == q
    assert (s.queues[0].ready, s.queues[0].in_flight, s.queues[0].delayed, s.queues[0].dramatiq_dead) == (3, 2, 1, 2)
    assert [d.entry_id for d in s.dead_letters] == ["dl-new", "dl-old"]  # newest first
    assert s.dead_letters[0].reason.startswith("delivered 5 times")
    assert {(le.request_id, le.expired) for le in s.leases} == {("tr/T1/1", False), ("tr/T9/1", True)}
    assert s.desktop is not None and s.desktop.host == "desk"
    assert s.damaged == ()
    assert s.throughput.per_minute is None and s.throughput.finished == 7  # one snapshot: no rate yet


@pytest.mark.parametrize(("age", "online"), [(0.0, True), (29.9, True), (30.1, False), (3600.0, False)])
def test_offline_after_three_missed_beats(r: Any, ns: str, age: float, online: bool) -> None:
    put_worker(r, Keys(ns), "w", age=age)
    (w,) = ClusterReader(r, ns).read(now=NOW).workers
    assert w.online is online


def test_an_empty_namespace_is_an_empty_snapshot_not_an_error(r: Any, ns: str) -> None:
    s = ClusterReader(r, ns).read(now=NOW)
    assert s.workers == () and s.dead_letters == () and s.damaged == () and s.desktop is None
    assert s.queues[0].ready == 0


HOSTILE_WORKERS: dict[str, Any] = {
    "notjson": b"\xff\xfe{{{not json",
    "array": "[1, 2, 3]",
    "missing": json.dumps({"name": "missing", "host": "h"}),
    "wrongtype": json.dumps({"name": "wrongtype", "host": "h", "pid": "x", "threads": "many", "started": 1,
                             "last_beat": NOW}),
    "impostor": json.dumps({"name": "someone-else", "host": "h", "pid": 1, "threads": 1, "started": 1,
                            "last_beat": NOW}),
    "future": json.dumps({"name": "future", "host": "h", "pid": 1, "threads": 1, "started": 1,
                          "last_beat": NOW + 86400}),
    "nan": '{"name": "nan", "host": "h", "pid": 1, "threads": 1, "started": 1, "last_beat": NaN}',
    "zero-threads": json.dumps({"name": "zero-threads", "host": "h", "pid": 1, "threads": 0, "started": 1,
                                "last_beat": NOW}),
    "zero-interval": json.dumps({"name": "zero-interval", "host": "h", "pid": 1, "threads": 1, "started": 1,
                                 "last_beat": NOW, "beat_interval_s": 0}),
    "deep": "[" * 100_000 + "]" * 100_000,
}


def test_hostile_registry_entries_are_rows_naming_the_key_and_the_problem(r: Any, ns: str) -> None:
    k = Keys(ns)
    put_worker(r, k, "good", age=1.0)
    for name, raw in HOSTILE_WORKERS.items():
        r.zadd(k.workers, {name: NOW})
        r.set(k.worker(name), raw)
    r.zadd(k.workers, {"a-list": NOW})
    r.rpush(k.worker("a-list"), "x")                                   # wrong Redis type: WRONGTYPE
    evil = "evil\x1b[31m\r\n\u202e" + "x" * 10_000                       # escapes, bidi override, 10 KB
    put_worker(r, k, evil, age=1.0, host="h\x00st\x07", current=["tr/T1/1\x1b[2J"] * 500)

    s = ClusterReader(r, ns).read(now=NOW)

    by_entry = {d.entry: d for d in s.damaged_in("workers")}
    assert set(by_entry) == {*HOSTILE_WORKERS, "a-list"}, by_entry
    assert by_entry["notjson"].problem.startswith("not JSON")
    assert by_entry["missing"].problem.startswith("field ") and "more" in by_entry["missing"].problem
    assert "field pid" in by_entry["wrongtype"].problem
    assert "names another worker" in by_entry["impostor"].problem
    assert "last_beat" in by_entry["future"].problem and "last_beat" in by_entry["nan"].problem
    assert "threads 0" in by_entry["zero-threads"].problem
    assert "beat_interval_s" in by_entry["zero-interval"].problem
    assert by_entry["deep"].problem.startswith("not JSON")
    assert "WRONGTYPE" in by_entry["a-list"].problem
    assert all(d.key == k.worker(d.entry) for d in s.damaged_in("workers"))
    # The readable ones are still there, made safe to show.
    assert len(s.workers) == 2 and "good" in [w.name for w in s.workers]
    shown = next(w for w in s.workers if w.name != "good")
    assert len(shown.name) <= 200 and "\x1b" not in shown.name and "\n" not in shown.name
    assert shown.host is not None and "\x00" not in shown.host and "\x07" not in shown.host
    assert len(shown.current) == 50 and all("\x1b" not in c for c in shown.current)


def test_a_registry_key_of_the_wrong_type_is_one_row_and_the_rest_is_read(r: Any, ns: str) -> None:
    k = Keys(ns)
    r.set(k.workers, "not a zset")
    r.set(k.dlq, "not a hash")
    r.set(k.queue(ATTEMPTS_QUEUE), "not a list")
    r.set(k.desktop, "{]")
    r.zadd(k.leases, {"tr/T1/1": NOW + 5})
    s = ClusterReader(r, ns).read(now=NOW)
    sections = sorted(d.section for d in s.damaged)
    assert sections == ["dead_letters", "desktop", "queues", "workers"], s.damaged
    assert all(("WRONGTYPE" in d.problem) or d.section == "desktop" for d in s.damaged)
    assert s.workers == () and s.queues == () and len(s.leases) == 1


def test_damaged_dead_letters_are_rows_that_can_still_be_discarded(r: Any, ns: str) -> None:
    k = Keys(ns)
    put_dead(r, k, "ok")
    r.hset(k.dlq, "garbage", "\x00\x01 not json")
    r.hset(k.dlq, "liar", DeadLetter(entry_id="other", queue="q", reason="r", payload="", deliveries=1,
                                     time=NOW).model_dump_json())
    r.hset(k.dlq, "partial", json.dumps({"entry_id": "partial"}))
    s = ClusterReader(r, ns).read(now=NOW)
    assert [d.entry_id for d in s.dead_letters] == ["ok"]
    problems = {d.entry: d.problem for d in s.damaged_in("dead_letters")}
    assert set(problems) == {"garbage", "liar", "partial"}
    assert "names another id" in problems["liar"] and problems["garbage"].startswith("not JSON")
    with pytest.raises(MonitorError, match="cannot be retried: it is unreadable"):
        send_dlq_command(r, ns, RetryDeadLetter("garbage"))
    # Nothing a dispatcher could parse: the monitor removes it itself, and hands it nothing.
    assert "removed" in send_dlq_command(r, ns, DiscardDeadLetter("garbage"))
    assert not r.hexists(k.dlq, "garbage") and r.llen(k.dlq_actions) == 0
    send_dlq_command(r, ns, DiscardDeadLetter("ok"))
    assert DlqAction.model_validate_json(r.lindex(k.dlq_actions, 0)) == DlqAction(action="discard", entry_id="ok")


def test_retry_and_discard_are_sent_to_the_desktops_dispatcher(r: Any, ns: str) -> None:
    k = Keys(ns)
    put_dead(r, k, "e1")
    put_dead(r, k, "e2")
    assert "retry" in send_dlq_command(r, ns, RetryDeadLetter("e1"))
    assert "discard" in send_dlq_command(r, ns, DiscardDeadLetter("e2"))
    sent = [DlqAction.model_validate_json(x) for x in r.lrange(k.dlq_actions, 0, -1)]
    assert sorted((a.action, a.entry_id) for a in sent) == [("discard", "e2"), ("retry", "e1")]
    with pytest.raises(MonitorError, match="no longer in"):
        send_dlq_command(r, ns, RetryDeadLetter("gone"))


def test_lists_are_capped_and_what_was_left_out_is_counted(r: Any, ns: str) -> None:
    k = Keys(ns)
    pipe = r.pipeline(transaction=False)
    for i in range(MAX_WORKERS + 37):
        name = f"w{i:04d}"
        pipe.zadd(k.workers, {name: NOW - 1})
        pipe.set(k.worker(name), WorkerInfo(name=name, host="h", pid=i, threads=1, started=NOW - 10,
                                            last_beat=NOW - 1).model_dump_json())
    pipe.execute()
    s = ClusterReader(r, ns).read(now=NOW)
    assert len(s.workers) == MAX_WORKERS and s.workers_left_out == 37


def _ws(name: str, started: float, done: int) -> WorkerStatus:
    info = WorkerInfo(name=name, host="h", pid=1, threads=1, started=started, last_beat=NOW, done=done)
    return WorkerStatus(name, NOW, 0.0, True, info)


def test_throughput_counts_finished_attempts_per_minute_across_restarts() -> None:
    m = ThroughputMeter(window_s=300)
    assert m.add(0.0, [_ws("a", -100, 10), _ws("b", -100, 0)]).per_minute is None  # one sample: unknown, not 0
    assert m.add(1.0, [_ws("a", -100, 11)]).per_minute is None                   # too short a span
    t = m.add(30.0, [_ws("a", -100, 16), _ws("b", -100, 4)])
    assert t.per_minute == pytest.approx((6 + 4) * 2.0)                      # 10 in 30 s
    t = m.add(60.0, [_ws("a", 50, 2), _ws("b", -100, 4)])  # a restarted at 50: its counter began again
    assert t.per_minute == pytest.approx((6 + 2 + 4) * 1.0)  # its 2 count, and never a negative step
    m2 = ThroughputMeter(window_s=300)
    m2.add(0.0, [])
    assert m2.add(10.0, [_ws("new", 5, 3)]).per_minute == pytest.approx(18.0)  # started inside: all 3 count
    t = m.add(400.0, [_ws("a", 50, 2), _ws("b", -100, 4)])
    assert t.per_minute == pytest.approx(0.0) and t.window_s <= 340          # old samples leave the window


def test_redis_down_raises_to_the_caller(tmp_path: Any) -> None:
    dead = redis.Redis(unix_socket_path=str(tmp_path / "nothing.sock"), socket_timeout=1)
    with pytest.raises(redis.ConnectionError):
        ClusterReader(dead, "conductor").read()


def test_poller_posts_snapshots_and_command_outcomes_to_the_event_queue(r: Any, ns: str,
                                                                       redis_server: RedisServer) -> None:  # noqa: F811
    k = Keys(ns)
    put_worker(r, k, "w1", age=0.0, now=time.time())
    put_dead(r, k, "e1")
    events = EventQueue()
    poller = ClusterPoller(lambda: redis.Redis(unix_socket_path=str(redis_server.sock), socket_timeout=2), ns,
                           events.post, interval_s=60).start()
    try:
        first = events.get(timeout=10)
        assert isinstance(first, ClusterPolled) and first.status is not None and first.error is None
        assert [w.name for w in first.status.workers] == ["w1"] and first.status.dead_letters[0].entry_id == "e1"
        poller.submit(RetryDeadLetter("e1"))
        notice = events.get(timeout=10)
        assert isinstance(notice, Notice) and "retry of dead letter e1" in notice.message
        assert isinstance(events.get(timeout=10), ClusterPolled)        # re-polled at once after a command
        poller.submit(DiscardDeadLetter("nope"))
        notice = events.get(timeout=10)
        assert isinstance(notice, Notice) and notice.level == "warning" and "no longer in" in notice.message
    finally:
        assert poller.stop()


def test_a_failing_poll_posts_the_error_with_credentials_redacted(tmp_path: Any) -> None:
    events = EventQueue()

    def connect() -> Any:
        return redis.Redis.from_url(f"unix://:hunter2secret@{tmp_path}/none.sock", socket_timeout=1)

    poller = ClusterPoller(connect, "conductor", events.post, interval_s=60).start()
    try:
        ev = events.get(timeout=10)
        assert isinstance(ev, ClusterPolled) and ev.status is None and ev.error
        assert "ConnectionError" in ev.error and "hunter2secret" not in ev.error
    finally:
        assert poller.stop()
