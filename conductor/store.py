"""The tracks folder: atomic snapshots, an append-only journal, full outputs.

    tracks/<track-id>/track.toml       latest snapshot (atomic write; `journal_seq` = last journal line it includes)
    tracks/<track-id>/events.jsonl     journal: one JSON object a line {seq, ts, type, data, crc}
    tracks/<track-id>/spec.md          human-readable spec (written, never parsed back)
    tracks/<track-id>/outputs/*.md     full stream text per ticket (panes show a bounded tail)
    tracks/_epics/<epic-id>/...        the same for a Tier 1 planning run (before tracks exist)

The journal is the source of truth; the snapshot is a shortcut. On load: read the snapshot, replay journal
lines after its seq, drop a torn last line (and say so), move a corrupt file aside (never overwrite it).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import tomllib
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from conductor import redact
from conductor.atomic import atomic_write_bytes, atomic_write_text, fsync_dir
from conductor.errors import StoreError
from conductor.model import ACTIVE_STATUSES, Ticket, TicketStatus, Track, TrackStatus

EPICS_DIR = "_epics"
_SAFE = re.compile(r"[^a-z0-9]+")


def slug(text: str, limit: int = 32) -> str:
    s = _SAFE.sub("-", text.lower()).strip("-")
    return (s[:limit].rstrip("-")) or "track"


def _crc(seq: int, ts: float, type_: str, data: Any) -> int:
    body = json.dumps([seq, ts, type_, data], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return zlib.crc32(body.encode("utf-8"))


@dataclass(frozen=True)
class JournalRecord:
    seq: int
    ts: float
    type: str
    data: dict[str, Any]


@dataclass
class JournalRead:
    records: list[JournalRecord]
    warnings: list[str] = field(default_factory=list)


class Journal:
    """Append-only JSONL with seq and CRC per line. Appends are fsynced before `append` returns."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._fh: Any = None
        self._seq = 0
        self._index: dict[tuple[str, str], JournalRecord] = {}
        self.warnings: list[str] = []
        self._records: list[JournalRecord] = []
        self._load()

    # -- reading --

    def _load(self) -> None:
        read = read_journal(self.path)
        self.warnings = read.warnings
        self._records = read.records
        self._seq = read.records[-1].seq if read.records else 0
        for r in read.records:
            key = r.data.get("key")
            if isinstance(key, str):
                self._index[(r.type, key)] = r

    def records(self, after_seq: int = 0) -> list[JournalRecord]:
        with self._lock:
            return [r for r in self._records if r.seq > after_seq]

    def find(self, type_: str, key: str) -> JournalRecord | None:
        """The last record of `type_` whose data has this `key` (the idempotency lookup)."""
        with self._lock:
            return self._index.get((type_, key))

    @property
    def last_seq(self) -> int:
        return self._seq

    # -- writing --

    def append(self, type_: str, data: dict[str, Any], *, sync: bool = True) -> JournalRecord:
        """Append one record; with `sync` it is on disk (fsynced) when this returns."""
        data = redact.json_data(data)  # the one redaction point of the journal: no secret reaches events.jsonl
        with self._lock:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                new = not self.path.exists()
                self._fh = open(self.path, "a", encoding="utf-8")
                if new:
                    fsync_dir(self.path.parent)
            seq = self._seq + 1
            ts = round(time.time(), 6)
            line = json.dumps({"seq": seq, "ts": ts, "type": type_, "data": data, "crc": _crc(seq, ts, type_, data)},
                              ensure_ascii=False, separators=(",", ":"))
            start = self._fh.tell()
            try:
                self._fh.write(line + "\n")
                self._fh.flush()
                if sync:
                    os.fsync(self._fh.fileno())
            except OSError:
                # Not acknowledged, so it must not survive: cut it off, and never fsync this fd again
                # (after a failed fsync Linux may report later ones as clean).
                self._abandon_handle(start)
                raise
            self._seq = seq
            rec = JournalRecord(seq, ts, type_, data)
            self._records.append(rec)
            key = data.get("key")
            if isinstance(key, str):
                self._index[(type_, key)] = rec
            return rec

    def _abandon_handle(self, size: int) -> None:
        fh, self._fh = self._fh, None
        try:
            fh.close()
        except OSError:
            pass  # the buffered bytes are being discarded anyway
        try:
            _truncate(self.path, size)
        except OSError:
            pass  # the reader drops an unacknowledged tail: it has no newline or fails its CRC

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()
                self._fh = None


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)
        os.fsync(f.fileno())


