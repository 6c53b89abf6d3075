"""The monitoring view's model (no GUI, no Redis): labels derived from snapshots, stale snapshots said as such,
sent dead-letter commands tracked until applied, and the broker setting read from config or environment."""

from __future__ import annotations

from typing import ClassVar

import pytest

from conductor.app.cluster import ClusterModel, fmt_age
from conductor.config import DistributedConfig
from conductor.distributed.monitor import (
    ClusterStatus,
    DamagedEntry,
    QueueStatus,
    RetryDeadLetter,
    Throughput,
    WorkerStatus,
)
from conductor.distributed.schema import DeadLetter, WorkerInfo
from conductor.events import ClusterPolled

NOW = 1_800_000_000.0


def worker(name: str, age: float, **kw: object) -> WorkerStatus:
    info = WorkerInfo(name=name, host="h", pid=1, threads=2, started=NOW - 100, last_beat=NOW - age, **kw)
    return WorkerStatus(name, info.last_beat, age, not info.offline(NOW), info)


def status(*, workers: tuple[WorkerStatus, ...] = (), dead: tuple[DeadLetter, ...] = (),
           damaged: tuple[DamagedEntry, ...] = (), t: float = NOW) -> ClusterStatus:
    return ClusterStatus(namespace="ns", taken_at=t, poll_ms=1.0, desktop=None, workers=workers,
                         queues=(QueueStatus("q", 3, 1, 0, 0),), throughput=Throughput(None, 0.0, 0),
                         dead_letters=dead, damaged=damaged)


def model() -> ClusterModel:
    return ClusterModel("unix:///tmp/r.sock", "unix:///tmp/r.sock", DistributedConfig())


def dl(entry: str) -> DeadLetter:
    return DeadLetter(entry_id=entry, queue="q", reason="poison", payload="{}", deliveries=5, time=NOW - 1,
                      request_id="tr/T1/1")


def test_the_header_says_how_fresh_the_snapshot_is_and_stale_with_the_error() -> None:
    m = model()
    assert "waiting for the first poll" in m.header(NOW)[0]
    m.apply(ClusterPolled(status=None, error="ConnectionError: refused.", ts=NOW))
    text, level = m.header(NOW + 1)
    assert level == "error" and text.startswith("STALE") and "refused." in text and "Nothing has been read" in text
    m.apply(ClusterPolled(status=status(workers=(worker("a", 1),)), ts=NOW))
    text, level = m.header(NOW + 2.5)
    assert level == "ok" and "polled 2.5 s ago" in text and "STALE" not in text
    m.apply(ClusterPolled(status=None, error="TimeoutError: slow", ts=NOW + 10))
    text, level = m.header(NOW + 12)
    assert level == "error" and "failed 2.0 s ago: TimeoutError: slow" in text and "Showing the snapshot of" in text
    assert [r.name for r in m.worker_rows()] == ["a"]  # the last snapshot stays, never an empty table


def test_worker_rows_say_offline_expired_stopping_and_unreadable() -> None:
    m = model()
    gone = WorkerStatus("gone", NOW - 500, 500, False, None)
    bad = DamagedEntry("ns:worker:x", "x", "not JSON (…)", "workers")
    m.apply(ClusterPolled(status=status(workers=(worker("on", 1, current=["tr/T1/1"]), worker("off", 35),
                                                 worker("stop", 1, stopping=True), gone), damaged=(bad,))))
    rows = {r.name: r for r in m.worker_rows()}
    assert (rows["on"].state, rows["on"].current, rows["on"].level) == ("online", "tr/T1/1", "ok")
    assert rows["off"].state == "OFFLINE (3 beats missed)" and rows["off"].level == "error"
    assert rows["stop"].state == "stopping"
    assert rows["gone"].state.startswith("OFFLINE (its registry entry expired)") and rows["gone"].host == "—"
    assert rows["x"].state == "UNREADABLE (ns:worker:x)" and rows["x"].current == "not JSON (…)"
    assert "Workers: 2 online, 2 offline" in m.summary()


def test_a_sent_command_shows_until_its_entry_leaves_and_says_when_it_was_not_applied() -> None:
    m = model()
    m.apply(ClusterPolled(status=status(dead=(dl("e1"), dl("e2")))))

    class FakePoller:
        sent: ClassVar[list[object]] = []

        def submit(self, cmd: object) -> None:
            self.sent.append(cmd)
    m.poller = FakePoller()  # type: ignore[assignment]
    assert m.submit(RetryDeadLetter("e1")) is None and len(FakePoller.sent) == 1
    sent_at = m.sent["e1"][1]
    rows = {r.entry_id: r for r in m.dead_letter_rows(sent_at + 1)}
    assert rows["e1"].sent == "retry sent…" and rows["e2"].sent == ""
    m.apply(ClusterPolled(status=status(dead=(dl("e1"), dl("e2")))))  # still listed: still marked
    late = {r.entry_id: r for r in m.dead_letter_rows(sent_at + 90)}["e1"].sent
    assert "not applied yet: is the desktop's dispatcher running?" in late
    m.apply(ClusterPolled(status=status(dead=(dl("e2"),))))
    assert [r.entry_id for r in m.dead_letter_rows(sent_at)] == ["e2"] and m.sent == {}


def test_no_broker_means_local_and_an_env_password_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONDUCTOR_BROKER_URL", raising=False)
    assert not ClusterModel.from_config(DistributedConfig()).configured
    monkeypatch.setenv("CONDUCTOR_BROKER_URL", "redis://:pa55word-xyz@10.0.0.5:6379/0")
    m = ClusterModel.from_config(DistributedConfig())
    assert m.configured and "pa55word-xyz" not in m.shown_url and "10.0.0.5" in m.shown_url
    assert "pa55word-xyz" not in m.header(NOW)[0]


@pytest.mark.parametrize(("seconds", "text"), [(0.25, "0.2 s ago"), (42, "42 s ago"), (125, "2 min 05 s ago"),
                                                (7300, "2 h 01 min ago"), (3 * 86400, "3.0 days ago")])
def test_ages_read_like_a_person_would_say_them(seconds: float, text: str) -> None:
    assert fmt_age(seconds) == text


def test_the_summary_counts_leases_and_names_the_desktop() -> None:
    from dataclasses import replace

    from conductor.distributed.monitor import LeaseStatus
    from conductor.distributed.schema import DesktopInfo
    m = model()
    s = replace(status(), leases=(LeaseStatus("tr/T1/1", NOW + 5, False), LeaseStatus("tr/T2/1", NOW - 1, True)))
    m.apply(ClusterPolled(status=s))
    assert "leases: 2 held (1 expired)" in m.summary() and "no desktop has advertised" in m.summary()
    m.apply(ClusterPolled(status=replace(s, desktop=DesktopInfo(namespace="ns", bus_id="b", host="desk", pid=42,
                                                                started=NOW))))
    assert "desktop: desk (pid 42)" in m.summary()
