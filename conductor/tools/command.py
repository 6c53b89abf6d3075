"""`run_command`: run a command in the workspace, through the approval gate.

Who may let a command run (README "Approvals" says the same):
  * a person, always;
  * an exact allow rule (config `approvals.allow_commands`, or "always allow" a person chose for this track),
    only for a plain argv that `cmdline.rule_problem` accepts (no shell, interpreter given code, runner,
    download, program named by a path), and only while no write or edit in this track ran without a person
    (a write approved automatically could have planted code that `make` or `pytest` then runs);
  * never automatic approval (`auto = ["tool"]`, `--approve tool/all`): that covers writes and edits only.
The program is looked up on the absolute PATH entries outside the workspace only, and runs by its absolute
path (shown in the approval), so a repository cannot shadow `make` or `pytest`.

How a command runs (see cmdline.py for how it is read):
  * `argv` given, or a command line that parses into a plain argv: executed directly, without a shell. What the
    approval showed is exactly what runs; no shell can reinterpret it.
  * a command line with shell syntax (pipes, `&&`, redirects, substitutions, ...): it needs a person's approval
    (never a policy, never auto-approval), and then runs as `bash -c <line>`, because that is what the person
    read and approved. The tool itself refuses to run it unless the gate marked the call as approved by a
    person (`ctx.human_approved`): a second lock, in case a caller skips the gate.
Always: the workspace is the cwd, stdin is /dev/null, secrets are removed from the environment, a timeout
kills the whole process group, and the output is streamed to a spill file with only a head and tail kept.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from conductor.approval_payloads import CommandPreview
from conductor.errors import Cancelled, SandboxViolation, ToolError
from conductor.messages import ToolSpec
from conductor.redact import scrubbed_env
from conductor.tools import cmdline
from conductor.tools.base import Intent, Tool, ToolContext
from conductor.tools.process import resolve_program, run_captured, safe_path
from conductor.tools.reach import command_reach
from conductor.tools.sandbox import workspace_root

DEFAULT_TIMEOUT_S = 120.0
MAX_TIMEOUT_S = 1800.0
HEAD_BYTES = 8_000
TAIL_BYTES = 8_000


UNATTENDED_RULE = ("a command runs without a person only through an exact allow rule (approvals.allow_commands, "
                   "or 'always allow' for this track); automatic approval covers writes and edits, never commands")


def exec_argv(form: cmdline.CommandForm) -> list[str]:
    """What actually gets executed for a command (before the program is resolved to its absolute path)."""
    return list(form.argv) if form.argv is not None else ["bash", "-c", form.text]


def command_env(root: Path, first: tuple[str, ...] = ()) -> dict[str, str]:
    """The child's environment: no secrets, PATH cut to absolute entries outside the workspace (`first`, the
    session's own folders from ToolContext.path_first, go in front under the same rule)."""
    env = scrubbed_env()
    env["PATH"] = safe_path(os.pathsep.join([*first, env.get("PATH", os.defpath)]), root)
    return env


def resolved_argv(form: cmdline.CommandForm, root: Path, first: tuple[str, ...] = ()) -> list[str]:
    """exec_argv with the program replaced by the absolute path it runs as; ToolError when it is not found."""
    argv = exec_argv(form)
    path_var = command_env(root, first)["PATH"]
    prog = resolve_program(argv[0], path_var)
    if prog is None:
        raise ToolError(f"cannot run {argv[0]!r}: not found on PATH (only its absolute entries outside the "
                        f"workspace are searched: {path_var or '(none)'})")
    return [prog, *argv[1:]]


def _spill_target(ctx: ToolContext) -> tuple[Path, bool]:
    """Where the full output goes, and whether that file is ours to delete when the output was short.

    ctx.spill_path may be a file name (used as is when free, else `<stem>.2<suffix>`, `.3`, ...: a second
    command of an attempt never overwrites the first one's full output), an existing folder (a new file inside
    it), or None (a temp file)."""
    sp = ctx.spill_path
    if sp is not None and not Path(sp).is_dir():
        Path(sp).parent.mkdir(parents=True, exist_ok=True)
        return _claim_free(Path(sp)), False
    fd, name = tempfile.mkstemp(prefix="command-", suffix=".log", dir=None if sp is None else sp)
    os.close(fd)
    return Path(name), True


def _claim_free(path: Path) -> Path:
    """Create `path`, or the first free `name.N.suffix` beside it (O_EXCL: two commands never share one)."""
    name, n = path.name, 1
    stem, dot, suffix = name.partition(".")
    while True:
        candidate = path if n == 1 else path.with_name(f"{stem}.{n}{dot}{suffix}" if dot else f"{name}.{n}")
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            return candidate
        except FileExistsError:
            n += 1


