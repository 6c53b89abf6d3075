"""Read-only workspace tools: they run without approval."""

from __future__ import annotations

from typing import Any

from conductor.errors import ToolError
from conductor.messages import ToolSpec
from conductor.tools.base import Tool, ToolContext
from conductor.tools.sandbox import resolve_inside

MAX_READ_BYTES = 200_000
MAX_LIST = 500


class ListDir(Tool):
    spec = ToolSpec("list_dir", "List the entries of a folder in the workspace.",
                    {"type": "object", "properties": {"path": {"type": "string", "description": "Folder, relative "
                                                                "to the workspace root; '.' for the root."}},
                     "required": ["path"]})

    def run(self, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        folder = resolve_inside(ctx.workspace, args.get("path") or ".", ctx.protected)
        if not folder.is_dir():
            raise ToolError(f"{args.get('path')!r} is not a folder")
        entries = sorted(folder.iterdir())
        shown = [e.name + ("/" if e.is_dir() else "") for e in entries[:MAX_LIST]]
        return {"path": args.get("path") or ".", "entries": shown, "truncated": len(entries) > MAX_LIST}


class ReadFile(Tool):
    spec = ToolSpec("read_file", "Read a text file in the workspace, optionally a 1-based line range.",
                    {"type": "object", "properties": {"path": {"type": "string"},
                                                      "start_line": {"type": "integer"},
                                                      "end_line": {"type": "integer"}},
                     "required": ["path"]})

    def run(self, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        path = resolve_inside(ctx.workspace, args["path"], ctx.protected)
        if not path.is_file():
            raise ToolError(f"{args['path']!r} is not a file")
        data = path.read_bytes()[:MAX_READ_BYTES]
        lines = data.decode("utf-8", errors="replace").splitlines()
        start = max(int(args.get("start_line") or 1), 1)
        end = int(args.get("end_line") or len(lines))
        return {"path": args["path"], "start_line": start, "end_line": min(end, len(lines)),
                "total_lines": len(lines), "content": "\n".join(lines[start - 1:end])}


def readonly_tools() -> list[Tool]:
    return [ListDir(), ReadFile()]
