"""Pure graph logic over tickets: validation that names the problem, ready set, blocking cascade, critical path.

Every function takes plain tickets (anything with `id`, `depends_on`, and for the runtime functions `status`)
and returns new values; nothing here mutates, sleeps or does I/O.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from conductor.errors import DagInvalid
from conductor.model import TicketStatus


class _Node(Protocol):
    id: str
    depends_on: list[str]


class _StatusNode(_Node, Protocol):
    status: TicketStatus
    failed_reason: str | None
    blocked_reason: str | None


def problems(tickets: Sequence[_Node]) -> list[str]:
    """Every reason the tickets do not form a valid DAG, each naming the ids involved. Empty when valid."""
    out: list[str] = []
    seen: set[str] = set()
    for t in tickets:
        if t.id in seen:
            out.append(f"duplicate ticket id {t.id!r}")
        seen.add(t.id)
    for t in tickets:
        for dep in t.depends_on:
            if dep == t.id:
                out.append(f"ticket {t.id!r} depends on itself")
            elif dep not in seen:
                out.append(f"ticket {t.id!r} depends on unknown ticket {dep!r}")
        dupes = {d for d in t.depends_on if t.depends_on.count(d) > 1}
        for d in sorted(dupes):
            out.append(f"ticket {t.id!r} lists dependency {d!r} more than once")
    cycle = find_cycle({t.id: [d for d in t.depends_on if d != t.id and d in seen] for t in tickets})
    if cycle:
        out.append("dependency cycle " + " -> ".join(cycle))
    return out


def ensure_valid(tickets: Sequence[_Node]) -> None:
    """Raise DagInvalid listing every problem, or return None when the graph is a valid DAG."""
    found = problems(tickets)
    if found:
        raise DagInvalid(found)


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A dependency cycle as a closed path [a, b, ..., a], or None. Iterative DFS: deep graphs do not recurse."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    for root in graph:
        if colour[root] != white:
            continue
        stack: list[tuple[str, list[str]]] = [(root, list(graph[root]))]
        path = [root]
        colour[root] = grey
        while stack:
            node, todo = stack[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in colour:
                    continue
                if colour[nxt] == grey:
                    return [*path[path.index(nxt):], nxt]
                if colour[nxt] == white:
                    colour[nxt] = grey
                    stack.append((nxt, list(graph[nxt])))
                    path.append(nxt)
            else:
                colour[node] = black
                stack.pop()
                path.pop()
    return None


def topological_order(tickets: Sequence[_Node]) -> list[str]:
    """Ids in an order where every ticket comes after its dependencies (Kahn; ties keep input order)."""
    ensure_valid(tickets)
    indeg = {t.id: len(t.depends_on) for t in tickets}
    dependents: dict[str, list[str]] = {t.id: [] for t in tickets}
    for t in tickets:
        for d in t.depends_on:
            dependents[d].append(t.id)
    order = [t.id for t in tickets if indeg[t.id] == 0]
    i = 0
    while i < len(order):
        for child in dependents[order[i]]:
            indeg[child] -= 1
            if indeg[child] == 0:
                order.append(child)
        i += 1
    return order


def levels(tickets: Sequence[_Node]) -> list[list[str]]:
    """Tickets grouped by depth (longest dependency chain below them). Used by the barrier baseline in bench/."""
    depth: dict[str, int] = {}
    by_id = {t.id: t for t in tickets}
    for tid in topological_order(tickets):
        depth[tid] = 1 + max((depth[d] for d in by_id[tid].depends_on), default=-1)
    out: list[list[str]] = [[] for _ in range(1 + max(depth.values(), default=-1))]
    for tid in topological_order(tickets):
        out[depth[tid]].append(tid)
    return out


def critical_path_length(tickets: Sequence[_Node], weight: Mapping[str, float] | None = None) -> float:
    """Length of the longest dependency chain, summing `weight` per ticket (1 each when not given)."""
    by_id = {t.id: t for t in tickets}
    finish: dict[str, float] = {}
    for tid in topological_order(tickets):
        w = 1.0 if weight is None else weight[tid]
        finish[tid] = w + max((finish[d] for d in by_id[tid].depends_on), default=0.0)
    return max(finish.values(), default=0.0)


def satisfied_ids(tickets: Sequence[_StatusNode]) -> set[str]:
    """Tickets that satisfy their dependents: done, or skipped once every one of their own dependencies is
    satisfied (skipping a ticket never lets its dependents overtake the work it was waiting for)."""
    by_id = {t.id: t for t in tickets}
    out: set[str] = set()
    for tid in topological_order(tickets):
        t = by_id[tid]
        if t.status == TicketStatus.DONE or (t.status == TicketStatus.SKIPPED
                                             and all(d in out for d in t.depends_on)):
            out.add(tid)
    return out


def ready_ids(tickets: Sequence[_StatusNode]) -> list[str]:
    """Tickets waiting (todo or ready) whose every dependency is satisfied (see `satisfied_ids`), in input
    order."""
    sat = satisfied_ids(tickets)
    return [t.id for t in tickets
            if t.status in (TicketStatus.TODO, TicketStatus.READY) and all(d in sat for d in t.depends_on)]


_BLOCKING = frozenset({TicketStatus.FAILED, TicketStatus.BLOCKED})


def blocking_cascade(tickets: Sequence[_StatusNode]) -> dict[str, str]:
    """Waiting tickets that can never run because a dependency failed or is blocked, with the reason.

    Multi-hop: a ticket behind a blocked ticket is blocked too, and its reason names the chain's first link.
    Returns {ticket id: reason} for tickets whose status should become BLOCKED (already-blocked ones excluded).
    """
    by_id = {t.id: t for t in tickets}
    reason: dict[str, str] = {}
    for t in tickets:
        if t.status in _BLOCKING:
            reason[t.id] = t.failed_reason or t.blocked_reason or t.status.value
    out: dict[str, str] = {}
    for tid in topological_order(tickets):
        t = by_id[tid]
        if t.status == TicketStatus.SKIPPED:  # a skip passes a blocking dependency on to its dependents
            for d in t.depends_on:
                if d in reason:
                    reason[tid] = f"skipped, and its dependency {d!r} cannot finish: {reason[d]}"
                    break
            continue
        if t.status not in (TicketStatus.TODO, TicketStatus.READY):
            continue
        for d in t.depends_on:
            if d in reason:
                verb = {TicketStatus.FAILED: "failed", TicketStatus.SKIPPED: "was skipped"}.get(by_id[d].status,
                                                                                                "is blocked")
                out[tid] = reason[tid] = f"dependency {d!r} {verb}: {reason[d]}"
                break
    return out


def dependents_of(tickets: Sequence[_Node], ticket_id: str) -> set[str]:
    """Every ticket that depends on `ticket_id`, directly or transitively."""
    children: dict[str, list[str]] = {t.id: [] for t in tickets}
    for t in tickets:
        for d in t.depends_on:
            children.setdefault(d, []).append(t.id)
    out: set[str] = set()
    todo = [ticket_id]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


class ReadyTracker:
    """The ready set, kept up to date in O(children) per status change instead of O(tickets) per query.

    A ticket is ready when it waits (todo/ready) and every dependency is satisfied (done, or skipped with its
    own dependencies satisfied) — the same rule as `ready_ids`, which tests use as the oracle. `ids` lists them
    in the order they became ready; `first` is the one to start next: the ticket heading the longest chain of
    work still below it (critical path first), ties in the order they became ready. Build it again after the
    graph itself changes (an edit of depends_on).
    """

    def __init__(self, tickets: Sequence[_StatusNode]) -> None:
        from collections import OrderedDict

        by_id = {t.id: t for t in tickets}
        self._status = {t.id: t.status for t in tickets}
        self._children: dict[str, list[str]] = {t.id: [] for t in tickets}
        self._unmet: dict[str, int] = {}
        for t in tickets:
            for d in t.depends_on:
                self._children.setdefault(d, []).append(t.id)
        for tid in topological_order(tickets):
            self._unmet[tid] = sum(1 for d in by_id[tid].depends_on if not self._sat(d))
        self._ready: OrderedDict[str, None] = OrderedDict(
            (t.id, None) for t in tickets if self._waiting(t.id) and self._unmet[t.id] == 0)
        self._new: list[str] = list(self._ready)
        # Longest chain of dependents below each ticket, itself included. With more ready tickets than workers,
        # starting those in readiness order let a long chain queue behind short ones and set the makespan; its
        # head goes first instead (list scheduling by bottom level).
        self._rank: dict[str, int] = {}
        for tid in reversed(topological_order(tickets)):
            self._rank[tid] = 1 + max((self._rank[c] for c in self._children.get(tid, ())), default=0)
        self._order = itertools.count()
        self._heap: list[tuple[int, int, str]] = [(-self._rank[tid], next(self._order), tid) for tid in self._ready]
        heapq.heapify(self._heap)

    def _sat(self, tid: str) -> bool:
        s = self._status.get(tid)
        return s == TicketStatus.DONE or (s == TicketStatus.SKIPPED and self._unmet.get(tid, 0) == 0)

    def _waiting(self, tid: str) -> bool:
        return self._status[tid] in (TicketStatus.TODO, TicketStatus.READY)

    def _refresh(self, tid: str) -> None:
        if self._waiting(tid) and self._unmet[tid] == 0:
            if tid not in self._ready:
                self._ready[tid] = None
                self._new.append(tid)
                heapq.heappush(self._heap, (-self._rank.get(tid, 1), next(self._order), tid))
        else:
            self._ready.pop(tid, None)

    def take_new(self) -> list[str]:
        """Ids that became ready since the last call and are still ready (O(new), not O(ready))."""
        new, self._new = self._new, []
        return [tid for tid in new if tid in self._ready]

    def update(self, tid: str, new: TicketStatus) -> None:
        was = self._sat(tid)
        self._status[tid] = new
        stack = [(tid, was)]
        while stack:  # a change of satisfaction flows down through skipped tickets
            x, before = stack.pop()
            now = self._sat(x)
            if before == now:
                continue
            for child in self._children.get(x, []):
                child_before = self._sat(child)
                self._unmet[child] += -1 if now else 1
                self._refresh(child)
                stack.append((child, child_before))
        self._refresh(tid)

    def first(self) -> str | None:
        """The ready ticket to start next (critical path first), or None."""
        heap = self._heap
        while heap and heap[0][2] not in self._ready:  # left the ready set since it was pushed
            heapq.heappop(heap)
        return heap[0][2] if heap else None

    def ids(self) -> list[str]:
        return list(self._ready)

    def __bool__(self) -> bool:
        return bool(self._ready)
