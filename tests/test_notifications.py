"""Desktop notifications: off unless asked for; when on, an approval waiting, a failed ticket and the end of a
run each send one message, through notify-send's argv on its own thread (a fake runner records it)."""

from __future__ import annotations

import threading
from pathlib import Path

from gui_support import answer_until, app_factory, done, make_controller, make_session, plan  # noqa: F401

from conductor.app.notifications import DesktopNotifier, Message, attention
from conductor.config import Config
from conductor.events import Provenance, RecordApplied, RunFinished
from conductor.records import ticket_update


def test_attention_picks_failures_and_run_ends() -> None:
    prov = Provenance(track_id="tr", ticket_id="T3")
    msgs = attention([RecordApplied(prov=prov, record=ticket_update("T3", reason="tests fail", status="failed")),
                      RecordApplied(prov=prov, record=ticket_update("T3", status="ready")),
                      RunFinished(prov=Provenance(track_id="tr"), status="stalled", counts={"done": 2, "failed": 1})])
    assert msgs == [Message("Conductor: T3 failed", "tests fail", True),
                    Message("Conductor: run stalled", "tr: 2 done, 1 failed", True)]


def test_argv_goes_to_notify_send_on_its_own_thread() -> None:
    seen: list[tuple[list[str], str]] = []
    n = DesktopNotifier(run=lambda argv: seen.append((argv, threading.current_thread().name)))
    t = n.send(Message("Conductor: run done", "tr: 6 done"))
    assert t is not None
    t.join(5)
    (argv, thread), = seen
    assert argv[-2:] == ["Conductor: run done", "tr: 6 done"] and "--urgency=normal" in argv
    assert thread == "conductor-notify"


def test_off_by_default_and_on_when_asked(tmp_path: Path, app_factory) -> None:
    sent: list[Message] = []
    c = make_controller(make_session(tmp_path / "off"))
    p = app_factory(c).pilot
    plan(p)
    answer_until(p, lambda: done(c))
    assert p.app.notifier is None, "notifications are off unless config.toml asks"

    cfg = Config()
    cfg = cfg.updated({"gui": {"notify": True}})
    c2 = make_controller(make_session(tmp_path / "on", cfg=cfg))
    p2 = app_factory(c2).pilot
    p2.app.notifier = DesktopNotifier(run=lambda argv: None)
    p2.app.notifier.send = lambda m: sent.append(m)  # type: ignore[method-assign]
    plan(p2)
    answer_until(p2, lambda: done(c2) and any(m.title == "Conductor: run done" for m in sent))
    titles = [m.title for m in sent]
    assert titles.count("Conductor: plan approval waiting") == 1
    assert titles.count("Conductor: tickets approval waiting") == 1
