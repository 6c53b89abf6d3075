"""The one keymap: action → keys → description. The key handler, the command palette (Ctrl+P) and the
shortcut sheet (F1) are all built from `KEYMAP`, so a shortcut shown anywhere is the shortcut that works.

Pure data and matching: no Dear PyGui here (conductor/gui/keyboard.py turns real key presses into `Chord`s).

Scopes say when a binding is live:
- "global": always (unless a modal such as Settings is up; Esc still closes it).
- "approval": only while an approval dialog is open.
- "main": only while none is (Ctrl+Enter plans from the main window; in a dialog it must not start a plan).
A bare key (no Ctrl/Alt) never fires while a text field is being typed in: the letter belongs to the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Scope = Literal["global", "approval", "main"]

KEY_NAMES = frozenset({
    *"ABCDEFGHIJKLMNOPQRSTUVWXYZ", *"0123456789",
    "Enter", "Escape", "Tab", "Space", "F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "F9", "F10", "F11", "F12",
    "Plus", "Minus", "Comma", "Up", "Down", "PageUp", "PageDown",
})
"""Key names a chord may use (keyboard.py maps each to Dear PyGui key codes)."""

_FUNCTION_KEYS = frozenset({"Escape", "F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "F9", "F10", "F11", "F12"})


@dataclass(frozen=True, order=True)
class Chord:
    key: str
    ctrl: bool = False
    shift: bool = False

    def __post_init__(self) -> None:
        if self.key not in KEY_NAMES:
            raise ValueError(f"unknown key name {self.key!r} (known: {', '.join(sorted(KEY_NAMES))})")

    @property
    def bare(self) -> bool:
        """A key that types something into a text field when pressed without Ctrl (letters, digits, Enter,
        Space, Tab...). Function keys and Escape are never typed, so they are not bare."""
        return not self.ctrl and self.key not in _FUNCTION_KEYS

    def label(self) -> str:
        shown = {"Plus": "+", "Minus": "−", "Comma": ",", "Escape": "Esc"}.get(self.key, self.key)
        return "+".join([*(["Ctrl"] if self.ctrl else []), *(["Shift"] if self.shift else []), shown])


def chord(text: str) -> Chord:
    """'Ctrl+Shift+P' → Chord('P', ctrl=True, shift=True). Raises ValueError naming a bad part."""
    parts = [p.strip() for p in text.split("+")]
    if not parts or not parts[-1]:
        raise ValueError(f"bad chord {text!r}: no key after the last '+'")
    mods, key = parts[:-1], parts[-1]
    for m in mods:
        if m not in ("Ctrl", "Shift"):
            raise ValueError(f"bad chord {text!r}: unknown modifier {m!r} (Ctrl or Shift)")
    return Chord(key, ctrl="Ctrl" in mods, shift="Shift" in mods)


@dataclass(frozen=True)
class Binding:
    action: str
    keys: tuple[Chord, ...]
    description: str
    scope: Scope = "global"

    def keys_label(self) -> str:
        return " / ".join(k.label() for k in self.keys) if self.keys else "—"


def _b(action: str, keys: str, description: str, scope: Scope = "global") -> Binding:
    return Binding(action, tuple(chord(k) for k in keys.split(" ") if k), description, scope)


KEYMAP: tuple[Binding, ...] = (
    _b("plan", "Ctrl+Enter", "Plan the epic (Tier 1 proposes tracks)", "main"),
    _b("approve", "A", "Approve the open approval (as edited)", "approval"),
    _b("reject", "R", "Reject: puts the cursor in the reason field; Enter there sends the rejection", "approval"),
    _b("edit", "E", "Edit: puts the cursor in the first editable field of the open approval", "approval"),
    _b("always", "Shift+A", "Approve this exact command and always allow it for the track", "approval"),
    _b("close", "Escape", "Close the topmost window; an approval is snoozed (it stays in the queue)"),
    _b("next_approval", "J", "Open the next pending approval"),
    _b("prev_approval", "K", "Open the previous pending approval"),
    _b("search", "Ctrl+F", "Find in the stream panes (Streams in front), else search the event log"),
    _b("palette", "Ctrl+P", "Command palette: every action, with its shortcut"),
    _b("zoom_in", "Ctrl+Plus", "Larger text"),
    _b("zoom_out", "Ctrl+Minus", "Smaller text"),
    _b("zoom_reset", "Ctrl+0", "Text at its normal size"),
    _b("help", "F1", "Show every shortcut"),
    _b("resume", "F5", "Resume (run) the active track"),
    _b("pause", "F6", "Pause the active track (running workers finish their turn)"),
    _b("cancel", "Shift+F5", "Cancel the active track"),
    _b("resolve", "Ctrl+M", "Start a resolve attempt for each ticket of the active track that needs a merge"),
    _b("settings", "Ctrl+Comma", "Settings"),
    _b("tab_streams", "Ctrl+1", "Show the streams"),
    _b("tab_graph", "Ctrl+2", "Show the graph of the tickets"),
    _b("tab_dashboard", "Ctrl+3", "Show tokens & cost"),
    _b("tab_log", "Ctrl+4", "Show the event log"),
    _b("tab_workers", "Ctrl+5", "Show the remote workers: queue, throughput, dead letters (Retry, Discard)"),
    _b("focus_epic", "Ctrl+E", "Put the cursor in the epic box"),
    _b("track_diff", "Ctrl+D", "Show the track's changes so far against its base (coloured, per file)"),
    _b("ticket_diff", "Ctrl+Shift+D", "Show a ticket's diff: its commit against its base (the one on screen, else "
                                      "the last that ran)"),
    _b("revert_ticket", "Ctrl+Shift+R", "Revert a merged ticket… (asks first, naming the tickets that depend on it)"),
    _b("rewind_ticket", "Ctrl+Shift+W", "Rewind a ticket to an earlier attempt's commit… (asks first)"),
    _b("merge_base", "Ctrl+Shift+M", "Merge the finished track into its base… (asks first, with the diff stat)"),
    _b("demo", "", "Open the offline demo"),
    _b("theme", "", "Switch between the dark and the light theme"),
)


def by_action() -> dict[str, Binding]:
    return {b.action: b for b in KEYMAP}


def find(pressed: Chord, *, approval_open: bool, typing: bool) -> Binding | None:
    """The binding a key press triggers, or None. `typing`: a text field has the keyboard, so a bare key is
    the person's text, never a shortcut."""
    if typing and pressed.bare:
        return None
    for b in KEYMAP:
        live = {"global": True, "approval": approval_open, "main": not approval_open}[b.scope]
        if pressed in b.keys and live:
            return b
    return None


