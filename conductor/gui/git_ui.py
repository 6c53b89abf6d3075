"""The GUI's git actions in one place, for the ticket table, the summary window and the keyboard: show a
ticket's diff or the track's changes so far, and ask before a revert, a rewind or a merge into the base."""

from __future__ import annotations

import dearpygui.dearpygui as dpg

from conductor.app import AppController
from conductor.git_events import TicketDiffOf, TrackDiffOf
from conductor.gui import tags
from conductor.gui.dialogs.git_actions import GitConfirmDialog, MergeBaseAsk, RevertAsk, RewindAsk
from conductor.gui.diff_view import DiffWindow
from conductor.gui.theme import Themes
from conductor.model import TicketStatus


class GitUi:
    def __init__(self, controller: AppController, themes: Themes) -> None:
        self.c = controller
        self.diff = DiffWindow(controller, themes, on_rewind=self.rewind)
        self.confirm = GitConfirmDialog(controller, themes)

    def build(self) -> None:
        self.diff.build()
        self.confirm.build()

    def refresh(self) -> None:
        self.diff.refresh()
        self.confirm.refresh()

    # -- actions (buttons, palette, keys)

    def ticket_diff(self, ticket_id: str | None = None) -> None:
        tid = ticket_id or self._default_ticket()
        if tid is None:
            self.c.fail("No ticket of the active track has a commit to show yet.")
            return
        self.diff.open_waiting(f"ticket {tid}")
        self.c.show_diff(TicketDiffOf(tid))

    def track_diff(self) -> None:
        self.diff.open_waiting("the track (changes so far)")
        self.c.show_diff(TrackDiffOf())

    def revert(self, ticket_id: str | None = None) -> None:
        done = self.c.active_ticket_ids({TicketStatus.DONE})
        self.confirm.ask(RevertAsk(ticket_id or (done[-1] if done else "")))

    def rewind(self, ticket_id: str | None = None) -> None:
        tid = ticket_id or self._default_ticket()
        if tid is None:
            self.c.fail("No ticket of the active track has an attempt to rewind to.")
            return
        if self.diff.is_open:
            self.diff.close()
        self.confirm.ask(RewindAsk(tid))

    def merge_base(self) -> None:
        self.confirm.ask(MergeBaseAsk())

    def _default_ticket(self) -> str | None:
        """The ticket the keyboard means: the one whose diff is on screen, else the last one that ran."""
        shown = self.diff.shown
        if shown is not None and isinstance(shown.subject, TicketDiffOf) and self.diff.is_open:
            return shown.subject.ticket_id
        track = self.c.tracks.get(self.c.active_track or "")
        if track is None:
            return None
        tried = [t.id for t in track.tickets if t.attempts > 0]
        return tried[-1] if tried else None

    def close_top(self) -> bool:
        """Esc: the confirmation first, then the diff window. True when one was closed."""
        if self.confirm.is_open:
            self.confirm._no()
            return True
        if self.diff.is_open:
            self.diff.close()
            return True
        return False

    @staticmethod
    def modal_open() -> bool:
        return dpg.does_item_exist(tags.GIT_CONFIRM) and bool(dpg.is_item_shown(tags.GIT_CONFIRM))
