"""What a person following the demo's tips answers to each approval: approve the plans and the work, "always
allow" QA's check command, and reject the rewrite of the whole README. The headless walkthrough test and the
GUI pilot both answer with it, so they walk the same paths a person watching the demo does."""

from __future__ import annotations

from dataclasses import dataclass

from conductor.approval_payloads import ToolPayload
from conductor.approvals import ApprovalRequest
from conductor.demo.project import CHECK_COMMAND

README_REJECTION = "Keep the README: add a link."


@dataclass(frozen=True)
class Answer:
    approve: bool
    remember: bool = False
    """'Always allow this exact command for this track'."""
    reason: str = ""


def answer(req: ApprovalRequest) -> Answer:
    match req.payload:
        case ToolPayload(tool="run_command", args=args) if args.get("command") == CHECK_COMMAND:
            return Answer(True, remember=True)
        case ToolPayload(tool="write_file", args=args) if args.get("path") == "README.md" \
                and "## Usage" not in str(args.get("content", "")):
            return Answer(False, reason=README_REJECTION)
        case _:
            return Answer(True)
