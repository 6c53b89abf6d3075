"""The end-of-run summary window: shown when a track's run finishes (tickets, files changed, commands, cost,
duration). It does not block anything; Esc or Close hides it."""

from __future__ import annotations

import dearpygui.dearpygui as dpg

from conductor.app.run_summary import RunSummary
from conductor.gui import tags
from conductor.gui.theme import ACCENT, ERROR, OK, Themes
from conductor.gui.util import centre, safe

SIZE = (640, 300)


class SummaryDialog:
    def __init__(self, themes: Themes) -> None:
        self.themes = themes
        self.last: RunSummary | None = None

    def build(self) -> None:
        with dpg.window(tag=tags.RUN_SUMMARY, label="Run finished", show=False, no_collapse=True,
                        width=SIZE[0], height=SIZE[1], no_saved_settings=True):
            heading = dpg.add_text("", tag=tags.RUN_SUMMARY_HEADING, color=ACCENT, wrap=0)  # a long title wraps
            self.themes.big(heading)
            with dpg.child_window(border=False, height=-40):
                dpg.add_text("", tag=tags.RUN_SUMMARY_TEXT, wrap=0)
            dpg.add_button(label="Close  [Esc]", tag=tags.RUN_SUMMARY_CLOSE, width=140,
                           callback=safe(lambda *_: self.close()))

    def open(self, summary: RunSummary) -> None:
        self.last = summary
        first, *rest = summary.lines()
        dpg.set_value(tags.RUN_SUMMARY_HEADING, first)
        failed = summary.counts.get("failed", 0) + summary.counts.get("blocked", 0)
        dpg.configure_item(tags.RUN_SUMMARY_HEADING, color=ERROR if failed else OK)
        dpg.set_value(tags.RUN_SUMMARY_TEXT, "\n".join(rest))
        centre(tags.RUN_SUMMARY, *SIZE)
        dpg.configure_item(tags.RUN_SUMMARY, show=True)

    def close(self) -> None:
        dpg.configure_item(tags.RUN_SUMMARY, show=False)
