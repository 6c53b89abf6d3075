"""One payload type per approval kind: typed on the request, on the decision and in the journal, and journals
written before the types (plain dict payloads, a tool's preview keys flat beside its arguments, deciders as
free strings) still replay — through the records and through a real restart of planning.

Why: approval payloads were `dict[str, Any]` built in four places and read by key in eight; a key renamed in
one place silently showed (or approved) nothing in another. Typed payloads make that a type error, and the
old journals on people's disks must not become unreadable because of it.
"""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import pytest
from helpers import sample_payload, wait_for

from conductor.approval_payloads import (
    CommandPreview,
    FileChangePreview,
    McpCallPreview,
    NoPreview,
    PlanPayload,
    PreviewFailed,
    SpawnPayload,
    TicketsPayload,
    ToolPayload,
)
from conductor.approvals import ApprovalBroker, ApprovalKind, ApprovalRequest, DecidedBy
from conductor.config import Config
from conductor.events import Provenance
from conductor.model import TrackSpec
from conductor.providers.scripted import ScriptedProvider
from conductor.records import ApprovalAsked, ApprovalDecided, RecordError, from_data
from conductor.session import Session
from conductor.store import Journal

PROV = Provenance(trace_id="run", track_id="tr", ticket_id="T1", tier=3, attempt=1)
OLD_PROV = {"trace_id": "run", "track_id": "tr", "ticket_id": "T1", "tier": 3, "attempt": 1}


def old_line(seq: int, type_: str, data: dict[str, object]) -> bytes:
    """One journal line exactly as the journal writes it (seq, ts, type, data, crc), with `data` as given."""
    body = f'{{"seq":{seq},"ts":1700000000.0,"type":"{type_}","data":{json.dumps(data, separators=(",", ":"))}}}'
    raw = body.encode()
    return raw[:-1] + b',"crc":%d}\n' % zlib.crc32(raw)


# ---------------------------------------------------------------- typed, round trip

@pytest.mark.parametrize("kind", [k.value for k in ApprovalKind])
def test_every_kind_round_trips_through_the_journal_typed(tmp_path: Path, kind: str) -> None:
    payload = sample_payload(kind, "original")
    edited = sample_payload(kind, "edited by the person")
    broker = ApprovalBroker()
    journal = Journal(tmp_path / "events.jsonl")
    broker.on_requested.append(lambda r: journal.append(ApprovalAsked(key=r.id, request=r)))
    broker.on_resolved.append(lambda r, d: journal.append(ApprovalDecided(key=r.id, request=r, decision=d)))
    pending = broker.request(PROV, f"a {kind}", payload)
    decision = broker.resolve(pending.request.id, approved=True, payload=edited)
    journal.close()

    again = Journal(tmp_path / "events.jsonl")
    asked = again.find(ApprovalAsked, pending.request.id)
    decided = again.find(ApprovalDecided, pending.request.id)
    assert asked is not None and decided is not None
    assert asked.request == pending.request and type(asked.request.payload) is type(payload)
    assert asked.request.kind == ApprovalKind(kind)
    assert decided.decision == decision and decided.decision.payload == edited and decided.decision.edited
    assert decided.approved


def test_an_edit_of_another_kind_is_refused_naming_both_kinds() -> None:
    broker = ApprovalBroker()
    pending = broker.request(PROV, "a tool call", sample_payload("tool"))
    with pytest.raises(ValueError, match="this is a tool approval: an edit must be a tool payload, not a plan one"):
        broker.resolve(pending.request.id, approved=True, payload=sample_payload("plan"))
    assert [r.id for r in broker.pending()] == [pending.request.id], "a refused edit decides nothing"


def test_a_payload_of_the_wrong_shape_in_a_journal_is_refused_naming_the_field() -> None:
    good = ApprovalRequest(id="tool-1", prov=PROV, title="t", payload=sample_payload("tool")).to_json()
    bad = json.loads(json.dumps(good))
    bad["payload"]["args"] = ["not", "an", "object"]
    with pytest.raises(RecordError, match=r"approval_requested record: .*request\.payload\.tool\.args: Input should be a valid dictionary"):
        from_data("approval_requested", {"key": "tool-1", "request": bad})
    bad = json.loads(json.dumps(good))
    bad["payload"]["kind"] = "launch"
    with pytest.raises(RecordError, match="request.payload"):
        from_data("approval_requested", {"key": "tool-1", "request": bad})


def test_payloads_are_frozen() -> None:
    p = sample_payload("spawn")
    with pytest.raises(ValueError, match="frozen"):
        p.prompt = "something else"


# ---------------------------------------------------------------- journals written before the types

