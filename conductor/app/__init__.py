"""The application controller / view-model (see `conductor.app.controller`). No dearpygui here."""

from __future__ import annotations

from conductor.app.controller import (AppController, LogEntry, StreamBuffer, Streams, TicketRow, TrackRow,
                                      UnavailableProvider, UsageRow, UsageView, fmt_cost, fmt_tokens,
                                      make_demo_workspace, open_session, split_ids, split_lines, stream_key)

__all__ = ["AppController", "StreamBuffer", "Streams", "TicketRow", "TrackRow", "UsageRow", "UsageView", "LogEntry",
           "UnavailableProvider", "fmt_cost", "fmt_tokens", "make_demo_workspace", "open_session",
           "split_ids", "split_lines", "stream_key"]
