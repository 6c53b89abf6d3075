"""Read-only git tools: `git_status` and `git_diff`, for a workspace that is a git repository.

git is run with everything that could execute repository-controlled programs switched off (fsmonitor, hooks,
external diff drivers, textconv, pagers), with optional locks off (status must not write the index), and with
the same scrubbed environment as commands. Output is capped.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from conductor.errors import ToolError
from conductor.messages import ToolSpec
from conductor.tools.base import Tool, ToolContext
from conductor.tools.sandbox import resolve_read, workspace_root
from conductor.redact import scrubbed_env

MAX_DIFF_CHARS = 100_000
GIT_TIMEOUT_S = 30.0
_SAFE_CONFIG = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-c", "core.pager=cat",
                "-c", "diff.external=", "-c", "core.untrackedCache=false", "-c", "color.ui=false")


def is_git_repo(workspace: Path) -> bool:
    return (Path(workspace) / ".git").exists()


def run_git(workspace: Path, args: list[str]) -> str:
    """Run a read-only git command in the workspace; ToolError with git's message when it fails."""
    root = workspace_root(workspace)
    if not is_git_repo(root):
        raise ToolError(f"the workspace {str(root)!r} is not a git repository")
    env = scrubbed_env(extra={"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat",
                              "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"})
    try:
        proc = subprocess.run(["git", "--no-pager", *_SAFE_CONFIG, *args], cwd=root, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=GIT_TIMEOUT_S)
    except FileNotFoundError:
        raise ToolError("git is not installed on this machine") from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"git {' '.join(args)} took longer than {GIT_TIMEOUT_S}s") from None
    if proc.returncode != 0:
        raise ToolError(f"git {' '.join(args)} failed: {proc.stderr.decode('utf-8', 'replace').strip()}")
    return proc.stdout.decode("utf-8", errors="replace")


class GitStatus(Tool):
    spec = ToolSpec("git_status", "Show the git branch and the changed, staged and untracked files.",
                    {"type": "object", "properties": {}, "required": []})

    def run(self, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        out = run_git(ctx.workspace, ["status", "--porcelain=v1", "--branch", "--untracked-files=all"])
        branch, files = "", []
        for line in out.splitlines():
            if line.startswith("## "):
                branch = line[3:]
            elif len(line) > 3:
                files.append({"status": line[:2], "path": line[3:]})
        return {"branch": branch, "files": files[:1000], "count": len(files), "clean": not files}


class GitDiff(Tool):
    spec = ToolSpec("git_diff", "Show the git diff of the working tree (or of the staged changes), optionally "
                                "for one path.",
                    {"type": "object", "properties": {"path": {"type": "string"},
                                                      "staged": {"type": "boolean"}},
                     "required": []})

    def run(self, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        cmd = ["diff", "--no-ext-diff", "--no-textconv", "--no-color"]
        if args.get("staged"):
            cmd.append("--cached")
        if args.get("path"):
            target = resolve_read(ctx.workspace, args["path"], ctx.protected)
            cmd += ["--", str(target.relative_to(workspace_root(ctx.workspace)))]
        diff = run_git(ctx.workspace, cmd)
        cut = len(diff) > MAX_DIFF_CHARS
        return {"diff": diff[:MAX_DIFF_CHARS] + ("\n[... diff truncated ...]\n" if cut else ""),
                "truncated": cut, "chars": len(diff)}
