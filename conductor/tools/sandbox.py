"""Path containment for workspace tools: resolve (symlinks included), then check component by component."""

from __future__ import annotations

from pathlib import Path

from conductor.errors import SandboxViolation


def resolve_inside(workspace: Path, path: str, protected: tuple[Path, ...] = ()) -> Path:
    """The resolved absolute path of `path` (relative to the workspace), or SandboxViolation if it is outside."""
    root = Path(workspace).resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root):
        raise SandboxViolation(f"path {path!r} is outside the workspace {str(root)!r}")
    for p in protected:
        if target.is_relative_to(Path(p).resolve()):
            raise SandboxViolation(f"path {path!r} is in a protected folder")
    return target
