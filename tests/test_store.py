"""The tracks folder: journal (seq + CRC per line), torn-tail and corrupt-middle recovery, snapshots moved
aside when corrupt, replay after the snapshot's seq, interrupted tickets back to ready, and a SIGKILL loop
(reliability §3 and scenarios F2, F5).

Why: "kill the app at any moment, start it again, everything is there" rests on exactly these paths; each is
taken only after a crash, so only a test ever exercises it before a user does.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import tomllib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conductor.model import Ticket, TicketStatus, Track, TrackStatus
from conductor.records import ModelTurn, ticket_update, track_update
from conductor.store import Journal, TrackStore, read_journal


def note(key: str, **message: object) -> ModelTurn:
    """A record with free-form content, for tests of the journal itself."""
    return ModelTurn(key=key, message=message)  # type: ignore[arg-type]

REPO = Path(__file__).resolve().parent.parent


def lines_of(path: Path) -> list[bytes]:
    raw = path.read_bytes()
    assert raw == b"" or raw.endswith(b"\n"), "the journal must end with a complete line"
    return raw.split(b"\n")[:-1] if raw else []


def assert_clean(path: Path) -> list[int]:
    """Every line a well-formed record; seqs 1..n consecutive. Returns the seqs."""
    seqs = [json.loads(line)["seq"] for line in lines_of(path)]
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    return seqs


def journal_with(path: Path, n: int) -> list[bytes]:
    j = Journal(path)
    for i in range(n):
        j.append(note(f"n{i}", i=i, text=f"line {i} · ünïcode"))
    j.close()
    return lines_of(path)


# ---------------------------------------------------------------- journal basics

def test_append_and_read_round_trip(tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    j = Journal(p)
    a = j.append(note("k1", n=1, nested={"list": [1, 2.5, None, "é"]}))
    b = j.append(note("k2", text="multi\nline"))
    c = j.append(note("k1", n=2))
    assert (a.seq, b.seq, c.seq) == (1, 2, 3)
    j.close()

    again = Journal(p)
    assert again.warnings == []
    assert [(e.seq, e.record) for e in again.entries()] == [(e.seq, e.record) for e in (a, b, c)]
    assert again.last_seq == 3
    assert [e.seq for e in again.entries(after_seq=1)] == [2, 3]
    found = again.find(ModelTurn, "k1")
    assert found is not None and found.message["n"] == 2  # the idempotency lookup returns the last one
    assert again.find(ModelTurn, "nope") is None
    assert again.append(note("x")).seq == 4
    again.close()
    for line in lines_of(p):
        d = json.loads(line)
        assert set(d) == {"seq", "ts", "type", "data", "crc"}
    assert assert_clean(p) == [1, 2, 3, 4]


def test_a_missing_journal_reads_empty_and_is_created_on_first_append(tmp_path: Path) -> None:
    p = tmp_path / "deep" / "events.jsonl"
    assert read_journal(p).entries == []
    j = Journal(p)
    assert j.last_seq == 0 and not p.exists()
    j.append(note("first"))
    j.close()
    assert assert_clean(p) == [1]


def test_torn_last_line_is_dropped_with_a_warning_and_the_file_truncated(tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    lines = journal_with(p, 3)
    good = b"".join(line + b"\n" for line in lines[:2])
    p.write_bytes(good + lines[2][: len(lines[2]) // 2])  # a crash mid-write of line 3

    j = Journal(p)
    assert [e.seq for e in j.entries()] == [1, 2]
    assert len(j.warnings) == 1 and "torn" in j.warnings[0] and "seq 2" in j.warnings[0]
    assert p.read_bytes() == good  # truncated to the good prefix
    j.append(note("after", ok=True))
    j.close()
    assert assert_clean(p) == [1, 2, 3]
    assert json.loads(lines_of(p)[2])["data"]["key"] == "after"
    assert read_journal(p).warnings == []


def test_crc_mismatch_in_the_middle_moves_the_original_aside_and_keeps_every_line_that_verifies(
        tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    lines = journal_with(p, 5)
    bad = lines[2].replace(b'"i":2', b'"i":7')  # still valid JSON, wrong checksum
    assert bad != lines[2] and json.loads(bad)
    original = b"".join(line + b"\n" for line in [*lines[:2], bad, *lines[3:]])
    p.write_bytes(original)

    j = Journal(p)
    assert [e.seq for e in j.entries()] == [1, 2, 4, 5]  # the records after the damage are kept too
    (aside,) = tmp_path.glob("events.jsonl.corrupt-*")
    assert aside.read_bytes() == original  # the evidence, byte for byte
    assert p.read_bytes() == b"".join(line + b"\n" for line in [*lines[:2], *lines[3:]])
    (w,) = j.warnings
    assert "line 3" in w and "checksum" in w and aside.name in w and "4 lines that verify" in w
    j.append(note("after"))
    j.close()
    assert [json.loads(x)["seq"] for x in lines_of(p)] == [1, 2, 4, 5, 6]


def test_a_seq_that_goes_back_is_damage_and_a_gap_is_not(tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    lines = journal_with(p, 4)
    p.write_bytes(b"".join(line + b"\n" for line in [lines[0], lines[2], lines[3]]))  # a line set aside earlier
    read = read_journal(p)
    assert [e.seq for e in read.entries] == [1, 3, 4] and read.warnings == []
    p.write_bytes(b"".join(line + b"\n" for line in [lines[0], lines[2], lines[1], lines[3]]))  # replayed line
    read = read_journal(p)
    assert [e.seq for e in read.entries] == [1, 3, 4]
    assert "seq 2 does not follow 3" in read.warnings[0]
    assert len(list(tmp_path.glob("events.jsonl.corrupt-*"))) == 1


def test_two_corruptions_are_both_kept_aside(tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    for _ in range(2):
        p.unlink(missing_ok=True)
        lines = journal_with(p, 3)
        p.write_bytes(lines[0] + b"\nnot json\n" + lines[2] + b"\n")
        read_journal(p)
    assert len(list(tmp_path.glob("events.jsonl.corrupt-*"))) == 2  # never overwritten, even in one second


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 6), st.data())
def test_truncation_at_any_byte_recovers_a_clean_prefix(n: int, data: st.DataObject) -> None:
    """F2 at byte granularity: cut the journal anywhere (including just before a line's newline: a
    line without its newline was never acknowledged); reopening yields exactly the complete lines before the cut, and the next append is clean."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "events.jsonl"
        lines = journal_with(p, n)
        raw = p.read_bytes()
        # A fraction, not a byte count: the line lengths vary run to run with the timestamps.
        cut = round(data.draw(st.floats(0, 1), label="fraction kept") * len(raw))
        p.write_bytes(raw[:cut])
        whole = raw[:cut].count(b"\n")
        j = Journal(p)
        assert [e.seq for e in j.entries()] == list(range(1, whole + 1))
        assert bool(j.warnings) == (cut > 0 and raw[cut - 1] != 0x0A)
        j.append(note("after", cut=cut))
        j.close()
        assert assert_clean(p) == list(range(1, whole + 2))
        assert lines_of(p)[:whole] == lines[:whole]


