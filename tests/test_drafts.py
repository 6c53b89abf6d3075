"""Never lose what the person typed: the drafts file is written off the GUI thread, atomically, the newest
snapshot winning; a damaged file is moved aside and reported, never overwritten; and through the real app,
the epic text, a review draft and an unsaved ticket edit come back after closing and restarting."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from gui_support import app_factory, make_controller, make_session  # noqa: F401

from conductor.app import drafts as drafts_mod
from conductor.app.drafts import DRAFTS_FILE, Drafts, DraftStore, parse_drafts
from conductor.gui import tags


def test_snapshots_are_written_off_the_calling_thread_newest_wins(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    writers: set[str] = set()
    real = drafts_mod.atomic_write_bytes

    def spy(path: Path, data: bytes, mode: int | None = None) -> None:
        writers.add(threading.current_thread().name)
        real(path, data, mode)

    monkeypatch.setattr(drafts_mod, "atomic_write_bytes", spy)
    store = DraftStore(tmp_path)
    for i in range(500):
        store.submit(Drafts(epic=f"epic {i}", approvals={"plan-1": {"kind": "plan", "draft": {"n": i}}}))
    assert store.close() == []
    assert threading.current_thread().name not in writers and writers == {"conductor-drafts"}
    back = DraftStore(tmp_path).load()
    assert back.epic == "epic 499" and back.approvals["plan-1"]["draft"] == {"n": 499}
    assert sorted(p.name for p in tmp_path.iterdir()) == [DRAFTS_FILE], "no temp file left behind"


@pytest.mark.parametrize("content", ["{not json", '{"version": 99}', '{"version": 1, "epic": 3}',
                                     '{"version": 1, "edits": {"t/T1": "x"}}', "\udcff"])
def test_a_damaged_drafts_file_is_moved_aside_and_named(tmp_path: Path, content: str) -> None:
    (tmp_path / DRAFTS_FILE).write_bytes(content.encode("utf-8", "surrogateescape"))
    store = DraftStore(tmp_path)
    assert store.load() == Drafts()
    assert len(store.problems) == 1 and DRAFTS_FILE in store.problems[0]
    aside = [p.name for p in tmp_path.iterdir() if p.name.startswith(f"{DRAFTS_FILE}.damaged-")]
    assert len(aside) == 1 and not (tmp_path / DRAFTS_FILE).exists()
    store.submit(Drafts(epic="new"))
    store.close()
    assert parse_drafts((tmp_path / DRAFTS_FILE).read_text("utf-8"), "x").epic == "new"


def test_a_failed_write_is_reported_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: object, **_k: object) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(drafts_mod, "atomic_write_bytes", boom)
    store = DraftStore(tmp_path)
    store.submit(Drafts(epic="x"))
    problems = store.close()
    assert problems and "No space left" in problems[0]


def test_epic_review_draft_and_ticket_edit_survive_close_and_restart(tmp_path: Path, app_factory) -> None:
    c = make_controller(make_session(tmp_path, auto_run=False))
    h = app_factory(c)
    p = h.pilot
    p.type(tags.EPIC_INPUT, "Add OAuth login, keep the old session cookies")
    p.click(tags.PLAN_BUTTON)
    p.wait_for_approval("plan")
    p.open_approval("plan")
    p.type(tags.plan_field(0, "scope"), "only the backend, typed and not yet sent")
    p.press("Escape")                        # snoozed, not answered
    assert h.close() == []

    c2 = make_controller(make_session(tmp_path, auto_run=False))
    h2 = app_factory(c2)
    p2 = h2.pilot
    c2.recover()
    assert p2.value(tags.EPIC_INPUT) == "Add OAuth login, keep the old session cookies"
    p2.open_approval("plan")
    assert p2.value(tags.plan_field(0, "scope")) == "only the backend, typed and not yet sent"
    assert p2.approve("plan") == ""
    assert p2.value(tags.EPIC_INPUT) == "", "its plan accepted: the epic is no longer a draft"
    p2.wait_for_approval("tickets")
    assert p2.approve("tickets") == ""
    p2.wait_until(lambda: bool(c2.ticket_rows()))
    track = c2.active_track

    p2.click(tags.ticket_action("T2", "edit"))
    p2.type(tags.edit_field("title"), "Design the data model (edited, unsaved)")
    p2.click(tags.EDIT_TICKET_CANCEL)
    p2.click(tags.ticket_action("T2", "edit"))
    assert p2.value(tags.edit_field("title")) == "Design the data model (edited, unsaved)"
    assert "unsaved edit is back" in p2.value(tags.EDIT_TICKET_NOTE)
    p2.click(tags.EDIT_TICKET_CANCEL)
    assert h2.close() == []

    c3 = make_controller(make_session(tmp_path, auto_run=False))
    p3 = app_factory(c3).pilot
    assert p3.value(tags.EPIC_INPUT) == ""
    p3.click(tags.track_load(track))
    p3.wait_until(lambda: bool(c3.ticket_rows()))
    p3.click(tags.ticket_action("T2", "edit"))
    assert p3.value(tags.edit_field("title")) == "Design the data model (edited, unsaved)"
    p3.click(tags.EDIT_TICKET_SAVE)
    p3.wait_until(lambda: c3.tracks[track].ticket("T2").title == "Design the data model (edited, unsaved)")
    assert f"{track}/T2" not in p3.app.edit.drafts, "saved: no longer a draft"
    assert p3.app.drafts.snapshot().edits == {}


def test_switching_tracks_folder_switches_the_drafts_file(tmp_path: Path, app_factory) -> None:
    c = make_controller(make_session(tmp_path / "a", auto_run=False))
    p = app_factory(c).pilot
    p.type(tags.EPIC_INPUT, "typed in workspace a")
    first = c.session.store.root
    assert c.start_demo() is None
    p.wait_until(lambda: p.app.drafts.store.path.parent == c.session.store.root != first)
    assert DraftStore(first).load().epic == "typed in workspace a", "the old folder kept what was typed there"
