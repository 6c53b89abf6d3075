"""The engine's hot paths stay cheap (a CPU-time guard, robust to a loaded machine) and the shortcuts they
take stay exact: the trusted record constructor, the committer's group commit, the output writer thread and
the critical-path-first ready order."""

from __future__ import annotations

import errno
import random
import threading
import time
from pathlib import Path

import pytest

from conductor import dag
from conductor.approvals import ApprovalBroker
from conductor.config import Config
from conductor.engine import Engine, EngineDeps, _Committer
from conductor.events import Event, EventQueue, Notice, Provenance, RecordApplied
from conductor.model import Ticket, TicketStatus, Track, TrackStatus
from conductor.output_log import TicketStream
from conductor.providers.scripted import Reply, ScriptedProvider
from conductor.records import Record, TicketPatch, TicketUpdated, track_update, trusted_ticket_update
from conductor.store import Journal, TrackStore
from conductor.tiers.call import CallDeps
from conductor.tools.base import Toolbox
from conductor.usage import PriceTable, UsageLedger

ENGINE_CPU_MS_PER_TICKET = 0.3
"""Issue 8's target for the engine thread's own CPU per ticket with the real journal on."""


def _random_dag(n: int, seed: int) -> list[Ticket]:
    rnd = random.Random(seed)
    out: list[Ticket] = []
    for i in range(n):
        lo = max(0, i - 50)
        k = min(rnd.randint(0, 3), i - lo)
        deps = sorted(rnd.sample(range(lo, i), k)) if k else []
        out.append(Ticket(id=f"T{i:04d}", title=f"ticket {i}", depends_on=[f"T{j:04d}" for j in deps]))
    return out


def _run(tmp: Path, tickets: list[Ticket], workers: int = 8) -> tuple[Engine, Track, TrackStore, EventQueue]:
    cfg = Config().updated({"engine": {"max_workers": workers}})
    events = EventQueue()
    provider = ScriptedProvider({3: [Reply(text="done")], 4: [Reply(text='{"verdict":"pass","hint":""}')]})
    call = CallDeps(provider=provider, events=events, ledger=UsageLedger(PriceTable(cfg.prices)), cfg=cfg)
    track = Track(id="cpu-guard", title="cpu", goal="guard", status=TrackStatus.READY, tickets=tickets)
    store = TrackStore(tmp / "tracks")
    journal = store.create_track(track)
    deps = EngineDeps(cfg=cfg, call=call.with_(journal=journal), broker=ApprovalBroker(events), workspace=tmp,
                      toolbox=Toolbox([]), store=store)
    engine = Engine(track, deps, journal=journal)
    engine.start()
    return engine, engine.join(timeout=120), store, events


def test_engine_thread_cpu_per_ticket_stays_within_the_target(tmp_path: Path) -> None:
    """CPU time of the engine thread itself (time.thread_time), not wall time: a loaded machine slows the run
    but barely changes it. The best of three runs, so one run disturbed by cache-thrashing neighbours does not
    fail the suite; a real regression fails all three."""
    n = 400
    seen = []
    for k in range(3):
        engine, track, store, _ = _run(tmp_path / f"run{k}", _random_dag(n, seed=k))
        store.close()
        assert all(t.status == TicketStatus.DONE for t in track.tickets)
        seen.append(1000 * engine.cpu_s / n)
        if seen[-1] <= ENGINE_CPU_MS_PER_TICKET:
            return
    pytest.fail(f"engine thread CPU per ticket {min(seen):.3f} ms (runs: {[round(x, 3) for x in seen]}) is over "
                f"the {ENGINE_CPU_MS_PER_TICKET} ms target; profile it with bench/dag_makespan.py --profile 25")


def test_a_settled_run_has_written_every_output_and_journalled_every_record(tmp_path: Path) -> None:
    tickets = _random_dag(60, seed=7)
    _, track, store, events = _run(tmp_path, tickets, workers=4)
    try:
        for t in track.tickets:  # written by the store's output thread, complete once join returned
            assert "done" in store.read_output(store.ticket_output(track.id, t.id, 3))
            assert '"verdict":"pass"' in store.read_output(store.ticket_output(track.id, t.id, 4))
        applied = [e for e in events.drain(10**6) if isinstance(e, RecordApplied)]
        seqs = [e.journal_seq for e in applied]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        on_disk = {e.seq for e in store.journal(track.id).entries()}
        assert set(seqs) <= on_disk
    finally:
        store.close()


