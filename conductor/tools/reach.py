"""Which folders a command names: a command may not name a protected folder, nor climb above its workspace
toward one.

File tools already refuse any path outside the workspace. A command is an argv (or a shell line a person
approved), and its arguments can name paths too: `cat ../person-repo/.env`, `git -C .. log`,
`cd .. && ls T2-a1`, `ls link-to-repo/`. Every word of the command that can be read as a path (the word itself,
and the value after an `=`, with `~`, `$HOME` and `$PWD` expanded, symlinks followed) is resolved against the
workspace, and the command is refused when one lands inside a protected folder (the person's checkout, the
shared .git folder, the other worktrees, the tracks folder), or outside the workspace on a folder that holds
one (`..`, `/`, `~`).

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


def command_reach(form: CommandForm, cwd: Path, protected: Sequence[Path]) -> str | None:
    """Why this command may not run with `cwd` as its workspace, or None when it names no protected place."""
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
                return f"{word!r} reaches {str(target)!r}, inside the protected folder {str(g)!r}"
            if not target.is_relative_to(root) and g.is_relative_to(target):
                return (f"{word!r} reaches {str(target)!r}, outside the workspace and above the protected "
                        f"folder {str(g)!r}")
    return None
