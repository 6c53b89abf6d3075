"""The offline demo's epic, run whole by the real engine on the demo's own project (a git repository with a
pytest suite), answered by a person who follows the demo's tips: every path the demo promises is proved from the
track's journal, and the finished track branch passes its own tests in a fresh clone.

Why at this level: the demo is the engine, tools, command policy, git layer and QA checks working together on
real files; only the models are scripted (conductor/demo/script.py), and they decide from what they are sent.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from conductor.app.session_factory import demo_folders, is_demo_project, open_session
from conductor.approvals import ApprovalRequest
from conductor.config import Config
from conductor.demo import CHECK_COMMAND, DEMO_EPIC, demo_team_reply, own_pytest_path
from conductor.demo.person import README_REJECTION, answer
from conductor.engine import Retry
from conductor.model import TicketStatus, Track, TrackStatus
from conductor.providers.scripted import ScriptedProvider
from conductor.records import (
    AllowRuleAdded,
    ApprovalAsked,
    ApprovalDecided,
    GitAttemptMerged,
    GitMergeConflict,
    ModelTurn,
    TicketUpdated,
    ToolCallFinished,
    ToolCallStarted,
)
from conductor.redact import scrubbed_env
from conductor.session import Session
from tests.git_support import person_state, sh_git
from tests.helpers import wait_for


def _payload(record: ApprovalAsked | ApprovalDecided) -> dict[str, Any]:
    payload = record.request["payload"]
    assert isinstance(payload, dict)
    return payload


def _decision(record: ApprovalDecided) -> dict[str, Any]:
    return dict(record.decision)


def _tool(record: ApprovalAsked | ApprovalDecided) -> tuple[str, dict[str, Any]]:
    p = _payload(record)
    args = p.get("args")
    return str(p.get("tool")), dict(args) if isinstance(args, dict) else {}


def _ticket_of(record: ApprovalAsked | ApprovalDecided) -> tuple[str | None, int]:
    prov = record.request["prov"]
    assert isinstance(prov, dict)
    attempt = prov.get("attempt")
    return (str(prov["ticket_id"]) if prov.get("ticket_id") else None), int(attempt) if isinstance(attempt, int) else 0


def run_demo(home: Path) -> tuple[Session, ScriptedProvider, str, Track, Path]:
    """The demo as a person meets it: its own project, the demo team, the project's check; answered by the tips,
    and the ticket left in "needs merge" retried (the resolve attempt)."""
    path_first, problem = own_pytest_path()
    assert problem is None, "the demo's check needs pytest beside the interpreter"
    ws, tracks = demo_folders(home)
    cfg = Config().updated({"git": {"worktrees_root": str(home / "worktrees")}})
    provider = ScriptedProvider(fallback=demo_team_reply)  # the demo's script at test speed (no latency)
    session = Session(cfg, workspace=ws, tracks_dir=tracks, provider=provider, check_command=CHECK_COMMAND,
                      path_first=path_first)

    def person(req: ApprovalRequest) -> None:
        a = answer(req)
        threading.Thread(target=session.broker.resolve, args=(req.id,),
                         kwargs={"approved": a.approve, "reason": a.reason or None, "remember": a.remember}).start()

    session.broker.on_requested.append(person)
    (tid,) = session.plan_epic(DEMO_EPIC).wait(timeout=30)
    eng = session.engines[tid]

    def waiting() -> str | None:
        return next((t.id for t in eng.snapshot(10)[1].tickets if t.status == TicketStatus.NEEDS_MERGE), None)

    session.command(tid, Retry(wait_for(waiting, 150, "a ticket in needs merge")))

    def finished() -> Track | None:
        track = eng.snapshot(10)[1]
        settled = {t.id: t.status for t in track.tickets} == {
            "T1": TicketStatus.DONE, "T2": TicketStatus.DONE, "T3": TicketStatus.DONE, "T4": TicketStatus.DONE,
            "T5": TicketStatus.DONE, "T6": TicketStatus.FAILED}
        return track if settled and track.status == TrackStatus.STALLED else None

    return session, provider, tid, wait_for(finished, 240, "the demo's end: five tickets done, T6 failed"), ws


def test_the_demo_epic_walks_every_path_and_its_branch_passes_its_tests(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    ws, _ = demo_folders(home)
    before = person_state(ws)
    session, provider, tid, track, ws = run_demo(home)
    try:
        cfg = session.cfg
        recs = list(session.store.journal(tid).records())
        asked = [r for r in recs if isinstance(r, ApprovalAsked)]
        decided = [r for r in recs if isinstance(r, ApprovalDecided)]
        results = {r.key: r.result for r in recs if isinstance(r, ToolCallFinished)}
        started = [r for r in recs if isinstance(r, ToolCallStarted)]
        updates = [r for r in recs if isinstance(r, TicketUpdated)]

        # -- QA's check: asked once, "always allow" chosen, then run by the rule for every later attempt
        check_asks = [r for r in asked if _tool(r) == ("run_command", {"command": CHECK_COMMAND,
                                                                      "timeout_s": cfg.git.check_timeout_s})]
        assert len(check_asks) == 1 and _ticket_of(check_asks[0]) == ("T1", 1)
        (rule,) = [r for r in recs if isinstance(r, AllowRuleAdded)]
        assert rule.argv == ["pytest", "-q"] and rule.track_id == tid
        checks = {k: v for k, v in results.items() if k.rsplit("/", 1)[-1].startswith("check-a")}
        assert len(checks) >= 8, sorted(checks)  # every attempt's check ran, one of them asked

        # -- T2 breaks a test: the check fails with pytest's output as the hint; the next attempt fixes the test
        def check_out(ticket: str, attempt: int) -> dict[str, Any]:
            out = checks[f"{tid}/{ticket}/{attempt}/check-a{attempt}"]["output"]
            assert isinstance(out, dict)
            return out

        first, second = check_out("T2", 1), check_out("T2", 2)
        assert first["exit_code"] == 1 and "AssertionError: assert 'Hi there, Ada!' == 'Hello, Ada!'" in str(
            first["output"])
        assert second["exit_code"] == 0 and "failed" not in str(second["output"])
        assert any(u.ticket_id == "T2" and "the check `pytest -q` failed" in (u.fields.failed_reason or "")
                   for u in updates)
        (t2_a2,) = [r for r in provider.calls(3) if r.prov.ticket_id == "T2" and r.prov.attempt == 2
                    and len(r.messages) == 1]
        assert "E       AssertionError: assert 'Hi there, Ada!' == 'Hello, Ada!'" in t2_a2.messages[0].text
        assert [(s.tool, s.path) for s in started if s.key.startswith(f"{tid}/T2/2/T2-")] == [
            ("edit_file", "greeter/core.py"), ("edit_file", "tests/test_core.py")]

        # -- two tickets add a README line at the same place: one needs a merge; its resolve attempt is asked
        (conflict,) = [r for r in recs if isinstance(r, GitMergeConflict)]
        loser = conflict.ticket_id
        assert {loser} < {"T3", "T4"} and conflict.files == ["README.md"]
        merged = {(r.ticket_id, r.attempt) for r in recs if isinstance(r, GitAttemptMerged)}
        assert (loser, conflict.attempt + 1) in merged
        resolve = [r for r in decided if _ticket_of(r) == (loser, conflict.attempt + 1)]
        assert [(_tool(r)[0], _tool(r)[1].get("path"), _decision(r)["approved"], _decision(r)["by"])
                for r in resolve] == [("write_file", "README.md", True, "person")]
        assert "<<<<<<<" not in str(_tool(resolve[0])[1]["content"])

        # -- the kinds of tool approval: a worker's own command, edits, writes, each answered by the person
        by_person = [(_tool(r)[0], _ticket_of(r)[0]) for r in decided if _decision(r)["by"] == "person"
                     and _decision(r)["approved"] and r.request["kind"] == "tool"]
        assert ("run_command", "T1") in by_person and ("edit_file", "T2") in by_person
        assert ("write_file", "T1") in by_person
        worker_command = [r for r in decided if _tool(r)[0] == "run_command"
                          and _tool(r)[1].get("command") == "pytest -q tests/test_version.py"]
        assert len(worker_command) == 1 and _decision(worker_command[0])["approved"]

        # -- a rejected call the worker reacts to, a failing review, and the next model up the ladder
        (rejected,) = [r for r in decided if not _decision(r)["approved"]]
        assert _ticket_of(rejected) == ("T5", 1) and _tool(rejected)[0] == "write_file"
        assert _decision(rejected)["reason"] == README_REJECTION
        rejection_result = [v for k, v in results.items() if k.startswith(f"{tid}/T5/1/") and not v["ok"]]
        assert len(rejection_result) == 1 and README_REJECTION in str(rejection_result[0]["error"])
        reaction = [r for r in recs if isinstance(r, ModelTurn) and r.key.startswith(f"{tid}/T5/1/")][-1]
        assert "You did not let me rewrite README.md" in str(reaction.message["text"])
        assert any(u.ticket_id == "T5" and "review failed: The user rejected write_file" in (
            u.fields.failed_reason or "") for u in updates)
        t5_models = [u.fields.model_used for u in updates if u.ticket_id == "T5" and u.fields.model_used]
        assert t5_models == [cfg.models.tier3, cfg.models.ladder[1]]
        assert track.ticket("T5").attempts == 2

        # -- the failed shelf: every attempt up the ladder fails review, then T6 waits for the person
        t6 = track.ticket("T6")
        assert t6.attempts == cfg.engine.max_attempts == 3
        assert "review failed" in (t6.failed_reason or "") and "after 3 attempts" in (t6.failed_reason or "")
        assert [u.fields.model_used for u in updates if u.ticket_id == "T6" and u.fields.model_used] == \
            cfg.models.ladder[:3]

        # -- the track branch: every done ticket's work, and a test suite that passes in a fresh clone
        branch = f"conductor/{tid}"
        fresh = tmp_path / "fresh"
        sh_git(tmp_path, "clone", "-q", "--branch", branch, str(ws), str(fresh))
        readme = (fresh / "README.md").read_text()
        assert "`health()`" in readme and "`greeter.version.__version__`" in readme and "CHANGELOG.md" in readme
        assert "## Usage" in readme and "<<<<<<<" not in readme
        assert 'return f"Hi there, {name}!"' in (fresh / "greeter" / "core.py").read_text()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q"], cwd=fresh, capture_output=True, text=True,
                              timeout=120, env=scrubbed_env())
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "3 passed" in proc.stdout, proc.stdout
        assert person_state(ws) == before, "the demo's own checkout is never touched by a run"
    finally:
        session.shutdown()


def test_the_demo_runs_its_team_and_checks_only_on_its_own_project(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "data" / "conductor" / "demo"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    ws, tracks = demo_folders(home)
    assert is_demo_project(ws) and (ws / "tests" / "test_core.py").is_file() and (ws / ".git").is_dir()
    cfg = Config()
    session, note = open_session(cfg, workspace=ws, tracks_dir=tracks, provider_name="scripted", demo=True)
    try:
        assert session.check_command == CHECK_COMMAND and note == ""
        assert isinstance(session.provider, ScriptedProvider) and session.provider.fallback is demo_team_reply
        assert cfg.git.check_command == "", "the demo's check is the session's: saving Settings never writes it"
        proc = subprocess.run(["pytest", "-q"], cwd=ws, capture_output=True, text=True, timeout=120,
                              env=scrubbed_env())
        assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout + proc.stderr  # the suite is real
    finally:
        session.shutdown()
    own = tmp_path / "mine"
    own.mkdir()
    other, _ = open_session(cfg, workspace=own, tracks_dir=tmp_path / "t2", provider_name="scripted", demo=True)
    try:  # --demo --workspace DIR: the person's folder keeps the config's checks and the generic script
        assert other.check_command is None and not is_demo_project(own)
        assert isinstance(other.provider, ScriptedProvider) and other.provider.fallback is not demo_team_reply
    finally:
        other.shutdown()
