"""Power loss (reliability F3): a disk that keeps only what was fsynced.

An I/O shim records, while a real run goes on, what a power cut would leave: each file's content up to its
last fsync, and only the files and folders whose entry in their parent folder was fsynced after they were
created. At random moments of the run (chosen by the seed, not by us) the test builds that disk image, opens
it as the next start would, and checks the promise: every approval the screen heard was decided, and every
ticket it saw done, is still decided and done. It also shows why the parents of new folders are fsynced:
without it, a new track's folder — journal and all — may vanish.
"""

from __future__ import annotations

import os
import random
import shutil
import stat
import threading
from pathlib import Path

import pytest
from gui_support import make_session

from conductor.approvals import DecidedBy
from conductor.config import Config
from conductor.events import ApprovalResolved, RecordApplied
from conductor.model import TicketStatus
from conductor.records import ApprovalDecided, TicketUpdated
from conductor.store import TrackStore


class Disk:
    """What survives a power cut, tracked from the app's own os calls."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.lock = threading.Lock()
        self.synced: dict[Path, int] = {}
        self.pending: dict[Path, set[Path]] = {}   # folder -> entries created in it, not yet durable
        self.lost: set[Path] = set()               # entries that would not survive (until their parent is synced)

    def _path(self, fd: int) -> Path | None:
        try:
            return Path(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            return None

    def created(self, path: Path) -> None:
        path = Path(path).resolve()
        if path.is_relative_to(self.root):
            with self.lock:
                self.pending.setdefault(path.parent, set()).add(path)
                self.lost.add(path)

    def fsynced(self, fd: int) -> None:
        path = self._path(fd)
        if path is None:
            return
        with self.lock:
            if stat.S_ISDIR(os.fstat(fd).st_mode):  # the folder's entries (new files, folders, renames) are on disk
                for entry in self.pending.pop(path, set()):
                    self.lost.discard(entry)
            else:
                self.synced[path] = os.fstat(fd).st_size

    def image(self, src: Path, dst: Path) -> None:
        """The tracks folder as the disk would hold it after a power cut now."""
        with self.lock:
            lost, synced = set(self.lost), dict(self.synced)
        for folder, dirs, files in os.walk(src):
            here = Path(folder).resolve()
            if any(p in lost for p in [here, *here.parents]):
                dirs[:] = []
                continue
            out = dst / here.relative_to(src.resolve().parent)
            out.mkdir(parents=True, exist_ok=True)
            for name in files:
                p = here / name
                if p in lost:
                    continue
                data = p.read_bytes()
                if name == "events.jsonl":  # appended: only what was fsynced survives
                    data = data[:synced.get(p, 0)]
                (out / name).write_bytes(data)


@pytest.fixture()
def disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Disk:
    d = Disk(tmp_path / "tracks")
    real_mkdir, real_open, real_fsync, real_replace = os.mkdir, os.open, os.fsync, os.replace

    def mkdir(path: object, mode: int = 0o777, *a: object, **kw: object) -> None:
        real_mkdir(path, mode, *a, **kw)  # type: ignore[arg-type]
        d.created(Path(str(path)))

    def open_(path: object, flags: int, mode: int = 0o777, *a: object, **kw: object) -> int:
        existed = os.path.exists(str(path))
        fd = real_open(path, flags, mode, *a, **kw)  # type: ignore[arg-type]
        if flags & os.O_CREAT and not existed:
            d.created(Path(str(path)))
        return fd

    def fsync(fd: int) -> None:
        real_fsync(fd)
        d.fsynced(fd)

    def replace(src: object, dst: object, *a: object, **kw: object) -> None:
        real_replace(src, dst, *a, **kw)  # type: ignore[arg-type]
        d.created(Path(str(dst)))  # a rename is durable once its folder is synced

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return d


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_power_cut_loses_no_acknowledged_decision_or_finished_ticket(tmp_path: Path, disk: Disk,
                                                                       seed: int) -> None:
    cfg = Config()
    cfg = cfg.updated({"engine": {"step_mode": True}})
    session = make_session(tmp_path, cfg=cfg, linger=False)
    rnd = random.Random(seed)
    cuts = sorted(rnd.sample(range(20, 140), 4))
    seen_done: set[tuple[str, str]] = set()
    seen_decided: set[str] = set()
    images: list[tuple[Path, set[tuple[str, str]], set[str]]] = []
    n = 0
    handle = session.plan_epic("Survive a power cut")
    try:
        while n < 400:
            ev = session.events.get(timeout=10)
            if ev is None:
                assert handle.future.done() and not any(e.alive for e in session.engines.values()), "stalled"
                break
            n += 1
            if isinstance(ev, RecordApplied) and isinstance(ev.record, TicketUpdated) \
                    and ev.record.fields.status == TicketStatus.DONE:
                seen_done.add((ev.track_id or "", ev.record.ticket_id))
            if isinstance(ev, ApprovalResolved) and ev.by == DecidedBy.PERSON:
                seen_decided.add(ev.request_id)
            for req in session.pending_approvals():
                try:
                    session.resolve_approval(req.id, approved=True)
                except Exception:  # noqa: BLE001 — resolved concurrently: the other answer stands
                    pass
            if cuts and n >= cuts[0]:
                cuts.pop(0)
                image = tmp_path / f"after-cut-{n}"
                disk.image(tmp_path / "tracks", image)
                image = image / "tracks"
                images.append((image, set(seen_done), set(seen_decided)))
            if handle.future.done() and not any(e.alive for e in session.engines.values()):
                break
    finally:
        session.shutdown()
    assert images, "no cut happened"
    for image, done, decided in images:
        if not image.exists():
            assert not done and not decided, "the tracks folder vanished with acknowledged work in it"
            continue
        store = TrackStore(image)
        for track_id, ticket_id in done:
            loaded = store.load_track(track_id)
            assert loaded.track.ticket(ticket_id).status == TicketStatus.DONE, (image.name, ticket_id)
        journals = [store.journal(p.name) for p in image.iterdir() if p.is_dir() and not p.name.startswith("_")]
        epics = image / "_epics"
        journals += [store.journal(p.name, epic=True) for p in epics.iterdir()] if epics.is_dir() else []
        on_disk = {k for j in journals for k in decided if j.find(ApprovalDecided, k) is not None}
        assert on_disk == decided, (image.name, decided - on_disk)
        store.close()
        shutil.rmtree(image.parent)
