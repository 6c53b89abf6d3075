"""Diffs shaped for a coloured, per-file view: a list of files, each with its hunks and typed lines.

Two git calls over the same pair of trees: `diff --raw -z` gives every file's status and exact names (no
quoting to undo), `diff --patch` gives the hunks; both list files in the same order, so they are paired by
position. External diff drivers and textconv are off, so a hostile .gitattributes can't run a program.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from conductor.git.repo import Repository

LineKind = Literal["context", "add", "delete", "note"]
FileStatus = Literal["added", "modified", "deleted", "renamed", "copied", "type-changed", "unmerged", "unknown"]
MAX_PATCH_BYTES = 2_000_000
_STATUS: dict[str, FileStatus] = {"A": "added", "M": "modified", "D": "deleted", "R": "renamed", "C": "copied",
                                  "T": "type-changed", "U": "unmerged"}
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")


@dataclass(frozen=True)
class DiffLine:
    kind: LineKind
    text: str
    old_no: int | None
    new_no: int | None


@dataclass(frozen=True)
class Hunk:
    header: str
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    lines: tuple[DiffLine, ...]


@dataclass(frozen=True)
class FileDiff:
    path: str
    """The path after the change (before it, for a deletion)."""
    old_path: str | None
    """The path before a rename or copy; None otherwise."""
    status: FileStatus
    binary: bool = False
    hunks: tuple[Hunk, ...] = ()
    added: int = 0
    deleted: int = 0


@dataclass(frozen=True)
class Diff:
    """The changes between two commits (`base` and `head`), file by file."""

    base: str
    head: str
    files: tuple[FileDiff, ...] = field(default_factory=tuple)
    truncated: bool = False
    """The patch was longer than MAX_PATCH_BYTES: later files have no hunks."""

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.files]


def _raw_entries(raw: bytes) -> list[tuple[FileStatus, str, str | None]]:
    parts = raw.decode("utf-8", errors="surrogateescape").split("\0")
    out: list[tuple[FileStatus, str, str | None]] = []
    i = 0
    while i < len(parts) and parts[i]:
        meta = parts[i]  # ":100644 100644 <sha> <sha> M"
        letter = meta.split()[-1][:1]
        status = _STATUS.get(letter, "unknown")
        if letter in "RC":
            out.append((status, parts[i + 2], parts[i + 1]))
            i += 3
        else:
            out.append((status, parts[i + 1], None))
            i += 2
    return out


def _split_patches(text: str) -> list[list[str]]:
    chunks: list[list[str]] = []
    for line in text.split("\n"):
        if line.startswith("diff --git "):
            chunks.append([])
        if chunks:
            chunks[-1].append(line)
    return chunks


def _hunks(lines: list[str]) -> tuple[tuple[Hunk, ...], bool, int, int]:
    hunks: list[Hunk] = []
    binary = any(line.startswith("Binary files ") or line == "GIT binary patch" for line in lines)
    cur: list[DiffLine] | None = None
    head: tuple[str, int, int, int, int] | None = None
    old_no = new_no = added = deleted = 0

    def close() -> None:
        if cur is not None and head is not None:
            hunks.append(Hunk(head[0], head[1], head[2], head[3], head[4], tuple(cur)))

    for line in lines:
        m = _HUNK.match(line)
        if m:
            close()
            o, ol, n, nl = int(m[1]), int(m[2] or 1), int(m[3]), int(m[4] or 1)
            head, cur, old_no, new_no = (line, o, ol, n, nl), [], o, n
            continue
        if cur is None:
            continue
        if line.startswith("+"):
            cur.append(DiffLine("add", line[1:], None, new_no))
            new_no += 1
            added += 1
        elif line.startswith("-"):
            cur.append(DiffLine("delete", line[1:], old_no, None))
            old_no += 1
            deleted += 1
        elif line.startswith(" "):
            cur.append(DiffLine("context", line[1:], old_no, new_no))
            old_no += 1
            new_no += 1
        elif line.startswith("\\"):
            cur.append(DiffLine("note", line[2:], None, None))
    close()
    return tuple(hunks), binary, added, deleted


def _file_patch(repo: Repository, base: str, head: str, path: str, old: str | None, context: int) -> list[str]:
    specs = [f":(literal){p}" for p in ([old] if old else []) + [path]]
    out = repo.git.run(repo.toplevel, "diff", "--patch", f"-U{context}", "-M", "--no-ext-diff", "--no-textconv",
                       "--no-color", base, head, "--", *specs).stdout
    return [line for chunk in _split_patches(out.decode("utf-8", errors="replace")) for line in chunk]


def diff_commits(repo: Repository, base: str, head: str, *, context: int = 3) -> Diff:
    """The per-file diff from commit `base` to commit `head` (renames detected)."""
    common = ["-M", "--no-ext-diff", "--no-textconv", "--no-color", "--ignore-submodules=none", base, head, "--"]
    raw = repo.git.run(repo.toplevel, "diff", "--raw", "-z", *common).stdout
    entries = _raw_entries(raw)
    if not entries:
        return Diff(base, head)
    patch = repo.git.run(repo.toplevel, "diff", "--patch", f"-U{context}", *common).stdout
    truncated = len(patch) > MAX_PATCH_BYTES
    chunks = _split_patches(patch[:MAX_PATCH_BYTES].decode("utf-8", errors="replace"))
    if not truncated and len(chunks) != len(entries):
        # a type change (file <-> symlink) is one raw entry but two patches: ask file by file instead
        chunks = [_file_patch(repo, base, head, path, old, context) for _, path, old in entries]
    files = []
    for i, (status, path, old) in enumerate(entries):
        hunks, binary, added, deleted = _hunks(chunks[i]) if i < len(chunks) else ((), False, 0, 0)
        files.append(FileDiff(path, old, status, binary, hunks, added, deleted))
    return Diff(base, head, tuple(files), truncated)


def diff_names(repo: Repository, base: str, head: str) -> list[str]:
    """The paths that differ between two commits."""
    out = repo.git.run(repo.toplevel, "diff", "--name-only", "-z", "--no-renames", base, head, "--").text
    return [p for p in out.split("\0") if p]
