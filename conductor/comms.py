"""The comms log: every model request and response, every tool call and result, one JSON line each.

    tracks/<track-id>/comms.jsonl    {"ts", "kind", "tier", "track_id", "ticket_id", "attempt", "data"}

It is for people reading what the agents said and did; it is not replayed (the journal is the source of
truth). Secrets never reach it: it goes through `conductor.redact`, the redactor every sink shares (secret
environment values, URL credentials, key-shaped patterns become "[REDACTED]", in values and keys alike).
Thread-safe: every worker of a track writes to the same log.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from conductor import redact
from conductor.events import Provenance


class CommsLog:
    def __init__(self, path: str | Path, *, extra_secrets: tuple[str, ...] = (),
                 env: Mapping[str, str] | None = None) -> None:
        self.path = Path(path)
        # The process-wide redactor (every sink uses it), plus anything this log was told about.
        self._own = redact.Redactor.from_environ(env, extra_secrets) if env is not None or extra_secrets else None
        self._lock = threading.Lock()
        self._fh: IO[str] | None = None

    def log(self, kind: str, prov: Provenance, data: dict[str, Any]) -> None:
        """Append one redacted line. Never raises for unserialisable data (it is shown with str())."""
        record = {"ts": round(time.time(), 6), "kind": kind, "tier": prov.tier, "track_id": prov.track_id,
                  "ticket_id": prov.ticket_id, "attempt": prov.attempt, "data": data}
        line = json.dumps(record, ensure_ascii=False, default=str)
        # Redact the serialised line too: a secret inside a value that default=str rendered is caught here.
        line = json.dumps(self._redact(json.loads(line)), ensure_ascii=False)
        with self._lock:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 — kept open past this block
            self._fh.write(line + "\n")
            self._fh.flush()

    def redact(self, obj: Any) -> Any:
        """The same redaction, for callers that show data elsewhere (panes, crash reports)."""
        return self._redact(obj)

    def _redact(self, obj: Any) -> Any:
        obj = redact.data(obj)
        return self._own.data(obj) if self._own is not None else obj

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def __enter__(self) -> CommsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_comms(path: str | Path) -> list[dict[str, Any]]:
    """Every complete line of a comms log (a torn last line is skipped)."""
    out: list[dict[str, Any]] = []
    p = Path(path)
    if not p.exists():
        return out
    for line in p.read_text("utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
