"""Many workers at once: with more tickets than tab headers can show, a picker chooses the ticket pane; panes in
sight get their text every frame and panes out of sight a few per frame (round robin), so 256 busy streams do
not cost 256 widget updates a frame, and every pane still catches up."""

from __future__ import annotations

from pathlib import Path

from gui_support import app_factory, make_controller, make_session  # noqa: F401

from conductor.events import ticket_stream_id
from conductor.events import Provenance, StreamDelta, TrackLoaded
from conductor.gui import tags
from conductor.gui.streams import HIDDEN_PUSHES_PER_FRAME, MAX_TICKET_TABS
from conductor.model import Ticket, Track, TrackStatus


def test_many_streams_bounded_pushes_a_picker_and_every_pane_catches_up(tmp_path: Path, app_factory) -> None:
    n = MAX_TICKET_TABS + 16
    c = make_controller(make_session(tmp_path))
    p = app_factory(c).pilot
    track = Track(id="big", title="Many workers", goal="load", status=TrackStatus.RUNNING,
                  tickets=[Ticket(id=f"W{i:02d}", title=f"Worker {i}", status="running") for i in range(n)])
    c.events.post(TrackLoaded(prov=Provenance(track_id=track.id), track=track))
    p.wait_until(lambda: c.active_track == "big" and p.shown(tags.TIER3_PICK), what="the ticket picker")
    key = lambda i: ticket_stream_id(3, "big", f"W{i:02d}")  # noqa: E731
    assert [p.shown(tags.tier3_tab(key(i))) for i in range(n)] == [i == 0 for i in range(n)]

    for i in range(n):
        prov = Provenance(track_id="big", ticket_id=f"W{i:02d}", tier=3, attempt=1)
        c.events.post(StreamDelta(prov=prov, stream_id=prov.stream_id, text=f"line from worker {i}\n"))
    p.wait_until(lambda: len(c.streams.text(key(n - 1))) > 0, what="the deltas applied")
    panes = p.app.window.streams.all_panes()
    up_to_date = lambda: sum(panes[key(i)].pushed == c.streams.get(key(i)).version for i in range(n))  # noqa: E731
    first = up_to_date()
    assert first <= 1 + HIDDEN_PUSHES_PER_FRAME, f"{first} ticket panes pushed in one frame"
    p.wait_until(lambda: up_to_date() == n, what="every pane to catch up")
    shown = p.value(tags.pane_text(key(n - 1)))  # under the attempt's header, as in the output file
    assert shown.startswith("\n\n## attempt 1 · ") and shown.endswith(f"\n\nline from worker {n - 1}\n")

    p.select(tags.TIER3_PICK, "W30")
    assert p.shown(tags.tier3_tab(key(30))) and not p.shown(tags.tier3_tab(key(0)))
    assert p.app.window.streams.tier3.visible_key() == key(30)
