"""Mutating file tools: `write_file` and `edit_file`. They run only through the approval gate.

Both preview as a unified diff (what the approval shows), re-check the sandbox when they run (the approved
arguments may have been edited), and write atomically: temp file in the same folder, fsync, rename. The rename
replaces the directory entry, so a hard link to a file outside the workspace is never written through; the
file's permission bits are kept.
"""

from __future__ import annotations

import difflib
import stat
from pathlib import Path, PurePosixPath
from typing import Any

from conductor.approval_payloads import FileChangePreview
from conductor.atomic import atomic_write_bytes
from conductor.errors import ToolError
from conductor.messages import ToolSpec
from conductor.tools.base import Intent, Tool, ToolContext, file_sha256, text_sha256
from conductor.tools.sandbox import relative, resolve_write, workspace_root

MAX_WRITE_BYTES = 5_000_000
MAX_DIFF_CHARS = 200_000
"""The diff shown in an approval is cut past this (the full new content is in the payload's args)."""


def _old_text(path: Path, shown: str) -> str | None:
    """The file's current text, None when it does not exist; ToolError for binary or huge files."""
    if not path.exists():
        return None
    if path.stat().st_size > MAX_WRITE_BYTES:
        raise ToolError(f"{shown!r} is larger than {MAX_WRITE_BYTES} bytes; it can't be edited with this tool")
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise ToolError(f"{shown!r} looks binary; write_file and edit_file change text files")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolError(f"{shown!r} is not UTF-8 text; it can't be edited with this tool") from None


def unified_diff(old: str | None, new: str, shown: str) -> str:
    diff = "".join(difflib.unified_diff((old or "").splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile="/dev/null" if old is None else f"a/{shown}",
                                        tofile=f"b/{shown}"))
    if len(diff) > MAX_DIFF_CHARS:
        diff = diff[:MAX_DIFF_CHARS] + f"\n[... diff truncated at {MAX_DIFF_CHARS} characters ...]\n"
    return diff


def _umask() -> int:
    """The process umask, read without changing it (os.umask would briefly set it for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def atomic_write_keep_mode(path: Path, data: bytes) -> None:
    """Like conductor.atomic.atomic_write_bytes, but a replaced file keeps its permission bits (mkstemp would
    make it 0600) and a new one gets the usual 0666 & ~umask."""
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
    else:
        mode = 0o666 & ~_umask()
    atomic_write_bytes(path, data, mode)


def write_target(ctx: ToolContext, shown: str, resolved: Path) -> str | None:
    """The file really written when `shown` goes through a symlink (an approval must name the file that
    changes, not the link's name); None when it is `shown` itself."""
    rel = relative(workspace_root(ctx.workspace), resolved)
    return None if rel == str(PurePosixPath(shown)) else rel


def diff_label(ctx: ToolContext, shown: str, resolved: Path) -> str:
    target = write_target(ctx, shown, resolved)
    return shown if target is None else f"{target} (through the symlink {shown})"


def _content(args: dict[str, Any]) -> str:
    content = args["content"]
    if not isinstance(content, str):
        raise ToolError("content must be a string")
    if len(content.encode("utf-8")) > MAX_WRITE_BYTES:
        raise ToolError(f"content is larger than {MAX_WRITE_BYTES} bytes")
    return content


class WriteFile(Tool):
    spec = ToolSpec("write_file", "Create or overwrite a text file in the workspace with the given content "
                                  "(parent folders are created). Needs approval.",
                    {"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
                     "required": ["path", "content"]}, mutating=True)

    def preview(self, args: dict[str, Any], ctx: ToolContext) -> FileChangePreview:
        path = resolve_write(ctx.workspace, args["path"], ctx.protected)
        old = _old_text(path, args["path"])
        return FileChangePreview(path=args["path"], new_file=old is None, target=write_target(ctx, args["path"], path),
                                 diff=unified_diff(old, _content(args), diff_label(ctx, args["path"], path)))

    def intent(self, args: dict[str, Any], ctx: ToolContext) -> Intent:
        path = resolve_write(ctx.workspace, args["path"], ctx.protected)
        return Intent(path=args["path"], pre_sha256=file_sha256(path), post_sha256=text_sha256(_content(args)))

    def run(self, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        path = resolve_write(ctx.workspace, args["path"], ctx.protected)
        content = _content(args)
        created = not path.exists()
        if not created:
            _old_text(path, args["path"])  # refuses binary / huge files before they are replaced
        atomic_write_keep_mode(path, content.encode("utf-8"))
        return {"path": args["path"], "created": created, "bytes": len(content.encode("utf-8")),
                "lines": content.count("\n") + (0 if content.endswith("\n") or not content else 1)}


class EditFile(Tool):
    spec = ToolSpec("edit_file", "Replace one exact occurrence of `search` with `replace` in a text file. "
                                 "`search` must appear exactly once: include enough surrounding lines to make it "
                                 "unique. Needs approval.",
                    {"type": "object", "properties": {"path": {"type": "string"}, "search": {"type": "string"},
                                                      "replace": {"type": "string"}},
                     "required": ["path", "search", "replace"]}, mutating=True)

    def _apply(self, args: dict[str, Any], ctx: ToolContext) -> tuple[Path, str, str]:
        shown, search, replace = args["path"], args["search"], args["replace"]
        if not isinstance(search, str) or not isinstance(replace, str):
            raise ToolError("search and replace must be strings")
        if search == "":
            raise ToolError("search is empty; give the exact text to replace (use write_file for a new file)")
        path = resolve_write(ctx.workspace, shown, ctx.protected)
        old = _old_text(path, shown)
        if old is None:
            raise ToolError(f"{shown!r} does not exist; use write_file to create it")
        count = old.count(search)
        if count == 0:
            raise ToolError(f"the search text was not found in {shown!r} (0 occurrences); it must match the "
                            "file exactly, including whitespace and indentation; read the file again")
        if count > 1:
            raise ToolError(f"the search text appears {count} times in {shown!r}; it must appear exactly once: "
                            "include more surrounding lines to make it unique")
        return path, old, old.replace(search, replace, 1)

    def preview(self, args: dict[str, Any], ctx: ToolContext) -> FileChangePreview:
        path, old, new = self._apply(args, ctx)
        return FileChangePreview(path=args["path"], target=write_target(ctx, args["path"], path),
                                 diff=unified_diff(old, new, diff_label(ctx, args["path"], path)))

    def intent(self, args: dict[str, Any], ctx: ToolContext) -> Intent:
        _, old, new = self._apply(args, ctx)
        return Intent(path=args["path"], pre_sha256=text_sha256(old), post_sha256=text_sha256(new))

    def run(self, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        path, old, new = self._apply(args, ctx)
        atomic_write_keep_mode(path, new.encode("utf-8"))
        return {"path": args["path"], "replaced": 1, "diff": unified_diff(old, new, args["path"])}
