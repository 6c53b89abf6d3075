"""What the person typed and has not sent yet: the epic box and the edits in open or snoozed reviews. Kept in
one small file, `<tracks>/_drafts.json`, so closing a dialog, closing the app or a crash a second later loses
nothing.

The GUI thread only hands over a snapshot (`submit`, cheap: no I/O); a writer thread writes it atomically
(temp file, fsync, rename), the newest snapshot winning when several arrive while a write runs. `close()`
writes the last one and joins the thread. A damaged file is moved aside (never overwritten) and reported.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conductor.atomic import atomic_write_bytes

DRAFTS_FILE = "_drafts.json"
VERSION = 1


@dataclass
class Drafts:
    epic: str = ""
    approvals: dict[str, Any] = field(default_factory=dict)
    """Review and approval drafts by request id (plan and ticket reviews keep their id across a restart)."""
    edits: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Ticket edits not yet saved, by '<track>/<ticket>'."""

    def to_json(self) -> str:
        return json.dumps({"version": VERSION, "epic": self.epic, "approvals": self.approvals, "edits": self.edits},
                          ensure_ascii=False, sort_keys=True)


def parse_drafts(text: str, source: str) -> Drafts:
    """Raises ValueError naming the file and what is wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise ValueError(f"{source}: not a drafts file of version {VERSION}")
    epic, approvals, edits = data.get("epic", ""), data.get("approvals", {}), data.get("edits", {})
    if not isinstance(epic, str):
        raise ValueError(f"{source}: 'epic' is not text")
    if not isinstance(approvals, dict) or not isinstance(edits, dict) or \
            not all(isinstance(v, dict) for v in edits.values()):
        raise ValueError(f"{source}: 'approvals' and 'edits' must be tables")
    return Drafts(epic, approvals, edits)


class BackgroundFile:
    """One small JSON file written atomically on its own thread: `submit_text` hands over the newest content
    (no I/O on the caller's thread), the writer keeps only the latest, `close` writes the last and joins."""

    what = "data"
    thread_name = "conductor-file-writer"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []
        self._cond = threading.Condition()
        self._pending: str | None = None
        self._last = ""
        self._closed = False
        self._writing = False
        self._thread: threading.Thread | None = None

    def read_or_set_aside(self) -> str | None:
        """The file's text; None when absent or damaged (a damaged file is moved aside and reported)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.problems.append(f"Could not read the {self.what} in {self.path}: {exc}")
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.set_aside(f"{self.path}: not UTF-8 text (byte {exc.start})")
            return None

    def set_aside(self, why: str) -> None:
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            self.path.replace(aside)
            self.problems.append(f"The {self.what} could not be read ({why}); the file was kept as {aside.name}.")
        except OSError as move_exc:
            self.problems.append(f"The {self.what} could not be read ({why}) nor moved aside ({move_exc}).")

    def loaded(self, text: str) -> None:
        """Tell the writer what is on disk already (an unchanged submit then writes nothing)."""
        self._last = text

    def submit_text(self, text: str) -> None:
        with self._cond:
            if text == (self._pending if self._pending is not None else self._last) or self._closed:
                return
            self._pending = text
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                text, self._pending = self._pending, None
                closed = self._closed
                self._writing = text is not None
            if text is not None:
                self._write(text)
                with self._cond:
                    self._writing = False
                    self._cond.notify_all()
            if closed and text is None:
                return

    def _write(self, text: str) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.path, text.encode("utf-8"))
            self._last = text
        except OSError as exc:
            self.problems.append(f"Could not save the {self.what} to {self.path}: {exc}")

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until the last submitted snapshot is on disk (tests, shutdown)."""
        with self._cond:
            self._cond.wait_for(lambda: self._pending is None and not self._writing, timeout)

    def close(self, timeout: float = 5.0) -> list[str]:
        """Write the last snapshot, stop the writer, return the problems met."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self.problems.append("the drafts writer did not finish in time")
        return list(self.problems)


class DraftStore(BackgroundFile):
    what = "unsent drafts"
    thread_name = "conductor-drafts"

    def __init__(self, root: Path) -> None:
        super().__init__(root / DRAFTS_FILE)

    def load(self) -> Drafts:
        """The drafts on disk (empty when there are none). A damaged file is moved aside and reported in
        `problems`, never overwritten."""
        text = self.read_or_set_aside()
        if text is None:
            return Drafts()
        try:
            drafts = parse_drafts(text, str(self.path))
        except ValueError as exc:
            self.set_aside(str(exc))
            return Drafts()
        self.loaded(drafts.to_json())
        return drafts

    def submit(self, drafts: Drafts) -> None:
        """Hand a snapshot to the writer (no I/O on the caller's thread). Unchanged snapshots are dropped."""
        self.submit_text(drafts.to_json())
