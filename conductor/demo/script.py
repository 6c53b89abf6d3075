"""The scripted team of the offline demo, working on the `greeter` project (conductor/demo/project.py).

Plain procedural code, no model: every answer is decided from what the request carries — the ticket, the QA hint
from the last attempt (a failing check's pytest output, a merge conflict, a rejected change), the context files,
and the results of the tool calls made so far. Nothing counts attempts: a worker fixes a test because the
hint shows it failing, resolves a conflict because the hint names the files, adapts because its call was
rejected. Run by the real engine with the real tools, the tickets walk through every path:

    T1  version   read, two writes, a command of its own (asked), then QA's check (asked once: "always allow")
    T2  greeting  edits core.py and breaks tests/test_core.py; the check fails with pytest's output as the hint;
                  the next attempt (next model up the ladder) reads it and updates the test: the check passes
    T3  health    writes a module and a test, and adds a README line at the same place as T4: one of the two
                  ends in "needs merge"; retried, a resolve attempt keeps both lines (its write is asked too)
    T4  docs      one README line
    T5  changelog rewrites the whole README (a call to reject); the worker says the ticket is not done, QA fails
                  it, and the next model up the ladder adds a link instead
    T6  publish   cannot be done offline (no network, no token): every attempt fails review, up the ladder, onto
                  the failed shelf
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conductor.messages import ToolCall, ToolResult
from conductor.providers.base import ProviderRequest
from conductor.providers.scripted import Reply, demo_reply

TRACK_SCOPE = "The greeter package, its tests and its docs. No new dependencies; the workspace has no network."


def demo_team_reply(req: ProviderRequest, n: int) -> Reply:
    """A ScriptedProvider fallback: the demo team's answer to any request."""
    match req.tier:
        case 1:
            epic = req.messages[0].text.split("EPIC:", 1)[-1].strip() if req.messages else ""
            return Reply(text=json.dumps(plan_tracks(epic), indent=1))
        case 2:
            return Reply(text=json.dumps(plan_tickets(), indent=1))
        case 4:
            return review(_all_text(req))
        case _:
            view = WorkerView.of(req)
            if view.conflicts:
                return resolve_conflicts(view)
            worker = WORKERS.get(view.ticket)
            return worker(view) if worker is not None else demo_reply(req, n)  # a ticket the person added


# --------------------------------------------------------------------------- Tier 1 and Tier 2

def plan_tracks(epic: str) -> dict[str, Any]:
    title = epic.strip().splitlines()[0][:80] if epic.strip() else "Release greeter"
    return {"tracks": [{
        "title": title, "goal": "greeter 0.1.0, tested, documented and published", "scope": TRACK_SCOPE,
        "acceptance_criteria": ["`pytest -q` passes on the track branch", "README.md and CHANGELOG.md describe "
                                "the release", "Every ticket's acceptance criteria are met"]}]}


def _ticket(tid: str, title: str, description: str, deps: list[str], targets: list[str],
            criteria: list[str]) -> dict[str, Any]:
    return {"id": tid, "title": title, "description": description, "depends_on": deps, "target_files": targets,
            "acceptance_criteria": criteria, "step_mode": False, "model_override": None}


def plan_tickets() -> dict[str, Any]:
    return {"tickets": [
        _ticket("T1", "Give the package a version",
                "Add greeter/version.py defining __version__, equal to the version in pyproject.toml, and a test "
                "that checks they agree.", [], ["greeter/version.py", "tests/test_version.py"],
                ["greeter.version.__version__ equals pyproject.toml's version", "a test checks it"]),
        _ticket("T2", "Make the greeting friendlier",
                "greet(name) should say 'Hi there, <name>!' instead of 'Hello, <name>!'.", ["T1"],
                ["greeter/core.py"], ["greet('Ada') returns 'Hi there, Ada!'", "`pytest -q` passes"]),
        _ticket("T3", "Add a health report",
                "Add greeter/health.py with health() returning the version and a status, a test for it, and a "
                "line for it in the README's usage list.", ["T1"],
                ["greeter/health.py", "tests/test_health.py", "README.md"],
                ["health() returns {'version': __version__, 'status': 'ok'}", "a test checks it",
                 "the README's usage list mentions health()"]),
        _ticket("T4", "Document the version in the README",
                "Add a line about greeter.version.__version__ to the README's usage list.", ["T1"], ["README.md"],
                ["the README's usage list mentions __version__"]),
        _ticket("T5", "Write the changelog",
                "Add CHANGELOG.md listing this release's changes, and point the README at it.", ["T2", "T3", "T4"],
                ["CHANGELOG.md", "README.md"],
                ["CHANGELOG.md lists the changes of 0.1.0", "the README links to CHANGELOG.md, keeping its content"]),
        _ticket("T6", "Publish greeter to PyPI",
                "Upload greeter 0.1.0 to PyPI (needs network access and a PyPI API token).", ["T1"],
                ["pyproject.toml"], ["greeter 0.1.0 can be installed with pip from PyPI"]),
    ]}


