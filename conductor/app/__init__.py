"""The application controller / view-model: plain Python state that the GUI renders. No dearpygui here.

Everything in `AppController` runs on the GUI thread: it drains the Session's one event queue, applies each
event to plain state (bounded stream buffers, the tracks and their tickets, pending approvals, log entries,
errors) and exposes commands (plan, approve, retry, pause, ...) that call the Session. Each piece of state
carries a `version` counter so the views redraw only what changed, at most once per frame.

Usage numbers are never summed here: the dashboard reads the Session's ledger, so it shows exactly what the
ledger holds.

Modules, one job each (import the names below from `conductor.app`, not from the modules):

- `controller`: `AppController`, the parts put together, with `drain`/`wait`, the model list and shutdown
- `state`: the state every part shares, plus the version counters, the log and the banner
- `handlers`: applying each Session event to that state; restoring panes from disk
- `commands`: what the views' callbacks call (plan, approve, track and ticket commands, settings, switch)
- `views`: derived views (ticket and track rows, counts, status text, log lines)
- `usage_view`: the dashboard's numbers, built from the ledger
- `streams`: the bounded per-pane stream buffers and the per-tier aggregates
- `rows`: the plain frozen rows the views show
- `formatting`: number formatting and parsing of typed lists
- `session_factory`: opening a Session on a provider (or a stand-in without an API key); the demo workspace
"""

from __future__ import annotations

from conductor.app.controller import AppController
from conductor.app.formatting import fmt_cost, fmt_tokens, split_ids, split_lines
from conductor.app.rows import LogEntry, TicketRow, TrackRow, UsageRow
from conductor.app.session_factory import UnavailableProvider, demo_folders, demo_home, open_session
from conductor.app.streams import StreamBuffer, Streams
from conductor.app.usage_view import UsageView

__all__ = [
           "AppController",
           "LogEntry",
           "StreamBuffer",
           "Streams",
           "TicketRow",
           "TrackRow",
           "UnavailableProvider",
           "UsageRow",
           "UsageView",
           "demo_folders",
           "demo_home",
           "fmt_cost",
           "fmt_tokens",
           "open_session",
           "split_ids",
           "split_lines",
]
