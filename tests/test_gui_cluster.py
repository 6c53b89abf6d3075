"""The Workers tab driven through the real app against a real redis-server and the real desktop dispatcher: workers
(one offline), queue depth, an unreadable registry entry as its own row, a dead letter retried (it is back on the
queue) and one discarded after the person confirmed; a stale snapshot says so with the error; without a broker
the tab says Tier 3 runs locally."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gui_support import app_factory, assert_not_blank, display_ok, make_controller, make_session  # noqa: F401

from conductor.config import Config
from conductor.distributed.schema import ATTEMPTS_QUEUE, DeadLetter, Keys, WorkerInfo
from conductor.gui import tags
from tests.dist_support import RedisServer, redis_server  # noqa: F401

redis = pytest.importorskip("redis")
pytestmark = [pytest.mark.gui]

T = tags.CLUSTER_WORKERS_TABLE
D = tags.CLUSTER_DLQ_TABLE
Q = tags.CLUSTER_QUEUES_TABLE


def cfg_for(url: str, ns: str) -> Config:
    # the dispatcher applies dead-letter actions every half beat
    return Config().updated({"distributed": {"broker_url": url, "namespace": ns, "beat_interval_s": 0.2}})


def seed(r: Any, k: Keys) -> None:
    now = time.time()
    for name, age, current in (("alpha", 0.5, ["tr/T1/1", "tr/T4/2"]), ("beta", 45.0, ["tr/T2/1"])):
        info = WorkerInfo(name=name, host=f"{name}.lan", pid=7, threads=4, started=now - 600, last_beat=now - age,
                          current=current, done=3)
        r.zadd(k.workers, {name: info.last_beat})
        r.set(k.worker(name), info.model_dump_json())
    r.zadd(k.workers, {"mangled": now})
    r.set(k.worker("mangled"), "{not json")
    for entry, reason, t in (("e-retry", "delivered 5 times (max 4): poison attempt", now - 30),
                             ("e-discard", "malformed message: no request id", now - 10)):
        r.hset(k.dlq, entry, DeadLetter(entry_id=entry, queue=ATTEMPTS_QUEUE, reason=reason, payload="{}",
                                        deliveries=5, time=t, request_id="" if entry == "e-discard" else "tr/T9/1")
               .model_dump_json())
    r.hset(k.dlq, "e-junk", "\x00garbage")


def cells(p: Any, table: str, col: int) -> list[str]:
    out, r = [], 0
    while _exists(tags.cluster_cell(table, r, col)):
        out.append(p.value(tags.cluster_cell(table, r, col)))
        r += 1
    return out


def _exists(tag: str) -> bool:
    import dearpygui.dearpygui as dpg
    return bool(dpg.does_item_exist(tag))


def dlq_row(p: Any, request_or_reason: str) -> int:
    for r, reason in enumerate(cells(p, D, 3)):
        if request_or_reason in reason or request_or_reason == p.value(tags.cluster_cell(D, r, 2)):
            return r
    raise AssertionError(f"no dead letter {request_or_reason!r} in {cells(p, D, 3)}")


@pytest.fixture
def dispatcher(redis_server: RedisServer, tmp_path: Path) -> Iterator[Any]:  # noqa: F811
    """The real desktop dispatcher on the test's namespace (it applies the monitor's dead-letter actions)."""
    from conductor.approvals import ApprovalBroker
    from conductor.distributed.bus import open_bus
    from conductor.distributed.dispatch import Dispatcher
    from conductor.events import EventQueue
    from conductor.usage import PriceTable, UsageLedger

    made: list[Any] = []

    def make(cfg: Config) -> Any:
        bus = open_bus(redis_server.url, cfg.distributed)
        events = EventQueue()
        d = Dispatcher(bus, cfg, git_remote=str(tmp_path / "remote.git"), events=events,
                       broker=ApprovalBroker(events), ledger=UsageLedger(PriceTable(cfg.prices)), workspace=tmp_path)
        made.append((d, bus))
        return d

    yield make
    for d, bus in made:
        d.close()
        bus.close()


def test_workers_tab_shows_the_cluster_and_retries_and_discards_dead_letters(
        tmp_path: Path, app_factory, redis_server: RedisServer, dispatcher: Any) -> None:  # noqa: F811
    ns = f"g{time.time_ns() % 10**9}"
    cfg = cfg_for(redis_server.url, ns)
    r = redis.Redis(unix_socket_path=str(redis_server.sock))
    k = Keys(ns)
    seed(r, k)
    dispatcher(cfg)
    c = make_controller(make_session(tmp_path, cfg=cfg))
    c.cluster.start(c.events.post, interval_s=0.2)
    p = app_factory(c, render=display_ok()).pilot

    assert p.press("Ctrl+5") == "tab_workers"
    assert not p.shown(tags.CLUSTER_LOCAL) and p.shown(tags.CLUSTER_BODY)
    p.wait_until(lambda: len(cells(p, T, 0)) == 3 and len(cells(p, D, 0)) == 3, what="the first snapshot")
    assert cells(p, T, 0) == ["alpha", "beta", "mangled"]
    assert cells(p, T, 1)[:2] == ["alpha.lan", "beta.lan"] and cells(p, T, 2)[:2] == ["4", "4"]
    assert cells(p, T, 4)[:2] == ["tr/T1/1, tr/T4/2", "tr/T2/1"]
    states = cells(p, T, 5)
    assert states[0] == "online" and re.fullmatch(r"OFFLINE \([45] beats missed\)", states[1])
    assert states[2] == f"UNREADABLE ({k.worker('mangled')})" and cells(p, T, 4)[2].startswith("not JSON")
    assert "s ago" in cells(p, T, 3)[0] and 45 <= int(cells(p, T, 3)[1].split()[0]) < 60
    header = p.value(tags.CLUSTER_HEADER)
    assert f"namespace {ns}" in header and "polled" in header and "STALE" not in header
    summary = p.value(tags.CLUSTER_SUMMARY)
    assert "Workers: 1 online, 1 offline" in summary and "dead letters: 3" in summary
    assert cells(p, Q, 0) == [ATTEMPTS_QUEUE] and cells(p, Q, 1) == ["0"]
    if p.app.render:
        assert_not_blank(p.screenshot(tmp_path / "artifacts" / "workers.png"))

    # Retry: the dispatcher re-enqueues the message; the entry leaves the table, the queue has it.
    row = dlq_row(p, "tr/T9/1")
    p.click(tags.dlq_retry(row))
    p.wait_until(lambda: "tr/T9/1" not in cells(p, D, 2) and cells(p, Q, 1) == ["1"], what="the retry applied")
    assert r.llen(k.queue(ATTEMPTS_QUEUE)) == 1 and not r.hexists(k.dlq, "e-retry")

    # Discard asks first; "Keep it" keeps it.
    row = dlq_row(p, "malformed message")
    p.click(tags.dlq_discard(row))
    assert p.shown(tags.DISCARD_CONFIRM) and "e-discard" in p.value(tags.DISCARD_CONFIRM_TEXT)
    p.click(tags.DISCARD_CONFIRM_NO)
    assert not p.shown(tags.DISCARD_CONFIRM)
    p.frame(10)
    assert r.hexists(k.dlq, "e-discard") and any("malformed message" in x for x in cells(p, D, 3))
    p.click(tags.dlq_discard(dlq_row(p, "malformed message")))
    p.click(tags.DISCARD_CONFIRM_YES)
    p.wait_until(lambda: not any("malformed message" in x for x in cells(p, D, 3)), what="the discard applied")
    assert not r.hexists(k.dlq, "e-discard")

    # An unreadable entry: Retry is off, Discard (confirmed) removes it.
    row = dlq_row(p, "UNREADABLE")
    assert not _exists(tags.dlq_retry(row)) and _exists(tags.dlq_discard(row))
    p.click(tags.dlq_discard(row))
    p.click(tags.DISCARD_CONFIRM_YES)
    p.wait_until(lambda: cells(p, D, 0) == [], what="the unreadable entry removed")
    assert r.hlen(k.dlq) == 0
    r.close()


def test_a_failing_poll_marks_the_snapshot_stale_with_the_error(tmp_path: Path, app_factory) -> None:  # noqa: F811
    folder = Path(tempfile.mkdtemp(prefix="cs-", dir="/tmp"))
    server = RedisServer(folder)
    server.start()
    try:
        ns = "stale"
        r = redis.Redis(unix_socket_path=str(server.sock))
        seed(r, Keys(ns))
        r.close()
        c = make_controller(make_session(tmp_path, cfg=cfg_for(server.url, ns)))
        c.cluster.start(c.events.post, interval_s=0.2)
        p = app_factory(c, render=False).pilot
        p.wait_until(lambda: len(cells(p, T, 0)) == 3, what="the first snapshot")
        server.kill()  # the broker dies mid-run
        p.wait_until(lambda: "STALE" in p.value(tags.CLUSTER_HEADER), what="the stale header")
        header = p.value(tags.CLUSTER_HEADER)
        assert "the last poll failed" in header and "ConnectionError" in header and "Showing the snapshot of" in header
        assert cells(p, T, 0) == ["alpha", "beta", "mangled"]  # the last snapshot stays, labelled stale
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_without_a_broker_the_tab_says_tier3_runs_locally(tmp_path: Path, app_factory) -> None:  # noqa: F811
    c = make_controller(make_session(tmp_path))
    p = app_factory(c, render=False).pilot
    assert p.press("Ctrl+5") == "tab_workers"
    assert p.shown(tags.CLUSTER_LOCAL) and not p.shown(tags.CLUSTER_BODY)
    assert "Tier 3 runs locally" in p.value(tags.CLUSTER_LOCAL)
    assert c.cluster.poller is None  # nothing polls, nothing is imported


def test_a_broker_password_from_the_environment_never_shows(tmp_path: Path, app_factory,  # noqa: F811
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUCTOR_BROKER_URL", "redis://:s3cretpass@127.0.0.1:1/0")
    c = make_controller(make_session(tmp_path))
    c.cluster.start(c.events.post, interval_s=0.2)
    p = app_factory(c, render=False).pilot
    p.wait_until(lambda: "STALE" in p.value(tags.CLUSTER_HEADER), what="the connection error")
    assert "s3cretpass" not in p.value(tags.CLUSTER_HEADER)
