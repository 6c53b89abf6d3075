"""The tracks folder: atomic snapshots, an append-only journal, full outputs.

    tracks/<track-id>/track.toml       latest snapshot (atomic write; `journal_seq` = last journal line it includes)
    tracks/<track-id>/events.jsonl     journal: one JSON object a line {seq, ts, type, data, crc}
    tracks/<track-id>/spec.md          human-readable spec (written, never parsed back)
    tracks/<track-id>/outputs/tickets.log   every ticket's full stream text (conductor.output_log; panes show a tail)
    tracks/<track-id>/outputs/tier1.md, tier2.md   the planning streams
    tracks/_epics/<epic-id>/...        the same for a Tier 1 planning run (before tracks exist)

The journal is the source of truth; the snapshot is a shortcut. On load: read the snapshot, replay journal
lines after its seq, drop a torn last line (and say so), move a corrupt file aside (never overwrite it).
"""

from __future__ import annotations

import bisect
import contextlib
import contextvars
import errno
import json
import os
import queue
import re
import threading
import time
import tomllib
import zlib
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import tomli_w
from pydantic import BaseModel

from conductor import redact
from conductor.atomic import atomic_write_bytes, atomic_write_text, fsync_dir, mkdirs_durable
from conductor.errors import StoreError
from conductor.model import ACTIVE_STATUSES, TicketStatus, Track, TrackStatus
from conductor.output_log import LOG_NAME, OutputLog, TicketStream, write_all
from conductor.records import (
    SINGLETON_KEYS,
    Record,
    RecordError,
    TrackCreated,
    apply,
    from_data,
    record_key,
    record_type,
    to_data,
)

EPICS_DIR = "_epics"
COALESCE_S = 0.005
"""How long the output thread gathers deltas after the first before writing them (never for a flush)."""
OUTPUT_FDS = 64
"""Output files kept open for appending (one per live stream; the oldest is closed past this)."""
_SAFE = re.compile(r"[^a-z0-9]+")


def slug(text: str, limit: int = 32) -> str:
    s = _SAFE.sub("-", text.lower()).strip("-")
    return (s[:limit].rstrip("-")) or "track"


