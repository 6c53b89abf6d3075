"""The whole pipeline on a real git repository: a branch per track, a worktree per attempt, merges in DAG order.

Why here: the git layer is tested on its own in test_git_*.py; these tests prove the RUN uses it — every
attempt works in its own worktree, one commit per attempt, the engine merges after QA and only then marks the
ticket done (so a dependent starts from a tip holding its dependencies), a conflict is a visible state that a
retry resolves, and the person's checkout is never touched.
"""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from conductor.config import Config
from conductor.engine import Retry
from conductor.events import Notice
from conductor.messages import ToolCall
from conductor.model import TicketStatus, TrackStatus
from conductor.providers.base import ProviderRequest
from conductor.providers.scripted import Reply, ScriptedProvider, demo_reply
from conductor.records import (
    GitAttemptCommitted,
    GitAttemptMerged,
    GitAttemptStarted,
    GitTrackStarted,
)
from conductor.session import Session
from tests.git_support import make_person_busy, make_repo, person_state, sh_git
from tests.helpers import tool_of, wait_for


def git_cfg(tmp: Path, workers: int = 3) -> Config:
    cfg = Config()
    cfg = cfg.updated({"engine": {"max_workers": workers}})
    cfg = cfg.updated({"git": {"worktrees_root": str(tmp / "worktrees")}})
    return cfg


def run(repo: Path, tmp: Path, provider: ScriptedProvider, cfg: Config, linger: bool = False) -> tuple[Session, str]:
    session = Session(cfg, workspace=repo, tracks_dir=tmp / "tracks", provider=provider, linger=linger)
    session.broker.auto_approve({"plan", "tickets", "spawn", "tool"})
    (track_id,) = session.plan_epic("Add OAuth login to the app").wait(timeout=20)
    session.engines[track_id].join(timeout=60)
    return session, track_id


def plan(*tickets: tuple[str, list[str], str]) -> Reply:
    return Reply(text=json.dumps({"tickets": [{
        "id": tid, "title": f"Change {target}", "description": f"Edit {target}.", "depends_on": deps,
        "target_files": [target], "acceptance_criteria": ["done"], "step_mode": False, "model_override": None}
        for tid, deps, target in tickets]}))


def writer(path: str, content_for_attempt: dict[int, str]):  # type: ignore[no-untyped-def]
    """A Tier 3 worker that writes `path` (content chosen by attempt), then reports."""
    def respond(req: ProviderRequest, n: int) -> Reply:
        turns = sum(1 for m in req.messages if m.role == "model")
        if turns == 0:
            content = content_for_attempt[req.prov.attempt]
            return Reply(text=f"writing {path}", tool_calls=(
                ToolCall(f"w{req.prov.ticket_id}{req.prov.attempt}", "write_file",
                         {"path": path, "content": content}),))
        return Reply(text=f"Work on {req.prov.ticket_id} is complete: {path} written.")
    return respond


def track_records(session: Session, track_id: str) -> list[object]:
    return list(session.store.journal(track_id).records())


