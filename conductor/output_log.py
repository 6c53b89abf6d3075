"""A track's ticket streams (every ticket's Tier 3 and Tier 4 text) in one append-only file, `outputs/tickets.log`.

Why one file and not a file per ticket: creating a file is the one costly thing about writing text. On this kind of
VM (ext4) creating a folder and two files per ticket costs 0.05 to 1.6 ms of kernel CPU per ticket, varying tenfold
from run to run, while appending to an open file costs 2 µs. At 600 tickets a second (5,000 tickets, 64 workers,
20 ms calls) per-ticket files made the output thread fall seconds behind the run and took a core from the workers
(bench/dag_makespan.py). Appending to one open file keeps up at any rate.

The file stays readable with `less`: each chunk is a header line and then exactly that many bytes of text

    \\n@@ T12 3 57 @@\\n<57 bytes of redacted UTF-8>

`conductor output <track> <ticket>` prints one ticket's text whole. Readers go by the lengths, never by looking
for headers, so text that imitates a header (a model can write anything) is only text. An index of chunks per
(ticket, tier) is built by scanning the headers once (mmap) and kept up to date by the writer.

Damage: a kill -9 can leave the last chunk torn (a header without all its bytes, or part of a header). The writer
cuts such a tail off before its next append: it is text, not state, and the kill lost the queued text anyway.
Anything else that does not parse (a file edited or damaged by hand) is never cut: the writer moves the file aside
to `tickets.damaged-<n>.log`, where a person can still read it, and starts a new log.
"""

from __future__ import annotations

import mmap
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

LOG_NAME = "tickets.log"
_HEADER = re.compile(rb"\n@@ ([A-Za-z0-9][A-Za-z0-9_.-]{0,63}) ([0-9]) ([0-9]{1,12}) @@\n")
_HEADER_MAX = 1 + 3 + 64 + 1 + 1 + 1 + 12 + 4  # the longest header the pattern allows


@dataclass(frozen=True, slots=True)
class TicketStream:
    """Where one ticket's Tier 3 or Tier 4 text lives: its track's log, and the key inside it."""

    log: Path
    ticket_id: str
    tier: int

    @property
    def legacy_file(self) -> Path:
        """Where versions before the log kept this text: read when the log has none."""
        return self.log.parent / "tickets" / self.ticket_id / f"tier{self.tier}.md"


def header(ticket_id: str, tier: int, size: int) -> bytes:
    return b"\n@@ %s %d %d @@\n" % (ticket_id.encode("ascii"), tier, size)


_Key = tuple[str, int]
_Chunk = tuple[int, int]  # offset of the text, its length in bytes


@dataclass(frozen=True, slots=True)
class _Scan:
    chunks: dict[_Key, list[_Chunk]]
    valid_end: int
    """Where the last whole chunk ends."""
    size: int
    torn: bool
    """Whether everything after valid_end is the beginning of a chunk that a kill cut short."""


def _scan(path: Path) -> _Scan:
    chunks: dict[_Key, list[_Chunk]] = {}
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return _Scan(chunks, 0, 0, True)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return _Scan(chunks, 0, 0, True)
        with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mm:
            pos = 0
            while pos < size:
                m = _HEADER.match(mm, pos)
                if m is None:
                    rest = mm[pos:min(size, pos + _HEADER_MAX)]
                    torn = size - pos < _HEADER_MAX and b"\n@@ ".startswith(rest[:4]) and b"\n" not in rest[1:]
                    return _Scan(chunks, pos, size, torn)
                start, length = m.end(), int(m.group(3))
                if start + length > size:
                    return _Scan(chunks, pos, size, True)
                chunks.setdefault((m.group(1).decode("ascii"), int(m.group(2))), []).append((start, length))
                pos = start + length
            return _Scan(chunks, pos, size, True)
    finally:
        os.close(fd)


class OutputLog:
    """The index of one log file and its appends. `append` is called by the store's output thread only; readers
    (any thread) call `read`, which sees every chunk the writer finished."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._chunks: dict[_Key, list[_Chunk]] | None = None
        self._end = 0
        self._repaired = False
        """Whether the writer checked the file's tail since it (re)loaded the index."""

    def _index(self) -> dict[_Key, list[_Chunk]]:
        if self._chunks is None:  # under self._lock
            scan = _scan(self.path)
            self._chunks, self._end, self._repaired = scan.chunks, scan.valid_end, False
        return self._chunks

    def append(self, fd_for: FdSource, parts: list[tuple[str, int, bytes]]) -> None:
        """Write chunks (ticket, tier, text) in one write at the end of the log. Raises OSError; after a failed
        write the file is cut back to its last whole chunk, or the index is dropped to be rebuilt from the file."""
        with self._lock:
            if self._chunks is None or not self._repaired:
                self._repair(fd_for)
            out, placed, pos = bytearray(), [], self._end
            for ticket_id, tier, data in parts:
                head = header(ticket_id, tier, len(data))
                placed.append(((ticket_id, tier), (pos + len(out) + len(head), len(data))))
                out += head
                out += data
            fd = fd_for(self.path)
            try:
                write_all(fd, bytes(out))
            except OSError:
                try:
                    os.ftruncate(fd, self._end)
                except OSError:
                    self._chunks = None  # rebuilt from the file (its torn tail cut) before the next append
                raise
            assert self._chunks is not None
            for key, chunk in placed:
                self._chunks.setdefault(key, []).append(chunk)
            self._end = pos + len(out)

    def _repair(self, fd_for: FdSource) -> None:
        """Before the first append: cut a torn tail, or move a damaged file aside (see the module's docstring)."""
        scan = _scan(self.path)
        if scan.valid_end < scan.size:
            if scan.torn:
                os.truncate(self.path, scan.valid_end)
            else:
                fd_for.forget(self.path)
                os.replace(self.path, _free_name(self.path))
                scan = _Scan({}, 0, 0, True)
        self._chunks, self._end, self._repaired = scan.chunks, scan.valid_end, True

    def read(self, ticket_id: str, tier: int, max_bytes: int | None = None) -> tuple[bytes, bool] | None:
        """The text of (ticket, tier): its last `max_bytes` or more (whole chunks), and whether that is only a
        tail; None when the log holds nothing for it."""
        with self._lock:
            chunks = list(self._index().get((ticket_id, tier), ()))
        if not chunks:
            return None
        take, total = [], 0
        for chunk in reversed(chunks):
            if max_bytes is not None and total >= max_bytes:
                break
            take.append(chunk)
            total += chunk[1]
        with open(self.path, "rb") as f:
            parts = []
            for offset, length in reversed(take):
                f.seek(offset)
                parts.append(f.read(length))
        return b"".join(parts), len(take) < len(chunks)


class FdSource(Protocol):
    """What the writer lends a log: its open file (O_APPEND) for a path, and a way to close it before a rename."""

    def __call__(self, path: Path) -> int: ...

    def forget(self, path: Path) -> None: ...


def _free_name(path: Path) -> Path:
    n = 1
    while (candidate := path.with_name(f"{path.stem}.damaged-{n}{path.suffix}")).exists():
        n += 1
    return candidate


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
