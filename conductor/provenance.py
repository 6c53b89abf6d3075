"""Where something comes from: the epic run, track, ticket, tier and attempt; and the stream ids they give.

Pure and frozen: events, approval requests and records carry it across threads."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


def ticket_stream_id(tier: int, track_id: str | None, ticket_id: str) -> str:
    """The stream id of a ticket's tier 3 or tier 4 pane (two tracks may both have a T1)."""
    return f"tier{tier}:{track_id}/{ticket_id}" if track_id else f"tier{tier}:{ticket_id}"


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """Where something comes from: the epic run, track, ticket, tier and attempt."""

    trace_id: str = ""
    track_id: str | None = None
    ticket_id: str | None = None
    tier: int | None = None
    attempt: int = 0

    def with_(self, **kw: Any) -> Provenance:
        return replace(self, **kw)

    @property
    def stream_id(self) -> str:
        """The pane this provenance streams into, unique at the source: `tier3:<track>/<ticket>` for workers,
        `tier4:<track>/<ticket>` for QA, `tier2:<track>` for the tech lead, `tier1` for the orchestrator."""
        if self.tier in (3, 4) and self.ticket_id:
            return ticket_stream_id(self.tier, self.track_id, self.ticket_id)
        if self.tier == 2 and self.track_id:
            return f"tier2:{self.track_id}"
        return f"tier{self.tier or 0}"

    def describe(self) -> str:
        parts = [f"tier {self.tier}" if self.tier else "", f"track {self.track_id}" if self.track_id else "",
                 f"ticket {self.ticket_id}" if self.ticket_id else "",
                 f"attempt {self.attempt}" if self.attempt else ""]
        return ", ".join(p for p in parts if p)