def test_tickets_run_in_worktrees_and_merge_in_dag_order(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    make_person_busy(repo)
    before = person_state(repo)
    session, tid = run(repo, tmp_path, ScriptedProvider(latency_s=0.002), git_cfg(tmp_path))
    try:
        track = session.engines[tid].track
        assert track.status == TrackStatus.DONE and all(t.status == TicketStatus.DONE for t in track.tickets)
        recs = track_records(session, tid)
        (started,) = [r for r in recs if isinstance(r, GitTrackStarted)]
        branch = started.branch
        assert branch == f"conductor/{tid}" and started.base_sha == before.head.strip()

        # The track branch holds every ticket's file; the person's checkout does not.
        files = sh_git(repo, "ls-tree", "-r", "--name-only", branch).split()
        assert {f"notes/{n}.md" for n in ("survey", "model", "interface", "core", "tests", "docs")} <= set(files)
        assert not (repo / "notes").exists()

        # Merges in DAG order, each after its dependencies (first-parent history of the track branch).
        log = sh_git(repo, "log", "--first-parent", "--reverse", "--format=%(trailers:key=Conductor-Merged,valueonly)",
                     f"{started.base_sha}..{branch}").split()
        order = [k.split("/")[1] for k in log]
        assert sorted(order) == ["T1", "T2", "T3", "T4", "T5", "T6"]
        for t in track.tickets:
            for d in t.depends_on:
                assert order.index(d) < order.index(t.id), f"{t.id} merged before its dependency {d}"

        # Each attempt: journalled worktree outside the repository, one commit naming track/ticket/attempt/model.
        attempts = {r.ticket_id: r for r in recs if isinstance(r, GitAttemptStarted)}
        commits = {r.ticket_id: r for r in recs if isinstance(r, GitAttemptCommitted)}
        merged = {r.ticket_id for r in recs if isinstance(r, GitAttemptMerged)}
        assert set(attempts) == set(commits) == merged == {t.id for t in track.tickets}
        for t in track.tickets:
            a = attempts[t.id]
            assert Path(a.path).is_relative_to(tmp_path / "worktrees")
            assert sh_git(repo, "rev-list", "--count", f"{a.base_sha}..{a.branch}").strip() == "1"
            msg = sh_git(repo, "log", "-1", "--format=%B", commits[t.id].sha)
            assert f"Track: {tid}" in msg and f"Ticket: {t.id}" in msg and "Attempt: 1" in msg and "Model: " in msg
        # A dependent's worktree started from a tip holding its dependencies' work and nothing else in flight.
        t4_base = set(sh_git(repo, "ls-tree", "-r", "--name-only", attempts["T4"].base_sha).split())
        assert {"notes/survey.md", "notes/model.md", "notes/interface.md"} <= t4_base
        assert not {"notes/core.md", "notes/tests.md", "notes/docs.md"} & t4_base
        for d in ("T1", "T2", "T3"):
            sh_git(repo, "merge-base", "--is-ancestor", commits[d].sha, attempts["T4"].base_sha)
        # No worktree is left registered but the person's own; the person's checkout, index and stash are as before.
        assert sh_git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
        assert person_state(repo) == before
    finally:
        session.shutdown()


def test_same_lines_conflict_needs_merge_then_a_retry_resolves_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    before = person_state(repo)
    base = (repo / "shared.py").read_text()
    resolved = base.replace("line 3\n", "line 3 by A and B\n")
    provider = ScriptedProvider({
        1: demo_reply, 4: demo_reply, 2: [plan(("A", [], "shared.py"), ("B", [], "shared.py"))],
        (3, "A"): writer("shared.py", {1: base.replace("line 3\n", "line 3 by A\n")}),
        (3, "B"): writer("shared.py", {1: base.replace("line 3\n", "line 3 by B\n"), 2: resolved})})
    session, tid = run(repo, tmp_path, provider, git_cfg(tmp_path, workers=2), linger=True)
    try:
        track = session.engines[tid].track
        waiting = [t for t in track.tickets if t.status == TicketStatus.NEEDS_MERGE]
        assert len(waiting) == 1, [(t.id, t.status) for t in track.tickets]
        (loser,) = waiting
        assert "shared.py" in (loser.blocked_reason or "") and track.status == TrackStatus.STALLED
        if loser.id == "A":  # the scripts resolve in B; whichever lost the race, resolve it with the same text
            provider.script[(3, "A")] = writer("shared.py", {1: "", 2: resolved})

        eng = session.engines[tid]
        session.command(tid, Retry(loser.id))
        wait_for(lambda: eng.track.status == TrackStatus.DONE, 60, "track done after the resolve attempt")
        track = eng.track
        assert all(t.status == TicketStatus.DONE for t in track.tickets), [(t.id, t.status) for t in track.tickets]
        branch = f"conductor/{tid}"
        assert sh_git(repo, "show", f"{branch}:shared.py") == resolved
        # The resolve attempt saw the conflict markers and the files in its prompt.
        prompts = [m.text for r in provider.calls(3) if r.prov.ticket_id == loser.id and r.prov.attempt == 2
                   for m in r.messages if m.role == "user"]
        assert any("conflicts in: shared.py" in p for p in prompts)
        assert person_state(repo) == before
    finally:
        session.shutdown()


def test_plain_folder_runs_one_worker_with_a_warning(workspace: Path, tmp_path: Path) -> None:
    cfg = Config()
    cfg = cfg.updated({"engine": {"max_workers": 4}})
    session, tid = run(workspace, tmp_path, ScriptedProvider(latency_s=0.002), cfg)
    try:
        eng = session.engines[tid]
        assert eng.track.status == TrackStatus.DONE
        spans = sorted((s, e) for _, s, e in eng.dispatch_log)
        assert all(b[0] >= a[1] for a, b in itertools.pairwise(spans)), "two workers overlapped in one shared tree"
        notes = [e for e in session.events.drain(max_items=100_000) if isinstance(e, Notice)]
        assert any(n.level == "warning" and "ONE worker" in n.message for n in notes)
    finally:
        session.shutdown()


CALC_TEST = """import unittest

from calc import add


class AddTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 3), 5)
"""


def test_qa_runs_the_checks_a_broken_test_fails_with_its_output_as_hint_then_passes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"calc.py": "def add(a, b):\n    return a + b\n", "test_calc.py": CALC_TEST,
                                ".gitignore": "__pycache__/\n"})
    before = person_state(repo)
    cfg = git_cfg(tmp_path, workers=1)
    cfg = cfg.updated({"git": {"check_command": "python3 -m unittest -q"}})
    cfg = cfg.updated({"approvals": {"allow_commands": ["python3 -m unittest -q"]}})  # the exact rule the person set once
    provider = ScriptedProvider({
        1: demo_reply, 4: demo_reply, 2: [plan(("T1", [], "calc.py"))],
        (3, "T1"): writer("calc.py", {1: "def add(a, b):\n    return a - b\n",
                                      2: "def add(a, b):\n    return b + a\n"})})
    session = Session(cfg, workspace=repo, tracks_dir=tmp_path / "tracks", provider=provider, linger=False)
    session.broker.auto_approve({"plan", "tickets", "spawn"})
    asked: list[str] = []

    def person(req: Any) -> None:  # the person approves the worker's writes (so the allow rule still holds)
        if req.kind.value == "tool":
            asked.append(f"{tool_of(req).tool} {json.dumps(tool_of(req).args)}")
        threading.Thread(target=session.broker.resolve, args=(req.id,), kwargs={"approved": True}).start()

    session.broker.on_requested.append(person)
    try:
        (tid,) = session.plan_epic("Fix the calculator").wait(timeout=20)
        track = session.engines[tid].join(timeout=60)
        t1 = track.ticket("T1")
        assert t1.status == TicketStatus.DONE and t1.attempts == 2, (t1.status, t1.failed_reason)
        # Attempt 2's worker was told why attempt 1 failed: the check's own output.
        (second,) = [r for r in provider.calls(3) if r.prov.attempt == 2 and
                     sum(1 for m in r.messages if m.role == "model") == 0]
        hint = "\n".join(m.text for m in second.messages)
        assert "python3 -m unittest -q" in hint and "AssertionError" in hint and "-1 != 5" in hint
        # The check ran without asking (exact allow rule), its output is in the ticket's QA pane, and only
        # attempt 2 reached Tier 4's review (a failing check fails the ticket before any model is asked).
        assert [a.split()[0] for a in asked] == ["write_file", "write_file"], asked
        pane = session.store.read_output(session.store.ticket_output(tid, "T1", 4))
        assert pane.count("$ python3 -m unittest -q") == 2 and "FAILED" in pane and "OK" in pane
        assert [r.prov.attempt for r in provider.calls(4)] == [2]
        assert sh_git(repo, "show", f"conductor/{tid}:calc.py") == "def add(a, b):\n    return b + a\n"
        assert person_state(repo) == before
    finally:
        session.shutdown()


