"""The pure DAG layer: validation that names every problem with its ids (reliability B2, B3), and property
tests over random DAGs for ordering, levels, critical path, cycles, the ready set and the blocking cascade.

Why: the ticket review dialog refuses an invalid graph by showing these messages, and the engine dispatches
from `ready_ids` and blocks from `blocking_cascade`; a wrong answer here runs a ticket too early or hides why
one never runs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conductor import dag
from conductor.errors import DagInvalid
from conductor.model import SATISFIED_STATUSES, Ticket, TicketStatus

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WAITING = (TicketStatus.TODO, TicketStatus.READY)


@dataclass
class Node:
    id: str
    depends_on: list[str] = field(default_factory=list)
    status: TicketStatus = TicketStatus.TODO
    failed_reason: str | None = None
    blocked_reason: str | None = None


def nodes(spec: dict[str, list[str]]) -> list[Node]:
    return [Node(k, list(v)) for k, v in spec.items()]


def edges(ns: list[Node]) -> list[tuple[str, str]]:
    """(ticket, dependency) pairs."""
    return [(n.id, d) for n in ns for d in n.depends_on]


# ---------------------------------------------------------------- named problems (B2, B3)

def test_valid_graph_has_no_problems() -> None:
    ns = nodes({"A": [], "B": ["A"], "C": ["A"], "D": ["B", "C"]})
    assert dag.problems(ns) == []
    dag.ensure_valid(ns)  # does not raise


def test_duplicate_id_is_named() -> None:
    ns = nodes({"A": []}) + [Node("A"), Node("B", ["A"])]
    assert dag.problems(ns) == ["duplicate ticket id 'A'"]


def test_unknown_dependency_is_named_with_both_ids() -> None:
    ns = nodes({"A": [], "B": ["A", "ZZ"]})
    assert dag.problems(ns) == ["ticket 'B' depends on unknown ticket 'ZZ'"]


def test_self_dependency_is_named() -> None:
    ns = nodes({"A": ["A"], "B": []})
    assert dag.problems(ns) == ["ticket 'A' depends on itself"]


def test_duplicate_dependency_entry_is_named() -> None:
    ns = nodes({"A": [], "B": ["A", "A"]})
    assert dag.problems(ns) == ["ticket 'B' lists dependency 'A' more than once"]


def _cycle_in(problem_list: list[str]) -> list[str]:
    (msg,) = [p for p in problem_list if p.startswith("dependency cycle ")]
    return msg.removeprefix("dependency cycle ").split(" -> ")


@pytest.mark.parametrize("spec, members", [
    ({"A": ["B"], "B": ["C"], "C": ["A"]}, ["A", "B", "C"]),
    ({"A": ["B"], "B": ["A"]}, ["A", "B"]),                                   # B2: A -> B -> A
    ({"X": [], "A": ["X", "C"], "B": ["A"], "C": ["B"], "D": ["C"]}, ["A", "C", "B"]),
])
def test_cycle_is_reported_as_a_closed_path(spec: dict[str, list[str]], members: list[str]) -> None:
    ns = nodes(spec)
    path = _cycle_in(dag.problems(ns))
    assert path[0] == path[-1], path
    assert sorted(path[:-1]) == sorted(members)
    # Every hop is a real "depends on" edge: a -> b means a depends on b.
    es = set(edges(ns))
    assert all((a, b) in es for a, b in zip(path, path[1:])), path


def test_three_cycle_message_reads_as_a_closed_path() -> None:
    msg = [p for p in dag.problems(nodes({"A": ["B"], "B": ["C"], "C": ["A"]})) if "cycle" in p]
    rotations = {"A -> B -> C -> A", "B -> C -> A -> B", "C -> A -> B -> C"}
    assert len(msg) == 1 and msg[0].removeprefix("dependency cycle ") in rotations, msg


def test_every_problem_is_reported_at_once_and_ensure_valid_raises_with_them() -> None:
    ns = [Node("A", ["A"]), Node("A"), Node("B", ["C", "Q", "Q"]), Node("C", ["B"])]
    found = dag.problems(ns)
    assert "duplicate ticket id 'A'" in found
    assert "ticket 'A' depends on itself" in found
    assert "ticket 'B' depends on unknown ticket 'Q'" in found
    assert "ticket 'B' lists dependency 'Q' more than once" in found
    assert sorted(_cycle_in(found)[:-1]) == ["B", "C"]
    with pytest.raises(DagInvalid) as info:
        dag.ensure_valid(ns)
    assert info.value.problems == found
    assert "duplicate ticket id 'A'" in str(info.value) and "Q" in str(info.value)


@pytest.mark.parametrize("fn", [dag.topological_order, dag.levels, dag.critical_path_length,
                                dag.blocking_cascade])
def test_graph_functions_refuse_an_invalid_graph(fn) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DagInvalid, match="cycle"):
        fn(nodes({"A": ["B"], "B": ["A"]}))


def test_works_on_real_tickets() -> None:
    ts = [Ticket(id="T2", title="b", depends_on=["T1"]), Ticket(id="T1", title="a")]
    assert dag.topological_order(ts) == ["T1", "T2"]
    assert dag.ready_ids(ts) == ["T1"]


def test_topological_order_keeps_input_order_for_ties() -> None:
    ns = nodes({"C": [], "A": [], "B": ["C"], "D": []})
    assert dag.topological_order(ns) == ["C", "A", "D", "B"]


def test_weighted_critical_path() -> None:
    ns = nodes({"A": [], "B": ["A"], "C": ["A"], "D": ["B", "C"]})
    w = {"A": 1.0, "B": 5.0, "C": 2.0, "D": 0.5}
    assert dag.critical_path_length(ns, w) == pytest.approx(6.5)
    assert dag.critical_path_length([]) == 0.0


def test_blocking_cascade_reason_names_the_first_link() -> None:
    ns = nodes({"A": [], "B": ["A"], "C": ["B"], "D": []})
    ns[0].status, ns[0].failed_reason = TicketStatus.FAILED, "tests kept failing"
    out = dag.blocking_cascade(ns)
    assert out == {"B": "dependency 'A' failed: tests kept failing",
                   "C": "dependency 'B' is blocked: dependency 'A' failed: tests kept failing"}


def test_dependents_of_is_transitive() -> None:
    ns = nodes({"A": [], "B": ["A"], "C": ["B"], "D": [], "E": ["D", "C"]})
    assert dag.dependents_of(ns, "A") == {"B", "C", "E"}
    assert dag.dependents_of(ns, "E") == set()


# ---------------------------------------------------------------- random DAGs

_ID = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=6)


@st.composite
def random_dag(draw: st.DrawFn, min_nodes: int = 1, max_nodes: int = 60) -> list[Node]:
    """Edges only point to lower-index nodes (so it is acyclic); the list is then shuffled so the input order
    is not already topological."""
    ids = draw(st.lists(_ID, min_size=min_nodes, max_size=max_nodes, unique=True))
    out = []
    for i, tid in enumerate(ids):
        deps = draw(st.lists(st.integers(0, i - 1), max_size=min(i, 4), unique=True)) if i else []
        out.append(Node(tid, [ids[j] for j in deps]))
    return draw(st.permutations(out))


@PROPS
@given(random_dag())
def test_topological_order_respects_every_edge(ns: list[Node]) -> None:
    order = dag.topological_order(ns)
    assert sorted(order) == sorted(n.id for n in ns)
    pos = {tid: i for i, tid in enumerate(order)}
    for tid, dep in edges(ns):
        assert pos[dep] < pos[tid], (dep, tid)


@PROPS
@given(random_dag())
def test_levels_partition_and_each_level_is_above_its_deps(ns: list[Node]) -> None:
    lv = dag.levels(ns)
    flat = [tid for level in lv for tid in level]
    assert sorted(flat) == sorted(n.id for n in ns)  # every node exactly once
    assert all(level for level in lv)                 # no empty level
    at = {tid: i for i, level in enumerate(lv) for tid in level}
    for n in ns:
        assert all(at[n.id] > at[d] for d in n.depends_on)
        # ... and as low as it can be: the longest chain below it.
        assert at[n.id] == 1 + max((at[d] for d in n.depends_on), default=-1)


@PROPS
@given(random_dag())
def test_unit_critical_path_is_the_number_of_levels(ns: list[Node]) -> None:
    assert dag.critical_path_length(ns) == len(dag.levels(ns))


@PROPS
@given(random_dag(min_nodes=2), st.randoms(use_true_random=False))
def test_a_back_edge_makes_a_cycle_that_find_cycle_reports_as_a_real_path(ns: list[Node], rnd: random.Random
                                                                         ) -> None:
    # Pick a node with something below it, a node `low` in its transitive dependencies, and add low -> top.
    with_deps = [n for n in ns if n.depends_on]
    if not with_deps:
        ns[1].depends_on.append(ns[0].id)
        with_deps = [ns[1]]
    top = rnd.choice(with_deps)
    below = sorted(tid for tid in (n.id for n in ns) if top.id in dag.dependents_of(ns, tid))
    low_id = rnd.choice(below)
    low = next(n for n in ns if n.id == low_id)
    low.depends_on.append(top.id)

    graph = {n.id: list(n.depends_on) for n in ns}
    cycle = dag.find_cycle(graph)
    assert cycle is not None
    assert cycle[0] == cycle[-1] and len(cycle) >= 3
    assert len(set(cycle[:-1])) == len(cycle) - 1  # a simple cycle: no node twice
    for a, b in zip(cycle, cycle[1:]):
        assert b in graph[a], f"{a} -> {b} is not an edge of the graph"
    assert any(p.startswith("dependency cycle ") for p in dag.problems(ns))
    with pytest.raises(DagInvalid):
        dag.topological_order(ns)


@PROPS
@given(random_dag())
def test_find_cycle_is_none_for_a_dag(ns: list[Node]) -> None:
    assert dag.find_cycle({n.id: n.depends_on for n in ns}) is None
    assert dag.problems(ns) == []


_ANY_STATUS = st.sampled_from(list(TicketStatus))


@PROPS
@given(random_dag(), st.data())
def test_ready_ids_never_holds_an_unsatisfied_ticket(ns: list[Node], data: st.DataObject) -> None:
    for n in ns:
        n.status = data.draw(_ANY_STATUS)
    by_id = {n.id: n for n in ns}

    def satisfies(tid: str) -> bool:
        """Done; or skipped with every dependency satisfying (a skip never lets work overtake its own deps)."""
        n = by_id[tid]
        return n.status == TicketStatus.DONE or (n.status == TicketStatus.SKIPPED
                                                 and all(satisfies(d) for d in n.depends_on))

    ready = dag.ready_ids(ns)
    for tid in ready:
        n = by_id[tid]
        assert n.status in WAITING
        assert all(satisfies(d) for d in n.depends_on), (tid, n.depends_on)
        assert all(by_id[d].status in SATISFIED_STATUSES for d in n.depends_on)
    # ... and it misses none, in input order.
    expected = [n.id for n in ns if n.status in WAITING and all(satisfies(d) for d in n.depends_on)]
    assert ready == expected


@PROPS
@given(random_dag(), st.data())
def test_blocking_cascade_blocks_exactly_the_waiting_transitive_dependents(ns: list[Node], data: st.DataObject
                                                                         ) -> None:
    failed = set(data.draw(st.lists(st.sampled_from([n.id for n in ns]), unique=True)))
    for n in ns:
        if n.id in failed:
            n.status, n.failed_reason = TicketStatus.FAILED, f"reason-of-{n.id}"
        else:
            n.status = data.draw(st.sampled_from(WAITING))
    out = dag.blocking_cascade(ns)
    expected = set().union(*(dag.dependents_of(ns, f) for f in failed)) - failed
    assert set(out) == expected
    blocking = failed | set(out)
    by_id = {n.id: n for n in ns}
    for tid, why in out.items():
        named = [d for d in by_id[tid].depends_on if why.startswith(f"dependency {d!r} ")]
        assert named and named[0] in blocking, (tid, why)
        assert "reason-of-" in why  # the root cause travels along the chain


@PROPS
@given(random_dag(), st.data())
def test_blocking_cascade_stops_at_tickets_that_are_not_waiting(ns: list[Node], data: st.DataObject) -> None:
    """With mixed statuses: blocked = waiting tickets reachable from a failed/blocked one through waiting ones."""
    for n in ns:
        n.status = data.draw(st.sampled_from([TicketStatus.TODO, TicketStatus.READY, TicketStatus.DONE,
                                              TicketStatus.FAILED, TicketStatus.BLOCKED, TicketStatus.RUNNING]))
    by_id = {n.id: n for n in ns}
    bad = {n.id for n in ns if n.status in (TicketStatus.FAILED, TicketStatus.BLOCKED)}
    expected: set[str] = set()
    changed = True
    while changed:  # fixpoint oracle, independent of the implementation's traversal
        changed = False
        for n in ns:
            if n.id not in expected and n.status in WAITING and any(d in bad | expected for d in n.depends_on):
                expected.add(n.id)
                changed = True
    assert set(dag.blocking_cascade(ns)) == expected
    assert all(by_id[t].status in WAITING for t in expected)


# ---------------------------------------------------------------- deep graphs: no recursion

def test_a_5000_deep_chain_does_not_recurse() -> None:
    n = 5_000
    ns = [Node(f"t{i}", [f"t{i - 1}"] if i else []) for i in range(n)]
    ns.reverse()  # worst case for a naive order: every ticket before its dependency
    assert dag.problems(ns) == []
    order = dag.topological_order(ns)
    assert order == [f"t{i}" for i in range(n)]
    assert len(dag.levels(ns)) == n
    assert dag.critical_path_length(ns) == n
    assert len(dag.dependents_of(ns, "t0")) == n - 1
    ns[-1].status = TicketStatus.FAILED  # t0
    assert len(dag.blocking_cascade(ns)) == n - 1
    # Close the chain into one 5,000-long cycle: found iteratively, reported as a closed path.
    ns[-1].depends_on.append(f"t{n - 1}")
    cycle = dag.find_cycle({x.id: x.depends_on for x in ns})
    assert cycle is not None and len(cycle) == n + 1 and cycle[0] == cycle[-1]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_ready_tracker_agrees_with_ready_ids_through_any_status_changes(data) -> None:  # type: ignore[no-untyped-def]
    """The engine's incremental ready set must equal the pure oracle after every change."""
    n = data.draw(st.integers(1, 25))
    tickets = []
    for i in range(n):
        deps = sorted(set(data.draw(st.lists(st.integers(0, i - 1), max_size=3)))) if i else []
        tickets.append(Ticket(id=f"T{i}", title="t", depends_on=[f"T{j}" for j in deps]))
    tracker = dag.ReadyTracker(tickets)
    assert tracker.ids() == dag.ready_ids(tickets)
    for _ in range(data.draw(st.integers(1, 40))):
        t = tickets[data.draw(st.integers(0, n - 1))]
        t.status = data.draw(st.sampled_from(list(TicketStatus)))
        tracker.update(t.id, t.status)
        assert sorted(tracker.ids()) == sorted(dag.ready_ids(tickets))
