"""The lines the app itself writes into a ticket's stream pane: a compact line per tool call and per result,
and the attempt separator (the same header `conductor.attempt` writes into the output file).

Pure functions of event fields, so the pane reads the same whether it was filled live or restored from disk.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping

KEY_ARGS = ("path", "paths", "file", "command", "cmd", "argv", "pattern", "query", "glob", "url", "name",
            "ref", "branch", "old", "start", "end")
"""Arguments that say what a call is about, shown first; the rest only while the line stays short."""

MAX_VALUE = 72
"""A value longer than this is cut (a file body is shown as its size, never inline)."""

MAX_LINE = 200

ATTEMPT_HEADER = re.compile(r"^## attempt (\d+) · \d\d:\d\d:\d\d$", re.MULTILINE)


def attempt_header(attempt: int, ts: float) -> str:
    """Exactly the header `Workbench.call_deps` appends to the output file (local time of `ts`)."""
    return f"\n\n## attempt {attempt} · {time.strftime('%H:%M:%S', time.localtime(ts))}\n\n"


def last_attempt(text: str) -> int:
    """The attempt of the last header in a pane's text (0: none), so a restored pane is not given it again."""
    found = ATTEMPT_HEADER.findall(text)
    return int(found[-1]) if found else 0


def _value(v: object) -> str:
    if isinstance(v, str):
        if len(v) > MAX_VALUE or "\n" in v:
            first = v.split("\n", 1)[0][:40]
            return f"{json.dumps(first, ensure_ascii=False)[:-1]}…\" ({len(v):,} chars)"
        return json.dumps(v, ensure_ascii=False)
    try:
        text = json.dumps(v, ensure_ascii=False, default=str)
    except ValueError:  # a circular structure: say so, not a traceback in the render loop
        text = f"<{type(v).__name__}>"
    return text if len(text) <= MAX_VALUE else f"{text[:MAX_VALUE]}…"


def tool_call_line(name: str, args: Mapping[str, object]) -> str:
    """`→ read_file path="src/a.py"`: the tool and the arguments that say what it touches, key ones first."""
    keys = [k for k in KEY_ARGS if k in args] + [k for k in args if k not in KEY_ARGS]
    line = f"→ {name}"
    for i, k in enumerate(keys):
        part = f" {k}={_value(args[k])}"
        if len(line) + len(part) > MAX_LINE:
            line += f" (+{len(keys) - i} more)"
            break
        line += part
    return line


def tool_result_line(name: str, ok: bool, summary: str, *, replayed: bool = False) -> str:
    """`← read_file ok: 120 lines` or `← run_command REJECTED: rejected by the user: not on main` — the reason
    of a refusal or failure in full (first line), since it is what explains the next turn."""
    first = summary.strip().split("\n", 1)[0] if summary.strip() else ""
    if ok:
        outcome = "ok"
    elif "rejected" in first.lower() or "denied" in first.lower() or "refused" in first.lower():
        outcome = "REJECTED"
    else:
        outcome = "FAILED"
    again = " (replayed)" if replayed else ""
    if not first:
        first = "no reason given" if not ok else "done"
    if ok and len(first) > MAX_LINE:
        first = first[:MAX_LINE] + "…"
    return f"← {name} {outcome}{again}: {first}"