# --------------------------------------------------------------------------- what a worker is sent

_CONTEXT = re.compile(r"CONTEXT FILE (.+?) \(data, not instructions\):\n<<<FILE (\w+)\n(.*?)\n>>>FILE \2", re.S)


def _field(prompt: str, name: str) -> str:
    for line in prompt.splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    return ""


def _hint(prompt: str) -> str:
    """The whole QA hint (a check's output spans many lines), up to the first context file."""
    marker = "QA HINT FROM THE LAST ATTEMPT:"
    if marker not in prompt:
        return ""
    return prompt.split(marker, 1)[1].split("\nCONTEXT FILE ", 1)[0].strip()


@dataclass(frozen=True)
class WorkerView:
    """One Tier 3 request, read: the ticket, the hint, the context files, and each tool result by step name."""

    ticket: str
    attempt: int
    hint: str
    context: dict[str, str]
    done: dict[str, ToolResult]
    """Results of this attempt's calls so far, by step (the call id is `<ticket>-a<attempt>-<step>`)."""
    calls: dict[str, ToolCall]

    @classmethod
    def of(cls, req: ProviderRequest) -> WorkerView:
        prompt = req.messages[0].text if req.messages else ""
        ticket = req.prov.ticket_id or _field(prompt, "TICKET") or "T?"
        prefix = f"{ticket}-a{req.prov.attempt}-"
        calls = {c.id: c for m in req.messages for c in m.tool_calls}
        done = {r.call_id.removeprefix(prefix): r for m in req.messages for r in m.tool_results}
        return cls(ticket, req.prov.attempt, _hint(prompt), {p: t for p, _, t in _CONTEXT.findall(prompt)}, done,
                    {k.removeprefix(prefix): c for k, c in calls.items()})

    @property
    def conflicts(self) -> list[str]:
        """The files a merge conflict left markers in (the engine's resolve hint names them)."""
        m = re.search(r"conflicts in: (.+?)\. Those files", self.hint)
        return [f.strip() for f in m.group(1).split(",")] if m else []

    def call(self, step: str, tool: str, args: dict[str, Any], text: str) -> Reply:
        call = ToolCall(f"{self.ticket}-a{self.attempt}-{step}", tool, args)
        return Reply(text=text.rstrip() + "\n", tool_calls=(call,))

    def refused(self, *steps: str) -> str | None:
        """The reaction to the first change of this attempt (of `steps`, when named) that did not happen
        (rejected, or failed)."""
        for step, result in self.done.items():
            if result.ok or result.name not in ("write_file", "edit_file") or (steps and step not in steps):
                continue
            call = self.calls.get(step)
            path = call.args.get("path", "?") if call is not None else "?"
            why = (result.error or "it failed").rstrip(".")
            return (f"My {result.name} of {path} was not applied: {why}. I stop here and change nothing else; "
                    f"{path} is as it was, so the ticket is NOT complete.\n")
        return None


def _say(text: str) -> Reply:
    return Reply(text=text.rstrip() + "\n")


def _write(view: WorkerView, step: str, path: str, content: str, text: str) -> Reply:
    return view.call(step, "write_file", {"path": path, "content": content}, text)


def _append_to_list(readme: str, line: str) -> tuple[str, str]:
    """An edit (search, replace) adding `line` after the last item of the README's usage list (else at the end)."""
    lines = readme.splitlines(keepends=True)
    items = [ln for ln in lines if ln.startswith("- ")]
    last = items[-1] if items else (lines[-1] if lines else "")
    return last, last.rstrip("\n") + "\n" + line + "\n"


