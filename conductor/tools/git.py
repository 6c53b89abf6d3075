"""Read-only git tools: `git_status` and `git_diff`, for a workspace that is a git repository.

git is run with everything that could execute repository-controlled programs switched off (fsmonitor, hooks,
external diff drivers, textconv, pagers), with optional locks off (status must not write the index), and with
the same scrubbed environment as commands. Output is capped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from conductor.errors import ToolError
from conductor.messages import ToolSpec
from conductor.redact import scrubbed_env
from conductor.tools.base import Tool, ToolContext
from conductor.tools.process import resolve_program, run_captured, safe_path
from conductor.tools.sandbox import denied_reason, resolve_read, workspace_root

MAX_DIFF_CHARS = 100_000
GIT_TIMEOUT_S = 30.0
_SAFE_CONFIG = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-c", "core.pager=cat",
                "-c", "diff.external=", "-c", "core.untrackedCache=false", "-c", "color.ui=false")


def is_git_repo(workspace: Path) -> bool:
    return (Path(workspace) / ".git").exists()


MAX_GIT_BYTES = 4_000_000
"""What is read of git's output at most (a diff of a huge file is cut, never read whole into memory)."""


def run_git(workspace: Path, args: list[str], max_bytes: int = MAX_GIT_BYTES) -> tuple[str, bool]:
    """Run a read-only git command in the workspace: (its output, redacted and at most `max_bytes`, and
    whether it was cut). ToolError with git's message when it fails."""
    root = workspace_root(workspace)
    if not is_git_repo(root):
        raise ToolError(f"the workspace {str(root)!r} is not a git repository")
    env = scrubbed_env(extra={"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat",
                              "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"})
    env["PATH"] = safe_path(env.get("PATH"), root)
    git = resolve_program("git", env["PATH"])
    if git is None:
        raise ToolError("git is not installed on this machine")
    cap = run_captured([git, "--no-pager", *_SAFE_CONFIG, *args], cwd=root, env=env, timeout_s=GIT_TIMEOUT_S,
                       spill=None, head_bytes=max_bytes, tail_bytes=0)
    if cap.timed_out:
        raise ToolError(f"git {' '.join(args)} took longer than {GIT_TIMEOUT_S}s")
    out = cap.head.decode("utf-8", errors="replace")
    if cap.exit_code != 0:
        raise ToolError(f"git {' '.join(args)} failed: {out.strip()[-2000:]}")
    return out, cap.truncated


def hidden(root: Path, rel: str, protected: tuple[Path, ...]) -> bool:
    """Whether a path git reports is one the sandbox hides (.env*, keys, .git/, the tracks folder, config)."""
    lexical = root / rel
    try:
        real = lexical.resolve()
        if not real.is_relative_to(root):
            return True
        return denied_reason(root, lexical, protected) is not None or denied_reason(root, real, protected) is not None
    except (OSError, RuntimeError, ValueError):  # can't tell: hide it
        return True


_DIFF_HEADER = re.compile(r'^diff --git "?a/(.*?)"? "?b/(.*?)"?$')


def filter_diff(diff: str, root: Path, protected: tuple[Path, ...]) -> tuple[str, list[str]]:
    """The diff without the sections of hidden files, and how many sections were dropped (by name count)."""
    keep: list[str] = []
    dropped: list[str] = []
    skipping = False
    for line in diff.splitlines(keepends=True):
        m = _DIFF_HEADER.match(line.rstrip("\n"))
        if m:
            skipping = hidden(root, m.group(1), protected) or hidden(root, m.group(2), protected)
            if skipping:
                dropped.append(m.group(2))
        if not skipping:
            keep.append(line)
    return "".join(keep), dropped


class GitStatus(Tool):
    spec = ToolSpec("git_status", "Show the git branch and the changed, staged and untracked files.",
                    {"type": "object", "properties": {}, "required": []})

    def run(self, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        out, _ = run_git(ctx.workspace, ["status", "--porcelain=v1", "--branch", "--untracked-files=all"])
        root = workspace_root(ctx.workspace)
        branch, files = "", []
        for line in out.splitlines():
            if line.startswith("## "):
                branch = line[3:]
            elif len(line) > 3:
                path = line[3:].split(" -> ")[-1].strip('"')
                if not hidden(root, path, ctx.protected):  # .env, keys, the tracks folder: not even named
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
        raw, read_cut = run_git(ctx.workspace, cmd)
        diff, dropped = filter_diff(raw, workspace_root(ctx.workspace), ctx.protected)
        cut = read_cut or len(diff) > MAX_DIFF_CHARS
        out: dict[str, Any] = {"diff": diff[:MAX_DIFF_CHARS] + ("\n[... diff truncated; give a path to see one "
                                                                "file ...]\n" if cut else ""),
                               "truncated": cut, "chars": len(diff)}
        if dropped:
            out["hidden_files"] = len(dropped)  # a count, not names: secrets files stay unnamed
        return out
