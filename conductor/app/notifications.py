"""Optional desktop notifications (config `[gui] notify = true`): a line when an approval starts waiting, a
ticket fails or a run ends, so the person can look away. `attention` is pure (events in, messages out);
`DesktopNotifier` hands each message to `notify-send` on a short-lived thread, so the GUI thread never waits
on it, and says once, in `problem`, when there is no notifier on this machine."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from conductor.approvals import ApprovalRequest
from conductor.events import ApprovalRequested, Event, RecordApplied, RunFinished
from conductor.model import TicketStatus
from conductor.records import TicketUpdated


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    urgent: bool = False


def attention(events: Iterable[Event]) -> list[Message]:
    out: list[Message] = []
    for ev in events:
        match ev:
            case ApprovalRequested(request=ApprovalRequest() as req):
                where = req.prov.ticket_id or req.prov.track_id or "planning"
                out.append(Message(f"Conductor: {req.kind.value} approval waiting", f"{where}: {req.title}"))
            case RecordApplied(record=TicketUpdated(ticket_id=tid, fields=patch, reason=reason)) \
                    if patch.status == TicketStatus.FAILED:
                out.append(Message(f"Conductor: {tid} failed", reason or "see the failed shelf", True))
            case RunFinished():
                counts = ", ".join(f"{n} {k}" for k, n in sorted(ev.counts.items()))
                out.append(Message(f"Conductor: run {ev.status}", f"{ev.track_id}: {counts}",
                                   ev.status not in ("done",)))
            case _:
                pass
    return out


class DesktopNotifier:
    def __init__(self, run: Callable[[list[str]], object] | None = None) -> None:
        self._exe = shutil.which("notify-send")
        self._run = run or (lambda argv: subprocess.run(argv, timeout=10, check=False,
                                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.problem = "" if self._exe or run is not None else \
            "Desktop notifications are on, but notify-send is not installed (apt install libnotify-bin)."

    def send(self, message: Message) -> threading.Thread | None:
        if self.problem:
            return None
        argv = [self._exe or "notify-send", "--app-name=Conductor",
                f"--urgency={'critical' if message.urgent else 'normal'}", message.title, message.body]
        thread = threading.Thread(target=self._run, args=(argv,), name="conductor-notify", daemon=True)
        thread.start()
        return thread
