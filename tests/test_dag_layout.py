"""The graph view's layout (pure): columns by depth, every edge from a dependency to its dependent, the
critical path is a real longest chain, and a broken graph is named instead of drawn."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from conductor.app.dag_layout import critical_path, layout


@dataclass
class T:
    id: str
    depends_on: list[str]


def test_columns_rows_edges_and_the_critical_path() -> None:
    tickets = [T("T1", []), T("T2", ["T1"]), T("T3", ["T1"]), T("T4", ["T2", "T3"]), T("T5", []), T("T6", ["T4"])]
    g = layout(tickets)
    assert g.positions == {"T1": (0, 0), "T5": (0, 1), "T2": (1, 0), "T3": (1, 1), "T4": (2, 0), "T6": (3, 0)}
    assert sorted(g.edges) == [("T1", "T2"), ("T1", "T3"), ("T2", "T4"), ("T3", "T4"), ("T4", "T6")]
    assert g.critical == ["T1", "T2", "T4", "T6"] and g.problem == ""


def test_a_cycle_is_named_not_drawn() -> None:
    g = layout([T("A", ["B"]), T("B", ["A"])])
    assert g.positions == {} and "cycle" in g.problem and "A" in g.problem


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 30), max_size=3), min_size=1, max_size=25))
def test_the_critical_path_is_a_chain_as_long_as_the_deepest_column(deps: list[list[int]]) -> None:
    tickets = [T(f"T{i}", sorted({f"T{d}" for d in ds if d < i})) for i, ds in enumerate(deps)]
    g = layout(tickets)
    path = critical_path(tickets)
    by_id = {t.id: t for t in tickets}
    assert all(a in by_id[b].depends_on for a, b in zip(path, path[1:])), "each step depends on the one before"
    assert len(path) == g.columns
    for dep, child in g.edges:
        assert g.positions[dep][0] < g.positions[child][0], "an arrow always points to a later column"
