"""What a person does with a track's git after (or between) runs, through the real engine and real git: revert a
merged ticket (asked in the GUI; here the command), rewind a ticket to an earlier attempt's commit, merge the
finished track into its base (refused cleanly when the base moved in a conflicting way), diffs computed off the
GUI thread as typed events, a tool approval's preview recomputed for edited arguments, the spawn approval's
context read from the track branch (not the person's checkout), and `git init` offered, never done unasked.

Why here: these are the issue's "revert restores the branch to before the ticket", "merge into base always
asks", "not a repository: offer to initialise one" and "step mode context" promises, each checked against
git itself and the journal, with the person's checkout compared before and after.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from conductor.approval_payloads import FileChangePreview, SpawnPayload, ToolPayload
from conductor.config import Config
from conductor.engine import MergeIntoBase, RevertTicket, RewindTicket
from conductor.events import ErrorRaised, Event, EventQueue
from conductor.git.diffs import MAX_PATCH_BYTES
from conductor.git_events import (
    BaseMergePlanned,
    DiffReady,
    GitInitOffered,
    TicketDiffOf,
    ToolPreviewReady,
    TrackDiffOf,
)
from conductor.git_review import GitReview
from conductor.messages import ToolCall
from conductor.model import TicketStatus, TrackStatus
from conductor.providers.base import ProviderRequest
from conductor.providers.scripted import Reply, ScriptedProvider, demo_reply
from conductor.records import GitBaseMerged, GitTicketReverted, GitTicketRewound
from conductor.session import AwaitingGitInit, Session
from conductor.tools.previews import PREVIEWS
from tests.git_support import make_person_busy, make_repo, person_state, sh_git
from tests.helpers import wait_for
from tests.test_git_pipeline import git_cfg, plan, run, writer


def _wait_event(events: EventQueue, kind: type[Event], timeout: float = 30.0) -> Any:
    seen: list[Event] = []

    def found() -> Event | None:
        ev = events.get(0.05)
        if ev is not None:
            seen.append(ev)
        return next((e for e in seen if isinstance(e, kind)), None)
    return wait_for(found, timeout, f"a {kind.__name__} event")


def _errors(events: list[Event]) -> list[str]:
    return [e.message for e in events if isinstance(e, ErrorRaised)]


def _two_file_track(tmp: Path) -> tuple[Session, str, Path]:
    repo = make_repo(tmp)
    provider = ScriptedProvider({
        1: demo_reply, 4: demo_reply, 2: [plan(("A", [], "a.py"), ("B", ["A"], "b.py"))],
        (3, "A"): writer("a.py", {1: "A = 'by A'\n"}), (3, "B"): writer("b.py", {1: "B = 'by B'\n"})})
    session, tid = run(repo, tmp, provider, git_cfg(tmp, workers=2), linger=True)
    return session, tid, repo


def test_revert_a_merged_ticket_is_a_revert_commit_that_restores_the_branch(tmp_path: Path) -> None:
    session, tid, repo = _two_file_track(tmp_path)
    make_person_busy(repo)
    before = person_state(repo)
    branch = f"conductor/{tid}"
    try:
        eng = session.engines[tid]
        assert eng.track.status == TrackStatus.DONE
        tip_before = sh_git(repo, "rev-parse", branch).strip()
        session.command(tid, RevertTicket("A"))
        wait_for(lambda: eng.track.ticket("A").status == TicketStatus.SKIPPED, 20, "A reverted")
        assert sh_git(repo, "show", f"{branch}:a.py") == "A = 1\n", "the track no longer holds A's change"
        assert sh_git(repo, "show", f"{branch}:b.py") == "B = 'by B'\n", "B's work stays"
        assert sh_git(repo, "rev-parse", f"{branch}^").strip() == tip_before, "one revert commit on top"
        (rec,) = [r for r in session.store.journal(tid).records() if isinstance(r, GitTicketReverted)]
        assert rec.ticket_id == "A" and rec.commit == sh_git(repo, "rev-parse", branch).strip()
        # reverting again is refused with a reason (A is no longer done), nothing moves
        session.events.drain(100_000)
        session.command(tid, RevertTicket("A"))
        err = _wait_event(session.events, ErrorRaised)
        assert "A" in err.message and "skipped" in err.message
        assert sh_git(repo, "rev-parse", branch).strip() == rec.commit
        assert person_state(repo) == before
    finally:
        session.shutdown()


def test_revert_refused_when_later_tickets_changed_the_same_lines(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    base = (repo / "shared.py").read_text()
    provider = ScriptedProvider({
        1: demo_reply, 4: demo_reply, 2: [plan(("A", [], "shared.py"), ("B", ["A"], "shared.py"))],
        (3, "A"): writer("shared.py", {1: base.replace("line 3\n", "line 3 by A\n")}),
        (3, "B"): writer("shared.py", {1: base.replace("line 3\n", "line 3 by A then B\n")})})
    session, tid = run(repo, tmp_path, provider, git_cfg(tmp_path, workers=2), linger=True)
    try:
        eng = session.engines[tid]
        tip = sh_git(repo, "rev-parse", f"conductor/{tid}").strip()
        session.events.drain(100_000)
        session.command(tid, RevertTicket("A"))
        err = _wait_event(session.events, ErrorRaised)
        assert "cannot revert A" in err.message and "shared.py" in err.message
        assert sh_git(repo, "rev-parse", f"conductor/{tid}").strip() == tip, "nothing moved"
        assert eng.track.ticket("A").status == TicketStatus.DONE
    finally:
        session.shutdown()


def test_rewind_makes_an_earlier_attempts_commit_the_tickets_work(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    before = person_state(repo)

    def qa(req: ProviderRequest, n: int) -> Reply:  # attempt 1 fails review, attempt 2 passes
        return Reply(text=json.dumps({"verdict": "fail" if req.prov.attempt == 1 else "pass",
                                      "hint": "try again"}))
    provider = ScriptedProvider({1: demo_reply, 4: qa, 2: [plan(("T1", [], "a.py"))],
                                 (3, "T1"): writer("a.py", {1: "A = 'first'\n", 2: "A = 'second'\n"})})
    session, tid = run(repo, tmp_path, provider, git_cfg(tmp_path, workers=1), linger=True)
    branch = f"conductor/{tid}"
    try:
        eng = session.engines[tid]
        assert eng.track.ticket("T1").attempts == 2
        assert sh_git(repo, "show", f"{branch}:a.py") == "A = 'second'\n"
        session.command(tid, RewindTicket("T1", 1))
        wait_for(lambda: any(isinstance(r, GitTicketRewound) for r in session.store.journal(tid).records()), 20,
                 "the rewind journalled")
        wait_for(lambda: eng.track.ticket("T1").status == TicketStatus.DONE, 20, "T1 done again")
        assert sh_git(repo, "show", f"{branch}:a.py") == "A = 'first'\n", "attempt 1's work is on the track"
        (rec,) = [r for r in session.store.journal(tid).records() if isinstance(r, GitTicketRewound)]
        assert rec.to_attempt == 1 and rec.reverted is not None
        assert person_state(repo) == before
    finally:
        session.shutdown()


def test_merge_into_base_asks_with_a_plan_then_merges_and_keeps_the_persons_edits(tmp_path: Path) -> None:
    session, tid, repo = _two_file_track(tmp_path)
    (repo / "README.md").write_text("the person's own unsaved edit\n")  # untouched by the merge's files
    review = GitReview(session)
    try:
        session.events.drain(100_000)
        review.plan_base_merge(tid)
        planned = _wait_event(session.events, BaseMergePlanned)
        plan_ = planned.plan
        assert plan_ is not None and plan_.refused is None, planned
        assert plan_.base_branch == "main" and plan_.files == ["a.py", "b.py"]
        assert plan_.stat_lines()[-1] == "2 files changed, +2 -2"
        assert sh_git(repo, "rev-parse", "main").strip() == plan_.base_sha, "planning moved nothing"
        session.command(tid, MergeIntoBase(plan_))
        wait_for(lambda: any(isinstance(r, GitBaseMerged) for r in session.store.journal(tid).records()), 20,
                 "the merge into base journalled")
        assert sh_git(repo, "show", "main:a.py") == "A = 'by A'\n"
        assert (repo / "a.py").read_text() == "A = 'by A'\n", "the checkout of main was fast-forwarded"
        assert (repo / "README.md").read_text() == "the person's own unsaved edit\n"
        assert sh_git(repo, "rev-parse", "main^2").strip() == plan_.track_tip
        # the same plan again: refused, nothing merged twice
        session.events.drain(100_000)
        session.command(tid, MergeIntoBase(plan_))
        assert "moved since you looked" in _wait_event(session.events, ErrorRaised).message
    finally:
        review.close()
        session.shutdown()


def test_merge_into_base_refuses_when_the_base_moved_in_a_conflicting_way(tmp_path: Path) -> None:
    session, tid, repo = _two_file_track(tmp_path)
    (repo / "a.py").write_text("A = 'the person changed it too'\n")
    sh_git(repo, "commit", "-q", "-am", "the person's own change to a.py")
    main_before = sh_git(repo, "rev-parse", "main").strip()
    before = person_state(repo)
    review = GitReview(session)
    try:
        session.events.drain(100_000)
        review.plan_base_merge(tid)
        plan_ = _wait_event(session.events, BaseMergePlanned).plan
        assert plan_ is not None and plan_.conflicts == ("a.py",)
        assert plan_.refused is not None and "a.py" in plan_.refused and "conflict" in plan_.refused
        session.command(tid, MergeIntoBase(plan_))
        err = _wait_event(session.events, ErrorRaised)
        assert "not merged into the base" in err.message and "a.py" in err.message
        assert sh_git(repo, "rev-parse", "main").strip() == main_before
        assert person_state(repo) == before
    finally:
        review.close()
        session.shutdown()


def test_diffs_arrive_as_typed_events_per_file_with_binary_named_and_big_patches_cut(tmp_path: Path) -> None:
    big = "".join(f"row {i} {'x' * 60}\n" for i in range(MAX_PATCH_BYTES // 60 + 10))
    repo = make_repo(tmp_path)

    def worker(req: ProviderRequest, n: int) -> Reply:
        t = req.prov.ticket_id
        if sum(1 for m in req.messages if m.role == "model") == 0:
            calls = [ToolCall(f"{t}1", "write_file", {"path": "a.py", "content": "A = 'diffed'\n"})] if t == "A" else \
                [ToolCall(f"{t}2", "write_file", {"path": "big.txt", "content": big})]
            return Reply(text="writing", tool_calls=tuple(calls))
        return Reply(text="done")
    provider = ScriptedProvider({1: demo_reply, 4: demo_reply, 2: [plan(("A", [], "a.py"), ("B", ["A"], "big.txt"))],
                                 (3, "A"): worker, (3, "B"): worker})
    (repo / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    sh_git(repo, "add", "logo.png")
    sh_git(repo, "commit", "-q", "-m", "a binary file")
    session, tid = run(repo, tmp_path, provider, git_cfg(tmp_path, workers=1), linger=True)
    review = GitReview(session)
    main_thread = threading.get_ident()
    try:
        session.events.drain(100_000)
        review.request_diff(tid, TicketDiffOf("A"))
        ev = _wait_event(session.events, DiffReady)
        assert ev.error is None and ev.diff is not None and ev.attempts == (1,)
        (f,) = ev.diff.files
        assert f.path == "a.py" and f.added == 1 and f.deleted == 1
        assert [line.kind for line in f.hunks[0].lines] == ["delete", "add"]
        review.request_diff(tid, TrackDiffOf())
        ev = _wait_event(session.events, DiffReady)
        assert ev.diff is not None and ev.diff.truncated, "a patch over the cap says it was cut"
        assert set(ev.diff.paths) == {"a.py", "big.txt"}
        review.request_diff(tid, TicketDiffOf("nope"))
        ev = _wait_event(session.events, DiffReady)
        assert ev.diff is None and "nope has no committed attempt" in (ev.error or "")
        assert threading.get_ident() == main_thread
    finally:
        review.close()
        session.shutdown()


def test_binary_file_in_a_diff_is_named_as_binary(tmp_path: Path) -> None:
    from conductor.git import open_repository
    from conductor.git.diffs import diff_commits
    repo = make_repo(tmp_path)
    old = sh_git(repo, "rev-parse", "HEAD").strip()
    (repo / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    sh_git(repo, "add", "logo.png")
    sh_git(repo, "commit", "-q", "-m", "a binary file")
    d = diff_commits(open_repository(repo), old, "HEAD")
    (f,) = d.files
    assert f.binary and f.status == "added" and f.hunks == ()


def test_tool_approval_preview_is_recomputed_for_edited_arguments_off_the_gui_thread(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    provider = ScriptedProvider({1: demo_reply, 4: demo_reply, 2: [plan(("A", [], "a.py"))],
                                 (3, "A"): writer("a.py", {1: "A = 'asked'\n"})})
    cfg = git_cfg(tmp_path, workers=1)
    session = Session(cfg, workspace=repo, tracks_dir=tmp_path / "tracks", provider=provider, linger=True)
    session.broker.auto_approve({"plan", "tickets", "spawn"})
    review = GitReview(session)
    try:
        session.plan_epic("Edit a").wait(timeout=20)
        req = wait_for(lambda: next(iter(session.pending_approvals()), None), 30, "the write's approval")
        assert isinstance(req.payload, ToolPayload) and isinstance(req.payload.preview, FileChangePreview)
        assert "+A = 'asked'" in req.payload.preview.diff
        session.events.drain(100_000)
        review.preview_tool(req.id, {"path": "a.py", "content": "A = 'edited by the person'\n"}, revision=1)
        ev = _wait_event(session.events, ToolPreviewReady)
        assert ev.request_id == req.id and ev.revision == 1 and ev.error is None
        assert "+A = 'edited by the person'" in (ev.diff or "") and "-A = 1" in (ev.diff or "")
        review.preview_tool(req.id, {"path": "../outside.py", "content": "x"}, revision=2)
        ev = _wait_event(session.events, ToolPreviewReady)
        assert ev.diff is None and ev.error, "an edit the sandbox refuses is shown as the preview's error"
        session.resolve_approval(req.id, approved=True)
        wait_for(lambda: PREVIEWS.get(req.id) is None, 20, "the gate to forget the decided request")
        review.preview_tool(req.id, {"path": "a.py", "content": "late"}, revision=3)
        assert "no longer be previewed" in (_wait_event(session.events, ToolPreviewReady).error or "")
    finally:
        review.close()
        session.shutdown()


def test_step_mode_spawn_context_comes_from_the_track_branch_not_the_persons_checkout(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "b.py").write_text("B = 'the person's uncommitted edit'\n")  # dirty in the person's checkout
    provider = ScriptedProvider({
        1: demo_reply, 4: demo_reply, 2: [plan(("A", [], "a.py"), ("B", ["A"], "a.py"))],
        (3, "A"): writer("a.py", {1: "A = 'written by ticket A'\n"}), (3, "B"): writer("b.py", {1: "B = 2\n"})})
    cfg = git_cfg(tmp_path, workers=1).updated({"engine": {"step_mode": True}})
    session = Session(cfg, workspace=repo, tracks_dir=tmp_path / "tracks", provider=provider, linger=False)
    session.broker.auto_approve({"plan", "tickets", "tool"})
    (repo / "a.py").write_text("A = 'the person's uncommitted edit'\n")
    prompts: dict[str, str] = {}
    sizes: dict[str, Any] = {}

    def person(req: Any) -> None:
        if req.kind.value == "spawn":
            assert isinstance(req.payload, SpawnPayload)
            prompts[req.prov.ticket_id] = req.payload.prompt
            sizes[req.prov.ticket_id] = (req.payload.context_source, req.payload.context_chars)
            threading.Thread(target=session.broker.resolve, args=(req.id,), kwargs={"approved": True}).start()
    session.broker.on_requested.append(person)
    try:
        (tid,) = session.plan_epic("Two steps").wait(timeout=20)
        session.engines[tid].join(timeout=60)
        assert "A = 1" in prompts["A"], "A starts from the track branch (the committed base)"
        assert "uncommitted" not in prompts["A"] and "uncommitted" not in prompts["B"]
        assert "written by ticket A" in prompts["B"], "B's context holds its dependency's merged work"
        source, chars = sizes["B"]
        assert source.startswith(f"conductor/{tid} at ") and chars == {"a.py": len("a.py") + len(
            "A = 'written by ticket A'\n")}, "the dialog's sizes are the branch's, not the person's files"
    finally:
        session.shutdown()


def test_a_plain_folder_is_offered_git_init_and_never_initialised_unasked(tmp_path: Path) -> None:
    ws = tmp_path / "plain"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "app.py").write_text("print('hi')\n")
    (ws / ".gitignore").write_text("build/\n*.log\n")
    (ws / "build").mkdir()
    (ws / "build" / "out.bin").write_text("generated\n")
    (ws / "debug.log").write_text("noise\n")
    session = Session(Config(), workspace=ws, tracks_dir=tmp_path / "tracks",
                      provider=ScriptedProvider(latency_s=0.001), linger=False)
    session.broker.auto_approve({"plan", "tickets", "spawn", "tool"})
    review = GitReview(session)
    offers: list[tuple[str, str]] = []
    session.offer_git_init = lambda track, why: (offers.append((track, why)), review.offer_init(track, why))[0]
    try:
        (tid,) = session.plan_epic("Greet").wait(timeout=20)
        assert offers and offers[0][0] == tid and tid not in session.engines, "asked first, nothing ran"
        assert not (ws / ".git").exists(), "never initialised without the person"
        offered = _wait_event(session.events, GitInitOffered)
        assert offered.files == 2, "src/app.py and .gitignore: what .gitignore leaves"
        with pytest.raises(AwaitingGitInit):
            session.run_track(tid)
        session.git_init_answered.add(session.workspace)
        review.init_and_run(tid)
        wait_for(lambda: tid in session.engines, 30, "the run after the person's yes")
        track = session.engines[tid].join(60)
        assert track.status == TrackStatus.DONE
        assert sorted(sh_git(ws, "ls-tree", "-r", "--name-only", "HEAD~0").split()) == [".gitignore", "src/app.py"]
        assert sh_git(ws, "rev-parse", f"conductor/{tid}").strip() != sh_git(ws, "rev-parse", "HEAD").strip()
        assert not _errors(session.events.drain(100_000))
    finally:
        review.close()
        session.shutdown()


def test_the_run_summary_counts_the_checks_and_names_the_branch() -> None:
    from conductor.app.run_summary import RunSummaries, RunSummary
    from conductor.events import Provenance, RunFinished
    from conductor.git.results import TrackSummary
    from conductor.git_events import CheckRan
    from conductor.usage import PriceTable, UsageLedger

    prov = Provenance(track_id="t1", ticket_id="T1", tier=4, attempt=1)
    sums = RunSummaries()
    ledger = UsageLedger(PriceTable.for_config(Config()))
    for ran, passed in ((True, False), (True, True), (False, False)):
        assert sums.see(CheckRan(prov=prov, command="pytest -q", ran=ran, passed=passed), ledger) is None
    summary = sums.see(RunFinished(prov=Provenance(track_id="t1"), status="done", counts={"done": 1}), ledger)
    assert summary is not None and (summary.checks_run, summary.checks_passed) == (2, 1)
    assert "Checks run: 2, passed 1" in summary.lines()
    git = TrackSummary("conductor/t1", "a" * 40, "b" * 40, ("t1/T1/a2", "t1/T2/a1"), ("t1/T2/a1",), 3, ("x.py",))
    assert RunSummary.git_lines(git) == [
        "Branch: conductor/t1 — ready for a pull request (nothing was pushed)",
        f"Commits: 3 on the branch since its base {'a' * 12} (1 ticket merge, 1 reverted)",
        "Files changed against the base: 1"]
    assert RunSummary.git_lines(None, "the workspace is not a git repository") == [
        "Git: the workspace is not a git repository"]
