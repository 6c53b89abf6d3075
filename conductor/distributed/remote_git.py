"""Git between the desktop and its workers: a remote both reach, never a shared folder.

Desktop: before an attempt is queued, the track branch's tip (and a resolve attempt's start) is pushed to the
remote; when a result arrives, the worker's per-dispatch ref is fetched and checked against the commit the
worker reported, then the ticket branch is set to it locally and the engine merges it as it merges a local
attempt's commit.

Worker: one clone per remote under its work folder (HEAD detached, so any branch can be fetched into); before an
attempt its track branch is moved to the message's tip (forward only: two attempts of one track in one worker
never move it back); after it, the commit is pushed to the ticket branch and to a per-dispatch ref (a late,
rejected run of the same request can overwrite the ticket branch, never the ref the desktop fetches).
"""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path

from conductor.git import GitError
from conductor.git.runner import Git

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def dispatch_ref(request_id: str, dispatch: int) -> str:
    """Where a worker pushes the commit of one dispatch of a request."""
    parts = [_UNSAFE.sub("_", p) or "_" for p in request_id.split("/")]
    return f"refs/conductor/results/{'/'.join(parts)}/d{dispatch}"


def resolve_ref(request_id: str) -> str:
    parts = [_UNSAFE.sub("_", p) or "_" for p in request_id.split("/")]
    return f"refs/conductor/resolve/{'/'.join(parts)}"


class DesktopRemote:
    """The desktop's pushes and fetches, one at a time (git locks refs; parallel pushes would fail at random)."""

    def __init__(self, repo_dir: Path, remote: str, git: Git | None = None) -> None:
        self.repo_dir = repo_dir
        self.remote = remote
        self.git = git or Git()
        self._lock = threading.Lock()

    def publish_track(self, track_branch: str, tip: str, resolve: tuple[str, str] | None = None) -> None:
        """Push the track tip (forced: the desktop owns the track branch) and a resolve start point."""
        specs = [f"+{tip}:refs/heads/{track_branch}"]
        if resolve is not None:
            specs.append(f"+{resolve[1]}:{resolve[0]}")
        with self._lock:
            self.git.run(self.repo_dir, "push", "--quiet", "--no-verify", self.remote, *specs)

    def fetch_result(self, ref: str, commit: str, ticket_branch: str) -> None:
        """Fetch a worker's result ref; GitError unless it holds exactly `commit`. Sets the ticket branch."""
        local = f"refs/conductor/fetched/{ref.removeprefix('refs/conductor/results/')}"
        with self._lock:
            self.git.run(self.repo_dir, "fetch", "--quiet", "--no-tags", self.remote, f"+{ref}:{local}")
            got = self.git.run(self.repo_dir, "rev-parse", "--verify", "--quiet", f"{local}^{{commit}}",
                               ok=(0, 1)).line
            if got != commit:
                raise GitError(f"the remote's {ref} holds {got[:12] or 'nothing'}, not the reported {commit[:12]}")
            self.git.run(self.repo_dir, "update-ref", f"refs/heads/{ticket_branch}", commit)


class WorkerClones:
    """The worker's clone of each remote it is sent to."""

    def __init__(self, root: Path, git: Git | None = None) -> None:
        self.root = root
        self.git = git or Git()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, remote: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(remote, threading.Lock())

    def clone_dir(self, remote: str) -> Path:
        return self.root / hashlib.sha256(remote.encode()).hexdigest()[:16]

    def prepare(self, remote: str, track_branch: str, tip: str, resolve: tuple[str, str] | None) -> Path:
        """The clone, holding `tip` on `track_branch` (or a descendant of it) and the resolve start point."""
        d = self.clone_dir(remote)
        with self._lock(remote):
            if not (d / ".git").is_dir():
                d.mkdir(parents=True, exist_ok=True)
                self.git.run(d, "init", "--quiet")
                self.git.run(d, "remote", "add", "origin", remote)
            specs = [f"+refs/heads/{track_branch}:refs/remotes/origin/{track_branch}"]
            if resolve is not None:
                specs.append(f"+{resolve[0]}:{resolve[0]}")
            self.git.run(d, "fetch", "--quiet", "--no-tags", "origin", *specs)
            if self.git.run(d, "cat-file", "-e", f"{tip}^{{commit}}", ok=(0, 1, 128)).returncode != 0:
                raise GitError(f"the remote {remote!r} has no commit {tip[:12]} on {track_branch!r} (the desktop "
                               "pushes it before queueing the attempt)")
            current = self.git.run(d, "rev-parse", "--verify", "--quiet", f"refs/heads/{track_branch}",
                                   ok=(0, 1)).line
            forward = not current or self.git.run(d, "merge-base", "--is-ancestor", current, tip,
                                                  ok=(0, 1)).returncode == 0
            if forward:
                self.git.run(d, "update-ref", f"refs/heads/{track_branch}", tip)
            if self.git.run(d, "rev-parse", "--verify", "--quiet", "HEAD", ok=(0, 1, 128)).returncode != 0:
                self.git.run(d, "update-ref", "--no-deref", "HEAD", tip)  # detached: every branch can move
        return d

    def push_result(self, remote: str, commit: str, ticket_branch: str, ref: str) -> None:
        d = self.clone_dir(remote)
        with self._lock(remote):
            self.git.run(d, "push", "--quiet", "--no-verify", "origin", f"+{commit}:{ref}",
                         f"+{commit}:refs/heads/{ticket_branch}")
