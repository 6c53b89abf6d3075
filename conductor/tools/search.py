"""`search`: a regex over the workspace's text files, respecting .gitignore, never entering .git/ or denied
folders, never following a symlink out. Bounded: result cap, per-file size cap, line length cap, and a time
budget that holds even for a catastrophic pattern: the matching runs in a child process (regex_child.py) that is
killed at the budget or when the ticket is cancelled."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conductor.errors import Cancelled, ToolError
from conductor.messages import ToolSpec
from conductor.redact import scrubbed_env
from conductor.tools.base import Tool, ToolContext
from conductor.tools.gitignore import GitIgnore
from conductor.tools.process import run_captured, safe_path
from conductor.tools.sandbox import denied_reason, relative, resolve_read, walk_allowed, workspace_root

DEFAULT_RESULTS = 100
MAX_RESULTS = 500
MAX_FILE_BYTES = 2_000_000
MAX_LINE_CHARS = 400
"""Longer matching lines are shown cut (minified files would flood the result)."""
TIME_BUDGET_S = 10.0
"""The whole search, matching included: a catastrophic regex is killed with its child process after this."""
OUTPUT_CAP = 2_000_000
CHILD = Path(__file__).with_name("regex_child.py")


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

    def __init__(self, time_budget_s: float = TIME_BUDGET_S) -> None:
        self.time_budget_s = time_budget_s

    def run(self, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        try:
            re.compile(args["pattern"], re.IGNORECASE if args.get("ignore_case") else 0)
        except re.error as exc:
            raise ToolError(f"invalid regex {args['pattern']!r}: {exc}") from None
        root = workspace_root(ctx.workspace)
        start = resolve_read(ctx.workspace, args.get("path") or ".", ctx.protected)
        limit = min(int(args.get("max_results") or DEFAULT_RESULTS), MAX_RESULTS)
        files = [start] if start.is_file() else _files(root, start, args.get("glob"), ctx.protected)
        listed, skipped = [], 0
        began = time.monotonic()
        deadline = began + self.time_budget_s / 2  # listing a huge tree gets at most half the budget
        walk_cut = False
        for path in files:
            if time.monotonic() > deadline or ctx.cancel.is_set():
                walk_cut = True
                break
            real = _searchable(root, path, ctx.protected)
            if real is None:
                skipped += 1
            else:
                listed.append((relative(root, path), str(real)))
        found = _match_in_child(root, args["pattern"], bool(args.get("ignore_case")), listed, limit + 1, ctx,
                                max(self.time_budget_s - (time.monotonic() - began), 0.5))
        found.timed_out = found.timed_out or walk_cut
        if found.error:
            raise ToolError(found.error)
        if found.cancelled:
            raise Cancelled("search cancelled")
        matches = found.matches
        note = {}
        if found.timed_out:
            note = {"note": f"stopped after {self.time_budget_s:g}s (a slow pattern or a big tree); narrow the path "
                            "or simplify the pattern"}
        return {"pattern": args["pattern"], "matches": matches[:limit], "files_searched": found.searched,
                "files_skipped": skipped + found.skipped, "truncated": len(matches) > limit or found.timed_out,
                **note}


@dataclass
class _Found:
    matches: list[dict[str, Any]]
    searched: int
    skipped: int
    timed_out: bool
    cancelled: bool
    error: str | None = None


def _match_in_child(root: Path, pattern: str, ignore_case: bool, files: list[tuple[str, str]], room: int,
                    ctx: ToolContext, budget_s: float | None = None) -> _Found:
    """Run the regex over `files` in a child process, bounded by the time budget and ctx.cancel."""
    budget = TIME_BUDGET_S if budget_s is None else budget_s
    fd, req_path = tempfile.mkstemp(prefix="conductor-search-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"pattern": pattern, "ignore_case": ignore_case, "files": files, "room": room,
                       "max_line_chars": MAX_LINE_CHARS, "max_file_bytes": MAX_FILE_BYTES}, f)
        env = scrubbed_env()
        env["PATH"] = safe_path(env.get("PATH"), root)
        cap = run_captured([sys.executable, "-I", str(CHILD), req_path], cwd=root, env=env, timeout_s=budget,
                           spill=None, cancel=ctx.cancel, head_bytes=OUTPUT_CAP, tail_bytes=0)
    finally:
        os.unlink(req_path)
    found = _Found([], 0, 0, cap.timed_out, cap.cancelled)
    for line in cap.head.decode("utf-8", errors="replace").splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue  # a line cut by the kill
        if "error" in item:
            found.error = str(item["error"])
        elif item.get("done"):
            found.searched, found.skipped = int(item["searched"]), int(item["skipped"])
        else:
            found.matches.append(item)
    if not found.timed_out and not found.cancelled and cap.exit_code != 0 and found.error is None:
        found.error = f"search failed (exit code {cap.exit_code}): {cap.head.decode('utf-8', 'replace')[-500:]}"
    return found


def _searchable(root: Path, path: Path, protected: tuple[Path, ...]) -> Path | None:
    """The real path to search, or None when it is skipped (symlink out, denied, not a file, too big)."""
    try:
        real = path.resolve()
        if not real.is_relative_to(root) or denied_reason(root, real, protected) or not real.is_file():
            return None
        if real.stat().st_size > MAX_FILE_BYTES:
            return None
    except (OSError, RuntimeError):
        return None
    return real


def _files(root: Path, start: Path, glob: str | None, protected: tuple[Path, ...]) -> Iterator[Path]:
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
