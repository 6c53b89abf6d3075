"""A pending tool approval's preview, computed again for the arguments as the person edited them.

The gate registers each tool request it waits on (its tool and the worker's tool context) and forgets it once
decided; conductor/git_review.py previews an edit off the GUI thread from here. The registry holds no payloads:
only how to compute one, in the worker's own (sandboxed) context.
"""

from __future__ import annotations

import threading

from conductor.tools.base import Tool, ToolContext


class PreviewRegistry:
    """How to preview each pending tool approval again (its tool and the worker's tool context), by request
    id: the gate registers a request while it waits for the person and forgets it once decided."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, tuple[Tool, ToolContext]] = {}

    def register(self, request_id: str, tool: Tool, ctx: ToolContext) -> None:
        with self._lock:
            self._by_id[request_id] = (tool, ctx)

    def forget(self, request_id: str) -> None:
        with self._lock:
            self._by_id.pop(request_id, None)

    def get(self, request_id: str) -> tuple[Tool, ToolContext] | None:
        with self._lock:
            return self._by_id.get(request_id)


PREVIEWS = PreviewRegistry()
"""The process's registry (gates of every session register here; ids are unique per request)."""
