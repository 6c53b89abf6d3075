"""Derived views: what the panels show, computed from the controller's state (rows, counts, status text,
the dashboard's numbers, filtered log lines)."""

from __future__ import annotations

from conductor.app.cost_estimate import CostEstimator
from conductor.app.formatting import fmt_cost
from conductor.app.rows import LogEntry, TicketRow, TrackRow
from conductor.app.state import ControllerState
from conductor.app.ticket_clock import fmt_elapsed
from conductor.app.usage_view import UsageView, build_usage_view
from conductor.approvals import ApprovalRequest
from conductor.model import TicketStatus, TrackStatus
from conductor.usage import BudgetScope


class DerivedViews(ControllerState):
    """The part of `AppController` the views read from; nothing here changes state but the usage cache."""

    def ticket_rows(self, track_id: str | None = None) -> list[TicketRow]:
        track = self.tracks.get(track_id or self.active_track or "")
        if track is None:
            return []
        return [TicketRow(t.id, t.title, tuple(t.depends_on), t.status.value, t.attempts,
                          t.model_used or t.model_override or "", t.failed_reason or t.blocked_reason or "",
                          t.model_override) for t in track.tickets]

    def cost_estimator(self) -> CostEstimator:
        """Estimates for the ticket review (made once: the prices and tool declarations do not change)."""
        if self._estimator is None:
            s = self.session
            protected = (s.store.root, *((self.config_path,) if self.config_path is not None else ()))
            self._estimator = CostEstimator(s.workspace, protected, s.toolbox.specs())
        return self._estimator

    def ticket_elapsed(self, ticket_id: str, now: float) -> str:
        """How long the ticket has worked (running or in review), '—' if never; `now` only moves a running
        ticket's figure and comes from the caller's own thread."""
        return fmt_elapsed(self.clocks.elapsed(self.active_track or "", ticket_id, now))

    def track_rows(self) -> list[TrackRow]:
        spent = self.session.ledger.by_track()
        rows = [TrackRow(t.id, t.title, t.status.value,
                         sum(x.status in (TicketStatus.DONE, TicketStatus.SKIPPED) for x in t.tickets), len(t.tickets),
                         fmt_cost(spent[t.id].cost_usd) if t.id in spent else fmt_cost(0.0))
                for t in self.tracks.values()]
        newest_first = sorted(rows, key=lambda r: r.id, reverse=True)
        return sorted(newest_first, key=lambda r: r.status == TrackStatus.ARCHIVED.value)  # stable: archived last

    def pending_list(self, kind: str | None = None) -> list[ApprovalRequest]:
        return [r for r in self.pending.values() if kind is None or r.kind.value == kind]

    def window_title(self, base: str = "Conductor") -> str:
        """"Conductor (2)" while two approvals wait: the person sees it from the task bar."""
        n = len(self.pending)
        return f"{base} ({n})" if n else base

    def counts(self) -> dict[str, int]:
        out = {"running": 0, "review": 0, "awaiting": 0, "failed": 0, "approvals": len(self.pending)}
        for track in self.tracks.values():
            for t in track.tickets:
                if t.status == TicketStatus.RUNNING:
                    out["running"] += 1
                elif t.status == TicketStatus.REVIEW:
                    out["review"] += 1
                elif t.status == TicketStatus.AWAITING_APPROVAL:
                    out["awaiting"] += 1
                elif t.status == TicketStatus.FAILED:
                    out["failed"] += 1
        return out

    def status_text(self) -> str:
        c = self.counts()
        parts = [f"{c['running']} running", f"{c['review']} in review"]
        if c["failed"]:
            parts.append(f"{c['failed']} failed")
        parts.append(f"{c['approvals']} approval{'s' if c['approvals'] != 1 else ''} pending")
        return "   ·   ".join(parts)

    def provider_text(self) -> str:
        label = "OFFLINE DEMO · scripted provider" if self.demo else f"provider: {self.provider_name}"
        return f"{label} — {self.provider_note}" if self.provider_note else label

    def usage_view(self) -> UsageView:
        """Dashboard numbers straight from the ledger (recomputed only when usage changed)."""
        if self._usage_cache is not None and self._usage_cache[0] == self.versions["usage"]:
            return self._usage_cache[1]
        view = build_usage_view(self.session.ledger, self.cfg.budget, self._track_title)
        self._usage_cache = (self.versions["usage"], view)
        return view

    def budget_lines(self) -> list[tuple[str, str, float]]:
        """(scope, label, fraction spent) for the lifetime, today's and the active track's budget: what the
        dashboard shows beside each Reset button."""
        b, ledger = self.cfg.budget, self.session.ledger
        out: list[tuple[str, str, float]] = []
        scopes: list[tuple[BudgetScope, str, int | None, float | None]] = [
            ("lifetime", "All tracks", b.max_tokens, b.max_cost_usd),
            ("day", "Today", b.max_tokens_per_day, b.max_cost_usd_per_day)]
        if self.active_track:
            scopes.append(("track", "This track", b.max_tokens_per_track, b.max_cost_usd_per_track))
        for scope, name, max_tokens, max_cost in scopes:
            t = ledger.spend(scope, track_id=self.active_track)
            parts = [f"{t.total_tokens:,}" + (f" / {max_tokens:,}" if max_tokens else "") + " tokens",
                     f"${t.priced_cost_usd:,.4f}" + (f" / ${max_cost:,.2f}" if max_cost else "")]
            fracs = [t.total_tokens / max_tokens] if max_tokens else []
            fracs += [t.priced_cost_usd / max_cost] if max_cost else []
            limit = "" if fracs else " (no limit)"
            out.append((scope, f"{name}: {' · '.join(parts)}{limit}", min(max(fracs, default=0.0), 1.0)))
        return out

    def _track_title(self, track_id: str | None) -> str:
        track = self.tracks.get(track_id or "")
        return track.title if track is not None else str(track_id)

    def log_lines(self, tier: int | None = None, ticket: str | None = None, limit: int = 400,
                  contains: str = "") -> list[LogEntry]:
        """The newest `limit` entries of this tier and ticket whose line holds `contains` (any case)."""
        needle = contains.strip().lower()
        out = [e for e in self.log if (tier is None or e.tier == tier) and (not ticket or e.ticket_id == ticket)
               and (not needle or needle in e.line().lower())]
        return out[-limit:]

    def ticket_ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for track in self.tracks.values():
            for t in track.tickets:
                seen.setdefault(t.id, None)
        return list(seen)
