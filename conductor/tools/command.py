"""`run_command`: run a command in the workspace, through the approval gate.

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

from conductor.errors import Cancelled, SandboxViolation, ToolError
from conductor.messages import ToolSpec
from conductor.tools import cmdline
from conductor.tools.base import Intent, Tool, ToolContext
from conductor.tools.process import run_captured
from conductor.tools.sandbox import workspace_root
from conductor.tools.secrets import scrubbed_env

DEFAULT_TIMEOUT_S = 120.0
MAX_TIMEOUT_S = 1800.0
HEAD_BYTES = 8_000
TAIL_BYTES = 8_000


def exec_argv(form: cmdline.CommandForm) -> list[str]:
    """What actually gets executed for a command."""
    return list(form.argv) if form.argv is not None else ["bash", "-c", form.text]


def _spill_target(ctx: ToolContext) -> tuple[Path, bool]:
    """Where the full output goes, and whether that file is ours to delete when the output was short.

    ctx.spill_path may be a file (written as is), an existing folder (a new file inside it), or None (a temp
    file)."""
    sp = ctx.spill_path
    if sp is not None and not Path(sp).is_dir():
        Path(sp).parent.mkdir(parents=True, exist_ok=True)
        return Path(sp), False
    fd, name = tempfile.mkstemp(prefix="command-", suffix=".log", dir=None if sp is None else sp)
    os.close(fd)
    return Path(name), True


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
        try:
            return cmdline.from_args(args).human_reason
        except ValueError as exc:  # unreadable: fail closed (it will also fail to run)
            return f"the command could not be read ({exc})"

    def preview(self, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        form = cmdline.from_args(args)
        return {"command": form.text, "argv": exec_argv(form), "shell": form.argv is None,
                "cwd": str(workspace_root(ctx.workspace)), "timeout_s": self._timeout(args),
                "needs_person": form.human_reason}

    def intent(self, args: dict[str, Any], ctx: ToolContext) -> Intent:
        return Intent(command=cmdline.from_args(args).text)

    def run(self, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        form = cmdline.from_args(args)
        if form.argv is None and not ctx.human_approved:
            raise SandboxViolation(f"refusing to run {form.text!r} without a person's approval: {form.human_reason}")
        root, argv = workspace_root(ctx.workspace), exec_argv(form)
        spill, ours = _spill_target(ctx)
        try:
            cap = run_captured(argv, cwd=root, env=scrubbed_env(), timeout_s=self._timeout(args), spill=spill,
                               cancel=ctx.cancel, head_bytes=self.head_bytes, tail_bytes=self.tail_bytes)
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
