"""The approval path through ToolGate: approve / edit / reject from another thread, journal-first decisions,
idempotent replay, bound approvals, remembered allow rules, auto-approval limits, timeouts and cancel."""

from __future__ import annotations

import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from conductor.records import ApprovalDecided
from conductor.approval_payloads import CommandPreview, FileChangePreview, ToolPayload
from conductor.approvals import ApprovalBroker, ApprovalDecision, ApprovalRequest
from conductor.errors import ApprovalError, Cancelled
from conductor.events import Provenance
from conductor.messages import ToolCall, ToolResult
from conductor.store import Journal
from conductor.tools import CommandPolicy, ToolGate, workspace_toolbox
from conductor.tools.base import ToolContext
from conductor.tools.testkit import ApprovalWaiter, Background
from helpers import preview_of, tool_of

PY = sys.executable
PROV = Provenance(trace_id="run-1", track_id="T1", ticket_id="K7", tier=3, attempt=2)

CALC_BUGGY = "def add(a, b):\n    return a - b\n"
CHECK = ("import sys\nsys.path.insert(0, '.')\nimport calc\n"
         "ok = calc.add(2, 3) == 5\nprint('PASS' if ok else 'FAIL')\nsys.exit(0 if ok else 1)\n")


class Rig:
    """A workspace, a journal, a broker whose decisions are journalled by a hook (as the session wires it),
    a waiter that sees every request, and a gate."""

    def __init__(self, tmp: Path, allow: Any = None, **gate_kw: Any) -> None:
        self.ws = tmp / "ws"
        self.ws.mkdir(exist_ok=True)
        self.journal = Journal(tmp / "track" / "events.jsonl")
        self.broker = ApprovalBroker()
        self.broker.on_resolved.append(self._journal_decision)
        self.waiter = ApprovalWaiter(self.broker)
        self.cancel = threading.Event()
        self.gate = ToolGate(workspace_toolbox(self.ws), self.broker, self.journal, allow=allow, **gate_kw)
        self.hook_saw: list[tuple[str, dict[str, Any]]] = []
        self.watch: Path | None = None

    def _journal_decision(self, req: ApprovalRequest, decision: ApprovalDecision) -> None:
        # What the hook sees of the workspace proves the decision is recorded before the action.
        seen = self.watch.read_text() if self.watch and self.watch.exists() else None
        self.hook_saw.append((req.id, {"file": seen}))
        self.journal.append(ApprovalDecided(key=req.id, request=req.to_json(), decision=decision.to_json()))

    def ctx(self) -> ToolContext:
        return ToolContext(self.ws, PROV, cancel=self.cancel)

    def start(self, call: ToolCall) -> Background[tuple[ToolResult, bool]]:
        return Background(lambda: self.gate.run(call, self.ctx()))

    def run(self, call: ToolCall) -> tuple[ToolResult, bool]:
        return self.gate.run(call, self.ctx())

    def types(self) -> list[str]:
        return [e.type for e in self.journal.entries()]


@pytest.fixture()
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def write(cid: str, path: str, content: str) -> ToolCall:
    return ToolCall(cid, "write_file", {"path": path, "content": content})


