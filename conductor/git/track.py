"""A track's git life: its integration branch, a worktree per ticket attempt, one commit per attempt, merges
without a checkout, revert, rewind and diffs. This is the API the engine calls.

Rules every method keeps:
  * The person's checkout, branch, index and stash are never touched: refs move with `update-ref` (compare
    and swap on the expected old value), merges are computed with `merge-tree --write-tree` and written with
    `commit-tree`, attempts work in their own worktrees outside the repository. Nothing is ever pushed.
  * Every step that moves a ref is one atomic update-ref, so a kill -9 leaves a branch before or after the
    step, never between.
  * Every step is idempotent, keyed by ticket + attempt (`Conductor-Key`, `Conductor-Merged`,
    `Conductor-Reverted` trailers; deterministic branch names and folders): after a crash, calling the same
    method again finishes the step exactly once.
  * A worktree with changes nobody committed is never deleted.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from conductor.atomic import atomic_write_text
from conductor.git.diffs import Diff, diff_commits, diff_names
from conductor.git.names import AttemptKey, BranchNaming, attempt_folder, slug
from conductor.git.repo import (
    FALLBACK_IDENTITY,
    Repository,
    WorktreeEntry,
    default_worktrees_root,
)
from conductor.git.results import (
    AttemptWorktree,
    CleanMerge,
    CommitResult,
    Committed,
    Conflicts,
    HookRejected,
    KeptDirty,
    MergeCheck,
    Merged,
    MergeResult,
    MergeStrategy,
    NeedsMerge,
    NoChanges,
    NotMerged,
    Removed,
    RemoveResult,
    Resolution,
    RevertConflicts,
    Reverted,
    RevertResult,
    Rewound,
    TrackBranch,
    TrackCheckedOut,
    TrackMoved,
    TrackSummary,
)
from conductor.git.runner import Git, GitError, Identity, is_within

KEY_TRAILER = "Conductor-Key"
MERGED_TRAILER = "Conductor-Merged"
REVERTED_TRAILER = "Conductor-Reverted"
LOCK_CREATING = "conductor creating"
LOCK_READY = "conductor attempt"
LOCK_REMOVING = "conductor removing"
LOCK_SWITCHING = "conductor switching"
LOCK_PARKING = "conductor parking"
LOCK_PARKED = "conductor parked"
INCOMPLETE = (LOCK_CREATING, LOCK_REMOVING, LOCK_SWITCHING, LOCK_PARKING)
"""Lock reasons of a step a crash may interrupt: a worktree locked with one of them holds no work of a worker
(a fresh checkout, or a clean tree being released), so resume discards it and does the step again."""
"""Lock reasons: `conductor creating <key>` while `worktree add` runs (a crash leaves it, marking the worktree
as half made), then `conductor attempt <key> base <sha>` while the attempt lives (prune leaves it alone)."""


@dataclass(frozen=True)
class GitSettings:
    naming: BranchNaming = field(default_factory=BranchNaming)
    worktrees_root: Path | None = None
    """Where attempt worktrees go (a folder per track below it). None: the user's state folder
    (`default_worktrees_root`). Must be outside the repository."""
    merge_strategy: MergeStrategy = "merge"
    pool_size: int = 4
    """How many clean worktrees a track keeps parked for reuse (0: remove each one when its attempt ends)."""
    author: Identity | None = None
    """Author and committer of what the conductor commits. None: the repository's configured identity, or
    'Conductor <conductor@localhost>' when none is configured."""


def trailers(message: str) -> dict[str, list[str]]:
    """The `Conductor-*: value` lines of a commit message's LAST paragraph: the one the conductor appends
    after any text it was given (a title, a model name), so text from a worker or a model can never forge a
    record. Values compare whole: a/b/a1 never matches a/b/a10."""
    paragraphs = [p for p in message.strip().split("\n\n") if p.strip()]
    out: dict[str, list[str]] = {}
    for line in (paragraphs[-1] if paragraphs else "").splitlines():
        key, sep, value = line.partition(": ")
        if sep and key.startswith("Conductor-"):
            out.setdefault(key, []).append(value.strip())
    return out


@dataclass(frozen=True)
class LogEntry:
    sha: str
    parents: tuple[str, ...]
    message: str

    def has(self, trailer: str, value: str) -> bool:
        return value in trailers(self.message).get(trailer, [])


class TrackGit:
    """Git operations of one track on one repository. Thread-safe as far as git is: the conductor calls the
    ref-moving methods (merge, revert) from one place, one at a time; the compare-and-swap turns any other
    writer into a `TrackMoved` result instead of a lost update."""

    def __init__(self, repo: Repository, track: str, settings: GitSettings | None = None) -> None:
        self.settings = settings or GitSettings()
        ident = self.settings.author
        if ident is None and not repo.identity_configured():
            ident = FALLBACK_IDENTITY
        # Hooks run as the person configured them, from the person's checkout: a relative core.hooksPath
        # (.githooks, husky) would otherwise resolve inside the attempt's worktree, where the worker can edit
        # the hook and have the conductor run it at commit time, outside any approval.
        hooks = Path(repo.run("rev-parse", "--path-format=absolute", "--git-path", "hooks").strip())
        git = Git(timeout_s=repo.git.timeout_s, identity=ident or repo.git.identity, executable=repo.git.executable,
                  config=(*repo.git.config, f"core.hooksPath={hooks}"))
        self.repo = Repository(git, repo.toplevel, repo.common_dir, repo.prefix)
        self.hooks_dir = hooks
        self.track = track
        self._claim = threading.Lock()
        self._merging = threading.RLock()
        """Merges and reverts of this track run one at a time in this process."""
        self.base_sha: str | None = None
        """Where the track forked from its base (set by create_track): history scans stop there instead of
        walking the whole history of the person's repository."""
        self._valid_names: set[str] = set()
        self.branch = self.settings.naming.track_branch(track)
        self._check_branch_name(self.branch)
        root = self.settings.worktrees_root or default_worktrees_root(repo)
        self.root = Path(os.path.abspath(root))
        if is_within(self.root, self.repo.toplevel) or is_within(self.repo.toplevel, self.root):
            raise GitError(f"the worktrees folder {str(self.root)!r} must be outside the repository "
                           f"{str(self.repo.toplevel)!r} (and not contain it)")

    # -- the track branch -------------------------------------------------------------------------------------

    def _check_branch_name(self, name: str) -> None:
        if name in self._valid_names:
            return
        res = self.repo.git.run(self.repo.toplevel, "check-ref-format", "--branch", name, ok=(0, 1, 128))
        if res.returncode != 0:
            raise GitError(f"{name!r} is not a valid branch name; check the branch templates")
        self._valid_names.add(name)

    def tip(self) -> str:
        sha = self.repo.branch_sha(self.branch)
        if sha is None:
            raise GitError(f"the track branch {self.branch!r} does not exist; create the track branch first")
        return sha

    def create_track(self, base_ref: str | None = None) -> TrackBranch:
        """Create the track branch at `base_ref` (default: the person's current HEAD). Idempotent: an existing
        branch is kept as it is (its base is then where it forked from `base_ref`)."""
        ref = base_ref or "HEAD"
        base = self.repo.rev(ref)
        if base is None:
            raise GitError(f"the base {ref!r} of track {self.track!r} names no commit in {str(self.repo.toplevel)!r}")
        existing = self.repo.branch_sha(self.branch)
        if existing is None and self.repo.update_ref(self.branch, base, None, f"track {self.track} from {ref}"):
            self.base_sha = base
            return TrackBranch(self.track, self.branch, ref, base, created=True)
        tip = self.tip()
        fork = self.repo.run("merge-base", base, tip, ok=(0, 1)).strip() or base
        self.base_sha = fork
        return TrackBranch(self.track, self.branch, ref, fork, created=False)

    # -- attempt worktrees ------------------------------------------------------------------------------------

    def attempt_branch(self, key: AttemptKey) -> str:
        return self.settings.naming.attempt_branch(key)

    def attempt_path(self, key: AttemptKey) -> Path:
        return self.root / attempt_folder(key)

    def _key(self, ticket: str, attempt: int) -> AttemptKey:
        return AttemptKey(self.track, ticket, attempt)

    def _entry(self, path: Path) -> WorktreeEntry | None:
        want = os.path.realpath(path)
        for wt in self.repo.worktrees():
            if os.path.realpath(wt.path) == want:
                return wt
        return None

    def _workspace(self, path: Path) -> Path:
        return path / self.repo.prefix if self.repo.prefix else path

    def admin_dir(self, path: Path) -> Path | None:
        """The worktree's folder in the shared .git (`.git/worktrees/<id>`), named by its `.git` file."""
        try:
            text = (path / ".git").read_text()
        except OSError:
            return None
        if not text.startswith("gitdir: "):
            return None
        admin = Path(text[len("gitdir: "):].strip())
        admin = admin if admin.is_absolute() else (path / admin)
        return admin if admin.is_dir() and is_within(admin, self.repo.common_dir) else None

    def _set_lock(self, path: Path, reason: str) -> None:
        """Give a worktree a new lock reason in one atomic step: `.git/worktrees/<id>/locked` (documented in
        gitrepository-layout) is replaced whole, so a kill leaves the old reason or the new, never 'unlocked'.
        Falls back to `git worktree unlock` + `lock` when the admin folder cannot be found."""
        admin = self.admin_dir(path)
        if admin is not None:
            atomic_write_text(admin / "locked", reason)
            return
        self.repo.run("worktree", "unlock", str(path), ok=(0, 128))
        self.repo.run("worktree", "lock", "--reason", reason, str(path))

    def move_aside(self, path: Path) -> Path:
        """Never delete a folder we did not finish making: move it to <root>/.aside/ and say where."""
        aside = self.root / ".aside" / f"{path.name}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, aside)
        return aside

    def discard_incomplete(self, path: Path) -> None:
        """Remove a worktree whose lock reason says a kill hit its `worktree add` or its removal: it holds no
        work (a fresh checkout, or a clean tree being deleted). git refuses to remove one whose .git file the
        kill left unwritten or already deleted, so the folder goes first, then the registration."""
        with self.repo.worktree_lock:
            res = self.repo.git.run(self.repo.toplevel, "worktree", "remove", "--force", "--force", str(path),
                                    ok=(0, 128))
        if res.returncode == 0:
            return
        if not is_within(path, self.root):
            raise GitError(f"refusing to delete {str(path)!r}: it is outside the worktrees folder {str(self.root)!r}")
        shutil.rmtree(path, ignore_errors=True)
        self.repo.run("worktree", "remove", "--force", "--force", str(path))

    def attempt_entry(self, key: AttemptKey, entries: list[WorktreeEntry] | None = None) -> WorktreeEntry | None:
        """The worktree an attempt is in: the one with its branch checked out, or one whose lock reason names it
        (a step on it was interrupted)."""
        branch = f"refs/heads/{self.attempt_branch(key)}"
        for e in self.repo.worktrees() if entries is None else entries:
            if not is_within(e.path, self.root):
                continue  # the person's checkout or worktree is never an attempt's, whatever it has checked out
            if e.branch == branch or (e.locked is not None and key.text in e.locked.split()):
                return e
        return None

    def parked(self, entries: list[WorktreeEntry] | None = None) -> list[WorktreeEntry]:
        """This track's clean, free worktrees waiting for the next attempt."""
        return [e for e in (self.repo.worktrees() if entries is None else entries)
                if e.locked == LOCK_PARKED and is_within(e.path, self.track_dir) and (e.path / ".git").is_file()]

    @property
    def track_dir(self) -> Path:
        return self.root / slug(self.track)

    def start_attempt(self, ticket: str, attempt: int, *, start_point: str | None = None) -> AttemptWorktree:
        """The worktree of one attempt, on its own branch created from the track tip (call it after the
        ticket's dependencies merged) or from `start_point`.

        A parked worktree of the track is reused when there is one (`git checkout` rewrites only the files that
        differ: far cheaper than a fresh checkout of a big repository); otherwise `git worktree add` makes one.
        Idempotent: the attempt's existing worktree is returned; one a crash left half made or half switched is
        discarded and made again (it holds no work of a worker yet); an existing branch keeps its commits."""
        key = self._key(ticket, attempt)
        branch = self.attempt_branch(key)
        self._check_branch_name(branch)
        sha = self.repo.branch_sha(branch)
        fresh: str | None = None
        if sha is None:
            start = self.repo.rev(start_point) if start_point else self.tip()
            if start is None:
                raise GitError(f"start point {start_point!r} of {key.text} names no commit")
            if self.repo.update_ref(branch, start, None, f"attempt {key.text}"):  # False: made meanwhile
                fresh = start
        entries = self.repo.worktrees()
        entry = self.attempt_entry(key, entries)
        if entry is not None and ((entry.locked or "").startswith(INCOMPLETE) or not entry.path.is_dir()):
            self.discard_incomplete(entry.path)
            entry, entries = None, self.repo.worktrees()
        if entry is not None:
            base = self._base_of(key, branch, entry.locked)
            if entry.locked is None or not entry.locked.startswith(LOCK_READY):
                self._set_lock(entry.path, f"{LOCK_READY} {key.text} base {base}")
            return AttemptWorktree(key, branch, entry.path, base, self._workspace(entry.path), resumed=True)
        checked = next((e.path for e in entries if e.branch == f"refs/heads/{branch}"), None)
        if checked is not None:
            raise GitError(f"branch {branch!r} of {key.text} is already checked out at {str(checked)!r}; "
                           "git allows a branch in one worktree only")
        with self._claim:  # two threads must not take the same parked worktree
            slots = self.parked()  # read again under the lock: another thread may have just taken one
            path = slots[0].path if slots else None
            if path is not None:
                self._set_lock(path, f"{LOCK_SWITCHING} {key.text}")
        if path is not None:
            with self.repo.worktree_lock:  # git checks every worktree's HEAD for the branch: none half made
                self.repo.git.run(path, "checkout", "--quiet", "--no-guess", branch, "--")
        else:
            path = self.attempt_path(key)
            if path.exists():
                self.move_aside(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.repo.run("worktree", "add", "--quiet", "--lock", "--reason", f"{LOCK_CREATING} {key.text}",
                          str(path), branch)
        base = fresh or self._base_of(key, branch, None)
        self._set_lock(path, f"{LOCK_READY} {key.text} base {base}")
        return AttemptWorktree(key, branch, path, base, self._workspace(path))

    def _base_of(self, key: AttemptKey, branch: str, lock_reason: str | None) -> str:
        """The commit an attempt started from: recorded in its lock reason; else the parent of its own commit;
        else (nothing committed yet) the branch tip."""
        if lock_reason and lock_reason.startswith(LOCK_READY) and " base " in lock_reason:
            return lock_reason.rsplit(" base ", 1)[1].strip()
        tip = self.repo.branch_sha(branch)
        if tip is None:
            raise GitError(f"the branch {branch!r} of {key.text} has gone")
        head = self._log(tip, max_count=1)[0]
        if head.has(KEY_TRAILER, key.text) and head.parents:
            return head.parents[0]
        return tip

    def remove_attempt(self, wt: AttemptWorktree, *, force: bool = False) -> RemoveResult:
        """Release an attempt's worktree (its branch and commit stay). A clean one is parked for the next
        attempt while the pool has room (`git checkout --detach`: no file is rewritten), else removed. One with
        uncommitted changes is kept unless `force` (which the caller passes only after asking the person)."""
        entry = self._entry(wt.path)
        if entry is None:
            return Removed(wt.path)
        reason = entry.locked or ""
        if reason.startswith(INCOMPLETE) and wt.key.text in reason.split():
            self.discard_incomplete(wt.path)  # a crash during the release of a clean worktree: finish it
            return Removed(wt.path)
        if entry.branch != f"refs/heads/{wt.branch}":
            return Removed(wt.path)  # released already (parked, or serving another attempt now)
        if not wt.path.is_dir():
            self.discard_incomplete(wt.path)
            return Removed(wt.path)
        ignored: list[str] = []
        if not force:  # one scan of the tree gives both the changes (keep it) and the ignored files (clean them)
            out = self.repo.git.run(wt.path, "status", "--porcelain=v1", "-z", "--untracked-files=all",
                                    "--ignored=matching").text
            changes = status_paths("\0".join(r for r in out.split("\0") if not r.startswith("!! ")))
            if changes:
                return KeptDirty(wt.path, tuple(changes))
            ignored = [r[3:] for r in out.split("\0") if r.startswith("!! ")]
        with self._claim:
            park = not force and len(self.parked()) < self.settings.pool_size
            self._set_lock(wt.path, f"{LOCK_PARKING if park else LOCK_REMOVING} {wt.key.text}")
        if park:
            # detach HEAD at the same commit: the tree is clean, so nothing on disk changes (`checkout --detach`
            # would stat every file to find that out)
            self.repo.git.run(wt.path, "update-ref", "--no-deref", "-m", "conductor: park", "HEAD",
                              f"refs/heads/{wt.branch}")
            # ignored files (caches, build output) must not leak into the next attempt that gets this worktree
            _delete_inside(wt.path, ignored)
            self._set_lock(wt.path, LOCK_PARKED)
            return Removed(wt.path, parked=True)
        self.repo.run("worktree", "remove", "--force", "--force", str(wt.path))
        return Removed(wt.path)

    def drain_pool(self) -> list[Path]:
        """Remove this track's parked worktrees (when the track is closed or the app stops)."""
        gone = []
        for e in self.parked():
            # marked first: a kill during the removal leaves a worktree reconcile knows to discard, not a
            # 'parked' one whose .git file is already gone
            self._set_lock(e.path, f"{LOCK_REMOVING} parked")
            self.discard_incomplete(e.path)
            gone.append(e.path)
        return gone

    def forbidden_roots(self, wt: AttemptWorktree, extra: Iterable[Path] = ()) -> tuple[Path, ...]:
        """What a worker in `wt` must never reach: the person's checkout, the shared .git folder, every other
        worktree of the repository, and `extra` (the tracks folder). Pass them as the tool context's
        protected folders; raises when the worktree itself lies inside one (a misconfiguration)."""
        roots = [self.repo.toplevel, self.repo.common_dir]
        roots += [e.path for e in self.repo.worktrees() if os.path.realpath(e.path) != os.path.realpath(wt.path)]
        roots += list(extra)
        out: list[Path] = []
        for r in roots:
            real = Path(os.path.realpath(r))
            if is_within(wt.path, real):
                raise GitError(f"the attempt worktree {str(wt.path)!r} is inside {str(real)!r}, which its worker "
                               "must not reach; put worktrees elsewhere")
            if real not in out:
                out.append(real)
        return tuple(out)

    # -- commits ----------------------------------------------------------------------------------------------

    def _log(self, rev_range: str, *, first_parent: bool = False, max_count: int | None = None) -> list[LogEntry]:
        args = ["log", "--format=%H%x00%P%x00%B%x1e"]
        if first_parent:
            args.append("--first-parent")
        if max_count is not None:
            args.append(f"--max-count={max_count}")
        out = self.repo.run(*args, rev_range, "--")
        entries = []
        for rec in out.split("\x1e"):
            rec = rec.lstrip("\n")
            if not rec:
                continue
            sha, parents, message = rec.split("\x00", 2)
            entries.append(LogEntry(sha, tuple(parents.split()), message))
        return entries

    def _wt(self, wt: AttemptWorktree, *args: str, ok: tuple[int, ...] = (0,)) -> str:
        return self.repo.git.run(wt.path, *args, ok=ok).text

    def commit_attempt(self, wt: AttemptWorktree, *, model: str, title: str = "",
                       allow_empty: bool = False) -> CommitResult:
        """Commit everything the attempt changed as ONE commit on its branch (a worker's own commits are
        folded into it), hooks run. The message names track, ticket, attempt and model. Idempotent: when the
        branch already ends with this attempt's commit, that commit is returned (`already`)."""
        key = wt.key
        self._check_holds(wt)
        head = self._head_entry(wt)
        if head.has(KEY_TRAILER, key.text) and head.parents[:1] == (wt.base_sha,):
            return Committed(head.sha, self._changed(wt.base_sha, head.sha), already=True)
        admin = self.admin_dir(wt.path)
        merging = (admin / "MERGE_HEAD").exists() if admin is not None else self.repo.git.run(
            wt.path, "rev-parse", "-q", "--verify", "MERGE_HEAD", ok=(0, 1)).returncode == 0
        self._wt(wt, "add", "--all", "--", ".")
        if not merging and head.sha != wt.base_sha:
            self._wt(wt, "reset", "--soft", wt.base_sha)  # fold the worker's own commits into this one
        staged = tuple(p for p in self._wt(wt, "diff", "--cached", "--name-only", "--no-renames", "-z",
                                           wt.base_sha if not merging else "HEAD").split("\0") if p)
        if not merging and not allow_empty and not staged:
            return NoChanges(f"attempt {attempt_label(key)} changed nothing; no commit was made")
        message = attempt_message(key, model, title, resolution=merging)
        if not merging and not self.commit_hooks():
            # no hook to run: write the commit with plumbing. `git commit` would stat every file again (the
            # index was refreshed by `add` a moment ago), which costs tens of ms on a big repository.
            tree = self._wt(wt, "write-tree").strip()
            new = self.repo.git.run(wt.path, "commit-tree", tree, "-p", wt.base_sha, stdin=message.encode()).line
            if not self.repo.update_ref(wt.branch, new, wt.base_sha, f"commit {key.text}"):
                raise GitError(f"the branch {wt.branch!r} of {key.text} moved while its commit was written")
            return Committed(new, staged)
        args = ["commit", "--quiet", "-F", "-"] + (["--allow-empty"] if allow_empty else [])
        res = self.repo.git.run(wt.path, *args, ok=(0, 1), stdin=message.encode())
        if res.returncode != 0:
            return HookRejected((res.text + "\n" + res.stderr).strip() or "a commit hook refused the commit")
        sha = self._wt(wt, "rev-parse", "--verify", "HEAD").strip()
        return Committed(sha, self._changed(wt.base_sha, sha) if merging else staged)

    def commit_hooks(self) -> list[str]:
        """The commit hooks the person's configuration would run (present and executable)."""
        names = ("pre-commit", "prepare-commit-msg", "commit-msg", "post-commit", "post-rewrite")
        return [n for n in names if os.access(self.hooks_dir / n, os.X_OK) and (self.hooks_dir / n).is_file()]

    def _check_holds(self, wt: AttemptWorktree) -> None:
        """Refuse to work in a worktree that no longer holds this attempt's branch (released and reused)."""
        admin = self.admin_dir(wt.path)
        try:
            head = (admin / "HEAD").read_text().strip() if admin is not None else ""
        except OSError:
            head = ""
        if head != f"ref: refs/heads/{wt.branch}":
            raise GitError(f"the worktree {str(wt.path)!r} no longer holds {wt.branch!r} (attempt "
                           f"{attempt_label(wt.key)}): it was released; start the attempt again")

    def _head_entry(self, wt: AttemptWorktree) -> LogEntry:
        out = self._wt(wt, "log", "--max-count=1", "--format=%H%x00%P%x00%B", "HEAD", "--")
        sha, parents, message = out.split("\x00", 2)
        return LogEntry(sha.strip(), tuple(parents.split()), message)

    def _changed(self, base: str, head: str) -> tuple[str, ...]:
        out = self.repo.run("diff", "--name-only", "-z", "--no-renames", base, head, "--")
        return tuple(p for p in out.split("\0") if p)

    def attempt_commit(self, ticket: str, attempt: int) -> str | None:
        """The commit an attempt made, if it made one (found by its trailer at its branch tip)."""
        key = self._key(ticket, attempt)
        tip = self.repo.branch_sha(self.attempt_branch(key))
        if tip is None:
            return None
        head = self._log(tip, max_count=1)[0]
        return head.sha if head.has(KEY_TRAILER, key.text) else None

    # -- merging ----------------------------------------------------------------------------------------------

    def check_merge(self, commit: str, onto: str | None = None) -> MergeCheck:
        """Would `commit` merge cleanly into the track tip (or `onto`)? Computed by `merge-tree --write-tree`:
        no checkout, no index, nothing of the person's is touched."""
        base = onto or self.tip()
        res = self.repo.git.run(self.repo.toplevel, "merge-tree", "--write-tree", "-z", "--name-only",
                                "--no-messages", base, commit, ok=(0, 1))
        parts = res.stdout.decode("utf-8", errors="surrogateescape").split("\0")
        if res.returncode == 0:
            return CleanMerge(parts[0].strip())
        files: list[str] = []
        for name in parts[1:]:
            if not name:
                break
            if name not in files:
                files.append(name)
        return Conflicts(tuple(files))

    def _since_base(self, tip: str) -> str:
        return f"{self.base_sha}..{tip}" if self.base_sha else tip

    def find_merge(self, key: AttemptKey, tip: str | None = None) -> LogEntry | None:
        """The track commit that merged this attempt, if any (first-parent history since the fork)."""
        for e in self._log(self._since_base(tip or self.tip()), first_parent=True):
            if e.has(MERGED_TRAILER, key.text):
                return e
        return None

    def _guard_checkout(self) -> None:
        where = self.repo.checked_out_at(self.branch)
        if where is not None:
            raise TrackCheckedOut(f"the track branch {self.branch!r} is checked out at {str(where)!r}; switch "
                                  "that checkout to another branch before Conductor merges into it")

    def merge_attempt(self, ticket: str, attempt: int, commit: str | None = None, *,
                      strategy: MergeStrategy | None = None, title: str = "") -> MergeResult:
        """Merge an attempt's commit into the track branch without checking it out: conflict pre-check, then
        `commit-tree` + `update-ref` with the old tip (a concurrent change gives TrackMoved, never a lost
        update). Idempotent: an attempt already merged returns its merge (`already`)."""
        with self._merging:
            return self._merge_attempt(ticket, attempt, commit, strategy=strategy, title=title)

    def _merge_attempt(self, ticket: str, attempt: int, commit: str | None, *,
                       strategy: MergeStrategy | None, title: str) -> MergeResult:
        """The body of merge_attempt (under the merge lock)."""
        key = self._key(ticket, attempt)
        strategy = strategy or self.settings.merge_strategy
        tip = self.tip()
        done = self.find_merge(key, tip)
        if commit is None:
            commit = self.attempt_commit(ticket, attempt) or self.repo.branch_sha(self.attempt_branch(key))
            if commit is None:
                raise NotMerged(f"attempt {attempt_label(key)} has no branch and no commit to merge")
        if done is not None:
            return Merged(done.sha, commit, already=True)
        self._guard_checkout()
        check = self.check_merge(commit, tip)
        match check:
            case Conflicts(files=files):
                return NeedsMerge(files, tip, commit)
            case CleanMerge(tree=tree):
                pass
        parents = [tip, commit] if strategy == "merge" else [tip]
        message = merge_message(key, strategy, title)
        new = self._commit_tree(tree, parents, message)
        if not self.repo.update_ref(self.branch, new, tip, f"merge {key.text}"):
            return TrackMoved(tip, self.repo.branch_sha(self.branch))
        return Merged(new, commit)

    def _commit_tree(self, tree: str, parents: list[str], message: str) -> str:
        args = ["commit-tree", tree]
        for p in parents:
            args += ["-p", p]
        return self.repo.git.run(self.repo.toplevel, *args, stdin=message.encode()).line

    def begin_resolution(self, wt: AttemptWorktree) -> Resolution:
        """Merge the track tip into a (new) attempt's worktree, conflict markers and all, for a worker or the
        person to resolve there; then `commit_attempt` records the resolved merge as that attempt's commit,
        which merges cleanly. Touches only that worktree."""
        self._check_holds(wt)
        head = self._head_entry(wt)
        if head.has(KEY_TRAILER, wt.key.text):
            raise GitError(f"attempt {attempt_label(wt.key)} is already committed; resolve in a new attempt "
                           "started from its commit (start_attempt(..., start_point=commit))")
        tip = self.tip()
        self.repo.git.run(wt.path, "merge", "--no-ff", "--no-commit", "--no-verify", tip, ok=(0, 1))
        out = self._wt(wt, "diff", "--name-only", "--diff-filter=U", "-z")
        return Resolution(tuple(p for p in out.split("\0") if p), tip)

    # -- revert, rewind ---------------------------------------------------------------------------------------

    def revert_ticket(self, ticket: str) -> RevertResult:
        """Undo a merged ticket with a revert commit on the track branch (no checkout: the revert is a
        three-way merge computed by merge-tree). Idempotent: reverting again returns the earlier revert."""
        with self._merging:
            return self._revert_ticket(ticket)

    def _revert_ticket(self, ticket: str) -> RevertResult:
        """The body of revert_ticket (under the merge lock)."""
        tip = self.tip()
        merged: list[tuple[str, LogEntry]] = []
        reverted: dict[str, LogEntry] = {}
        prefix = f"{slug(self.track)}/{slug(ticket)}/a"
        for e in self._log(self._since_base(tip), first_parent=True):
            t = trailers(e.message)
            for k in t.get(REVERTED_TRAILER, []):
                reverted.setdefault(k, e)
            for k in t.get(MERGED_TRAILER, []):
                if k.startswith(prefix) and k[len(prefix):].isdigit():
                    merged.append((k, e))
        live = [(k, e) for k, e in merged if k not in reverted]
        if not live:
            if merged:
                k, e = merged[0]
                return Reverted(reverted[k].sha, e.sha, k, already=True)
            raise NotMerged(f"ticket {ticket!r} has no merge on track branch {self.branch!r}; nothing to revert")
        key, m = live[0]  # the newest merge of the ticket
        if not m.parents:
            raise NotMerged(f"merge {m.sha} of {key} has no parent")
        self._guard_checkout()
        if m.sha == tip:
            tree = self.repo.tree_of(m.parents[0])
        else:  # a three-way merge with the merge commit as base: ours = the tip, theirs = before the merge
            note = f"conductor revert helper for {key}\n"
            ours = self._commit_tree(self.repo.tree_of(tip), [m.sha], note)
            theirs = self._commit_tree(self.repo.tree_of(m.parents[0]), [m.sha], note)
            match self.check_merge(theirs, ours):
                case Conflicts(files=files):
                    return RevertConflicts(files)
                case CleanMerge(tree=clean_tree):
                    tree = clean_tree
        message = (f"Revert ticket {ticket} ({key}) on track {self.track}\n\n"
                   f"This reverts {m.sha}.\n\n{REVERTED_TRAILER}: {key}\n")
        new = self._commit_tree(tree, [tip], message)
        if not self.repo.update_ref(self.branch, new, tip, f"revert {key}"):
            return TrackMoved(tip, self.repo.branch_sha(self.branch))
        return Reverted(new, m.sha, key)

    def rewind(self, ticket: str, to_attempt: int, new_attempt: int) -> Rewound:
        """Go back to an earlier attempt's work: a new attempt whose branch starts at that attempt's commit
        (nothing is deleted: the later attempts keep their branches). Merge `Rewound.commit` to use it."""
        commit = self.attempt_commit(ticket, to_attempt)
        if commit is None:
            raise NotMerged(f"attempt {to_attempt} of ticket {ticket!r} made no commit to rewind to")
        wt = self.start_attempt(ticket, new_attempt, start_point=commit)
        earlier = self._log(commit, max_count=1)[0]
        base = earlier.parents[0] if earlier.parents else wt.base_sha
        return Rewound(replace(wt, base_sha=base), commit, to_attempt)

    def summary(self) -> TrackSummary:
        """Merged and reverted attempts, commit count and changed files of the track (call create_track first)."""
        if self.base_sha is None:
            raise GitError(f"the base of track {self.track!r} is unknown: call create_track first")
        tip = self.tip()
        merged: list[str] = []
        reverted: list[str] = []
        entries = self._log(self._since_base(tip), first_parent=True)
        for e in reversed(entries):
            t = trailers(e.message)
            merged += t.get(MERGED_TRAILER, [])
            reverted += t.get(REVERTED_TRAILER, [])
        return TrackSummary(self.branch, self.base_sha, tip, tuple(merged), tuple(reverted), len(entries),
                            tuple(diff_names(self.repo, self.base_sha, tip)))

    # -- diffs ------------------------------------------------------------------------------------------------

    def changes_so_far(self, track: TrackBranch) -> Diff:
        """What the track changed against its base, file by file."""
        return diff_commits(self.repo, track.base_sha, self.tip())

    def ticket_diff(self, commit: str, base: str | None = None) -> Diff:
        """What one commit changed against its base (default: its first parent)."""
        return diff_commits(self.repo, base if base is not None else f"{commit}^1", commit)


def attempt_label(key: AttemptKey) -> str:
    return f"{key.attempt} of ticket {key.ticket!r} (track {key.track!r})"


def attempt_message(key: AttemptKey, model: str, title: str, *, resolution: bool = False) -> str:
    what = "resolve merge of " if resolution else ""
    subject = f"{key.ticket}: {what}{title.strip() or 'attempt ' + str(key.attempt)}".replace("\n", " ")[:200]
    model = " ".join(model.split())[:200]
    return (f"{subject}\n\nTrack: {key.track}\nTicket: {key.ticket}\nAttempt: {key.attempt}\nModel: {model}\n\n"
            f"{KEY_TRAILER}: {key.text}\n")


def merge_message(key: AttemptKey, strategy: MergeStrategy, title: str) -> str:
    verb = "Merge" if strategy == "merge" else "Squash-merge"
    subject = f"{verb} ticket {key.ticket} (attempt {key.attempt}) into track {key.track}"
    body = f"\n\n{title.strip()}" if title.strip() else ""
    return f"{subject}{body}\n\n{MERGED_TRAILER}: {key.text}\n"


def _delete_inside(root: Path, rel_paths: list[str]) -> None:
    """Delete files and folders named relative to `root`, never following a symlink out of it."""
    for rel in rel_paths:
        target = root / rel.rstrip("/")
        if not os.path.lexists(target) or not is_within(target.parent, root) or ".." in Path(rel).parts:
            continue
        if target.is_symlink() or not target.is_dir():
            target.unlink()
        else:
            shutil.rmtree(target)


def status_paths(porcelain_z: str) -> list[str]:
    out: list[str] = []
    parts = porcelain_z.split("\0")
    i = 0
    while i < len(parts):
        rec = parts[i]
        if len(rec) > 3:
            out.append(rec[3:])
            if rec[0] in "RC":
                i += 1  # the original name follows a rename
        i += 1
    return out
