"""What every approval dialog shares: one window per kind, a coloured kind badge, the provenance line, a body
the kind fills in, and a footer with the error line, a reject reason, Reject and Approve.

A dialog never guesses which request it answers: it holds the request it was opened for and resolves
exactly that id. Drafts are kept per request id, so switching between queued approvals loses no edit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import dearpygui.dearpygui as dpg

from conductor.approval_payloads import ApprovalPayload, PlanPayload, SpawnPayload, TicketsPayload, ToolPayload
from conductor.approvals import ApprovalRequest
from conductor.errors import ApprovalError
from conductor.gui import tags
from conductor.gui.hidpi import px
from conductor.gui.keymap import shortcut_hint
from conductor.gui.theme import DIM, ERROR, KIND_COLOURS, KIND_LABELS, Themes
from conductor.gui.util import centre, clear, safe

FOOTER_H = 96
"""Error line, reason + buttons row and the shortcut line under the body."""

if TYPE_CHECKING:
    from conductor.app import AppController


PayloadT = TypeVar("PayloadT", PlanPayload, TicketsPayload, SpawnPayload, ToolPayload)


class ApprovalDialog(Generic[PayloadT]):
    """The dialog of one approval kind: it reads and returns that kind's payload type (`payload_type`)."""

    kind = ""
    tag = ""
    title = ""
    approve_label = "Approve"
    size = (900, 620)

    def __init__(self, controller: AppController, themes: Themes) -> None:
        self.c = controller
        self.themes = themes
        self.request: ApprovalRequest | None = None
        self.drafts: dict[str, Any] = {}
        self.on_closed: list[Any] = []
        self.on_approved: list[Callable[[PayloadT], None]] = []
        """Called with the payload as approved (edits included)."""

    def part(self, name: str) -> str:
        return tags.dialog_part(self.tag, name)

    # ---------------- skeleton

    def build(self) -> None:
        with dpg.window(tag=self.tag, label=self.title, show=False, no_collapse=True, width=self.size[0],
                        height=self.size[1], on_close=safe(self._closed_by_user), no_saved_settings=True):
            with dpg.group(horizontal=True):
                badge = dpg.add_button(label=f" {KIND_LABELS[self.kind]} ", tag=self.part("kind"))
                dpg.bind_item_theme(badge, self.themes.kind[self.kind])
                heading = dpg.add_text("", tag=self.part("heading"), color=KIND_COLOURS[self.kind])
                self.themes.big(heading)
            dpg.add_text("", tag=self.part("prov"), color=DIM)
            dpg.add_separator()
            dpg.add_child_window(tag=self.part("body"), border=False, height=-px(FOOTER_H))
            dpg.add_separator()
            dpg.add_text("", tag=self.part("error"), color=ERROR, wrap=0)
            with dpg.group(horizontal=True):
                # Enter in the reason field sends the rejection (R puts the cursor there).
                dpg.add_input_text(tag=self.part("reason"), hint="Reason (sent back when you reject; Enter sends)",
                                   width=-px(360), on_enter=True, callback=safe(self._reject))
                reject = dpg.add_button(label="Reject  [R]", tag=self.part("reject"), width=px(110),
                                        callback=safe(self._reject))
                dpg.bind_item_theme(reject, self.themes.danger)
                ok = dpg.add_button(label=f"{self.approve_label}  [A]", tag=self.part("approve"), width=px(230),
                                    callback=safe(self._approve))
                dpg.bind_item_theme(ok, self.themes.approve)
            dpg.add_text(shortcut_hint("approval", self.kind), tag=self.part("keys"), color=DIM, wrap=0)

    # ---------------- opening and closing

    def open(self, req: ApprovalRequest) -> None:
        if self.request is not None and self.request.id != req.id:
            self.save_draft()
        self.request = req
        clear(self.part("body"))
        draft = self.drafts.get(req.id)
        if draft is None:
            draft = self.drafts[req.id] = self.new_draft(req)
        dpg.push_container_stack(self.part("body"))
        try:
            self.fill(req, draft)
        finally:
            dpg.pop_container_stack()
        dpg.set_value(self.part("heading"), self.heading(req))
        dpg.set_value(self.part("prov"), provenance(req))
        dpg.set_value(self.part("error"), "")
        dpg.set_value(self.part("reason"), "")
        centre(self.tag, *self.size)
        dpg.configure_item(self.tag, show=True)
        dpg.focus_item(self.tag)
        self.validate()

    def close(self) -> None:
        if self.request is not None:
            self.drafts.pop(self.request.id, None)
        self.request = None
        dpg.configure_item(self.tag, show=False)

    @property
    def is_open(self) -> bool:
        return self.request is not None

    def dismiss(self) -> None:
        """Hide without answering (as the window's close box does): the request stays in the queue."""
        dpg.configure_item(self.tag, show=False)
        self._closed_by_user()

    def _closed_by_user(self, *_: object) -> None:
        """The window's own close box: hide it; the request stays in the queue (snoozed, not answered)."""
        req = self.request
        self.save_draft()
        self.request = None
        for cb in self.on_closed:
            cb(req, False)

    def show_error(self, message: str) -> None:
        dpg.set_value(self.part("error"), message)

    # ---------------- deciding

    def approve(self) -> None:
        self._approve()

    def _approve(self, *_: object) -> None:
        req = self.request
        if req is None:
            return
        self.save_draft()
        try:
            payload = self.payload(req, self.drafts[req.id])
        except ValueError as exc:
            self.show_error(str(exc))
            return
        err = self.c.approve(req.id, payload, remember=self.remember())
        self._decided(req, err)
        if not err:
            for cb in self.on_approved:
                cb(payload)

    def _reject(self, *_: object) -> None:
        req = self.request
        if req is None:
            return
        self._decided(req, self.c.reject(req.id, dpg.get_value(self.part("reason")) or ""))

    def _decided(self, req: ApprovalRequest, err: str | None) -> None:
        """After approve or reject: show the problem and stay open, or close and tell the listeners."""
        if err:
            self.show_error(err)
            return
        self.close()
        for cb in self.on_closed:
            cb(req, True)

    # ---------------- what each kind provides

    def heading(self, req: ApprovalRequest) -> str:
        return req.title

    def new_draft(self, req: ApprovalRequest) -> Any:
        raise NotImplementedError

    def fill(self, req: ApprovalRequest, draft: Any) -> None:
        """Build the body widgets from the draft (inside the body container)."""
        raise NotImplementedError

    def save_draft(self) -> None:
        """Copy the widgets' values into the current draft (callbacks keep it current; this is a backstop)."""

    def typed(self, req: ApprovalRequest) -> PayloadT:
        """The request's payload as this dialog's kind (the manager opens each request in its kind's dialog)."""
        p = req.payload
        if not isinstance(p, self.payload_type()):
            raise ApprovalError(f"approval {req.id} is a {p.kind} approval, not a {self.kind} one")
        return p

    def payload_type(self) -> type[PayloadT]:
        raise NotImplementedError

    def payload(self, req: ApprovalRequest, draft: Any) -> PayloadT:
        """The payload to approve; raise ValueError naming the problem when the draft is not acceptable."""
        raise NotImplementedError

    def remember(self) -> bool:
        return False

    def first_field(self) -> str | None:
        """The field E (edit) puts the cursor in."""
        return None

    def validate(self) -> None:
        """Live validation (ticket review disables Approve while the DAG is invalid)."""

    def load(self, payload: ApprovalPayload) -> None:
        """Replace the draft with `payload` (of this dialog's kind) and rebuild the body (the pilot's
        approve(payload=...))."""
        req = self.request
        assert req is not None, "no request open"
        edited = req.model_copy(update={"payload": payload})
        self.typed(edited)  # another kind's payload is refused here, naming both kinds
        self.drafts[req.id] = self.new_draft(edited)
        self.open(req)


def provenance(req: ApprovalRequest) -> str:
    p = req.prov
    parts = [f"request {req.id}"]
    if p.track_id:
        parts.append(f"track {p.track_id}")
    if p.ticket_id:
        parts.append(f"ticket {p.ticket_id}")
    if p.tier:
        parts.append(f"tier {p.tier}")
    if p.attempt:
        parts.append(f"attempt {p.attempt}")
    return "   ·   ".join(parts)


def label(text: str) -> None:
    dpg.add_text(text, color=DIM)
