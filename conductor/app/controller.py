"""The application controller / view-model: plain Python state that the GUI renders. No dearpygui here.

Everything in `AppController` runs on the GUI thread: it drains the Session's one event queue, applies each
event to plain state (bounded stream buffers, the tracks and their tickets, pending approvals, log entries,
errors) and exposes commands (plan, approve, retry, pause, ...) that call the Session. Each piece of state
carries a `version` counter so the views redraw only what changed, at most once per frame.

Usage numbers are never summed here: the dashboard reads the Session's ledger, so it shows exactly what the
ledger holds.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conductor.approvals import ApprovalRequest
from conductor.config import Config, ConfigError, parse_config, save_config
from conductor.errors import ApprovalError, ConductorError, MissingApiKey
from conductor.events import (ApprovalRequested, ApprovalResolved, ErrorRaised, Event, Notice, RunFinished,
                              StatusChanged, StreamDelta, StreamReset, ToolCalled, ToolResulted, TrackLoaded,
                              UsageRecorded)
from conductor.model import ACTIVE_STATUSES, TIER_NAMES, TicketStatus, Track, TrackStatus
from conductor.providers.base import Provider, ProviderRequest
from conductor.providers.factory import make_provider
from conductor.session import Session
from conductor.usage import PriceTable, Totals

LOG_LIMIT = 5000
"""Log entries kept in memory (the comms log and journals on disk hold everything)."""
AGGREGATES = {2: "tier2", 3: "tier3:all", 4: "tier4"}
"""The pane that gathers every stream of a tier."""


# ---------------------------------------------------------------- formatting (shared by views and tests)

def fmt_tokens(n: int) -> str:
    return f"{n:,}"


def fmt_cost(cost: float | None) -> str:
    """Unknown is shown as unknown, never as free."""
    return "unknown" if cost is None else f"${cost:,.4f}"


def split_lines(text: str) -> list[str]:
    """One item per non-empty line (acceptance criteria, context files)."""
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def split_ids(text: str) -> list[str]:
    """Ids typed as 'T1, T2' or 'T1 T2'."""
    return [p for p in text.replace(",", " ").split() if p]


# ---------------------------------------------------------------- streams

class StreamBuffer:
    """The tail of one stream: keeps the last `limit` characters (the full text is on disk).

    Appends are O(1); the parts are compacted once they exceed 1.25 x limit, so memory stays flat however
    long the stream runs. `version` bumps on every change so a view pushes text only when it changed.
    """

    def __init__(self, key: str, limit: int) -> None:
        self.key = key
        self.limit = limit
        self.version = 0
        self.dropped = False
        """True once older text was dropped: the pane shows a tail."""
        self._parts: list[str] = []
        self._len = 0
        self._cache: str | None = ""

    def append(self, text: str) -> None:
        if not text:
            return
        self._parts.append(text)
        self._len += len(text)
        self._cache = None
        self.version += 1
        if self._len > self.limit * 1.25:
            joined = "".join(self._parts)[-self.limit:]
            self._parts, self._len, self.dropped = [joined], len(joined), True

    def replace(self, text: str, is_tail: bool) -> None:
        self._parts, self._len, self._cache = [], 0, ""
        self.dropped = is_tail
        self.append(text)
        self.version += 1

    @property
    def text(self) -> str:
        if self._cache is None:
            joined = "".join(self._parts)
            if len(joined) > self.limit:
                joined, self.dropped = joined[-self.limit:], True
            self._cache = joined
        return self._cache

    def __len__(self) -> int:
        return min(self._len, self.limit)


class Streams:
    """Every pane's buffer. Per-stream buffers (`tier3:T2@track`) plus one aggregate per tier.

    Aggregates of concurrent streams (Tier 3 "all", Tier 4) are line-based: each complete line is prefixed
    with its ticket id, so interleaved workers stay readable. Tier 2 (one track at a time) gets a header per
    track instead.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffers: dict[str, StreamBuffer] = {}
        self._partial: dict[str, str] = {}
        self._last_source: dict[str, str] = {}

    def get(self, key: str) -> StreamBuffer:
        buf = self.buffers.get(key)
        if buf is None:
            buf = self.buffers[key] = StreamBuffer(key, self.limit)
        return buf

    def text(self, key: str) -> str:
        buf = self.buffers.get(key)
        return buf.text if buf is not None else ""

    def add(self, key: str, tier: int | None, label: str, text: str) -> None:
        """Append to the stream's own buffer and to its tier's aggregate."""
        self.get(key).append(text)
        agg = AGGREGATES.get(tier or 0)
        if agg is None or agg == key:
            return
        if tier == 2:
            self._add_with_header(agg, key, label, text)
        else:
            self._add_lines(agg, key, label, text)

    def _add_with_header(self, agg: str, source: str, label: str, text: str) -> None:
        buf = self.get(agg)
        if self._last_source.get(agg) != source:
            self._last_source[agg] = source
            buf.append(("\n\n" if len(buf) else "") + f"── {label} ──\n")
        buf.append(text)

    def _add_lines(self, agg: str, source: str, label: str, text: str) -> None:
        pending = self._partial.get(source, "") + text
        *complete, rest = pending.split("\n")
        self._partial[source] = rest
        if complete:
            self.get(agg).append("".join(f"[{label}] {line}\n" for line in complete))

    def flush(self, key: str, tier: int | None, label: str) -> None:
        """A call ended: push its unfinished last line to the aggregate."""
        rest = self._partial.pop(key, "")
        agg = AGGREGATES.get(tier or 0)
        if rest and agg is not None and tier != 2:
            self.get(agg).append(f"[{label}] {rest}\n")

    def note(self, key: str, tier: int | None, label: str, text: str) -> None:
        """A line from the app itself (a retry notice) in the stream and its aggregate."""
        self.flush(key, tier, label)
        self.add(key, tier, label, f"\n{text}\n")


