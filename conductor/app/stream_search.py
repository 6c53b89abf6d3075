"""Finding text in the stream panes: every occurrence, in pane order, with the line it is on (what the find bar
shows and where it scrolls to). Case-insensitive, literal (a query is text, never a pattern)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MAX_MATCHES = 2000
"""Beyond this the find bar says 'more than'; counting further in a 20,000-character pane buys nothing."""


@dataclass(frozen=True)
class StreamMatch:
    key: str
    """The pane's buffer key."""
    line_no: int
    """0-based line of the match in the pane's text."""
    lines: int
    """How many lines the pane's text has (where to scroll is line_no / lines of the way down)."""
    column: int
    line: str

    def context(self, width: int = 90) -> str:
        """The matching line, cut around the match so the match itself is always in view."""
        text = self.line.strip()
        shift = len(self.line) - len(self.line.lstrip())
        col = max(0, self.column - shift)
        if len(text) <= width:
            return text
        start = max(0, min(col - width // 3, len(text) - width))
        return ("…" if start else "") + text[start:start + width] + ("…" if start + width < len(text) else "")


def find_in_streams(panes: Iterable[tuple[str, str]], query: str, limit: int = MAX_MATCHES) -> list[StreamMatch]:
    """Each occurrence of `query` in (key, text) panes, in the order given, at most `limit`."""
    needle = query.casefold()
    if not needle.strip():
        return []
    out: list[StreamMatch] = []
    for key, text in panes:
        lines = text.split("\n")
        for no, line in enumerate(lines):
            folded = line.casefold()
            col = folded.find(needle)
            while col >= 0:
                out.append(StreamMatch(key, no, len(lines), col, line))
                if len(out) >= limit:
                    return out
                col = folded.find(needle, col + max(1, len(needle)))
    return out
