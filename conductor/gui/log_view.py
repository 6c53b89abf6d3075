"""The comms / event log: every status change, tool call, approval, usage record, notice and error, with a
filter by tier and by ticket."""

from __future__ import annotations

import dearpygui.dearpygui as dpg

from conductor.app import AppController
from conductor.gui import tags
from conductor.gui.streams import BOTTOM_SLACK
from conductor.gui.theme import DIM, Themes
from conductor.gui.util import safe

ALL_TIERS = "All tiers"
ALL_TICKETS = "All tickets"
TIER_ITEMS = [ALL_TIERS, "Tier 1", "Tier 2", "Tier 3", "Tier 4"]


class LogView:
    def __init__(self, controller: AppController, themes: Themes) -> None:
        self.c = controller
        self.themes = themes
        self.seen: tuple[int, str, str] | None = None
        self.tickets_seen = -1

    def build(self, parent: int | str) -> None:
        with dpg.group(horizontal=True, parent=parent):
            dpg.add_text("Filter:")
            dpg.add_combo(TIER_ITEMS, default_value=ALL_TIERS, tag=tags.LOG_TIER_FILTER, width=120,
                          callback=safe(self._changed))
            dpg.add_combo([ALL_TICKETS], default_value=ALL_TICKETS, tag=tags.LOG_TICKET_FILTER, width=140,
                          callback=safe(self._changed))
            dpg.add_input_text(tag=tags.LOG_SEARCH, hint="Search  (Ctrl+F)", width=220, callback=safe(self._changed))
            dpg.add_text("", tag=tags.LOG_COUNT, color=DIM)
        with dpg.child_window(parent=parent, tag=tags.LOG_SCROLL, border=True, horizontal_scrollbar=True):
            dpg.add_text("", tag=tags.LOG_TEXT)
        self.themes.mono(tags.LOG_TEXT)

    def _changed(self, *_: object) -> None:
        self.seen = None  # re-render on the next refresh

    def filters(self) -> tuple[int | None, str | None]:
        tier_label = dpg.get_value(tags.LOG_TIER_FILTER) or ALL_TIERS
        ticket = dpg.get_value(tags.LOG_TICKET_FILTER) or ALL_TICKETS
        tier = None if tier_label == ALL_TIERS else int(tier_label.split()[-1])
        return tier, None if ticket == ALL_TICKETS else ticket

    def refresh(self) -> None:
        if self.tickets_seen != self.c.versions["tickets"]:
            self.tickets_seen = self.c.versions["tickets"]
            dpg.configure_item(tags.LOG_TICKET_FILTER, items=[ALL_TICKETS, *self.c.ticket_ids()])
        tier, ticket = self.filters()
        search = dpg.get_value(tags.LOG_SEARCH) or ""
        key = (self.c.versions["log"], str(tier), f"{ticket}\0{search}")
        if key == self.seen:
            return
        self.seen = key
        entries = self.c.log_lines(tier, ticket, contains=search)
        at_bottom = dpg.get_y_scroll_max(tags.LOG_SCROLL) - dpg.get_y_scroll(tags.LOG_SCROLL) <= BOTTOM_SLACK
        dpg.set_value(tags.LOG_TEXT, "\n".join(e.line() for e in entries))
        dpg.set_value(tags.LOG_COUNT, f"{len(entries)} entries shown")
        if at_bottom:
            dpg.set_y_scroll(tags.LOG_SCROLL, -1.0)
