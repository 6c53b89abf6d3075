"""Run one child process with bounded memory: output streams to a file, only a head and a tail stay in memory.

The child gets its own session (so a timeout or a cancel kills the whole process group, grandchildren
included) and marker variables (so what left the group with setsid is found and killed too, at the command's
end, on cancel and at app exit), stdin from /dev/null (nothing can hang waiting for input), stdout and stderr
merged in order, and the environment it is given (the caller scrubs secrets). Everything it prints is redacted
(conductor.redact) before it is kept or spilled. 100 MB of output costs ~2 x `head_bytes + tail_bytes` of
memory here, not 100 MB.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from conductor import redact

CHUNK = 64 * 1024
KILL_GRACE_S = 2.0
"""After SIGTERM to the group, how long before SIGKILL."""
DRAIN_GRACE_S = 2.0
"""After the group is gone, how long to wait for the output pipe to close (a process that escaped even the
marker sweep, e.g. by clearing its environment, may still hold it; the pipe is then left rather than waited
for forever)."""


@dataclass
class Captured:
    exit_code: int | None
    timed_out: bool
    cancelled: bool
    head: bytes
    tail: bytes
    total_bytes: int
    duration_s: float
    stragglers_killed: bool = False
    """Background processes the command left behind were killed when it exited."""
    spill_error: str | None = None
    """Why the spill file is incomplete (disk full, ...), if it is."""

    @property
    def truncated(self) -> bool:
        return self.total_bytes > len(self.head) + len(self.tail)

    def text(self) -> str:
        head = self.head.decode("utf-8", errors="replace")
        if not self.truncated:
            return head + self.tail.decode("utf-8", errors="replace")
        skipped = self.total_bytes - len(self.head) - len(self.tail)
        return (head + f"\n[... {skipped} bytes omitted; the full output is in the spill file ...]\n"
                + self.tail.decode("utf-8", errors="replace"))


class _Collector:
    """Reads the pipe on its own thread: every byte to the spill file, a bounded head and tail in memory.
    A failing spill file (disk full) stops the copy, never the draining: the child must not block."""

    def __init__(self, fd: int, out: BinaryIO | None, head_bytes: int, tail_bytes: int) -> None:
        self.fd, self.out = fd, out
        # Output is redacted before anything keeps it: a command can print the app's own environment
        # (/proc/<ppid>/environ, ps e), and neither the spill file nor the model may see a key.
        self.redactor = redact.current().stream()
        self.head_bytes, self.tail_bytes = head_bytes, tail_bytes
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self.write_error: OSError | None = None
        self.thread = threading.Thread(target=self._run, name="command-output", daemon=True)

    def _run(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, CHUNK)
            except OSError:
                self._emit(self.redactor.flush())
                return
            if not chunk:
                self._emit(self.redactor.flush())
                return
            self._emit(self.redactor.feed(chunk))

    def _emit(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._keep(chunk)
        if self.out is not None and self.write_error is None:
            try:
                self.out.write(chunk)
            except OSError as exc:
                self.write_error = exc

    def _keep(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_bytes - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.tail_bytes:
                del self.tail[:len(self.tail) - self.tail_bytes]


def _kill_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False when no process of it is left."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _group_running(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies don't: they wait only to be reaped)."""
    try:
        names = os.listdir("/proc")
    except OSError:  # no procfs: fall back to asking the kernel (counts zombies, so may say True longer)
        return _kill_group(pgid, 0)
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def _reap_group(pgid: int) -> bool:
    """SIGKILL what is left of the group and wait (briefly) until none of it runs. True if anything was left."""
    if not _kill_group(pgid, signal.SIGKILL):
        return False
    deadline = time.monotonic() + KILL_GRACE_S
    while _group_running(pgid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return True


MARKER_ENV = "CONDUCTOR_COMMAND_ID"
"""Every process a command starts inherits this variable: a process that left the command's group and session
(`setsid`, `nohup … &` + `disown`, a daemon's double fork) is still found by it and killed with the command."""
APP_ENV = "CONDUCTOR_APP_PID"
"""And this one names the app: at exit, everything any of its commands started is found by it, whatever state
the per-command bookkeeping is in."""
_live_markers: set[str] = set()
_live_lock = threading.Lock()


def marked_pids(marker: str, var: str = MARKER_ENV) -> list[int]:
    """Processes (of this user) whose environment carries var=marker, found through /proc."""
    needle = f"{var}={marker}".encode()
    me = os.getpid()
    out: list[int] = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            out.append(int(name))
    return out


def kill_marked(marker: str, var: str = MARKER_ENV) -> int:
    """SIGKILL every process carrying the marker (and its group), until none is left. Returns how many."""
    killed, quiet = 0, 0
    for _ in range(60):  # a fork bomb refills the list; give up after a bounded number of sweeps
        pids = marked_pids(marker, var)
        if not pids:
            # A process in the middle of execve (or a fork not yet visible) can't be read for a moment:
            # only several empty sweeps in a row mean none is left.
            quiet += 1
            if quiet >= 3:
                break
            time.sleep(0.01)  # ok-sleep: give an exec in progress time to finish before looking again
            continue
        quiet = 0
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError, OSError):
                pass
        time.sleep(0.005)  # ok-sleep: let the kernel deliver SIGKILL before the next sweep
    return killed


