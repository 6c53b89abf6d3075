"""Keyboard: turns real key presses into the actions of the keymap (conductor/gui/keymap.py), and draws the
command palette (Ctrl+P) and the shortcut sheet (F1) from the same table.

One key-press handler listens to every key. Its callback runs on the GUI thread after the frame (manual
callback management) and reads Ctrl/Shift from Dear PyGui's modifier state. Whether the person is typing is
sampled before each frame is rendered as well as after it, so the Escape that ends an edit (ImGui drops the
text field's focus in that same frame) only leaves the field and does not also close the dialog, and a
letter typed into a field is never a shortcut.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import dearpygui.dearpygui as dpg

from conductor.gui import keymap, tags
from conductor.gui.dialogs.tool import ToolDialog
from conductor.gui.hidpi import px
from conductor.gui.keymap import KEYMAP, Binding, Chord
from conductor.gui.theme import ACCENT, DIM
from conductor.gui.util import centre, safe

if TYPE_CHECKING:
    from conductor.gui.loop import GuiApp

_IMGUI_KEY_EQUAL = 602
"""ImGuiKey_Equal (the '=' / '+' key). Dear PyGui 2.3.1's mvKey_Plus holds a legacy code (61) that
ImGui never reports, so the real key code is named here."""
_IMGUI_KEY_KEYPAD_SUBTRACT = 625

_CODES: dict[str, tuple[int, ...]] = {
    **{ch: (getattr(dpg, f"mvKey_{ch}"),) for ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"},
    **{f"F{n}": (getattr(dpg, f"mvKey_F{n}"),) for n in range(1, 13)},
    "Enter": (dpg.mvKey_Return, dpg.mvKey_NumPadEnter), "Escape": (dpg.mvKey_Escape,), "Tab": (dpg.mvKey_Tab,),
    "Space": (dpg.mvKey_Spacebar,), "Plus": (_IMGUI_KEY_EQUAL, dpg.mvKey_Add),
    "Minus": (dpg.mvKey_Minus, _IMGUI_KEY_KEYPAD_SUBTRACT), "Comma": (dpg.mvKey_Comma,),
    "Up": (dpg.mvKey_Up,), "Down": (dpg.mvKey_Down,), "PageUp": (dpg.mvKey_Prior,), "PageDown": (dpg.mvKey_Next,),
}
KEY_OF_CODE: dict[int, str] = {code: name for name, codes in _CODES.items() for code in codes}

TEXT_TYPES = ("mvInputText", "mvInputInt", "mvInputFloat", "mvInputDouble", "mvInputIntMulti",
              "mvInputFloatMulti", "mvDragInt", "mvDragFloat")

ZOOM_STEP, ZOOM_MIN, ZOOM_MAX = 0.1, 0.6, 3.0
PALETTE_SIZE = (760, 480)
HELP_SIZE = (720, 600)


_last_field: list[int | str] = []
"""The text field found active last time: checked first, so a frame while typing costs two calls."""


def _kind(item: int | str) -> str:
    return str(dpg.get_item_type(item)).rsplit("::", 1)[-1]


def _active_text_under(container: int | str) -> int | str | None:
    stack = [container]
    while stack:
        item = stack.pop()
        if _kind(item) in TEXT_TYPES:
            if dpg.is_item_active(item):
                return item
            continue
        if not dpg.get_item_configuration(item).get("show", True):
            continue
        for slot in (1, 0):
            stack.extend(dpg.get_item_children(item, slot) or [])
    return None


def active_field() -> int | str | None:
    """The text field that has the keyboard, or None."""
    return _last_field[0] if typing_now() else None


def typing_now(scan: bool = True) -> bool:
    """A text field holds the keyboard (active: the cursor blinks in it). A single-line field is the focused
    item itself; a multiline one reports a container around it as focused, so that container is searched
    (`scan`; about a millisecond, so only on a key press: every typed character is one, which caches the
    field for the cheap per-frame check)."""
    if _last_field and dpg.does_item_exist(_last_field[0]) and dpg.is_item_active(_last_field[0]):
        return True
    _last_field.clear()
    item = dpg.get_focused_item()
    if not item or not dpg.does_item_exist(item):
        return False
    if _kind(item) in TEXT_TYPES:
        found: int | str | None = item if dpg.is_item_active(item) else None
    elif scan and _kind(item) in ("mvGroup", "mvChildWindow", "mvWindowAppItem"):
        found = _active_text_under(item)
    else:
        return False
    if found is None:
        return False
    _last_field.append(found)
    return True


class Keyboard:
    def __init__(self, app: GuiApp) -> None:
        self.app = app
        self.was_typing = False
        self.actions: dict[str, Callable[[], None]] = {
            "plan": lambda: app.window.left.plan(),
            "approve": self._approve,
            "always": self._approve_always,
            "reject": self._reject,
            "edit": self._edit,
            "close": self.close_top,
            "next_approval": lambda: self.step_approval(+1),
            "prev_approval": lambda: self.step_approval(-1),
            "search": self._search,
            "palette": self.open_palette,
            "zoom_in": lambda: self.zoom(self.app.zoom + ZOOM_STEP),
            "zoom_out": lambda: self.zoom(self.app.zoom - ZOOM_STEP),
            "zoom_reset": lambda: self.zoom(1.0),
            "help": self.open_help,
            "resume": lambda: self._track("resume"),
            "pause": lambda: self._track("pause"),
            "cancel": lambda: self._track("cancel"),
            "resolve": self._resolve_merges,
            "settings": lambda: app.settings.open(),
            "tab_streams": lambda: dpg.set_value(tags.MAIN_TABS, tags.STREAMS_TAB),
            "tab_graph": lambda: dpg.set_value(tags.MAIN_TABS, tags.GRAPH_TAB),
            "tab_dashboard": lambda: dpg.set_value(tags.MAIN_TABS, tags.DASHBOARD_TAB),
            "tab_log": lambda: dpg.set_value(tags.MAIN_TABS, tags.LOG_TAB),
            "tab_workers": lambda: dpg.set_value(tags.MAIN_TABS, tags.WORKERS_TAB),
            "focus_epic": lambda: dpg.focus_item(tags.EPIC_INPUT),
            "track_diff": lambda: app.git.track_diff(),
            "ticket_diff": lambda: app.git.ticket_diff(),
            "revert_ticket": lambda: app.git.revert(),
            "rewind_ticket": lambda: app.git.rewind(),
            "merge_base": lambda: app.git.merge_base(),
            "demo": lambda: app.window._demo(),
            "theme": lambda: app.set_theme("light" if app.themes.name == "dark" else "dark"),
        }
        missing = {b.action for b in KEYMAP} ^ set(self.actions)
        assert not missing, f"keymap and handlers disagree on {sorted(missing)}"
        self.last_action: str | None = None
        self.deferred: list[Callable[[], None]] = []
        """Run before the next frame renders: a focus request for a widget that only draws from then on (a tab
        just switched to, the window under a palette that just closed)."""

    # ---------------- building

    def build(self) -> None:
        if dpg.does_item_exist(tags.KEY_HANDLERS):
            dpg.delete_item(tags.KEY_HANDLERS)
        with dpg.handler_registry(tag=tags.KEY_HANDLERS):
            dpg.add_key_press_handler(callback=safe(self._on_key))
        self._build_palette()
        self._build_help()

    def _build_palette(self) -> None:
        with dpg.window(tag=tags.PALETTE, label="Command palette", modal=True, show=False, no_collapse=True,
                        width=PALETTE_SIZE[0], height=PALETTE_SIZE[1], no_saved_settings=True):
            dpg.add_input_text(tag=tags.PALETTE_FILTER, width=-1, hint="Type to filter; Enter runs the first match",
                               callback=safe(lambda *_: self._filter_palette()))
            with dpg.child_window(border=False):
                for b in KEYMAP:
                    with dpg.group(horizontal=True):
                        item = dpg.add_button(label=b.description, tag=tags.palette_item(b.action),
                                              user_data=b.action, width=-px(130), callback=safe(self._palette_run))
                        dpg.bind_item_theme(item, self.app.themes.left_button)
                        dpg.add_text(b.keys_label(), tag=tags.palette_keys(b.action), color=ACCENT)

    def _build_help(self) -> None:
        with dpg.window(tag=tags.HELP, label="Keyboard shortcuts", modal=True, show=False, no_collapse=True,
                        width=HELP_SIZE[0], height=HELP_SIZE[1], no_saved_settings=True, no_scrollbar=True):
            dpg.add_text("Tab / Shift+Tab move between buttons and fields; Enter or Space presses the focused "
                         "button. A letter shortcut never fires while you type in a text field: Enter (one-line "
                         "fields) or Tab keeps the edit and leaves the field, Esc undoes that field's edit and leaves "
                         "it.",
                         wrap=0, color=DIM)
            # The rows scroll inside the table (its header stays); the intro and Close stay in view.
            with dpg.table(tag=tags.HELP_TABLE, header_row=True, policy=dpg.mvTable_SizingStretchProp,
                           borders_innerH=True, height=-px(40), scrollY=True, freeze_rows=1):
                dpg.add_table_column(label="Keys", init_width_or_weight=0.25)
                dpg.add_table_column(label="Action", init_width_or_weight=0.55)
                dpg.add_table_column(label="Where", init_width_or_weight=0.2)
                for b in KEYMAP:
                    if not b.keys:
                        continue
                    with dpg.table_row():
                        dpg.add_text(b.keys_label(), color=ACCENT)
                        dpg.add_text(b.description, wrap=0)
                        where = {"approval": "approval dialogs", "main": "no dialog open"}.get(b.scope, "anywhere")
                        dpg.add_text(where, color=DIM)
            dpg.add_button(label="Close  [Esc]", tag=tags.HELP_CLOSE, width=px(140),
                           callback=safe(lambda *_: dpg.configure_item(tags.HELP, show=False)))

    # ---------------- key presses

    def before_render(self) -> None:
        jobs, self.deferred = self.deferred, []
        for job in jobs:
            job()
        self.was_typing = typing_now(scan=False)

    def _on_key(self, _sender: object, code: int, _user: object) -> None:
        name = KEY_OF_CODE.get(int(code))
        if name is None:  # a modifier alone, or a key no shortcut uses
            return
        self.press(Chord(name, ctrl=bool(dpg.is_key_down(dpg.mvKey_ModCtrl)),
                         shift=bool(dpg.is_key_down(dpg.mvKey_ModShift))))

    def press(self, pressed: Chord) -> str | None:
        """Run what `pressed` means now; returns the action run (None when the key belongs elsewhere)."""
        typing = self.was_typing or typing_now()
        if self.shown(tags.PALETTE) and pressed == Chord("Enter"):
            return self._palette_enter()
        if pressed == Chord("Escape") and (self.shown(tags.PALETTE) or self.shown(tags.HELP)):
            return self.run("close")  # the palette's filter is for finding an action: Esc leaves the palette
        if typing and pressed == Chord("Escape") and self.was_typing:
            return None  # this Escape ended an edit (ImGui already left the field); the window stays
        binding = keymap.find(pressed, approval_open=self.approval_open(), typing=typing)
        if binding is None or (self.modal_open() and binding.action != "close"):
            return None
        return self.run(binding)

    def run(self, binding: Binding | str) -> str:
        action = binding if isinstance(binding, str) else binding.action
        self.last_action = action
        self.actions[action]()
        return action

    # ---------------- state

    @staticmethod
    def shown(tag: str) -> bool:
        return dpg.does_item_exist(tag) and bool(dpg.is_item_shown(tag))

    def modal_open(self) -> bool:
        return any(self.shown(t) for t in (tags.PALETTE, tags.HELP, tags.SETTINGS_DIALOG, tags.CONFIRM_CLOSE,
                                           tags.EDIT_TICKET, tags.GIT_CONFIRM, tags.DISCARD_CONFIRM))

    def approval_open(self) -> bool:
        d = self.app.dialogs.current()
        return d is not None and self.shown(d.tag)

    # ---------------- actions

    def _approve(self) -> None:
        d = self.app.dialogs.current()
        if d is None or not self.approval_open():
            return
        if not dpg.get_item_configuration(d.part("approve"))["enabled"]:
            d.show_error("Approve is off until the problems listed above are fixed (or reject with R).")
            return
        d.approve()

    def _approve_always(self) -> None:
        d = self.app.dialogs.current()
        if d is None or not self.approval_open():
            return
        if not isinstance(d, ToolDialog) or not d.always_allow():
            d.show_error("Only an exact command can be always allowed; A approves just this one.")
            return
        self._approve()

    def _resolve_merges(self) -> None:
        self.app.c.resolve_merges()  # says what it did (or that nothing waits) in the status bar

    def _reject(self) -> None:
        d = self.app.dialogs.current()
        if d is not None:
            dpg.focus_item(d.part("reason"))

    def _edit(self) -> None:
        d = self.app.dialogs.current()
        if d is not None and (field := d.first_field()) is not None:
            dpg.focus_item(field)

    def close_top(self) -> None:
        for tag in (tags.PALETTE, tags.HELP):
            if self.shown(tag):
                dpg.configure_item(tag, show=False)
                return
        if self.shown(tags.DISCARD_CONFIRM):
            self.app.window.cluster.close_confirm()
            return
        if self.app.git.close_top():  # the git question, then the diff window (opened over the summary)
            return
        if self.shown(tags.RUN_SUMMARY):
            dpg.configure_item(tags.RUN_SUMMARY, show=False)
            return
        if self.shown(tags.CONFIRM_CLOSE):
            self.app.confirm._no()
        elif self.shown(tags.EDIT_TICKET):
            self.app.edit._cancel()
        elif self.shown(tags.SETTINGS_DIALOG):
            self.app.settings._cancel()
        elif (d := self.app.dialogs.current()) is not None:
            d.dismiss()

    def step_approval(self, direction: int) -> None:
        pending = self.app.c.pending_list()
        if not pending:
            self.app.c.status_message = "nothing is waiting for you"
            self.app.c.versions["status"] += 1
            return
        cur = self.app.dialogs.current()
        ids = [r.id for r in pending]
        if cur is None or cur.request is None or cur.request.id not in ids:
            index = 0 if direction > 0 else len(ids) - 1
        else:
            index = (ids.index(cur.request.id) + direction) % len(ids)
        self.app.dialogs.open(ids[index])

    def _search(self) -> None:
        """Find in the stream panes while they are in front, else in the event log."""
        front = dpg.get_value(tags.MAIN_TABS)
        if front in (tags.STREAMS_TAB, dpg.get_alias_id(tags.STREAMS_TAB)) or front is None:
            dpg.focus_item(tags.STREAM_FIND)
            return
        dpg.set_value(tags.MAIN_TABS, tags.LOG_TAB)
        self.deferred.append(lambda: dpg.focus_item(tags.LOG_SEARCH))  # the tab draws its widgets from next frame

    def _track(self, name: str) -> None:
        match name:
            case "pause" | "resume" | "cancel":
                self.app.c.track_command(name)
            case _:
                raise ValueError(f"no track command {name!r}")

    def zoom(self, scale: float) -> None:
        self.app.set_zoom(round(min(max(scale, ZOOM_MIN), ZOOM_MAX), 2))

    # ---------------- palette and help

    def open_palette(self) -> None:
        dpg.set_value(tags.PALETTE_FILTER, "")
        self._filter_palette()
        centre(tags.PALETTE, *PALETTE_SIZE)
        dpg.configure_item(tags.PALETTE, show=True)
        dpg.focus_item(tags.PALETTE_FILTER)

    def palette_matches(self) -> list[str]:
        words = (dpg.get_value(tags.PALETTE_FILTER) or "").lower().split()
        out = []
        for b in KEYMAP:
            text = f"{b.action.replace('_', ' ')} {b.description} {b.keys_label()}".lower()
            if all(w in text for w in words):
                out.append(b.action)
        return out

    def _filter_palette(self) -> None:
        shown = set(self.palette_matches())
        for b in KEYMAP:
            dpg.configure_item(tags.palette_item(b.action), show=b.action in shown)
            dpg.configure_item(tags.palette_keys(b.action), show=b.action in shown)

    def _palette_enter(self) -> str | None:
        matches = self.palette_matches()
        if not matches:
            return None
        return self._palette_run(None, None, matches[0])

    def _palette_run(self, _sender: object, _app_data: object, action: str) -> str:
        dpg.configure_item(tags.PALETTE, show=False)
        self.last_action = action
        self.deferred.append(lambda: self.actions[action]())  # once the palette is gone, focus goes where it should
        return action

    def open_help(self) -> None:
        centre(tags.HELP, *HELP_SIZE)
        dpg.configure_item(tags.HELP, show=True)
        dpg.focus_item(tags.HELP_CLOSE)

