"""MCP servers as a tool source for Tier 3: each server tool becomes the tool `mcp:<server>/<tool>`.

    servers = McpServers.from_config(cfg.mcp, log_dir=tracks_dir / "_mcp", on_problem=report)
    toolbox = workspace_toolbox(workspace, sources=(servers,))   # MCP tools resolved on a worker's first use
    ...
    servers.close()                                              # every client exited, every thread joined

Servers come only from the app's config (`[mcp.<name>]`), never from the workspace. Every MCP tool is
declared mutating, so EVERY call goes through the tool approval gate (a server can do anything); the approval
shows the server, its command or URL and the per-call timeout. Nothing starts (and the SDK is not imported)
until a worker first asks for the tools. A server that fails to start is reported once through `on_problem`
with a message naming it, and its tools are simply not offered. A server that dies fails the call in flight
(never retried: its side effect is unknown) and is started again on its next call, a few times per session.

Each call appends a block to the ticket's `outputs/tickets/<ticket>/<ticket>.a<attempt>.mcp.log` (beside its
command logs): the call, its outcome and the
stderr the server wrote while it ran. The server's whole stderr is in `<log_dir>/<server>.stderr.log`.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conductor.approval_payloads import McpCallPreview
from conductor.errors import ToolError
from conductor.messages import ToolSpec
from conductor.tools.base import Tool, ToolContext
from conductor.tools.mcp_client import (
    HttpTarget,
    McpConnection,
    McpError,
    McpTarget,
    McpToolInfo,
    McpUnavailable,
    StdioTarget,
)

if TYPE_CHECKING:
    from mcp_types import CallToolResult

    from conductor.config import McpServerConfig

PREFIX = "mcp:"
MAX_TEXT_CHARS = 20_000
"""What the model is shown of one result; the rest is cut with a note (the ticket log keeps the stderr)."""
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")

ProblemHook = Callable[[str], None]


def tool_name(server: str, tool: str) -> str:
    return f"{PREFIX}{server}/{tool}"


MAX_RESTARTS = 3
"""A server that died is started again on its next call, this many times per session at most."""


class ServerSlot:
    """The live connection to one server; a connection that died is replaced on the next call (the call that
    saw it die has failed already: whether its side effect happened is unknown, so it is never retried)."""

    def __init__(self, conn: McpConnection, timeout_s: float) -> None:
        self.conn = conn
        self.name = conn.name
        self.timeout_s = timeout_s
        self.restarts = 0
        self._closed = False
        self._lock = threading.Lock()

    def live(self) -> McpConnection:
        with self._lock:
            if self.conn.died and self.restarts < MAX_RESTARTS and not self._closed:
                dead, self.conn = self.conn, self.conn.fresh()
                self.restarts += 1
                dead.close()
            return self.conn

    def abort_startup(self) -> None:
        with self._lock:
            self._closed = True  # shutting down: no restart from here on
            conn = self.conn
        conn.abort_startup()

    def close(self, timeout: float | None = None) -> None:
        with self._lock:
            self._closed = True
            conn = self.conn
        conn.close() if timeout is None else conn.close(timeout)


class McpTool(Tool):
    """One tool of one MCP server, called through that server's long-lived connection."""

    def __init__(self, slot: ServerSlot, info: McpToolInfo) -> None:
        self.slot = slot
        self.info = info
        self.timeout_s = slot.timeout_s
        self.spec = ToolSpec(name=tool_name(slot.name, info.name),
                             description=f"[MCP server {slot.name!r}] {info.description}".strip(),
                             parameters=model_schema(info.input_schema), mutating=True)

    @property
    def conn(self) -> McpConnection:
        return self.slot.conn

    def preview(self, args: dict[str, Any], ctx: ToolContext) -> McpCallPreview:
        return McpCallPreview(server=self.slot.name, tool=self.info.name, transport=self.conn.target.describe(),
                              timeout_s=self.timeout_s)

    def run(self, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        started = time.monotonic()
        try:
            outcome = self.slot.live().call(self.info.name, args, timeout_s=self.timeout_s, cancel=ctx.cancel)
        except McpError as exc:
            log_problem = self._log(ctx, args, "failed", time.monotonic() - started, f"{exc}\n{exc.stderr}",
                                    exc.overlapped)
            notes = [f"({log_problem})"] if log_problem else []
            if self.conn.died:
                left = MAX_RESTARTS - self.slot.restarts
                notes.insert(0, f"It is started again on the next call ({left} restart(s) left in this session)."
                             if left > 0 else "It was restarted too often and stays stopped for this session.")
            if notes:
                raise McpUnavailable("\n".join([str(exc), *notes])) from None
            raise
        text = result_text(outcome.result)
        log_problem = self._log(ctx, args, "error result" if outcome.result.is_error else "ok", outcome.duration_s,
                                outcome.stderr or "(no stderr)\n", outcome.overlapped)
        if outcome.result.is_error:
            note = f" ({log_problem})" if log_problem else ""
            raise ToolError(f"{self.spec.name} reported an error: {text or '(no message)'}{note}")
        output: dict[str, Any] = {"server": self.conn.name, "tool": self.info.name, "text": text}
        if log_problem:
            output["log_error"] = log_problem
        structured = outcome.result.structured_content
        if structured is not None and len(json.dumps(structured, default=str)) <= MAX_TEXT_CHARS:
            output["structured"] = structured
        return output

    def _log(self, ctx: ToolContext, args: dict[str, Any], status: str, duration_s: float, body: str,
             overlapped: bool) -> str | None:
        """Append this call and the server's stderr meanwhile to the ticket's MCP log (beside its spill files).
        Returns why it could not be written (None when it was): a full disk must not turn a call that ran into
        a failure, but the model and the record say that the log is incomplete."""
        path = ticket_log_path(ctx)
        if path is None:
            return None
        shown = json.dumps(args, default=str)
        shown = shown if len(shown) <= 300 else shown[:299] + "…"
        head = f"\n## {self.spec.name} · {time.strftime('%H:%M:%S')} · {status} · {duration_s:.2f} s · args {shown}\n"
        if overlapped:
            head += (f"(other calls to {self.conn.name!r} ran at the same time: some stderr below may be theirs; "
                     f"the server's whole stderr is in {self.conn.stderr_path})\n")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as f:
                f.write(head + body + ("" if body.endswith("\n") else "\n"))
        except OSError as exc:
            return f"the call's log {path} could not be written: {exc}"
        return None


def ticket_log_path(ctx: ToolContext) -> Path | None:
    if ctx.spill_path is None or not ctx.prov.ticket_id:
        return None
    return ctx.spill_path.parent / f"{ctx.prov.ticket_id}.a{ctx.prov.attempt}.mcp.log"


def result_text(result: CallToolResult) -> str:
    """The result's content as text for the model; binary parts are described, never inlined."""
    parts: list[str] = []
    for c in result.content:
        match c.type:
            case "text":
                parts.append(c.text)
            case "image" | "audio":
                parts.append(f"[{c.type} {c.mime_type}, {len(c.data)} base64 characters not shown]")
            case "resource_link":
                parts.append(f"[resource link {c.uri}]")
            case "resource":
                res = c.resource
                text = getattr(res, "text", None)
                parts.append(text if isinstance(text, str) else f"[binary resource {res.uri} not shown]")
            case _:  # a content kind newer than this SDK version knows
                parts.append(f"[{getattr(c, 'type', 'unknown')} content not shown]")  # type: ignore[unreachable]
    text = "\n".join(parts)
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS] + f"\n[... {len(text) - MAX_TEXT_CHARS} more characters cut ...]"
    return text


