"""Read-only file tools: `read_file` and `list_dir`. They run without approval, inside the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conductor.errors import ToolError
from conductor.messages import ToolSpec
from conductor.tools.base import Tool, ToolContext
from conductor.tools.sandbox import denied_reason, relative, resolve_read, workspace_root

MAX_READ_CHARS = 100_000
"""What one read_file call returns at most; the result says where to continue."""
MAX_FILE_BYTES = 20_000_000
"""Bigger files are refused: reading them line by line would still cost time the model can't use."""
MAX_LIST = 500


class ListDir(Tool):
    spec = ToolSpec("list_dir", "List the entries of a folder in the workspace (folders end with '/').",
                    {"type": "object", "properties": {"path": {"type": "string", "description": "Folder, relative "
                                                                "to the workspace root; '.' for the root."}},
                     "required": []})

    def run(self, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        shown = args.get("path") or "."
        root = workspace_root(ctx.workspace)
        folder = resolve_read(ctx.workspace, shown, ctx.protected)
        if not folder.is_dir():
            raise ToolError(f"{shown!r} is not a folder")
        entries = []
        for e in sorted(folder.iterdir()):
            if denied_reason(root, e, ctx.protected) is not None:
                continue  # .git/, secrets, the tracks folder: not listed, as they can't be opened
            entries.append(e.name + ("/" if e.is_dir() else ""))
        return {"path": relative(root, folder), "entries": entries[:MAX_LIST], "count": len(entries),
                "truncated": len(entries) > MAX_LIST}


class ReadFile(Tool):
    spec = ToolSpec("read_file", "Read a text file in the workspace, optionally a 1-based inclusive line range. "
                                 f"At most {MAX_READ_CHARS} characters come back; 'next_start_line' says where to "
                                 "continue when the result is truncated.",
                    {"type": "object", "properties": {"path": {"type": "string"},
                                                      "start_line": {"type": "integer", "minimum": 1},
                                                      "end_line": {"type": "integer", "minimum": 1}},
                     "required": ["path"]})

    def run(self, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        shown = args["path"]
        path = resolve_read(ctx.workspace, shown, ctx.protected)
        if not path.is_file():
            raise ToolError(f"{shown!r} is not a file" if path.exists() else f"{shown!r} does not exist")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ToolError(f"{shown!r} is {size} bytes, more than read_file reads ({MAX_FILE_BYTES}); "
                            "use search, or run_command with head/tail")
        with open(path, "rb") as f:
            if b"\x00" in f.read(8192):
                raise ToolError(f"{shown!r} looks binary ({size} bytes); read_file reads text files")
        start = int(args.get("start_line") or 1)
        end = args.get("end_line")
        return {"path": shown, **_read_lines(path, start, None if end is None else int(end))}


def _read_lines(path: Path, start: int, end: int | None) -> dict[str, Any]:
    """Lines start..end (1-based, inclusive), stopping at MAX_READ_CHARS."""
    out: list[str] = []
    used, total, next_start = 0, 0, None
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        for n, line in enumerate(f, 1):
            total = n
            if n < start or (end is not None and n > end) or next_start is not None:
                continue
            if used + len(line) > MAX_READ_CHARS and out:
                next_start = n
                continue
            out.append(line[:MAX_READ_CHARS])
            used += len(line)
    last = start + len(out) - 1 if out else start - 1
    return {"start_line": start, "end_line": last, "total_lines": total, "content": "".join(out),
            "truncated": next_start is not None, "next_start_line": next_start}


def readonly_tools() -> list[Tool]:
    """Every tool that never changes anything: safe to run without asking."""
    from conductor.tools.git import GitDiff, GitStatus
    from conductor.tools.search import Search

    return [ReadFile(), ListDir(), Search(), GitStatus(), GitDiff()]
