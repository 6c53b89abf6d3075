"""Showing model-written text on a terminal: redacted, escaped, and never cut without saying so.

A model (or a file it read) can write terminal escape sequences: `ESC ]52` writes the clipboard, `ESC [2J`
clears what the person was reading, a carriage return or backspaces overwrite `rm -rf ~` with `ls`, bidi
controls reorder what is shown. Whatever a person is asked to approve is therefore shown with every control,
format and invisible character replaced by a visible escape (`\\x1b`, `\\u202e`), and shown whole: what does
not fit on the screen goes to a file, and the screen says "(N more lines, full text in FILE)".
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from conductor import redact
from conductor.atomic import atomic_write_text

KEEP = frozenset("\n\t")


def escape(text: str) -> str:
    """`text` with every control/format/invisible character (except newline and tab) made visible."""
    out: list[str] = []
    for ch in text:
        if ch in KEEP:
            out.append(ch)
            continue
        cat = unicodedata.category(ch)
        if cat[0] == "C" or cat in ("Zl", "Zp") or (cat == "Zs" and ch != " "):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def safe(text: str) -> str:
    """Redacted, then escaped: the only form in which model-written text reaches the terminal."""
    return escape(redact.text(text))


def bounded(text: str, *, max_lines: int, full_path: Path) -> str:
    """Safe text, at most `max_lines` lines on screen. When longer, the whole safe text is written to
    `full_path` and the screen ends with "(N more lines, full text in FILE)". Never a silent cut."""
    shown = safe(text)
    lines = shown.split("\n")
    if len(lines) <= max_lines:
        return shown
    atomic_write_text(full_path, shown if shown.endswith("\n") else shown + "\n")
    more = len(lines) - max_lines
    return "\n".join(lines[:max_lines]) + f"\n({more} more lines, full text in {full_path})"
