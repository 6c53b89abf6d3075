"""Applying Session events to the controller's state, and restoring panes from disk when a track loads.

Each event type has one handler; `apply` looks it up in `_HANDLERS`. Handlers only change plain state and
bump the matching `versions` counters: the views redraw from that on the next frame.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from conductor.app.formatting import fmt_cost
from conductor.app.state import ControllerState
from conductor.app.streams import AGGREGATES
from conductor.approvals import ApprovalRequest, DecidedBy
from conductor.events import (
    ApprovalRequested,
    ApprovalResolved,
    ClusterPolled,
    ErrorRaised,
    Event,
    Notice,
    RecordApplied,
    RunFinished,
    StreamDelta,
    StreamReset,
    ToolCalled,
    ToolResulted,
    TrackLoaded,
    UsageRecorded,
    ticket_stream_id,
)
from conductor.model import TicketStatus, Track, TrackStatus
from conductor.records import PlanningStep, RecordError, TicketUpdated, TrackUpdated, apply
from conductor.stream_notes import tool_call_line, tool_result_line


class EventHandling(ControllerState):
    """The part of `AppController` that turns events into state (`drain` and `wait` call `apply`)."""

    def apply(self, ev: Event) -> None:
        self.applied += 1
        handler = _HANDLERS.get(type(ev))
        if handler is not None:
            handler(self, ev)

    def _on_delta(self, ev: StreamDelta) -> None:
        if ev.thought:
            return  # thoughts are not in the output files either: panes and disk stay the same text
        key = ev.stream_id
        if ev.replayed and len(self.streams.get(key)):
            return  # a resumed attempt re-shows journalled turns the pane already holds
        tier, label = ev.tier, self._label(ev)  # once: 256 busy streams apply this every frame
        self.streams.begin_attempt(key, tier, label, ev.attempt, ev.ts)
        self.streams.add(key, tier, label, ev.text)

    def _label(self, ev: Event) -> str:
        if ev.tier == 2:
            track = self.tracks.get(ev.track_id or "")
            return f"Tier 2 · {track.title if track else ev.track_id}"
        return ev.ticket_id or f"tier {ev.tier}"

    def _on_reset(self, ev: StreamReset) -> None:
        self.streams.note(ev.stream_id, ev.tier, self._label(ev),
                          f"[partial output discarded — {ev.reason}]")
        self._log(ev, "stream_reset", "warning", ev.reason)

    def _on_usage(self, ev: UsageRecorded) -> None:
        u = ev.usage
        self.streams.flush(ev.prov.stream_id, ev.tier, self._label(ev))
        cost = fmt_cost(u.cost_usd)
        self._log(ev, "usage", "info", f"{u.model}: {u.prompt_tokens:,} in, {u.output_tokens:,} out, "
                                        f"{u.thinking_tokens:,} thinking, {cost}")
        self._bump("usage")

    def _on_record(self, ev: RecordApplied) -> None:
        """Apply a record with the same `apply` the engine used: the tables can never say something else."""
        rec = ev.record
        if isinstance(rec, PlanningStep):
            self.status_message = rec.detail
            self._log(ev, "planning", "warning" if rec.step in ("rejected", "stopped") else "info", rec.detail)
            self._bump("status")
            return
        track = self.tracks.get(ev.track_id or "")
        if track is None:
            return
        ticket = track.find(rec.ticket_id) if isinstance(rec, TicketUpdated) else None
        old = ticket.status if ticket is not None else None
        old_track = track.status
        try:
            changed = apply(track, rec)
        except RecordError as exc:
            self._log(ev, "error", "warning", str(exc))
            return
        track.journal_seq = max(track.journal_seq, ev.journal_seq)
        if not changed:
            return
        if isinstance(rec, TicketUpdated) and rec.fields.status is not None:
            new = rec.fields.status
            self.clocks.observe(track.id, rec.ticket_id, new, ev.ts)
            if new == TicketStatus.RUNNING and rec.fields.attempts:  # the moment the file gets its header too
                self.streams.begin_attempt(ticket_stream_id(3, track.id, rec.ticket_id), 3, rec.ticket_id,
                                           rec.fields.attempts, ev.ts)
            self._log(ev, "ticket_status", "error" if new == TicketStatus.FAILED else "info",
                      f"{rec.ticket_id}: {old.value if old else '-'} → {new.value}"
                      + (f" ({rec.reason})" if rec.reason else ""))
            if new == TicketStatus.FAILED:
                self._show(f"Ticket {rec.ticket_id} failed: {rec.reason or 'no reason given'}")
        elif isinstance(rec, TrackUpdated) and rec.fields.status is not None:
            self.status_message = f"{track.title}: {rec.fields.status.value}"
            self._log(ev, "track_status", "info", f"track {track.id} {old_track.value} → {rec.fields.status.value}")
        self._bump("tickets", "tracks", "status")

    def _on_track(self, ev: TrackLoaded) -> None:
        track: Track = ev.track  # the sender's copy, owned by the receiver from here on
        self.tracks[track.id] = track
        if self.active_track != track.id:
            self.active_track = track.id
            self._log(ev, "track_loaded", "info", f"track {track.id}: {track.title} ({len(track.tickets)} tickets)")
        if track.status == TrackStatus.INTERRUPTED:
            self.status_message = resume_prompt(track, ev.interrupted, ev.will_ask_again)
        self._restore_panes(track)
        self._bump("tracks", "tickets", "status")

    def _on_approval(self, ev: ApprovalRequested) -> None:
        req: ApprovalRequest = ev.request
        self.pending[req.id] = req
        self._log(ev, "approval_requested", "warning", f"{req.kind.value} approval: {req.title}")
        self._bump("approvals", "status")

    def _on_resolved(self, ev: ApprovalResolved) -> None:
        self.pending.pop(ev.request_id, None)
        verdict = "approved" + (" (edited)" if ev.edited else "") if ev.approved else f"rejected: {ev.reason}"
        self._log(ev, "approval_resolved", "info", f"{ev.approval_kind} {ev.request_id} {verdict} by "
                  f"{('policy ' + (ev.policy or '')) if ev.by == DecidedBy.POLICY else ev.by.value}")
        self._bump("approvals", "status")

    def _on_tool_called(self, ev: ToolCalled) -> None:
        args = json.dumps(ev.args, ensure_ascii=False)
        self._log(ev, "tool_called", "info", f"{ev.name}({args[:160]})")
        self.streams.begin_attempt(ev.prov.stream_id, ev.tier, self._label(ev), ev.attempt, ev.ts)
        self.streams.note(ev.prov.stream_id, ev.tier, self._label(ev), tool_call_line(ev.name, ev.args))

    def _on_tool_result(self, ev: ToolResulted) -> None:
        self._log(ev, "tool_result", "info" if ev.ok else "warning",
                  f"{ev.name} {'ok' if ev.ok else 'failed'}{' (replayed)' if ev.replayed else ''}: {ev.summary}")
        # Every outcome goes in the ticket's own stream, where its effect is read; a refusal with its reason.
        self.streams.note(ev.prov.stream_id, ev.tier, self._label(ev),
                          tool_result_line(ev.name, ev.ok, ev.summary, replayed=ev.replayed))

    def _on_error(self, ev: ErrorRaised) -> None:
        self._log(ev, "error", "error", ev.message)
        self._show(ev.message.splitlines()[0] if ev.message else ev.error_type)

    def _on_notice(self, ev: Notice) -> None:
        self._log(ev, "notice", ev.level, ev.message)
        if ev.level in ("warning", "error"):
            self._show(ev.message, level=ev.level)

    def _on_cluster(self, ev: ClusterPolled) -> None:
        self.cluster.apply(ev)

    def _on_finished(self, ev: RunFinished) -> None:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(ev.counts.items()))
        self.status_message = f"run finished: {ev.status} ({counts})"
        self._log(ev, "run_finished", "info", self.status_message)
        self._bump("status")

    # ---------------- restoring panes from disk (after a restart or a load)

    def _restore_panes(self, track: Track) -> None:
        if track.id in self._restored:
            return
        self._restored.add(track.id)
        self._restore_clocks(track)
        store, tail = self.session.store, self.cfg.gui.stream_tail_chars
        folder = store.track_dir(track.id)
        sources = [("tier1", 1, store.output_path(folder, "tier1"), "Tier 1"),
                   (f"tier2:{track.id}", 2, store.output_path(folder, "tier2"), f"Tier 2 · {track.title}")]
        for t in track.tickets:
            for tier in (3, 4):
                sources.append((ticket_stream_id(tier, track.id, t.id), tier,
                                store.ticket_output(track.id, t.id, tier), t.id))
        for key, tier, path, label in sources:
            if len(self.streams.get(key)):
                continue  # live text is already there
            text, is_tail = store.read_output_tail(path, tail)
            if text:
                self.streams.restore(key, text, is_tail)
                if tier != 1:
                    self._restore_aggregate(tier, label, text)

    def _restore_clocks(self, track: Track) -> None:
        """Each ticket's elapsed time from the timestamps of its journalled status records."""
        self.clocks.forget(track.id)
        last = None
        for entry in self.session.store.journal(track.id).entries():
            if entry.seq > track.journal_seq:
                break  # later records arrive as events (and are counted there)
            last = entry.ts
            if entry.type == "ticket_update":
                try:
                    rec = entry.record
                except RecordError:
                    continue  # a line this version cannot read: the load already warned about it
                if isinstance(rec, TicketUpdated) and rec.fields.status is not None:
                    self.clocks.observe(track.id, rec.ticket_id, rec.fields.status, entry.ts)
        if last is not None and track.status != TrackStatus.RUNNING:
            self.clocks.stop_all(track.id, last)  # interrupted: the time the app was closed is nobody's work

    def _restore_aggregate(self, tier: int, label: str, text: str) -> None:
        buf = self.streams.get(AGGREGATES[tier])
        if tier == 2:
            buf.append(f"── {label} ──\n{text}\n")
        else:
            buf.append("".join(f"[{label}] {ln}\n" for ln in text.split("\n") if ln.strip()))


def resume_prompt(track: Track, interrupted: tuple[str, ...], will_ask_again: int) -> str:
    """What the status bar says about a track the app stopped in the middle of."""
    parts = [f"{track.title} was interrupted"]
    if interrupted:
        parts.append(f"{len(interrupted)} ticket{'s' if len(interrupted) != 1 else ''} continue")
    if will_ask_again:
        parts.append(f"{will_ask_again} approval{'s' if will_ask_again != 1 else ''} will be asked again")
    return ", ".join(parts) + " — Resume"


_HANDLERS: dict[type, Callable[[EventHandling, Any], None]] = {
    StreamDelta: EventHandling._on_delta,
    StreamReset: EventHandling._on_reset,
    UsageRecorded: EventHandling._on_usage,
    RecordApplied: EventHandling._on_record,
    TrackLoaded: EventHandling._on_track,
    ApprovalRequested: EventHandling._on_approval,
    ApprovalResolved: EventHandling._on_resolved,
    ToolCalled: EventHandling._on_tool_called,
    ToolResulted: EventHandling._on_tool_result,
    ErrorRaised: EventHandling._on_error,
    Notice: EventHandling._on_notice,
    RunFinished: EventHandling._on_finished,
    ClusterPolled: EventHandling._on_cluster,
}
