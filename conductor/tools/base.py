"""The tool interface Tier 3 workers use: a Tool declares a spec and runs with a ToolContext.

Tools never ask for approval themselves: the `ToolGate` (tools/gate.py) decides whether a call needs one,
journals it, and only then runs the tool. A tool raises `ToolError` (or `SandboxViolation`) to report a
failure; the gate turns that into an error result the model can act on.
"""

from __future__ import annotations

import hashlib
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from conductor.approval_payloads import NoPreview, ToolPreview
from conductor.errors import ToolError
from conductor.events import Provenance
from conductor.messages import ToolCall, ToolResult, ToolSpec
from conductor.tools.schema import problems


@dataclass
class ToolContext:
    workspace: Path
    """The folder the tools may touch; every path is checked to be inside it."""
    prov: Provenance
    cancel: threading.Event = field(default_factory=threading.Event)
    spill_path: Path | None = None
    """Where a command's full output goes when it is longer than what the model is shown."""
    protected: tuple[Path, ...] = ()
    """Extra folders inside the workspace that tools must not touch (e.g. the tracks folder)."""
    path_first: tuple[str, ...] = ()
    """Folders searched before PATH for a command's program, for this session only (the offline demo's own
    interpreter folder, so its check finds the pytest beside Conductor). Never from the workspace: the same
    filter as PATH applies, and the process's own PATH is never changed."""
    human_approved: bool = False
    """Set by the gate, on a per-call copy, when a person (not a policy) approved this exact call. Commands
    that only a person may approve (shell syntax) refuse to run without it: a second lock behind the gate."""


class Tool(ABC):
    spec: ToolSpec

    @abstractmethod
    def run(self, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        """Do the work and return the structured output. Raise ToolError on failure."""

    def preview(self, args: dict[str, Any], ctx: ToolContext) -> ToolPreview:
        """What an approval shows for this call (a diff, the exact command). Mutating tools override it."""
        return NoPreview()

    def requires_human(self, args: dict[str, Any]) -> str | None:
        """Why only a person may approve this call (no policy, no auto-approval); None when a policy may."""
        return None

    def intent(self, args: dict[str, Any], ctx: ToolContext) -> Intent:
        """What this call is about to change, journalled before it runs so that a resume after a kill can tell
        whether it happened. By default nothing is known: a resume asks the person."""
        return Intent(command=f"{self.spec.name} {json.dumps(args, ensure_ascii=False, sort_keys=True)[:2000]}")


@dataclass(frozen=True)
class Intent:
    """A side effect about to happen. A file change names the file and its content hash before and after
    (None: no file); anything else names the command, and only a person can say whether it ran."""

    path: str | None = None
    pre_sha256: str | None = None
    post_sha256: str | None = None
    command: str | None = None


def file_sha256(path: Path) -> str | None:
    """The content hash of a file, None when there is none."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ToolSource(Protocol):
    """Tools known only at run time (an MCP server's): asked for on first use, then kept by the source."""

    def tools(self) -> Sequence[Tool]: ...


class Toolbox:
    """A set of tools by name, plus the tools of its sources (which never shadow a built-in tool)."""

    def __init__(self, tools: Iterable[Tool], sources: Iterable[ToolSource] = ()) -> None:
        self._tools = {t.spec.name: t for t in tools}
        self._sources = tuple(sources)

    def _all(self) -> dict[str, Tool]:
        if not self._sources:
            return self._tools
        merged = dict(self._tools)
        for source in self._sources:
            for t in source.tools():
                merged.setdefault(t.spec.name, t)
        return merged

    def specs(self) -> tuple[ToolSpec, ...]:
        return tuple(t.spec for t in self._all().values())

    def get(self, name: str) -> Tool | None:
        return self._all().get(name)

    def execute(self, call: ToolCall, ctx: ToolContext) -> ToolResult:
        """Run one call, turning every ToolError (and bad arguments) into an error result."""
        tools = self._all()
        tool = tools.get(call.name)
        if tool is None:
            return ToolResult(call.id, call.name, False, error=f"unknown tool {call.name!r}; available: "
                                                                 f"{', '.join(sorted(tools))}")
        bad = problems(tool.spec.parameters, dict(call.args))
        if bad:
            return ToolResult(call.id, call.name, False, error=f"bad arguments for {call.name}: " + "; ".join(bad))
        try:
            return ToolResult(call.id, call.name, True, tool.run(dict(call.args), ctx))
        except ToolError as exc:
            return ToolResult(call.id, call.name, False, error=str(exc))
        except (TypeError, KeyError, ValueError) as exc:
            return ToolResult(call.id, call.name, False,
                              error=f"bad arguments for {call.name}: {type(exc).__name__}: {exc}")
        except OSError as exc:  # a file vanished, a disk filled: the model can still act on the message
            return ToolResult(call.id, call.name, False, error=f"{call.name} failed: {exc}")
