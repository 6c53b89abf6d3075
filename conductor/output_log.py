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
(ticket, tier) is built by scanning the headers once (pread, a megabyte at a time) and kept up to date by the
writer.

Damage: a kill -9 can leave the last chunk torn (a header without all its bytes, or part of one); a power cut can
leave zeros; a person can edit the file. Readers stop at the first thing that does not parse and show what comes
before it. Before its next append the writer copies everything from there on to `tickets.cut-<n>.log` (never
lost: a person can read it) and only then cuts the log back to its last whole chunk.
"""

from __future__ import annotations

import os
import re
import threading
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

LOG_NAME = "tickets.log"
_ID = rb"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
_HEADER = re.compile(rb"\n@@ (" + _ID + rb") ([0-9]) ([0-9]{1,12}) @@\n")
_ID_ONLY = re.compile(_ID)
_HEADER_MAX = 1 + 3 + 64 + 1 + 1 + 1 + 12 + 4  # the longest header the pattern allows
_SCAN_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class TicketStream:
    """Where one ticket's Tier 3 or Tier 4 text lives: its track's log, and the key inside it."""

    log: Path
    ticket_id: str
    tier: int

    @property
    def legacy_file(self) -> Path:
        """Where versions before the log kept this text: read first, the log's text follows it."""
        return self.log.parent / "tickets" / self.ticket_id / f"tier{self.tier}.md"


def header(ticket_id: str, tier: int, size: int) -> bytes:
    """Raises ValueError for what a reader could not parse back (the model refuses such ids; this is the last
    guard: one unparsable header would hide every later chunk of the track)."""
    raw = ticket_id.encode("ascii", errors="replace")
    if _ID_ONLY.fullmatch(raw) is None or not 0 <= tier <= 9:
        raise ValueError(f"ticket id {ticket_id!r} / tier {tier} cannot be written to the output log")
    return b"\n@@ %s %d %d @@\n" % (raw, tier, size)


_Key = tuple[str, int]


@dataclass(slots=True)
class _Scan:
    chunks: dict[_Key, array[int]]
    """Per key, offset and length of each chunk's text, flat (16 bytes a chunk: logs hold one chunk per delta)."""
    valid_end: int
    """Where the last whole chunk ends; what follows (to size) did not parse."""
    size: int


def _scan(fd: int) -> _Scan:
    """Reads headers with pread (never mmap: a file cut by the writer while mapped kills the reader with SIGBUS)."""
    chunks: dict[_Key, array[int]] = {}
    size = os.fstat(fd).st_size
    block, block_at, pos = b"", 0, 0
    while pos < size:
        if not (block_at <= pos and pos + _HEADER_MAX <= block_at + len(block)):
            block, block_at = os.pread(fd, _SCAN_BLOCK, pos), pos
        m = _HEADER.match(block, pos - block_at)
        if m is None:
            break
        start, length = block_at + m.end(), int(m.group(3))
        if start + length > size:
            break
        key = (m.group(1).decode("ascii"), int(m.group(2)))
        found = chunks.get(key)
        if found is None:
            found = chunks[key] = array("q")
        found.append(start)
        found.append(length)
        pos = start + length
    return _Scan(chunks, pos, size)


class OutputLog:
    """The index of one log file and its appends. `append` is called by the store's output thread only; readers
    (any thread) call `read`, which sees every chunk the writer finished."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._chunks: dict[_Key, array[int]] | None = None
        self._end = 0
        self._repaired = False
        """Whether the writer checked the file's tail since the index was (re)loaded."""

    def append(self, fd_for: FdSource, parts: list[tuple[str, int, bytes]]) -> None:
        """Write chunks (ticket, tier, text) in one write at the end of the log. Raises OSError (and ValueError for
        an id no reader could parse); after a failed write the file is cut back to its last whole chunk, or the
        index is dropped to be rebuilt from the file (its torn tail kept aside and cut) before the next append."""
        with self._lock:
            if self._chunks is None or not self._repaired:
                self._repair(fd_for)
            assert self._chunks is not None
            out, placed, pos = bytearray(), [], self._end
            for ticket_id, tier, data in parts:
                head = header(ticket_id, tier, len(data))
                placed.append(((ticket_id, tier), pos + len(out) + len(head), len(data)))
                out += head
                out += data
            fd = fd_for(self.path)
            try:
                write_all(fd, bytes(out))
            except OSError:
                try:
                    os.ftruncate(fd, self._end)
                except OSError:
                    self._chunks = None
                raise
            for key, offset, length in placed:
                found = self._chunks.get(key)
                if found is None:
                    found = self._chunks[key] = array("q")
                found.append(offset)
                found.append(length)
            self._end = pos + len(out)

    def _repair(self, fd_for: FdSource) -> None:
        """Before the first append: keep whatever follows the last whole chunk in a side file, then cut it off."""
        fd = fd_for(self.path)  # creates it
        with open(self.path, "rb") as f:  # the writer's own fd is write-only
            scan = _scan(f.fileno())
            rest = os.pread(f.fileno(), scan.size - scan.valid_end, scan.valid_end) if scan.size > scan.valid_end \
                else b""
        if rest:
            with open(_free_name(self.path), "xb") as side:  # whole before the cut: a kill between keeps it twice
                side.write(rest)
            os.ftruncate(fd, scan.valid_end)
        self._chunks, self._end, self._repaired = scan.chunks, scan.valid_end, True

    def read(self, ticket_id: str, tier: int, max_bytes: int | None = None) -> tuple[bytes, bool] | None:
        """The text of (ticket, tier): its last `max_bytes` or more (whole chunks), and whether that is only a
        tail; None when the log holds nothing for it (or is gone)."""
        with self._lock:
            try:
                # Opened under the lock: the file read is the one the index describes (appends and cuts never
                # touch what it indexes).
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                self._chunks, self._repaired = None, False  # deleted: a new one starts empty
                return None
            try:
                if self._chunks is None:
                    scan = _scan(fd)
                    self._chunks, self._end, self._repaired = scan.chunks, scan.valid_end, False
                flat = self._chunks.get((ticket_id, tier))
                flat = array("q", flat) if flat is not None else None
            except BaseException:
                os.close(fd)
                raise
        try:
            if not flat:
                return None
            n = len(flat) // 2
            first, total = n, 0
            while first > 0 and (max_bytes is None or total < max_bytes):
                first -= 1
                total += flat[2 * first + 1]
            parts = [os.pread(fd, flat[2 * i + 1], flat[2 * i]) for i in range(first, n)]
            return b"".join(parts), first > 0
        finally:
            os.close(fd)


class FdSource(Protocol):
    """What the writer lends a log: its open file (O_APPEND) for a path."""

    def __call__(self, path: Path) -> int: ...


def _free_name(path: Path) -> Path:
    n = 1
    while (candidate := path.with_name(f"{path.stem}.cut-{n}{path.suffix}")).exists():
        n += 1
    return candidate


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
