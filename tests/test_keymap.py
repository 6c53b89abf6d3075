"""The keymap table itself (pure): chords parse or are refused with the bad part named, no chord is bound
twice, a bare key never fires while typing, approval-only keys only with an approval open, and the README's
shortcut table is this table."""

from __future__ import annotations

from pathlib import Path

import pytest

from conductor.gui import keymap
from conductor.gui.keymap import KEYMAP, Chord, chord, find

README = Path(__file__).resolve().parent.parent / "README.md"


def test_no_chord_or_action_twice() -> None:
    assert keymap.check_unique() == []


@pytest.mark.parametrize(("text", "error"), [("Ctrl+", "no key after"), ("Alt+F4", "unknown modifier 'Alt'"),
                                             ("Ctrl+Banana", "unknown key name 'Banana'"), ("", "no key after")])
def test_bad_chords_name_the_bad_part(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        chord(text)


def test_bare_keys_never_fire_while_typing_but_ctrl_and_function_keys_do() -> None:
    for b in KEYMAP:
        for k in b.keys:
            hit = find(k, approval_open=b.scope != "main", typing=True)
            if k.bare:
                assert hit is None, f"{k.label()} would fire while typing"
            else:
                assert hit is b
    assert Chord("Escape").bare is False and Chord("F5", shift=True).bare is False and Chord("A").bare is True


def test_approval_keys_need_an_open_approval() -> None:
    assert find(chord("A"), approval_open=False, typing=False) is None
    assert find(chord("A"), approval_open=True, typing=False).action == "approve"
    assert find(chord("J"), approval_open=False, typing=False).action == "next_approval"
    assert find(chord("Ctrl+A"), approval_open=True, typing=False) is None, "Ctrl+A stays select-all"
    assert find(chord("Ctrl+Enter"), approval_open=True, typing=False) is None, "no plan from inside a dialog"
    assert find(chord("Ctrl+Enter"), approval_open=False, typing=True).action == "plan"


def test_the_readme_lists_every_shortcut() -> None:
    text = README.read_text(encoding="utf-8")
    for b in KEYMAP:
        if b.keys:
            assert f"| `{b.keys_label()}` | {b.description}" in text, f"README misses {b.keys_label()}"


def test_the_approval_dialog_hint_line_comes_from_the_table() -> None:
    hint = keymap.shortcut_hint("approval")
    assert hint.split("   ·   ")[:3] == ["A approve", "R reject", "E edit"] and "Esc snooze" in hint
    assert "Shift+A always allow" in hint and "always allow" not in keymap.shortcut_hint("approval", "plan"), \
        "a plan, tickets or spawn approval does not offer what only a tool approval answers"