def stream_key(stream_id: str, track_id: str | None) -> str:
    """Ticket streams are per track (two tracks may both have a T1)."""
    if stream_id.startswith(("tier3:", "tier4:")) and track_id:
        return f"{stream_id}@{track_id}"
    return stream_id


# ---------------------------------------------------------------- rows the views show

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


@dataclass
class UsageView:
    """The dashboard's numbers, taken from the ledger in one pass."""

    by_tier: list[UsageRow] = field(default_factory=list)
    by_ticket: list[UsageRow] = field(default_factory=list)
    by_model: list[UsageRow] = field(default_factory=list)
    total: UsageRow | None = None
    series_t: list[float] = field(default_factory=list)
    series_tokens: list[float] = field(default_factory=list)
    series_cost: list[float] = field(default_factory=list)
    budget_fraction: float = 0.0
    budget_label: str = "no budget set"


def usage_row(label: str, t: Totals) -> UsageRow:
    return UsageRow(label, t.calls, fmt_tokens(t.prompt_tokens), fmt_tokens(t.output_tokens),
                    fmt_tokens(t.thinking_tokens), fmt_tokens(t.cached_tokens), fmt_cost(t.cost_usd))


# ---------------------------------------------------------------- providers that are not there

class UnavailableProvider(Provider):
    """Stands in when the chosen provider cannot be built (no API key): every call fails with the reason."""

    name = "unavailable"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def stream(self, request: ProviderRequest, cancel: threading.Event):  # type: ignore[no-untyped-def]
        raise MissingApiKey(self.reason)


def make_demo_workspace() -> tuple[Path, Path]:
    """A scratch workspace with a couple of files, and a tracks folder beside it (not inside)."""
    root = Path(tempfile.mkdtemp(prefix="conductor-demo-"))
    ws = root / "workspace"
    (ws / "src").mkdir(parents=True)
    (ws / "README.md").write_text("# Demo project\n\nA tiny project for the offline demo.\n", "utf-8")
    (ws / "src" / "app.py").write_text("def greet(name):\n    return f'hello {name}'\n", "utf-8")
    return ws, root / "tracks"


def open_session(cfg: Config, *, workspace: Path, tracks_dir: Path, provider_name: str, demo: bool = False,
                 events: Any = None, toolbox: Any = None) -> tuple[Session, str]:
    """A Session on the named provider, and a note for the status bar when the provider is limited.

    With no API key the app still opens: the provider is replaced by one that explains what is missing."""
    note = ""
    if provider_name == "scripted":
        # The demo streams at a human pace so the panes visibly fill; tests pass their own provider.
        provider: Provider = make_provider("scripted", cfg, latency_s=0.25 if demo else 0.0,
                                           chunk_delay_s=0.03 if demo else 0.0)
    else:
        try:
            provider = make_provider(provider_name, cfg)
        except MissingApiKey as exc:
            provider, note = UnavailableProvider(str(exc)), "no API key: set GEMINI_API_KEY, or run the offline demo"
    session = Session(cfg, workspace=workspace, tracks_dir=tracks_dir, provider=provider, events=events,
                      toolbox=toolbox)
    return session, note


