"""One ticket attempt, on a worker thread: the Tier 3 worker, then the Tier 4 review.

An attempt works on a snapshot of its ticket and never touches the engine's state; it reports back only
through the callbacks the engine gives it. The `Workbench` builds the per-ticket plumbing an attempt (and a
spawn approval) needs: the output file sinks, the tool context, the approval gate.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conductor.approvals import ApprovalBroker
from conductor.config import Config
from conductor.events import Provenance
from conductor.model import Ticket, Track
from conductor.store import Journal, TrackStore
from conductor.tiers.call import CallDeps
from conductor.tiers.reviewer import review_ticket
from conductor.tiers.worker import run_worker
from conductor.tools.base import ToolContext, Toolbox
from conductor.tools.gate import AllowPolicy, ToolGate


@dataclass
class EngineDeps:
    cfg: Config
    call: CallDeps
    broker: ApprovalBroker
    workspace: Path
    toolbox: Toolbox
    store: TrackStore | None = None
    allow: AllowPolicy | None = None
    comms_for: Callable[[str], Any] | None = None
    """track id → comms log (or None)."""
    protected: tuple[Path, ...] = ()


class Workbench:
    """Per-track factory for what an attempt uses; safe to call from any thread."""

    def __init__(self, track_id: str, deps: EngineDeps, journal: Journal | None) -> None:
        self.track_id = track_id
        self.deps = deps
        self.journal = journal

    def comms(self) -> Any:
        return self.deps.comms_for(self.track_id) if self.deps.comms_for else None

    def call_deps(self, ticket_id: str, *, tier: int, attempt: int) -> CallDeps:
        """Call plumbing whose streamed text goes to the ticket's output file, under an attempt header."""
        store, sink = self.deps.store, None
        if store is not None:
            path = store.ticket_output(self.track_id, ticket_id, tier)
            store.append_output(path, f"\n\n## attempt {attempt} · {time.strftime('%H:%M:%S')}\n\n")
            sink = lambda text, p=path: store.append_output(p, text)  # noqa: E731
        return self.deps.call.with_(journal=self.journal, sink=sink, comms=self.comms())

    def tool_ctx(self, prov: Provenance, cancel: threading.Event) -> ToolContext:
        spill = None
        if self.deps.store is not None and prov.ticket_id:
            spill = self.deps.store.ticket_output(self.track_id, prov.ticket_id).with_name(f"a{prov.attempt}.cmd.log")
        return ToolContext(workspace=self.deps.workspace, prov=prov, cancel=cancel, spill_path=spill,
                           protected=self.deps.protected)

    def gate(self) -> ToolGate:
        return ToolGate(self.deps.toolbox, self.deps.broker, self.journal, allow=self.deps.allow,
                        approval_timeout_s=self.deps.cfg.approvals.timeout_s or None, comms=self.comms())

    def raw_dir(self) -> Path:
        """Where a tier's unparseable answers are kept."""
        if self.deps.store is not None:
            return self.deps.store.track_dir(self.track_id) / "outputs"
        return Path(tempfile.gettempdir())


def run_attempt(bench: Workbench, track: Track, ticket: Ticket, model: str, *, prov: Provenance,
                cancel: threading.Event, on_review: Callable[[], None]) -> str | None:
    """Worker, then review. Returns None on pass, or the QA hint on fail; raises what the tiers raise."""
    report = run_worker(track, ticket, model, bench.call_deps(ticket.id, tier=3, attempt=prov.attempt),
                        bench.gate(), bench.tool_ctx(prov, cancel), prov=prov, cancel=cancel, journal=bench.journal)
    on_review()
    review = review_ticket(ticket, report.text, report.actions,
                           bench.call_deps(ticket.id, tier=4, attempt=prov.attempt), prov=prov, cancel=cancel,
                           raw_dir=bench.raw_dir())
    return None if review.verdict == "pass" else (review.hint or "QA failed the ticket without a hint")