OLD_TOOL_PAYLOADS: dict[str, tuple[dict[str, object], object]] = {
    "write": ({"path": "notes.txt", "new_file": True, "target": "src/core/settings.py", "diff": "+x\n"},
              FileChangePreview(path="notes.txt", diff="+x\n", new_file=True, target="src/core/settings.py")),
    "edit": ({"path": "app.py", "diff": "-a\n+b\n"}, FileChangePreview(path="app.py", diff="-a\n+b\n")),
    "command": ({"command": "make test", "argv": ["/usr/bin/make", "test"], "shell": False, "cwd": "/ws",
                 "timeout_s": 120.0},
                CommandPreview(command="make test", argv=("/usr/bin/make", "test"), shell=False, cwd="/ws",
                               timeout_s=120.0)),
    "mcp": ({"mcp_server": "local", "mcp_tool": "touch", "mcp_transport": "python server.py", "timeout_s": 30},
            McpCallPreview(server="local", tool="touch", transport="python server.py", timeout_s=30)),
    "failed": ({"preview_error": "OSError: disk gone"}, PreviewFailed(error="OSError: disk gone")),
    "none": ({}, NoPreview()),
}


@pytest.mark.parametrize("shape", list(OLD_TOOL_PAYLOADS))
def test_an_old_flat_tool_payload_reads_as_a_typed_one(tmp_path: Path, shape: str) -> None:
    flat, preview = OLD_TOOL_PAYLOADS[shape]
    old = {"tool": "write_file", "call_id": "c1", "args": {"path": "notes.txt", "content": "x\n"},
           "provenance": OLD_PROV, "needs_person": "it runs code it was handed", "can_remember": False,
           "interrupted": "it may already have run", **flat}
    request = {"id": "tool-1-abc", "kind": "tool", "title": "write_file: notes.txt", "payload": old,
               "created": 1.5, "prov": OLD_PROV}
    decision = {"request_id": "tool-1-abc", "approved": True, "payload": {**old, "args": {"path": "notes.txt",
                                                                                          "content": "y\n"}},
                "reason": None, "remember": False, "by": "user", "edited": True}
    path = tmp_path / "events.jsonl"
    path.write_bytes(old_line(1, "approval_requested", {"key": "tool-1-abc", "request": request})
                     + old_line(2, "approval_resolved", {"key": "tool-1-abc", "request": request,
                                                         "decision": decision}))
    journal = Journal(path)
    assert journal.warnings == []
    asked = journal.find(ApprovalAsked, "tool-1-abc")
    decided = journal.find(ApprovalDecided, "tool-1-abc")
    assert asked is not None and decided is not None
    expected = ToolPayload(tool="write_file", call_id="c1", args={"path": "notes.txt", "content": "x\n"},
                           provenance=PROV, preview=preview, needs_person="it runs code it was handed",
                           interrupted="it may already have run")
    assert asked.request.payload == expected and asked.request.prov == PROV and asked.request.created == 1.5
    assert decided.decision.payload == expected.with_args({"path": "notes.txt", "content": "y\n"})
    assert decided.decision.by == DecidedBy.PERSON and decided.approved


def test_old_planning_and_spawn_payloads_and_policy_deciders_read_typed(tmp_path: Path) -> None:
    tracks = [{"title": "Login", "goal": "Users log in", "scope": "", "acceptance_criteria": ["works"]}]
    tickets = [{"id": "T1", "title": "Do it", "description": "", "depends_on": [], "target_files": ["a.py"],
                "acceptance_criteria": [], "step_mode": False, "model_override": None}]
    spawn = {"ticket_id": "T1", "attempt": 2, "model": "m", "system": "sys", "prompt": "TICKET: T1",
             "context_files": ["a.py"]}
    lines = b""
    for seq, (kind, payload, by) in enumerate([("plan", {"epic": "E", "tracks": tracks}, "policy:auto:plan"),
                                                ("tickets", {"track_id": "tr", "track_title": "Login",
                                                             "tickets": tickets}, "user"),
                                                ("spawn", spawn, "policy")], 1):
        request = {"id": f"{kind}-1", "kind": kind, "title": kind, "payload": payload, "created": 0.0,
                   "prov": OLD_PROV}
        decision = {"request_id": f"{kind}-1", "approved": True, "payload": payload, "reason": None,
                    "remember": False, "by": by, "edited": False}
        lines += old_line(seq, "approval_resolved", {"key": f"{kind}-1", "request": request, "decision": decision})
    (tmp_path / "events.jsonl").write_bytes(lines)
    journal = Journal(tmp_path / "events.jsonl")
    plan, tix, sp = (journal.find(ApprovalDecided, f"{k}-1") for k in ("plan", "tickets", "spawn"))
    assert plan is not None and tix is not None and sp is not None
    assert plan.decision.payload == PlanPayload(epic="E", tracks=(TrackSpec(**tracks[0]),))  # type: ignore[arg-type]
    assert (plan.decision.by, plan.decision.policy) == (DecidedBy.POLICY, "auto:plan")
    assert isinstance(tix.decision.payload, TicketsPayload) and tix.decision.payload.tickets[0].target_files == ["a.py"]
    assert tix.decision.by == DecidedBy.PERSON
    assert sp.decision.payload == SpawnPayload(ticket_id="T1", attempt=2, model="m", system="sys", prompt="TICKET: T1",
                                               context_files=("a.py",))
    assert sp.decision.by == DecidedBy.POLICY