# ---------------------------------------------------------------- the controller

class AppController:
    """The view-model. Views read its state; callbacks call its commands; `drain` applies events."""

    def __init__(self, session: Any, *, config_path: Path | None = None, demo: bool = False,
                 provider_name: str = "scripted", provider_note: str = "") -> None:
        self.session = session
        self.cfg: Config = session.cfg
        self.config_path = config_path
        self.demo = demo
        self.provider_name = provider_name
        self.provider_note = provider_note
        """Why the provider is limited (e.g. no API key), shown in the status bar."""
        self.streams = Streams(self.cfg.gui.stream_tail_chars)
        self.tracks: dict[str, Track] = {}
        self.active_track: str | None = None
        self.pending: dict[str, ApprovalRequest] = {}
        self.log: deque[LogEntry] = deque(maxlen=LOG_LIMIT)
        self.errors: deque[str] = deque(maxlen=50)
        self.banner: str | None = None
        self.banner_level = "error"
        self.status_message = ""
        self.extra_models: list[str] = []
        self.versions: dict[str, int] = {k: 0 for k in ("tracks", "tickets", "approvals", "log", "usage",
                                                         "banner", "status", "models",
                                                         "workspace")}
        self._restored: set[str] = set()
        self._models_thread: threading.Thread | None = None
        self._usage_cache: tuple[int, UsageView] | None = None
        self.applied = 0
        self._load_initial_state()

    # ---------------- bookkeeping

    def _bump(self, *names: str) -> None:
        for n in names:
            self.versions[n] += 1

    def _load_initial_state(self) -> None:
        for t in self.session.list_tracks():
            self.tracks[t.id] = t
        for req in self.session.pending_approvals():
            self.pending[req.id] = req
        self._bump("tracks", "approvals", "usage")

    @property
    def events(self) -> Any:
        return self.session.events

    # ---------------- applying events

    def drain(self, budget_s: float | None = None, max_items: int = 4096) -> list[Event]:
        """Apply queued events until the queue is empty, `max_items` were applied or `budget_s` passed.
        Applying counts against the budget, so a burst cannot stall a frame."""
        deadline = None if budget_s is None else time.perf_counter() + budget_s
        out: list[Event] = []
        while len(out) < max_items:
            batch = self.events.drain(min(64, max_items - len(out)))
            if not batch:
                break
            for ev in batch:
                self.apply(ev)
            out.extend(batch)
            if deadline is not None and time.perf_counter() >= deadline:
                break
        self._poll_models()
        return out

    def wait(self, timeout: float) -> Event | None:
        """Block up to `timeout` for one event and apply it (headless frames wait here, never sleep)."""
        ev = self.events.get(timeout)
        if ev is not None:
            self.apply(ev)
        return ev

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

    def _log(self, ev: Event, kind: str, level: str, text: str) -> None:
        self.log.append(LogEntry(ev.seq, ev.ts, ev.tier, ev.track_id, ev.ticket_id, kind, level, text))
        self._bump("log")

    def _show(self, message: str, level: str = "error") -> None:
        """The banner: the latest thing the user must see, until dismissed."""
        self.banner, self.banner_level = message, level
        if level == "error":
            self.errors.append(message)
        self._bump("banner")

    def dismiss_banner(self) -> None:
        self.banner = None
        self._bump("banner")

    def fail(self, message: str) -> str:
        """Show a command's failure and return it (dialogs show it next to their buttons too)."""
        self._show(message)
        self._log(Event(), "error", "error", message)
        return message

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

    # ---------------- derived views

    def ticket_rows(self, track_id: str | None = None) -> list[TicketRow]:
        track = self.tracks.get(track_id or self.active_track or "")
        if track is None:
            return []
        return [TicketRow(t.id, t.title, tuple(t.depends_on), t.status.value, t.attempts,
                          t.model_used or t.model_override or "", t.failed_reason or t.blocked_reason or "",
                          t.model_override) for t in track.tickets]

    def track_rows(self) -> list[TrackRow]:
        rows = [TrackRow(t.id, t.title, t.status.value,
                         sum(x.status in (TicketStatus.DONE, TicketStatus.SKIPPED) for x in t.tickets), len(t.tickets))
                for t in self.tracks.values()]
        newest_first = sorted(rows, key=lambda r: r.id, reverse=True)
        return sorted(newest_first, key=lambda r: r.status == TrackStatus.ARCHIVED.value)  # stable: archived last

    def pending_list(self, kind: str | None = None) -> list[ApprovalRequest]:
        return [r for r in self.pending.values() if kind is None or r.kind.value == kind]

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
        ledger = self.session.ledger
        view = UsageView()
        view.by_tier = [usage_row(TIER_NAMES.get(k, f"tier {k}"), v) for k, v in sorted(ledger.by_tier().items())]
        tickets = sorted(((tr, tk, v) for (tr, tk), v in ledger.by_ticket().items() if tk is not None),
                         key=lambda x: (str(x[0]), x[1]))
        several = len({tr for tr, _, _ in tickets}) > 1
        view.by_ticket = [usage_row(f"{tk} · {self._track_title(tr)[:22]}" if several else tk, v)
                          for tr, tk, v in tickets]
        view.by_model = [usage_row(k, v) for k, v in sorted(ledger.by_model().items())]
        total = ledger.total()
        view.total = usage_row("Total", total)
        self._fill_series(view, ledger.records())
        self._fill_budget(view, total)
        self._usage_cache = (self.versions["usage"], view)
        return view

    def _track_title(self, track_id: str | None) -> str:
        track = self.tracks.get(track_id or "")
        return track.title if track is not None else str(track_id)

    def _fill_series(self, view: UsageView, records: Iterable[Any]) -> None:
        recs = sorted(records, key=lambda r: r.ts)
        if not recs:
            return
        t0, tokens, cost = recs[0].ts, 0, 0.0
        for r in recs:
            tokens += r.usage.total_tokens
            cost += r.usage.cost_usd or 0.0
            view.series_t.append(r.ts - t0)
            view.series_tokens.append(float(tokens))
            view.series_cost.append(cost)

    def _fill_budget(self, view: UsageView, total: Totals) -> None:
        b = self.cfg.budget
        parts, fracs = [], []
        if b.max_tokens:
            fracs.append(total.total_tokens / b.max_tokens)
            parts.append(f"{total.total_tokens:,} / {b.max_tokens:,} tokens")
        if b.max_cost_usd:
            fracs.append(total.priced_cost_usd / b.max_cost_usd)
            parts.append(f"${total.priced_cost_usd:,.4f} / ${b.max_cost_usd:,.2f}")
        if fracs:
            view.budget_fraction = min(max(fracs), 1.0)
            view.budget_label = "   ".join(parts) + (" — budget spent" if max(fracs) >= 1 else "")
        else:
            view.budget_label = f"no budget set · {total.total_tokens:,} tokens used"

    def log_lines(self, tier: int | None = None, ticket: str | None = None, limit: int = 400) -> list[LogEntry]:
        out = [e for e in self.log if (tier is None or e.tier == tier) and (not ticket or e.ticket_id == ticket)]
        return out[-limit:]

    def ticket_ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for track in self.tracks.values():
            for t in track.tickets:
                seen.setdefault(t.id, None)
        return list(seen)

    def offered_models(self) -> list[str]:
        """The config's offered models, then the provider's list (fetched in the background), no duplicates."""
        out = list(dict.fromkeys([*self.cfg.models.offered, *self.extra_models]))
        for tier in (1, 2, 3, 4):
            m = self.cfg.models.for_tier(tier)
            if m not in out:
                out.append(m)
        return out

    def fetch_models(self) -> None:
        """Ask the provider for its models on a background thread (it may import an SDK and hit the network)."""
        if self._models_thread is not None or self.session.provider.offline:
            return
        result: list[str] = []

        def work() -> None:
            try:
                result.extend(self.session.provider.list_models())
            except Exception:  # noqa: BLE001 — the offered list still works; the list is a convenience
                pass
        self._models_result = result
        self._models_thread = threading.Thread(target=work, name="conductor-list-models", daemon=True)
        self._models_thread.start()

    def _poll_models(self) -> None:
        th = self._models_thread
        if th is not None and not th.is_alive() and getattr(self, "_models_result", None) is not None:
            self.extra_models = list(self._models_result)
            self._models_result = None
            self._bump("models")

    # ---------------- commands: planning and approvals

    def plan(self, epic: str) -> str | None:
        """Start planning an epic. Returns an error message, or None."""
        if not epic.strip():
            return self.fail("The epic is empty: describe the work first.")
        if isinstance(self.session.provider, UnavailableProvider):
            return self.fail(f"Cannot plan: {self.session.provider.reason}")
        try:
            handle = self.session.plan_epic(epic)
        except (ValueError, ConductorError, OSError) as exc:
            return self.fail(f"Cannot plan: {exc}")
        self.status_message = f"planning: Tier 1 is reading the epic ({handle.epic_id})"
        self._bump("status")
        return None

    def approve(self, request_id: str, payload: dict[str, Any] | None = None, remember: bool = False) -> str | None:
        """Approve (possibly with an edited payload). Returns the problem when the edit is refused."""
        try:
            self.session.resolve_approval(request_id, approved=True, payload=payload, remember=remember)
        except ValueError as exc:
            return f"Not approved: {exc}"
        except ApprovalError as exc:
            self.pending.pop(request_id, None)
            self._bump("approvals")
            return f"Not approved: {exc}"
        self._resolved_here(request_id)
        return None

    def reject(self, request_id: str, reason: str) -> str | None:
        try:
            self.session.resolve_approval(request_id, approved=False, reason=reason.strip() or None)
        except (ValueError, ApprovalError) as exc:
            self.pending.pop(request_id, None)
            self._bump("approvals")
            return f"Not rejected: {exc}"
        self._resolved_here(request_id)
        return None

    def _resolved_here(self, request_id: str) -> None:
        # Drop it now, not when the event arrives: the queue must never show a decided request for a frame.
        self.pending.pop(request_id, None)
        self._bump("approvals", "status")

    # ---------------- commands: tracks and tickets

    def _track_or_error(self) -> str | None:
        if self.active_track is None:
            self.fail("No track is loaded: load one from the track browser first.")
        return self.active_track

    def track_command(self, name: str, track_id: str | None = None) -> str | None:
        """pause / resume / cancel the active (or given) track."""
        tid = track_id or self._track_or_error()
        if tid is None:
            return "no track"
        try:
            self.session.command(tid, name)
        except (ValueError, ConductorError) as exc:
            return self.fail(f"Cannot {name} track {tid}: {exc}")
        self.status_message = f"{name} sent to {tid}"
        self._bump("status")
        return None

    def ticket_command(self, name: str, ticket_id: str, **args: Any) -> str | None:
        """retry / skip / edit / cancel_ticket on a ticket of the active track."""
        tid = self._track_or_error()
        if tid is None:
            return "no track"
        try:
            self.session.command(tid, name, ticket_id=ticket_id, **args)
        except (ValueError, ConductorError) as exc:
            return self.fail(f"Cannot {name} {ticket_id}: {exc}")
        return None

    def set_model_override(self, ticket_id: str, model: str | None) -> str | None:
        return self.ticket_command("edit", ticket_id, fields={"model_override": model or None})

    def load_track(self, track_id: str) -> str | None:
        try:
            self.session.load_track(track_id)
        except (ConductorError, ValueError, OSError) as exc:
            return self.fail(f"Cannot load {track_id}: {exc}")
        return None

    def resume_track(self, track_id: str) -> str | None:
        try:
            self.session.run_track(track_id)
        except (ConductorError, ValueError, OSError) as exc:
            return self.fail(f"Cannot resume {track_id}: {exc}")
        return None

    def archive_track(self, track_id: str) -> str | None:
        try:
            self.session.archive_track(track_id)
        except (ConductorError, ValueError, OSError) as exc:
            return self.fail(f"Cannot archive {track_id}: {exc}")
        return None

    # ---------------- commands: settings

    def set_step_mode(self, on: bool) -> None:
        self.cfg.engine.step_mode = bool(on)

    def set_auto_run(self, on: bool) -> None:
        self.session.auto_run = bool(on)

    def set_tier_model(self, tier: int, model: str) -> str | None:
        try:
            setattr(self.cfg.models, f"tier{tier}", model)
        except ValueError as exc:
            return self.fail(f"Model for tier {tier} refused: {exc}")
        return None

    def save_settings(self, data: dict[str, Any]) -> str | None:
        """Validate a whole config (as a dict), save it atomically, apply it live. Returns the problem or None."""
        try:
            new = parse_config(data, source=str(self.config_path or "config.toml"))
        except ConfigError as exc:
            return str(exc)
        if self.config_path is not None:
            try:
                save_config(new, self.config_path)
            except (ConfigError, OSError) as exc:
                return f"Could not save {self.config_path}: {exc}"
        for name in type(new).model_fields:
            setattr(self.cfg, name, getattr(new, name))
        self.session.ledger.prices = PriceTable(self.cfg.prices)
        self.status_message = f"settings saved to {self.config_path}" if self.config_path else "settings applied"
        self._bump("status", "usage", "models")
        return None

    def switch(self, *, workspace: Path | None = None, provider: str | None = None, tracks_dir: Path | None = None,
               demo: bool | None = None) -> str | None:
        """Reopen the session on another workspace, provider or tracks folder (only while nothing runs)."""
        busy = [e for e in self.session.engines.values() if e.alive and e.track.status == TrackStatus.RUNNING]
        if busy or self.session.pending_approvals() or any(not h.future.done() for h in self.session.plans.values()):
            return self.fail("Finish, pause or cancel the running work (and answer pending approvals) first.")
        ws = Path(workspace).expanduser() if workspace else self.session.workspace
        if not ws.is_dir():
            return self.fail(f"Workspace {ws} is not a folder.")
        provider = provider or self.provider_name
        demo = self.demo and provider == "scripted" if demo is None else demo
        self.session.shutdown(10.0)
        try:
            new, note = open_session(self.cfg, workspace=ws, tracks_dir=tracks_dir or self.session.store.root,
                                     provider_name=provider, demo=demo, events=self.session.events)
        except (ConductorError, ValueError, OSError) as exc:
            return self.fail(f"Cannot open {ws} with {provider}: {exc}")
        self.session, self.provider_name, self.provider_note, self.demo = new, provider, note, demo
        self.tracks.clear()
        self.pending.clear()
        self._restored.clear()
        self.active_track = None
        self.streams = Streams(self.cfg.gui.stream_tail_chars)
        self._models_thread = None
        self._load_initial_state()
        self.status_message = f"opened {ws} with the {provider} provider"
        self._bump("tickets", "status", "banner", "models", "workspace")
        return None

    def start_demo(self) -> str | None:
        """The labelled offline demo: the scripted provider in a scratch workspace with a couple of files."""
        ws, tracks = make_demo_workspace()
        return self.switch(workspace=ws, provider="scripted", tracks_dir=tracks, demo=True)

    def recover(self) -> list[str]:
        """After a restart: reopen the plan and ticket reviews that were waiting (spawn and tool approvals are
        asked again when their run resumes)."""
        try:
            epics = self.session.recover()
        except (ConductorError, OSError) as exc:
            self.fail(f"Could not recover pending planning: {exc}")
            return []
        if epics:
            self.status_message = f"recovered {len(epics)} planning run(s) waiting for review"
            self._bump("status")
        return epics

    # ---------------- closing

    def needs_close_confirm(self) -> bool:
        return bool(self.pending)

    def shutdown(self, timeout: float = 10.0, layout: dict[str, int] | None = None) -> list[str]:
        """Cancel and join all work, then save the layout. Returns problems (shown or printed by the caller)."""
        problems = []
        if self._models_thread is not None:
            self._models_thread.join(min(timeout, 2.0))  # a slow model list must not hold the exit for long
        try:
            self.session.shutdown(timeout)
        except (TimeoutError, ConductorError, OSError) as exc:
            problems.append(f"shutdown: {exc}")
        changed = {k: v for k, v in (layout or {}).items() if getattr(self.cfg.gui, k) != v}
        if changed and self.config_path is not None:  # unchanged layout: leave the file (and its comments) alone
            try:
                for k, v in changed.items():
                    setattr(self.cfg.gui, k, v)
                save_config(self.cfg, self.config_path)
            except (ValueError, ConfigError, OSError) as exc:
                problems.append(f"could not save the layout: {exc}")
        return problems


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


_HANDLERS: dict[type, Callable[[AppController, Any], None]] = {
    StreamDelta: AppController._on_delta,
    StreamReset: AppController._on_reset,
    UsageRecorded: AppController._on_usage,
    StatusChanged: AppController._on_status,
    TrackLoaded: AppController._on_track,
    ApprovalRequested: AppController._on_approval,
    ApprovalResolved: AppController._on_resolved,
    ToolCalled: AppController._on_tool_called,
    ToolResulted: AppController._on_tool_result,
    ErrorRaised: AppController._on_error,
    Notice: AppController._on_notice,
    RunFinished: AppController._on_finished,
}

__all__ = ["AppController", "StreamBuffer", "Streams", "TicketRow", "TrackRow", "UsageRow", "UsageView", "LogEntry",
           "UnavailableProvider", "fmt_cost", "fmt_tokens", "make_demo_workspace", "open_session",
           "stream_key"]
