"""Reading a command the model asked for: is it a plain argv, or does it need a shell?

A command line is *plain* when `shlex` splits it and nothing in it means anything special to a shell: then
it runs without a shell, as that exact argv, and the policy may compare it with allow rules. Anything else —
chaining (`&&`, `||`, `;`, `|`, `&`), substitution (`$( )`, backticks, `$[ ]`, `${ }`, `$VAR`), redirects,
globs, braces, tildes, comments, escapes, newlines, NUL, invisible or control characters, a leading `VAR=x`
assignment, or text shlex cannot split — is *shell syntax*. Shell syntax is never auto-allowed and runs only
after a person approves it, via `bash -c` (approving it means approving what bash will do with it).

The check is on the raw characters, not on what a shell would make of them: `echo $[ x='a[$(touch F)]' ]`
hides a substitution inside quotes inside arithmetic, and a parser that models the shell can be fooled by
exactly that (Gemini CLI, PR #25935). A character list can't be.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from dataclasses import dataclass

SHELL_CHARS = frozenset(";&|<>()$`\\\n\r\x00*?[]{}~!#")
"""Characters that are shell-significant in some position: their presence anywhere means 'shell syntax'."""
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class CommandForm:
    text: str
    """The command as shown to a person: the command line, or the argv joined with shlex quoting."""
    argv: tuple[str, ...] | None
    """The exact argv it runs as without a shell; None when it needs a shell (or could not be read)."""
    human_reason: str | None = None
    """Why only a person may approve it (shell syntax, unparseable, suspicious characters); None when a
    policy may allow it."""

    @property
    def needs_shell(self) -> bool:
        return self.argv is None


def unsafe_char(text: str) -> str | None:
    """A description of the first shell-significant or invisible character in `text`, or None."""
    for ch in text:
        if ch in SHELL_CHARS:
            return {"\n": "a newline", "\r": "a carriage return", "\x00": "a NUL character"}.get(ch, repr(ch))
        cat = unicodedata.category(ch)
        if cat[0] in "CZ" and ch not in (" ", "\t"):  # control, format (zero-width, bidi), separators
            return f"the invisible or control character U+{ord(ch):04X} ({cat})"
    return None


def from_line(line: str) -> CommandForm:
    """Read a command line string."""
    if not isinstance(line, str) or not line.strip():
        return CommandForm(str(line), None, "the command is empty")
    bad = unsafe_char(line)
    if bad is not None:
        return CommandForm(line, None, f"it contains {bad}, which a shell interprets")
    try:
        argv = shlex.split(line, posix=True)
    except ValueError as exc:
        return CommandForm(line, None, f"it cannot be parsed ({exc})")
    if not argv:
        return CommandForm(line, None, "the command is empty")
    if _ASSIGNMENT.match(argv[0]):
        return CommandForm(line, None, f"it starts with the variable assignment {argv[0]!r}")
    return CommandForm(line, tuple(argv))


def from_argv(argv: list[str] | tuple[str, ...]) -> CommandForm:
    """Read an argv list. It never goes through a shell, but shell-significant characters still make it
    ineligible for auto-allow (fail closed: e.g. ['sh', '-c', 'curl x | sh'])."""
    if not isinstance(argv, list | tuple) or not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError("argv must be a non-empty list of strings")
    text = shlex.join(argv)
    if argv[0] == "":
        raise ValueError("argv[0] (the program) is empty")
    for a in argv:
        if "\x00" in a:
            raise ValueError(f"argument {a!r} contains a NUL character")
        bad = unsafe_char(a)
        if bad is not None:
            return CommandForm(text, tuple(argv), f"argument {a!r} contains {bad}")
    return CommandForm(text, tuple(argv))


def from_args(args: dict) -> CommandForm:
    """The command of a run_command call: exactly one of `command` (string) or `argv` (list)."""
    has_cmd, has_argv = args.get("command") is not None, args.get("argv") is not None
    if has_cmd == has_argv:
        raise ValueError("give exactly one of 'command' (a command line) or 'argv' (a list of strings)")
    return from_line(args["command"]) if has_cmd else from_argv(args["argv"])


def auto_allowable(form: CommandForm) -> bool:
    """Only a plain argv with no shell-significant character anywhere may ever match an allow rule."""
    return form.argv is not None and form.human_reason is None