def _legacy_crc(seq: int, ts: float, type_: str, data: Any) -> int:
    """The checksum of lines written before the record vocabulary (re-serialises the line: slow, rare)."""
    body = json.dumps([seq, ts, type_, data], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return zlib.crc32(body.encode("utf-8"))


_CRC_SEP = b',"crc":'


class JournalEntry:
    """One verified journal line. `record` parses it into its typed record on first use (most lines are only
    indexed, never parsed, when a snapshot already covers them)."""

    __slots__ = ("_data", "_key", "_raw", "_record", "seq", "ts", "type")

    def __init__(self, seq: int, ts: float, type_: str, data: dict[str, Any] | bytes, record: Record | None = None,
                 key: str | None = None) -> None:
        self.seq = seq
        self.ts = ts
        self.type = type_
        self._raw = data if isinstance(data, bytes) else None
        self._data = data if isinstance(data, dict) else None
        self._key = key
        self._record = record

    @property
    def data(self) -> dict[str, Any]:
        """The line's raw `data` object, decoded on first use ({} for a line appended in this process: use
        `record`)."""
        if self._data is None:
            decoded = json.loads(self._raw) if self._raw is not None else {}
            self._data = decoded if isinstance(decoded, dict) else {}
            self._raw = None
        return self._data

    @property
    def record(self) -> Record:
        """The typed record; RecordError when the line verifies but is not a record this version knows."""
        if self._record is None:
            self._record = from_data(self.type, self.data)
        return self._record

    def index_key(self) -> tuple[str, str] | None:
        """(type, key) this entry is found under, for records with an idempotency or singleton key."""
        t = self.type
        key: object = self._key
        if key is None and (self._raw is None or self._raw.startswith(b'{"key":')):
            key = self.data.get("key")  # decoded only when the fast scan could not read it (escapes)
        if t == "epic_record":  # legacy planning lines
            t = {"proposal": "proposal_received", "tracks": "tracks_created"}.get(str(key), t)
            key = None
        elif t == "track_record":
            t, key = "ticket_proposal_received", None
        if isinstance(key, str):
            return t, key
        singleton = _SINGLETON_BY_TYPE.get(t)
        return (t, singleton) if singleton else None


_SINGLETON_BY_TYPE = {record_type(cls): key for cls, key in SINGLETON_KEYS.items()}
R = TypeVar("R", bound=BaseModel)


@dataclass
class JournalRead:
    entries: list[JournalEntry]
    warnings: list[str] = field(default_factory=list)


class JournalFence:
    """Holds a worker's journal appends until the engine's line that started its attempt is durable.

    The engine starts an attempt (without git) the moment it decides to, while its committer thread writes and
    fsyncs the `running` line (engine._Committer): the attempt's first model call overlaps that instead of waiting
    for it. Its own records (model turns, usage, tool intents) must still follow that line, durable, so every
    append made under `fenced(fence)` waits here first; the committer opens the fence once the line is fsynced, or
    opens it refused when the journal refused the line (the attempt is cancelled then, and its appends fail)."""

    def __init__(self, writer: threading.Thread) -> None:
        self._open = threading.Event()
        self._writer = writer
        self._refused: OSError | None = None

    def open(self, refused: OSError | None = None) -> None:
        """Let the appends go on; with `refused` (the line was never written) every one of them fails with it."""
        self._refused = refused
        self._open.set()

    def wait(self) -> None:
        while not self._open.wait(0.5):
            if not self._writer.is_alive():  # a bug stopped the committer: fail the append, never hang the worker
                raise OSError(errno.EIO, "the journal's committer thread stopped before this attempt's start was "
                                         "written")
        if self._refused is not None:  # its records must never follow a start that is not in the journal
            raise OSError(self._refused.errno, f"this attempt's start was never journalled: {self._refused}")


_FENCE: contextvars.ContextVar[JournalFence | None] = contextvars.ContextVar("conductor_journal_fence", default=None)


@contextlib.contextmanager
def fenced(fence: JournalFence | None) -> Iterator[None]:
    """Journal appends made by this thread inside the block wait for `fence` (see JournalFence)."""
    token = _FENCE.set(fence)
    try:
        yield
    finally:
        _FENCE.reset(token)


class Journal:
    """Append-only JSONL of typed records, with seq and CRC per line. `append` returns once the line is fsynced
    (or, with sync=False, once written: the next synced append of this journal makes it durable too; the engine
    writes each batch with one synced `append_many`)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self._seq = 0
        self._index: dict[tuple[str, str], JournalEntry] = {}
        self.warnings: list[str] = []
        self._entries: list[JournalEntry] = []
        self._load()

    # -- reading --

    def _load(self) -> None:
        read = read_journal(self.path)
        self.warnings = read.warnings
        self._entries = read.entries
        self._seq = read.entries[-1].seq if read.entries else 0
        for e in read.entries:
            k = e.index_key()
            if k is not None:
                self._index[k] = e

    def entries(self, after_seq: int = 0) -> list[JournalEntry]:
        with self._lock:
            if after_seq <= 0:
                return list(self._entries)
            lo = bisect.bisect_right([e.seq for e in self._entries], after_seq) if self._entries else 0
            return self._entries[lo:]

    def records(self, after_seq: int = 0) -> list[Record]:
        """The typed records after `after_seq`; lines this version cannot parse are left out (see `entries`)."""
        out: list[Record] = []
        for e in self.entries(after_seq):
            try:
                out.append(e.record)
            except RecordError:
                continue
        return out

    def find(self, cls: type[R], key: str | None = None) -> R | None:
        """The last record of class `cls` under `key` (the idempotency lookup); singleton records need no key."""
        k = key if key is not None else SINGLETON_KEYS.get(cls)
        if k is None:
            raise TypeError(f"{cls.__name__} records are found by key")
        # No lock: one dict read is atomic, and the index is only ever assigned to. The lock is held across the
        # journal's write(2) by other threads, and a worker waited ~1 ms for it per turn at 8 workers.
        e = self._index.get((record_type(cls), k))
        if e is None:
            return None
        rec = e.record
        assert isinstance(rec, cls)
        return rec

    @property
    def last_seq(self) -> int:
        return self._seq

    def advance_to(self, seq: int) -> None:
        """Continue numbering after `seq` (a snapshot is ahead of a damaged journal: new lines must follow it)."""
        with self._lock:
            self._seq = max(self._seq, seq)

    # -- writing --

    def append(self, rec: Record, *, sync: bool = True) -> JournalEntry:
        """Append one record; with `sync` it is on disk (fsynced) when this returns."""
        return self.append_many([rec], sync=sync)[0]

    def append_many(self, recs: list[Record], *, sync: bool = True,
                    before_sync: Callable[[], None] | None = None) -> list[JournalEntry]:
        """Append records as consecutive lines with one write(2) (and, with `sync`, one fsync).

        Records are serialised before the lock and fsynced after it: the lock covers only numbering and the
        write, so one thread's fsync never holds another back. `before_sync` runs once the lines are written and
        before the fsync (with `sync`): what it starts must not need them durable (see engine._Committer)."""
        if not recs:
            return []
        fence = _FENCE.get()
        if fence is not None:
            fence.wait()
        types = [record_type(type(r)) for r in recs]
        # redact: the one redaction point of the journal (every record's data): no secret reaches events.jsonl.
        redactor = redact.current()
        datas = [redactor.json_text(json.dumps(to_data(r), ensure_ascii=False, separators=(",", ":"))) for r in recs]
        with self._lock:
            fd = self._open()
            ts = round(time.time(), 6)
            lines, entries = [], []
            for i, (rec, type_, data) in enumerate(zip(recs, types, datas, strict=True)):
                seq = self._seq + 1 + i
                body = f'{{"seq":{seq},"ts":{ts!r},"type":"{type_}","data":{data}}}'.encode()
                lines.append(body[:-1] + b',"crc":%d}\n' % zlib.crc32(body))
                entries.append(JournalEntry(seq, ts, type_, {}, rec))
            blob = b"".join(lines)
            start = self._size
            try:
                write_all(fd, blob)
            except OSError:
                self._abandon_handle(start, start + len(blob))
                raise
            self._size = start + len(blob)
            self._seq = entries[-1].seq
            self._entries.extend(entries)
            for rec, entry in zip(recs, entries, strict=True):
                k = record_key(rec)
                if k is not None:
                    self._index[(entry.type, k)] = entry
        if sync:
            if before_sync is not None:
                before_sync()
            self._fsync(fd, start, start + len(blob), entries)
        return entries

    def _open(self) -> int:
        if self._fd is None:
            mkdirs_durable(self.path.parent)
            new = not self.path.exists()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._size = os.fstat(self._fd).st_size
            if new:
                fsync_dir(self.path.parent)
        return self._fd

    def _fsync(self, fd: int, start: int, end: int, entries: list[JournalEntry]) -> None:
        try:
            os.fsync(fd)
        except OSError:
            # Not acknowledged, so it must not survive: cut it off (when nothing followed it), and never fsync
            # this fd again (after a failed fsync Linux may report later ones as clean).
            with self._lock:
                if self._fd == fd:
                    self._abandon_handle(start, end)
                if entries and self._entries[-len(entries):] == entries and self._size == start:
                    del self._entries[-len(entries):]
                    self._seq = entries[0].seq - 1
            raise

    def _abandon_handle(self, start: int, end: int) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass  # the fd is being given up anyway
        if self._size <= end:  # nothing acknowledged after it: cut the unacknowledged tail off
            try:
                _truncate(self.path, start)
            except OSError:
                pass  # the reader drops an unacknowledged tail: it has no newline or fails its CRC
            try:
                self._size = self.path.stat().st_size  # what is really there decides which seq comes next
            except OSError:
                pass

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None


_Flush = threading.Event
_OutputTarget = Path | TicketStream
_OutputItem = tuple[_OutputTarget, bytes] | _Flush | None


class _OpenFiles:
    """The output thread's open files (O_APPEND, unbuffered), at most OUTPUT_FDS of them, oldest opened first."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}
        self._folders: set[str] = set()
        """Folders made (or found) already. Opening first and making the folder only on ENOENT cost a failed
        open per file, ~270 us of kernel CPU each on this disk."""

    def __call__(self, path: Path) -> int:
        key = str(path)
        fd = self._fds.get(key)
        if fd is None:
            folder = str(path.parent)
            if folder not in self._folders:  # a file's first output: make its folder (text, not state: no fsync)
                path.parent.mkdir(parents=True, exist_ok=True)
                self._folders.add(folder)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except FileNotFoundError:  # the folder was removed since (a test, a person): make it again
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._fds[key] = fd
            if len(self._fds) > OUTPUT_FDS:  # close the oldest opened: its stream is likely done
                self._close(self._fds.pop(next(iter(self._fds))))
        return fd

    def close_all(self) -> None:
        for fd in self._fds.values():
            self._close(fd)
        self._fds.clear()

    @staticmethod
    def _close(fd: int) -> None:
        try:
            os.close(fd)
        except OSError:
            pass  # every byte was written before; reopening appends after it


class _OutputWriter:
    """Appends stream text to output files on a thread of its own, so a worker never waits for the disk for text
    that is not state. Ticket streams go to their track's one log (conductor.output_log: creating files per ticket
    was the costly part); planning streams to their own files.

    Text is redacted by the caller before it is queued (nothing unredacted waits in memory for the disk).
    Outputs are text, not state (the journal holds every model turn): a kill -9 can lose the deltas still
    queued, the last milliseconds of a stream.
    Writes to one stream keep their order; queued deltas of a stream are joined, and a batch's ticket chunks go
    to their log in one write. A write that fails is kept and raised to the next caller of `append` or `flush`
    (the worker, which stops the run as a failed write did when it wrote itself). `flush` returns once
    everything queued before it is written: readers of outputs (`read_output_tail`, `close`) call it first."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_OutputItem] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._error: OSError | None = None
        self._hurry = threading.Event()
        """Set by flush and close: write what is queued now."""
        self._files = _OpenFiles()
        """Writer thread only."""
        self._logs: dict[Path, OutputLog] = {}
        """Under _lock: the index of every ticket log read or written in this process."""

    def log(self, path: Path) -> OutputLog:
        with self._lock:
            found = self._logs.get(path)
            if found is None:
                found = self._logs[path] = OutputLog(path)
            return found

    def append(self, target: _OutputTarget, data: bytes) -> None:
        self._raise_error()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="conductor-outputs", daemon=True)
                self._thread.start()
            self._queue.put((target, data))

    def flush(self) -> None:
        with self._lock:
            thread = self._thread
            done = threading.Event()
            if thread is not None:
                self._queue.put(done)
                self._hurry.set()
        while thread is not None and not done.wait(0.5):
            if not thread.is_alive():  # a bug killed it: say so instead of waiting forever
                raise OSError(errno.EIO, "the output writer thread stopped; output files may be incomplete")
        self._raise_error()

    def close(self) -> None:
        """Write what is queued, close the files and stop the thread (the next `append` starts a new one)."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
                self._hurry.set()
        if thread is not None:
            thread.join()

    def _raise_error(self) -> None:
        with self._lock:
            err, self._error = self._error, None  # raised once: the run stops; a resume may find space again
        if err is not None:
            raise OSError(err.errno, f"an output file could not be written: {err}")

    def _keep_error(self, exc: OSError) -> None:
        with self._lock:
            self._error = self._error or exc

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            # Text is not state: gather a few milliseconds of deltas into one pass instead of waking for each (a
            # wake is a GIL hand-off on a busy process: 600 tickets a second make 2,400 deltas). A flush or
            # close cuts the wait short.
            self._hurry.wait(COALESCE_S)
            self._hurry.clear()
            while len(items) < 4096:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            files: dict[Path, list[bytes]] = {}
            streams: dict[Path, dict[tuple[str, int], list[bytes]]] = {}
            flushes: list[_Flush] = []
            stop = False
            for item in items:
                if item is None:
                    stop = True
                elif isinstance(item, tuple):
                    target, data = item
                    if isinstance(target, TicketStream):
                        streams.setdefault(target.log, {}).setdefault((target.ticket_id, target.tier), []).append(data)
                    else:
                        files.setdefault(target, []).append(data)
                else:
                    flushes.append(item)
            for path, chunks in files.items():
                try:
                    write_all(self._files(path), b"".join(chunks))
                except OSError as exc:
                    self._keep_error(exc)
            for log_path, keyed in streams.items():
                try:
                    self.log(log_path).append(self._files, [(t, tier, b"".join(c)) for (t, tier), c in keyed.items()])
                except OSError as exc:
                    self._keep_error(exc)
                except ValueError as exc:  # an id no reader could parse back: refused, never written
                    self._keep_error(OSError(errno.EINVAL, str(exc)))
            for done in flushes:
                done.set()
            if stop:
                self._files.close_all()
                return


def _read_file(path: Path, max_bytes: int | None) -> tuple[bytes, bool]:
    """A file's bytes, or its last `max_bytes` and True when that is only a tail; empty when it does not exist."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if max_bytes is not None and size > max_bytes:
                f.seek(size - max_bytes)
                return f.read(), True
            return f.read(), False
    except FileNotFoundError:
        return b"", False


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)
        os.fsync(f.fileno())


def read_journal(path: Path, *, repair: bool = True) -> JournalRead:
    """Read a journal, keeping every line that verifies.

    A torn last line — bad, or without a newline (never acknowledged: `append` returns only after the whole
    line is written) — is dropped and the file truncated before it, with a warning. A bad line in the middle
    is damage: the original is copied aside, the bad lines are named in a warning, and every line that
    verifies — before AND after the damage — is kept (the file is rewritten with them, atomically).
    With `repair=False` (listing tracks) nothing on disk changes: the same warnings, no truncation or rewrite."""
    path = Path(path)
    if not path.exists():
        return JournalRead([])
    if not path.is_file():
        if not repair:
            return JournalRead([], [f"{path}: is not a file"])
        aside = move_aside(path, "not-a-file")
        return JournalRead([], [f"{path}: is not a file; moved it to {aside.name} and started an empty journal"])
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline
    entries: list[JournalEntry] = []
    bad: list[tuple[int, str]] = []
    keep: list[bytes] = []
    for i, line in enumerate(lines):
        entry, why = _parse_line(line, entries[-1].seq if entries else 0)
        if entry is None:
            bad.append((i + 1, why))
            continue
        entries.append(entry)
        keep.append(line)
    warnings: list[str] = []
    last_is_bad = bool(bad) and bad[-1][0] == len(lines) and not torn
    if last_is_bad and len(bad) == 1:  # only the last complete line is bad: a torn write, not damage
        if repair:
            _truncate(path, len(raw) - len(lines[-1]) - 1)
        warnings.append(f"{path}: dropped a torn last line ({bad[0][1]}); the journal now ends at seq "
                        f"{entries[-1].seq if entries else 0}")
    elif bad:
        if repair:
            aside_name = move_aside(path, "corrupt").name
            atomic_write_bytes(path, b"".join(ln + b"\n" for ln in keep))
        else:
            aside_name = "(not yet: it is set aside when the track is opened)"
        named = ", ".join(f"line {n} ({why})" for n, why in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5
                                                                          else "")
        warnings.append(f"{path}: {len(bad)} damaged line(s) set aside: {named}; the original was kept as "
                        f"{aside_name} and the {len(entries)} lines that verify were kept")
    if torn:
        if not bad and repair:
            _truncate(path, len(raw) - len(torn))
        warnings.append(f"{path}: dropped a torn last line (no newline); the journal now ends at seq "
                        f"{entries[-1].seq if entries else 0}")
    return JournalRead(entries, warnings)


_LINE = re.compile(rb'\{"seq":(\d+),"ts":([0-9.eE+-]+),"type":"([a-z_]+)","data":(\{.*\}),"crc":(\d+)\}')
_KEY = re.compile(rb'\{"key":"([^"\\]*)"[,}]')


def _parse_line(line: bytes, prev_seq: int) -> tuple[JournalEntry | None, str]:
    """Verify one line. Lines in the current format are checked by their CRC without decoding their data
    (decoded later, only if needed); anything else goes through the full (legacy) parse."""
    m = _LINE.fullmatch(line)
    if m is not None and int(m.group(5)) == zlib.crc32(line[:m.start(5) - len(_CRC_SEP)] + b"}"):
        seq = int(m.group(1))
        if seq <= prev_seq:
            return None, f"seq {seq} does not follow {prev_seq}"
        data = m.group(4)
        k = _KEY.match(data)
        return JournalEntry(seq, float(m.group(2)), m.group(3).decode(), data,
                            key=k.group(1).decode("utf-8") if k else None), ""
    return _parse_line_slow(line, prev_seq)


def _parse_line_slow(line: bytes, prev_seq: int) -> tuple[JournalEntry | None, str]:
    try:
        d = json.loads(line)
        seq, ts, type_, data, crc = d["seq"], d["ts"], d["type"], d["data"], d["crc"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        return None, f"not a journal record: {type(exc).__name__}"
    if not (isinstance(seq, int) and isinstance(type_, str) and isinstance(data, dict)):
        return None, "not a journal record: wrong field types"
    cut = line.rfind(_CRC_SEP)
    if not (cut > 0 and crc == zlib.crc32(line[:cut] + b"}")) and crc != _legacy_crc(seq, ts, type_, data):
        return None, "checksum mismatch"
    if seq <= prev_seq:
        return None, f"seq {seq} does not follow {prev_seq}"
    return JournalEntry(seq, float(ts), type_, data), ""


def move_aside(path: Path, why: str) -> Path:
    """Rename a bad file to `<name>.<why>-<timestamp>` so it is kept for inspection, never overwritten."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.{why}-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.{why}-{stamp}-{n}")
        n += 1
    if why == "corrupt" and path.suffix == ".jsonl":
        target.write_bytes(path.read_bytes())  # keep the evidence; the caller rewrites the good prefix
    else:
        os.replace(path, target)
    return target


