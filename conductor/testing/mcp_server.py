"""A small MCP server for tests, built on the official SDK's `MCPServer` (mcp 2.x).

The same tools are served in-process (`build_server()`, handed to `McpTarget.in_process`) or as a real stdio
subprocess (`python -m conductor.testing.mcp_server [--marker-dir DIR]`), or over streamable HTTP
(`--http-port PORT`: http://127.0.0.1:PORT/mcp):

    echo(text)              returns the text
    add(a, b)               returns a + b
    touch(name)             creates <marker-dir>/<name> (a side effect a test can look for); returns the path
    slow(seconds)           sleeps, then returns "done"; for per-call timeouts
    shout(text)             writes the text to stderr, then returns "shouted"
    fail(message)           raises: the client sees an error result carrying the message
    crash(code)             writes a last line to stderr and exits the process (stdio only)

Importing this module imports the SDK; the app never imports it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError


def build_server(marker_dir: Path | None = None) -> MCPServer:
    server = MCPServer("conductor-test-server")

    @server.tool(description="Return the text unchanged.")
    def echo(text: str) -> str:
        return text

    @server.tool(description="Add two integers.")
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool(description="Create an empty marker file with this name.")
    def touch(name: str) -> str:
        if marker_dir is None:
            raise ValueError("this server was started without a marker folder")
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"bad marker name {name!r}")
        path = marker_dir / name
        path.touch()
        return str(path)

    @server.tool(description="Sleep for a number of seconds, then answer.")
    async def slow(seconds: float) -> str:
        await anyio.sleep(seconds)
        return "done"

    @server.tool(description="Write the text to stderr.")
    def shout(text: str) -> str:
        print(text, file=sys.stderr, flush=True)
        return "shouted"

    @server.tool(description="Always fails with this message.")
    def fail(message: str) -> str:
        raise ToolError(message)  # the SDK passes a ToolError's message on (other exceptions are hidden)

    @server.tool(description="Exit the server process with this code.")
    def crash(code: int) -> str:
        print(f"test server crashing with exit code {code}", file=sys.stderr, flush=True)
        os._exit(code)

    return server


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--marker-dir", type=Path, default=None)
    ap.add_argument("--fail-at-start", action="store_true", help="exit with an error before serving")
    ap.add_argument("--http-port", type=int, default=None,
                    help="serve streamable HTTP on 127.0.0.1:PORT/mcp instead of stdio")
    args = ap.parse_args(argv)
    print("conductor test MCP server starting", file=sys.stderr, flush=True)
    if args.fail_at_start:
        print("fatal: cannot open the database (on purpose)", file=sys.stderr, flush=True)
        sys.exit(2)
    server = build_server(args.marker_dir)
    if args.http_port is not None:
        server.run("streamable-http", host="127.0.0.1", port=args.http_port)
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
