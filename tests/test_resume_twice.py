"""A second kill that lands after a resume put an interrupted ticket back in the queue, but before it relaunched:
the next start must still continue that ticket's attempt (reconciling its journalled intents), not begin a new one
that redoes the work. Found by the random-kill soak test (1 run in 9 repeated an edit); made deterministic here
with a plain folder (one worker), so the second interrupted ticket waits in the queue while the first runs."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from conductor.config import Config
from conductor.model import Ticket, TicketStatus, Track, TrackStatus
from conductor.providers.scripted import Reply, ScriptedProvider
from conductor.records import TicketUpdated, ticket_update, track_update
from conductor.session import Session
from conductor.store import TrackStore
from tests.test_git_pipeline import writer

TRACK = "20261127-twice"


def _launches(tracks: Path, ticket: str) -> list[int]:
    """The attempt number of each launch of `ticket` in the journal (a RUNNING update carries it)."""
    store = TrackStore(tracks)
    try:
        return [r.fields.attempts for r in store.journal(TRACK).records()
                if isinstance(r, TicketUpdated) and r.ticket_id == ticket and r.fields.status == TicketStatus.RUNNING
                and r.fields.attempts is not None]
    finally:
        store.close()


def test_a_second_kill_before_the_resumed_ticket_relaunches_still_continues_its_attempt(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "README.md").write_text("# p\n")  # not a repository: one worker at a time
    tracks = tmp_path / "tracks"
    store = TrackStore(tracks)
    journal = store.create_track(Track(id=TRACK, title="Twice", goal="g", status=TrackStatus.READY,
                                       workspace=str(ws), tickets=[Ticket(id="X", title="x", target_files=["x.txt"]),
                                                                   Ticket(id="Y", title="y", target_files=["y.txt"])]))
    journal.append(track_update(status="running"))
    for tid in ("X", "Y"):  # the first kill: both attempts were running (an earlier run had two workers)
        journal.append(ticket_update(tid, status="running", attempts=1))
    store.close()

    provider = ScriptedProvider({(3, "X"): writer("x.txt", {1: "x\n", 2: "x again\n"}),
                                 (3, "Y"): writer("y.txt", {1: "y\n", 2: "y again\n"}),
                                 4: [Reply(text='{"verdict":"pass","hint":""}')] * 8})
    first = Session(Config(), workspace=ws, tracks_dir=tracks, provider=provider, linger=True)
    asked = threading.Event()
    first.broker.on_requested.append(lambda req: asked.set())  # the relaunched ticket waits on its write
    image = tmp_path / "image"
    try:
        first.load_track(TRACK)
        first.run_track(TRACK)
        assert asked.wait(30), "the relaunched attempt never asked for its write"
        # everything the engine acknowledged is durable: a copy now is what a kill -9 at this moment leaves
        shutil.copytree(tracks, image)
    finally:
        first.shutdown()
    # the hand-written RUNNING update counts as each ticket's first launch; the one relaunched has a second
    (waiting,) = [tid for tid in ("X", "Y") if _launches(image, tid) == [1]]

    second = Session(Config(), workspace=ws, tracks_dir=image, provider=provider, linger=False)
    second.broker.auto_approve({"tool"})
    try:
        second.load_track(TRACK)
        second.run_track(TRACK).join(60)
        assert second.store.load_track(TRACK).track.ticket(waiting).status == TicketStatus.DONE
    finally:
        second.shutdown()
    assert _launches(image, waiting) == [1, 1], "the waiting ticket began a new attempt instead of continuing its own"
