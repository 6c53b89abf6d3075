"""Spawn approval (step mode): the exact prompt, model and context files one worker will start with, editable,
before the call is made."""

from __future__ import annotations

from typing import Any

import dearpygui.dearpygui as dpg

from conductor.app import split_lines
from conductor.app.context_budget import WARN_SHARE, context_budget
from conductor.app.cost_estimate import SentSizes
from conductor.approval_payloads import SpawnPayload
from conductor.approvals import ApprovalRequest
from conductor.gui import tags
from conductor.gui.dialogs.base import ApprovalDialog, label
from conductor.gui.hidpi import px
from conductor.gui.theme import DIM, ERROR, WARNING
from conductor.gui.util import safe


class SpawnDialog(ApprovalDialog[SpawnPayload]):
    kind = "spawn"
    tag = tags.SPAWN_DIALOG
    title = "Spawn approval"
    approve_label = "Approve and start worker"
    size = (940, 680)

    def payload_type(self) -> type[SpawnPayload]:
        return SpawnPayload

    def first_field(self) -> str | None:
        return tags.SPAWN_PROMPT

    def heading(self, req: ApprovalRequest) -> str:
        p = self.typed(req)
        return f"Start a worker on {p.ticket_id} (attempt {p.attempt})"

    def new_draft(self, req: ApprovalRequest) -> dict[str, Any]:
        p = self.typed(req)
        return {"model": p.model, "prompt": p.prompt, "context": "\n".join(p.context_files)}

    def fill(self, req: ApprovalRequest, draft: dict[str, Any]) -> None:
        models = self.c.offered_models()
        if draft["model"] and draft["model"] not in models:
            models = [draft["model"], *models]
        with dpg.group(horizontal=True):
            label("Model")
            dpg.add_combo(models, tag=tags.SPAWN_MODEL, default_value=draft["model"], width=px(300),
                          user_data="model", callback=safe(self._edited))
        label("Context files (one per line)")
        dpg.add_input_text(tag=tags.SPAWN_CONTEXT, default_value=draft["context"], multiline=True, height=56,
                           width=-1, user_data="context", callback=safe(self._edited))
        if source := self.typed(req).context_source:  # with git: the track branch the worktree starts from
            dpg.add_text(f"The prompt's files were read from {source}", wrap=0, color=DIM)
        dpg.add_text("", tag=tags.SPAWN_FILES, wrap=0, color=DIM)
        dpg.add_text("", tag=tags.SPAWN_BUDGET, wrap=0)
        label("Prompt (exactly what the worker receives; edit freely)")
        prompt = dpg.add_input_text(tag=tags.SPAWN_PROMPT, default_value=draft["prompt"], multiline=True,
                                    height=300, width=-1, user_data="prompt", callback=safe(self._edited))
        self.themes.mono(prompt)
        with dpg.collapsing_header(label="System instruction (read-only)", default_open=False):
            system = dpg.add_input_text(tag=tags.SPAWN_SYSTEM, default_value=self.typed(req).system,
                                        multiline=True, readonly=True, height=140, width=-1)
            self.themes.mono(system)

    def _edited(self, _sender: object, value: Any, name: str) -> None:
        if self.request is not None:
            self.drafts[self.request.id][name] = value
            self.validate()

    def validate(self) -> None:
        """The context files with their sizes, and the first request against the model's window, as edited."""
        if self.request is None or self.request.id not in self.drafts or not dpg.does_item_exist(tags.SPAWN_BUDGET):
            return
        draft = self.drafts[self.request.id]
        p = self.typed(self.request)
        est = self.c.cost_estimator()
        if p.context_chars:  # measured where the prompt's files were read (the track branch, with git)
            est = SentSizes(est, dict(p.context_chars))
        budget = context_budget(est, draft["model"], draft["prompt"], p.system, split_lines(draft["context"]))
        dpg.set_value(tags.SPAWN_FILES, "Context: " + budget.files_line())
        dpg.set_value(tags.SPAWN_BUDGET, budget.summary(draft["model"]))
        share = budget.share
        dpg.configure_item(tags.SPAWN_BUDGET, color=ERROR if budget.too_big else
                           WARNING if share is not None and share > WARN_SHARE else DIM)

    def save_draft(self) -> None:
        if self.request is None or self.request.id not in self.drafts:
            return
        draft = self.drafts[self.request.id]
        for name, tag in (("model", tags.SPAWN_MODEL), ("prompt", tags.SPAWN_PROMPT), ("context", tags.SPAWN_CONTEXT)):
            if dpg.does_item_exist(tag):
                draft[name] = dpg.get_value(tag)

    def payload(self, req: ApprovalRequest, draft: dict[str, Any]) -> SpawnPayload:
        if not draft["prompt"].strip():
            raise ValueError("The prompt is empty: the worker needs instructions.")
        return self.typed(req).model_copy(update={"model": draft["model"], "prompt": draft["prompt"],
                                                  "context_files": tuple(split_lines(draft["context"]))})
