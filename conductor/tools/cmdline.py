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
from typing import Any

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


def from_args(args: dict[str, Any]) -> CommandForm:
    """The command of a run_command call: exactly one of `command` (string) or `argv` (list)."""
    has_cmd, has_argv = args.get("command") is not None, args.get("argv") is not None
    if has_cmd == has_argv:
        raise ValueError("give exactly one of 'command' (a command line) or 'argv' (a list of strings)")
    return from_line(args["command"]) if has_cmd else from_argv(args["argv"])


def auto_allowable(form: CommandForm) -> bool:
    """Only a plain argv with no shell-significant character anywhere, naming no interpreter, runner, download
    or path (see `rule_problem`), may ever match an allow rule."""
    return rule_problem(form) is None


# --- what an allow rule may name ------------------------------------------------------------------------------

SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "busybox", "rbash",
                    "yash", "elvish", "nu", "xonsh"})
RUNNERS = frozenset({"env", "xargs", "nohup", "setsid", "timeout", "nice", "ionice", "stdbuf", "chroot", "sudo",
                     "su", "doas", "runuser", "time", "watch", "strace", "ltrace", "gdb", "flock", "unbuffer",
                     "script", "parallel", "exec", "command", "builtin", "eval", "source", ".", "chrt", "taskset",
                     "unshare", "nsenter", "systemd-run", "at", "batch", "crontab", "expect", "ssh", "sshpass",
                     "tmux", "screen", "dbus-launch", "xvfb-run", "firejail", "bwrap", "proot", "fakeroot"})
"""Programs whose job is to run another program: the command they run is in their arguments."""
INTERPRETERS = frozenset({"python", "pypy", "perl", "ruby", "irb", "node", "nodejs", "deno", "bun", "php", "lua",
                          "luajit", "tclsh", "wish", "expect", "rscript", "r", "julia", "osascript", "powershell",
                          "pwsh", "awk", "gawk", "mawk", "nawk", "busybox", "sed", "gsed", "guile", "racket",
                          "scheme", "sbcl", "clisp", "ghci", "runghc", "runhaskell", "swift", "kotlin", "scala",
                          "groovy", "jshell", "java", "dotnet", "ts-node", "tsx", "npx", "pnpx", "bunx", "uvx",
                          "pipx", "m4", "gdb", "vim", "vi", "nvim", "emacs", "ed", "ex", "make", "gmake", "cmake"})
"""Programs that run code given on their command line or in a file named there. Exception: `python -m MODULE`
(an installed module, not code in the arguments) may be a rule; make/cmake may be rules only without -f/-C/
--eval style arguments (see `_make_problem`)."""
DOWNLOADERS = frozenset({"curl", "wget", "aria2c", "scp", "sftp", "rsync", "ftp", "tftp", "nc", "ncat", "netcat",
                         "socat", "telnet", "lftp", "httpie", "http", "https", "fetch", "git-lfs"})
"""Programs that bring files from elsewhere (a downloaded file run next is code no one reviewed)."""
_FIND_EXEC = frozenset({"-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprint0", "-fprintf", "-fls"})
_GIT_RUNS_CODE = ("-c", "--config-env", "--exec-path", "--git-dir", "--work-tree", "-C", "--namespace",
                  "--super-prefix", "--upload-pack", "--receive-pack", "--exec", "--template", "--ext-diff")
_GIT_RISKY_SUBCOMMANDS = frozenset({"clone", "fetch", "pull", "push", "submodule", "remote", "config", "bisect",
                                    "filter-branch", "rebase", "am", "apply", "daemon", "instaweb", "difftool",
                                    "mergetool", "credential", "send-email", "archive", "bundle", "lfs"})
_VERSIONED = re.compile(r"^([a-z][a-z-]*?)[0-9.]*(?:-[0-9.]+)?$")


def program_name(argv0: str) -> str:
    """The program's family name: '/usr/bin/python3.11' -> 'python', 'node18' -> 'node'."""
    base = argv0.rsplit("/", 1)[-1].lower()
    m = _VERSIONED.match(base)
    return m.group(1) if m else base


def _python_problem(argv: tuple[str, ...]) -> str | None:
    """`python [-flags] -m module args...` is fine; anything that hands python code or a script is not."""
    for i, a in enumerate(argv[1:], 1):
        if a == "-m":
            return None if i + 1 < len(argv) else "python -m needs a module"
        if a in ("-c", "-") or a.startswith("-c") or not a.startswith("-"):
            return "an interpreter given code or a script always needs a person"
        if a in ("-W", "-X", "-Q"):  # option with a separate value: skip its value
            continue
    return "an interpreter reading code from its input always needs a person"


def _make_problem(argv: tuple[str, ...]) -> str | None:
    for a in argv[1:]:
        if a.startswith(("-f", "--file", "--makefile", "-C", "--directory", "--eval", "-E", "-I", "--include-dir",
                         "-P", "-D", "-S", "--install", "--build", "-e", "--environment-overrides")) \
                or ("=" in a and not a.startswith("-")):
            return f"{argv[0]} {a!r} changes what it runs; only plain targets may be allowed"
    return None


def rule_problem(form: CommandForm) -> str | None:
    """Why no allow rule may ever run this command unattended; None when an exact rule may.

    Fails closed: shell syntax; a program named by a path (`./x`, `bin/x`, `/abs/x`: a repository could put it
    there); shells, programs that run other programs (env, xargs, nohup, setsid, timeout, sudo, ...), interpreters
    given code or a script (python -c, perl -e, node -e, awk, sed, ...; `python -m module` is allowed), downloads
    (curl, wget, ...), `find` with -exec/-delete, `git` with -c/--exec-path/-C/... or subcommands that fetch or
    run configured programs."""
    if form.argv is None or form.human_reason is not None:
        return form.human_reason or "it needs a shell"
    argv = form.argv
    if "/" in argv[0]:
        return (f"the program {argv[0]!r} is named by a path; rules name programs found on PATH (absolute "
                "entries only), so a repository cannot put its own file in their place")
    name = program_name(argv[0])
    if name in SHELLS:
        return f"{argv[0]!r} is a shell: it runs whatever script or -c text it is given"
    if name in RUNNERS:
        return f"{argv[0]!r} runs another program named in its arguments"
    if name in DOWNLOADERS:
        return f"{argv[0]!r} downloads or sends files; what it brings in has not been reviewed"
    if name == "python" or name == "pypy":
        return _python_problem(argv)
    if name in ("make", "gmake", "cmake"):
        return _make_problem(argv)
    if name in INTERPRETERS:
        return f"{argv[0]!r} is an interpreter: it runs code given in its arguments or a file"
    if name == "find" and any(a in _FIND_EXEC for a in argv[1:]):
        return "find with -exec/-ok/-delete runs commands or deletes files"
    if name == "git":
        for a in argv[1:]:
            if a.startswith(_GIT_RUNS_CODE):
                return f"git {a!r} can make git run other programs or act on another repository"
        sub = next((a for a in argv[1:] if not a.startswith("-")), "")
        if sub in _GIT_RISKY_SUBCOMMANDS:
            return f"git {sub} talks to other repositories or runs configured programs"
    return None


def rule_allowable(form: CommandForm) -> bool:
    """A plain argv that an exact allow rule may run unattended."""
    return rule_problem(form) is None