def _to_old_shape(path: Path) -> int:
    """Rewrite a journal's approval records the way the app wrote them before typed payloads (kind beside the
    payload, which has none). Returns how many lines were rewritten."""
    out, n = b"", 0
    for raw in path.read_bytes().splitlines():
        line = json.loads(raw)
        if line["type"] in ("approval_requested", "approval_resolved"):
            req = line["data"]["request"]
            payload = dict(req["payload"])
            kind = payload.pop("kind")
            line["data"]["request"] = {**req, "kind": kind, "payload": payload}
            if "decision" in line["data"] and line["data"]["decision"]["payload"] is not None:
                line["data"]["decision"]["payload"].pop("kind")
            n += 1
        out += old_line(line["seq"], line["type"], line["data"])
    path.write_bytes(out)
    return n


def test_a_restart_on_an_old_shape_epic_journal_asks_the_same_plan_and_continues(workspace: Path,
                                                                                  tmp_path: Path) -> None:
    tracks = tmp_path / "tracks"
    s1 = Session(Config(), workspace=workspace, tracks_dir=tracks, provider=ScriptedProvider(), linger=False)
    s1.plan_epic("Add OAuth login")
    (req,) = wait_for(lambda: s1.broker.pending(), 10, "the plan approval")
    s1.shutdown()
    (epic_journal,) = (tracks / "_epics").glob("*/events.jsonl")
    assert _to_old_shape(epic_journal) == 1
    (old,) = [json.loads(raw)["data"]["request"] for raw in epic_journal.read_text().splitlines()
              if '"approval_requested"' in raw]
    assert old["kind"] == "plan" and "kind" not in old["payload"]  # really the old shape on disk

    s2 = Session(Config(), workspace=workspace, tracks_dir=tracks, provider=ScriptedProvider(), linger=False)
    try:
        assert len(s2.recover()) == 1
        (back,) = wait_for(lambda: s2.broker.pending(), 10, "the plan approval, again")
        assert back.id == req.id and back.payload == req.payload and isinstance(back.payload, PlanPayload)
        renamed = back.payload.tracks[0].model_copy(update={"title": "Sign-in, renamed by the person"})
        kept = back.payload.model_copy(update={"tracks": (renamed,)})  # an edit: one track, renamed
        s2.resolve_approval(back.id, approved=True, payload=kept)
        (tickets,) = wait_for(lambda: s2.broker.pending(), 10, "the tickets approval")
        assert isinstance(tickets.payload, TicketsPayload)
        assert tickets.payload.track_title == "Sign-in, renamed by the person"
    finally:
        s2.shutdown()
    # The decision journalled now is typed; the old request line beside it still reads.
    epic = Journal(epic_journal)
    decided = epic.find(ApprovalDecided, req.id)
    assert decided is not None and decided.decision.payload == kept and decided.decision.edited


def test_an_old_shape_decided_plan_is_not_asked_again(workspace: Path, tmp_path: Path) -> None:
    """The plan was approved (old shape) and the app stopped before the tracks were created: the restart acts on
    the journalled decision and asks nobody."""
    tracks = tmp_path / "tracks"
    s1 = Session(Config(), workspace=workspace, tracks_dir=tracks, provider=ScriptedProvider(), linger=False)
    s1.plan_epic("Add OAuth login")
    (req,) = wait_for(lambda: s1.broker.pending(), 10, "the plan approval")
    s1.broker.resolve(req.id, approved=True)
    s1.shutdown()
    (epic_journal,) = (tracks / "_epics").glob("*/events.jsonl")
    # Cut the journal back to the decision: as if the app stopped right after journalling it.
    kept_lines = []
    for raw in epic_journal.read_bytes().splitlines():
        kept_lines.append(raw)
        if b'"approval_resolved"' in raw:
            break
    epic_journal.write_bytes(b"\n".join(kept_lines) + b"\n")
    for d in tracks.iterdir():
        if d.is_dir() and not d.name.startswith("_"):
            shutil.rmtree(d)  # and nothing of the tracks it went on to create
    assert _to_old_shape(epic_journal) == 2

    s2 = Session(Config(), workspace=workspace, tracks_dir=tracks, provider=ScriptedProvider(), linger=False)
    asked: list[str] = []
    s2.broker.on_requested.append(lambda r: asked.append(r.kind.value))
    try:
        assert len(s2.recover()) == 1
        (tickets,) = wait_for(lambda: s2.broker.pending(), 10, "the tickets approval")
        assert tickets.kind == ApprovalKind.TICKETS and "plan" not in asked
    finally:
        s2.shutdown()
