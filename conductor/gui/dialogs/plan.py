"""Plan review: Tier 1's tracks, each editable (title, goal, scope, acceptance criteria), droppable, plus new
ones; approve sends exactly the tracks that are kept."""

from __future__ import annotations

from typing import Any

import dearpygui.dearpygui as dpg

from conductor.app import split_lines
from conductor.approval_payloads import PlanPayload
from conductor.approvals import ApprovalRequest
from conductor.gui import tags
from conductor.gui.dialogs.base import ApprovalDialog, label
from conductor.gui.theme import DIM
from conductor.gui.util import safe
from conductor.model import TrackSpec


class PlanDialog(ApprovalDialog[PlanPayload]):
    kind = "plan"
    tag = tags.PLAN_DIALOG
    title = "Plan review"
    approve_label = "Approve plan"
    size = (920, 640)

    def payload_type(self) -> type[PlanPayload]:
        return PlanPayload

    def first_field(self) -> str | None:
        return tags.plan_field(0, "title")

    def heading(self, req: ApprovalRequest) -> str:
        n = len(self.typed(req).tracks)
        return f"Tier 1 proposes {n} track{'s' if n != 1 else ''}"

    def new_draft(self, req: ApprovalRequest) -> dict[str, Any]:
        p = self.typed(req)
        tracks = [{"title": t.title, "goal": t.goal, "scope": t.scope, "criteria": "\n".join(t.acceptance_criteria),
                   "drop": False} for t in p.tracks]
        return {"epic": p.epic, "tracks": tracks}

    def fill(self, req: ApprovalRequest, draft: dict[str, Any]) -> None:
        label("Epic")
        dpg.add_text(draft["epic"], wrap=0)
        dpg.add_spacer(height=4)
        for i, track in enumerate(draft["tracks"]):
            self._track(i, track)
        dpg.add_button(label="+ Add track", tag=tags.PLAN_ADD, callback=safe(self._add))

    def _track(self, i: int, track: dict[str, Any]) -> None:
        cb = safe(self._edited)
        with dpg.collapsing_header(label=f"Track {i + 1}: {track['title'] or '(untitled)'}", default_open=True):
            with dpg.group(horizontal=True):
                dpg.add_text("Title", color=DIM)
                dpg.add_input_text(tag=tags.plan_field(i, "title"), default_value=track["title"], width=-120,
                                   user_data=(i, "title"), callback=cb)
                dpg.add_checkbox(label="Drop", tag=tags.plan_field(i, "drop"), default_value=track["drop"],
                                 user_data=(i, "drop"), callback=cb)
            label("Goal")
            dpg.add_input_text(tag=tags.plan_field(i, "goal"), default_value=track["goal"], multiline=True,
                               height=48, width=-1, user_data=(i, "goal"), callback=cb)
            label("Scope")
            dpg.add_input_text(tag=tags.plan_field(i, "scope"), default_value=track["scope"], width=-1,
                               user_data=(i, "scope"), callback=cb)
            label("Acceptance criteria (one per line)")
            dpg.add_input_text(tag=tags.plan_field(i, "criteria"), default_value=track["criteria"], multiline=True,
                               height=60, width=-1, user_data=(i, "criteria"), callback=cb)

    def _edited(self, _sender: object, value: Any, where: tuple[int, str]) -> None:
        i, name = where
        if self.request is not None:
            self.drafts[self.request.id]["tracks"][i][name] = value

    def _add(self, *_: object) -> None:
        if self.request is None:
            return
        self.drafts[self.request.id]["tracks"].append({"title": "", "goal": "", "scope": "", "criteria": "",
                                                       "drop": False})
        self.open(self.request)

    def save_draft(self) -> None:
        if self.request is None or self.request.id not in self.drafts:
            return
        for i, track in enumerate(self.drafts[self.request.id]["tracks"]):
            for name in ("title", "goal", "scope", "criteria", "drop"):
                tag = tags.plan_field(i, name)
                if dpg.does_item_exist(tag):
                    track[name] = dpg.get_value(tag)

    def payload(self, req: ApprovalRequest, draft: dict[str, Any]) -> PlanPayload:
        kept = [t for t in draft["tracks"] if not t["drop"]]
        if not kept:
            raise ValueError("Keep at least one track, or reject the plan.")
        for n, t in enumerate(kept, 1):
            if not t["title"].strip() or not t["goal"].strip():
                raise ValueError(f"Track {n} needs a title and a goal.")
        return PlanPayload(epic=draft["epic"], tracks=tuple(
            TrackSpec(title=t["title"].strip(), goal=t["goal"].strip(), scope=t["scope"].strip(),
                      acceptance_criteria=split_lines(t["criteria"])) for t in kept))