def read_journal(path: Path) -> JournalRead:
    """Read a journal. A torn last line — one that is bad, or has no newline (so it was never acknowledged:
    `append` returns only after the whole line is fsynced) — is dropped and the file truncated before it,
    with a warning. A bad line in the middle means corruption: the file is copied aside and the good prefix
    kept. Either way the next append starts on a clean line."""
    path = Path(path)
    if not path.exists():
        return JournalRead([])
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline
    records: list[JournalRecord] = []
    offset = 0
    for i, line in enumerate(lines):
        rec, why = _parse_line(line, records[-1].seq if records else 0)
        if rec is None:
            if i < len(lines) - 1 or torn:
                aside = move_aside(path, "corrupt")
                atomic_write_bytes(path, raw[:offset])
                return JournalRead(records, [f"{path}: line {i + 1} is corrupt ({why}); the original was kept as "
                                             f"{aside.name} and the {len(records)} good lines before it were kept"])
            _truncate(path, offset)
            return JournalRead(records, [f"{path}: dropped a torn last line ({why}); the journal now ends at "
                                         f"seq {records[-1].seq if records else 0}"])
        records.append(rec)
        offset += len(line) + 1
    if torn:
        _truncate(path, offset)
        return JournalRead(records, [f"{path}: dropped a torn last line (no newline); the journal now ends at "
                                     f"seq {records[-1].seq if records else 0}"])
    return JournalRead(records)