def model_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """An MCP input schema as our tools declare one: an object at the top, and `type` always a single name.

    JSON Schema allows `"type": ["string", "null"]`; our argument checker and some providers take one type, so
    a nullable type keeps its non-null member and a real union drops `type` (the server still validates)."""
    out: dict[str, Any] = _single_types(dict(schema))
    if out.get("type") != "object":
        out = {"type": "object", "properties": {}}
    out.setdefault("properties", {})
    return out


def _single_types(node: Any) -> Any:
    if isinstance(node, list):
        return [_single_types(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _single_types(v) for k, v in node.items()}
    typ = out.get("type")
    if isinstance(typ, list):
        rest = [t for t in typ if t != "null"]
        if len(rest) == 1 and isinstance(rest[0], str):
            out["type"] = rest[0]
        else:
            del out["type"]
    elif typ is not None and not isinstance(typ, str):
        del out["type"]
    return out


class McpServers:
    """Every configured MCP server; a tool source for the Toolbox. Thread-safe."""

    def __init__(self, servers: Sequence[tuple[McpConnection, float]], *, on_problem: ProblemHook | None = None,
                 startup_timeout_s: float | None = None) -> None:
        self._slots = [ServerSlot(conn, timeout_s) for conn, timeout_s in servers]
        self._on_problem = on_problem
        self._startup_timeout_s = startup_timeout_s
        self._lock = threading.Lock()
        self._tools: list[Tool] | None = None
        self._closing = threading.Event()

    @classmethod
    def from_config(cls, servers: Mapping[str, McpServerConfig], log_dir: Path, *,
                    on_problem: ProblemHook | None = None,
                    environ: Mapping[str, str] | None = None) -> McpServers:
        env = os.environ if environ is None else environ
        built: list[tuple[McpConnection, float]] = []
        for name, sc in servers.items():
            target: McpTarget
            if sc.url is not None:
                target = HttpTarget(sc.url)
            else:
                assert sc.command is not None  # the config allows exactly one of the two
                passed = {k: env[k] for k in sc.pass_env if k in env}
                target = StdioTarget(sc.command, tuple(sc.args), {**sc.env, **passed})
                missing = [k for k in sc.pass_env if k not in env]
                if missing and on_problem is not None:
                    on_problem(f"MCP server {name!r}: pass_env names {', '.join(missing)}, which "
                               f"{'is' if len(missing) == 1 else 'are'} not set in Conductor's environment")
            conn = McpConnection(name, target, stderr_path=log_dir / f"{name}.stderr.log",
                                 startup_timeout_s=sc.startup_timeout_s)
            built.append((conn, sc.call_timeout_s))
        return cls(built, on_problem=on_problem)

    @property
    def connections(self) -> list[McpConnection]:
        """The current connection of each server (a restarted server's new one)."""
        return [slot.conn for slot in self._slots]

    def __bool__(self) -> bool:
        return bool(self._slots)

    def tools(self) -> Sequence[Tool]:
        """Every tool of every server that started; the first call starts them all and waits (bounded by
        each server's start-up timeout). A server that failed is reported once and offers nothing."""
        with self._lock:
            if self._tools is not None or self._closing.is_set():
                return list(self._tools or [])
            for slot in self._slots:
                slot.conn.start()  # all at once: they start in parallel
            tools: list[Tool] = []
            for slot in self._slots:
                conn = slot.conn
                try:
                    infos = conn.wait_ready(self._startup_timeout_s)
                except McpUnavailable as exc:
                    head, _, rest = str(exc).partition("\n")  # the GUI's banner shows the first line
                    self._problem(f"{head} — its tools are not offered to workers" + (f"\n{rest}" if rest else ""))
                    continue
                for info in infos:
                    if not _TOOL_NAME.match(info.name):
                        self._problem(f"MCP server {conn.name!r}: tool name {info.name!r} is not a valid MCP "
                                      "tool name (letters, digits, '_', '-', '.'); it is not offered")
                        continue
                    tools.append(McpTool(slot, info))
            self._tools = tools
            return list(tools)

    def interrupt_startup(self) -> None:
        """Shutting down: servers still starting are abandoned at once (a worker waiting for them goes on
        without their tools); connected servers keep serving calls in flight until `close()`."""
        self._closing.set()
        for slot in self._slots:
            slot.abort_startup()

    def close(self, timeout: float | None = None) -> None:
        """Exit every client on its own thread and join the threads. Idempotent."""
        self.interrupt_startup()
        errors: list[str] = []
        for slot in self._slots:
            try:
                slot.close(timeout)
            except TimeoutError as exc:
                errors.append(str(exc))
        if errors:
            raise TimeoutError("; ".join(errors))

    def _problem(self, message: str) -> None:
        if self._on_problem is not None and not self._closing.is_set():
            self._on_problem(message)
