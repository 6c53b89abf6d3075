"""How long reopening a big track takes: 1,000 tickets and 100,000 journal lines (issue 8: under 1 s).

It writes a track the way a long run would (ticket updates, usage records, model turns, tool results, a
snapshot every 2,000 records as the engine takes them), then times, each in a fresh TrackStore:

  * load with the snapshot (what a restart does: read + verify every line, replay the tail after the snapshot),
  * load without the snapshot (worst case: replay every line through the one `apply`),
  * listing the tracks folder (peek: read-only, nothing repaired),
  * the session's start (the same load plus rebuilding the usage ledger from the journal).

    .venv/bin/python bench/resume.py                       # 1,000 tickets, 100,000 lines
    .venv/bin/python bench/resume.py --lines 20000 --runs 1   # CI smoke

A benchmark, not a test: it prints figures and exits 0 unless something crashes (--check: exit 1 over 1 s).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conductor.config import Config  # noqa: E402
from conductor.model import Ticket, TicketStatus, Track, TrackStatus, Usage  # noqa: E402
from conductor.providers.scripted import ScriptedProvider  # noqa: E402
from conductor.records import (ModelTurn, Record, ToolCallFinished, UsageLogged, apply,  # noqa: E402
                               trusted_ticket_update, track_update)
from conductor.session import Session  # noqa: E402
from conductor.store import TrackStore  # noqa: E402
from conductor.usage import UsageRecord  # noqa: E402

TRACK = "20261127-resume-bench"


def write_track(root: Path, tickets: int, lines: int, seed: int) -> None:
    rnd = random.Random(seed)
    store = TrackStore(root)
    track = Track(id=TRACK, title="resume bench", goal="a long run", status=TrackStatus.READY,
                  tickets=[Ticket(id=f"T{i:04d}", title=f"ticket {i}",
                                  depends_on=[f"T{j:04d}" for j in rnd.sample(range(max(0, i - 50), i), min(i, 2))])
                           for i in range(tickets)])
    journal = store.create_track(track)
    statuses = [TicketStatus.READY, TicketStatus.RUNNING, TicketStatus.REVIEW, TicketStatus.DONE]
    batch: list[Record] = [track_update(status=TrackStatus.RUNNING)]
    written = 1
    while written < lines - 1:
        t = track.tickets[rnd.randrange(tickets)]
        kind = rnd.random()
        rec: Record
        if kind < 0.55:
            rec = trusted_ticket_update(t.id, None, {"status": rnd.choice(statuses), "attempts": rnd.randint(1, 3)})
        elif kind < 0.8:
            key = f"tier3:{TRACK}/{t.id}#{written}"
            rec = UsageLogged(key=key, record=UsageRecord(record_id=key, tier=3, model="gemini-3.5-flash-lite",
                                                        usage=Usage(model="gemini-3.5-flash-lite",
                                                                    prompt_tokens=rnd.randint(100, 9000),
                                                                    output_tokens=rnd.randint(10, 900)),
                                                        track_id=TRACK, ticket_id=t.id, attempt=1))
        elif kind < 0.92:
            rec = ModelTurn(key=f"{TRACK}/{t.id}/1/turn{written}",
                            message={"role": "model", "text": "x" * rnd.randint(20, 400), "tool_calls": []})
        else:
            rec = ToolCallFinished(key=f"{TRACK}/{t.id}/1/c{written}",
                                   result={"call_id": f"c{written}", "name": "read_file", "ok": True,
                                           "output": {"text": "y" * rnd.randint(20, 300)}, "error": None})
        apply(track, rec)
        batch.append(rec)
        written += 1
        if len(batch) >= 500:
            journal.append_many(batch)
            batch = []
            if written % 2000 < 500:
                track.journal_seq = journal.last_seq
                store.save_snapshot(track)
    for t in track.tickets:
        rec = trusted_ticket_update(t.id, None, {"status": TicketStatus.DONE})
        apply(track, rec)
        batch.append(rec)
    journal.append_many(batch)
    store.close()


def timed(fn: object, runs: int) -> float:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tickets", type=int, default=1000)
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "tracks"
        t0 = time.perf_counter()
        write_track(root, args.tickets, args.lines, args.seed)
        size = (root / TRACK / "events.jsonl").stat().st_size
        print(f"resume: {args.tickets} tickets, {args.lines:,} journal lines ({size / 1e6:.1f} MB), written in "
              f"{time.perf_counter() - t0:.1f}s; median of {args.runs} runs, each in a fresh store")

        def load() -> None:
            loaded = TrackStore(root).load_track(TRACK)
            assert loaded.warnings == [] and len(loaded.track.tickets) == args.tickets
            assert all(t.status == TicketStatus.DONE for t in loaded.track.tickets)

        def peek() -> None:
            assert len(TrackStore(root).list_tracks()) == 1

        def session() -> None:
            s = Session(Config(), workspace=Path(tmp), tracks_dir=root, provider=ScriptedProvider())
            s.shutdown()

        with_snapshot = timed(load, args.runs)
        listing = timed(peek, args.runs)
        start = timed(session, args.runs)
        snap = root / TRACK / "track.toml"
        snap.rename(snap.with_suffix(".bench-aside"))
        without = timed(load, args.runs)
        print(f"{'load (snapshot + tail)':<34} {with_snapshot:>7.3f} s")
        print(f"{'load (no snapshot: replay all)':<34} {without:>7.3f} s")
        print(f"{'list the tracks folder (peek)':<34} {listing:>7.3f} s")
        print(f"{'session start (load + ledger)':<34} {start:>7.3f} s")
        ok = with_snapshot < 1.0
        print(f"target (load with snapshot < 1 s): {'MET' if ok else 'MISSED'}")
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    raise SystemExit(main())
