"""The seam between the engine and remote execution: what the engine hands over and how it hears back.

Light on purpose (no redis, no dramatiq): conductor.attempt names it for `EngineDeps.remote`, and a run without a
broker never imports more of conductor.distributed than this.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeAlias

if TYPE_CHECKING:
    from conductor.attempt import AttemptResult
    from conductor.events import Provenance
    from conductor.gitwork import GitWork
    from conductor.model import Ticket, Track
    from conductor.store import Journal, TrackStore

Outcome: TypeAlias = "AttemptResult | BaseException"


@dataclass
class RemoteJob:
    """One attempt the engine handed over, with the callbacks it reports through (as a local worker thread
    would: review started, then exactly one outcome)."""

    track: Track
    ticket: Ticket
    attempt: int
    model: str
    prov: Provenance
    cancel: threading.Event
    resolve_from: str | None
    git: GitWork
    journal: Journal | None
    store: TrackStore | None
    on_review: Callable[[], None]
    on_done: Callable[[Outcome], None]


class RemoteAttempts(Protocol):
    def submit(self, job: RemoteJob) -> None:
        """Take the attempt; report through `job.on_review` / `job.on_done` from any thread."""
