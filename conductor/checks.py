"""QA runs the workspace's checks: the configured check command, run by Tier 4's attempt in the ticket's tree.

The command goes through the ToolGate like any worker command: it runs unattended only through an exact allow
rule the person set (approvals.allow_commands, or 'always allow'); otherwise the person is asked. Its output is
written to the ticket's QA pane; a failing check fails the ticket with the output's tail as the hint for the
next attempt, and a passing one is part of what Tier 4 judges.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from conductor.messages import ToolCall
from conductor.tools.base import ToolContext
from conductor.tools.gate import ToolGate

HINT_TAIL_CHARS = 3000
"""How much of a failing check's output becomes the hint (the end: where test runners put the summary)."""


@dataclass(frozen=True)
class CheckRun:
    command: str
    passed: bool
    ran: bool
    """False: it did not run (rejected, refused, not available); `detail` says why."""
    exit_code: int | None
    output: str
    detail: str = ""

    def hint(self) -> str:
        """The next attempt's hint for a failed check."""
        tail = self.output[-HINT_TAIL_CHARS:]
        return f"the check `{self.command}` failed (exit {self.exit_code}); its output ends:\n{tail}"

    def for_review(self) -> str:
        """What Tier 4 reads besides the worker's report."""
        if not self.ran:
            return f"\n\nCHECKS: `{self.command}` did not run: {self.detail}"
        return f"\n\nCHECKS: `{self.command}` passed (exit 0); output ends:\n{self.output[-1500:]}"


def run_check(gate: ToolGate, ctx: ToolContext, command: str, timeout_s: float, *,
              show: Callable[[str], None]) -> CheckRun:
    """Run the check command in ctx.workspace through the gate; `show` gets the text for the ticket's pane."""
    call_id = f"check-a{ctx.prov.attempt}"
    show(f"\n$ {command}\n")
    result, _ = gate.run(ToolCall(call_id, "run_command", {"command": command, "timeout_s": timeout_s}), ctx)
    if not result.ok:
        show(f"(the check did not run: {result.error})\n")
        return CheckRun(command, passed=False, ran=False, exit_code=None, output="", detail=result.error or "failed")
    out = result.output
    text = str(out.get("output", ""))
    code = out.get("exit_code")
    timed_out = out.get("timed_out") is True
    end = "\n" if text and not text.endswith("\n") else ""
    passed = code == 0 and not timed_out
    verdict = "the check passed" if passed else "the check FAILED: this output is the hint for the next attempt"
    show(f"{text}{end}(exit {code}{', timed out' if timed_out else ''}: {verdict})\n")
    return CheckRun(command, passed=passed, ran=True, exit_code=code if isinstance(code, int) else None, output=text)
