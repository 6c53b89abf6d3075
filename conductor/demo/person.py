"""What a person following the demo's tips answers to each approval: approve the plans and the work, "always
allow" QA's check command, and reject the rewrite of the whole README. The headless walkthrough test and the
GUI pilot both answer with it, so they walk the same paths a person watching the demo does."""

from __future__ import annotations

from dataclasses import dataclass

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
    payload = req.to_json()["payload"]
    assert isinstance(payload, dict)
    args = payload.get("args")
    args = args if isinstance(args, dict) else {}
    if payload.get("tool") == "run_command" and args.get("command") == CHECK_COMMAND:
        return Answer(True, remember=True)
    if payload.get("tool") == "write_file" and args.get("path") == "README.md" \
            and "## Usage" not in str(args.get("content", "")):
        return Answer(False, reason=README_REJECTION)
    return Answer(True)