def _parse_line(line: bytes, prev_seq: int) -> tuple[JournalRecord | None, str]:
    try:
        d = json.loads(line.decode("utf-8"))
        seq, ts, type_, data, crc = d["seq"], d["ts"], d["type"], d["data"], d["crc"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        return None, f"not a journal record: {type(exc).__name__}"
    if crc != _crc(seq, ts, type_, data):
        return None, "checksum mismatch"
    if seq != prev_seq + 1:
        return None, f"seq {seq} does not follow {prev_seq}"
    return JournalRecord(seq, ts, type_, data), ""


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


# --- replay: the journal record types that change a track ---

def apply_record(track: Track, rec: JournalRecord) -> None:
    """Apply one state-changing journal record to `track` (others are ignored)."""
    d = rec.data
    if rec.type == "track_created":
        fresh = Track.model_validate(d["track"])
        for name in Track.model_fields:
            setattr(track, name, getattr(fresh, name))
    elif rec.type == "tickets_set":
        track.tickets = [Ticket.model_validate(t) for t in d["tickets"]]
    elif rec.type == "ticket_update":
        t = track.ticket(d["ticket_id"])
        for k, v in d["fields"].items():
            setattr(t, k, TicketStatus(v) if k == "status" else v)
    elif rec.type == "track_update":
        for k, v in d["fields"].items():
            setattr(track, k, TrackStatus(v) if k == "status" else v)
    track.journal_seq = max(track.journal_seq, rec.seq)


@dataclass
class LoadedTrack:
    track: Track
    journal: Journal
    warnings: list[str]
    interrupted: list[str]
    """Tickets that were mid-flight when the app stopped; put back to ready."""


class TrackStore:
    """Reads and writes the tracks folder. One Journal object per track, shared by every writer."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._journals: dict[str, Journal] = {}
        self._lock = threading.Lock()
        self._out_locks: dict[Path, threading.Lock] = {}

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

    def ticket_output(self, track_id: str, ticket_id: str, tier: int = 3) -> Path:
        # One folder per ticket (outputs/tickets/<id>/tier3.md, tier4.md, a<n>.cmd.log): no ticket id can
        # name another ticket's file or the planning outputs (a ticket "tier2" or "T1.tier4" used to).
        return self.track_dir(track_id) / "outputs" / "tickets" / ticket_id / f"tier{tier}.md"

    def journal(self, folder_id: str, *, epic: bool = False) -> Journal:
        key = f"{EPICS_DIR}/{folder_id}" if epic else folder_id
        with self._lock:
            if key not in self._journals:
                folder = self.epic_dir(folder_id) if epic else self.track_dir(folder_id)
                self._journals[key] = Journal(folder / "events.jsonl")
            return self._journals[key]

    def new_track_id(self, title: str) -> str:
        base = f"{time.strftime('%Y%m%d')}-{slug(title)}"
        tid, n = base, 2
        while self.track_dir(tid).exists():
            tid, n = f"{base}-{n}", n + 1
        return tid

    # -- tracks --

    def create_track(self, track: Track) -> Journal:
        folder = self.track_dir(track.id)
        if (folder / "track.toml").exists():
            raise StoreError(f"track {track.id!r} already exists in {self.root}")
        folder.mkdir(parents=True, exist_ok=True)
        journal = self.journal(track.id)
        rec = journal.append("track_created", {"track": track.model_dump(mode="json")})
        track.journal_seq = rec.seq
        self.save_snapshot(track)
        self.write_spec(track)
        return journal

    def save_snapshot(self, track: Track) -> None:
        data = redact.json_data(track.model_dump(mode="json", exclude_none=True))
        atomic_write_text(self.track_dir(track.id) / "track.toml", tomli_w.dumps(data))

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
        """Snapshot + journal replay; interrupted tickets go back to ready."""
        folder = self.track_dir(track_id)
        if not folder.is_dir():
            raise StoreError(f"no track {track_id!r} in {self.root}")
        warnings: list[str] = []
        journal = self.journal(track_id)
        warnings += journal.warnings
        snap = folder / "track.toml"
        track: Track | None = None
        if snap.exists():
            try:
                track = Track.model_validate(tomllib.loads(snap.read_text("utf-8")))
            except (tomllib.TOMLDecodeError, ValueError, UnicodeDecodeError) as exc:
                aside = move_aside(snap, "corrupt")
                warnings.append(f"{snap}: corrupt snapshot ({type(exc).__name__}); moved to {aside.name}, "
                                "state rebuilt from the journal")
        if track is None:
            track = Track(id=track_id, title=track_id, goal="")
        if track.journal_seq > journal.last_seq:
            warnings.append(f"{snap}: snapshot is ahead of the journal (seq {track.journal_seq} > "
                            f"{journal.last_seq}); using the journal")
            track = Track(id=track_id, title=track_id, goal="")
        for rec in journal.records(after_seq=track.journal_seq):
            apply_record(track, rec)
        interrupted = [t.id for t in track.tickets if t.status in ACTIVE_STATUSES or t.status == TicketStatus.CANCELLED]
        for t in track.tickets:
            if t.id in interrupted:
                t.status = TicketStatus.READY
        if track.status in (TrackStatus.RUNNING, TrackStatus.CANCELLED):
            track.status = TrackStatus.PAUSED
        return LoadedTrack(track, journal, warnings, interrupted)

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
                out.append(self.load_track(folder.name).track)
            except (StoreError, ValueError, KeyError) as exc:
                out.append(Track(id=folder.name, title=folder.name, goal=f"unreadable: {exc}",
                                 status=TrackStatus.STALLED))
        return out

    # -- outputs --

    def append_output(self, path: Path, text: str) -> None:
        with self._lock:
            lock = self._out_locks.setdefault(path, threading.Lock())
        with lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.write(redact.text(text))

    def read_output_tail(self, path: Path, max_chars: int) -> tuple[str, bool]:
        """The last `max_chars` of an output file, and whether that is only a tail."""
        if not path.exists():
            return "", False
        size = path.stat().st_size
        with open(path, "rb") as f:
            if size > max_chars * 4:
                f.seek(size - max_chars * 4)
            text = f.read().decode("utf-8", errors="replace")
        return (text[-max_chars:], True) if len(text) > max_chars or size > max_chars * 4 else (text, False)

    def close(self) -> None:
        with self._lock:
            journals = list(self._journals.values())
        for j in journals:
            j.close()
