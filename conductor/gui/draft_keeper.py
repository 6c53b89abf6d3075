"""Keeps what the person typed: the epic box, review and approval drafts and unsaved ticket edits go to the
drafts file (conductor/app/drafts.py) about once a second and when the app closes, and come back on start.

The GUI thread only builds the snapshot (a few get_value calls and a json.dumps); the file is written on
the store's own thread.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import dearpygui.dearpygui as dpg

from conductor.app.drafts import Drafts, DraftStore
from conductor.gui import tags

if TYPE_CHECKING:
    from conductor.gui.loop import GuiApp

EVERY_S = 1.0
RESTORED_GRACE_S = 60.0
"""A restored draft whose request is not pending yet is kept this long: a planning run re-asks its review
a moment after start (recover)."""


class DraftKeeper:
    def __init__(self, app: GuiApp) -> None:
        self.app = app
        self.store = DraftStore(app.c.session.store.root)
        self.next_at = 0.0
        self.restored: set[str] = set()
        self.grace_until = 0.0

    def restore(self) -> None:
        drafts = self.store.load()
        for problem in self.store.problems:
            self.app.c.fail(problem)
        if drafts.epic and drafts.epic != (dpg.get_value(tags.EPIC_INPUT) or ""):
            dpg.set_value(tags.EPIC_INPUT, drafts.epic)
        for rid, entry in drafts.approvals.items():
            dialog = self.app.dialogs.by_kind.get(str(entry.get("kind", ""))) if isinstance(entry, dict) else None
            if dialog is not None and "draft" in entry:
                dialog.drafts.setdefault(rid, entry["draft"])
                self.restored.add(rid)
        self.app.edit.drafts.update(drafts.edits)
        self.grace_until = time.monotonic() + RESTORED_GRACE_S

    def snapshot(self) -> Drafts:
        cur = self.app.dialogs.current()
        if cur is not None:
            cur.save_draft()
        self.app.edit.save_draft()
        keep = set(self.app.c.pending) | (self.restored if time.monotonic() < self.grace_until else set())
        approvals = {rid: {"kind": d.kind, "draft": draft} for d in self.app.dialogs.by_kind.values()
                     for rid, draft in d.drafts.items() if rid in keep}
        return Drafts(dpg.get_value(tags.EPIC_INPUT) or "", approvals, dict(self.app.edit.drafts))

    def tick(self) -> None:
        now = time.monotonic()
        root = self.app.c.session.store.root
        if root != self.store.path.parent:  # another workspace or tracks folder: its own drafts file
            self.store.submit(self.snapshot())
            for problem in self.store.close():
                self.app.c.fail(problem)
            self.store = DraftStore(root)
            self.restored.clear()
            self.restore()
            return
        if now >= self.next_at:
            self.next_at = now + EVERY_S
            self.store.submit(self.snapshot())

    def close(self) -> list[str]:
        self.store.submit(self.snapshot())
        return self.store.close()