def check_unique() -> list[str]:
    """Problems in the table: a chord bound twice in overlapping scopes, or an action named twice."""
    problems: list[str] = []
    seen: dict[Chord, str] = {}
    actions: set[str] = set()
    for b in KEYMAP:
        if b.action in actions:
            problems.append(f"action {b.action!r} is listed twice")
        actions.add(b.action)
        for k in b.keys:
            if k in seen:
                problems.append(f"{k.label()} is bound to both {seen[k]!r} and {b.action!r}")
            seen[k] = b.action
    return problems


TOOL_ONLY = frozenset({"always"})
"""Shortcuts that only a tool approval answers (only an exact command can be always allowed)."""


def shortcut_hint(scope: Scope, kind: str = "tool") -> str:
    """One line of the shortcuts live in `scope` (the approval dialogs' footer), straight from the keymap; a
    dialog of another `kind` than a tool approval leaves out what only a tool approval answers."""
    short = {"always": "always allow",
             "close": "snooze", "next_approval": "next", "prev_approval": "previous", "help": "all shortcuts"}
    parts = [f"{b.keys_label()} {short.get(b.action, b.action)}"
             for b in KEYMAP if b.keys and (b.scope == scope or b.action in short)
             and (kind == "tool" or b.action not in TOOL_ONLY)]
    return "   ·   ".join(parts)
