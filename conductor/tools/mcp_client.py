"""One long-lived MCP client per server, owned by one thread that runs its own asyncio loop.

Why a thread of its own: an MCP client (and the stdio transport's task group under it) must be entered and
exited by the same task, or anyio raises "Attempted to exit a cancel scope that isn't the current task's
current cancel scope" (python-sdk #79, #577, #922). So one task on the connection's loop enters the client,
lists the tools, waits for `close()`, and exits it. Worker threads call tools through
`asyncio.run_coroutine_threadsafe`: each call is its own task on that loop, bounded by the SDK's per-request
timeout (which sends the server a cancel and leaves the session usable) and by a backstop deadline here.

    conn = McpConnection("files", StdioTarget(sys.executable, ("server.py",)), stderr_path=log_dir / "files.stderr.log")
    conn.start(); tools = conn.wait_ready()          # McpUnavailable naming the server when it failed to start
    outcome = conn.call("read", {"path": "a"}, timeout_s=30, cancel=cancel_event)
    conn.close()                                     # the owner task exits the client; the thread is joined

A stdio server's stderr goes straight into `stderr_path` (never into our own stderr, so never into the GUI's
terminal); each call reports the stderr bytes written while it ran. The SDK is imported on the owner thread,
on first use only.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from conductor.errors import Cancelled, ToolError

if TYPE_CHECKING:
    import asyncio

    from mcp import Client
    from mcp.server import Server
    from mcp.server.mcpserver import MCPServer
    from mcp_types import CallToolResult

BACKSTOP_S = 5.0
"""Extra time past a call's own timeout before we stop waiting for the SDK to report it."""
POLL_S = 0.1
"""How often a waiting caller checks its cancel event."""
CLOSE_TIMEOUT_S = 10.0
"""The stdio transport closes stdin, waits 2 s, SIGTERMs the group, waits 2 s, SIGKILLs: under 10 s in all."""
STDERR_TAIL_BYTES = 600


# --- where a server lives ---

@dataclass(frozen=True)
class StdioTarget:
    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    """Added to the SDK's minimal environment (HOME, LOGNAME, PATH, SHELL, TERM, USER): nothing else of ours
    leaks into the server, API keys included, unless the config names it."""

    def describe(self) -> str:
        return " ".join([self.command, *self.args])


@dataclass(frozen=True)
class HttpTarget:
    url: str

    def describe(self) -> str:
        return self.url


@dataclass(frozen=True)
class InProcessTarget:
    """A server object in this process (tests): the SDK connects to it without a transport."""

    server: MCPServer | Server[Any]

    def describe(self) -> str:
        return "in-process"


McpTarget = StdioTarget | HttpTarget | InProcessTarget


# --- what a server offers and answers ---

@dataclass(frozen=True)
class McpToolInfo:
    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class McpOutcome:
    """One finished call: the SDK's result, and what the server wrote to stderr meanwhile."""

    result: CallToolResult
    stderr: str
    duration_s: float
    overlapped: bool = False
    """Other calls to this server ran meanwhile, so `stderr` may hold some of theirs (the server's stderr is one
    stream; see the server's own log for the whole of it)."""


class McpError(ToolError):
    """A failed MCP call, as the model sees it (a ToolError). `stderr` is what the server wrote meanwhile."""

    stderr: str = ""
    overlapped: bool = False


class McpUnavailable(McpError):
    """The server is not connected: it failed to start, died, or the connection is closed. Names the server."""


class McpCallTimeout(McpError):
    """One call took longer than its timeout. The connection stays up; the next call works."""


class McpCallFailed(McpError):
    """The server answered the call with a protocol error (bad tool name, invalid params, ...)."""


