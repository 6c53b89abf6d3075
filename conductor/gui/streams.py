"""The stream panes: Tier 1, Tier 2, Tier 3 (an "all" tab plus one tab per ticket) and Tier 4, in a 2 x 2 grid
whose column split the user can drag.

A pane pushes its text to the widget only when its buffer's version changed, so many deltas in one frame
cost one `set_value` per pane. It follows the bottom only if the user was already at the bottom: scrolling
up to read something is never undone by new text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dearpygui.dearpygui as dpg

from conductor.app import AppController, StreamBuffer
from conductor.events import ticket_stream_id
from conductor.gui import tags
from conductor.gui.hidpi import px
from conductor.gui.stream_find import FIND_BAR_H, StreamFind
from conductor.gui.theme import ACCENT, DIM, Themes
from conductor.gui.util import safe

if TYPE_CHECKING:
    from collections.abc import Iterable

BOTTOM_SLACK = 6.0
"""Pixels from the bottom that still count as 'at the bottom'."""

HIDDEN_PUSHES_PER_FRAME = 2
"""Panes out of sight (other tabs) are brought up to date a few per frame, round robin: the visible ones get
their text every frame, and 256 busy workers cost 2 widget updates a frame, not 256 (a pane coming into sight
gets its text in the frame that shows it, so this is only for whoever reads a hidden widget)."""

MAX_TICKET_TABS = 24
"""Above this many tickets one tab header per ticket is unreadable (and costs a frame's time to lay out):
the tab bar then shows 'all' and the ticket chosen in a picker."""


class StreamPane:
    """One scrolling, wrapped, monospaced text region bound to a stream buffer key."""

    def __init__(self, key: str, parent: int | str, themes: Themes, height: int = -1) -> None:
        self.key = key
        self.pushed = -1
        self.scroll = tags.pane_scroll(key)
        self.text = tags.pane_text(key)
        with dpg.child_window(parent=parent, tag=self.scroll, border=False, height=height):
            dpg.add_text("", tag=self.text, wrap=0)
        themes.mono(self.text)

    def refresh(self, buf: StreamBuffer | None) -> bool:
        """Push the buffer's text if it changed. Returns True when it pushed."""
        version = buf.version if buf is not None else 0
        if version == self.pushed:
            return False
        at_bottom = dpg.get_y_scroll_max(self.scroll) - dpg.get_y_scroll(self.scroll) <= BOTTOM_SLACK
        dpg.set_value(self.text, buf.text if buf is not None else "")
        if at_bottom:
            dpg.set_y_scroll(self.scroll, -1.0)  # -1: the bottom of the new content, applied at render
        self.pushed = version
        return True

    def delete(self) -> None:
        if dpg.does_item_exist(self.scroll):
            dpg.delete_item(self.scroll)


class PaneBox:
    """A bordered box: a title, a note saying when only a tail is shown, and the pane(s) below."""

    def __init__(self, key: str, title: str, parent: int | str, themes: Themes) -> None:
        self.key = key
        self.box = tags.pane_box(key)
        self.note = tags.pane_note(key)
        self._note = ""
        with dpg.child_window(parent=parent, tag=self.box, border=True, height=200, no_scrollbar=True):
            with dpg.group(horizontal=True):
                dpg.add_text(title, color=ACCENT)
                dpg.add_text("", tag=self.note, color=DIM)

    def set_note(self, buf: StreamBuffer | None, limit: int) -> None:
        if buf is None or not len(buf):
            note = "· waiting for output"
        elif buf.dropped:
            note = f"· showing the last {limit:,} characters (full text on disk)"
        else:
            note = ""
        if note != self._note:  # remembered here: asking the widget every frame costs more than the check
            self._note = note
            dpg.set_value(self.note, note)


class Tier3Tabs:
    """Tier 3: an "all" tab (every worker, line by line) and one tab per ticket of the active track."""

    def __init__(self, box: PaneBox, themes: Themes) -> None:
        self.themes = themes
        self.panes: dict[str, StreamPane] = {}
        self.track: str | None = None
        self.ids: tuple[str, ...] = ()
        self.chosen: str | None = None
        dpg.add_combo([], tag=tags.TIER3_PICK, parent=box.box, width=px(220), show=False,
                      callback=safe(lambda _s, tid, _u: self.choose(tid)))
        with dpg.tab_bar(parent=box.box, tag=tags.TIER3_TABS):
            with dpg.tab(label="all", tag=tags.tier3_tab("tier3:all")) as tab:
                self.panes["tier3:all"] = StreamPane("tier3:all", tab, themes)

    def choose(self, ticket_id: str) -> None:
        """Show this ticket's tab (the picker, when there are too many tickets for one tab each)."""
        if ticket_id not in self.ids:
            return
        for tid in self.ids:
            dpg.configure_item(tags.tier3_tab(ticket_stream_id(3, self.track, tid)), show=tid == ticket_id)
        self.chosen = ticket_id
        dpg.set_value(tags.TIER3_PICK, ticket_id)
        dpg.set_value(tags.TIER3_TABS, tags.tier3_tab(ticket_stream_id(3, self.track, ticket_id)))

    def visible_key(self) -> str | None:
        """The pane of the selected tab."""
        selected = dpg.get_value(tags.TIER3_TABS)
        if not selected:  # nothing rendered yet (0): the first tab is the one in front
            return "tier3:all"
        alias = dpg.get_item_alias(selected) if isinstance(selected, int) else str(selected)
        for key in self.panes:
            if tags.tier3_tab(key) == alias:
                return key
        return None

    def sync_tabs(self, track_id: str | None, ticket_ids: Iterable[str]) -> None:
        """Rebuild the per-ticket tabs when the active track or its ticket ids change."""
        ids = tuple(ticket_ids)
        if track_id == self.track and ids == self.ids:
            return
        for key in list(self.panes):
            if key != "tier3:all":
                tab = tags.tier3_tab(key)
                if dpg.does_item_exist(tab):
                    dpg.delete_item(tab)
                del self.panes[key]
        many = len(ids) > MAX_TICKET_TABS
        for tid in ids:
            key = ticket_stream_id(3, track_id, tid)
            with dpg.tab(label=tid, parent=tags.TIER3_TABS, tag=tags.tier3_tab(key), show=not many) as tab:
                self.panes[key] = StreamPane(key, tab, self.themes)
        self.track, self.ids = track_id, ids
        dpg.configure_item(tags.TIER3_PICK, items=list(ids), show=many)
        if many:
            self.choose(self.chosen if self.chosen in ids else ids[0])


class StreamsView:
    def __init__(self, controller: AppController, themes: Themes) -> None:
        self.c = controller
        self.themes = themes
        self.boxes: dict[str, PaneBox] = {}
        self.panes: dict[str, StreamPane] = {}
        self.tier3: Tier3Tabs | None = None
        self._tickets_seen: tuple[int, str | None] | None = None
        self._round_robin = 0
        self.find = StreamFind(controller, self.visible_keys,
                               lambda key: p.scroll if (p := self.all_panes().get(key)) is not None else None)

    def build(self, parent: int | str) -> None:
        self.find.build(parent)
        with dpg.table(parent=parent, header_row=False, resizable=True, borders_innerV=False,
                       policy=dpg.mvTable_SizingStretchProp, tag="streams_grid"):
            dpg.add_table_column(init_width_or_weight=0.55)
            dpg.add_table_column(init_width_or_weight=0.45)
            with dpg.table_row() as row1:
                self._simple(row1, "tier1", "Tier 1 · Orchestrator")
                self._simple(row1, "tier2", "Tier 2 · Tech lead")
            with dpg.table_row() as row2:
                self.boxes["tier3"] = PaneBox("tier3", "Tier 3 · Workers", row2, self.themes)
                self.tier3 = Tier3Tabs(self.boxes["tier3"], self.themes)
                self._simple(row2, "tier4", "Tier 4 · QA")

    def _simple(self, parent: int | str, key: str, title: str) -> None:
        self.boxes[key] = box = PaneBox(key, title, parent, self.themes)
        self.panes[key] = StreamPane(key, box.box, self.themes)

    def layout(self, height: float) -> None:
        """Split the available height between the two rows (the top row is planning: a little smaller)."""
        height -= px(FIND_BAR_H)
        top = max(int(height * 0.42), px(90))
        bottom = max(int(height - top - px(8)), px(120))
        for key in ("tier1", "tier2"):
            dpg.configure_item(self.boxes[key].box, height=top)
        for key in ("tier3", "tier4"):
            dpg.configure_item(self.boxes[key].box, height=bottom)

    def visible_keys(self) -> set[str]:
        """The panes a person can see now: none while another main tab is in front."""
        front = dpg.get_value(tags.MAIN_TABS)
        if front and front not in (tags.STREAMS_TAB, dpg.get_alias_id(tags.STREAMS_TAB)):  # 0: none rendered yet,
            return set()  # the first tab (the streams) is the one in front
        keys = set(self.panes)
        if self.tier3 is not None and (key := self.tier3.visible_key()) is not None:
            keys.add(key)
        return keys

    def all_panes(self) -> dict[str, StreamPane]:
        out = dict(self.panes)
        if self.tier3 is not None:
            out.update(self.tier3.panes)
        return out

    def refresh(self) -> int:
        """Sync the ticket tabs, then push each changed pane in sight once, and a few out of sight (round robin).
        Returns how many panes were pushed."""
        c = self.c
        seen = (c.versions["tickets"], c.active_track)
        if self.tier3 is not None and seen != self._tickets_seen:
            self._tickets_seen = seen
            self.tier3.sync_tabs(c.active_track, [r.id for r in c.ticket_rows()])
        panes = self.all_panes()
        visible = self.visible_keys()
        pushed = 0
        for key in visible:
            if (pane := panes.get(key)) is not None:
                pushed += pane.refresh(c.streams.buffers.get(key))
        hidden = [k for k in panes if k not in visible]
        budget = HIDDEN_PUSHES_PER_FRAME
        for i in range(len(hidden)):
            if budget <= 0:
                break
            key = hidden[(self._round_robin + i) % len(hidden)]
            if panes[key].refresh(c.streams.buffers.get(key)):
                pushed += 1
                budget -= 1
        if hidden:
            self._round_robin = (self._round_robin + HIDDEN_PUSHES_PER_FRAME) % len(hidden)
        limit = c.cfg.gui.stream_tail_chars
        for key, box in self.boxes.items():
            buf_key = "tier3:all" if key == "tier3" else key
            box.set_note(c.streams.buffers.get(buf_key), limit)
        return pushed
