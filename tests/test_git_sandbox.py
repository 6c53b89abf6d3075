"""A worker in an attempt worktree cannot reach the person's checkout or a sibling worktree: not by path, not
through a symlink, not with `git -C ..`, `--git-dir=`, or `cd ..` inside a command."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conductor.errors import SandboxViolation
from conductor.events import Provenance
from conductor.git import AttemptWorktree, GitError, TrackGit
from conductor.messages import ToolCall
from conductor.tools import ToolContext, workspace_toolbox
from conductor.tools.command import RunCommand
from tests.git_support import make_repo, track_git

PROV = Provenance(trace_id="t", track_id="trk", ticket_id="T1", tier=3, attempt=1)


@pytest.fixture()
def rig(tmp_path: Path) -> tuple[Path, TrackGit, AttemptWorktree, AttemptWorktree, ToolContext]:
    repo = make_repo(tmp_path)
    (repo / ".env").write_text("SECRET=person's\n")
    tg = track_git(tmp_path, repo)
    tg.create_track()
    w1, w2 = tg.start_attempt("T1", 1), tg.start_attempt("T2", 1)
    tracks = tmp_path / "tracks"
    tracks.mkdir()
    os.symlink(repo, w1.path / "to-person")
    os.symlink(w2.path, w1.path / "to-sibling")
    ctx = ToolContext(w1.workspace, PROV, protected=tg.forbidden_roots(w1, [tracks]), human_approved=True)
    return repo, tg, w1, w2, ctx


def test_forbidden_roots_name_the_checkout_the_git_folder_and_the_siblings(rig) -> None:  # type: ignore[no-untyped-def]
    repo, tg, w1, w2, ctx = rig
    roots = set(ctx.protected)
    assert {repo.resolve(), (repo / ".git").resolve(), w2.path.resolve()} <= roots
    assert w1.path.resolve() not in roots
    with pytest.raises(GitError, match="must not reach"):
        tg.forbidden_roots(w1, [w1.path.parent])


@pytest.mark.parametrize("path", ["../T2-a1/a.py", "../../../person-repo/a.py", str(Path("/")), "to-person/a.py",
                                  "to-person/.env", "to-sibling/a.py", ".git", "to-person"])
def test_file_tools_refuse_the_person_and_siblings(rig, path: str) -> None:  # type: ignore[no-untyped-def]
    repo, _, w1, _, ctx = rig
    box = workspace_toolbox(w1.workspace)
    read = box.execute(ToolCall("c1", "read_file", {"path": path}), ctx)
    assert not read.ok, read
    write = box.execute(ToolCall("c2", "write_file", {"path": path, "content": "pwned\n"}), ctx)
    assert not write.ok, write
    assert (repo / "a.py").read_text() == "A = 1\n"


@pytest.mark.parametrize("args", [
    {"argv": ["git", "-C", "..", "status"]},
    {"argv": ["git", "-C", "../T2-a1", "log"]},
    {"argv": ["ls", "../T2-a1"]},
    {"argv": ["cat", "to-person/.env"]},
    {"argv": ["cat", "to-sibling/a.py"]},
    {"argv": ["git", "--git-dir=../../../person-repo/.git", "log"]},
    {"argv": ["ls", "/"]},
    {"argv": ["git", "-C", "PERSON", "log"]},
    {"argv": ["cat", "PERSON/a.py"]},
    {"command": "cd .. && ls T2-a1"},
    {"command": "cd ..; cat person-repo/.env"},
    {"command": "ls $PWD/.."},
    {"command": "GIT_DIR=../../../person-repo/.git git log"},
])
def test_commands_that_reach_out_are_refused(rig, args: dict[str, object]) -> None:  # type: ignore[no-untyped-def]
    repo, _, _, _, ctx = rig
    if "argv" in args:
        args = {"argv": [str(a).replace("PERSON", str(repo)) for a in args["argv"]]}  # type: ignore[attr-defined]
    with pytest.raises(SandboxViolation, match="reaches"):
        RunCommand().run(args, ctx)


def test_commands_inside_the_worktree_still_run(rig) -> None:  # type: ignore[no-untyped-def]
    ctx = rig[4]
    out = RunCommand().run({"argv": ["git", "status", "--porcelain"]}, ctx)
    assert out["exit_code"] == 0
    out = RunCommand().run({"argv": ["ls", ".", "/usr"]}, ctx)
    assert out["exit_code"] == 0 and "a.py" in out["output"]
    out = RunCommand().run({"command": "cat a.py && echo ok"}, ctx)
    assert out["exit_code"] == 0 and "A = 1" in out["output"]


@pytest.mark.parametrize("args", [
    {"argv": ["git", "stash"]},
    {"argv": ["git", "stash", "pop"]},
    {"argv": ["git", "-C", ".", "branch", "-f", "main", "HEAD"]},
    {"argv": ["git", "branch", "-D", "conductor/trk"]},
    {"argv": ["git", "update-ref", "refs/heads/main", "HEAD"]},
    {"argv": ["git", "checkout", "main"]},
    {"argv": ["git", "switch", "-c", "mine"]},
    {"argv": ["git", "worktree", "add", "x"]},
    {"argv": ["git", "-c", "x=y", "config", "core.hooksPath", "/tmp"]},
    {"argv": ["/usr/bin/git", "tag", "v1"]},
    {"command": "git add . && git stash"},
])
def test_git_commands_that_change_shared_state_are_refused_in_a_worktree(rig, args: dict[str, object]) -> None:  # type: ignore[no-untyped-def]
    repo, _, _, _, ctx = rig
    stash_before = (repo / ".git" / "refs" / "stash").exists()
    with pytest.raises(SandboxViolation, match="every worktree"):
        RunCommand().run(args, ctx)
    assert (repo / ".git" / "refs" / "stash").exists() == stash_before


@pytest.mark.parametrize("args", [
    {"argv": ["git", "status"]},
    {"argv": ["git", "diff", "HEAD"]},
    {"argv": ["git", "log", "--oneline", "-3"]},
    {"argv": ["git", "branch", "--show-current"]},
    {"argv": ["git", "checkout", "--", "a.py"]},
    {"argv": ["git", "checkout", "HEAD", "--", "a.py"]},
    {"argv": ["git", "add", "a.py"]},
    {"argv": ["git", "restore", "a.py"]},
])
def test_local_git_commands_still_run_in_a_worktree(rig, args: dict[str, object]) -> None:  # type: ignore[no-untyped-def]
    out = RunCommand().run(args, rig[4])
    assert out["exit_code"] == 0, out
