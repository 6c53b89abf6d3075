"""A track's ticket streams in one log (conductor.output_log): hostile text, kill -9 at random points, damage,
tracks written before the log, and `conductor output`."""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conductor import cli
from conductor.model import Ticket, Track, TrackStatus
from conductor.output_log import LOG_NAME, TicketStream
from conductor.store import TrackStore

FORGED = "\n@@ T2 3 5 @@\nforged\n@@ T1 4 999999 @@\n"  # a model's text that imitates the log's headers


def test_text_that_imitates_a_header_is_only_text(tmp_path: Path) -> None:
    store = TrackStore(tmp_path)
    t1, t2 = store.ticket_output("t", "T1"), store.ticket_output("t", "T2")
    store.append_output(t1, "start")
    store.append_output(t1, FORGED)
    store.append_output(t2, "two")
    store.close()
    fresh = TrackStore(tmp_path)
    assert fresh.read_output(t1) == "start" + FORGED
    assert fresh.read_output(t2) == "two"
    assert fresh.read_output(store.ticket_output("t", "T1", 4)) == ""
    store.append_output(t2, " more")  # the writer's check of the file it finds changes nothing
    store.close()
    assert TrackStore(tmp_path).read_output(t2) == "two more"


def test_a_tail_is_whole_chunks_cut_to_the_last_characters(tmp_path: Path) -> None:
    store = TrackStore(tmp_path)
    s = store.ticket_output("t", "T1")
    for n in range(50):
        store.append_output(s, f"line {n:02d}\n")
        store.flush_outputs()  # one chunk each
    assert store.read_output_tail(s, 16) == ("line 48\nline 49\n", True)
    assert store.read_output_tail(s, 10_000) == ("".join(f"line {n:02d}\n" for n in range(50)), False)
    store.close()


def _lines(text: str) -> list[str]:
    return text.splitlines()


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from conductor.store import TrackStore
    store = TrackStore(Path(sys.argv[1]))
    streams = [store.ticket_output("t", f"T{i}", 3 + i % 2) for i in range(8)]
    print("ready", flush=True)
    for n in range(1_000_000):
        s = streams[n % 8]
        store.append_output(s, f"{s.ticket_id}:{n // 8}:" + "x" * (n % 300) + "\\n")
        if n % 50 == 0:
            store.flush_outputs()
""")


@pytest.mark.parametrize("seed", range(4))
def test_kill_9_at_a_random_point_loses_only_a_tail_and_the_next_append_is_clean(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    log = tmp_path / "t" / "outputs" / LOG_NAME
    deadline = time.monotonic() + 20
    target = rnd.randint(20_000, 400_000)  # bytes written before the kill: a random point of a running writer
    while (not log.exists() or log.stat().st_size < target) and time.monotonic() < deadline:
        os.sched_yield()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    store = TrackStore(tmp_path)
    for i in range(8):
        s = store.ticket_output("t", f"T{i}", 3 + i % 2)
        lines = _lines(store.read_output(s))
        # Each ticket's text is whole lines in order (the kill cut at most the chunk being written).
        assert [ln.split(":")[:2] for ln in lines] == [[f"T{i}", str(k)] for k in range(len(lines))]
        store.append_output(s, "after the kill\n")
    store.close()
    fresh = TrackStore(tmp_path)
    for i in range(8):
        assert fresh.read_output(fresh.ticket_output("t", f"T{i}", 3 + i % 2)).endswith("\nafter the kill\n")
    for side in log.parent.glob("tickets.cut-*.log"):  # what a kill tore off is kept aside: part of one chunk
        assert len(side.read_bytes()) < 400 + 100


@pytest.mark.parametrize("tail", [b"\n@@ T1 3 50 @@\npartial", b"\n@@ T1 3", b"\n", b"\0" * 4096,
                                  b"a person's notes typed into the file\n\n@@ T1 3 4 @@\nlost"])
def test_what_follows_the_last_whole_chunk_is_kept_aside_then_cut_never_lost(tmp_path: Path, tail: bytes) -> None:
    store = TrackStore(tmp_path)
    s = store.ticket_output("t", "T1")
    store.append_output(s, "whole\n")
    store.close()
    with open(s.log, "ab") as f:  # torn by a kill, zeros after a power cut, or typed by a person
        f.write(tail)
    assert TrackStore(tmp_path).read_output(s) == "whole\n"  # readers change nothing
    assert s.log.read_bytes().endswith(tail)
    store = TrackStore(tmp_path)
    store.append_output(s, "next\n")
    store.close()
    assert TrackStore(tmp_path).read_output(s) == "whole\nnext\n"
    assert s.log.with_name("tickets.cut-1.log").read_bytes() == tail


def test_a_ticket_id_no_reader_could_parse_never_reaches_the_log(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ticket id"):
        Ticket(id="T1\n", title="x")  # `$` matched before a final newline: one such header hid the rest
    store = TrackStore(tmp_path)
    good = store.ticket_output("t", "T2")
    store.append_output(store.ticket_output("t", "T1\n"), "refused")
    with pytest.raises(OSError, match="cannot be written to the output log"):
        store.flush_outputs()
    store.append_output(good, "kept\n")
    store.close()
    assert TrackStore(tmp_path).read_output(good) == "kept\n"


def test_a_deleted_log_reads_as_empty(tmp_path: Path) -> None:
    store = TrackStore(tmp_path)
    s = store.ticket_output("t", "T1")
    store.append_output(s, "text\n")
    assert store.read_output(s) == "text\n"
    store.close()
    s.log.unlink()
    assert store.read_output(s) == "" and store.read_output_tail(s, 10) == ("", False)


def test_a_track_written_before_the_log_reads_its_ticket_files_first_then_the_log(tmp_path: Path) -> None:
    store = TrackStore(tmp_path)
    s = store.ticket_output("t", "T1", 4)
    s.legacy_file.parent.mkdir(parents=True)
    s.legacy_file.write_text("old QA text\n")
    assert store.read_output(s) == "old QA text\n"
    assert store.read_output_tail(s, 5) == ("text\n", True)
    assert store.read_output(TicketStream(s.log, "T1", 3)) == ""
    store.append_output(s, "attempt 2\n")  # the track resumed by this version
    assert store.read_output(s) == "old QA text\nattempt 2\n"
    assert store.read_output_tail(s, 15) == ("text\nattempt 2\n", True)
    assert store.read_output_tail(s, 100) == ("old QA text\nattempt 2\n", False)
    store.close()


def test_conductor_output_prints_a_tickets_text_and_names_what_it_cannot_find(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    store = TrackStore(tmp_path)
    store.create_track(Track(id="tr", title="t", goal="g", status=TrackStatus.READY,
                             tickets=[Ticket(id="T1", title="one")]))
    store.append_output(store.ticket_output("tr", "T1", 4), "QA says pass\n")
    store.close()
    out = io.StringIO()
    assert cli.cmd_output(tmp_path, "tr", "T1", 4, out=out) == 0 and out.getvalue() == "QA says pass\n"
    assert cli.cmd_output(tmp_path, "tr", "T9", 3) == 2
    assert "has no ticket 'T9'" in capsys.readouterr().err
    for bad in ("nope", "../tr", "."):
        assert cli.cmd_output(tmp_path, bad, "T1", 3) == 2
        assert f"no track {bad!r}" in capsys.readouterr().err
