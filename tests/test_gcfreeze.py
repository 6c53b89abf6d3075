"""gcfreeze: while anything holds a freeze, long-lived objects are out of the full collections' walk; a holder
letting go reclaims the cycles that died meanwhile, and the last one leaves nothing frozen."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from helpers import wait_for

from conductor import gcfreeze


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.fixture(autouse=True)
def no_holders() -> Iterator[None]:
    # an engine releases its hold before join() returns, and the GUI on close: none may be left from other tests
    wait_for(lambda: gcfreeze.holders() == 0, timeout=10, what="no freeze held by an earlier test's app or engine")
    yield
    while gcfreeze.holders():
        gcfreeze.thaw()
    assert gc.get_freeze_count() == 0


def test_a_freeze_takes_what_lives_out_of_full_collections_and_the_last_thaw_gives_it_back() -> None:
    gcfreeze.freeze()
    frozen = gc.get_freeze_count()
    assert frozen > 1000, "startup's objects (modules, classes, schemas) were not frozen"
    gcfreeze.freeze()  # nested (the GUI, then an engine run)
    gcfreeze.thaw()
    assert gc.get_freeze_count() > 0, "an inner thaw unfroze what the outer holder still holds"
    gcfreeze.thaw()
    assert gc.get_freeze_count() == 0
    assert gcfreeze._after_collection not in gc.callbacks


def test_what_survives_a_full_collection_while_held_is_frozen_too() -> None:
    gcfreeze.freeze()
    before = gc.get_freeze_count()
    kept = [Node() for _ in range(500)]
    gc.collect()
    assert gc.get_freeze_count() >= before + 500
    del kept


def test_a_cycle_frozen_while_alive_is_reclaimed_when_a_holder_lets_go() -> None:
    gcfreeze.freeze()  # the GUI
    gcfreeze.freeze()  # a run
    node = Node()
    gone = weakref.ref(node)
    gc.collect()  # survives a full pass: frozen
    del node
    gc.collect()
    assert gone() is not None, "frozen objects are never walked (this is what keeps full passes short)"
    gcfreeze.thaw()  # the run ends; the GUI still holds
    assert gone() is None, "a dead cycle outlived the run that froze it"
    assert gc.get_freeze_count() > 0, "what still lives is frozen again"


def test_the_last_thaw_removes_the_callback_before_unfreezing() -> None:
    """Else a full collection on another thread in between would freeze everything with no holder left."""
    gcfreeze.freeze()
    seen: list[bool] = []
    real_unfreeze = gc.unfreeze

    def unfreeze() -> None:
        seen.append(gcfreeze._after_collection in gc.callbacks)
        real_unfreeze()
    gc.unfreeze = unfreeze  # type: ignore[assignment]
    try:
        gcfreeze.thaw()
    finally:
        gc.unfreeze = real_unfreeze  # type: ignore[assignment]
    assert seen == [False]
