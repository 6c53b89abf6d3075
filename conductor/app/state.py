"""The controller's state and the bookkeeping every part of it shares: version counters, the log, the banner.

`ControllerState` is the base of the parts of `AppController` (event handling, commands, derived views):
it owns every attribute, so each part reads the same state and none needs to know about the others.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path
from typing import Any

from conductor.app.cluster import ClusterModel
from conductor.app.cost_estimate import CostEstimator
from conductor.app.rows import LogEntry
from conductor.app.streams import Streams
from conductor.app.ticket_clock import TicketClocks
from conductor.app.usage_view import UsageView
from conductor.approvals import ApprovalRequest
from conductor.config import Config
from conductor.events import Event, EventQueue
from conductor.model import Track, TrackStatus

LOG_LIMIT = 5000
"""Log entries kept in memory (the comms log and journals on disk hold everything)."""


class ControllerState:
    """The state the views read (streams, tracks, approvals, log, banner) and the `versions` that tell them
    what changed."""

    def __init__(self, session: Any, *, config_path: Path | None = None, demo: bool = False,
                 provider_name: str = "scripted", provider_note: str = "") -> None:
        self.session = session
        session.events.merge_stream_deltas()  # panes show text: a stream's waiting deltas may be one item
        self.config_path = config_path
        self.demo = demo
        self.provider_name = provider_name
        self.provider_note = provider_note
        """Why the provider is limited (e.g. no API key), shown in the status bar."""
        self.streams = Streams(self.cfg.gui.stream_tail_chars)
        self.clocks = TicketClocks()
        self._estimator: CostEstimator | None = None
        """Elapsed time per ticket, from the timestamps of its status records."""
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
        self.cluster = ClusterModel.from_config(self.cfg.distributed)
        """The remote workers' monitor (its poller is started by the GUI when a broker is configured)."""
        self.applied = 0
        self._load_initial_state()

    @property
    def cfg(self) -> Config:
        """The session's current config: an immutable value, replaced by a Settings command (save_settings)."""
        cfg: Config = self.session.cfg
        return cfg

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
        interrupted = sorted(t.id for t in self.tracks.values() if t.status == TrackStatus.INTERRUPTED)
        if interrupted:  # reopen where the person left off: the newest interrupted track, with what Resume does
            tid = interrupted[-1]
            self.session.in_background(f"load {tid}", lambda: self.session.load_track(tid))

    @property
    def events(self) -> EventQueue:
        queue: EventQueue = self.session.events
        return queue

    # ---------------- the log and the banner

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