def test_worker_like_flow_edits_two_files_and_runs_the_check(rig: Rig) -> None:
    (rig.ws / "calc.py").write_text(CALC_BUGGY)
    (rig.ws / "check.py").write_text(CHECK)
    script = [ToolCall("c1", "read_file", {"path": "calc.py"}),
              ToolCall("c2", "edit_file", {"path": "calc.py", "search": "a - b", "replace": "a + b"}),
              write("c3", "NOTES.md", "add() fixed\n"),
              ToolCall("c4", "run_command", {"argv": [PY, "check.py"]})]

    def worker() -> list[ToolResult]:
        return [rig.gate.run(c, rig.ctx())[0] for c in script]

    job = Background(worker)
    approved = []
    for expected in ("edit_file", "write_file", "run_command"):  # the read asks nobody
        req = rig.waiter.next()
        assert req.kind == "tool" and tool_of(req).tool == expected and req.prov == PROV
        approved.append(req)
        rig.broker.resolve(req.id, approved=True)
    results = job.result()
    assert all(r.ok for r in results), [r.error for r in results]
    assert (rig.ws / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert (rig.ws / "NOTES.md").read_text() == "add() fixed\n"
    assert results[3].output["exit_code"] == 0 and results[3].output["output"] == "PASS\n"
    diff = preview_of(approved[0], FileChangePreview).diff
    assert "-    return a - b" in diff and "+    return a + b" in diff
    command = preview_of(approved[2], CommandPreview)
    assert command.argv == (PY, "check.py") and command.cwd == str(rig.ws.resolve())
    assert rig.waiter.empty()


def test_payload_shows_tool_diff_command_and_provenance(rig: Rig) -> None:
    job = rig.start(ToolCall("c1", "run_command", {"command": "make test"}))
    req = rig.waiter.next()
    p = tool_of(req)
    assert p.tool == "run_command" and p.call_id == "c1" and p.args == {"command": "make test"}
    c = preview_of(req, CommandPreview)
    assert c.argv == (shutil.which("make"), "test") and c.shell is False and c.cwd == str(rig.ws.resolve())
    assert p.provenance == PROV
    assert p.can_remember is True and "exact allow rule" in (p.needs_person or "")  # commands always ask
    rig.broker.resolve(req.id, approved=False, reason="not now")
    job.result()


def test_edited_write_runs_the_edit_not_the_original(rig: Rig) -> None:
    job = rig.start(write("c1", "out.txt", "original\n"))
    req = rig.waiter.next()
    edited = tool_of(req).with_args({"path": "out.txt", "content": "edited by the person\n"})
    decision = rig.broker.resolve(req.id, approved=True, payload=edited)
    result, _ = job.result()
    assert decision.edited and result.ok
    assert (rig.ws / "out.txt").read_text() == "edited by the person\n"


def test_edited_command_runs_the_edit_not_the_original(rig: Rig) -> None:
    job = rig.start(ToolCall("c1", "run_command", {"argv": ["touch", "original.marker"]}))
    req = rig.waiter.next()
    rig.broker.resolve(req.id, approved=True, payload=tool_of(req).with_args({"argv": ["touch", "edited.marker"]}))
    result, _ = job.result()
    assert result.ok and result.output["argv"] == [shutil.which("touch"), "edited.marker"]
    assert (rig.ws / "edited.marker").exists() and not (rig.ws / "original.marker").exists()


def test_rejection_reason_goes_back_to_the_model(rig: Rig) -> None:
    (rig.ws / "keep.txt").write_text("keep\n")
    job = rig.start(write("c1", "keep.txt", "clobbered\n"))
    rig.broker.resolve(rig.waiter.next().id, approved=False, reason="don't touch keep.txt, edit notes.md")
    result, _ = job.result()
    assert not result.ok and result.error == "rejected by the user: don't touch keep.txt, edit notes.md"
    assert result.for_model()["error"].endswith("edit notes.md")
    assert (rig.ws / "keep.txt").read_text() == "keep\n"


def test_decision_is_journalled_before_the_write_runs(rig: Rig) -> None:
    rig.watch = rig.ws / "f.txt"
    rig.watch.write_text("before\n")
    job = rig.start(write("c1", "f.txt", "after\n"))
    req = rig.waiter.next()
    rig.broker.resolve(req.id, approved=True)
    job.result()
    assert rig.hook_saw == [(req.id, {"file": "before\n"})]  # the hook ran while the file was untouched
    assert rig.types() == ["approval_resolved", "tool_started", "tool_result"]  # decision, intent, result
    assert rig.watch.read_text() == "after\n"


def test_a_journalled_result_is_replayed_never_rerun(rig: Rig, tmp_path: Path) -> None:
    call = ToolCall("c1", "run_command", {"argv": [PY, "-c", "open('count.txt', 'a').write('x')"]})
    job = rig.start(call)
    rig.broker.resolve(rig.waiter.next().id, approved=True)
    first, replayed = job.result()
    assert first.ok and not replayed
    again, replayed = rig.run(call)
    assert replayed and again == first and rig.waiter.empty()
    rig.journal.close()
    resumed = Rig(tmp_path)  # a fresh process: the journal is read back from disk
    third, replayed = resumed.run(call)
    assert replayed and third == first and resumed.waiter.empty()
    assert (rig.ws / "count.txt").read_text() == "x"


def test_the_key_includes_ticket_and_attempt(rig: Rig) -> None:
    call = ToolCall("c1", "read_file", {"path": "a.txt"})
    (rig.ws / "a.txt").write_text("one\n")
    rig.run(call)
    other = ToolContext(rig.ws, PROV.with_(attempt=3))
    (rig.ws / "a.txt").write_text("two\n")
    result, replayed = rig.gate.run(call, other)
    assert not replayed and result.output["content"] == "two\n"


def test_an_approval_cannot_be_used_twice_or_for_another_call(rig: Rig) -> None:
    first = rig.start(write("c1", "a.txt", "A\n"))
    req_a = rig.waiter.next()
    rig.broker.resolve(req_a.id, approved=True)
    first.result()
    with pytest.raises(ApprovalError, match="already resolved|no approval request"):
        rig.broker.resolve(req_a.id, approved=True)
    second = rig.start(write("c2", "b.txt", "B\n"))
    req_b = rig.waiter.next()
    with pytest.raises(ValueError, match="bound to its own tool call"):
        rig.broker.resolve(req_b.id, approved=True, payload=req_a.payload)  # A's approval, replayed for B
    with pytest.raises(ValueError, match="only 'args' can be edited"):
        rig.broker.resolve(req_b.id, approved=True,
                           payload=tool_of(req_b).model_copy(update={"provenance": PROV.with_(track_id="X")}))
    with pytest.raises(ValueError, match="only 'args' can be edited; these fields changed: preview"):
        forged = FileChangePreview(path="b.txt", diff="+B\n")  # a different diff shown than the one that runs
        rig.broker.resolve(req_b.id, approved=True, payload=tool_of(req_b).model_copy(update={"preview": forged}))
    with pytest.raises(ValueError, match="args.content is required"):
        rig.broker.resolve(req_b.id, approved=True, payload=tool_of(req_b).with_args({"path": "b.txt"}))
    assert [r.id for r in rig.broker.pending()] == [req_b.id]  # still waiting: bad edits decide nothing
    rig.broker.resolve(req_b.id, approved=False, reason="no")
    assert not second.result()[0].ok and not (rig.ws / "b.txt").exists()


def test_a_policy_replaying_another_calls_payload_is_refused(tmp_path: Path) -> None:
    stale: list[ToolPayload] = []

    def replaying_policy(req: ApprovalRequest) -> ApprovalDecision | None:
        if not stale:
            stale.append(tool_of(req))
            return None  # the first one goes to a person
        return ApprovalDecision(request_id=req.id, approved=True, payload=stale[0])  # an old approval, replayed

    rig = Rig(tmp_path)
    rig.broker.add_policy("replay", replaying_policy)
    job = rig.start(write("c1", "ok.marker", "ok\n"))
    rig.broker.resolve(rig.waiter.next().id, approved=True)
    assert job.result()[0].ok
    result, _ = rig.run(write("c2", "evil.marker", "evil\n"))
    assert not result.ok and "is for another call" in (result.error or "")
    assert not (rig.ws / "evil.marker").exists()
    assert (rig.ws / "ok.marker").exists()


def test_auto_approval_covers_writes_never_commands(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.broker.auto_approve({"tool"})
    assert rig.run(write("c1", "a.txt", "A\n"))[0].ok
    for i, line in enumerate(["touch plain.marker", "touch F && touch G"]):
        job = rig.start(ToolCall(f"c{i + 2}", "run_command", {"command": line}))
        req = rig.waiter.next()  # the auto policy did not decide it: it waits for a person
        assert rig.broker.pending() == [req]
        rig.broker.resolve(req.id, approved=False, reason="not now")
        result, _ = job.result()
        assert not result.ok and "not now" in (result.error or "")
    assert not (rig.ws / "F").exists() and not (rig.ws / "plain.marker").exists()


def test_allowed_exact_command_runs_without_asking(tmp_path: Path) -> None:
    rig = Rig(tmp_path, allow=CommandPolicy(["touch allowed.marker"]))
    result, _ = rig.run(ToolCall("c1", "run_command", {"command": "touch allowed.marker"}))
    assert result.ok and (rig.ws / "allowed.marker").exists() and rig.waiter.empty()
    job = rig.start(ToolCall("c2", "run_command", {"command": "touch allowed.marker other.marker"}))
    rig.broker.resolve(rig.waiter.next().id, approved=False, reason="no")  # a longer form asks
    assert not job.result()[0].ok and not (rig.ws / "other.marker").exists()


def test_always_allow_for_this_track_is_journalled_and_survives_resume(tmp_path: Path) -> None:
    rig = Rig(tmp_path, allow=CommandPolicy([]))
    marker = rig.ws / "n.marker"
    count = {"argv": ["touch", "n.marker"]}
    job = rig.start(ToolCall("c1", "run_command", count))
    req = rig.waiter.next()
    assert tool_of(req).can_remember
    rig.broker.resolve(req.id, approved=True, remember=True)
    assert job.result()[0].ok and marker.exists()
    assert rig.types() == ["approval_resolved", "allow_rule", "tool_started", "tool_result"]
    marker.unlink()
    result, _ = rig.run(ToolCall("c2", "run_command", count))
    assert result.ok and rig.waiter.empty() and marker.exists()
    rig.journal.close()
    marker.unlink()

    resumed = Rig(tmp_path, allow=CommandPolicy([]))  # new session: the gate loads the track's rules
    result, _ = resumed.run(ToolCall("c3", "run_command", count))
    assert result.ok and resumed.waiter.empty() and marker.exists()
    other_track = ToolContext(resumed.ws, PROV.with_(track_id="T2"))
    job = Background(lambda: resumed.gate.run(ToolCall("c4", "run_command", count), other_track))
    resumed.broker.resolve(resumed.waiter.next().id, approved=False, reason="other track asks")
    marker.unlink()
    assert not job.result()[0].ok and not marker.exists()


def test_remember_on_shell_syntax_runs_once_but_is_not_remembered(tmp_path: Path) -> None:
    rig = Rig(tmp_path, allow=CommandPolicy([]))
    call = ToolCall("c1", "run_command", {"command": "echo hi > out.txt"})
    job = rig.start(call)
    req = rig.waiter.next()
    assert not tool_of(req).can_remember and "'>'" in (tool_of(req).needs_person or "")
    rig.broker.resolve(req.id, approved=True, remember=True)
    assert job.result()[0].ok and (rig.ws / "out.txt").read_text() == "hi\n"
    assert "allow_rule" not in rig.types()
    job = rig.start(ToolCall("c2", "run_command", {"command": "echo hi > out.txt"}))
    rig.broker.resolve(rig.waiter.next().id, approved=False, reason="asked again")
    assert not job.result()[0].ok


def test_calls_that_cannot_succeed_fail_without_asking(rig: Rig) -> None:
    (rig.ws / "a.py").write_text("x = 1\nx = 1\n")
    for call, why in [(ToolCall("c1", "edit_file", {"path": "a.py", "search": "y", "replace": "z"}), "not found"),
                      (ToolCall("c2", "edit_file", {"path": "a.py", "search": "x = 1", "replace": "z"}), "2 times"),
                      (write("c3", "../escape.txt", "x"), "'..'"),
                      (write("c4", ".env", "KEY=1"), "secrets file"),
                      (ToolCall("c5", "write_file", {"path": "a.py"}), "content is required"),
                      (ToolCall("c6", "run_command", {}), "exactly one of"),
                      (ToolCall("c7", "nope", {}), "unknown tool")]:
        result, _ = rig.run(call)
        assert not result.ok and why in (result.error or ""), (call, result.error)
    assert rig.waiter.empty() and not (rig.ws.parent / "escape.txt").exists()


def test_approval_timeout_rejects(tmp_path: Path) -> None:
    rig = Rig(tmp_path, approval_timeout_s=0.2)
    result, _ = rig.run(write("c1", "a.txt", "A"))
    assert not result.ok and "timed out" in (result.error or "")
    assert rig.broker.pending() == [] and not (rig.ws / "a.txt").exists()


def test_cancel_while_waiting_raises_cancelled(rig: Rig) -> None:
    job = rig.start(write("c1", "a.txt", "A"))
    rig.waiter.next()
    rig.cancel.set()
    with pytest.raises(Cancelled):
        job.result()
    assert not (rig.ws / "a.txt").exists()
    assert "tool_result" not in rig.types()  # a cancelled call is not a result: a retry may ask again