def test_a_worker_cannot_reach_the_persons_checkout_from_its_worktree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    before = person_state(repo)
    reach = [("write_file", {"path": str(repo / "evil.txt"), "content": "x"}),
             ("write_file", {"path": "../../../person-repo/evil.txt", "content": "x"}),
             ("read_file", {"path": str(repo / "a.py")}),
             ("write_file", {"path": str(tmp_path / "tracks" / "evil.txt"), "content": "x"})]

    def worker(req: ProviderRequest, n: int) -> Reply:
        turns = sum(1 for m in req.messages if m.role == "model")
        if turns < len(reach):
            name, args = reach[turns]
            return Reply(text="trying", tool_calls=(ToolCall(f"r{turns}", name, args),))
        return Reply(text="Work on T1 is complete.")

    provider = ScriptedProvider({1: demo_reply, 4: demo_reply, 2: [plan(("T1", [], "a.py"))], (3, "T1"): worker})
    session, _ = run(repo, tmp_path, provider, git_cfg(tmp_path, workers=1))
    try:
        last = [r for r in provider.calls(3) if r.prov.ticket_id == "T1"][-1]
        results = [r for m in last.messages for r in m.tool_results]
        assert len(results) == len(reach) and not any(r.ok for r in results), [r.to_json() for r in results]
        assert not (repo / "evil.txt").exists() and not (tmp_path / "tracks" / "evil.txt").exists()
        assert person_state(repo) == before
    finally:
        session.shutdown()


def test_the_commit_author_is_a_setting_and_a_bad_one_is_refused_by_key(tmp_path: Path) -> None:
    """[git] author names who authors the conductor's commits and merges; a malformed value names the key."""
    from conductor.errors import ConfigError
    with pytest.raises(ConfigError, match="git.author"):
        Config().updated({"git": {"author": "no email here"}})
    repo = make_repo(tmp_path)
    cfg = git_cfg(tmp_path).updated({"git": {"author": "Release Bot <bot@example.org>"}})
    session, tid = run(repo, tmp_path, ScriptedProvider(latency_s=0.002), cfg)
    try:
        branch = f"conductor/{tid}"
        authors = set(sh_git(repo, "log", "--format=%an <%ae>", f"HEAD..{branch}").split("\n")) - {""}
        assert authors == {"Release Bot <bot@example.org>"}
    finally:
        session.shutdown()
