"""`search`: a regex over the workspace's text files, respecting .gitignore, never entering .git/ or denied
folders, never following a symlink out. Bounded: result cap, per-file size cap, line length cap, time budget."""

from __future__ import annotations

import fnmatch
import re
import time
from pathlib import Path
from typing import Any

from conductor.errors import ToolError
from conductor.messages import ToolSpec
from conductor.tools.base import Tool, ToolContext
from conductor.tools.gitignore import GitIgnore
from conductor.tools.sandbox import denied_reason, relative, resolve_read, walk_allowed, workspace_root

DEFAULT_RESULTS = 100
MAX_RESULTS = 500
MAX_FILE_BYTES = 2_000_000
MAX_LINE_CHARS = 400
"""Longer matching lines are shown cut (minified files would flood the result)."""
TIME_BUDGET_S = 10.0


class Search(Tool):
    spec = ToolSpec("search", "Search the workspace's text files for a Python regular expression, line by line. "
                              "Skips .git/, files ignored by .gitignore, binary and very large files.",
                    {"type": "object", "properties": {
                        "pattern": {"type": "string", "description": "Python regex, matched per line."},
                        "path": {"type": "string", "description": "Folder (or file) to search, relative to the "
                                                                  "workspace; default '.'."},
                        "glob": {"type": "string", "description": "Only file names matching this glob, e.g. "
                                                                  "'*.py'."},
                        "ignore_case": {"type": "boolean"},
                        "max_results": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS}},
                     "required": ["pattern"]})

    def run(self, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        try:
            regex = re.compile(args["pattern"], re.IGNORECASE if args.get("ignore_case") else 0)
        except re.error as exc:
            raise ToolError(f"invalid regex {args['pattern']!r}: {exc}") from None
        root = workspace_root(ctx.workspace)
        start = resolve_read(ctx.workspace, args.get("path") or ".", ctx.protected)
        limit = min(int(args.get("max_results") or DEFAULT_RESULTS), MAX_RESULTS)
        files = [start] if start.is_file() else _files(root, start, args.get("glob"), ctx.protected)
        matches: list[dict[str, Any]] = []
        searched, skipped, deadline = 0, 0, time.monotonic() + TIME_BUDGET_S
        timed_out = False
        for path in files:
            if len(matches) > limit:
                break
            if time.monotonic() > deadline:
                timed_out = True
                break
            hits = _search_file(root, path, regex, limit + 1 - len(matches), ctx.protected)
            if hits is None:
                skipped += 1
                continue
            searched += 1
            matches += hits
        return {"pattern": args["pattern"], "matches": matches[:limit], "files_searched": searched,
                "files_skipped": skipped, "truncated": len(matches) > limit or timed_out,
                **({"note": f"stopped after {TIME_BUDGET_S}s; narrow the path or the pattern"} if timed_out else {})}


def _files(root: Path, start: Path, glob: str | None, protected: tuple[Path, ...]):  # noqa: ANN202 - generator
    """Files below `start`, top-down, pruning ignored and denied folders (git never looks inside an ignored
    folder either, so its contents can't be re-included)."""
    ignore = GitIgnore()
    for here in [start, *start.parents]:  # .gitignore files above the start folder apply too
        if here.is_relative_to(root):
            rel = relative(root, here)
            ignore.load_dir(root, "" if rel == "." else rel)
    for folder, dirs, names in walk_allowed(root, start, protected):
        rel_dir = relative(root, folder)
        rel_dir = "" if rel_dir == "." else rel_dir
        ignore.load_dir(root, rel_dir)
        prefix = rel_dir + "/" if rel_dir else ""
        dirs[:] = [d for d in dirs if not ignore.ignored(prefix + d, True)]
        for name in names:
            if glob and not fnmatch.fnmatch(name, glob):
                continue
            if not ignore.ignored(prefix + name, False):
                yield folder / name


def _search_file(root: Path, path: Path, regex: re.Pattern[str], room: int,
                 protected: tuple[Path, ...]) -> list[dict[str, Any]] | None:
    """Matches in one file, or None when it is skipped (symlink out, denied, binary, too big, unreadable)."""
    try:
        real = path.resolve()
        if not real.is_relative_to(root) or denied_reason(root, real, protected) or not real.is_file():
            return None
        if real.stat().st_size > MAX_FILE_BYTES:
            return None
        data = real.read_bytes()
    except (OSError, RuntimeError):
        return None
    if b"\x00" in data[:8192]:
        return None
    hits: list[dict[str, Any]] = []
    for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if regex.search(line[:10 * MAX_LINE_CHARS]):
            text = line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + "…"
            hits.append({"path": relative(root, path), "line": n, "text": text})
            if len(hits) >= room:
                break
    return hits
