"""Path containment for workspace tools.

Every path a tool touches goes through `resolve_read` or `resolve_write`:

  1. it must be a relative path without `..` components (refused outright: a clear rule the model can learn,
     rather than "`..` is fine as long as it stays inside");
  2. it is resolved with every symlink followed, then checked with `Path.is_relative_to` against the resolved
     workspace root: a component-wise check, so a sibling folder `ws_evil` is outside `ws` (a string-prefix
     check would let it through: CVE-2025-53110);
  3. the resolved path must not be in the deny list: `.git/` internals, the protected folders (the tracks
     folder) and secrets files (`.env`, `*.pem`, `id_rsa*`, ...), for reads and writes alike.

Writes resolve the final component too: a symlink inside the workspace that points inside is followed (the write
lands on its target, which was checked); one that points outside is refused like any other outside path.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from conductor.errors import SandboxViolation

DENIED_DIRS = frozenset({".git", ".ssh", ".aws", ".gnupg", ".docker", ".kube"})
"""Folder names whose contents tools never read or write, wherever they appear."""

SECRET_FILE_PATTERNS = (
    ".env", ".env.*", "*.env", ".envrc", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", ".netrc", "_netrc", ".pgpass", ".npmrc", ".pypirc",
    ".git-credentials", ".htpasswd", "credentials.json", "service-account*.json", "*.kdbx",
)
"""File names (matched case-insensitively) that may hold credentials: never read, never written."""


_ALWAYS_PROTECTED: set[Path] = set()
"""This process's own files (its config file and folder): off limits to every tool and every prompt read, in any
workspace. Registered by conductor.launch when the config is chosen."""


def protect_always(path: Path | str) -> None:
    _ALWAYS_PROTECTED.add(Path(path).resolve())


def workspace_root(workspace: Path | str) -> Path:
    root = Path(workspace).resolve()
    if not root.is_dir():
        raise SandboxViolation(f"the workspace {str(root)!r} is not a folder")
    return root


def is_secret_name(name: str) -> bool:
    low = name.lower()
    return any(fnmatch.fnmatchcase(low, pat) for pat in SECRET_FILE_PATTERNS)


def check_contained(root: Path, target: Path, shown: str) -> None:
    """Refuse `target` unless it is `root` or below it. Both must already be resolved."""
    if not target.is_relative_to(root):
        raise SandboxViolation(f"path {shown!r} resolves to {str(target)!r}, which is outside the workspace "
                               f"{str(root)!r}; tools only touch files inside the workspace")


def denied_reason(root: Path, target: Path, protected: tuple[Path, ...] = ()) -> str | None:
    """Why a resolved, contained path is off limits, or None when it may be used."""
    for p in (*protected, *_ALWAYS_PROTECTED):
        prot = Path(p).resolve()
        if target.is_relative_to(prot):
            return f"it is inside the protected folder {str(prot)!r}"
    rel = target.relative_to(root).parts
    for part in rel:
        if part in DENIED_DIRS:
            return f"it is inside a {part}/ folder (internal or credentials data)"
    if rel and is_secret_name(rel[-1]):
        return "its name marks it as a secrets file (keys, tokens, .env)"
    return None


def _lexical_check(path: str) -> PurePosixPath:
    if not isinstance(path, str):
        raise SandboxViolation(f"path must be a string, got {type(path).__name__}")
    if "\x00" in path:
        raise SandboxViolation(f"path {path!r} contains a NUL character")
    if path.strip() == "":
        raise SandboxViolation("path is empty; use '.' for the workspace root")
    pure = PurePosixPath(path)
    if pure.is_absolute() or path.startswith("~"):
        raise SandboxViolation(f"path {path!r} is absolute; use a path relative to the workspace root")
    if ".." in pure.parts:
        raise SandboxViolation(f"path {path!r} contains '..'; use a path relative to the workspace root "
                               "that stays inside it")
    return pure


def _resolve(root: Path, path: str, protected: tuple[Path, ...]) -> Path:
    pure = _lexical_check(path)
    try:
        target = (root / pure).resolve()
    except (RuntimeError, OSError) as exc:  # symlink loop, name too long, ...
        raise SandboxViolation(f"path {path!r} cannot be resolved: {exc}") from None
    check_contained(root, target, path)
    why = denied_reason(root, target, protected)
    if why is not None:
        raise SandboxViolation(f"path {path!r} is not accessible to tools: {why}")
    return target


def resolve_read(workspace: Path, path: str, protected: tuple[Path, ...] = ()) -> Path:
    """The resolved absolute path of `path` for reading, or SandboxViolation naming the path."""
    return _resolve(workspace_root(workspace), path, protected)


def resolve_write(workspace: Path, path: str, protected: tuple[Path, ...] = ()) -> Path:
    """The resolved absolute path to write `path` to, or SandboxViolation naming the path.

    The final component is resolved too, so a symlink can't redirect the write outside; the workspace root
    itself and existing folders are refused (a write replaces a file)."""
    root = workspace_root(workspace)
    target = _resolve(root, path, protected)
    if target == root or target.is_dir():
        raise SandboxViolation(f"path {path!r} is a folder; write_file and edit_file write files")
    if target.exists() and not target.is_file():  # a FIFO or device: reading it for the diff could block
        raise SandboxViolation(f"path {path!r} is not a regular file")
    # The nearest existing ancestor must be a real folder inside the workspace (resolve() already followed
    # any symlinks in it; this guards against a file standing where a folder is needed).
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise SandboxViolation(f"path {path!r}: {str(parent)!r} is a file, not a folder")
    return target


def resolve_inside(workspace: Path, path: str, protected: tuple[Path, ...] = ()) -> Path:
    """Backward-compatible name for `resolve_read`."""
    return resolve_read(workspace, path, protected)


def relative(root: Path, target: Path) -> str:
    """`target` as the model should see it: relative to the workspace, with '/' separators."""
    rel = target.relative_to(root)
    return "." if rel == Path(".") else rel.as_posix()


def walk_allowed(root: Path, start: Path,
                 protected: tuple[Path, ...] = ()) -> Iterator[tuple[Path, list[str], list[str]]]:
    """os.walk below `start` that never descends into denied folders or symlinked folders (which could lead
    outside). Yields (folder, dirnames, filenames) like os.walk; callers may prune dirnames."""
    for folder, dirs, files in os.walk(start, followlinks=False):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if denied_reason(root, here / d, protected) is None
                         and not (here / d).is_symlink())
        yield here, dirs, sorted(files)