def kill_all_commands() -> int:
    """Kill what every still-running command started (at app exit, and after a cancel)."""
    with _live_lock:
        markers = list(_live_markers)
    return sum(kill_marked(m) for m in markers) + kill_marked(str(os.getpid()), APP_ENV)


atexit.register(kill_all_commands)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """TERM the group, then KILL it if it has not gone after a grace period."""
    _kill_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    _kill_group(proc.pid, signal.SIGKILL)
    proc.wait()


def _wait(proc: subprocess.Popen[bytes], deadline: float, cancel: threading.Event | None) -> tuple[bool, bool]:
    """Wait for the child; stop its group on timeout or cancel. Returns (timed_out, cancelled)."""
    while True:
        try:
            proc.wait(timeout=min(0.05, max(deadline - time.monotonic(), 0.0)))
            return False, False
        except subprocess.TimeoutExpired:
            pass
        if cancel is not None and cancel.is_set():
            _stop(proc)
            return False, True
        if time.monotonic() >= deadline:
            _stop(proc)
            return True, False


def run_captured(argv: list[str], *, cwd: Path, env: dict[str, str], timeout_s: float, spill: Path | None,
                 cancel: threading.Event | None = None, head_bytes: int = 8_000,
                 tail_bytes: int = 8_000) -> Captured:
    """Run `argv` (no shell: the caller passes ['bash', '-c', line] when it means a shell).

    Nothing the command starts outlives it: once it exits, what is left of its process group is killed.
    Raises OSError when the spill file cannot be opened or the program cannot be started."""
    start = time.monotonic()
    marker = uuid.uuid4().hex
    env = {**env, MARKER_ENV: marker, APP_ENV: str(os.getpid())}
    with _live_lock:
        _live_markers.add(marker)
    out = open(spill, "wb") if spill is not None else None  # noqa: SIM115 — kept open past this block
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=write_fd,
                                stderr=write_fd, start_new_session=True, close_fds=True)
    except BaseException:
        os.close(read_fd)
        if out is not None:
            out.close()
        with _live_lock:
            _live_markers.discard(marker)
        raise
    finally:
        os.close(write_fd)  # only the child holds the write end now, so EOF means every writer is gone
    collector = _Collector(read_fd, out, head_bytes, tail_bytes)
    collector.thread.start()
    try:
        timed_out, cancelled = _wait(proc, start + timeout_s, cancel)
    finally:
        if proc.poll() is None:  # an exception (KeyboardInterrupt) while waiting: never leave it running
            _stop(proc)
        stragglers = _reap_group(proc.pid)
        stragglers = kill_marked(marker) > 0 or stragglers  # what left the group (setsid) goes too
        with _live_lock:
            _live_markers.discard(marker)
        collector.thread.join(DRAIN_GRACE_S)
        if not collector.thread.is_alive():  # else a process that left the group holds the pipe: leave it
            os.close(read_fd)
        if out is not None:
            out.close()
    spill_error = f"{collector.write_error}" if collector.write_error else None
    return Captured(proc.returncode, timed_out, cancelled, bytes(collector.head), bytes(collector.tail),
                    collector.total, round(time.monotonic() - start, 3), stragglers, spill_error)


def safe_path(path_var: str | None, workspace: Path | None = None) -> str:
    """PATH with only absolute entries outside the workspace: '', '.', 'bin', './node_modules/.bin' or
    '<workspace>/bin' would let a repository put its own `make` or `pytest` in front of the real one."""
    root = workspace.resolve() if workspace is not None else None
    keep: list[str] = []
    for entry in (path_var if path_var is not None else os.defpath).split(os.pathsep):
        if not entry or not os.path.isabs(entry):
            continue
        if root is not None:
            try:
                if Path(entry).resolve().is_relative_to(root):
                    continue
            except (OSError, RuntimeError):
                continue
        if entry not in keep:
            keep.append(entry)
    return os.pathsep.join(keep)


def resolve_program(name: str, path_var: str) -> str | None:
    """The absolute path `name` runs as with this PATH (None when not found). A name with a '/' is returned
    as is (it is not looked up)."""
    if "/" in name:
        return name
    return shutil.which(name, path=path_var)
