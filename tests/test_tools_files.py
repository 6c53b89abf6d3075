"""File tools: read_file, list_dir, search (with .gitignore), write_file, edit_file, git_status, git_diff."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conductor.approval_payloads import FileChangePreview
from conductor.events import Provenance
from conductor.messages import ToolCall, ToolResult
from conductor.tools import workspace_toolbox
from conductor.tools.base import ToolContext
from conductor.tools.gitignore import GitIgnore


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "app.py").write_text("def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n")
    (root / "README.md").write_text("# demo\n")
    return root


def ctx(ws: Path, **kw: Any) -> ToolContext:
    return ToolContext(ws, Provenance(track_id="T1", ticket_id="K1", tier=3, attempt=1), **kw)


def run(ws: Path, name: str, **args: Any) -> ToolResult:
    return workspace_toolbox(ws).execute(ToolCall("c1", name, args), ctx(ws))


def preview(ws: Path, name: str, **args: Any) -> FileChangePreview:
    tool = workspace_toolbox(ws).get(name)
    assert tool is not None
    p = tool.preview(args, ctx(ws))
    assert isinstance(p, FileChangePreview)
    return p


# -- read_file / list_dir --

def test_read_file_whole_and_line_range(ws: Path) -> None:
    r = run(ws, "read_file", path="app.py")
    assert r.ok and r.output["total_lines"] == 6 and r.output["content"].startswith("def add")
    r = run(ws, "read_file", path="app.py", start_line=5, end_line=6)
    assert r.output["content"] == "def sub(a, b):\n    return a - b\n"
    assert (r.output["start_line"], r.output["end_line"]) == (5, 6)


def test_read_file_caps_big_files_and_says_where_to_continue(ws: Path) -> None:
    line = "x" * 99 + "\n"
    (ws / "big.txt").write_text(line * 5000)  # 500 kB
    r = run(ws, "read_file", path="big.txt")
    assert r.ok and r.output["truncated"]
    assert len(r.output["content"]) <= 100_000
    nxt = r.output["next_start_line"]
    assert nxt == r.output["end_line"] + 1
    r2 = run(ws, "read_file", path="big.txt", start_line=nxt)
    assert r2.output["start_line"] == nxt and r2.output["content"].startswith("x")


def test_read_file_errors_are_results(ws: Path) -> None:
    assert "does not exist" in (run(ws, "read_file", path="nope.txt").error or "")
    (ws / "blob.bin").write_bytes(b"\x00\x01\x02" * 10)
    assert "binary" in (run(ws, "read_file", path="blob.bin").error or "")
    assert "bad arguments" in (run(ws, "read_file").error or "")
    assert "must be integer" in (run(ws, "read_file", path="app.py", start_line="x").error or "")


def test_list_dir_hides_denied_entries(ws: Path) -> None:
    (ws / ".env").write_text("SECRET=1\n")
    (ws / ".git").mkdir()
    (ws / "pkg").mkdir()
    r = run(ws, "list_dir", path=".")
    assert r.ok and r.output["entries"] == ["README.md", "app.py", "pkg/"]
    assert "not a folder" in (run(ws, "list_dir", path="app.py").error or "")


# -- search --

def test_search_respects_gitignore_and_skips_git(ws: Path) -> None:
    (ws / ".gitignore").write_text("build/\n*.log\n!keep.log\n/rootonly.txt\n")
    for rel in ["build/gen.py", "src/build/x.py", "debug.log", "keep.log", "rootonly.txt", "src/rootonly.txt",
                ".git/config", "src/deep/mod.py", "node_modules/pkg/index.js"]:
        p = ws / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("needle here\n")
    (ws / "src" / ".gitignore").write_text("deep/\n")
    r = run(ws, "search", pattern="needle")
    found = sorted(m["path"] for m in r.output["matches"])
    assert found == ["keep.log", "node_modules/pkg/index.js", "src/rootonly.txt"]


def test_search_glob_ignore_case_and_cap(ws: Path) -> None:
    for i in range(30):
        (ws / f"f{i:02}.py").write_text("Needle\n" * 10)
    (ws / "notes.txt").write_text("needle\n")
    r = run(ws, "search", pattern="needle", glob="*.py", ignore_case=True, max_results=25)
    assert r.ok and len(r.output["matches"]) == 25 and r.output["truncated"]
    assert all(m["path"].endswith(".py") for m in r.output["matches"])
    assert run(ws, "search", pattern="needle").output["matches"] == [{"path": "notes.txt", "line": 1,
                                                                      "text": "needle"}]


def test_search_does_not_follow_symlinks_out(ws: Path, tmp_path: Path) -> None:
    (tmp_path / "secret_dir").mkdir()
    (tmp_path / "secret_dir" / "s.txt").write_text("needle outside\n")
    os.symlink(tmp_path / "secret_dir", ws / "linkdir")
    os.symlink(tmp_path / "secret_dir" / "s.txt", ws / "linkfile.txt")
    r = run(ws, "search", pattern="needle")
    assert r.ok and r.output["matches"] == []


def test_search_bad_regex_is_an_error_result(ws: Path) -> None:
    assert "invalid regex" in (run(ws, "search", pattern="(unclosed").error or "")


@pytest.mark.parametrize("pattern,path,is_dir,expected", [
    ("*.pyc", "a/b/c.pyc", False, True), ("/top", "top", False, True), ("/top", "a/top", False, False),
    ("doc/*.txt", "doc/a.txt", False, True), ("doc/*.txt", "doc/x/a.txt", False, False),
    ("**/cache", "a/b/cache", True, True), ("logs/**", "logs/x/y", False, True),
    ("a/**/b", "a/x/y/b", False, True), ("a/**/b", "a/b", False, True), ("out/", "out", False, False),
    ("out/", "out", True, True), ("[ab].txt", "b.txt", False, True), ("[!ab].txt", "a.txt", False, False),
    ("\\#hash", "#hash", False, True), ("# comment", "# comment", False, False), ("?.md", "x.md", False, True),
])
def test_gitignore_patterns(pattern: str, path: str, is_dir: bool, expected: bool) -> None:
    gi = GitIgnore()
    gi.add(pattern)
    assert gi.ignored(path, is_dir) is expected


def test_gitignore_negation_and_nested_base() -> None:
    gi = GitIgnore()
    gi.add("*.log")
    gi.add("!important.log")
    gi.add("tmp.txt", base="sub")
    assert gi.ignored("x.log", False) and not gi.ignored("important.log", False)
    assert gi.ignored("sub/tmp.txt", False) and not gi.ignored("tmp.txt", False)


# -- write_file / edit_file --

def test_write_file_creates_with_parents_and_previews_a_diff(ws: Path) -> None:
    p = preview(ws, "write_file", path="pkg/new.py", content="x = 1\n")
    assert p.new_file and "+x = 1" in p.diff and "/dev/null" in p.diff
    r = run(ws, "write_file", path="pkg/new.py", content="x = 1\n")
    assert r.ok and r.output["created"] and (ws / "pkg" / "new.py").read_text() == "x = 1\n"
    p = preview(ws, "write_file", path="pkg/new.py", content="x = 2\n")
    assert "-x = 1" in p.diff and "+x = 2" in p.diff and not p.new_file


def test_write_keeps_permission_bits_and_replaces_hard_links(ws: Path, tmp_path: Path) -> None:
    script = ws / "run.sh"
    script.write_text("#!/bin/sh\necho 1\n")
    script.chmod(0o755)
    assert run(ws, "write_file", path="run.sh", content="#!/bin/sh\necho 2\n").ok
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    outside = tmp_path / "outside.txt"
    outside.write_text("original\n")
    os.link(outside, ws / "hard.txt")  # same inode as a file outside the workspace
    assert run(ws, "write_file", path="hard.txt", content="changed\n").ok
    assert outside.read_text() == "original\n" and (ws / "hard.txt").read_text() == "changed\n"


def test_edit_file_exact_once(ws: Path) -> None:
    r = run(ws, "edit_file", path="app.py", search="def add(a, b):\n    return a - b", replace="def add(a, b):\n"
                                                                                          "    return a + b")
    assert r.ok and "+    return a + b" in r.output["diff"]
    assert (ws / "app.py").read_text().count("a + b") == 1


def test_edit_file_errors_say_how_many_times(ws: Path) -> None:
    r = run(ws, "edit_file", path="app.py", search="return a - b", replace="return 0")
    assert not r.ok and "appears 2 times" in (r.error or "") and "'app.py'" in (r.error or "")
    r = run(ws, "edit_file", path="app.py", search="return a * b", replace="x")
    assert not r.ok and "not found" in (r.error or "") and "0 occurrences" in (r.error or "")
    r = run(ws, "edit_file", path="missing.py", search="a", replace="b")
    assert "does not exist" in (r.error or "")
    assert "search is empty" in (run(ws, "edit_file", path="app.py", search="", replace="b").error or "")
    with pytest.raises(Exception, match="appears 2 times"):
        preview(ws, "edit_file", path="app.py", search="return a - b", replace="x")
    assert (ws / "app.py").read_text().count("a - b") == 2  # nothing changed by the failures


def test_write_refuses_sandbox_escapes(ws: Path, tmp_path: Path) -> None:
    for path in ["../x.txt", "/tmp/x.txt", ".git/config", ".env"]:
        r = run(ws, "write_file", path=path, content="x")
        assert not r.ok and repr(path) in (r.error or "")
    assert not (tmp_path / "x.txt").exists()


# -- git --

@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_status_and_diff(ws: Path) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}
    for cmd in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "init"]):
        subprocess.run(["git", *cmd], cwd=ws, check=True, env=env)
    (ws / "app.py").write_text("changed\n")
    (ws / "new.txt").write_text("new\n")
    box = workspace_toolbox(ws)
    assert box.get("git_status") is not None
    st = box.execute(ToolCall("s", "git_status", {}), ctx(ws))
    assert st.ok and st.output["branch"].startswith("main")
    assert {f["path"]: f["status"] for f in st.output["files"]} == {"app.py": " M", "new.txt": "??"}
    diff = box.execute(ToolCall("d", "git_diff", {"path": "app.py"}), ctx(ws))
    assert diff.ok and "+changed" in diff.output["diff"]
    assert "'..'" in (box.execute(ToolCall("d2", "git_diff", {"path": "../x"}), ctx(ws)).error or "")


def test_git_tools_left_out_when_not_a_repo(ws: Path) -> None:
    names = {s.name for s in workspace_toolbox(ws).specs()}
    assert "git_status" not in names and {"read_file", "write_file", "edit_file", "run_command"} <= names
    assert "not a git repository" in (workspace_toolbox().execute(ToolCall("s", "git_status", {}), ctx(ws)).error
                                      or "")


def test_every_spec_is_a_json_schema_object(ws: Path) -> None:
    box = workspace_toolbox()
    for spec in box.specs():
        assert spec.parameters["type"] == "object" and isinstance(spec.parameters["properties"], dict)
    assert {s.name for s in box.specs() if s.mutating} == {"write_file", "edit_file", "run_command"}
    assert all(not box.get(n).spec.mutating for n in ("read_file", "list_dir", "search", "git_status", "git_diff"))