def test_a_last_line_without_its_newline_does_not_swallow_the_next_append(tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    journal_with(p, 3)
    p.write_bytes(p.read_bytes()[:-1])  # the crash hit between the line and its "\n"
    j = Journal(p)
    rec = j.append(note("acknowledged", must="survive"))
    j.close()
    read = read_journal(p)
    assert read.entries and read.entries[-1].seq == rec.seq and read.entries[-1].data["key"] == "acknowledged"


def test_an_append_that_failed_does_not_cost_the_next_acknowledged_one(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import conductor.store as store_mod

    p = tmp_path / "events.jsonl"
    j = Journal(p)
    j.append(note("first"))
    real_fsync = os.fsync

    def eio(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(store_mod.os, "fsync", eio)
    with pytest.raises(OSError):
        j.append(note("failed", must="not count"))
    monkeypatch.setattr(store_mod.os, "fsync", real_fsync)
    rec = j.append(note("acknowledged", must="survive"))
    j.close()
    read = read_journal(p)
    assert [e.seq for e in read.entries] == list(range(1, len(read.entries) + 1))
    assert read.entries[-1].seq == rec.seq and read.entries[-1].data["key"] == "acknowledged"


# ---------------------------------------------------------------- tracks: snapshot + replay

def make_track(tid: str = "20260101-demo") -> Track:
    return Track(id=tid, title="Demo", goal="Show the store", status=TrackStatus.READY, tickets=[
        Ticket(id="T1", title="first"),
        Ticket(id="T2", title="second", depends_on=["T1"]),
        Ticket(id="T3", title="third", depends_on=["T1"]),
    ])


def update(journal: Journal, tid: str, **fields: object) -> int:
    return journal.append(ticket_update(tid, **fields)).seq


def test_create_then_load_in_a_new_store(tmp_path: Path) -> None:
    store = TrackStore(tmp_path)
    track = make_track()
    store.create_track(track)
    folder = tmp_path / track.id
    assert {p.name for p in folder.iterdir()} >= {"track.toml", "events.jsonl", "spec.md"}
    assert "T2" in (folder / "spec.md").read_text() and "after T1" in (folder / "spec.md").read_text()
    snap = tomllib.loads((folder / "track.toml").read_text())
    assert snap["journal_seq"] == 1
    store.close()

    loaded = TrackStore(tmp_path).load_track(track.id)
    assert loaded.warnings == [] and loaded.interrupted == []
    assert loaded.track.model_dump(exclude={"journal_seq"}) == track.model_dump(exclude={"journal_seq"})


def test_creating_an_existing_track_is_refused(tmp_path: Path) -> None:
    store = TrackStore(tmp_path)
    store.create_track(make_track())
    with pytest.raises(Exception, match="already exists"):
        store.create_track(make_track())


def test_load_replays_only_records_after_the_snapshot_seq(tmp_path: Path) -> None:
    store = TrackStore(tmp_path)
    track = make_track()
    journal = store.create_track(track)
    seq = update(journal, "T1", title="from the journal, before the snapshot")
    # A snapshot that covers seq 2 but says something else: if seq 2 were replayed, it would win.
    track.ticket("T1").title = "from the snapshot"
    track.journal_seq = seq
    store.save_snapshot(track)
    update(journal, "T1", status="done")
    update(journal, "T2", description="edited after the snapshot")
    store.close()

    loaded = TrackStore(tmp_path).load_track(track.id)
    t1 = loaded.track.ticket("T1")
    assert t1.title == "from the snapshot"
    assert t1.status == TicketStatus.DONE
    assert loaded.track.ticket("T2").description == "edited after the snapshot"
    assert loaded.track.journal_seq == 4


@pytest.mark.parametrize("journal_bytes", [b"", b"garbage\n\x00\xff{{{\n", None])
def test_a_snapshot_ahead_of_a_lost_journal_keeps_its_finished_work(tmp_path: Path,
                                                                     journal_bytes: bytes | None) -> None:
    """Issue 9 class 6: an empty, garbage or missing journal beside an intact snapshot never downgrades done
    work, and lines written after it follow the snapshot (so the next load replays them)."""
    store = TrackStore(tmp_path)
    track = make_track()
    journal = store.create_track(track)
    for tid in ("T1", "T2"):
        update(journal, tid, status="done")
    track.ticket("T1").status = track.ticket("T2").status = TicketStatus.DONE
    track.journal_seq = journal.last_seq
    store.save_snapshot(track)
    store.close()
    events = tmp_path / track.id / "events.jsonl"
    if journal_bytes is None:
        events.unlink()
    else:
        events.write_bytes(journal_bytes)
    loaded = TrackStore(tmp_path).load_track(track.id)
    assert any("snapshot includes up to" in w for w in loaded.warnings), loaded.warnings
    assert [t.status for t in loaded.track.tickets] == [TicketStatus.DONE, TicketStatus.DONE, TicketStatus.TODO]
    assert loaded.journal.append(ticket_update("T3", title="after the loss")).seq > track.journal_seq
    loaded.journal.close()
    again = TrackStore(tmp_path).load_track(track.id)
    assert again.track.ticket("T3").title == "after the loss" and again.track.ticket("T1").status == "done"


@pytest.mark.parametrize("status", ["running", "review", "awaiting_approval"])
def test_an_interrupted_ticket_comes_back_interrupted(tmp_path: Path, status: str) -> None:
    store = TrackStore(tmp_path)
    track = make_track()
    journal = store.create_track(track)
    journal.append(track_update(status="running"))
    update(journal, "T1", status="done")
    update(journal, "T2", status=status, attempts=1)
    update(journal, "T3", status="failed", failed_reason="bad")
    store.close()

    loaded = TrackStore(tmp_path).load_track(track.id)
    assert loaded.interrupted == ["T2"]
    assert loaded.track.ticket("T2").status == TicketStatus.INTERRUPTED  # a visible state: resume continues it
    assert loaded.track.ticket("T2").attempts == 1
    assert loaded.track.ticket("T1").status == TicketStatus.DONE      # terminal states stay
    assert loaded.track.ticket("T3").status == TicketStatus.FAILED
    assert loaded.track.status == TrackStatus.INTERRUPTED


def test_every_interrupted_kind_at_once(tmp_path: Path) -> None:
    store = TrackStore(tmp_path)
    track = make_track()
    track.tickets.append(Ticket(id="T4", title="fourth"))
    track.tickets.append(Ticket(id="T5", title="fifth"))
    journal = store.create_track(track)
    for tid, st_ in zip(["T1", "T2", "T3", "T4", "T5"], ["running", "review", "awaiting_approval", "cancelled",
                                                         "todo"]):
        update(journal, tid, status=st_)
    store.close()
    loaded = TrackStore(tmp_path).load_track(track.id)
    assert sorted(loaded.interrupted) == ["T1", "T2", "T3"]
    assert [t.status for t in loaded.track.tickets] == [TicketStatus.INTERRUPTED] * 3 + [TicketStatus.CANCELLED,
                                                                                          TicketStatus.TODO]


@pytest.mark.parametrize("bad", [
    b"",                                              # truncated to 0
    b"[[[ not toml",                                  # invalid TOML
    bytes(random.Random(7).randrange(256) for _ in range(300)),  # random bytes (not even UTF-8)
    b'id = 3\ntitle = "x"\n',                         # valid TOML, not a track
    "half",                                           # a real snapshot cut mid-line
])
def test_a_corrupt_snapshot_is_moved_aside_and_the_track_rebuilt_from_the_journal(tmp_path: Path,
                                                                                 bad: bytes | str) -> None:
    store = TrackStore(tmp_path)
    track = make_track()
    journal = store.create_track(track)
    update(journal, "T1", status="done")
    update(journal, "T2", title="renamed in the journal")
    store.close()
    snap = tmp_path / track.id / "track.toml"
    if bad == "half":
        text = snap.read_bytes()
        bad = text[: text.index(b'title = "first"') + 9]
    assert isinstance(bad, bytes)
    snap.write_bytes(bad)

    loaded = TrackStore(tmp_path).load_track(track.id)
    (aside,) = (tmp_path / track.id).glob("track.toml.corrupt-*")
    assert aside.read_bytes() == bad  # kept as it was, for inspection
    assert any("corrupt snapshot" in w and aside.name in w and "rebuilt from the journal" in w
               for w in loaded.warnings), loaded.warnings
    assert loaded.track.title == "Demo" and loaded.track.goal == "Show the store"
    assert loaded.track.ticket("T1").status == TicketStatus.DONE
    assert loaded.track.ticket("T2").title == "renamed in the journal"
    assert [t.id for t in loaded.track.tickets] == ["T1", "T2", "T3"]


def test_a_second_corrupt_snapshot_does_not_overwrite_the_first_one_aside(tmp_path: Path) -> None:
    store = TrackStore(tmp_path)
    track = make_track()
    store.create_track(track)
    store.close()
    snap = tmp_path / track.id / "track.toml"
    for junk in (b"first junk [[", b"second junk [["):
        snap.write_bytes(junk)
        TrackStore(tmp_path).load_track(track.id)
    asides = sorted(p.read_bytes() for p in (tmp_path / track.id).glob("track.toml.corrupt-*"))
    assert asides == [b"first junk [[", b"second junk [["]


def test_list_tracks_lists_them_newest_first_and_skips_private_folders(tmp_path: Path) -> None:
    store = TrackStore(tmp_path)
    store.create_track(make_track("20260101-older"))
    store.create_track(make_track("20260301-newer"))
    (tmp_path / "_epics" / "x").mkdir(parents=True)
    (tmp_path / "_epics" / "x" / "events.jsonl").write_text("")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "empty-folder").mkdir()
    journal = store.journal("20260101-older")
    update(journal, "T1", status="running")
    store.close()
    listed = TrackStore(tmp_path).list_tracks()
    assert [t.id for t in listed] == ["20260301-newer", "20260101-older"]
    assert listed[1].ticket("T1").status == TicketStatus.INTERRUPTED  # loaded properly


def test_list_tracks_shows_an_unreadable_track_with_why(tmp_path: Path) -> None:
    store = TrackStore(tmp_path)
    store.create_track(make_track("20260101-fine"))
    bad = TrackStore(tmp_path)
    j = bad.journal("20260102-broken")
    j.append(ticket_update("ghost", status="done"))
    j.close()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    listed = {t.id: t for t in TrackStore(tmp_path).list_tracks()}
    assert set(listed) == {"20260101-fine", "20260102-broken"}
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # listing repairs and creates nothing
    _, warnings = TrackStore(tmp_path).peek_track("20260102-broken")
    assert any("ghost" in w and "seq 1 skipped" in w for w in warnings)
    loaded = TrackStore(tmp_path).load_track("20260102-broken")  # a clear warning, never a traceback
    assert any("ghost" in w for w in loaded.warnings)


# ---------------------------------------------------------------- F2: SIGKILL during writes

_CHILD = textwrap.dedent("""
    import random, sys
    from pathlib import Path
    from conductor.model import Ticket, Track
    from conductor.records import ticket_update
    from conductor.store import TrackStore

    root, ack_path, seed = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    rnd = random.Random(seed)
    store = TrackStore(root)
    tid = "20260101-crash"
    if not (root / tid).exists():
        track = Track(id=tid, title="crash", goal="g", tickets=[Ticket(id="T1", title="rev 0")])
        store.create_track(track)
    track = store.load_track(tid).track
    journal = store.journal(tid)
    with open(ack_path, "a", buffering=1) as ack:
        while True:
            seq = journal.last_seq + 1
            pad = "x" * rnd.choice([0, 50, 700, 9000])
            journal.append(ticket_update("T1", title=f"rev {seq}", description=pad))
            track.ticket("T1").title = f"rev {seq}"
            ack.write(f"{seq}\\n")
            if seq % 7 == 0:
                track.journal_seq = seq
                store.save_snapshot(track)
""")


def test_sigkill_at_random_moments_always_reopens_to_a_consecutive_prefix(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    root = tmp_path / "tracks"
    ack = tmp_path / "acks.txt"
    journal_path = root / "20260101-crash" / "events.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    rnd = random.Random(20261007)
    previous = 0
    for i in range(20):
        start = journal_path.stat().st_size if journal_path.exists() else 0
        proc = subprocess.Popen([sys.executable, str(script), str(root), str(ack), str(i)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            want = rnd.randint(5, 40)  # new lines before the kill
            deadline = time.monotonic() + 20
            while True:
                try:
                    proc.wait(timeout=0.01)
                    pytest.fail(f"the writer exited early: {proc.stderr.read().decode()}")
                except subprocess.TimeoutExpired:
                    pass
                size = journal_path.stat().st_size if journal_path.exists() else 0
                if size > start and journal_path.read_bytes()[start:].count(b"\n") >= want:
                    break
                assert time.monotonic() < deadline, "the writer made no progress"
            try:  # a random extra moment, so the kill lands anywhere in the write cycle
                proc.wait(timeout=rnd.uniform(0, 0.02))
            except subprocess.TimeoutExpired:
                pass
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            proc.stderr.close()

        acked = [int(x) for x in ack.read_text().split("\n")[:-1]] if ack.exists() else []
        store = TrackStore(root)
        loaded = store.load_track("20260101-crash")  # must not raise
        seqs = [e.seq for e in loaded.journal.entries()]
        assert seqs == list(range(1, len(seqs) + 1)), f"iteration {i}: {seqs[-5:]}"
        assert len(seqs) >= max(acked, default=0), "an acknowledged record was lost"
        assert len(seqs) >= previous
        assert not any("corrupt" in w for w in loaded.warnings), loaded.warnings
        last = seqs[-1]
        # The state is the last durable event (seq 1 is track_created, whose title is "rev 0").
        assert loaded.track.ticket("T1").title == (f"rev {last}" if last > 1 else "rev 0")
        store.close()
        assert_clean(journal_path)  # the reopen left a clean file for the next writer
        previous = len(seqs)
    assert previous >= 20 * 5


def test_snapshot_temp_files_left_by_a_crash_are_removed_at_start(tmp_path: Path) -> None:
    store = TrackStore(tmp_path)
    (tmp_path / "t1").mkdir()
    stale = tmp_path / "t1" / ".track.toml.abc123.tmp"
    stale.write_text("half a snapshot")
    keep = tmp_path / "t1" / "track.toml"
    keep.write_text("x = 1\n")
    assert store.remove_stale_temp_files() == [stale]
    assert not stale.exists() and keep.exists()


def test_many_concurrent_streams_each_get_exactly_their_own_text(tmp_path: Path) -> None:
    """More live output streams than kept-open files: closing an idle file never hits one being written, and
    no text lands in another stream's file (a closed and reused descriptor would put it there)."""
    import threading

    from conductor.store import OUTPUT_FDS

    store = TrackStore(tmp_path)
    paths = [tmp_path / "out" / f"s{i}.md" for i in range(OUTPUT_FDS * 3)]
    errors: list[BaseException] = []

    def writer(p: Path) -> None:
        try:
            for n in range(60):
                store.append_output(p, f"{p.stem}:{n}\n")
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    assert errors == []
    for p in paths:
        assert p.read_text() == "".join(f"{p.stem}:{n}\n" for n in range(60))
