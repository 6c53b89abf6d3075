"""What an MCP tool costs through Conductor's client (one owner thread per server), per transport, side by side.

    .venv/bin/python bench/mcp_calls.py [--calls 200] [--threads 8]

For the in-process server, a real stdio subprocess and streamable HTTP on 127.0.0.1 (the test server in
conductor/testing/mcp_server.py): connect + tool listing, calls one after another, the same calls from several
worker threads at once, and a call that times out followed by one that must work. Then the import cost that
start-up does not pay: the SDK itself against Conductor's MCP modules, each in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import logging
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from conductor.tools.mcp_client import (
    HttpTarget,
    InProcessTarget,
    McpCallTimeout,
    McpConnection,
    McpTarget,
    StdioTarget,
)

SERVER = ("-m", "conductor.testing.mcp_server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(name: str, target: McpTarget, calls: int, threads: int, log: Path) -> None:
    started = time.perf_counter()
    conn = McpConnection(name, target, stderr_path=log / f"{name}.stderr.log").start()
    conn.wait_ready()
    connect = time.perf_counter() - started
    try:
        t = time.perf_counter()
        for i in range(calls):
            assert conn.call("add", {"a": i, "b": 1}, timeout_s=10).result.structured_content == {"result": i + 1}
        sequential = (time.perf_counter() - t) / calls
        t = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            got = list(pool.map(lambda i: conn.call("add", {"a": i, "b": 1}, timeout_s=10), range(calls)))
        parallel = (time.perf_counter() - t) / calls
        assert [g.result.structured_content for g in got] == [{"result": i + 1} for i in range(calls)]
        t = time.perf_counter()
        try:
            conn.call("slow", {"seconds": 5}, timeout_s=0.2)
            timed_out = "NO TIMEOUT"
        except McpCallTimeout:
            timed_out = f"{(time.perf_counter() - t) * 1000:.0f} ms"
        after = conn.call("echo", {"text": "ok"}, timeout_s=5).result.structured_content == {"result": "ok"}
    finally:
        t = time.perf_counter()
        conn.close()
        closed = time.perf_counter() - t
    print(f"  {name:10} {connect * 1000:9.0f} ms {sequential * 1000:12.2f} ms {parallel * 1000:14.2f} ms "
          f"{timed_out:>12} {'yes' if after else 'NO':>10} {closed * 1000:9.0f} ms")


def import_ms(module: str, pre: str, runs: int = 5) -> float:
    code = f"import {pre}\nimport time\nt = time.perf_counter()\nimport {module}\nprint(time.perf_counter() - t)"
    times = [float(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                                  check=True).stdout) for _ in range(runs)]
    return statistics.median(times) * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args(argv)
    from conductor.testing.mcp_server import build_server

    logging.getLogger("httpx2").setLevel(logging.WARNING)  # the SDK's server set up INFO logging on the root

    print(f"{args.calls} calls of add(a, b); parallel = the same from {args.threads} threads on one client")
    print(f"  {'transport':10} {'connect':>12} {'sequential/call':>15} {'parallel/call':>17} "
          f"{'0.2 s timeout':>12} {'next ok':>10} {'close':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp)
        measure("in-process", InProcessTarget(build_server()), args.calls, args.threads, log)
        measure("stdio", StdioTarget(sys.executable, SERVER), args.calls, args.threads, log)
        port = free_port()
        http = subprocess.Popen([sys.executable, *SERVER, "--http-port", str(port)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            assert http.stderr is not None
            for line in http.stderr:
                if "Uvicorn running on" in line:
                    break
            measure("http", HttpTarget(f"http://127.0.0.1:{port}/mcp"), args.calls, args.threads, log)
        finally:
            http.terminate()
            http.wait(10)
    print("import cost on top of the session's other modules, median of 5 fresh interpreters")
    print("(start-up imports conductor's MCP modules only; the SDK loads when a server is first used):")
    pre = "conductor.config, conductor.tools, conductor.store, conductor.approvals"
    for module in ("conductor.tools.mcp_tools", "mcp"):
        print(f"  {module:28} {import_ms(module, pre):8.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
