"""The questions Conductor asks before it changes a branch or creates a repository: revert a merged ticket
(naming the tickets that depend on it), rewind a ticket to an earlier attempt, merge the finished track into its
base (showing the diff stat; refused, with the files, when the base moved in a conflicting way), and `git init`
a plain folder. One modal dialog; nothing happens until the person presses the button that says what happens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import dearpygui.dearpygui as dpg

from conductor.app import AppController
from conductor.git.base_merge import BaseMergePlan
from conductor.git_events import GitInitOffered
from conductor.gui import tags
from conductor.gui.hidpi import px
from conductor.gui.theme import ERROR, Themes
from conductor.gui.util import centre, safe
from conductor.model import TicketStatus

SIZE = (720, 460)


@dataclass(frozen=True)
class RevertAsk:
    ticket_id: str
    kind: Literal["revert"] = "revert"


@dataclass(frozen=True)
class RewindAsk:
    ticket_id: str
    kind: Literal["rewind"] = "rewind"


@dataclass(frozen=True)
class MergeBaseAsk:
    kind: Literal["merge_base"] = "merge_base"


@dataclass(frozen=True)
class GitInitAsk:
    offer: GitInitOffered
    kind: Literal["git_init"] = "git_init"


Question = RevertAsk | RewindAsk | MergeBaseAsk | GitInitAsk


class GitConfirmDialog:
    def __init__(self, controller: AppController, themes: Themes) -> None:
        self.c = controller
        self.themes = themes
        self.question: Question | None = None
        self.plan: BaseMergePlan | None = None
        self._plan_seen: object = None
        self._offer_seen: object = None

    def build(self) -> None:
        with dpg.window(tag=tags.GIT_CONFIRM, label="Confirm", modal=True, show=False, no_collapse=True,
                        width=SIZE[0], height=SIZE[1], no_saved_settings=True, on_close=safe(self._closed_by_box)):
            dpg.add_text("", tag=tags.GIT_CONFIRM_HEADING, wrap=0)
            dpg.add_combo([], tag=tags.GIT_CONFIRM_CHOICE, width=px(260), show=False, callback=safe(self._chosen))
            with dpg.child_window(border=True, height=-px(70)):
                dpg.add_text("", tag=tags.GIT_CONFIRM_TEXT, wrap=0)
            dpg.add_text("", tag=tags.GIT_CONFIRM_ERROR, color=ERROR, wrap=0)
            with dpg.group(horizontal=True):
                b = dpg.add_button(label="Yes", tag=tags.GIT_CONFIRM_YES, width=px(300), callback=safe(self._yes))
                dpg.bind_item_theme(b, self.themes.danger)
                dpg.add_button(label="No, keep it as it is  [Esc]", tag=tags.GIT_CONFIRM_NO, width=px(300),
                               callback=safe(self._no))

    @property
    def is_open(self) -> bool:
        return bool(dpg.is_item_shown(tags.GIT_CONFIRM))

    # ---------------- opening

    def ask(self, question: Question) -> None:
        self.question = question
        dpg.set_value(tags.GIT_CONFIRM_ERROR, "")
        dpg.configure_item(tags.GIT_CONFIRM_CHOICE, show=False)
        match question:
            case RevertAsk(ticket_id=tid):
                done = self.c.active_ticket_ids({TicketStatus.DONE})
                self._choice(done, tid)
                self._revert_text(tid)
            case RewindAsk(ticket_id=tid):
                self._rewind_text(tid)
            case MergeBaseAsk():
                self.plan = None
                self._plan_seen = None
                self._fill("Merge into base", "Reading what the merge would change (git runs in the background)…",
                           "", yes=None)
                self.c.plan_base_merge()
            case GitInitAsk(offer=offer):
                self._offer_seen = offer
                files = "the files could not be counted" if offer.files < 0 else (
                    f"{offer.files} file{'s' if offer.files != 1 else ''} (what .gitignore leaves)")
                self._fill("Initialise a git repository?", (
                    f"{offer.workspace}: {offer.reason}.\n\n"
                    f"Yes: Conductor runs `git init` there and makes a first commit of {files}, so each track gets "
                    "its own branch, each ticket its own worktree and commit, and every change can be reviewed and "
                    "undone.\n\nNo: the track runs ONE worker at a time in the folder itself, with no branch, no "
                    "per-ticket commit and no undo."), "", yes="Yes, initialise a repository")
                dpg.configure_item(tags.GIT_CONFIRM_NO, label="No, run one worker in the folder  [Esc]")
        centre(tags.GIT_CONFIRM, *SIZE)
        dpg.configure_item(tags.GIT_CONFIRM, show=True)

    def _choice(self, items: list[str], value: str) -> None:
        dpg.configure_item(tags.GIT_CONFIRM_CHOICE, items=items, show=bool(items))
        dpg.set_value(tags.GIT_CONFIRM_CHOICE, value)

    def _fill(self, heading: str, text: str, error: str, *, yes: str | None) -> None:
        dpg.set_value(tags.GIT_CONFIRM_HEADING, heading)
        dpg.set_value(tags.GIT_CONFIRM_TEXT, text)
        dpg.set_value(tags.GIT_CONFIRM_ERROR, error)
        dpg.configure_item(tags.GIT_CONFIRM_YES, label=yes or "Yes", enabled=yes is not None, show=yes is not None)
        dpg.configure_item(tags.GIT_CONFIRM_NO, label="No, keep it as it is  [Esc]")

    def _revert_text(self, tid: str) -> None:
        if not tid:
            self._fill("Revert a merged ticket", "No ticket of this track is merged (done): nothing to revert.", "",
                       yes=None)
            return
        deps = self.c.dependents(tid)
        named = (f"These tickets depend on {tid} and keep their own work, which may rely on it: {', '.join(deps)}."
                 if deps else f"No ticket depends on {tid}.")
        self._fill(f"Revert ticket {tid}?", (
            f"A revert commit on the track branch undoes {tid}'s merge (nothing is deleted: the ticket's commit "
            f"stays on its own branch, and retry runs it again).\n\n{named}"), "", yes=f"Revert {tid}")

    def _rewind_text(self, tid: str) -> None:
        track = self.c.tracks.get(self.c.active_track or "")
        attempts = track.ticket(tid).attempts if track is not None and track.find(tid) else 0
        earlier = [str(a) for a in range(1, attempts)]
        dpg.configure_item(tags.GIT_CONFIRM_CHOICE, items=earlier, show=bool(earlier))
        if earlier:
            dpg.set_value(tags.GIT_CONFIRM_CHOICE, earlier[-1])
        if not earlier:
            self._fill(f"Rewind {tid}", f"{tid} has had no earlier attempt to go back to.", "", yes=None)
            return
        self._fill(f"Rewind ticket {tid} to an earlier attempt?", (
            f"Choose the attempt above. Its commit becomes {tid}'s work on the track branch: if {tid} is merged now, "
            "a revert commit undoes that merge first, then the chosen attempt's commit is merged (a conflict shows as "
            "'needs merge'). Later attempts keep their branches."), "", yes=f"Rewind {tid}")

    def _chosen(self, _s: object, value: str, _u: object) -> None:
        match self.question:
            case RevertAsk():
                self.question = RevertAsk(value)
                self._revert_text(value)
            case _:
                pass

    # ---------------- per frame: the merge plan and the git init offer arrive as events

    def refresh(self) -> None:
        offer = self.c.git_init_offer
        if offer is not None and offer is not self._offer_seen and not self.is_open:
            self.ask(GitInitAsk(offer))
        planned = self.c.base_plan
        if not isinstance(self.question, MergeBaseAsk) or planned is None or planned is self._plan_seen:
            return
        self._plan_seen = planned
        if planned.plan is None:
            self._fill("Merge into base", "", planned.error or "the merge cannot be planned", yes=None)
            return
        plan = self.plan = planned.plan
        stat = "\n".join(plan.stat_lines()) if plan.stat else "(no file changes)"
        where = (f"\n\nYour checkout {plan.checked_out_at} has {plan.base_branch} checked out: it is fast-forwarded "
                 "to the merge (git keeps your uncommitted changes, and refuses if the merge would overwrite one)."
                 if plan.checked_out_at else "")
        target = plan.base_branch or "(no branch)"
        text = (f"Merge {plan.track_branch} ({plan.track_tip[:12]}) into {target} ({plan.base_sha[:12] or '?'}) "
                f"with a merge commit. Nothing is pushed.{where}\n\nDiff stat:\n{stat}")
        if plan.conflicts:
            text += "\n\nConflicting files:\n" + "\n".join(plan.conflicts)
        self._fill(f"Merge {plan.track_branch} into {target}?", text,
                   f"Cannot merge: {plan.refused}" if plan.refused else "",
                   yes=None if plan.refused else f"Merge into {target}")

    # ---------------- answers

    def _yes(self, *_: object) -> None:
        err: str | None = None
        match self.question:
            case RevertAsk(ticket_id=tid):
                err = self.c.revert_ticket(tid)
            case RewindAsk(ticket_id=tid):
                choice = dpg.get_value(tags.GIT_CONFIRM_CHOICE)
                err = self.c.rewind_ticket(tid, int(choice)) if choice else "choose an attempt first"
            case MergeBaseAsk():
                err = self.c.merge_into_base(self.plan) if self.plan is not None else "the plan is not ready yet"
            case GitInitAsk():
                err = self.c.answer_git_init(True)
            case None:
                err = None
        if err:
            dpg.set_value(tags.GIT_CONFIRM_ERROR, err)
            return
        self._hide()

    def _no(self, *_: object) -> None:
        if isinstance(self.question, GitInitAsk):
            self.c.answer_git_init(False)
        self._hide()

    def _hide(self) -> None:
        self.question = None
        dpg.configure_item(tags.GIT_CONFIRM, show=False)

    def _closed_by_box(self, *_: object) -> None:
        dpg.configure_item(tags.GIT_CONFIRM, show=True)
        self._no()


__all__ = ["GitConfirmDialog", "GitInitAsk", "MergeBaseAsk", "Question", "RevertAsk", "RewindAsk"]
