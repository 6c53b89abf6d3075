"""Workspace tools for Tier 3 workers (and Tier 4's checks), the sandbox and the command policy.

    from conductor.tools import workspace_toolbox, ToolGate, CommandPolicy, ToolContext
    toolbox = workspace_toolbox(workspace)                 # read_file list_dir search [git_status git_diff]
                                                           # write_file edit_file run_command
    policy = CommandPolicy.from_config(cfg, journal)       # allow rules: config + remembered (from the journal)
    gate = ToolGate(toolbox, broker, journal, allow=policy, approval_timeout_s=cfg.approvals.timeout_s,
                    comms=comms_log)
    result, replayed = gate.run(call, ToolContext(workspace, prov, cancel, spill_path, protected=(tracks_dir,)))
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from conductor.tools.base import Tool, Toolbox, ToolContext, ToolSource
from conductor.tools.command import RunCommand
from conductor.tools.edit import EditFile, WriteFile
from conductor.tools.gate import ToolGate, idempotency_key
from conductor.tools.git import GitDiff, GitStatus, is_git_repo
from conductor.tools.policy import CommandPolicy
from conductor.tools.readonly import ListDir, ReadFile, readonly_tools
from conductor.tools.search import Search

__all__ = [
    "CommandPolicy",
    "Tool",
    "ToolContext",
    "ToolGate",
    "ToolSource",
    "Toolbox",
    "idempotency_key",
    "mutating_tools",
    "readonly_tools",
    "workspace_toolbox",
]


def mutating_tools(default_timeout_s: float | None = None) -> list[Tool]:
    """The tools that change things; each goes through the approval gate."""
    cmd = RunCommand() if default_timeout_s is None else RunCommand(default_timeout_s=default_timeout_s)
    return [WriteFile(), EditFile(), cmd]


def workspace_toolbox(workspace: Path | str | None = None, *, readonly: bool = False,
                      command_timeout_s: float | None = None, sources: Iterable[ToolSource] = ()) -> Toolbox:
    """Every workspace tool. With `workspace` given, git tools are left out when it is not a git repository
    (without it they are included and answer "not a git repository" when that is so). `readonly=True` gives
    only the tools that never change anything (for Tier 4 review). `sources` add tools known at run time (MCP
    servers); a read-only toolbox never has them (their tools may change anything)."""
    tools: list[Tool] = [ReadFile(), ListDir(), Search()]
    if workspace is None or is_git_repo(Path(workspace)):
        tools += [GitStatus(), GitDiff()]
    if not readonly:
        tools += mutating_tools(command_timeout_s)
    return Toolbox(tools, () if readonly else sources)