@dataclass
class LoadedTrack:
    track: Track
    journal: Journal
    warnings: list[str]
    interrupted: list[str]
    """Tickets that were in flight when the app stopped; they continue their attempt on resume."""


def _read_snapshot(snap: Path, warnings: list[str], *, repair: bool) -> Track | None:
    """The snapshot, or None (with a warning) when it is missing or unreadable; a bad one is moved aside."""
    if snap.is_file():
        try:
            return Track.model_validate(tomllib.loads(snap.read_text("utf-8")))
        except (tomllib.TOMLDecodeError, ValueError, UnicodeDecodeError, OSError) as exc:
            where = f"moved to {move_aside(snap, 'corrupt').name}" if repair else "it is set aside when opened"
            warnings.append(f"{snap}: corrupt snapshot ({type(exc).__name__}); {where}; state rebuilt from the "
                            "journal")
    elif snap.exists():
        where = f"moved to {move_aside(snap, 'not-a-file').name}" if repair else "it is set aside when opened"
        warnings.append(f"{snap}: is not a file; {where}; state rebuilt from the journal")
    return None


def replay(track: Track, entries: list[JournalEntry], path: Path) -> list[str]:
    """Apply journal entries to `track` with the one `apply`; an entry that cannot apply is named, not fatal."""
    warnings: list[str] = []
    for e in entries:
        try:
            apply(track, e.record)
        except RecordError as exc:
            warnings.append(f"{path}: seq {e.seq} skipped: {exc}")
        track.journal_seq = max(track.journal_seq, e.seq)
    return warnings


