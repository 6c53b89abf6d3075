"""Formatting shared by the views and the tests: numbers for the dashboard, ids and lines typed in dialogs."""

from __future__ import annotations


def fmt_tokens(n: int) -> str:
    return f"{n:,}"


def fmt_cost(cost: float | None) -> str:
    """Unknown is shown as unknown, never as free."""
    return "unknown" if cost is None else f"${cost:,.4f}"


def split_lines(text: str) -> list[str]:
    """One item per non-empty line (acceptance criteria, context files)."""
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def split_ids(text: str) -> list[str]:
    """Ids typed as 'T1, T2' or 'T1 T2'."""
    return [p for p in text.replace(",", " ").split() if p]