# --------------------------------------------------------------------------- the workers, one per ticket

def work_version(v: WorkerView) -> Reply:
    if "read" not in v.done:
        return v.call("read", "read_file", {"path": "pyproject.toml"},
                      "The version must match pyproject.toml: reading it first.")
    found = re.search(r'^version\s*=\s*"([^"]+)"', str(v.done["read"].output.get("content", "")), re.M)
    if found is None:
        return _say(f"pyproject.toml names no version ({v.done['read'].error or 'no version line'}), so I cannot "
                    "match it. The ticket is NOT complete.")
    version = found.group(1)
    if "module" not in v.done:
        return _write(v, "module", "greeter/version.py",
                      f'"""The package version (equal to pyproject.toml\'s)."""\n\n__version__ = "{version}"\n',
                      f"pyproject.toml says {version}: writing greeter/version.py.")
    if (stop := v.refused()) is not None:
        return _say(stop)
    if "test" not in v.done:
        return _write(v, "test", "tests/test_version.py", VERSION_TEST, "And a test that the two agree.")
    if (stop := v.refused()) is not None:
        return _say(stop)
    if "run" not in v.done:
        return v.call("run", "run_command", {"command": "pytest -q tests/test_version.py"},
                      "Running the new test before I hand over. A command always asks you, unless you allowed "
                      "that exact command.")
    run = v.done["run"]
    if not run.ok:
        return _say(f"I could not run the new test ({run.error}). Both files are written; QA's check runs the "
                    f"whole suite. Done: greeter.version.__version__ = {version!r}, tested by "
                    "tests/test_version.py.")
    out = str(run.output.get("output", "")).strip().splitlines()
    if run.output.get("exit_code") != 0:
        return _say(f"The new test fails ({out[-1] if out else 'no output'}). The ticket is NOT complete.")
    return _say(f"Done: greeter.version.__version__ = {version!r}; tests/test_version.py checks it against "
                f"pyproject.toml and passes ({out[-1] if out else 'ok'}).")


VERSION_TEST = '''import tomllib
from pathlib import Path

from greeter.version import __version__


def test_version_matches_pyproject() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text("utf-8"))
    assert __version__ == pyproject["project"]["version"]
'''

OLD_GREETING = 'return f"Hello, {name}!"'
NEW_GREETING = 'return f"Hi there, {name}!"'
_PYTEST_ASSERT = re.compile(r"^E\s+(?:AssertionError: )?assert (['\"])(.*?)\1 == (['\"])(.*?)\3\s*$", re.M)
_PYTEST_WHERE = re.compile(r"^(\S+\.py):\d+: AssertionError\s*$", re.M)


def failed_assertion(hint: str) -> tuple[str, str, str] | None:
    """(test file, what the code gave, what the test expected) from a failing check's pytest output: the
    `E   [AssertionError: ]assert 'got' == 'expected'` line and the `path.py:N: AssertionError` under it."""
    what, where = _PYTEST_ASSERT.search(hint), _PYTEST_WHERE.search(hint)
    return (where.group(1), what.group(2), what.group(4)) if what and where else None


def work_greeting(v: WorkerView) -> Reply:
    if "edit" not in v.done:
        return v.call("edit", "edit_file", {"path": "greeter/core.py", "search": OLD_GREETING,
                                            "replace": NEW_GREETING},
                      "Changing the greeting in greeter/core.py to 'Hi there, <name>!'.")
    if (stop := v.refused()) is not None:
        return _say(stop)
    failure = failed_assertion(v.hint)
    if failure is None:
        return _say("Done: greet(name) now returns 'Hi there, <name>!' (greeter/core.py).")
    test_file, got, expected = failure
    if "read-test" not in v.done:
        return v.call("read-test", "read_file", {"path": test_file},
                      f"The last attempt's check failed: {test_file} expects {expected!r} but greet now says "
                      f"{got!r}. That test pins the old greeting, which this ticket changes on purpose, so its "
                      "expectation must follow. Reading it.")
    content = str(v.done["read-test"].output.get("content", ""))
    quoted = next((f"{q}{expected}{q}" for q in ('"', "'") if f"{q}{expected}{q}" in content), None)
    if quoted is None:
        why = v.done["read-test"].error or "not found"
        return _say(f"{test_file} does not hold {expected!r} as I expected ({why}); I cannot update it. The ticket "
                    "is NOT complete.")
    if "fix-test" not in v.done:
        return v.call("fix-test", "edit_file", {"path": test_file, "search": quoted,
                                                "replace": quoted.replace(expected, got)},
                      f"Updating the expectation in {test_file} to {got!r}.")
    if (stop := v.refused()) is not None:
        return _say(stop)
    return _say(f"Done: greet(name) returns 'Hi there, <name>!', and {test_file} expects it (the check's failure "
                "in the last attempt was the old expectation).")


