"""Drive the real app in-process, frame by frame, as a user would: click, type, read values, answer
approvals through their dialogs, wait for conditions by rendering frames (never by sleeping), screenshot.

    app = GuiApp(controller, render=display_available()).build()
    pilot = Pilot(app)
    pilot.type(tags.EPIC_INPUT, "Add OAuth login"); pilot.click(tags.PLAN_BUTTON)
    req = pilot.wait_for_approval("plan")
    pilot.type(tags.plan_field(0, "title"), "OAuth login"); pilot.approve("plan")

Clicks call the item's callback with its user data, exactly as Dear PyGui's callback queue would; a
disabled or hidden item refuses the click (a user could not click it either).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dearpygui.dearpygui as dpg

from conductor.approval_payloads import ApprovalPayload
from conductor.approvals import ApprovalRequest
from conductor.gui import keymap, tags, util
from conductor.gui.dialogs.manager import AnyDialog
from conductor.gui.keyboard import active_field, typing_now
from conductor.gui.loop import GuiApp


class PilotError(AssertionError):
    pass


class Pilot:
    def __init__(self, app: GuiApp) -> None:
        self.app = app
        util.STRICT = True  # a callback that raises fails the test instead of becoming a banner

    @property
    def controller(self) -> Any:
        return self.app.c

    # ---------------- frames and waiting

    def frame(self, n: int = 1) -> None:
        for _ in range(n):
            self.app.frame()

    def wait_until(self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
        """Render frames until `predicate()` is truthy; returns its value. Fails with the app's state."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise PilotError(f"timed out after {timeout}s waiting for {what or predicate!r}\n{self.describe()}")
            self.frame()

    def describe(self) -> str:
        c = self.controller
        rows = ", ".join(f"{r.id}={r.status}" for r in c.ticket_rows())
        pending = ", ".join(f"{r.kind.value}:{r.id}" for r in c.pending.values())
        last = "\n  ".join(e.line() for e in list(c.log)[-8:])
        return (f"  status: {c.status_text()}\n  tickets: {rows or '-'}\n  pending: {pending or '-'}\n"
                f"  banner: {c.banner}\n  last log:\n  {last}")

    # ---------------- widgets

    def _usable(self, tag: str) -> None:
        if not dpg.does_item_exist(tag):
            raise PilotError(f"no widget {tag!r}")
        cfg = dpg.get_item_configuration(tag)
        if not cfg.get("enabled", True):
            raise PilotError(f"widget {tag!r} is disabled")
        if not cfg.get("show", True):
            raise PilotError(f"widget {tag!r} is hidden")

    def _fire(self, tag: str, app_data: Any) -> None:
        callback = dpg.get_item_callback(tag)
        if callback is None:
            raise PilotError(f"widget {tag!r} has no callback")
        callback(tag, app_data, dpg.get_item_user_data(tag))

    def click(self, tag: str) -> None:
        """Click a button (or toggle a checkbox) and render a frame."""
        self._usable(tag)
        if dpg.get_item_type(tag).endswith("mvCheckbox"):
            value = not dpg.get_value(tag)
            dpg.set_value(tag, value)
            if dpg.get_item_callback(tag) is not None:  # a checkbox read on save needs no callback
                self._fire(tag, value)
        else:
            self._fire(tag, None)
        self.frame()

    def type(self, tag: str, text: Any) -> None:
        """Set a widget's value and fire its callback (as typing, or choosing a combo item, would)."""
        self._usable(tag)
        dpg.set_value(tag, text)
        if dpg.get_item_callback(tag) is not None:
            self._fire(tag, text)
        self.frame()

    select = type

    def select_tab(self, tab_bar: str, tab: str) -> None:
        """Bring a tab to the front (as clicking its header would)."""
        self._usable(tab)
        dpg.set_value(tab_bar, tab)
        self.frame(2)

    def value(self, tag: str) -> Any:
        if not dpg.does_item_exist(tag):
            raise PilotError(f"no widget {tag!r}")
        return dpg.get_value(tag)

    def label(self, tag: str) -> str:
        return dpg.get_item_label(tag) or ""

    def shown(self, tag: str) -> bool:
        return dpg.does_item_exist(tag) and bool(dpg.get_item_configuration(tag).get("show", True))

    def enabled(self, tag: str) -> bool:
        return bool(dpg.get_item_configuration(tag).get("enabled", True))

    # ---------------- approvals, through their dialogs

    def pending(self, kind: str | None = None) -> list[ApprovalRequest]:
        found: list[ApprovalRequest] = self.controller.pending_list(kind)
        return found

    def wait_for_approval(self, kind: str, timeout: float = 10.0) -> ApprovalRequest:
        def first() -> ApprovalRequest | None:
            found = self.pending(kind)
            return found[0] if found else None
        req = self.wait_until(first, timeout, f"a {kind} approval")
        assert isinstance(req, ApprovalRequest)
        return req

    def open_approval(self, kind: str, id: str | None = None) -> AnyDialog:
        """Open the dialog of the given (or oldest) pending approval of `kind` by clicking its queue entry."""
        req = self.wait_for_approval(kind) if id is None else self.controller.pending[id]
        cur = self.app.dialogs.current()
        if cur is None or cur.request is None or cur.request.id != req.id:
            self.click(tags.approval_item(req.id))
        dialog = self.app.dialogs.current()
        if dialog is None or dialog.kind != kind or dialog.request is None or dialog.request.id != req.id:
            raise PilotError(f"the {kind} dialog did not open for {req.id}")
        return dialog

    def approve(self, kind: str, id: str | None = None, payload: ApprovalPayload | None = None) -> str | None:
        """Approve through the dialog (replacing its draft with `payload` first, when given). Returns the
        dialog's error line ('' when it closed), so a test can assert a refusal."""
        dialog = self.open_approval(kind, id)
        if payload is not None:
            dialog.load(payload)
        self.click(tags.dialog_part(dialog.tag, "approve"))
        return "" if not dialog.is_open else self.value(tags.dialog_part(dialog.tag, "error"))

    def reject(self, kind: str, reason: str, id: str | None = None) -> str | None:
        dialog = self.open_approval(kind, id)
        dpg.set_value(tags.dialog_part(dialog.tag, "reason"), reason)  # typed, not yet sent with Enter
        self.click(tags.dialog_part(dialog.tag, "reject"))
        return "" if not dialog.is_open else self.value(tags.dialog_part(dialog.tag, "error"))

    # ---------------- the keyboard

    def press(self, keys: str) -> str | None:
        """Press a chord ('Ctrl+Enter', 'A', 'Escape'). With a window it is a real key event (xdotool), so
        ImGui sees it too (Escape leaves a text field, a letter types into one); headless the chord goes to
        the key handler with the focus state as it is. Returns the action that ran, or None."""
        chord = keymap.chord(keys)
        self.frame(2)  # a person reacts a frame or more after what they see
        self.app.keys.last_action = None
        if self.app.render:
            self.xkeys(_xdotool_name(chord))
            return self.app.keys.last_action
        action = self.app.keys.press(chord)
        self.frame(2)
        return action

    def focused(self) -> str:
        """The tag of the widget that has keyboard focus: the text field being typed in, else the focused
        widget ('' when none)."""
        item = active_field() or dpg.get_focused_item()
        return str(dpg.get_item_alias(item) or item) if item else ""

    def type_here(self, text: str, enter: bool = False) -> str:
        """Type into the field that has the keyboard (fails when none does), replacing its text, then press
        Enter when asked. With a window this is real typing (xdotool: an active field keeps its own edit
        buffer, so only key events reach it); headless the value is set and the callback fired. Returns the
        field's tag."""
        self.frame()
        if not typing_now():
            raise PilotError(f"no text field has the keyboard (focus: {self.focused() or 'none'})")
        tag = self.focused()
        if self.app.render:
            self.xkeys("ctrl+a")
            subprocess.run(["/usr/bin/xdotool", "type", "--delay", "4", text], check=True, timeout=30)
            self.wait_until(lambda: dpg.get_value(tag) == text, what=f"{text!r} typed into {tag}")
            if enter:
                self.xkeys("Return")
            return tag
        dpg.set_value(tag, text)
        cfg = dpg.get_item_configuration(tag)
        callback = dpg.get_item_callback(tag)
        if callback is not None and (enter or not cfg.get("on_enter", False)):
            self._fire(tag, text)
        self.frame()
        return tag

    def xkeys(self, *keys: str) -> None:
        """Real key events through the X server (xdotool), e.g. xkeys('ctrl+Return', 'a'): the path a person's
        keyboard takes, handler registry included. Needs a shown viewport under X."""
        if not self.app.render:
            raise PilotError("real key events need a shown viewport (run under xvfb-run)")
        subprocess.run(["/usr/bin/xdotool", "key", "--delay", "30", *keys], check=True, timeout=10)
        # ImGui trickles input: one press or release of a key per frame, so allow a frame per event.
        self.frame(3 + 2 * sum(len(k.split("+")) for k in keys))

    # ---------------- screenshots (needs a shown viewport)

    def screenshot(self, path: str | Path, timeout: float = 10.0) -> Path:
        """Write the framebuffer to a PNG. output_frame_buffer is asynchronous: render until the file is there."""
        if not self.app.render:
            raise PilotError("screenshots need a shown viewport (run under xvfb-run)")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        self.frame(2)  # the buffer holds the frame before the latest set_value: render the current state first
        dpg.output_frame_buffer(file=str(path))
        self.wait_until(lambda: path.exists() and path.stat().st_size > 0, timeout, f"screenshot {path.name}")
        self.frame()
        return path


_XDOTOOL_KEYS = {"Enter": "Return", "Plus": "equal", "Minus": "minus", "Comma": "comma", "Space": "space",
                 "PageUp": "Prior", "PageDown": "Next"}


def _xdotool_name(chord: keymap.Chord) -> str:
    key = _XDOTOOL_KEYS.get(chord.key, chord.key.lower() if len(chord.key) == 1 else chord.key)
    return "+".join([*(["ctrl"] if chord.ctrl else []), *(["shift"] if chord.shift else []), key])