# ---------------------------------------------------------------- trusted construction


@pytest.mark.parametrize("fields", [
    {"status": TicketStatus.RUNNING, "attempts": 2, "model_used": "m"},
    {"status": TicketStatus.DONE, "failed_reason": None, "blocked_reason": None},
    {"status": TicketStatus.READY},
    {"last_hint": "x", "depends_on": ["T1"]},
    {},
])
@pytest.mark.parametrize("reason", [None, "why"])
def test_trusted_ticket_update_is_exactly_what_model_construct_builds(fields: dict[str, object],
                                                                      reason: str | None) -> None:
    fast = trusted_ticket_update("T1", reason, dict(fields))
    slow = TicketUpdated.model_construct(ticket_id="T1", reason=reason,
                                         fields=TicketPatch.model_construct(_fields_set=set(fields), **fields))
    assert fast == slow
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.fields.model_fields_set == slow.fields.model_fields_set == set(fields)
    assert list(fast.__dict__) == list(slow.__dict__) and list(fast.fields.__dict__) == list(slow.fields.__dict__)
    assert fast.model_dump_json() == slow.model_dump_json()
    if not any(isinstance(v, list) for v in fields.values()):  # a list field makes both unhashable
        assert hash(fast) == hash(slow)
    with pytest.raises(Exception, match="frozen"):
        fast.reason = "changed"  # type: ignore[misc]


def test_trusted_ticket_update_refuses_a_field_outside_the_patch() -> None:
    with pytest.raises(ValueError, match=r"no field\(s\) \['bogus'\]"):
        trusted_ticket_update("T1", None, {"status": TicketStatus.DONE, "bogus": 1})


# ---------------------------------------------------------------- group commit


