"""Path containment: resolve (symlinks included), then check component by component; deny list."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conductor.errors import SandboxViolation
from conductor.tools.sandbox import check_contained, resolve_read, resolve_write


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('hi')\n")
    (tmp_path / "ws_evil").mkdir()
    (tmp_path / "ws_evil" / "loot.txt").write_text("outside\n")
    (tmp_path / "outside.txt").write_text("outside\n")
    return root


def test_plain_relative_paths_resolve_inside(ws: Path) -> None:
    assert resolve_read(ws, "src/app.py") == (ws / "src" / "app.py").resolve()
    assert resolve_read(ws, ".") == ws.resolve()
    assert resolve_write(ws, "new/dir/file.txt") == (ws / "new" / "dir" / "file.txt").resolve()


@pytest.mark.parametrize("path", ["../outside.txt", "src/../../outside.txt", "../ws_evil/loot.txt", "src/..",
                                  "./../ws/src/app.py"])
def test_dotdot_is_refused_naming_the_path(ws: Path, path: str) -> None:
    for resolve in (resolve_read, resolve_write):
        with pytest.raises(SandboxViolation, match=r"'\.\.'") as exc:
            resolve(ws, path)
        assert repr(path) in str(exc.value)


def test_absolute_paths_are_refused_even_inside(ws: Path) -> None:
    for path in ["/etc/passwd", str(ws / "src" / "app.py"), str(ws.parent / "ws_evil" / "loot.txt"), "~/x"]:
        with pytest.raises(SandboxViolation, match="absolute"):
            resolve_read(ws, path)


def test_sibling_with_the_same_prefix_is_outside(ws: Path) -> None:
    """The CVE-2025-53110 shape: '/x/ws_evil' starts with '/x/ws' as a string but is not inside it."""
    evil = (ws.parent / "ws_evil" / "loot.txt").resolve()
    assert str(evil).startswith(str(ws.resolve()))
    with pytest.raises(SandboxViolation, match="outside the workspace"):
        check_contained(ws.resolve(), evil, "loot.txt")
    os.symlink(ws.parent / "ws_evil", ws / "evil_link")
    with pytest.raises(SandboxViolation, match="outside the workspace"):
        resolve_read(ws, "evil_link/loot.txt")


def test_symlinks_out_are_refused_for_read_and_write(ws: Path) -> None:
    os.symlink("/etc", ws / "etc")
    os.symlink(ws.parent / "outside.txt", ws / "out.txt")
    os.symlink(ws.parent / "not-there-yet.txt", ws / "dangling.txt")
    for path in ["etc/passwd", "out.txt", "dangling.txt"]:
        with pytest.raises(SandboxViolation, match="outside the workspace"):
            resolve_read(ws, path)
        with pytest.raises(SandboxViolation, match="outside the workspace"):
            resolve_write(ws, path)


def test_symlink_inside_is_followed_to_its_checked_target(ws: Path) -> None:
    os.symlink(ws / "src" / "app.py", ws / "alias.py")
    assert resolve_write(ws, "alias.py") == (ws / "src" / "app.py").resolve()


def test_symlink_loop_is_refused(ws: Path) -> None:
    os.symlink(ws / "b", ws / "a")
    os.symlink(ws / "a", ws / "b")
    with pytest.raises(SandboxViolation):
        resolve_read(ws, "a/x")


@pytest.mark.parametrize("path", [".git/config", ".git/hooks/pre-commit", "sub/.git/HEAD", ".env", ".env.local",
                                  "config/.env.production", "certs/server.pem", "deploy.key", "id_rsa",
                                  "keys/id_rsa.pub", "id_ed25519", ".netrc", ".ssh/config", ".aws/credentials",
                                  "SERVER.PEM"])
def test_deny_list_protects_git_internals_and_secrets(ws: Path, path: str) -> None:
    for resolve in (resolve_read, resolve_write):
        with pytest.raises(SandboxViolation, match="not accessible") as exc:
            resolve(ws, path)
        assert repr(path) in str(exc.value)


def test_symlink_to_a_denied_file_is_denied(ws: Path) -> None:
    (ws / ".env").write_text("GEMINI_API_KEY=x\n")
    os.symlink(ws / ".env", ws / "settings.txt")
    with pytest.raises(SandboxViolation, match="secrets file"):
        resolve_read(ws, "settings.txt")


def test_protected_folder_is_refused(ws: Path) -> None:
    tracks = ws / "tracks"
    (tracks / "t1").mkdir(parents=True)
    with pytest.raises(SandboxViolation, match="protected folder"):
        resolve_write(ws, "tracks/t1/events.jsonl", (tracks,))
    with pytest.raises(SandboxViolation, match="protected folder"):
        resolve_read(ws, "tracks", (tracks,))


@pytest.mark.parametrize("path", ["", "   ", "a\x00b"])
def test_empty_and_nul_paths_are_refused(ws: Path, path: str) -> None:
    with pytest.raises(SandboxViolation):
        resolve_read(ws, path)


def test_write_refuses_folders_and_files_used_as_folders(ws: Path) -> None:
    with pytest.raises(SandboxViolation, match="is a folder"):
        resolve_write(ws, "src")
    with pytest.raises(SandboxViolation, match="is a folder"):
        resolve_write(ws, ".")
    with pytest.raises(SandboxViolation, match="is a file, not a folder"):
        resolve_write(ws, "src/app.py/inner.txt")


def test_special_files_are_refused_for_writes(ws: Path) -> None:
    os.mkfifo(ws / "pipe")
    with pytest.raises(SandboxViolation, match="not a regular file"):
        resolve_write(ws, "pipe")
