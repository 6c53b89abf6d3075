"""A real redis-server and real `conductor worker` processes for the distributed tests.

redis-server runs on a unix socket in a private tmp folder (no TCP port to collide on) with append-only
persistence, `appendfsync always`, so a kill -9 of the server loses nothing it acknowledged. When the binary is
missing the tests SKIP on a developer machine but FAIL when CONDUCTOR_CI=1 (.ci/run sets it and installs the
package): CI must never go green by skipping the distributed suite.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)


def need_redis() -> str:
    if REDIS is None:
        if os.environ.get("CONDUCTOR_CI") == "1":
            pytest.fail("redis-server is not installed, and CONDUCTOR_CI=1: the distributed tests must run in CI "
                        "(scripts/test.sh installs it: apt-get install redis-server)")
        pytest.skip("redis-server is not installed (apt-get install redis-server); CI fails instead of skipping")
    return REDIS


class RedisServer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sock = folder / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.sock}"

    def start(self) -> None:
        binary = need_redis()
        self.sock.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--unixsocket", str(self.sock), "--unixsocketperm", "700", "--dir",
             str(self.folder), "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--daemonize", "no", "--logfile", str(self.folder / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis
        client = redis.Redis(unix_socket_path=str(self.sock))
        from tests.helpers import wait_for

        def up() -> bool:
            try:
                return bool(client.ping())
            except (redis.ConnectionError, OSError):
                return False
        try:
            wait_for(up, timeout=10, what="redis-server answering PING")
        finally:
            client.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    need_redis()
    folder = Path(tempfile.mkdtemp(prefix="cdr-"))  # short: a unix socket path has a 108-byte limit
    server = RedisServer(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


class WorkerProcess:
    """`conductor worker` in its own process (scripted provider: no network, no key)."""

    def __init__(self, url: str, name: str, root: Path, *, namespace: str, threads: int = 2, beat: float = 0.3,
                 latency: float = 0.0, chunk_delay: float = 0.0, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = root / f"{name}.log"
        cfg = root / "worker-config.toml"
        if not cfg.exists():
            cfg.write_text("")
        args = [sys.executable, "-m", "conductor.cli", "--config", str(cfg), "worker", "--broker", url,
                "--threads", str(threads), "--name", name, "--workdir", str(root / f"wd-{name}"),
                "--provider", "scripted", "--namespace", namespace, "--beat", str(beat), "--latency", str(latency),
                "--chunk-delay", str(chunk_delay)]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 — closed in stop()
        # a consumer that lost Redis restarts after this many ms (Dramatiq's default is 3000)
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "dramatiq_restart_delay": "300", **(env or {})}
        full_env.pop("CONDUCTOR_BROKER_URL", None)
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=full_env,
                                     cwd=str(root))

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)


class PersonAnswers:
    """A person at the desktop answering every tool approval as it appears (approve), on their own thread."""

    def __init__(self, session: object) -> None:
        import queue

        from conductor.session import Session
        assert isinstance(session, Session)
        self.session = session
        self.asked: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.answered: list[str] = []
        session.broker.on_requested.append(lambda req: self.asked.put(req.id) if req.kind.value == "tool" else None)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from conductor.errors import ApprovalError
        while True:
            rid = self.asked.get()
            if rid is None:
                return
            try:
                self.session.resolve_approval(rid, approved=True)
                self.answered.append(rid)
            except ApprovalError:
                pass

    def stop(self) -> None:
        self.asked.put(None)
        self.thread.join()
