"""One payload type per approval kind: what a person is asked to approve, and what an approval carries back.

Each kind has its own frozen model, and the four form one discriminated union keyed by `kind`, so a request, a
decision and their journal records carry typed payloads, and every reader narrows by kind with `match` instead
of reading by key. A tool payload's preview (a file change's diff, a command's exact argv, an MCP server's
call) is itself a union keyed by `preview`.

Journals written before these types held plain dicts without `kind` (a tool's preview keys flat beside its
arguments); `legacy_payload` turns such a dict into the typed shape, so old journals still replay.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from conductor.model import TicketSpec, TrackSpec
from conductor.provenance import Provenance


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------- planning

class PlanPayload(_Frozen):
    """Tier 1's tracks for an epic, before any track exists. An edit may change, drop or add tracks."""

    kind: Literal["plan"] = "plan"
    epic: str
    tracks: tuple[TrackSpec, ...] = Field(min_length=1)


class TicketsPayload(_Frozen):
    """Tier 2's ticket DAG for one track. An edit may change every ticket (the DAG is checked again)."""

    kind: Literal["tickets"] = "tickets"
    track_id: str
    track_title: str
    tickets: tuple[TicketSpec, ...] = Field(min_length=1)


# ---------------------------------------------------------------- step mode

class SpawnPayload(_Frozen):
    """The exact start of one worker: an edit may change the model, the prompt and the context files, never the
    ticket or the attempt it is bound to."""

    kind: Literal["spawn"] = "spawn"
    ticket_id: str
    attempt: int
    model: str
    system: str
    prompt: str
    context_files: tuple[str, ...] = ()
    context_source: str = ""
    """Where the prompt's files were read (with git: the track branch and its tip, never the person's checkout)."""
    context_chars: dict[str, int] = Field(default_factory=dict)
    """Each context file's size as sent, measured where it was read (a file missing there: 0, it is not sent)."""


# ---------------------------------------------------------------- tools: what the call will do

class FileChangePreview(_Frozen):
    """A write or an edit: the diff it makes."""

    preview: Literal["file"] = "file"
    path: str
    diff: str
    new_file: bool = False
    target: str | None = None
    """The file really written, when `path` goes through a symlink (an approval names what changes)."""


class CommandPreview(_Frozen):
    """A command: exactly what runs, where, and for how long at most."""

    preview: Literal["command"] = "command"
    command: str
    argv: tuple[str, ...]
    shell: bool
    cwd: str
    timeout_s: float


class McpCallPreview(_Frozen):
    """A call a third-party MCP server makes: which server, which of its tools, and how it is reached."""

    preview: Literal["mcp"] = "mcp"
    server: str
    tool: str
    transport: str
    timeout_s: float


class PreviewFailed(_Frozen):
    """The preview itself failed unexpectedly: the request is still shown, with why."""

    preview: Literal["failed"] = "failed"
    error: str


class NoPreview(_Frozen):
    preview: Literal["none"] = "none"


ToolPreview: TypeAlias = Annotated[FileChangePreview | CommandPreview | McpCallPreview | PreviewFailed | NoPreview,
                                   Field(discriminator="preview")]


class ToolPayload(_Frozen):
    """A write, edit or command a worker asked for. Only `args` may be edited; the edited args are what runs."""

    kind: Literal["tool"] = "tool"
    tool: str
    call_id: str
    args: dict[str, JsonValue]
    provenance: Provenance
    preview: ToolPreview = NoPreview()
    needs_person: str | None = None
    """Why only a person may approve this call (no policy can); None when a policy may."""
    can_remember: bool = False
    """Whether 'always allow this exact form for the track' is offered."""
    interrupted: str | None = None
    """Asked again after a restart: why it may already have run."""

    def with_args(self, args: dict[str, JsonValue]) -> ToolPayload:
        """This payload with edited arguments (validated)."""
        return ToolPayload.model_validate({**dict(self), "args": args})


ApprovalPayload: TypeAlias = Annotated[PlanPayload | TicketsPayload | SpawnPayload | ToolPayload,
                                       Field(discriminator="kind")]
P = TypeVar("P", PlanPayload, TicketsPayload, SpawnPayload, ToolPayload)


# ---------------------------------------------------------------- journals written before these types

_TOOL_KEYS = ("tool", "call_id", "args", "provenance", "needs_person", "can_remember", "interrupted")


def legacy_payload(kind: str, data: dict[str, object]) -> dict[str, object]:
    """A payload dict as journalled before the typed payloads (no `kind`; a tool's preview keys flat beside its
    arguments), in today's shape. A dict that already has its `kind` is returned as is."""
    if "kind" in data:
        return data
    if kind != "tool":
        return {**data, "kind": kind}
    out: dict[str, object] = {k: data[k] for k in _TOOL_KEYS if k in data}
    rest = {k: v for k, v in data.items() if k not in _TOOL_KEYS}
    preview: dict[str, object]
    if "preview_error" in rest:
        preview = {"preview": "failed", "error": rest["preview_error"]}
    elif "diff" in rest:
        preview = {"preview": "file", **{k: rest[k] for k in ("path", "diff", "new_file", "target") if k in rest}}
    elif "command" in rest:
        preview = {"preview": "command",
                   **{k: rest[k] for k in ("command", "argv", "shell", "cwd", "timeout_s") if k in rest}}
    elif "mcp_server" in rest:
        preview = {"preview": "mcp", "server": rest.get("mcp_server"), "tool": rest.get("mcp_tool"),
                   "transport": rest.get("mcp_transport"), "timeout_s": rest.get("timeout_s")}
    else:
        preview = {"preview": "none"}
    return {**out, "kind": "tool", "preview": preview}
