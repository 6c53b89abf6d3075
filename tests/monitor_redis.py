"""A real redis-server for the monitor's tests: started on a unix socket in a temp folder (no TCP port to collide
on), ready when it says so on its log (no sleeping), stopped at the end of the session. Skips when the binary is
missing (the setup scripts install Debian's redis-server)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@dataclass
class RedisServer:
    socket: Path
    proc: subprocess.Popen[str]

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self) -> object:
        import redis
        return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=5)


def start_redis(folder: Path) -> RedisServer:
    sock = folder / "redis.sock"
    proc = subprocess.Popen(
        [REDIS_SERVER, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700", "--save", "",
         "--appendonly", "no", "--dir", str(folder), "--loglevel", "notice"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # blocks on the server's own log until it is ready (or exits)
        seen.append(line)
        if "ready to accept connections" in line.lower():
            break
    else:
        proc.wait(10)
        raise RuntimeError("redis-server did not start:\n" + "".join(seen[-20:]))
    # Keep reading its log, so a full pipe never blocks the server.
    threading.Thread(target=proc.stdout.read, name="redis-log", daemon=True).start()
    return RedisServer(sock, proc)


def stop_redis(server: RedisServer) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(10)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed (apt-get install redis-server; scripts/test.sh does)")
    folder = Path(tempfile.mkdtemp(prefix="cr-", dir="/tmp"))  # a unix socket path must stay under 108 bytes
    server = start_redis(folder)
    try:
        yield server
    finally:
        stop_redis(server)
        shutil.rmtree(folder, ignore_errors=True)
