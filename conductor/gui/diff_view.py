"""The diff window: one ticket's commit, or the track's changes so far, file by file and coloured (added lines
green, deleted red, hunk headers blue, context dim). The diff was computed off this thread (a DiffReady event);
this only draws it. A big diff is cut at `MAX_LINES` drawn lines with a marker saying how much is left out, a
patch git's output cap cut says so, and a binary file is named as binary.

Also `colour_unified`, which draws a unified-diff string (a tool approval's preview) the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import dearpygui.dearpygui as dpg

from conductor import redact
from conductor.app import AppController
from conductor.git.diffs import MAX_PATCH_BYTES, Diff, DiffLine, FileDiff
from conductor.git_events import DiffReady, TicketDiffOf
from conductor.gui import tags
from conductor.gui.hidpi import px
from conductor.gui.theme import ACCENT, DIM, ERROR, OK, WARNING, Themes
from conductor.gui.util import centre, safe

SIZE = (980, 700)
MAX_LINES = 4000
"""Diff lines drawn at most (each is a widget); the rest is counted in a marker."""
_COLOURS = {"add": OK, "delete": ERROR, "context": DIM, "note": WARNING}
_SIGN = {"add": "+", "delete": "-", "context": " ", "note": "\\"}


def line_text(line: DiffLine) -> str:
    return f"{_SIGN[line.kind]}{redact.text(line.text)}"


def file_label(f: FileDiff) -> str:
    name = f"{f.old_path} → {f.path}" if f.old_path else f.path
    counts = "binary" if f.binary else f"+{f.added} -{f.deleted}"
    return f"{f.status:<9} {name}   {counts}"


COMPACT_THEME = "diff_compact_theme"


def compact(item: int | str) -> None:
    """Diff lines sit close together, as in a terminal (the default item spacing doubles their height)."""
    if not dpg.does_item_exist(COMPACT_THEME):
        with dpg.theme(tag=COMPACT_THEME), dpg.theme_component(dpg.mvAll):
            dpg.add_theme_style(dpg.mvStyleVar_ItemSpacing, 8, 1, category=dpg.mvThemeCat_Core)
    dpg.bind_item_theme(item, COMPACT_THEME)


def colour_unified(parent: int | str, text: str, themes: Themes, max_lines: int = 600) -> int:
    """Draw a unified diff (as difflib or git print it) into `parent`, one coloured line per row. Returns the
    number of lines left out."""
    lines = text.splitlines()
    for line in lines[:max_lines]:
        if line.startswith(("+++", "---", "@@")):
            colour = ACCENT
        elif line.startswith("+"):
            colour = OK
        elif line.startswith("-"):
            colour = ERROR
        elif line.startswith("[..."):
            colour = WARNING
        else:
            colour = DIM
        item = dpg.add_text(redact.text(line) or " ", parent=parent, color=colour)
        themes.mono(item)
    left = max(len(lines) - max_lines, 0)
    if left:
        dpg.add_text(f"[… {left} more diff lines not shown here …]", parent=parent, color=WARNING)
    return left


class DiffWindow:
    def __init__(self, controller: AppController, themes: Themes, *,
                 on_rewind: Callable[[str], None] | None = None) -> None:
        self.c = controller
        self.themes = themes
        self.on_rewind = on_rewind
        self.shown: DiffReady | None = None
        self.lines_drawn = 0
        self.lines_left = 0

    def build(self) -> None:
        with dpg.window(tag=tags.DIFF_WINDOW, label="Diff", show=False, no_collapse=True, width=SIZE[0],
                        height=SIZE[1], no_saved_settings=True):
            dpg.add_text("", tag=tags.DIFF_TITLE, color=ACCENT, wrap=0)
            dpg.add_text("", tag=tags.DIFF_NOTE, color=WARNING, wrap=0)
            compact(dpg.add_child_window(tag=tags.DIFF_BODY, border=True, height=-px(40), horizontal_scrollbar=True))
            dpg.add_button(label="Close  [Esc]", tag=tags.DIFF_CLOSE, width=px(140),
                           callback=safe(lambda *_: self.close()))

    def open_waiting(self, what: str) -> None:
        self.shown = None
        dpg.set_value(tags.DIFF_TITLE, f"Diff of {what}")
        dpg.set_value(tags.DIFF_NOTE, "computing (git runs in the background)…")
        dpg.delete_item(tags.DIFF_BODY, children_only=True)
        centre(tags.DIFF_WINDOW, *SIZE)
        dpg.configure_item(tags.DIFF_WINDOW, show=True)
        dpg.focus_item(tags.DIFF_WINDOW)

    def close(self) -> None:
        dpg.configure_item(tags.DIFF_WINDOW, show=False)

    @property
    def is_open(self) -> bool:
        return bool(dpg.is_item_shown(tags.DIFF_WINDOW))

    def refresh(self) -> None:
        ev = self.c.diff
        if ev is None or ev is self.shown or not self.is_open:
            return
        self.shown = ev
        self._draw(ev)

    def _draw(self, ev: DiffReady) -> None:
        dpg.set_value(tags.DIFF_TITLE, ev.title)
        body = tags.DIFF_BODY
        dpg.delete_item(body, children_only=True)
        self.lines_drawn = self.lines_left = 0
        if ev.diff is None:
            dpg.set_value(tags.DIFF_NOTE, ev.error or "no diff")
            return
        diff = ev.diff
        notes = [f"{len(diff.files)} file{'s' if len(diff.files) != 1 else ''} changed, "
                 f"+{sum(f.added for f in diff.files)} -{sum(f.deleted for f in diff.files)}"]
        if diff.truncated:
            notes.append(f"the patch is larger than {MAX_PATCH_BYTES // 1_000_000} MB: it was cut, and the files "
                         "after the cut are listed without their lines")
        dpg.set_value(tags.DIFF_NOTE, " · ".join(notes))
        if isinstance(ev.subject, TicketDiffOf) and len(ev.attempts) > 1 and self.on_rewind is not None:
            with dpg.group(horizontal=True, parent=body):
                dpg.add_text(f"attempts with a commit: {', '.join(str(a) for a in ev.attempts)}", color=DIM)
                dpg.add_button(label="Rewind to an earlier attempt…", small=True, user_data=ev.subject.ticket_id,
                               callback=safe(lambda _s, _a, tid: self.on_rewind(tid) if self.on_rewind else None))
        if not diff.files:
            dpg.add_text("(no changes)", parent=body, color=DIM)
        self._files(diff, body)

    def _files(self, diff: Diff, body: int | str) -> None:
        budget = MAX_LINES
        for i, f in enumerate(diff.files):
            with dpg.collapsing_header(label=file_label(f), parent=body, default_open=True, tag=tags.diff_file(i)):
                if f.binary:
                    dpg.add_text("binary file: its contents are not shown", color=WARNING)
                    continue
                if not f.hunks:
                    why = ("not shown: the patch was cut before this file" if diff.truncated else
                           "no line changes (a rename, a mode change or an empty file)")
                    dpg.add_text(why, color=DIM)
                    continue
                for h in f.hunks:
                    if budget <= 0:
                        self.lines_left += len(h.lines)
                        continue
                    self.themes.mono(dpg.add_text(h.header, color=ACCENT))
                    for n, line in enumerate(h.lines):
                        if budget <= 0:
                            self.lines_left += len(h.lines) - n
                            break
                        item = dpg.add_text(line_text(line) or " ", color=_COLOURS[line.kind],
                                            tag=tags.diff_line(i, self.lines_drawn))
                        self.themes.mono(item)
                        self.lines_drawn += 1
                        budget -= 1
        if self.lines_left:
            dpg.add_text(f"[… diff truncated here: {self.lines_left} more lines are not shown; see them with "
                         "`git diff` on the track branch …]", parent=body, color=WARNING)