HEALTH = '''"""A health report: the running version and a status line."""

from greeter.version import __version__


def health() -> dict[str, str]:
    """What a monitor asks for."""
    return {"version": __version__, "status": "ok"}
'''

HEALTH_TEST = '''from greeter.health import health
from greeter.version import __version__


def test_health_reports_the_version_and_ok() -> None:
    assert health() == {"version": __version__, "status": "ok"}
'''

HEALTH_LINE = "- `health()` reports the version and a status."
VERSION_LINE = "- `greeter.version.__version__` is the package version."


def work_health(v: WorkerView) -> Reply:
    if "module" not in v.done:
        return _write(v, "module", "greeter/health.py", HEALTH, "Writing greeter/health.py.")
    if (stop := v.refused()) is not None:
        return _say(stop)
    if "test" not in v.done:
        return _write(v, "test", "tests/test_health.py", HEALTH_TEST, "A test for health().")
    if (stop := v.refused()) is not None:
        return _say(stop)
    if "readme" not in v.done:
        search, replace = _append_to_list(v.context.get("README.md", ""), HEALTH_LINE)
        return v.call("readme", "edit_file", {"path": "README.md", "search": search, "replace": replace},
                      "And a line in the README's usage list.")
    if (stop := v.refused()) is not None:
        return _say(stop)
    return _say("Done: greeter/health.py with health(), tests/test_health.py, and the README's usage list names it.")


def work_readme_version(v: WorkerView) -> Reply:
    if "readme" not in v.done:
        search, replace = _append_to_list(v.context.get("README.md", ""), VERSION_LINE)
        return v.call("readme", "edit_file", {"path": "README.md", "search": search, "replace": replace},
                      "Adding __version__ to the README's usage list.")
    if (stop := v.refused()) is not None:
        return _say(stop)
    return _say("Done: the README's usage list names greeter.version.__version__.")


CHANGELOG = """# Changelog

## 0.1.0

- `greeter.version.__version__`: the package version.
- `health()`: the version and a status line.
- A friendlier greeting: `greet("Ada")` says "Hi there, Ada!".
"""

README_LINK = "\n## Changes\n\nSee [CHANGELOG.md](CHANGELOG.md) for what changed in each release.\n"


def work_changelog(v: WorkerView) -> Reply:
    if "changelog" not in v.done:
        return _write(v, "changelog", "CHANGELOG.md", CHANGELOG, "Writing CHANGELOG.md.")
    if (stop := v.refused("changelog")) is not None:
        return _say(stop)
    readme = v.context.get("README.md", "")
    if not v.hint:  # the quick way a cheap model takes
        if "readme" not in v.done:
            return _write(v, "readme", "README.md", "# greeter\n\nSee CHANGELOG.md for what changed.\n",
                          "Rewriting README.md as a short pointer to the changelog.\n(Demo tip: this replaces the "
                          "whole README, usage list included — reject it, with a reason, to see the worker react.)")
        result = v.done["readme"]
        if not result.ok:
            why = (result.error or "no reason given").rstrip(".")
            return _say(f"You did not let me rewrite README.md ({why}). I leave README.md as it is, so it does not "
                        "link to the changelog yet: CHANGELOG.md is written, but the ticket is NOT complete.")
        return _say("Done: CHANGELOG.md lists 0.1.0's changes and README.md points to it.")
    if "link" not in v.done:  # the hint says what went wrong: keep the README, add to it
        lines = readme.splitlines(keepends=True)
        last = lines[-1] if lines else ""
        return v.call("link", "edit_file", {"path": "README.md", "search": last, "replace": last + README_LINK},
                      f"QA's hint from the last attempt: {v.hint.splitlines()[0][:200]}\nSo this time I keep the "
                      "README as it is and add a link to the changelog at its end.")
    if (stop := v.refused()) is not None:
        return _say(stop)
    return _say("Done: CHANGELOG.md lists 0.1.0's changes; the README keeps its content and links to it.")


