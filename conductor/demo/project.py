"""The demo's own project: `greeter`, a tiny Python package with a real pytest suite, in its own git repository.

The demo's QA runs `pytest -q` in each ticket's worktree through the command policy like any check: the first
time, the person is asked (and may "always allow" it for the track), exactly as with their own repository.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conductor.redact import scrubbed_env

CHECK_COMMAND = "pytest -q"
"""The demo project's checks (the demo session's `[git] check_command`; never written to the person's config)."""

DEMO_EPIC = ("Release greeter 0.1.0: give it a version and a health report, make the greeting friendlier, "
             "document the changes, and publish it to PyPI")
"""The epic the demo's box starts with (the scripted team plans the same tickets for any epic)."""

FILES: dict[str, str] = {
    "README.md": (
        "# greeter\n\n"
        "A tiny Python package: the project of Conductor's offline demo.\n\n"
        "## Usage\n\n"
        "- `greet(name)` returns a greeting.\n"),
    "pyproject.toml": (
        '[project]\nname = "greeter"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n\n'
        '[tool.pytest.ini_options]\npythonpath = ["."]\ntestpaths = ["tests"]\naddopts = "-p no:cacheprovider"\n'
        'console_output_style = "classic"\n'),  # no padded [100%]: narrow panes wrap it into a column of dots
    ".gitignore": "__pycache__/\n.pytest_cache/\n",
    "greeter/__init__.py": (
        '"""greeter: say hello."""\n\nfrom greeter.core import greet\n\n__all__ = ["greet"]\n'),
    "greeter/core.py": (
        '"""Greetings."""\n\n\ndef greet(name: str) -> str:\n    """A greeting for `name`."""\n'
        '    return f"Hello, {name}!"\n'),
    "tests/test_core.py": (
        'from greeter import greet\n\n\ndef test_greet_names_the_person() -> None:\n'
        '    assert greet("Ada") == "Hello, Ada!"\n'),
}


def create_project(ws: Path) -> None:
    """Write the project into the (new, empty) folder `ws` and make it a git repository with one commit, so the
    demo shows a branch per track and a worktree per ticket. Without git it stays a plain folder (the app then
    says it runs one worker at a time)."""
    for rel, text in FILES.items():
        path = ws / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
    git = shutil.which("git")
    if git is None:
        return
    ident = ["-c", "user.name=Conductor demo", "-c", "user.email=demo@localhost", "-c", "commit.gpgsign=false"]
    for argv in ([git, "init", "-q"], [git, "add", "-A"],
                 [git, *ident, "commit", "-q", "-m", "greeter: the demo project"]):
        subprocess.run(argv, cwd=ws, check=True, capture_output=True, timeout=30, env=scrubbed_env())


def own_pytest_path() -> tuple[tuple[str, ...], str | None]:
    """The folder to search first for the demo's check (`pytest -q`), so it runs the pytest installed beside
    Conductor rather than another Python's or none, and why the check cannot run (or None). The folder is given
    to the demo's session (ToolContext.path_first), never put on the process's PATH: a global change would reach
    every other subprocess (git, MCP servers, a real workspace's commands opened later)."""
    here = Path(sys.executable).parent  # not resolved: a venv's bin/ holds the venv's pytest
    if here.is_absolute() and (here / "pytest").is_file():
        return (str(here),), None
    if shutil.which("pytest") is not None:
        return (), None
    return (), (f"pytest is not installed beside {sys.executable} nor on PATH: the demo's check `{CHECK_COMMAND}` "
                f"will not run (pip install pytest)")
