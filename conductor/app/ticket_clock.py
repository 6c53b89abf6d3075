"""Elapsed time per ticket, derived from when its status records were applied (event and journal timestamps),
never from clocks read on another thread.

A ticket's clock runs while it is running or in review, over all its attempts; waiting (for approval, for
its dependencies, on the failed shelf) does not count. A running ticket's figure grows with `now`, which
only the caller (the GUI thread, once per frame) supplies.
"""

from __future__ import annotations

from dataclasses import dataclass

from conductor.model import TicketStatus

WORKING = frozenset({TicketStatus.RUNNING, TicketStatus.REVIEW})


@dataclass
class _Clock:
    spent: float = 0.0
    since: float | None = None
    """When the current working stretch began (None: not working)."""


class TicketClocks:
    def __init__(self) -> None:
        self._clocks: dict[tuple[str, str], _Clock] = {}

    def observe(self, track_id: str, ticket_id: str, status: TicketStatus, ts: float) -> None:
        """A status record for the ticket was applied at `ts` (seconds since the epoch)."""
        clock = self._clocks.setdefault((track_id, ticket_id), _Clock())
        working = status in WORKING
        if working and clock.since is None:
            clock.since = ts
        elif not working and clock.since is not None:
            clock.spent += max(0.0, ts - clock.since)  # a clock step backwards never makes time negative
            clock.since = None

    def forget(self, track_id: str) -> None:
        """Before a track's history is read again from its journal."""
        for key in [k for k in self._clocks if k[0] == track_id]:
            del self._clocks[key]

    def stop_all(self, track_id: str, ts: float) -> None:
        """The track stopped working at `ts` (the app closed mid-run): time away is not the ticket's."""
        for (t, _), clock in self._clocks.items():
            if t == track_id and clock.since is not None:
                clock.spent += max(0.0, ts - clock.since)
                clock.since = None

    def elapsed(self, track_id: str, ticket_id: str, now: float) -> float | None:
        """Seconds worked so far; None when the ticket never ran (as far as the records say)."""
        clock = self._clocks.get((track_id, ticket_id))
        if clock is None:
            return None
        return clock.spent + (max(0.0, now - clock.since) if clock.since is not None else 0.0)

    def ticking(self, track_id: str) -> bool:
        """Whether some ticket of the track is working now (its figure changes every second)."""
        return any(c.since is not None for (t, _), c in self._clocks.items() if t == track_id)


def fmt_elapsed(seconds: float | None) -> str:
    """'—' (never ran), '42s', '3m 05s', '1h 02m'."""
    if seconds is None:
        return "—"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"
