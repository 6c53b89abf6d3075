"""Waiting helpers for tests: wait on conditions with a deadline, never sleep."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def wait_for(fn: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """Re-check `fn` until it returns something truthy; TimeoutError after `timeout` seconds.

    The pause between checks is a wait on an Event that nobody sets, i.e. a bounded block, not a sleep
    that a slow thread could race: the deadline, not the pacing, decides the outcome."""
    tick = threading.Event()
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not met within {timeout}s")
        tick.wait(0.01)


def fast_config():  # type: ignore[no-untyped-def]
    from conductor.config import Config
    return Config().updated({"retry": {"initial_delay_s": 0.01, "max_delay_s": 0.05},
                             "limits": {"open_s": 0.05, "max_open_s": 0.2}})


def journal_lines(*paths: Path) -> list[dict]:
    """The parsed records of journals written by another process; a torn tail (writer alive or killed) is
    skipped, as the app itself would drop it."""
    out = []
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


# ---------------------------------------------------------------- one typed payload per approval kind

def sample_payload(kind: str, text: str = "pytest -q"):  # type: ignore[no-untyped-def]
    """A small valid payload of `kind` (plan, tickets, spawn, tool) whose free text is `text`."""
    from conductor.approval_payloads import PlanPayload, SpawnPayload, TicketsPayload, ToolPayload
    from conductor.model import TicketSpec, TrackSpec
    from conductor.provenance import Provenance

    if kind == "plan":
        return PlanPayload(epic=text, tracks=(TrackSpec(title="Track", goal=text),))
    if kind == "tickets":
        return TicketsPayload(track_id="tr", track_title="Track", tickets=(TicketSpec(id="T1", title=text),))
    if kind == "spawn":
        return SpawnPayload(ticket_id="T1", attempt=1, model="m", system="sys", prompt=text)
    if kind == "tool":
        return ToolPayload(tool="run_command", call_id="c1", args={"command": text},
                           provenance=Provenance(track_id="tr", ticket_id="T1", tier=3, attempt=1))
    raise ValueError(f"no approval kind {kind!r}")


def tool_of(req):  # type: ignore[no-untyped-def]
    """The request's ToolPayload (fails the test when the request is of another kind)."""
    from conductor.approval_payloads import ToolPayload
    p = req.payload
    assert isinstance(p, ToolPayload), f"{req.id} is a {p.kind} approval, not a tool one"
    return p


def preview_of(req, cls):  # type: ignore[no-untyped-def]
    """The tool request's preview, checked to be of `cls` (FileChangePreview, CommandPreview, ...)."""
    preview = tool_of(req).preview
    assert isinstance(preview, cls), f"{req.id}: a {preview.preview} preview, not {cls.__name__}"
    return preview