class _SdkLogRouter(logging.Handler):
    """The SDK logs transport trouble (an unparsable line, a broken pipe) with tracebacks through `logging`;
    by default Python prints those on our stderr, under the GUI. Records made on a connection's own thread go
    to that server's stderr log instead; the rest are dropped here (the call that failed reports it)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.paths: dict[str, Path] = {}
        self.setFormatter(logging.Formatter("%(asctime)s [mcp sdk] %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        path = self.paths.get(record.threadName or "")
        if path is None:
            return
        try:
            with path.open("a", encoding="utf-8") as f:
                f.write(self.format(record) + "\n")
        except OSError:
            pass  # a log line that cannot be written must not break the call that logged it


_ROUTER = _SdkLogRouter()
_ROUTER_LOCK = threading.Lock()


def _route_sdk_logs(thread_name: str, path: Path | None) -> None:
    with _ROUTER_LOCK:
        sdk = logging.getLogger("mcp")
        if _ROUTER not in sdk.handlers:
            sdk.addHandler(_ROUTER)
            sdk.propagate = False
        if path is None:
            _ROUTER.paths.pop(thread_name, None)
        else:
            _ROUTER.paths[thread_name] = path


class McpConnection:
    def __init__(self, name: str, target: McpTarget, *, stderr_path: Path | None = None,
                 startup_timeout_s: float = 30.0) -> None:
        self.name = name
        self.target = target
        self.stderr_path = stderr_path if isinstance(target, StdioTarget) else None
        self.startup_timeout_s = startup_timeout_s
        self._thread = threading.Thread(target=self._run, name=f"conductor-mcp-{name}", daemon=True)
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main_task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._client: Client | None = None
        self._tools: tuple[McpToolInfo, ...] = ()
        self._failure: str | None = None
        self._closing = False
        self._started = False
        self._log_start = 0
        """Where this connection's part of the stderr file begins (the file is appended to across runs)."""
        self._connected_once = False
        self._inflight = 0
        self._calls_started = 0

    # ---------------- any thread ----------------

    def start(self) -> McpConnection:
        with self._lock:
            if not self._started:
                self._started = True
                self._thread.start()
        return self

    def wait_ready(self, timeout: float | None = None) -> tuple[McpToolInfo, ...]:
        """The server's tools once connected; McpUnavailable (naming the server) when it could not start."""
        self.start()
        wait = self.startup_timeout_s if timeout is None else timeout
        if not self._ready.wait(wait):
            self._fail(f"did not finish starting within {wait:g} s")
            self._request_stop()
            raise McpUnavailable(self._unavailable())
        if self._failure is not None:
            raise McpUnavailable(self._unavailable())
        return self._tools

    @property
    def failure(self) -> str | None:
        return self._failure

    @property
    def died(self) -> bool:
        """It was connected, then lost the connection (the server exited or crashed), and nobody closed it."""
        return self._connected_once and self._failure is not None and not self._closing

    def fresh(self) -> McpConnection:
        """A new, unstarted connection to the same server (to replace one that died)."""
        return McpConnection(self.name, self.target, stderr_path=self.stderr_path,
                             startup_timeout_s=self.startup_timeout_s)

    def call(self, tool: str, args: dict[str, Any], *, timeout_s: float,
             cancel: threading.Event | None = None) -> McpOutcome:
        """Call one tool and wait for it. Raises McpCallTimeout (connection still usable), McpUnavailable,
        McpCallFailed, or Cancelled when `cancel` is set meanwhile."""
        import asyncio  # not at module level: the app imports this module at start-up, asyncio only on use

        self.wait_ready()
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"MCP call {self.name}/{tool} cancelled before it was sent")
        with self._lock:
            loop = self._loop
            if self._failure is not None or self._closing or loop is None or loop.is_closed():
                raise McpUnavailable(self._unavailable())
            start_offset = self._stderr_size()
            started = time.monotonic()
            others_running = self._inflight > 0
            self._inflight += 1
            self._calls_started += 1
            generation = self._calls_started
            fut = asyncio.run_coroutine_threadsafe(self._call(tool, args, timeout_s), loop)
        try:
            result = self._wait(fut, tool, timeout_s, cancel)
        except McpError as exc:
            exc.stderr, exc.overlapped = self._stderr_since(start_offset), self._end_call(others_running, generation)
            raise
        except BaseException:
            self._end_call(others_running, generation)
            raise
        overlapped = self._end_call(others_running, generation)
        return McpOutcome(result, self._stderr_since(start_offset), time.monotonic() - started, overlapped)

    def _end_call(self, others_running: bool, generation: int) -> bool:
        """Mark one call finished; True when another call to this server ran at some point during it."""
        with self._lock:
            self._inflight -= 1
            return others_running or self._calls_started != generation

    def abort_startup(self) -> None:
        """Give up on a server still starting (waiters get McpUnavailable); a connected one is left alone, so
        calls in flight end through their own cancel events, never as a failure of the server."""
        if not self._ready.is_set():
            self._fail("start-up was abandoned (Conductor is shutting down)")
            self._request_stop(only_if_starting=True)

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Stop the owner task (which exits the client it entered), then join the thread. Idempotent."""
        with self._lock:
            self._closing = True
            started = self._started
        if not started:
            return
        self._request_stop()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"MCP server {self.name!r}: its client thread did not stop within {timeout:g} s")

    # ---------------- caller side helpers ----------------

    def _wait(self, fut: concurrent.futures.Future[CallToolResult], tool: str, timeout_s: float,
              cancel: threading.Event | None) -> CallToolResult:
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        deadline = time.monotonic() + timeout_s + BACKSTOP_S
        while True:
            try:
                return fut.result(timeout=max(0.0, min(POLL_S, deadline - time.monotonic())))
            except concurrent.futures.TimeoutError:
                if cancel is not None and cancel.is_set():
                    fut.cancel()  # cancels the task on the loop; the SDK tells the server
                    raise Cancelled(f"MCP call {self.name}/{tool} cancelled") from None
                if time.monotonic() >= deadline:
                    fut.cancel()
                    raise McpCallTimeout(self._timed_out(tool, timeout_s)) from None
            except concurrent.futures.CancelledError:
                raise McpUnavailable(f"MCP server {self.name!r}: the connection closed during the call "
                                     f"to {tool!r}") from None
            except MCPError as exc:
                if exc.code == REQUEST_TIMEOUT:
                    raise McpCallTimeout(self._timed_out(tool, timeout_s)) from None
                if exc.code == CONNECTION_CLOSED:
                    self._fail("closed the connection (the server exited or crashed)")
                    raise McpUnavailable(self._unavailable()) from None
                raise McpCallFailed(f"MCP server {self.name!r} refused the call to {tool!r}: "
                                    f"{exc.message} (code {exc.code})") from None
            except (OSError, RuntimeError) as exc:  # the transport broke under the call
                self._fail(f"the connection broke: {type(exc).__name__}: {exc}")
                raise McpUnavailable(self._unavailable()) from None

    def _timed_out(self, tool: str, timeout_s: float) -> str:
        return (f"MCP server {self.name!r}: {tool!r} did not answer within {timeout_s:g} s and was cancelled "
                "(the server is still connected)")

    def _fail(self, why: str) -> None:
        with self._lock:
            if self._failure is None:
                self._failure = why

    def _unavailable(self) -> str:
        if self._closing and self._failure is None:
            return f"MCP server {self.name!r} is shut down"
        text = f"MCP server {self.name!r} ({self.target.describe()}) is not available: {self._failure}"
        tail = self.stderr_tail()
        return f"{text}\n--- the end of its stderr:\n{tail}" if tail else text

    def stderr_tail(self, limit: int = STDERR_TAIL_BYTES) -> str:
        if self.stderr_path is None:
            return ""
        try:
            with self.stderr_path.open("rb") as f:
                f.seek(max(self._log_start, f.seek(0, os.SEEK_END) - limit))
                return f.read().decode("utf-8", errors="replace").strip()
        except OSError:
            return ""

    def _stderr_size(self) -> int:
        try:
            return self.stderr_path.stat().st_size if self.stderr_path is not None else 0
        except OSError:
            return 0

    def _stderr_since(self, offset: int) -> str:
        if self.stderr_path is None:
            return ""
        try:
            with self.stderr_path.open("rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", errors="replace")
        except OSError as exc:
            return f"(could not read the server's stderr log {self.stderr_path}: {exc})"

    def _request_stop(self, *, only_if_starting: bool = False) -> None:
        with self._lock:
            loop, stop, task = self._loop, self._stop, self._main_task
        if loop is None or loop.is_closed():
            return

        def stop_now() -> None:
            ready = self._ready.is_set()  # read on the loop: no race with the task publishing its tools
            if stop is not None and not (only_if_starting and ready):
                stop.set()
            if not ready and task is not None:
                task.cancel()  # still connecting: cancel the one task that is entering the client

        try:
            loop.call_soon_threadsafe(stop_now)
        except RuntimeError:  # the loop closed meanwhile: nothing left to stop
            pass

    # ---------------- owner thread ----------------

    def _run(self) -> None:
        import asyncio

        loop = asyncio.new_event_loop()
        with self._lock:
            self._loop = loop
        try:
            main = loop.create_task(self._main())
            with self._lock:
                self._main_task = main
                closing = self._closing
            if closing:
                main.cancel()
            loop.run_until_complete(_settle(main))
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            with self._lock:
                loop.close()
            self._ready.set()

    async def _main(self) -> None:
        import asyncio

        self._stop = asyncio.Event()
        errlog: TextIO | None = None
        _route_sdk_logs(self._thread.name, self.stderr_path)
        try:
            from mcp import Client  # first use: the SDK costs ~0.5 s to import, so never at start-up

            if self.stderr_path is not None:
                self.stderr_path.parent.mkdir(parents=True, exist_ok=True)
                errlog = self.stderr_path.open("a", encoding="utf-8", buffering=1)
                errlog.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.target.describe()}\n")
                errlog.flush()
                self._log_start = self._stderr_size()
            async with Client(self._transport(errlog)) as client:
                self._tools = await _list_tools(client)
                self._client = client
                self._connected_once = True
                self._ready.set()
                await self._stop.wait()
        except asyncio.CancelledError:
            self._fail("start-up was cancelled" if not self._ready.is_set() else "the client was cancelled")
        except Exception as exc:  # noqa: BLE001 - any start-up failure becomes one line naming the server
            self._fail(_describe_failure(exc))
        finally:
            self._client = None
            self._ready.set()
            if errlog is not None:
                errlog.close()
            _route_sdk_logs(self._thread.name, None)

    def _transport(self, errlog: TextIO | None) -> Any:
        """What `mcp.Client` connects to: a stdio transport with our stderr file, a URL, or a server object."""
        match self.target:
            case StdioTarget(command=command, args=args, env=env):
                from mcp.client.stdio import StdioServerParameters, stdio_client

                params = StdioServerParameters(command=command, args=list(args), env=dict(env))
                return stdio_client(params, errlog=errlog) if errlog is not None else stdio_client(params)
            case HttpTarget(url=url):
                return url
            case InProcessTarget(server=server):
                return server

    async def _call(self, tool: str, args: dict[str, Any], timeout_s: float) -> CallToolResult:
        client = self._client
        if client is None:
            from mcp.shared.exceptions import MCPError
            from mcp_types import CONNECTION_CLOSED

            raise MCPError(code=CONNECTION_CLOSED, message="Connection closed")
        return await client.call_tool(tool, args, read_timeout_seconds=timeout_s)


async def _settle(task: asyncio.Task[None]) -> None:
    import asyncio

    try:
        await task
    except asyncio.CancelledError:
        pass


async def _list_tools(client: Client) -> tuple[McpToolInfo, ...]:
    out: list[McpToolInfo] = []
    cursor: str | None = None
    for _ in range(100):  # a server whose pages never end must not hang start-up
        page = await client.list_tools(cursor=cursor)
        out += [McpToolInfo(t.name, t.description or "", dict(t.input_schema or {})) for t in page.tools]
        cursor = page.next_cursor
        if cursor is None:
            break
    return tuple(out)


def _describe_failure(exc: BaseException) -> str:
    """One line for a start-up failure; an exception group (from the SDK's task groups) is unwrapped."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, ImportError) and (exc.name or "").split(".")[0] in ("mcp", "mcp_types"):
        return "the MCP SDK is not installed (pip install -e '.[mcp]' in Conductor's folder)"
    if isinstance(exc, FileNotFoundError):
        return f"could not start it: command not found ({exc.filename or exc})"
    if isinstance(exc, PermissionError):
        return f"could not start it: permission denied ({exc.filename or exc})"
    message = str(exc) or type(exc).__name__
    if message == "Connection closed":
        return "it exited during start-up (the connection closed before it answered)"
    return f"failed to connect: {message}"
