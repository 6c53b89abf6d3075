"""The git layer with real git in tmp folders: tracks, attempts, merges, conflicts, revert, rewind, diffs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from conductor.git import (
    AttemptKey,
    BranchNaming,
    Committed,
    Conflicts,
    GitError,
    HookRejected,
    KeptDirty,
    Merged,
    NeedsMerge,
    NoChanges,
    NotARepository,
    NotMerged,
    Removed,
    Reverted,
    TrackCheckedOut,
    TrackMoved,
    init_repository,
    open_repository,
    parse_worktree_list,
    slug,
)
from tests.git_support import (
    AUTHOR,
    make_person_busy,
    make_repo,
    person_state,
    sh_git,
    track_git,
)


def work(wt_path: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (wt_path / name).parent.mkdir(parents=True, exist_ok=True)
        (wt_path / name).write_text(text)


def run_ticket(tg, ticket: str, files: dict[str, str], attempt: int = 1, model: str = "m") -> Committed:  # type: ignore[no-untyped-def]
    wt = tg.start_attempt(ticket, attempt)
    work(wt.path, files)
    res = tg.commit_attempt(wt, model=model, title=f"work of {ticket}")
    assert isinstance(res, Committed), res
    return res


def first_parent_keys(repo: Path, branch: str) -> list[str]:
    out = sh_git(repo, "log", "--first-parent", "--format=%(trailers:key=Conductor-Merged,valueonly)", branch)
    return [line.strip() for line in out.splitlines() if line.strip()]


def test_the_persons_checkout_branch_index_and_stash_are_never_touched(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    make_person_busy(repo)
    before = person_state(repo)
    tg = track_git(tmp_path, repo)
    track = tg.create_track()
    for t, f in (("T1", "a.py"), ("T2", "b.py")):
        c = run_ticket(tg, t, {f: f"# {t}\n"})
        assert isinstance(tg.merge_attempt(t, 1), Merged)
        assert c.files == (f,)
    wt = tg.start_attempt("T3", 1)
    work(wt.path, {"shared.py": "conflict me\n"})
    tg.commit_attempt(wt, model="m")
    tg.changes_so_far(track)
    assert isinstance(tg.revert_ticket("T1"), Reverted)
    tg.rewind("T2", 1, 2)
    assert isinstance(tg.remove_attempt(wt), Removed)
    assert person_state(repo) == before
    assert (repo / "a.py").read_text() == "A = 'staged by the person'\n"


def test_track_branch_from_a_chosen_base_with_a_configured_name(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    first = sh_git(repo, "rev-parse", "HEAD").strip()
    (repo / "later.txt").write_text("x")
    sh_git(repo, "add", "later.txt")
    sh_git(repo, "commit", "-qm", "later")
    tg = track_git(tmp_path, repo, track="Add OAuth", naming=BranchNaming(track="ai/{track}",
                                                                         ticket="ai-work/{track}/{ticket}"))
    track = tg.create_track(first)
    assert track.branch.startswith("ai/Add-OAuth-") and track.base_sha == first and track.created
    again = tg.create_track(first)
    assert not again.created and again.base_sha == first
    wt = tg.start_attempt("T1", 1)
    assert wt.branch.startswith("ai-work/Add-OAuth-") and not (wt.path / "later.txt").exists()
    with pytest.raises(GitError, match="names no commit"):
        track_git(tmp_path, repo, track="other").create_track("nope")


def test_nested_branch_templates_are_refused_up_front() -> None:
    with pytest.raises(ValueError, match="refs are files"):
        BranchNaming(track="conductor/{track}", ticket="conductor/{track}/{ticket}")
    assert slug("T1") == "T1" and slug("a b") != slug("a/b") and "/" not in slug("../../etc")
    assert slug("x.lock").endswith(tuple("0123456789abcdef")) and ".." not in slug("a..b")


def test_parallel_tickets_on_different_files_merge_cleanly_in_dag_order(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tg = track_git(tmp_path, repo)
    tg.create_track()
    # T1 and T2 run in parallel from the same tip; T3 depends on both and starts after they merged
    w1, w2 = tg.start_attempt("T1", 1), tg.start_attempt("T2", 1)
    assert w1.base_sha == w2.base_sha
    work(w1.path, {"a.py": "A = 'T1'\n"})
    work(w2.path, {"b.py": "B = 'T2'\n", "new/module.py": "X = 1\n"})
    c2 = tg.commit_attempt(w2, model="m")
    c1 = tg.commit_attempt(w1, model="m")
    assert isinstance(c1, Committed) and isinstance(c2, Committed)
    m2 = tg.merge_attempt("T2", 1)  # in the order they pass QA
    m1 = tg.merge_attempt("T1", 1)
    assert isinstance(m1, Merged) and isinstance(m2, Merged)
    w3 = tg.start_attempt("T3", 1)
    assert w3.base_sha == m1.commit
    work(w3.path, {"README.md": (w3.path / "README.md").read_text() + (w3.path / "new/module.py").read_text()})
    tg.commit_attempt(w3, model="m")
    assert isinstance(tg.merge_attempt("T3", 1), Merged)
    assert first_parent_keys(repo, tg.branch) == ["trk/T3/a1", "trk/T1/a1", "trk/T2/a1"]
    show = sh_git(repo, "show", f"{tg.branch}:README.md")
    assert show == "hello\nX = 1\n"
    assert sh_git(repo, "show", f"{tg.branch}:a.py") == "A = 'T1'\n"


def test_two_tickets_on_the_same_lines_end_in_needs_merge_then_are_resolved(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tg = track_git(tmp_path, repo)
    tg.create_track()
    w1, w2 = tg.start_attempt("T1", 1), tg.start_attempt("T2", 1)
    work(w1.path, {"shared.py": "line 1\nT1 was here\n", "a.py": "A = 1  # T1\n"})
    work(w2.path, {"shared.py": "line 1\nT2 was here\n", "b.py": "B = 2\n"})
    c1, c2 = tg.commit_attempt(w1, model="m"), tg.commit_attempt(w2, model="m")
    assert isinstance(c2, Committed)
    assert isinstance(tg.merge_attempt("T1", 1), Merged)
    tip = sh_git(repo, "rev-parse", tg.branch).strip()
    check = tg.check_merge(c2.sha)
    assert isinstance(check, Conflicts) and check.files == ("shared.py",)
    res = tg.merge_attempt("T2", 1)
    assert isinstance(res, NeedsMerge) and res.files == ("shared.py",) and res.ticket_commit == c2.sha
    assert sh_git(repo, "rev-parse", tg.branch).strip() == tip  # nothing written
    # a resolve attempt in a new worktree started from the conflicting commit
    w3 = tg.start_attempt("T2", 2, start_point=c2.sha)
    resolution = tg.begin_resolution(w3)
    assert resolution.files == ("shared.py",)
    assert "<<<<<<<" in (w3.path / "shared.py").read_text()
    work(w3.path, {"shared.py": "line 1\nT1 was here\nT2 was here\n"})
    resolved = tg.commit_attempt(w3, model="resolver")
    assert isinstance(resolved, Committed)
    assert len(sh_git(repo, "rev-list", "--parents", "-n1", resolved.sha).split()) == 3  # a merge commit
    merged = tg.merge_attempt("T2", 2)
    assert isinstance(merged, Merged)
    assert sh_git(repo, "show", f"{tg.branch}:shared.py") == "line 1\nT1 was here\nT2 was here\n"
    assert sh_git(repo, "show", f"{tg.branch}:b.py") == "B = 2\n"
    assert isinstance(c1, Committed)


def test_a_dependents_worktree_holds_its_dependencies_commits_and_nothing_else(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tg = track_git(tmp_path, repo)
    track = tg.create_track()
    w1, w2 = tg.start_attempt("T1", 1), tg.start_attempt("T2", 1)
    work(w1.path, {"dep.py": "from T1\n"})
    work(w2.path, {"inflight.py": "from T2, not merged yet\n"})
    c1 = tg.commit_attempt(w1, model="m")
    c2 = tg.commit_attempt(w2, model="m")
    assert isinstance(c1, Committed) and isinstance(c2, Committed)
    assert isinstance(tg.merge_attempt("T1", 1), Merged)
    w3 = tg.start_attempt("T3", 1)  # depends on T1 only; T2 is still in flight
    assert (w3.path / "dep.py").read_text() == "from T1\n"
    assert not (w3.path / "inflight.py").exists()
    history = sh_git(w3.path, "rev-list", f"{track.base_sha}..HEAD").split()
    assert c1.sha in history and c2.sha not in history and len(history) == 2  # T1's commit + its merge


def test_revert_restores_the_branch_to_before_the_ticket(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tg = track_git(tmp_path, repo)
    tg.create_track()
    run_ticket(tg, "T1", {"a.py": "A = 'T1'\n"})
    tg.merge_attempt("T1", 1)
    before_t2 = sh_git(repo, "rev-parse", f"{tg.branch}^{{tree}}").strip()
    run_ticket(tg, "T2", {"b.py": "B = 'T2'\n", "t2_new.py": "new\n"})
    tg.merge_attempt("T2", 1)
    rev = tg.revert_ticket("T2")
    assert isinstance(rev, Reverted) and not rev.already
    assert sh_git(repo, "rev-parse", f"{tg.branch}^{{tree}}").strip() == before_t2
    assert isinstance(tg.revert_ticket("T2"), Reverted) and tg.revert_ticket("T2").already  # type: ignore[union-attr]
    # reverting an earlier ticket under later, independent ones keeps the later work
    run_ticket(tg, "T3", {"README.md": "T3\n"})
    tg.merge_attempt("T3", 1)
    assert isinstance(tg.revert_ticket("T1"), Reverted)
    assert sh_git(repo, "show", f"{tg.branch}:a.py") == "A = 1\n"
    assert sh_git(repo, "show", f"{tg.branch}:README.md") == "T3\n"
    with pytest.raises(NotMerged, match="T9"):
        tg.revert_ticket("T9")


def test_revert_under_a_later_change_of_the_same_lines_reports_the_files(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tg = track_git(tmp_path, repo)
    tg.create_track()
    run_ticket(tg, "T1", {"a.py": "A = 'T1'\n"})
    tg.merge_attempt("T1", 1)
    run_ticket(tg, "T2", {"a.py": "A = 'T2 on top of T1'\n"})
    tg.merge_attempt("T2", 1)
    tip = sh_git(repo, "rev-parse", tg.branch)
    res = tg.revert_ticket("T1")
    assert res.kind == "revert_conflicts" and res.files == ("a.py",)  # type: ignore[union-attr]
    assert sh_git(repo, "rev-parse", tg.branch) == tip


def test_rewind_to_an_earlier_attempts_commit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tg = track_git(tmp_path, repo)
    tg.create_track()
    a1 = run_ticket(tg, "T1", {"a.py": "A = 'attempt 1'\n"}, attempt=1)
    a2 = run_ticket(tg, "T1", {"a.py": "A = 'attempt 2'\n"}, attempt=2)
    assert tg.attempt_commit("T1", 1) == a1.sha and tg.attempt_commit("T1", 2) == a2.sha
    back = tg.rewind("T1", 1, 3)
    assert back.commit == a1.sha and (back.worktree.path / "a.py").read_text() == "A = 'attempt 1'\n"
    assert isinstance(tg.merge_attempt("T1", 3, back.commit), Merged)
    assert sh_git(repo, "show", f"{tg.branch}:a.py") == "A = 'attempt 1'\n"
    assert tg.attempt_commit("T1", 2) == a2.sha  # the later attempt is kept
    with pytest.raises(NotMerged):
        tg.rewind("T1", 7, 8)


def test_one_commit_per_attempt_message_author_and_no_empty_commit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tg = track_git(tmp_path, repo, track="auth")
    tg.create_track()
    wt = tg.start_attempt("T7", 2)
    assert isinstance(tg.commit_attempt(wt, model="gemini-x"), NoChanges)
    assert sh_git(wt.path, "rev-parse", "HEAD").strip() == wt.base_sha  # no empty commit
    # the worker committed twice on its own: they fold into the attempt's one commit
    work(wt.path, {"x.txt": "1\n"})
    sh_git(wt.path, "add", "x.txt")
    sh_git(wt.path, "commit", "-qm", "worker commit 1")
    work(wt.path, {"y.txt": "2\n"})
    sh_git(wt.path, "add", "y.txt")
    sh_git(wt.path, "commit", "-qm", "worker commit 2")
    work(wt.path, {"z.txt": "uncommitted\n"})
    res = tg.commit_attempt(wt, model="gemini-x", title="add x y z")
    assert isinstance(res, Committed) and sorted(res.files) == ["x.txt", "y.txt", "z.txt"]
    assert sh_git(wt.path, "rev-list", "--count", f"{wt.base_sha}..HEAD").strip() == "1"
    msg = sh_git(wt.path, "log", "-1", "--format=%an <%ae>%n%B")
    assert msg.startswith(f"{AUTHOR.name} <{AUTHOR.email}>\nT7: add x y z")
    for part in ("Track: auth", "Ticket: T7", "Attempt: 2", "Model: gemini-x", "Conductor-Key: auth/T7/a2"):
        assert part in msg
    empty = tg.start_attempt("T8", 1)
    forced = tg.commit_attempt(empty, model="m", allow_empty=True)
    assert isinstance(forced, Committed) and forced.files == ()


def test_commit_hooks_run_and_a_rejecting_hook_is_a_result(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho ran >> \"$(git rev-parse --git-common-dir)/hook-ran\"\n"
                    "if [ -e reject-me ]; then echo 'hook says: lint failed' >&2; exit 1; fi\n")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    tg = track_git(tmp_path, repo)
    tg.create_track()
    wt = tg.start_attempt("T1", 1)
    work(wt.path, {"reject-me": "x\n"})
    res = tg.commit_attempt(wt, model="m")
    assert isinstance(res, HookRejected) and "lint failed" in res.output
    (wt.path / "reject-me").unlink()
    work(wt.path, {"ok.txt": "fine\n"})
    assert isinstance(tg.commit_attempt(wt, model="m"), Committed)
    assert (repo / ".git" / "hook-ran").read_text().count("ran") == 2


def test_squash_strategy_writes_one_parent(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tg = track_git(tmp_path, repo, merge_strategy="squash")
    tg.create_track()
    c = run_ticket(tg, "T1", {"a.py": "A = 5\n"})
    m = tg.merge_attempt("T1", 1)
    assert isinstance(m, Merged)
    parents = sh_git(repo, "rev-list", "--parents", "-n1", m.commit).split()[1:]
    assert len(parents) == 1 and c.sha not in parents
    assert tg.merge_attempt("T1", 1).already  # type: ignore[union-attr]
    assert sh_git(repo, "log", "-1", "--format=%s", tg.branch).startswith("Squash-merge ticket T1")


def test_a_concurrent_move_of_the_track_branch_fails_instead_of_clobbering(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path)
    tg = track_git(tmp_path, repo)
    tg.create_track()
    run_ticket(tg, "T1", {"a.py": "A = 9\n"})
    real_check = tg.check_merge
    intruder = {}

    def check_then_someone_commits(commit: str, onto: str | None = None):  # type: ignore[no-untyped-def]
        out = real_check(commit, onto)
        tree = sh_git(repo, "rev-parse", f"{tg.branch}^{{tree}}").strip()
        new = sh_git(repo, "commit-tree", tree, "-p", tg.branch, "-m", "someone else").strip()
        sh_git(repo, "update-ref", f"refs/heads/{tg.branch}", new)
        intruder["sha"] = new
        return out

    monkeypatch.setattr(tg, "check_merge", check_then_someone_commits)
    res = tg.merge_attempt("T1", 1)
    assert isinstance(res, TrackMoved) and res.actual == intruder["sha"]
    assert sh_git(repo, "rev-parse", tg.branch).strip() == intruder["sha"]


def test_a_track_branch_checked_out_by_the_person_is_not_moved(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tg = track_git(tmp_path, repo)
    tg.create_track()
    run_ticket(tg, "T1", {"a.py": "A = 3\n"})
    sh_git(repo, "checkout", "-q", tg.branch)
    with pytest.raises(TrackCheckedOut, match="checked out at"):
        tg.merge_attempt("T1", 1)


def test_one_branch_cannot_be_in_two_worktrees(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tg = track_git(tmp_path, repo)
    tg.create_track()
    wt = tg.start_attempt("T1", 1)
    again = tg.start_attempt("T1", 1)
    assert again.resumed and again.path == wt.path and again.base_sha == wt.base_sha
    assert isinstance(tg.remove_attempt(wt), Removed)
    sh_git(repo, "worktree", "add", "-q", str(tmp_path / "person-wt"), wt.branch)  # the person took it
    with pytest.raises(GitError, match="already checked out at"):
        tg.start_attempt("T1", 1)


def test_remove_keeps_a_dirty_worktree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tg = track_git(tmp_path, repo)
    tg.create_track()
    wt = tg.start_attempt("T1", 1)
    work(wt.path, {"unsaved.txt": "work nobody committed\n"})
    res = tg.remove_attempt(wt)
    assert isinstance(res, KeptDirty) and res.changes == ("unsaved.txt",) and wt.path.is_dir()
    assert isinstance(tg.remove_attempt(wt, force=True), Removed) and not wt.path.exists()
    assert sh_git(repo, "rev-parse", "--verify", wt.branch)  # the branch stays


def test_worktrees_root_inside_the_repository_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    from conductor.git import GitSettings, TrackGit
    with pytest.raises(GitError, match="must be outside the repository"):
        TrackGit(open_repository(repo), "t", GitSettings(worktrees_root=repo / "wts", author=AUTHOR))


def test_not_a_repository_offers_init_and_init_commits_what_is_there(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "main.py").write_text("print('hi')\n")
    with pytest.raises(NotARepository) as info:
        open_repository(folder)
    assert info.value.can_init and "not a git repository" in str(info.value)
    with pytest.raises(NotARepository) as missing:
        open_repository(tmp_path / "nowhere")
    assert not missing.value.can_init
    repo = init_repository(folder, identity=AUTHOR)
    assert repo.rev("HEAD") is not None
    assert sh_git(folder, "ls-files").split() == ["main.py"]
    with pytest.raises(GitError, match="already inside a git repository"):
        init_repository(folder)
    empty = tmp_path / "unborn"
    empty.mkdir()
    sh_git(empty, "init", "-q")
    with pytest.raises(NotARepository, match="no commit yet"):
        open_repository(empty)


def test_inherited_git_variables_do_not_redirect_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path)
    decoy = make_repo(tmp_path / "decoy")
    monkeypatch.setenv("GIT_DIR", str(decoy / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(tmp_path / "bogus-index"))
    monkeypatch.setenv("GIT_WORK_TREE", str(decoy))
    tg = track_git(tmp_path, repo)
    tg.create_track()
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_INDEX_FILE")
    monkeypatch.delenv("GIT_WORK_TREE")
    assert sh_git(repo, "branch", "--list", "conductor/*").strip() == "conductor/trk"
    assert sh_git(decoy, "branch", "--list", "conductor/*").strip() == ""


def test_git_errors_name_the_command_and_what_git_said(tmp_path: Path) -> None:
    repo = open_repository(make_repo(tmp_path))
    with pytest.raises(GitError) as info:
        repo.run("rev-parse", "--verify", "no-such-thing")
    err = info.value
    assert err.command == ("rev-parse", "--verify", "no-such-thing") and err.returncode == 128
    assert "git rev-parse --verify no-such-thing failed" in str(err) and "Needed a single revision" in str(err)


def test_diff_views_per_file_with_hunks(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"keep.txt": "".join(f"{i}\n" for i in range(1, 30)), "gone.txt": "bye\n",
                                "old name.txt": "same content that is long enough to be detected\n" * 3})
    tg = track_git(tmp_path, repo)
    track = tg.create_track()
    wt = tg.start_attempt("T1", 1)
    lines = (wt.path / "keep.txt").read_text().splitlines(keepends=True)
    lines[2], lines[24] = "three\n", ""
    text = "".join(lines)
    work(wt.path, {"keep.txt": text, "ünïcode name.py": "x = 1\n", "bin.dat": ""})
    (wt.path / "bin.dat").write_bytes(b"\x00\x01\x02binary")
    (wt.path / "gone.txt").unlink()
    os.rename(wt.path / "old name.txt", wt.path / "new name.txt")
    c = tg.commit_attempt(wt, model="m")
    assert isinstance(c, Committed)
    d = tg.ticket_diff(c.sha)
    byname = {f.path: f for f in d.files}
    assert set(byname) == {"keep.txt", "ünïcode name.py", "bin.dat", "gone.txt", "new name.txt"}
    keep = byname["keep.txt"]
    assert keep.status == "modified" and len(keep.hunks) == 2 and keep.added == 1 and keep.deleted == 2
    first = keep.hunks[0]
    assert [(ln.kind, ln.text) for ln in first.lines if ln.kind != "context"] == [("delete", "3"), ("add", "three")]
    assert byname["bin.dat"].binary and byname["bin.dat"].status == "added"
    assert byname["gone.txt"].status == "deleted"
    assert byname["new name.txt"].status == "renamed" and byname["new name.txt"].old_path == "old name.txt"
    tg.merge_attempt("T1", 1)
    so_far = tg.changes_so_far(track)
    assert set(so_far.paths) == set(byname)


def test_worktree_list_parsing() -> None:
    raw = (b"worktree /r\0HEAD " + b"a" * 40 + b"\0branch refs/heads/main\0\0"
           b"worktree /w/x y\0HEAD " + b"b" * 40 + b"\0detached\0locked conductor attempt k base c\0\0"
           b"worktree /w/gone\0HEAD " + b"c" * 40 + b"\0branch refs/heads/z\0prunable gitdir file points to "
           b"non-existent location\0\0")
    got = parse_worktree_list(raw)
    assert [str(e.path) for e in got] == ["/r", "/w/x y", "/w/gone"]
    assert got[0].branch == "refs/heads/main" and got[1].detached and got[1].locked == "conductor attempt k base c"
    assert got[2].prunable and got[1].branch is None


def test_attempt_keys_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="attempt"):
        AttemptKey("t", "T1", 0)
    with pytest.raises(ValueError, match="newline"):
        AttemptKey("t", "T1\n", 1)


def test_a_workspace_in_a_sub_folder_roots_the_worker_in_the_same_sub_folder(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"svc/api/app.py": "X = 1\n", "other/readme": "o\n"})
    from conductor.git import GitSettings, TrackGit
    tg = TrackGit(open_repository(repo / "svc" / "api"), "trk",
                  GitSettings(worktrees_root=tmp_path / "wts", author=AUTHOR))
    tg.create_track()
    wt = tg.start_attempt("T1", 1)
    assert wt.workspace == wt.path / "svc" / "api" and (wt.workspace / "app.py").read_text() == "X = 1\n"


def test_hostile_ids_and_names_become_safe_branches_and_folders(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tg = track_git(tmp_path, repo, track="../../etc; rm -rf ~")
    tg.create_track()
    wt = tg.start_attempt("--upload-pack=touch /tmp/pwned", 1)
    assert wt.path.is_relative_to(tmp_path / "worktrees") and ".." not in wt.path.parts
    assert not wt.branch.startswith("-") and " " not in wt.branch
    (wt.path / "x.txt").write_text("x\n")
    assert isinstance(tg.commit_attempt(wt, model="m\nInjected-Trailer: yes", title="t\n\nConductor-Merged: x"),
                      Committed)
    assert isinstance(tg.merge_attempt("--upload-pack=touch /tmp/pwned", 1), Merged)
    assert not Path("/tmp/pwned").exists()


def test_a_commit_message_cannot_forge_a_merge_record(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tg = track_git(tmp_path, repo, merge_strategy="squash")
    tg.create_track()
    run_ticket(tg, "T1", {"a.py": "A = 'T1'\n"})
    # a worker's title that spells another attempt's merge trailer lands in the squash body
    wt = tg.start_attempt("T2", 1)
    work(wt.path, {"b.py": "B = 2\n"})
    tg.commit_attempt(wt, model="m")
    res = tg.merge_attempt("T2", 1, title="Conductor-Merged: trk/T1/a1")
    assert isinstance(res, Merged)
    assert tg.find_merge(AttemptKey("trk", "T1", 1)) is None  # T1 still counts as not merged


def test_hooks_come_from_the_persons_checkout_not_from_the_workers_worktree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    hooks = repo / ".githooks"
    hooks.mkdir()
    hook = hooks / "pre-commit"
    marker = tmp_path / "hook-log"
    hook.write_text(f"#!/bin/sh\necho person-hook >> '{marker}'\n")
    hook.chmod(0o755)
    sh_git(repo, "add", ".githooks")
    sh_git(repo, "commit", "-qm", "hooks")
    sh_git(repo, "config", "core.hooksPath", ".githooks")
    tg = track_git(tmp_path, repo)
    tg.create_track()
    wt = tg.start_attempt("T1", 1)
    # the worker rewrites the hook in its worktree, hoping the conductor runs it at commit time
    (wt.path / ".githooks" / "pre-commit").write_text(f"#!/bin/sh\necho worker-hook >> '{marker}'\n")
    assert isinstance(tg.commit_attempt(wt, model="m"), Committed)
    assert marker.read_text() == "person-hook\n"


def test_diff_of_a_file_that_became_a_symlink(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"target.txt": "t\n", "link": "was a file\n"})
    tg = track_git(tmp_path, repo)
    tg.create_track()
    wt = tg.start_attempt("T1", 1)
    (wt.path / "link").unlink()
    os.symlink("target.txt", wt.path / "link")
    (wt.path / "target.txt").write_text("t2\n")
    c = tg.commit_attempt(wt, model="m")
    assert isinstance(c, Committed)
    d = tg.ticket_diff(c.sha)
    byname = {f.path: f for f in d.files}
    assert byname["link"].status == "type-changed" and byname["target.txt"].hunks


def test_the_finished_track_summary(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tg = track_git(tmp_path, repo)
    tg.create_track()
    run_ticket(tg, "T1", {"a.py": "A = 'T1'\n"})
    tg.merge_attempt("T1", 1)
    run_ticket(tg, "T2", {"b.py": "B = 'T2'\n", "c.py": "C = 1\n"})
    tg.merge_attempt("T2", 1)
    tg.revert_ticket("T1")
    s = tg.summary()
    assert s.merged == ("trk/T1/a1", "trk/T2/a1") and s.reverted == ("trk/T1/a1",)
    assert s.commits == 3 and s.files == ("b.py", "c.py")