class RunCommand(Tool):
    spec = ToolSpec(
        "run_command",
        "Run a command in the workspace folder. Give `argv` (a list: runs without a shell) or `command` (a command "
        "line; without shell syntax it also runs without a shell). Shell syntax (pipes, &&, redirects, $(...)) "
        "needs a person's approval. Needs approval unless the user allowed that exact command. Returns the exit "
        "code and the output (long output is cut in the middle; the full output is saved to a file).",
        {"type": "object", "properties": {
            "command": {"type": "string", "description": "A command line, e.g. 'python -m pytest -q'."},
            "argv": {"type": "array", "items": {"type": "string"},
                     "description": "The program and its arguments, e.g. ['python', '-m', 'pytest', '-q']."},
            "timeout_s": {"type": "number", "minimum": 0.1, "maximum": MAX_TIMEOUT_S,
                          "description": f"Seconds before the command is killed (default {DEFAULT_TIMEOUT_S:g})."}},
         "required": []},
        mutating=True)

    def __init__(self, default_timeout_s: float = DEFAULT_TIMEOUT_S, head_bytes: int = HEAD_BYTES,
                 tail_bytes: int = TAIL_BYTES) -> None:
        self.default_timeout_s = default_timeout_s
        self.head_bytes, self.tail_bytes = head_bytes, tail_bytes

    def _timeout(self, args: dict[str, Any]) -> float:
        t = args.get("timeout_s")
        return min(float(t), MAX_TIMEOUT_S) if t is not None else self.default_timeout_s

    def requires_human(self, args: dict[str, Any]) -> str | None:
        """Every command needs a person unless an exact allow rule matched first (the gate asks the rule
        before this): automatic approval never runs a command."""
        try:
            form = cmdline.from_args(args)
        except ValueError as exc:  # unreadable: fail closed (it will also fail to run)
            return f"the command could not be read ({exc})"
        return cmdline.rule_problem(form) or UNATTENDED_RULE

    def can_remember(self, args: dict[str, Any]) -> bool:
        try:
            return cmdline.rule_allowable(cmdline.from_args(args))
        except ValueError:
            return False

    def preview(self, args: dict[str, Any], ctx: ToolContext) -> CommandPreview:
        form = cmdline.from_args(args)
        root = workspace_root(ctx.workspace)
        return CommandPreview(command=form.text, argv=tuple(resolved_argv(form, root, ctx.path_first)),
                              shell=form.argv is None, cwd=str(root), timeout_s=self._timeout(args))

    def intent(self, args: dict[str, Any], ctx: ToolContext) -> Intent:
        return Intent(command=cmdline.from_args(args).text)

    def run(self, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        form = cmdline.from_args(args)
        why = cmdline.rule_problem(form)
        if why is not None and not ctx.human_approved:  # a second lock behind the gate
            raise SandboxViolation(f"refusing to run {form.text!r} without a person's approval: {why}")
        root = workspace_root(ctx.workspace)
        argv = resolved_argv(form, root, ctx.path_first)
        reach = command_reach(form, root, ctx.protected)
        if reach is not None:
            raise SandboxViolation(f"refusing to run {form.text!r}: {reach}")
        spill, ours = _spill_target(ctx)
        try:
            cap = run_captured(argv, cwd=root, env=command_env(root, ctx.path_first), timeout_s=self._timeout(args),
                               spill=spill, cancel=ctx.cancel, head_bytes=self.head_bytes, tail_bytes=self.tail_bytes)
        except OSError as exc:
            if ours:
                spill.unlink(missing_ok=True)
            hint = " (commands run without a shell unless they use shell syntax)" if form.argv else ""
            raise ToolError(f"cannot run {argv[0]!r}: {exc.strerror or exc}{hint}") from None
        if cap.cancelled:
            raise Cancelled(f"cancelled while running {form.text!r}")
        if ours and not cap.truncated and cap.spill_error is None:
            spill.unlink(missing_ok=True)
        out: dict[str, Any] = {"command": form.text, "argv": argv, "shell": form.argv is None, "cwd": ".",
                               "exit_code": cap.exit_code, "timed_out": cap.timed_out, "output": cap.text(),
                               "output_bytes": cap.total_bytes, "truncated": cap.truncated,
                               "duration_s": cap.duration_s}
        if cap.truncated or not ours:
            out["full_output_path"] = str(spill)
        if cap.timed_out:
            out["note"] = f"killed after {self._timeout(args):g}s (timeout)"
        if cap.spill_error:
            out["spill_error"] = cap.spill_error
        return out
