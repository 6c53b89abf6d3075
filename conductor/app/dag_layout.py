"""Where each ticket sits in the graph view: columns by depth (the longest dependency chain below it), rows in
ticket order within a column, edges from each dependency, and the critical path (the longest chain: what
bounds the run however many workers there are) marked. Pure: ids and dependencies in, positions out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from conductor import dag
from conductor.errors import ConductorError


class _Node(Protocol):
    id: str
    depends_on: list[str]


@dataclass(frozen=True)
class GraphLayout:
    positions: dict[str, tuple[int, int]]
    """ticket id -> (column, row)"""
    edges: list[tuple[str, str]]
    """(dependency, dependent)"""
    critical: list[str]
    """The longest chain, first to last."""
    problem: str = ""
    """Why the graph cannot be drawn (a cycle or unknown id names the ids); empty when it can."""

    @property
    def columns(self) -> int:
        return 1 + max((c for c, _ in self.positions.values()), default=-1)

    @property
    def rows(self) -> int:
        return 1 + max((r for _, r in self.positions.values()), default=-1)


def layout(tickets: Sequence[_Node]) -> GraphLayout:
    try:
        columns = dag.levels(tickets)
    except (ConductorError, ValueError) as exc:
        return GraphLayout({}, [], [], problem=str(exc))
    positions = {tid: (c, r) for c, ids in enumerate(columns) for r, tid in enumerate(ids)}
    edges = [(d, t.id) for t in tickets for d in t.depends_on]
    return GraphLayout(positions, edges, critical_path(tickets))


def critical_path(tickets: Sequence[_Node]) -> list[str]:
    """The longest dependency chain (ties: the earlier ticket), as ids from first to last."""
    by_id = {t.id: t for t in tickets}
    length: dict[str, int] = {}
    via: dict[str, str | None] = {}
    for tid in dag.topological_order(tickets):
        best = max(by_id[tid].depends_on, key=lambda d: length[d], default=None)
        length[tid] = 1 + (length[best] if best is not None else 0)
        via[tid] = best
    if not length:
        return []
    end: str | None = max(length, key=lambda k: length[k])
    chain: list[str] = []
    while end is not None:
        chain.append(end)
        end = via[end]
    return chain[::-1]
