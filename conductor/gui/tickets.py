"""The active track's tickets: the DAG as a table (id, title, dependencies, coloured status, attempts, model,
blocked/failed reason) with per-ticket actions: retry, skip, edit, cancel and a model override.

Rows are rebuilt only when the set of tickets changes; a status change updates the cells in place.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import dearpygui.dearpygui as dpg

from conductor.app import AppController, TicketRow
from conductor.gui import tags
from conductor.gui.git_ui import GitUi
from conductor.gui.theme import ACCENT, DIM, Themes, status_colour
from conductor.gui.util import safe, set_if_changed

AUTO_MODEL = "auto (ladder)"
AUTO_PREFIX = "auto: "
RETRYABLE = {"failed", "blocked", "cancelled", "skipped", "needs_merge"}
SKIPPABLE = {"todo", "ready", "failed", "blocked", "cancelled", "needs_merge"}
EDITABLE = {"todo", "ready", "failed", "blocked", "cancelled", "skipped", "done"}
CANCELLABLE = {"running", "review", "awaiting_approval"}
GIT_ACTIONS = (("diff", "Diff"), ("revert", "Revert"), ("rewind", "Rewind"))
GIT_ALLOWED = {"diff": {"todo", "ready", "running", "review", "done", "failed", "blocked", "cancelled", "skipped",
                        "needs_merge", "interrupted", "awaiting_approval"},
               "revert": {"done"},
               "rewind": {"done", "failed", "blocked", "cancelled", "skipped", "needs_merge"}}
"""Per-ticket git actions (when the workspace has git): a diff once an attempt ran, revert when merged, rewind
when there is an earlier attempt."""


class TicketsView:
    def __init__(self, controller: AppController, themes: Themes, on_edit: Callable[[str], None],
                 git: GitUi | None = None) -> None:
        self.c = controller
        self.themes = themes
        self.on_edit = on_edit
        self.git = git
        self.seen = -1
        self.signature: tuple[object, ...] = ()
        self.models_seen = -1
        self.second_seen = -1

    def build(self, parent: int | str) -> None:
        with dpg.group(horizontal=True, parent=parent, tag=tags.TRACK_GIT_BAR):
            dpg.add_text("No track loaded — plan an epic or load a track from the browser.",
                         tag=tags.ACTIVE_TRACK_LABEL, color=ACCENT)
            if self.git is not None:
                git = self.git
                dpg.add_button(label="Changes so far", tag=tags.TRACK_DIFF_BUTTON, small=True, show=False,
                               callback=safe(lambda *_: git.track_diff()))
                dpg.add_button(label="Merge into base…", tag=tags.MERGE_BASE_BUTTON, small=True, show=False,
                               callback=safe(lambda *_: git.merge_base()))
        with dpg.table(parent=parent, tag=tags.TICKET_TABLE, header_row=True, row_background=False,
                       borders_innerH=True, borders_outerH=True, borders_innerV=True, resizable=True,
                       scrollY=True, policy=dpg.mvTable_SizingStretchProp, height=-1,
                       clipper=True):  # only the rows in view are laid out: a 256-ticket track costs what 8 do
            for label, weight in (("ID", 0.45), ("Title", 2.2), ("Deps", 0.7), ("Status", 1.3),
                                  ("Att.", 0.4), ("Time", 0.55), ("Model", 2.4), ("Reason", 1.6), ("Actions", 2.2)):
                dpg.add_table_column(label=label, init_width_or_weight=weight)

    def refresh(self) -> None:
        c = self.c
        now = time.time()  # this (the GUI) thread's clock moves a running ticket's elapsed time, once a second
        if self.seen == c.versions["tickets"] and self.models_seen == c.versions["models"]:
            if int(now) != self.second_seen and c.clocks.ticking(c.active_track or ""):
                self.second_seen = int(now)
                for tid in (r.id for r in c.ticket_rows()):
                    set_if_changed(tags.ticket_cell(tid, "elapsed"), c.ticket_elapsed(tid, now))
            return
        self.seen, self.models_seen = c.versions["tickets"], c.versions["models"]
        self.second_seen = int(now)
        rows = c.ticket_rows()
        self._header(rows)
        signature = (c.active_track, tuple((r.id, r.title, r.depends_on) for r in rows), c.versions["models"])
        if signature != self.signature:
            self._rebuild(rows)
            self.signature = signature
        for row in rows:
            self._update(row)
            set_if_changed(tags.ticket_cell(row.id, "elapsed"), c.ticket_elapsed(row.id, now))

    def _header(self, rows: list[TicketRow]) -> None:
        track = self.c.tracks.get(self.c.active_track or "")
        if track is None:
            return
        done = sum(r.status in ("done", "skipped") for r in rows)
        header = f"{track.title}   ·   {track.status.value}   ·   {done}/{len(rows)} tickets done   ·   {track.id}"
        set_if_changed(tags.ACTIVE_TRACK_LABEL, header)
        if self.git is not None:
            ran = any(r.attempts for r in rows)
            for tag in (tags.TRACK_DIFF_BUTTON, tags.MERGE_BASE_BUTTON):
                if dpg.get_item_configuration(tag)["show"] != ran:
                    dpg.configure_item(tag, show=ran)

    def _rebuild(self, rows: list[TicketRow]) -> None:
        for child in dpg.get_item_children(tags.TICKET_TABLE, 1) or []:
            dpg.delete_item(child)
        models = [AUTO_MODEL, *self.c.offered_models()]
        for row in rows:
            tid = row.id
            with dpg.table_row(parent=tags.TICKET_TABLE):
                dpg.add_text(tid)
                title = dpg.add_text(row.title)  # one line per ticket: long titles are clipped, full in the tooltip
                with dpg.tooltip(title):
                    dpg.add_text(row.title)
                dpg.add_text(", ".join(row.depends_on) or "—", color=DIM)
                dpg.add_text(row.status, tag=tags.ticket_cell(tid, "status"))
                dpg.add_text("", tag=tags.ticket_cell(tid, "attempts"))
                dpg.add_text("—", tag=tags.ticket_cell(tid, "elapsed"), color=DIM)
                combo = dpg.add_combo(models, default_value=model_label(row), width=-1, user_data=tid,
                                      tag=tags.ticket_action(tid, "model"), callback=safe(self._override))
                with dpg.tooltip(combo):  # a narrow column cuts the name: the tooltip shows all of it
                    dpg.add_text(model_label(row), tag=tags.model_tooltip(f"ticket:{tid}"))
                reason = dpg.add_text("", tag=tags.ticket_cell(tid, "reason"), wrap=0, color=DIM)
                with dpg.tooltip(reason):  # a check's whole output can be the reason: the cell shows its first line
                    dpg.add_text("", tag=tags.ticket_cell(tid, "reason_full"), wrap=640)
                with dpg.group(horizontal=True, horizontal_spacing=4):
                    for action, label in (("retry", "Retry"), ("skip", "Skip"), ("edit", "Edit"),
                                          ("cancel", "Cancel"), *GIT_ACTIONS):
                        if action in GIT_ALLOWED and self.git is None:
                            continue
                        b = dpg.add_button(label=label, small=True, tag=tags.ticket_action(tid, action),
                                           user_data=tid, callback=safe(getattr(self, f"_{action}")))
                        if action in ("cancel", "revert"):
                            dpg.bind_item_theme(b, self.themes.danger)

    def _update(self, row: TicketRow) -> None:
        tid = row.id
        status_tag = tags.ticket_cell(tid, "status")
        set_if_changed(status_tag, row.status.replace("_", " "))
        dpg.configure_item(status_tag, color=status_colour(row.status))
        set_if_changed(tags.ticket_cell(tid, "attempts"), str(row.attempts) if row.attempts else "—")
        set_if_changed(tags.ticket_cell(tid, "reason"), reason_line(row.reason))
        set_if_changed(tags.ticket_cell(tid, "reason_full"), row.reason[-REASON_TOOLTIP_CHARS:])
        set_if_changed(tags.ticket_action(tid, "model"), model_label(row))
        set_if_changed(tags.model_tooltip(f"ticket:{tid}"), model_label(row))
        for action, allowed in (("retry", RETRYABLE), ("skip", SKIPPABLE), ("edit", EDITABLE),
                                ("cancel", CANCELLABLE), *GIT_ALLOWED.items()):
            tag = tags.ticket_action(tid, action)
            if not dpg.does_item_exist(tag):
                continue
            show = row.status in allowed and (action != "rewind" or row.attempts > 1) and \
                (action != "diff" or row.attempts > 0)
            if dpg.get_item_configuration(tag)["show"] != show:
                dpg.configure_item(tag, show=show)

    # -- actions (each names the ticket in its error message when refused)

    def _retry(self, _s: object, _a: object, tid: str) -> None:
        self.c.ticket_command("retry", tid)

    def _skip(self, _s: object, _a: object, tid: str) -> None:
        self.c.ticket_command("skip", tid)

    def _cancel(self, _s: object, _a: object, tid: str) -> None:
        self.c.ticket_command("cancel_ticket", tid)

    def _edit(self, _s: object, _a: object, tid: str) -> None:
        self.on_edit(tid)

    def _diff(self, _s: object, _a: object, tid: str) -> None:
        if self.git is not None:
            self.git.ticket_diff(tid)

    def _revert(self, _s: object, _a: object, tid: str) -> None:
        if self.git is not None:
            self.git.revert(tid)  # asks first, naming the tickets that depend on it

    def _rewind(self, _s: object, _a: object, tid: str) -> None:
        if self.git is not None:
            self.git.rewind(tid)

    def _override(self, _s: object, model: str, tid: str) -> None:
        self.c.set_model_override(tid, None if model == AUTO_MODEL or model.startswith(AUTO_PREFIX) else model)


REASON_LINE_CHARS = 200
REASON_TOOLTIP_CHARS = 3000


def reason_line(reason: str) -> str:
    """The cell's text: the reason's first line (a failed check's output follows it; the tooltip has it all)."""
    first, _, rest = reason.strip().partition("\n")
    if len(first) > REASON_LINE_CHARS:
        first = first[:REASON_LINE_CHARS] + "…"
    if rest.strip():  # 'its output ends:' and the output: the tooltip holds it
        first = first.rstrip(":").rstrip() + " (hover for the rest)"
    return first


def model_label(row: TicketRow) -> str:
    """The combo shows the override, else which model the ladder picked (or will pick)."""
    if row.model_override:
        return row.model_override
    return f"{AUTO_PREFIX}{row.model}" if row.model else AUTO_MODEL