def mark_interrupted(track: Track) -> list[str]:
    """In-flight tickets of a track read back after a stop: shown as interrupted until the track resumes.
    Returns their ids."""
    ids = []
    for t in track.tickets:
        if t.status in ACTIVE_STATUSES:
            t.status = TicketStatus.INTERRUPTED
            ids.append(t.id)
        elif t.status == TicketStatus.INTERRUPTED:
            ids.append(t.id)
    if track.status == TrackStatus.RUNNING:
        track.status = TrackStatus.INTERRUPTED
    return ids


class TrackStore:
    """Reads and writes the tracks folder. One Journal object per track, shared by every writer."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)  # created by the first write, never by reading or listing
        self._journals: dict[str, Journal] = {}
        self._lock = threading.Lock()
        self._outputs = _OutputWriter()
        self._ticket_logs: dict[str, Path] = {}
        self._snap_cond = threading.Condition()
        self._snap_queue: dict[str, dict[str, Any]] = {}
        self._snap_thread: threading.Thread | None = None
        self._snap_closing = False
        self.snapshot_errors: list[str] = []

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete snapshot temp files left by a crash mid-write (call at start-up, before anything writes).
        They were never renamed into place, so they hold nothing the journal does not."""
        stale = list(self.root.glob("*/.track.toml.*.tmp"))
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    # -- paths --

    def track_dir(self, track_id: str) -> Path:
        return self.root / track_id

    def epic_dir(self, epic_id: str) -> Path:
        return self.root / EPICS_DIR / epic_id

    def output_path(self, folder: Path, name: str) -> Path:
        return folder / "outputs" / f"{name}.md"

    def ticket_output(self, track_id: str, ticket_id: str, tier: int = 3) -> TicketStream:
        """A ticket's Tier 3 or Tier 4 text: a key in its track's one log (conductor.output_log), never a path a
        ticket id could make collide with another ticket's or the planning outputs."""
        log = self._ticket_logs.get(track_id)
        if log is None:  # built once per track: each pathlib join is ~5 µs, and attempts ask several times
            log = self._ticket_logs[track_id] = self.track_dir(track_id) / "outputs" / LOG_NAME
        return TicketStream(log, ticket_id, tier)

    def ticket_dir(self, track_id: str, ticket_id: str) -> Path:
        """The folder for a ticket's rarer, bigger outputs (a command's full output, MCP call logs), made when one
        is written."""
        return self.track_dir(track_id) / "outputs" / "tickets" / ticket_id

    def journal(self, folder_id: str, *, epic: bool = False) -> Journal:
        key = f"{EPICS_DIR}/{folder_id}" if epic else folder_id
        with self._lock:
            if key not in self._journals:
                folder = self.epic_dir(folder_id) if epic else self.track_dir(folder_id)
                self._journals[key] = Journal(folder / "events.jsonl")
            return self._journals[key]

    def new_track_id(self, title: str, taken: Collection[str] = ()) -> str:
        """A free id for a new track (`taken`: ids already chosen but not created yet)."""
        base = f"{time.strftime('%Y%m%d')}-{slug(title)}"
        tid, n = base, 2
        while tid in taken or self.track_dir(tid).exists():
            tid, n = f"{base}-{n}", n + 1
        return tid

    # -- tracks --

    def track_created(self, track_id: str) -> bool:
        """Whether a track's creation got as far as its first journal line (then it loads; else it is not there,
        whatever a kill left in its folder)."""
        folder = self.track_dir(track_id)
        return (folder / "track.toml").exists() or bool(read_journal(folder / "events.jsonl", repair=False).entries)

    def create_track(self, track: Track) -> Journal:
        folder = self.track_dir(track.id)
        if (folder / "track.toml").exists():
            raise StoreError(f"track {track.id!r} already exists in {self.root}")
        mkdirs_durable(folder)
        journal = self.journal(track.id)
        entry = journal.append(TrackCreated(track=track))
        track.journal_seq = entry.seq
        self.save_snapshot(track)
        self.write_spec(track)
        return journal

    def save_snapshot(self, track: Track) -> None:
        """Write the snapshot now (atomically)."""
        self._write_snapshot(track.id, track.model_dump(mode="json", exclude_none=True))

    def save_snapshot_later(self, track: Track) -> None:
        """Queue a snapshot for the writer thread: the caller pays for the model dump only, not for TOML and
        fsync (a 1,000-ticket track takes ~150 ms to write). The newest queued state of a track wins; `close`
        writes what is still queued. Only call it after the journal lines it includes are synced."""
        self.save_snapshot_data_later(track.id, track.model_dump(mode="json", exclude_none=True))

    def save_snapshot_data_later(self, track_id: str, data: dict[str, Any]) -> None:
        """`save_snapshot_later` for a track already dumped (the engine dumps on its own thread)."""
        with self._snap_cond:
            self._snap_queue[track_id] = data
            if self._snap_thread is None:
                self._snap_thread = threading.Thread(target=self._snapshot_writer, name="conductor-snapshots",
                                                     daemon=True)
                self._snap_thread.start()
            self._snap_cond.notify()

    def _snapshot_writer(self) -> None:
        while True:
            with self._snap_cond:
                while not self._snap_queue and not self._snap_closing:
                    self._snap_cond.wait()
                if not self._snap_queue:
                    return
                track_id = next(iter(self._snap_queue))
                data = self._snap_queue.pop(track_id)
            try:
                self._write_snapshot(track_id, data)
            except OSError as exc:  # a snapshot is a shortcut: the journal still has everything
                self.snapshot_errors.append(f"{self.track_dir(track_id) / 'track.toml'}: not written: {exc}")

    def _write_snapshot(self, track_id: str, data: dict[str, Any]) -> None:
        clean = json.loads(redact.json_text(json.dumps(data, ensure_ascii=False)))  # one pass, not per string
        atomic_write_text(self.track_dir(track_id) / "track.toml", tomli_w.dumps(clean))

    def write_spec(self, track: Track) -> None:
        lines = [f"# {track.title}", "", f"**Goal.** {track.goal}", ""]
        if track.scope:
            lines += [f"**Scope.** {track.scope}", ""]
        if track.acceptance_criteria:
            lines += ["## Acceptance criteria", ""] + [f"- {c}" for c in track.acceptance_criteria] + [""]
        if track.tickets:
            lines += ["## Tickets", ""]
            for t in track.tickets:
                deps = f" (after {', '.join(t.depends_on)})" if t.depends_on else ""
                lines.append(f"- **{t.id}** {t.title}{deps}: {t.description}")
        if track.epic:
            lines += ["", "## Epic", "", track.epic]
        atomic_write_text(self.track_dir(track.id) / "spec.md", redact.text("\n".join(lines) + "\n"))

    def load_track(self, track_id: str) -> LoadedTrack:
        """Snapshot + journal replay. Tickets that were in flight are marked interrupted (not changed on disk:
        the engine journals their way back to ready when the track resumes)."""
        folder = self.track_dir(track_id)
        if not folder.is_dir():
            raise StoreError(f"no track {track_id!r} in {self.root}")
        journal = self.journal(track_id)
        warnings = list(journal.warnings)
        track = _read_snapshot(folder / "track.toml", warnings, repair=True)
        track = self._replay_onto(track, track_id, journal.entries(), journal.last_seq, warnings, journal.path)
        if track.journal_seq > journal.last_seq:
            journal.advance_to(track.journal_seq)
        interrupted = mark_interrupted(track)
        return LoadedTrack(track, journal, warnings, interrupted)

    def peek_track(self, track_id: str) -> tuple[Track, list[str]]:
        """A track's state as on disk, changing nothing (listing): no repair, no journal kept open."""
        folder = self.track_dir(track_id)
        read = read_journal(folder / "events.jsonl", repair=False)
        warnings = list(read.warnings)
        track = _read_snapshot(folder / "track.toml", warnings, repair=False)
        last = read.entries[-1].seq if read.entries else 0
        track = self._replay_onto(track, track_id, read.entries, last, warnings, folder / "events.jsonl")
        mark_interrupted(track)
        return track, warnings

    @staticmethod
    def _replay_onto(track: Track | None, track_id: str, entries: list[JournalEntry], last_seq: int,
                     warnings: list[str], path: Path) -> Track:
        snap = path.parent / "track.toml"
        if track is not None and track.journal_seq > last_seq:
            # The journal lost lines the snapshot includes (damage, or a disk that dropped them). The snapshot
            # was written from state those lines produced: keep it, never downgrade its finished work, and make
            # new lines follow it so the next load replays them.
            warnings.append(f"{snap}: the journal ends at seq {last_seq} but the snapshot includes up to "
                            f"{track.journal_seq}; kept the snapshot's state")
        if track is None:
            track = Track(id=track_id, title=track_id, goal="")
        after = track.journal_seq
        warnings += replay(track, [e for e in entries if e.seq > after], path)
        return track

    def list_tracks(self) -> list[Track]:
        """Every track on disk (snapshot plus journal), newest first. Unreadable ones are skipped with
        a placeholder whose goal says why, so they still show up in the browser."""
        out: list[Track] = []
        for folder in sorted(self.root.iterdir(), reverse=True) if self.root.exists() else []:
            if not folder.is_dir() or folder.name.startswith(("_", ".")):
                continue
            if not (folder / "track.toml").exists() and not (folder / "events.jsonl").exists():
                continue
            try:
                out.append(self.peek_track(folder.name)[0])
            except (StoreError, ValueError, KeyError, OSError) as exc:
                out.append(Track(id=folder.name, title=folder.name, goal=f"unreadable: {exc}",
                                 status=TrackStatus.STALLED))
        return out

    # -- outputs --

    def append_output(self, target: Path | TicketStream, text: str) -> None:
        """Append streamed text (redacted here) to a ticket's stream or a planning output file, written in order by
        the store's output thread (see _OutputWriter). Raises OSError when an earlier output write failed."""
        self._outputs.append(target, redact.text(text).encode("utf-8"))

    def flush_outputs(self) -> None:
        """Return once every output appended so far is written (OSError if one could not be)."""
        self._outputs.flush()

    def read_output_tail(self, target: Path | TicketStream, max_chars: int) -> tuple[str, bool]:
        """The last `max_chars` of an output, and whether that is only a tail."""
        self._outputs.flush()
        max_bytes = max_chars * 4  # whole UTF-8 characters: at most 4 bytes each
        data, cut = self._read(target, max_bytes)
        text = data.decode("utf-8", errors="replace")
        return (text[-max_chars:], True) if cut or len(text) > max_chars else (text, False)

    def read_output(self, target: Path | TicketStream) -> str:
        """An output's whole text ("" when nothing was written)."""
        self._outputs.flush()
        return self._read(target, None)[0].decode("utf-8", errors="replace")

    def _read(self, target: Path | TicketStream, max_bytes: int | None) -> tuple[bytes, bool]:
        if not isinstance(target, TicketStream):
            return _read_file(target, max_bytes)
        data, cut = self._outputs.log(target.log).read(target.ticket_id, target.tier, max_bytes) or (b"", False)
        if cut or (max_bytes is not None and len(data) >= max_bytes):
            return data, True
        # A track run before the log: its ticket files come first (a resumed attempt's text follows in the log).
        old, old_cut = _read_file(target.legacy_file, None if max_bytes is None else max_bytes - len(data))
        return old + data, old_cut

    def close(self) -> None:
        with self._snap_cond:
            self._snap_closing = True
            self._snap_cond.notify()
            writer = self._snap_thread
        if writer is not None:
            writer.join()  # writes what is still queued, then exits
        self._outputs.close()
        with self._snap_cond:
            self._snap_thread, self._snap_closing = None, False
        with self._lock:
            journals = list(self._journals.values())
        for j in journals:
            j.close()
