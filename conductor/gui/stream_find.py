"""The find bar over the stream panes: type to find in every pane in sight (Tier 1, Tier 2, the selected Tier 3
tab, Tier 4); Next/Previous step through the matches, scroll the pane to each and show its line, so the
match can be read even where a text widget cannot highlight a word."""

from __future__ import annotations

from collections.abc import Callable

import dearpygui.dearpygui as dpg

from conductor.app import AppController
from conductor.app.stream_search import MAX_MATCHES, StreamMatch, find_in_streams
from conductor.gui import tags
from conductor.gui.theme import DIM
from conductor.gui.util import safe

PANE_ORDER = ("tier1", "tier2", "tier3", "tier4")

FIND_BAR_H = 30
"""Height the bar takes from the stream grid."""


def pane_label(key: str) -> str:
    """'Tier 1', 'Tier 3 · all', 'Tier 3 · T2'."""
    tier, _, rest = key.partition(":")
    name = f"Tier {tier.removeprefix('tier')}"
    if not rest:
        return name
    return f"{name} · {rest.rsplit('/', 1)[-1]}"


class StreamFind:
    def __init__(self, controller: AppController, visible: Callable[[], set[str]],
                 scroll_of: Callable[[str], str | None]) -> None:
        self.c = controller
        self.visible = visible
        """The keys of the panes in sight now."""
        self.scroll_of = scroll_of
        """A pane key → its scrolling child window's tag."""
        self.matches: list[StreamMatch] = []
        self.index = -1

    def build(self, parent: int | str) -> None:
        with dpg.group(horizontal=True, parent=parent):
            dpg.add_input_text(tag=tags.STREAM_FIND, hint="Find in streams  (Ctrl+F)", width=240,
                               callback=safe(lambda *_: self.search(0)))
            dpg.add_button(label="Prev", tag=tags.STREAM_FIND_PREV, small=True, callback=safe(lambda *_: self.step(-1)))
            dpg.add_button(label="Next", tag=tags.STREAM_FIND_NEXT, small=True, callback=safe(lambda *_: self.step(1)))
            dpg.add_text("", tag=tags.STREAM_FIND_RESULT, color=DIM)

    def _panes(self) -> list[tuple[str, str]]:
        shown = self.visible()
        keys = sorted(shown, key=lambda k: (PANE_ORDER.index(k.split(":")[0]) if k.split(":")[0] in PANE_ORDER
                                            else len(PANE_ORDER), k))
        return [(k, self.c.streams.text(k)) for k in keys]

    def search(self, step: int) -> None:
        """Find again (the panes keep growing) and go to the match `step` away from the current one."""
        query = dpg.get_value(tags.STREAM_FIND) or ""
        current = self.matches[self.index] if 0 <= self.index < len(self.matches) else None
        self.matches = find_in_streams(self._panes(), query)
        if not self.matches:
            self.index = -1
            dpg.set_value(tags.STREAM_FIND_RESULT, "no match in the panes in sight" if query.strip() else "")
            return
        if step == 0 or current is None:
            self.index = 0 if step >= 0 else len(self.matches) - 1
        else:
            at = next((i for i, m in enumerate(self.matches)
                       if (m.key, m.line_no, m.column) == (current.key, current.line_no, current.column)), 0)
            self.index = (at + step) % len(self.matches)
        self._show(self.matches[self.index])

    def step(self, direction: int) -> None:
        self.search(direction)

    def _show(self, m: StreamMatch) -> None:
        more = "+" if len(self.matches) >= MAX_MATCHES else ""
        dpg.set_value(tags.STREAM_FIND_RESULT, f"{self.index + 1}/{len(self.matches)}{more} · {pane_label(m.key)}"
                                               f" · line {m.line_no + 1}: {m.context()}")
        scroll = self.scroll_of(m.key)
        if scroll is not None and dpg.does_item_exist(scroll):
            # The pane wraps lines, so the line's share of the text is where it sits, near enough to read.
            top = dpg.get_y_scroll_max(scroll) * (m.line_no / max(1, m.lines - 1))
            dpg.set_y_scroll(scroll, max(0.0, top - 40))

    def focus(self) -> None:
        dpg.focus_item(tags.STREAM_FIND)
