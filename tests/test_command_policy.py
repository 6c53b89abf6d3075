"""The command policy: exact argv forms only; shell syntax and unparseable text fail closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from conductor.config import Config
from conductor.errors import ConfigError
from conductor.events import Provenance
from conductor.messages import ToolCall
from conductor.store import Journal
from conductor.tools import cmdline
from conductor.tools.base import ToolContext
from conductor.records import AllowRuleAdded
from conductor.tools.policy import CommandPolicy, policy_from_config

SHELL_FORMS = [
    "ls && rm -rf x", "ls || rm -rf x", "ls; rm -rf x", "ls | sh", "sleep 1 &", "echo $(touch F)",
    "echo `touch F`", "echo $[ x='a[$(touch F)]' ]", "echo ${HOME}", "echo $HOME", "echo hi > F", "cat < F",
    "echo hi >> F", "ls\nrm -rf x", "ls\rrm x", "ls\x00rm", "echo Y3VybA== | base64 -d | sh", "ls *.py",
    "ls ~", "echo {a,b}", "echo 'unterminated", "rm -rf x #comment", "echo a\\;b", "X=1 make test",
    "ls\u200b", "ls\u202e", "(ls)", "ls 2>&1", "! ls", "ls ?", "echo [x]",
]


def ctx(track: str = "T1") -> ToolContext:
    return ToolContext(Path("."), Provenance(track_id=track, ticket_id="K1", tier=3, attempt=1))


def cmd(line: str) -> ToolCall:
    return ToolCall("c", "run_command", {"command": line})


@pytest.mark.parametrize("line", SHELL_FORMS)
def test_shell_syntax_needs_a_person(line: str) -> None:
    form = cmdline.from_line(line)
    assert form.human_reason is not None
    assert not cmdline.auto_allowable(form)


@pytest.mark.parametrize("line", SHELL_FORMS)
def test_an_allow_rule_with_the_same_text_never_allows_shell_syntax(line: str) -> None:
    policy = CommandPolicy([line])
    assert not policy(cmd(line), ctx())
    assert policy.warnings and "ignored" in policy.warnings[0]


@pytest.mark.parametrize("line,argv", [
    ("python -m pytest -q", ["python", "-m", "pytest", "-q"]),
    ("pytest -k 'not slow' tests/test_a.py::test_b", ["pytest", "-k", "not slow", "tests/test_a.py::test_b"]),
    ('git commit -m "a message"', ["git", "commit", "-m", "a message"]),
    ("make   test", ["make", "test"]),
])
def test_plain_lines_parse_to_argv(line: str, argv: list[str]) -> None:
    form = cmdline.from_line(line)
    assert form.argv == tuple(argv) and form.human_reason is None


def test_exact_form_only_never_prefix() -> None:
    policy = CommandPolicy(["make test", "python -m pytest -q"])
    assert policy(cmd("make test"), ctx())
    assert policy(cmd("make  'test'"), ctx())  # same argv after parsing
    assert policy(ToolCall("c", "run_command", {"argv": ["make", "test"]}), ctx())
    for line in ["make test-all", "make test x", "make", "make tests", "python -m pytest", "python -m pytest -q -x",
                 "make test; rm -rf x", "make test && rm -rf x"]:
        assert not policy(cmd(line), ctx()), line


def test_argv_with_shell_characters_is_never_auto_allowed() -> None:
    """['sh', '-c', 'curl x | sh'] runs without a shell of ours, but sh itself is one: fail closed (even
    `sh -c ls`: a shell given code is never a rule)."""
    policy = CommandPolicy(["sh -c ls"])
    assert policy.warnings and not policy(ToolCall("c", "run_command", {"argv": ["sh", "-c", "ls"]}), ctx())
    call = ToolCall("c", "run_command", {"argv": ["sh", "-c", "curl x | sh"]})
    assert not policy(call, ctx())
    assert cmdline.from_argv(["sh", "-c", "curl x | sh"]).human_reason is not None


def test_writes_and_edits_are_never_allowed_by_the_policy() -> None:
    policy = CommandPolicy(["make test"])
    assert not policy(ToolCall("c", "write_file", {"path": "a", "content": "b"}), ctx())
    assert not policy(ToolCall("c", "edit_file", {"path": "a", "search": "b", "replace": "c"}), ctx())


def test_bad_arguments_are_not_allowed() -> None:
    policy = CommandPolicy(["make test"])
    assert not policy(ToolCall("c", "run_command", {}), ctx())
    assert not policy(ToolCall("c", "run_command", {"command": "make test", "argv": ["make", "test"]}), ctx())
    assert not policy(ToolCall("c", "run_command", {"argv": "make test"}), ctx())
    with pytest.raises(ValueError):
        cmdline.from_argv(["make", "te\x00st"])


def test_remembered_rule_is_per_track_and_persisted(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "events.jsonl")
    policy = CommandPolicy([], journal)
    assert not policy(cmd("npm test"), ctx("T1"))
    assert policy.remember(cmd("npm test"), ctx("T1")) is None
    assert policy(cmd("npm test"), ctx("T1")) and not policy(cmd("npm test"), ctx("T2"))
    assert not policy(cmd("npm test -- --watch"), ctx("T1"))
    recs = [r for r in journal.records() if isinstance(r, AllowRuleAdded)]
    assert len(recs) == 1 and recs[0].argv == ["npm", "test"] and recs[0].track_id == "T1"
    assert policy.remember(cmd("npm test"), ctx("T1")) is None  # already known: no second record
    assert len([r for r in journal.records() if isinstance(r, AllowRuleAdded)]) == 1
    journal.close()

    resumed = CommandPolicy([])  # a new session: rules come back from the track's journal
    assert not resumed(cmd("npm test"), ctx("T1"))
    assert resumed.load(Journal(tmp_path / "events.jsonl")) == 1
    assert resumed(cmd("npm test"), ctx("T1")) and resumed.rules("T1") == [["npm", "test"]]


def test_remember_refuses_shell_syntax_and_non_commands(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "events.jsonl")
    policy = CommandPolicy([], journal)
    assert "always needs a person" in (policy.remember(cmd("curl x | sh"), ctx()) or "")
    assert "commands only" in (policy.remember(ToolCall("c", "write_file", {"path": "a", "content": ""}), ctx())
                               or "")
    assert not [r for r in journal.records() if isinstance(r, AllowRuleAdded)]


def test_from_config() -> None:
    cfg = Config()
    with pytest.raises(ConfigError, match="ls | wc"):  # a rule no command could match is an error, not a no-op
        cfg.updated({"approvals": {"allow_commands": ["python -m pytest -q", "ls | wc"]}})
    cfg = cfg.updated({"approvals": {"allow_commands": ["python -m pytest -q"]}})
    policy = policy_from_config(cfg)
    assert policy(cmd("python -m pytest -q"), ctx()) and not policy(cmd("ls | wc"), ctx())
    assert not policy.warnings
    direct = CommandPolicy(["ls | wc"])  # built without the config's check: still allows nothing, and says so
    assert len(direct.warnings) == 1 and "'ls | wc'" in direct.warnings[0] and not direct(cmd("ls | wc"), ctx())
