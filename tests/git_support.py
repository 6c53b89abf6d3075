"""Real git repositories in tmp folders for the git-layer tests."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from conductor.git import GitSettings, Identity, TrackGit, open_repository
from conductor.git.runner import git_env

AUTHOR = Identity("Test Person", "person@example.com")


def sh_git(cwd: Path, *args: str, stdin: str | None = None) -> str:
    """Plain git for test setup and checks (the same scrubbed environment, an identity of its own)."""
    proc = subprocess.run(["git", "-c", "user.name=Person", "-c", "user.email=p@example.com",
                           "-c", "init.defaultBranch=main", *args],
                          cwd=cwd, env=git_env(), capture_output=True, text=True, input=stdin, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def make_repo(root: Path, files: dict[str, str] | None = None) -> Path:
    repo = root / "person-repo"
    repo.mkdir(parents=True)
    sh_git(repo, "init", "-q")
    for name, text in (files or {"README.md": "hello\n", "a.py": "A = 1\n", "b.py": "B = 1\n",
                                 "shared.py": "\n".join(f"line {i}" for i in range(1, 11)) + "\n"}).items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    sh_git(repo, "add", "-A")
    sh_git(repo, "commit", "-q", "-m", "initial")
    return repo


@dataclass(frozen=True)
class PersonState:
    head: str
    symbolic: str
    status: str
    stash: str
    index_tree: str


def person_state(repo: Path) -> PersonState:
    return PersonState(sh_git(repo, "rev-parse", "HEAD"), sh_git(repo, "symbolic-ref", "-q", "HEAD"),
                       sh_git(repo, "status", "--porcelain=v1", "--untracked-files=all"),
                       sh_git(repo, "stash", "list"), sh_git(repo, "write-tree"))


def make_person_busy(repo: Path) -> None:
    """The person is mid-work: a stash entry, a staged change, an unstaged change and an untracked file."""
    (repo / "README.md").write_text("stashed edit\n")
    sh_git(repo, "stash", "push", "-q", "-m", "person's stash")
    (repo / "a.py").write_text("A = 'staged by the person'\n")
    sh_git(repo, "add", "a.py")
    (repo / "b.py").write_text("B = 'unstaged edit'\n")
    (repo / "notes.txt").write_text("untracked\n")


def track_git(tmp: Path, repo: Path, track: str = "trk", **kw: object) -> TrackGit:
    settings = GitSettings(worktrees_root=tmp / "worktrees", author=AUTHOR, **kw)  # type: ignore[arg-type]
    return TrackGit(open_repository(repo), track, settings)
