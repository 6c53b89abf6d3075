"""The two small dialogs that are not approvals: confirm closing while approvals wait, and edit one ticket of
a track (refused locally, naming the ids, when the edit would break the graph)."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import dearpygui.dearpygui as dpg

from conductor import dag
from conductor.app import AppController, split_ids, split_lines
from conductor.gui import tags
from conductor.gui.hidpi import px
from conductor.gui.theme import DIM, ERROR, WARNING, Themes
from conductor.gui.util import centre, safe


class ConfirmCloseDialog:
    def __init__(self, controller: AppController, themes: Themes, on_quit: Callable[[], None]) -> None:
        self.c = controller
        self.themes = themes
        self.on_quit = on_quit

    def build(self) -> None:
        with dpg.window(tag=tags.CONFIRM_CLOSE, label="Close Conductor?", modal=True, show=False, no_collapse=True,
                        width=520, height=170, no_saved_settings=True):
            dpg.add_text("", tag=tags.CONFIRM_CLOSE_TEXT, wrap=0, color=WARNING)
            dpg.add_text("Plan and ticket reviews come back when you reopen; spawn and tool approvals are asked "
                         "again when the run resumes. Running work is cancelled and saved.", wrap=0, color=DIM)
            with dpg.group(horizontal=True):
                b = dpg.add_button(label="Close anyway", tag=tags.CONFIRM_CLOSE_YES, width=px(160),
                                   callback=safe(self._yes))
                dpg.bind_item_theme(b, self.themes.danger)
                dpg.add_button(label="Keep working", tag=tags.CONFIRM_CLOSE_NO, width=px(160), callback=safe(self._no))

    def open(self) -> None:
        n = len(self.c.pending)
        dpg.set_value(tags.CONFIRM_CLOSE_TEXT, f"{n} approval{'s are' if n != 1 else ' is'} still waiting for you.")
        centre(tags.CONFIRM_CLOSE, 520, 170)
        dpg.configure_item(tags.CONFIRM_CLOSE, show=True)

    def _yes(self, *_: object) -> None:
        dpg.configure_item(tags.CONFIRM_CLOSE, show=False)
        self.on_quit()

    def _no(self, *_: object) -> None:
        dpg.configure_item(tags.CONFIRM_CLOSE, show=False)


EDIT_FIELDS = ("title", "description", "deps", "files", "criteria", "step")


class EditTicketDialog:
    def __init__(self, controller: AppController, themes: Themes) -> None:
        self.c = controller
        self.themes = themes
        self.ticket_id: str | None = None
        self.drafts: dict[str, dict[str, Any]] = {}
        """Unsaved edits by '<track>/<ticket>': Cancel (or closing the app) keeps them for the next open."""

    def build(self) -> None:
        with dpg.window(tag=tags.EDIT_TICKET, label="Edit ticket", modal=True, show=False, no_collapse=True,
                        width=720, height=520, no_saved_settings=True, on_close=safe(self._closed_by_box)):
            dpg.add_text("", tag="edit_ticket_heading")
            dpg.add_text("", tag=tags.EDIT_TICKET_NOTE, color=WARNING)
            # The fields scroll; the error line and the buttons stay pinned at the bottom, always in view.
            with dpg.child_window(border=False, height=-px(64)):
                for name, text, multi in (("title", "Title", False), ("description", "Description", True),
                                          ("deps", "Depends on (ids, comma separated)", False),
                                          ("files", "Target files (comma separated)", False),
                                          ("criteria", "Acceptance criteria (one per line)", True)):
                    dpg.add_text(text, color=DIM)
                    dpg.add_input_text(tag=tags.edit_field(name), width=-1, multiline=multi,
                                       height=px(80) if multi else 0)
                dpg.add_checkbox(label="Step mode (approve its spawn)", tag=tags.edit_field("step"))
            dpg.add_text("", tag=tags.EDIT_TICKET_ERROR, color=ERROR, wrap=0)
            with dpg.group(horizontal=True):
                dpg.add_button(label="Save", tag=tags.EDIT_TICKET_SAVE, width=px(120), callback=safe(self._save))
                dpg.add_button(label="Cancel", tag=tags.EDIT_TICKET_CANCEL, width=px(120), callback=safe(self._cancel))

    def open(self, ticket_id: str) -> None:
        track = self.c.tracks.get(self.c.active_track or "")
        if track is None:
            return
        t = track.ticket(ticket_id)
        self.ticket_id = ticket_id
        dpg.set_value("edit_ticket_heading", f"{ticket_id} · {t.status.value} · track {track.title}")
        values = {"title": t.title, "description": t.description, "deps": ", ".join(t.depends_on),
                  "files": ", ".join(t.target_files), "criteria": "\n".join(t.acceptance_criteria),
                  "step": t.step_mode}
        draft = self.drafts.get(self._key())
        dpg.set_value(tags.EDIT_TICKET_NOTE, "Your unsaved edit is back; Save applies it." if draft else "")
        values.update({k: v for k, v in (draft or {}).items() if k in values})
        for name, value in values.items():
            dpg.set_value(tags.edit_field(name), value)
        dpg.set_value(tags.EDIT_TICKET_ERROR, "")
        centre(tags.EDIT_TICKET, 720, 520)
        dpg.configure_item(tags.EDIT_TICKET, show=True)

    def fields(self) -> dict[str, Any]:
        v = {name: dpg.get_value(tags.edit_field(name)) for name in EDIT_FIELDS}
        return {"title": v["title"].strip(), "description": v["description"], "depends_on": split_ids(v["deps"]),
                "target_files": split_ids(v["files"]), "acceptance_criteria": split_lines(v["criteria"]),
                "step_mode": bool(v["step"])}

    def _save(self, *_: object) -> None:
        track = self.c.tracks.get(self.c.active_track or "")
        if track is None or self.ticket_id is None:
            return
        fields = self.fields()
        if not fields["title"]:
            dpg.set_value(tags.EDIT_TICKET_ERROR, "Not saved: the title is empty.")
            return
        trial = [SimpleNamespace(id=t.id, depends_on=fields["depends_on"] if t.id == self.ticket_id else t.depends_on)
                 for t in track.tickets]
        problems = dag.problems(trial)
        if problems:
            dpg.set_value(tags.EDIT_TICKET_ERROR, "Not saved: " + "; ".join(problems))
            return
        err = self.c.ticket_command("edit", self.ticket_id, fields=fields)
        if err:
            dpg.set_value(tags.EDIT_TICKET_ERROR, err)
            return
        self.drafts.pop(self._key(), None)
        self.ticket_id = None
        dpg.configure_item(tags.EDIT_TICKET, show=False)

    def _cancel(self, *_: object) -> None:
        self.save_draft()
        self.ticket_id = None
        dpg.configure_item(tags.EDIT_TICKET, show=False)

    def _closed_by_box(self, *_: object) -> None:
        # The window is already hidden when its close box fires: keep the edit from the widgets directly.
        dpg.configure_item(tags.EDIT_TICKET, show=True)
        self._cancel()

    def _key(self) -> str:
        return f"{self.c.active_track}/{self.ticket_id}"

    def save_draft(self) -> None:
        """Keep the open edit (if it differs from the ticket) for the next open, here or after a restart."""
        if self.ticket_id is None or not dpg.is_item_shown(tags.EDIT_TICKET):
            return
        track = self.c.tracks.get(self.c.active_track or "")
        if track is None:
            return
        t = track.ticket(self.ticket_id)
        stored = {"title": t.title, "description": t.description, "deps": ", ".join(t.depends_on),
                  "files": ", ".join(t.target_files), "criteria": "\n".join(t.acceptance_criteria),
                  "step": t.step_mode}
        typed = {name: dpg.get_value(tags.edit_field(name)) for name in EDIT_FIELDS}
        if typed != stored:
            self.drafts[self._key()] = typed
        else:
            self.drafts.pop(self._key(), None)
