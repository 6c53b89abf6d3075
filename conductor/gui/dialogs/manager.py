"""Which approval dialog is showing. Pending approvals queue up in the left panel; one dialog is open at a
time, for exactly one request. When none is open the oldest un-snoozed request opens by itself, so several
arriving at once are answered one after another and none is lost. Closing a dialog with its close box
snoozes that request (it stays in the queue; click it to reopen)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias, assert_never

import dearpygui.dearpygui as dpg

from conductor.approval_payloads import PlanPayload, SpawnPayload, TicketsPayload, ToolPayload
from conductor.approvals import ApprovalRequest
from conductor.gui.dialogs.plan import PlanDialog
from conductor.gui.dialogs.spawn import SpawnDialog
from conductor.gui.dialogs.tickets import TicketsDialog
from conductor.gui.dialogs.tool import ToolDialog
from conductor.gui.theme import Themes

if TYPE_CHECKING:
    from conductor.app import AppController

AnyDialog: TypeAlias = PlanDialog | TicketsDialog | SpawnDialog | ToolDialog


class DialogManager:
    def __init__(self, controller: AppController, themes: Themes) -> None:
        self.c = controller
        self.plan = PlanDialog(controller, themes)
        self.tickets = TicketsDialog(controller, themes)
        self.spawn = SpawnDialog(controller, themes)
        self.tool = ToolDialog(controller, themes)
        self.by_kind: dict[str, AnyDialog] = {d.kind: d for d in (self.plan, self.tickets, self.spawn, self.tool)}
        self.auto_open = True
        self.snoozed: set[str] = set()
        self.blocked = False
        """True while a modal (settings, confirm close) is up: approvals wait in the queue."""

    def build(self) -> None:
        for d in self.by_kind.values():
            d.build()
            d.on_closed.append(self._closed)

    def current(self) -> AnyDialog | None:
        for d in self.by_kind.values():
            if d.is_open:
                return d
        return None

    def dialog_for(self, req: ApprovalRequest) -> AnyDialog:
        match req.payload:
            case PlanPayload():
                return self.plan
            case TicketsPayload():
                return self.tickets
            case SpawnPayload():
                return self.spawn
            case ToolPayload():
                return self.tool
            case _:
                assert_never(req.payload)

    def open(self, request_id: str) -> AnyDialog:
        """Open the dialog of this request's kind (closing another kind's dialog, keeping its draft)."""
        req = self.c.pending.get(request_id)
        if req is None:
            raise KeyError(f"no pending approval {request_id!r}")
        self.snoozed.discard(request_id)
        dialog = self.dialog_for(req)
        cur = self.current()
        if cur is not None and cur is not dialog:
            cur.save_draft()
            cur.request = None
            dpg.configure_item(cur.tag, show=False)
        dialog.open(req)
        return dialog

    def _closed(self, req: ApprovalRequest | None, decided: bool) -> None:
        if req is not None and not decided:
            self.snoozed.add(req.id)

    def refresh(self) -> None:
        """Close a dialog whose request was decided elsewhere (cancelled, timed out); auto-open the next."""
        cur = self.current()
        if cur is not None and cur.request is not None and cur.request.id not in self.c.pending:
            cur.close()
            cur = None
        self.snoozed &= set(self.c.pending)
        if cur is None and self.auto_open and not self.blocked:
            for req in list(self.c.pending.values()):
                if req.id not in self.snoozed:
                    try:
                        self.open(req.id)
                    except Exception:
                        self.snoozed.add(req.id)  # shown once as an error, not retried every frame
                        raise
                    break
