"""Short full garbage collections in a long-running process: long-lived objects are frozen out of them.

CPython's full (generation 2) collection walks every object the collector tracks. After the GUI starts, some
45,000 of them (module contents, classes, pydantic schemas, the loaded tracks) live until the window closes, and
a run adds its journal's records, which live as long as the track is open; yet every full pass walked them all
again. Short-lived objects (events, merged stream deltas) trigger a full pass
often: with 256 workers streaming, 30 of them in 20 s, each stalling every thread for 20-35 ms: the slowest 1%
of frames (`bench/gui_stream.py --workers 256`: p99 frame 20 ms, 11 ms frozen). In a 1,000-ticket run the full
passes stopped every worker for ~85 ms in all, 0.7% of the makespan (`bench/dag_makespan.py`).

`gc.freeze()` moves every object tracked at that moment to a permanent generation that collections skip. While
anything holds a freeze (the GUI from showing its window to its close, an engine while its run is busy), what
survives a full collection is frozen too: it has proved long-lived. Frozen objects are still freed by
reference counting; only a reference cycle among them would outlive its last use. So whenever a holder lets go
and others remain, everything is thawed, collected once and frozen again (a run's discarded cycles are
reclaimed when it settles: one full collection), and the last holder leaves nothing frozen.
"""

from __future__ import annotations

import gc
import threading
from typing import Any

_lock = threading.Lock()
_holders = 0


def freeze() -> None:
    """Freeze every object tracked now, until the matching `thaw`. Cheap (no collection: a few list splices);
    garbage frozen with the rest is reclaimed at the next `thaw`."""
    global _holders
    with _lock:
        _holders += 1
        if _holders == 1:
            gc.callbacks.append(_after_collection)
        gc.freeze()


def thaw() -> None:
    """Undo one `freeze`: the last one returns every frozen object to the collector; an earlier one thaws,
    collects and freezes again what still lives."""
    global _holders
    with _lock:
        if _holders == 0:
            return
        _holders -= 1
        if _holders == 0:  # first, so a collection on another thread meanwhile cannot freeze with no holder left
            gc.callbacks.remove(_after_collection)
        gc.unfreeze()
        if _holders:
            gc.collect()
            gc.freeze()


def holders() -> int:
    return _holders


def _after_collection(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()  # survived a full pass while a holder is active: long-lived, never walked again until a thaw
