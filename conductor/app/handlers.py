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
from conductor.app.streams import AGGREGATES, stream_key
from conductor.approvals import ApprovalRequest
from conductor.events import (ApprovalRequested, ApprovalResolved, ErrorRaised, Event, Notice, RunFinished,
                              StatusChanged, StreamDelta, StreamReset, ToolCalled, ToolResulted, TrackLoaded,
                              UsageRecorded)
from conductor.model import ACTIVE_STATUSES, TicketStatus, Track, TrackStatus


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
        key = stream_key(ev.stream_id, ev.track_id)
        if ev.replayed and len(self.streams.get(key)):
            return  # a resumed attempt re-shows journalled turns the pane already holds
        self.streams.add(key, ev.tier, self._label(ev), ev.text)

    def _label(self, ev: Event) -> str:
        if ev.tier == 2:
            track = self.tracks.get(ev.track_id or "")
            return f"Tier 2 · {track.title if track else ev.track_id}"
        return ev.ticket_id or f"tier {ev.tier}"

    def _on_reset(self, ev: StreamReset) -> None:
        self.streams.note(stream_key(ev.stream_id, ev.track_id), ev.tier, self._label(ev),
                          f"[partial output discarded — {ev.reason}]")
        self._log(ev, "stream_reset", "warning", ev.reason)

    def _on_usage(self, ev: UsageRecorded) -> None:
        u = ev.usage
        self.streams.flush(stream_key(ev.prov.stream_id, ev.track_id), ev.tier, self._label(ev))
        cost = fmt_cost(u.cost_usd)
        self._log(ev, "usage", "info", f"{u.model}: {u.prompt_tokens:,} in, {u.output_tokens:,} out, "
                                        f"{u.thinking_tokens:,} thinking, {cost}")
        self._bump("usage")

    def _on_status(self, ev: StatusChanged) -> None:
        track = self.tracks.get(ev.track_id or "")
        if ev.ticket_id is None:
            if track is not None:
                track.status = TrackStatus(ev.new)
                self.status_message = f"{track.title}: {ev.new}"
            self._log(ev, "track_status", "info", f"track {ev.track_id} {ev.old or '-'} → {ev.new}")
            self._bump("tracks", "status")
            return
        self._log(ev, "ticket_status", "error" if ev.new == "failed" else "info",
                  f"{ev.ticket_id}: {ev.old} → {ev.new}" + (f" ({ev.reason})" if ev.reason else ""))
        if ev.new == TicketStatus.FAILED.value:
            self._show(f"Ticket {ev.ticket_id} failed: {ev.reason or 'no reason given'}")
        if track is None:
            return
        try:
            t = track.ticket(ev.ticket_id)
        except KeyError:
            return
        _apply_ticket_status(t, ev)
        self._bump("tickets", "tracks", "status")

    def _on_track(self, ev: TrackLoaded) -> None:
        track: Track = ev.track.model_copy(deep=True)
        self.tracks[track.id] = track
        if self.active_track != track.id:
            self.active_track = track.id
            self._log(ev, "track_loaded", "info", f"track {track.id}: {track.title} ({len(track.tickets)} tickets)")
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
        self._log(ev, "approval_resolved", "info", f"{ev.approval_kind} {ev.request_id} {verdict} by {ev.by}")
        self._bump("approvals", "status")

    def _on_tool_called(self, ev: ToolCalled) -> None:
        args = json.dumps(ev.args, ensure_ascii=False)
        self._log(ev, "tool_called", "info", f"{ev.name}({args[:160]})")

    def _on_tool_result(self, ev: ToolResulted) -> None:
        self._log(ev, "tool_result", "info" if ev.ok else "warning",
                  f"{ev.name} {'ok' if ev.ok else 'failed'}{' (replayed)' if ev.replayed else ''}: {ev.summary}")

    def _on_error(self, ev: ErrorRaised) -> None:
        self._log(ev, "error", "error", ev.message)
        self._show(ev.message.splitlines()[0] if ev.message else ev.error_type)

    def _on_notice(self, ev: Notice) -> None:
        self._log(ev, "notice", ev.level, ev.message)
        if ev.level in ("warning", "error"):
            self._show(ev.message, level=ev.level)

    def _on_finished(self, ev: RunFinished) -> None:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(ev.counts.items()))
        self.status_message = f"run finished: {ev.status} ({counts})"
        self._log(ev, "run_finished", "info", self.status_message)
        track = self.tracks.get(ev.track_id or "")
        if track is not None:
            track.status = TrackStatus(ev.status)
        self._bump("tracks", "status")

    # ---------------- restoring panes from disk (after a restart or a load)

    def _restore_panes(self, track: Track) -> None:
        if track.id in self._restored:
            return
        self._restored.add(track.id)
        store, tail = self.session.store, self.cfg.gui.stream_tail_chars
        folder = store.track_dir(track.id)
        sources = [("tier1", 1, store.output_path(folder, "tier1"), "Tier 1"),
                   (f"tier2:{track.id}", 2, store.output_path(folder, "tier2"), f"Tier 2 · {track.title}")]
        for t in track.tickets:
            for tier in (3, 4):
                sources.append((stream_key(f"tier{tier}:{t.id}", track.id), tier,
                                store.ticket_output(track.id, t.id, tier), t.id))
        for key, tier, path, label in sources:
            if len(self.streams.get(key)):
                continue  # live text is already there
            text, is_tail = store.read_output_tail(path, tail)
            if text:
                self.streams.get(key).replace(text, is_tail)
                if tier != 1:
                    self._restore_aggregate(tier, label, text)

    def _restore_aggregate(self, tier: int, label: str, text: str) -> None:
        buf = self.streams.get(AGGREGATES[tier])
        if tier == 2:
            buf.append(f"── {label} ──\n{text}\n")
        else:
            buf.append("".join(f"[{label}] {ln}\n" for ln in text.split("\n") if ln.strip()))


def _apply_ticket_status(t: Any, ev: StatusChanged) -> None:
    new = TicketStatus(ev.new)
    t.status = new
    if ev.attempt:
        t.attempts = ev.attempt
    if ev.model:
        t.model_used = ev.model
    if new == TicketStatus.FAILED:
        t.failed_reason = ev.reason
    elif new == TicketStatus.BLOCKED:
        t.blocked_reason = ev.reason
    elif new in (TicketStatus.DONE, TicketStatus.SKIPPED, TicketStatus.TODO) or new in ACTIVE_STATUSES:
        t.failed_reason = t.blocked_reason = None
    elif ev.reason:
        t.failed_reason = ev.reason


_HANDLERS: dict[type, Callable[[EventHandling, Any], None]] = {
    StreamDelta: EventHandling._on_delta,
    StreamReset: EventHandling._on_reset,
    UsageRecorded: EventHandling._on_usage,
    StatusChanged: EventHandling._on_status,
    TrackLoaded: EventHandling._on_track,
    ApprovalRequested: EventHandling._on_approval,
    ApprovalResolved: EventHandling._on_resolved,
    ToolCalled: EventHandling._on_tool_called,
    ToolResulted: EventHandling._on_tool_result,
    ErrorRaised: EventHandling._on_error,
    Notice: EventHandling._on_notice,
    RunFinished: EventHandling._on_finished,
}
