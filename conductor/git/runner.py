"""Running git: argv lists (never a shell), a scrubbed environment, options we control, timeouts, typed errors.

Every git command of the conductor goes through `Git.run`:
  * the parent's GIT_* variables are removed (a GIT_DIR or GIT_INDEX_FILE inherited from a hook or a shell
    would silently point the command at another repository or index), secrets are stripped, and our own
    settings are added: no system config, no terminal prompts, C locale (messages we parse stay English);
  * `-c` options switch off what could run a program or block on a person for no reason of ours (fsmonitor,
    pagers, external diff, commit signing that would ask for a passphrase) and background gc. Hooks are left
    as the repository configures them: the issue asks that commit hooks run;
  * builtin commands only: git never lets an alias shadow a builtin, and we never call an alias;
  * a timeout per call; a failure raises GitError naming the command, the folder, the exit code and stderr.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from conductor.errors import ConductorError
from conductor.redact import scrubbed_env

DEFAULT_TIMEOUT_S = 120.0
_CONFIG = ("core.fsmonitor=false", "core.pager=cat", "color.ui=false", "core.quotePath=false", "diff.external=",
           "gc.auto=0", "maintenance.auto=false", "advice.detachedHead=false", "commit.gpgSign=false",
           "tag.gpgSign=false", "core.editor=true", "sequence.editor=true", "merge.autoStash=false",
           "rebase.autoStash=false", "init.defaultBranch=main")


class GitError(ConductorError):
    """A git command failed. Names the command, where it ran, its exit code and what git said."""

    def __init__(self, message: str, *, args: Sequence[str] = (), cwd: Path | None = None,
                 returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.command = tuple(args)
        self.cwd = cwd
        self.returncode = returncode
        self.stderr = stderr


class GitNotInstalled(GitError):
    """There is no `git` program on PATH."""


class GitTimeout(GitError):
    """A git command ran longer than its timeout and was killed."""


@dataclass(frozen=True)
class Identity:
    """Who authors and commits what the conductor writes."""

    name: str
    email: str

    def __post_init__(self) -> None:
        for what, value in (("name", self.name), ("email", self.email)):
            if not value.strip() or any(c in value for c in "<>\n\x00"):
                raise ValueError(f"git identity {what} {value!r} is empty or contains '<', '>' or a newline")


@dataclass(frozen=True)
class GitResult:
    args: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def line(self) -> str:
        """The first line of the output, stripped (a sha, a path)."""
        return self.text.strip().split("\n", 1)[0]


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every git we run: no inherited GIT_*, no secrets, our own settings."""
    env = {k: v for k, v in scrubbed_env().items() if not k.startswith("GIT_")}
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true",
                "SSH_ASKPASS": "true", "LC_ALL": "C", "LANGUAGE": "C", "GIT_EDITOR": "true"})
    env.update(extra or {})
    return env


class Git:
    """Runs git for the conductor. Stateless apart from settings; safe to share between threads."""

    def __init__(self, *, timeout_s: float = DEFAULT_TIMEOUT_S, identity: Identity | None = None,
                 executable: str | None = None, config: tuple[str, ...] = ()) -> None:
        self.timeout_s = timeout_s
        self.identity = identity
        self.config = config
        """Extra `-c name=value` settings for every command (e.g. an absolute hooks path)."""
        found = executable or shutil.which("git")
        if found is None:
            raise GitNotInstalled("git is not installed on this machine (Debian: apt-get install git); "
                                  "Conductor needs it to give each ticket its own branch")
        self.executable = found

    def argv(self, args: Sequence[str]) -> list[str]:
        out = [self.executable, "--no-pager"]
        for opt in (*_CONFIG, *self.config):
            out += ["-c", opt]
        if self.identity is not None:
            out += ["-c", f"user.name={self.identity.name}", "-c", f"user.email={self.identity.email}"]
        return out + list(args)

    def run(self, cwd: Path, *args: str, ok: tuple[int, ...] = (0,), stdin: bytes | None = None,
            timeout_s: float | None = None, env: Mapping[str, str] | None = None) -> GitResult:
        """Run `git <args>` in `cwd`. Exit codes in `ok` return a GitResult; others raise GitError."""
        limit = self.timeout_s if timeout_s is None else timeout_s
        shown = "git " + " ".join(args)
        try:
            proc = subprocess.run(self.argv(args), cwd=cwd, env=git_env(env), capture_output=True,
                                  input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                                  timeout=limit, check=False)
        except FileNotFoundError as exc:
            if not Path(cwd).is_dir():
                raise GitError(f"{shown}: the folder {str(cwd)!r} does not exist", args=args, cwd=cwd) from None
            raise GitNotInstalled(f"cannot run git ({exc.strerror})", args=args, cwd=cwd) from None
        except subprocess.TimeoutExpired:
            raise GitTimeout(f"{shown} in {str(cwd)!r} took longer than {limit:g}s and was stopped",
                             args=args, cwd=cwd) from None
        err = proc.stderr.decode("utf-8", errors="replace").strip()
        if proc.returncode not in ok:
            raise GitError(f"{shown} failed in {str(cwd)!r} (exit {proc.returncode}): {err or '(no message)'}",
                           args=args, cwd=cwd, returncode=proc.returncode, stderr=err)
        return GitResult(tuple(args), proc.returncode, proc.stdout, err)


def is_within(path: Path, root: Path) -> bool:
    """Component-wise containment of resolved paths (a sibling 'repo-x' is not inside 'repo')."""
    return Path(os.path.realpath(path)).is_relative_to(Path(os.path.realpath(root)))