class _GatedJournal(Journal):
    """A real journal whose first append waits for a gate, so later batches queue up behind it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls: list[int] = []

    def append_many(self, recs: list[Record], *, sync: bool = True):  # type: ignore[no-untyped-def]
        self.calls.append(len(recs))
        if len(self.calls) == 1:
            self.entered.set()
            self.gate.wait(10)
        return super().append_many(recs, sync=sync)


def test_committer_writes_queued_batches_with_one_fsync_and_each_batch_keeps_its_own_seq(tmp_path: Path) -> None:
    journal = _GatedJournal(tmp_path / "events.jsonl")
    posted: list[Event] = []
    started: list[str] = []
    seen: list[tuple[str, int]] = []
    committer = _Committer(journal, posted.append, lambda name: started.append(name), lambda rec: Provenance(),
                           lambda exc: None, name="test-committer")

    def rec(n: int) -> Record:
        return track_update(reason=f"r{n}", status=TrackStatus.RUNNING)

    def batch(name: str, n_records: int) -> tuple[list[Event | Record], list[tuple[str]], list[object]]:
        items: list[Event | Record] = [rec(i) for i in range(n_records)] + [Notice(message=name)]
        return items, [(name,)], [lambda seq, name=name: seen.append((name, seq))]

    committer.commit(batch("first", 1))  # type: ignore[arg-type]
    assert journal.entered.wait(10)
    committer.commit(batch("second", 2))  # type: ignore[arg-type]
    committer.commit(batch("empty", 0))  # type: ignore[arg-type]
    committer.commit(batch("third", 3))  # type: ignore[arg-type]
    journal.gate.set()
    committer.barrier()
    committer.close()
    assert journal.calls == [1, 5], "the three queued batches share one append (one write, one fsync)"
    assert started == ["first", "second", "empty", "third"]
    assert seen == [("first", 1), ("second", 3), ("empty", 3), ("third", 6)], \
        "a batch's callbacks get the seq of its own last record, never a later batch's"
    applied = [e.journal_seq for e in posted if isinstance(e, RecordApplied)]
    assert applied == [1, 2, 3, 4, 5, 6]
    notices = [e.message for e in posted if isinstance(e, Notice)]
    assert notices == ["first", "second", "empty", "third"]
    journal.close()


def test_after_a_settled_run_the_idle_workers_end_and_gc_is_let_go(tmp_path: Path) -> None:
    """join() returns before the idle worker threads are joined (64 took 0.12 s) and before the gc freeze is let
    go; the engine thread does both and leaves nothing behind."""
    from conductor import gcfreeze
    engine, track, store, _ = _run(tmp_path, _random_dag(40, seed=5), workers=6)
    store.close()
    assert all(t.status == TicketStatus.DONE for t in track.tickets)
    engine.shutdown(timeout=10)  # joins the engine thread, which joins its pool
    assert not [t.name for t in threading.enumerate() if t.name.startswith("conductor-worker-cpu-guard")]
    assert gcfreeze.holders() == 0


# ---------------------------------------------------------------- output writer


def test_output_writer_keeps_each_streams_order_across_threads_and_flush_waits_for_it(tmp_path: Path) -> None:
    store = TrackStore(tmp_path)
    paths = [tmp_path / "e" / f"P{i}" / "tier1.md" for i in range(80)]  # files, more than OUTPUT_FDS in all
    streams = [store.ticket_output(f"t{i % 3}", f"T{i}", 3 + i % 2) for i in range(150)]  # three tracks' logs
    targets: list[Path | TicketStream] = [*paths, *streams]

    def name(target: Path | TicketStream) -> str:
        return target.parent.name if isinstance(target, Path) else target.ticket_id

    def writer(target: Path | TicketStream) -> None:
        for n in range(40):
            store.append_output(target, f"{name(target)}:{n}\n")

    threads = [threading.Thread(target=writer, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.flush_outputs()
    for p in paths:
        assert p.read_text() == "".join(f"{p.parent.name}:{n}\n" for n in range(40))
    fresh = TrackStore(tmp_path)  # another process's view: the index comes from the file alone
    for st in streams:
        expected = "".join(f"{st.ticket_id}:{n}\n" for n in range(40))
        assert store.read_output(st) == fresh.read_output(st) == expected
        assert fresh.read_output(TicketStream(st.log, st.ticket_id, 7 - st.tier)) == ""  # the other tier: none
    assert sorted(p.name for p in (tmp_path / "t0" / "outputs").iterdir()) == ["tickets.log"]  # no file per ticket
    for target in (paths[0], streams[0]):
        store.append_output(target, "tail\n")
        assert store.read_output_tail(target, 5) == ("tail\n", True)  # reading waits for the writer
    store.close()
    store.append_output(paths[1], "after close\n")  # a closed store starts a new writer
    store.append_output(streams[1], "after close\n")
    store.close()
    assert paths[1].read_text().endswith("after close\n")
    assert TrackStore(tmp_path).read_output(streams[1]).endswith("T1:39\nafter close\n")


def test_output_writer_redacts_before_queueing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-" + "A1b2C3d4E5f6G7h8I9j0K1l2"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    store = TrackStore(tmp_path)
    p = tmp_path / "o.md"
    store.append_output(p, f"key {secret} end")
    store.close()
    assert p.read_text() == "key [REDACTED] end"


def test_a_failed_output_write_reaches_the_next_writer_and_stops_the_run(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import conductor.output_log as log_mod
    import conductor.store as store_mod

    real = store_mod.write_all
    full = threading.Event()

    def write_all(fd: int, data: bytes) -> None:
        if full.is_set() and threading.current_thread().name == "conductor-outputs":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(store_mod, "write_all", write_all)  # planning outputs
    monkeypatch.setattr(log_mod, "write_all", write_all)  # ticket logs
    store = TrackStore(tmp_path)
    # A planning output file, then a ticket's log: in both the failed chunk leaves no trace.
    for target in (tmp_path / "o.md", store.ticket_output("t", "T1")):
        store.append_output(target, "before\n")
        store.flush_outputs()
        full.set()
        store.append_output(target, "lost\n")
        with pytest.raises(OSError, match=r"could not be written.*No space"):
            store.flush_outputs()
        store.flush_outputs()  # raised once: a later write (space freed) goes on
        full.clear()
        store.append_output(target, "after\n")
        store.close()
        assert TrackStore(tmp_path).read_output(target) == "before\nafter\n"

    full.set()  # the whole run: the engine stops with the store error instead of reporting done
    with pytest.raises(RuntimeError, match="crashed") as info:
        _run(tmp_path / "run", _random_dag(20, seed=3), workers=2)
    assert "No space" in repr(info.value.__cause__)


# ---------------------------------------------------------------- ready order


def test_ready_tracker_starts_the_head_of_the_longest_chain_first() -> None:
    # A, B, C ready at once; C heads a chain of 3 more, B of 1, A of none. Readiness order would start A.
    tickets = [Ticket(id="A", title="a"), Ticket(id="B", title="b"), Ticket(id="C", title="c"),
               Ticket(id="B1", title="b1", depends_on=["B"]),
               Ticket(id="C1", title="c1", depends_on=["C"]), Ticket(id="C2", title="c2", depends_on=["C1"]),
               Ticket(id="C3", title="c3", depends_on=["C2"])]
    tracker = dag.ReadyTracker(tickets)
    assert tracker.ids() == ["A", "B", "C"]  # listing keeps readiness order
    order = []
    while (tid := tracker.first()) is not None:
        order.append(tid)
        tracker.update(tid, TicketStatus.DONE)
    # ranks (chain length below, itself included): C 4, C1 3, B 2, C2 2, A 1, B1 1, C3 1; ties in readiness order
    assert order == ["C", "C1", "B", "C2", "A", "B1", "C3"]


def test_critical_path_first_beats_readiness_order_on_a_wide_dag() -> None:
    """Simulated list scheduling (unit-time tickets, 4 workers): the tracker's order finishes no later than the
    bound's 1.25x where readiness order (the old one) needs far longer on a DAG built to punish it."""
    width, chain = 40, 30
    tickets = [Ticket(id=f"W{i}", title="w") for i in range(width)]
    tickets += [Ticket(id="C0", title="c")] + [Ticket(id=f"C{i}", title="c", depends_on=[f"C{i - 1}"])
                                               for i in range(1, chain)]

    def simulate(pick_first: bool) -> int:
        tracker = dag.ReadyTracker([t.model_copy() for t in tickets])
        time_units = 0
        while tracker:
            batch = []
            for _ in range(4):
                tid = tracker.first() if pick_first else next(iter(tracker.ids()), None)
                if tid is None:
                    break
                tracker.update(tid, TicketStatus.RUNNING)
                batch.append(tid)
            for tid in batch:
                tracker.update(tid, TicketStatus.DONE)
            time_units += 1
        return time_units

    bound = max(chain, (width + chain + 3) // 4)
    assert simulate(pick_first=True) <= 1.25 * bound
    assert simulate(pick_first=False) > 1.25 * bound
    started = time.perf_counter()
    dag.ReadyTracker(_random_dag(5000, seed=1))
    assert time.perf_counter() - started < 5  # built in O(tickets + edges)


@pytest.mark.timeout(60)
def test_a_committer_that_died_makes_its_barrier_fail_instead_of_waiting_forever(tmp_path: Path) -> None:
    """CI caught an engine that never settled: a launch submitted to a pool already shut down (the run had just
    crashed) killed the committer thread, and the engine's next barrier waited for it forever."""
    journal = Journal(tmp_path / "events.jsonl")

    def submit(*_launch: object) -> None:
        raise RuntimeError("cannot schedule new futures after shutdown")

    committer = _Committer(journal, lambda ev: None, submit, lambda rec: Provenance(), lambda exc: None,
                           name="test-committer")
    committer.commit(([track_update(status=TrackStatus.RUNNING)], [("launch",)], []))  # type: ignore[list-item]
    with pytest.raises(OSError, match="committer thread stopped"):
        committer.barrier()
    journal.close()


def test_an_attempt_submitted_after_the_pool_shut_down_comes_back_cancelled(tmp_path: Path) -> None:
    """The other half: the engine's submit never raises into the committer; the attempt is reported cancelled."""
    eng, track, store, _events = _run(tmp_path, [Ticket(id="T1", title="t")], workers=1)
    try:
        eng._pool.shutdown(wait=True)
        t = track.ticket("T1")
        eng._submit(t, 2, "m", threading.Event(), None, eng._bench)
        out = eng._inbox.get(timeout=5)
        assert out.ticket_id == "T1" and out.attempt == 2 and isinstance(out.error, Exception)  # type: ignore[union-attr]
        assert "before this attempt started" in str(out.error)  # type: ignore[union-attr]
    finally:
        store.close()
