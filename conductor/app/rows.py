"""The plain rows the views show: tickets, tracks, usage table lines and log entries (frozen dataclasses)."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class TicketRow:
    id: str
    title: str
    depends_on: tuple[str, ...]
    status: str
    attempts: int
    model: str
    reason: str
    model_override: str | None


@dataclass(frozen=True)
class TrackRow:
    id: str
    title: str
    status: str
    done: int
    total: int
    cost: str = ""
    """What the track spent (all its calls), as shown: '$0.0123', or 'unknown' when a call had no price."""

    @property
    def progress(self) -> float:
        return self.done / self.total if self.total else 0.0


@dataclass(frozen=True)
class UsageRow:
    label: str
    calls: int
    prompt: str
    output: str
    thinking: str
    cached: str
    cost: str


@dataclass(frozen=True)
class LogEntry:
    seq: int
    ts: float
    tier: int | None
    track_id: str | None
    ticket_id: str | None
    kind: str
    level: str
    text: str

    def line(self) -> str:
        where = " ".join(x for x in (f"T{self.tier}" if self.tier else "", self.ticket_id or "") if x)
        stamp = time.strftime("%H:%M:%S", time.localtime(self.ts))
        return f"{stamp}  {self.level.upper():7}  {where:8}  {self.kind:18}  {self.text}"
