"""The offline demo in the real window, driven by the keyboard alone from the prefilled epic to its end-of-run
summary: Ctrl+Enter plans, A approves, E edits a worker's command before it runs, Shift+A always allows QA's
check, R rejects with a reason, Ctrl+M starts the resolve attempt of the ticket left in "needs merge". The
person answers as the demo's tips say
(conductor/demo/person.py); the screen must then tell the story: the failed check in the QA pane, the rule,
the escalation, the failed shelf, and a summary that says what waits for the person.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gui_support import app_factory, needs_display  # noqa: F401

from conductor.app import AppController, demo_folders, demo_home, open_session
from conductor.config import Config
from conductor.demo import CHECK_COMMAND
from conductor.demo.person import README_REJECTION, answer
from conductor.gui import tags
from conductor.gui.pilot import Pilot
from conductor.providers.scripted import ScriptedProvider
from conductor.records import AllowRuleAdded, ApprovalDecided, GitMergeConflict, ToolCallFinished

pytestmark = [pytest.mark.gui, needs_display]

WORKER_COMMAND = "pytest -q tests/test_version.py"
EDITED_COMMAND = "pytest -q tests"


def answer_by_keyboard(p: Pilot) -> str:
    """Answer the open approval dialog with keys, as the demo's tips say. Returns what was pressed."""
    d = p.app.dialogs.current()
    assert d is not None and d.request is not None
    req, a = d.request, answer(d.request)
    payload = req.to_json()["payload"]
    if isinstance(payload, dict) and payload.get("args") == {"command": WORKER_COMMAND}:  # edited before approving
        assert p.press("E") == "edit" and p.focused() == tags.tool_arg("command")
        p.type_here(EDITED_COMMAND)
        p.press("Enter")
        assert p.press("A") == "approve"
        p.wait_until(lambda: (cur := p.app.dialogs.current()) is None or cur.request is None
                     or cur.request.id != req.id, timeout=30, what="the edited approval to close")
        return "E"
    if a.remember:
        assert p.press("Shift+A") == "always"
    elif a.approve:
        assert p.press("A") == "approve"
    else:
        assert p.press("R") == "reject"
        assert p.focused() == tags.dialog_part(d.tag, "reason")
        p.type_here(a.reason)
        p.xkeys("Return")
    p.wait_until(lambda: (cur := p.app.dialogs.current()) is None or cur.request is None or cur.request.id != req.id,
                 timeout=30, what=f"the answered {req.kind.value} approval to close")
    return "Shift+A" if a.remember else "A" if a.approve else "R"


def test_the_demo_by_keyboard_to_its_summary(tmp_path: Path, app_factory) -> None:  # noqa: F811
    ws, tracks = demo_folders(demo_home())  # the demo's own project, as `gui_app.py --demo` opens it
    cfg = Config().updated({"git": {"worktrees_root": str(tmp_path / "worktrees")}})
    session, note = open_session(cfg, workspace=ws, tracks_dir=tracks, provider_name="scripted", demo=True)
    assert isinstance(session.provider, ScriptedProvider) and note == ""
    session.provider.latency_s = session.provider.chunk_delay_s = 0.0  # the demo's script, at test speed
    c = AppController(session, demo=True, provider_name="scripted")
    p = app_factory(c, render=True).pilot
    p.frame(3)
    assert p.shown(tags.DEMO_LABEL) and p.value(tags.EPIC_INPUT).startswith("Release greeter 0.1.0")

    assert p.press("Ctrl+Enter") == "plan"
    pressed: list[str] = []
    resolved = False

    def settled() -> bool:
        rows = {r.id: r.status for r in c.ticket_rows()}
        return rows == {"T1": "done", "T2": "done", "T3": "done", "T4": "done", "T5": "done", "T6": "failed"}

    while not (settled() and p.shown(tags.RUN_SUMMARY)):
        p.wait_until(lambda: p.app.dialogs.current() is not None or settled()
                     or any(r.status == "needs_merge" for r in c.ticket_rows()), timeout=90, what="the next step")
        if p.app.dialogs.current() is not None:
            pressed.append(answer_by_keyboard(p))
        elif not resolved and any(r.status == "needs_merge" for r in c.ticket_rows()):
            assert p.press("Ctrl+M") == "resolve"
            resolved = True
            p.wait_until(lambda: not any(r.status == "needs_merge" for r in c.ticket_rows()),
                         what="the resolve attempt to start")
        else:
            p.wait_until(lambda: settled() and p.shown(tags.RUN_SUMMARY), timeout=90, what="the end-of-run summary")

    assert resolved and pressed.count("Shift+A") == 1 and pressed.count("R") == 1 and pressed.count("A") >= 12
    assert pressed.count("E") == 1
    heading, text = p.value(tags.RUN_SUMMARY_HEADING), p.value(tags.RUN_SUMMARY_TEXT)
    assert heading.endswith(": stalled")
    assert "Tickets: 5 done, 1 failed" in text
    assert "Waiting for you: T6 failed (Retry, Edit or Skip it)" in text
    for path in ("greeter/version.py", "greeter/health.py", "greeter/core.py", "tests/test_core.py",
                 "CHANGELOG.md", "README.md"):
        assert path in text, f"{path} missing from the summary's files"

    # What the screen said along the way: the check's failure in T2's QA pane, the escalation and the shelf.
    qa = c.streams.text(f"tier4:{c.active_track}/T2")
    assert "AssertionError: assert 'Hi there, Ada!' == 'Hello, Ada!'" in qa
    assert f"$ {CHECK_COMMAND}" in qa and "(exit 1: the check FAILED: this output is the hint for the next attempt)" \
        in qa and "(exit 0: the check passed)" in qa, "the check's output streams live into the QA pane"
    rows = {r.id: r for r in c.ticket_rows()}
    assert rows["T6"].attempts == 3 and rows["T6"].model == cfg.models.ladder[2]
    assert rows["T5"].attempts == 2 and rows["T5"].model == cfg.models.ladder[1]
    assert p.value(tags.ticket_cell("T6", "reason")).startswith("review failed: The worker says the ticket is not")

    recs = list(c.session.store.journal(c.active_track).records())
    assert [r.argv for r in recs if isinstance(r, AllowRuleAdded)] == [["pytest", "-q"]], "Shift+A made the rule"
    assert [r.decision["reason"] for r in recs if isinstance(r, ApprovalDecided) and not r.decision["approved"]] \
        == [README_REJECTION], "R with a typed reason rejected the README rewrite"
    assert len([r for r in recs if isinstance(r, GitMergeConflict)]) == 1
    (edited,) = [r for r in recs if isinstance(r, ApprovalDecided) and r.decision.get("edited")]
    assert isinstance(edited.decision["payload"], dict) and edited.decision["payload"]["args"] == {
        "command": EDITED_COMMAND}, "E, then typing, changed what ran"
    ran = [r.result for r in recs if isinstance(r, ToolCallFinished) and r.key.endswith("/T1-a1-run")]
    assert len(ran) == 1 and isinstance(ran[0]["output"], dict) and ran[0]["output"]["command"] == EDITED_COMMAND

    assert p.press("Escape") == "close" and not p.shown(tags.RUN_SUMMARY)
