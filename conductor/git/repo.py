"""The person's repository as the conductor sees it: where it is, its HEAD, its refs and its worktrees.

Opening a folder that is not a repository raises `NotARepository` with `can_init` telling the caller whether
it may offer `init_repository` (asked first: the conductor never creates a repository on its own).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from conductor.git.runner import Git, GitError, Identity

ZERO_SHA = "0" * 40
FALLBACK_IDENTITY = Identity("Conductor", "conductor@localhost")


class NotARepository(GitError):
    """The workspace is not inside a git work tree (or has no commit yet to branch from)."""

    def __init__(self, message: str, *, path: Path, can_init: bool) -> None:
        super().__init__(message, cwd=path)
        self.path = path
        self.can_init = can_init


@dataclass(frozen=True)
class WorktreeEntry:
    """One block of `git worktree list --porcelain -z`."""

    path: Path
    head: str | None
    branch: str | None
    """Full ref name (refs/heads/...) or None when detached or bare."""
    bare: bool = False
    detached: bool = False
    locked: str | None = None
    """The lock reason ('' when locked without one); None when not locked."""
    prunable: str | None = None


def parse_worktree_list(raw: bytes) -> list[WorktreeEntry]:
    """Parse `git worktree list --porcelain -z`: attribute records separated by NUL, blocks by an empty one."""
    entries: list[WorktreeEntry] = []
    block: dict[str, str] = {}
    for field in raw.decode("utf-8", errors="surrogateescape").split("\0"):
        if field == "":
            if block:
                entries.append(_entry(block))
                block = {}
            continue
        key, _, value = field.partition(" ")
        block[key] = value
    if block:
        entries.append(_entry(block))
    return entries


def _entry(block: dict[str, str]) -> WorktreeEntry:
    if "worktree" not in block:
        raise GitError(f"git worktree list gave a block without a path: {block!r}")
    return WorktreeEntry(path=Path(block["worktree"]), head=block.get("HEAD"), branch=block.get("branch"),
                         bare="bare" in block, detached="detached" in block, locked=block.get("locked"),
                         prunable=block.get("prunable"))


_WORKTREE_LOCKS: dict[str, threading.RLock] = {}
_WORKTREE_LOCKS_GUARD = threading.Lock()


def worktree_lock(common_dir: Path) -> threading.RLock:
    """The lock every `git worktree` command on one repository runs under, in this process. git reads every
    worktree's admin folder (`.git/worktrees/<id>/commondir`, gitdir, HEAD) in `worktree add` and `worktree list`,
    and fails ("failed to read .git/worktrees/<id>/commondir") on one another thread's `worktree add` is half way
    through making: several attempts starting at once on one repository raced there. Keyed by the shared .git
    folder, so every Repository object (one per track) of one repository shares it."""
    key = os.path.realpath(common_dir)
    with _WORKTREE_LOCKS_GUARD:
        return _WORKTREE_LOCKS.setdefault(key, threading.RLock())


class Repository:
    """A non-bare repository with at least one commit. Use `open_repository` to get one."""

    def __init__(self, git: Git, toplevel: Path, common_dir: Path, prefix: str) -> None:
        self.git = git
        self.toplevel = toplevel
        """The person's checkout (the main worktree, or the linked worktree the workspace is in)."""
        self.common_dir = common_dir
        """The .git folder shared by every worktree: objects, refs, worktree admin folders."""
        self.prefix = prefix
        """Where the workspace sits inside the repository ('' at the top, else 'sub/dir/')."""
        self.worktree_lock = worktree_lock(common_dir)
        """Held around every `git worktree` command (and a branch switch in a worktree, which reads them too)."""

    def run(self, *args: str, ok: tuple[int, ...] = (0,), stdin: bytes | None = None,
            env: dict[str, str] | None = None) -> str:
        if args and args[0] == "worktree":
            with self.worktree_lock:
                return self.git.run(self.toplevel, *args, ok=ok, stdin=stdin, env=env).text
        return self.git.run(self.toplevel, *args, ok=ok, stdin=stdin, env=env).text

    def rev(self, ref: str) -> str | None:
        """The commit `ref` names, or None when it names none."""
        res = self.git.run(self.toplevel, "rev-parse", "--verify", "--quiet", "--end-of-options",
                           f"{ref}^{{commit}}", ok=(0, 1))
        return res.line if res.returncode == 0 and res.line else None

    def branch_sha(self, branch: str) -> str | None:
        return self.rev(f"refs/heads/{branch}")

    def tree_of(self, commit: str) -> str:
        return self.git.run(self.toplevel, "rev-parse", "--verify", f"{commit}^{{tree}}").line

    def is_ancestor(self, older: str, newer: str) -> bool:
        return self.git.run(self.toplevel, "merge-base", "--is-ancestor", older, newer, ok=(0, 1)).returncode == 0

    def update_ref(self, branch: str, new: str, old: str | None, why: str) -> bool:
        """Move refs/heads/<branch> from `old` (None: it must not exist yet) to `new`, atomically.

        Returns False when the ref is not at `old` (someone moved it, or created it): nothing is changed then.
        This compare-and-swap is what makes a kill -9 leave a branch either before or after a step."""
        res = self.git.run(self.toplevel, "update-ref", "-m", f"conductor: {why}", f"refs/heads/{branch}",
                           new, old or ZERO_SHA, ok=(0, 1, 128))
        if res.returncode == 0:
            return True
        if "cannot lock ref" in res.stderr and ("is at" in res.stderr or "reference already exists" in res.stderr
                                                or "unable to resolve reference" in res.stderr
                                                or "but expected" in res.stderr):
            return False
        raise GitError(f"git update-ref refs/heads/{branch} failed: {res.stderr}", args=res.args,
                       cwd=self.toplevel, returncode=res.returncode, stderr=res.stderr)

    def worktrees(self) -> list[WorktreeEntry]:
        with self.worktree_lock:
            out = self.git.run(self.toplevel, "worktree", "list", "--porcelain", "-z").stdout
        return parse_worktree_list(out)

    def checked_out_at(self, branch: str) -> Path | None:
        """The worktree (the person's checkout included) that has `branch` checked out, if any."""
        for wt in self.worktrees():
            if wt.branch == f"refs/heads/{branch}":
                return wt.path
        return None

    def identity_configured(self) -> bool:
        return self.git.run(self.toplevel, "var", "GIT_COMMITTER_IDENT", ok=(0, 128)).returncode == 0

    def status_porcelain(self, where: Path | None = None) -> str:
        return self.git.run(where or self.toplevel, "status", "--porcelain=v1", "-z", "--untracked-files=all").text