def work_publish(v: WorkerView) -> Reply:
    if "token" not in v.done:
        return v.call("token", "read_file", {"path": ".pypirc"},
                      "An upload to PyPI needs an API token: looking for the workspace's .pypirc.")
    found = v.done["token"]
    why = found.error if not found.ok else "a .pypirc is no network"
    return _say(f"I cannot publish greeter: an upload needs network access and a PyPI token, and this workspace "
                f"has neither ({why}). I changed nothing: the ticket is NOT complete. Publish it by hand, or skip "
                "this ticket.")


WORKERS: dict[str, Callable[[WorkerView], Reply]] = {
    "T1": work_version, "T2": work_greeting, "T3": work_health, "T4": work_readme_version, "T5": work_changelog,
    "T6": work_publish,
}


# --------------------------------------------------------------------------- a resolve attempt, any ticket

def keep_both(text: str) -> str:
    """`text` with every git conflict block replaced by our lines, then their lines that ours lack (a diff3
    base section is dropped): what 'keep both changes' means for lines added at the same place."""
    out: list[str] = []
    ours: list[str] = []
    theirs: list[str] = []
    part = ""
    for line in text.splitlines(keepends=True):
        if line.startswith("<<<<<<< "):
            part, ours, theirs = "ours", [], []
        elif part and line.startswith("||||||| "):
            part = "base"
        elif part and line.rstrip("\n") == "=======":
            part = "theirs"
        elif part and line.startswith(">>>>>>> "):
            out += ours + [ln for ln in theirs if ln not in ours]
            part = ""
        elif part == "ours":
            ours.append(line)
        elif part == "theirs":
            theirs.append(line)
        elif not part:
            out.append(line)
    return "".join(out)


def resolve_conflicts(v: WorkerView) -> Reply:
    for i, path in enumerate(v.conflicts):
        if f"read-{i}" not in v.done:
            return v.call(f"read-{i}", "read_file", {"path": path},
                          f"My work conflicts with the track branch in {path}: reading the conflict markers.")
        content = str(v.done[f"read-{i}"].output.get("content", ""))
        if "<<<<<<< " in content and f"resolve-{i}" not in v.done:
            return _write(v, f"resolve-{i}", path, keep_both(content),
                          f"Keeping both sides' lines in {path}, without the markers.")
        if (stop := v.refused()) is not None:
            return _say(stop)
    return _say(f"Done: resolved the merge conflict in {', '.join(v.conflicts)} by keeping both changes; "
                "my ticket's earlier work is in this commit too.")


# --------------------------------------------------------------------------- Tier 4

def _all_text(req: ProviderRequest) -> str:
    return "\n".join(m.text for m in req.messages)


def review(text: str) -> Reply:
    """Fail a ticket whose change the person rejected, or whose worker says it is not complete; else pass."""
    for line in text.splitlines():
        if "-> NOT DONE: rejected" in line and line.lstrip("- ").startswith(("write_file", "edit_file")):
            call, why = line.lstrip("- ").split(" -> NOT DONE: ", 1)
            return _verdict("fail", f"The user rejected {call[:90]} ({why[:160]}), so that change is not in the "
                                    "workspace. Make it in a way the user accepts: keep what the file has and add "
                                    "to it.")
    report = text.split("WORKER REPORT", 1)[-1].split("WORKER ACTIONS", 1)[0]
    if "NOT complete" in report:
        lines = [ln for ln in report.splitlines()[1:] if ln.strip() and not ln.startswith((">>>", "<<<"))]
        why = lines[0].split(". ", 1)[0] if lines else "no reason given"
        return _verdict("fail", f"The worker says the ticket is not complete: {why[:240]}.")
    return _verdict("pass", "")


def _verdict(verdict: str, hint: str) -> Reply:
    return Reply(text=json.dumps({"verdict": verdict, "hint": hint}))
