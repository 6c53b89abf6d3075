"""Which folders a command names: a command may not name a protected folder, nor climb above its workspace
toward one.

File tools already refuse any path outside the workspace. A command is an argv (or a shell line a person
approved), and its arguments can name paths too: `cat ../person-repo/.env`, `git -C .. log`,
`cd .. && ls T2-a1`, `ls link-to-repo/`. Every word of the command that can be read as a path (the word itself,
and the value after an `=`, with `~`, `$HOME` and `$PWD` expanded, symlinks followed) is resolved against the
workspace, and the command is refused when one lands inside a protected folder (the person's checkout, the
shared .git folder, the other worktrees, the tracks folder), or outside the workspace on a folder that holds
one (`..`, `/`, `~`).

In an attempt worktree (a linked worktree: its `.git` is a file) git commands that change what every worktree
shares are refused too: `git stash` (one stash for all worktrees: the person's), `git branch -f/-d/-m`,
`update-ref`, `symbolic-ref`, `tag`, `worktree`, `config`, `remote`, `push`, `gc`, `prune`, `reflog`, `notes`,
`replace`, and `checkout`/`switch` to another branch (restoring files with `git checkout [<rev>] -- <path>` or
`git restore` is fine). The conductor alone moves branches.

This is a static check on the words of a command, not an OS sandbox: a program can still compute a path at
run time. It stops the plain reaches a model writes, and shell syntax still needs a person's approval.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from conductor.tools.cmdline import CommandForm

_SPLIT = re.compile(r"[\s;&|<>()`'\"{}]+")


def _words(form: CommandForm) -> list[str]:
    raw = list(form.argv) if form.argv is not None else _SPLIT.split(form.text)
    out: list[str] = []
    for word in raw:
        out.append(word)
        if "=" in word:  # --git-dir=../x, GIT_DIR=../x, --work-tree=..
            out.append(word.split("=", 1)[1])
        if word.startswith("-") and len(word) > 2 and word[1] != "-" and word[2] in "./~":  # -C.. -I../x
            out.append(word[2:])
    return [w for w in out if w and not (w.startswith("-") and "/" not in w and w not in ("-",))]


def _expand(word: str, cwd: Path) -> str:
    env = {"HOME": os.path.expanduser("~"), "PWD": str(cwd), "OLDPWD": str(cwd.parent)}
    for name, value in env.items():
        word = word.replace("${" + name + "}", value).replace("$" + name, value)
    return os.path.expanduser(word)


_SHARED_GIT = frozenset({"stash", "update-ref", "symbolic-ref", "tag", "worktree", "config", "remote", "push",
                         "gc", "prune", "reflog", "notes", "replace", "filter-branch", "filter-repo", "pack-refs",
                         "switch", "checkout", "branch", "fetch", "pull", "submodule", "maintenance"})
_GIT_VALUE_OPTS = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--exec-path", "--config-env"})
_BRANCH_READS = frozenset({"-l", "--list", "-a", "--all", "-r", "--remotes", "-v", "-vv", "--verbose",
                           "--show-current", "--contains", "--no-contains", "--merged", "--no-merged",
                           "--points-at", "--format", "--sort", "--color", "--no-color", "--column", "--no-column",
                           "-i", "--ignore-case", "--abbrev", "--no-abbrev"})


def _git_subcommands(words: list[str]) -> list[tuple[str, list[str]]]:
    """Each `git <subcommand> <args>` found in the words of a command (global options skipped)."""
    found: list[tuple[str, list[str]]] = []
    for i, word in enumerate(words):
        if os.path.basename(word) != "git":
            continue
        j = i + 1
        while j < len(words) and words[j].startswith("-"):
            j += 2 if words[j] in _GIT_VALUE_OPTS else 1
        if j < len(words):
            found.append((words[j], words[j + 1:]))
    return found


def _shared_git_change(sub: str, args: list[str]) -> bool:
    if sub not in _SHARED_GIT:
        return False
    if sub == "branch":  # listing is fine; creating, forcing, moving or deleting a branch is not
        return any(a not in _BRANCH_READS and not a.startswith(("--format=", "--sort=", "--color=", "--abbrev=",
                                                                "--contains=", "--merged=", "--points-at="))
                   for a in args)
    if sub == "checkout":  # `git checkout [<rev>] -- <paths>` restores files; anything else may switch branches
        return "--" not in args
    return True


def git_escape(form: CommandForm, cwd: Path) -> str | None:
    """Why a git command must not run in the linked worktree `cwd`, or None."""
    if not (cwd / ".git").is_file():
        return None
    raw = list(form.argv) if form.argv is not None else _SPLIT.split(form.text)
    for sub, args in _git_subcommands([w for w in raw if w]):
        if _shared_git_change(sub, args):
            return (f"'git {sub}' changes what every worktree of the repository shares (branches, stash, "
                    "config); in a ticket's worktree only the conductor does that")
    return None


def command_reach(form: CommandForm, cwd: Path, protected: Sequence[Path]) -> str | None:
    """Why this command may not run with `cwd` as its workspace, or None when it names no protected place."""
    escape = git_escape(form, cwd)
    if escape is not None:
        return escape
    if not protected:
        return None
    root = Path(os.path.realpath(cwd))
    guarded = [Path(os.path.realpath(p)) for p in protected]
    for word in _words(form):
        text = _expand(word, root)
        if "\x00" in text:
            continue
        try:
            target = Path(os.path.realpath(root / text))
        except (OSError, ValueError):
            continue
        for g in guarded:
            if target.is_relative_to(g):
                return (f"{word!r} reaches {str(target)!r}, inside the protected folder {str(g)!r}; commands "
                        "stay inside the workspace")
            if not target.is_relative_to(root) and g.is_relative_to(target):
                return (f"{word!r} reaches {str(target)!r}, outside the workspace and above the protected "
                        f"folder {str(g)!r}; commands stay inside the workspace")
    return None