def open_repository(path: Path | str, git: Git | None = None) -> Repository:
    """The repository that holds the folder `path`; NotARepository (with can_init) when there is none."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise NotARepository(f"the workspace {str(folder)!r} is not a folder", path=folder, can_init=False)
    folder = folder.resolve()
    git = git or Git()
    res = git.run(folder, "rev-parse", "--is-bare-repository", "--is-inside-work-tree", "--show-toplevel",
                  "--git-common-dir", "--show-prefix", ok=(0, 128))
    if res.returncode != 0:
        if "not a git repository" in res.stderr:
            raise NotARepository(f"the workspace {str(folder)!r} is not a git repository; Conductor can "
                                 "initialise one (git init) if you agree, or run one worker at a time in it",
                                 path=folder, can_init=True)
        raise GitError(f"cannot read the repository at {str(folder)!r}: {res.stderr}", args=res.args, cwd=folder,
                       returncode=res.returncode, stderr=res.stderr)
    lines = res.text.split("\n")
    if lines[0] == "true" or lines[1] != "true":
        raise NotARepository(f"{str(folder)!r} is inside a bare repository or a .git folder, not a work tree",
                             path=folder, can_init=False)
    toplevel = Path(lines[2]).resolve()
    common = Path(lines[3])
    common = (common if common.is_absolute() else folder / common).resolve()
    repo = Repository(git, toplevel, common, lines[4] if len(lines) > 4 else "")
    if repo.rev("HEAD") is None:
        raise NotARepository(f"the repository at {str(toplevel)!r} has no commit yet: commit something first, so "
                             "tracks have a base to branch from", path=toplevel, can_init=False)
    return repo


def init_repository(path: Path | str, *, identity: Identity | None = None, git: Git | None = None,
                    message: str = "Initial commit (by Conductor, at your request)") -> Repository:
    """`git init` the folder and commit what it holds, so tracks have a base. Call only after the person
    agreed. Refuses a folder that is already inside a repository."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise NotARepository(f"{str(folder)!r} is not a folder", path=folder, can_init=False)
    git = git or Git()
    probe = git.run(folder, "rev-parse", "--is-inside-work-tree", ok=(0, 128))
    if probe.returncode == 0:
        raise GitError(f"{str(folder)!r} is already inside a git repository; nothing to initialise", cwd=folder)
    git.run(folder, "init", "--quiet")
    ident = identity or FALLBACK_IDENTITY
    env = {"GIT_AUTHOR_NAME": ident.name, "GIT_AUTHOR_EMAIL": ident.email,
           "GIT_COMMITTER_NAME": ident.name, "GIT_COMMITTER_EMAIL": ident.email}
    git.run(folder, "add", "--all")
    git.run(folder, "commit", "--quiet", "--allow-empty", "--no-verify", "-m", message,
            env=env if identity is not None or not _has_identity(git, folder) else None)
    return open_repository(folder, git)


def files_to_commit(path: Path | str, git: Git | None = None) -> list[str]:
    """The files `init_repository` would commit in a folder that is no repository yet: what `git add --all`
    takes, .gitignore honoured. Read-only: git looks at the folder through a throwaway repository elsewhere."""
    import tempfile
    folder = Path(path).expanduser().resolve()
    git = git or Git()
    with tempfile.TemporaryDirectory(prefix="conductor-probe-") as tmp:
        git.run(Path(tmp), "init", "--quiet", "--bare", tmp)
        out = git.run(folder, f"--git-dir={tmp}", f"--work-tree={folder}", "ls-files", "--others",
                      "--exclude-standard", "-z").stdout.decode("utf-8", errors="surrogateescape")
    return [p for p in out.split("\0") if p]


def _has_identity(git: Git, folder: Path) -> bool:
    return git.run(folder, "var", "GIT_COMMITTER_IDENT", ok=(0, 128)).returncode == 0


def default_worktrees_root(repo: Repository) -> Path:
    """Where attempt worktrees go unless configured: outside the repository and outside the tracks folder,
    under the user's state folder, one folder per repository."""
    import hashlib
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    digest = hashlib.sha256(str(repo.toplevel).encode()).hexdigest()[:10]
    return base / "conductor" / "worktrees" / f"{repo.toplevel.name}-{digest}"
