"""The end-of-run summary window: shown when a track's run finishes (tickets, files changed, commands, checks,
cost, duration; with git, the track branch: commits and files against its base). It does not block anything;
Esc or Close hides it. With git it offers the track's changes so far and "Merge into base…", which asks first."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dearpygui.dearpygui as dpg

from conductor.app.run_summary import RunSummary
from conductor.gui import tags
from conductor.gui.hidpi import px
from conductor.gui.theme import ACCENT, ERROR, OK, Themes
from conductor.gui.util import centre, safe

if TYPE_CHECKING:
    from conductor.app import AppController
    from conductor.gui.git_ui import GitUi

SIZE = (680, 360)


class SummaryDialog:
    def __init__(self, themes: Themes, controller: AppController | None = None, git: GitUi | None = None) -> None:
        self.themes = themes
        self.c = controller
        self.git = git
        self.last: RunSummary | None = None
        self._git_seen = -1

    def build(self) -> None:
        with dpg.window(tag=tags.RUN_SUMMARY, label="Run finished", show=False, no_collapse=True,
                        width=SIZE[0], height=SIZE[1], no_saved_settings=True):
            heading = dpg.add_text("", tag=tags.RUN_SUMMARY_HEADING, color=ACCENT, wrap=0)  # a long title wraps
            self.themes.big(heading)
            with dpg.child_window(border=False, height=-px(40)):
                dpg.add_text("", tag=tags.RUN_SUMMARY_TEXT, wrap=0)
            with dpg.group(horizontal=True):
                dpg.add_button(label="Close  [Esc]", tag=tags.RUN_SUMMARY_CLOSE, width=px(140),
                               callback=safe(lambda *_: self.close()))
                if self.git is not None:
                    git = self.git
                    dpg.add_button(label="Changes so far", tag=tags.RUN_SUMMARY_DIFF, width=px(160), show=False,
                                   callback=safe(lambda *_: git.track_diff()))
                    dpg.add_button(label="Merge into base…", tag=tags.RUN_SUMMARY_MERGE, width=px(180), show=False,
                                   callback=safe(lambda *_: git.merge_base()))

    def open(self, summary: RunSummary) -> None:
        self.last = summary
        self._git_seen = -1
        first = summary.lines()[0]
        dpg.set_value(tags.RUN_SUMMARY_HEADING, first)
        failed = summary.counts.get("failed", 0) + summary.counts.get("blocked", 0)
        dpg.configure_item(tags.RUN_SUMMARY_HEADING, color=ERROR if failed else OK)
        self._text()
        centre(tags.RUN_SUMMARY, *SIZE)
        dpg.configure_item(tags.RUN_SUMMARY, show=True)

    def _text(self) -> None:
        if self.last is None:
            return
        rest = self.last.lines()[1:]
        has_git = False
        if self.c is not None:
            found = self.c.git_summaries.get(self.last.track_id)
            if found is not None:
                rest += RunSummary.git_lines(found.summary, found.error)
                has_git = found.summary is not None
        dpg.set_value(tags.RUN_SUMMARY_TEXT, "\n".join(rest))
        if self.git is not None:
            for tag in (tags.RUN_SUMMARY_DIFF, tags.RUN_SUMMARY_MERGE):
                dpg.configure_item(tag, show=has_git)

    def refresh(self) -> None:
        """The git summary arrives after the run's end (computed off this thread): add it when it does."""
        if self.c is None or self.last is None or self._git_seen == self.c.versions["git"]:
            return
        self._git_seen = self.c.versions["git"]
        if dpg.is_item_shown(tags.RUN_SUMMARY):
            self._text()

    def close(self) -> None:
        dpg.configure_item(tags.RUN_SUMMARY, show=False)
