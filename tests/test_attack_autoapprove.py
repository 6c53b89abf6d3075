"""Issue 9, class 4: automatic approval must fail closed for commands.

Policy under test (README "Approvals"): automatic approval of `tool` covers writes and edits only; a command runs
without a person only through an exact allow rule; interpreters given code, shells, runners (env, xargs, nohup,
setsid, timeout), find -exec, git -c, downloads, programs named by a path never match a rule; rules stop
matching once a write of the track ran without a person; programs resolve through absolute PATH entries outside
the workspace only.

Every hostile form is tried under every automatic-approval setting. Each form would create the marker file `F`
if it ran; it must instead raise a request only a person can answer (we reject it), and `F` must never appear.
"""

from __future__ import annotations

import os
import shlex
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import tomli_w

from conductor.approvals import ApprovalBroker
from conductor.config import Config, load_config
from conductor.errors import ConfigError
from conductor.events import Provenance
from conductor.messages import ToolCall, ToolResult
from conductor.store import Journal
from conductor.tools import CommandPolicy, ToolGate, workspace_toolbox
from conductor.tools.base import ToolContext
from conductor.tools.cmdline import from_argv, rule_problem
from conductor.tools.testkit import ApprovalWaiter, Background

PROV = Provenance(trace_id="run-4", track_id="T-auto", ticket_id="K1", tier=3, attempt=1)
ALL_KINDS = {"plan", "tickets", "spawn", "tool"}

# Each form, run in a workspace prepared by `seed`, would create ./F. None of them contains a shell character,
# so the old "shell syntax needs a person" rule let every one of them run under automatic approval.
FORMS: dict[str, list[str]] = {
    "sh script": ["sh", "x.sh"],
    "bash script": ["bash", "x.sh"],
    "sh -c": ["sh", "-c", "touch F"],
    "python script": ["python3", "x.py"],
    "python -c": ["python3", "-c", "open('F','w')"],
    "perl script": ["perl", "x.pl"],
    "env runner": ["env", "touch", "F"],
    "env sh": ["env", "sh", "x.sh"],
    "env assignment": ["env", "X=1", "touch", "F"],
    "xargs": ["xargs", "-a", "args.txt", "touch"],
    "find -execdir": ["find", ".", "-name", "seed", "-execdir", "touch", "F", "+"],
    "nohup": ["nohup", "touch", "F"],
    "timeout": ["timeout", "5", "touch", "F"],
    "setsid": ["setsid", "-w", "touch", "F"],
    "program by path": ["./x.sh"],
    "program in a subfolder": ["bin/mk"],
    "make -f": ["make", "-f", "x.mk"],
    "make VAR=": ["make", "SHELL=./x.sh"],
    "git -c": ["git", "-c", "core.pager=./x.sh", "log"],
    "git -C": ["git", "-C", "sub", "log"],
    "download": ["curl", "-s", "-o", "F", "file:///etc/hostname"],
    "awk": ["awk", "BEGIN{system(\"touch F\")}"],
}
SETTINGS = ["none", "auto tool", "approve all", "exact rule + approve all"]


def seed(ws: Path) -> None:
    (ws / "x.sh").write_text("#!/bin/sh\ntouch F\n")
    (ws / "x.sh").chmod(0o755)
    (ws / "x.py").write_text("open('F', 'w').close()\n")
    (ws / "x.pl").write_text("open(my $f, '>', 'F');\n")
    (ws / "x.mk").write_text("all:\n\ttouch F\n")
    (ws / "args.txt").write_text("F\n")
    (ws / "seed").write_text("")
    (ws / "bin").mkdir()
    (ws / "bin" / "mk").write_text("#!/bin/sh\ntouch F\n")
    (ws / "bin" / "mk").chmod(0o755)
    (ws / "sub").mkdir()


class Rig:
    def __init__(self, tmp: Path, *, setting: str = "none", rules: list[str] | None = None) -> None:
        self.ws = tmp / "ws"
        self.ws.mkdir()
        seed(self.ws)
        self.tracks = tmp / "tracks"
        self.journal = Journal(self.tracks / "T-auto" / "events.jsonl")
        self.broker = ApprovalBroker()
        if setting == "auto tool":
            self.broker.auto_approve({"tool"})
        elif setting.endswith("approve all"):
            self.broker.auto_approve(ALL_KINDS)
        self.policy = CommandPolicy(rules or [])  # built directly: the config's own check is bypassed on purpose
        self.waiter = ApprovalWaiter(self.broker)
        self.gate = ToolGate(workspace_toolbox(self.ws), self.broker, self.journal, allow=self.policy)
        self.n = 0

    def ctx(self) -> ToolContext:
        return ToolContext(self.ws, PROV, cancel=threading.Event(), protected=(self.tracks,))

    def call(self, name: str, **args: object) -> ToolCall:
        self.n += 1
        return ToolCall(f"c{self.n}", name, dict(args))

    def run(self, call: ToolCall) -> ToolResult:
        return self.gate.run(call, self.ctx())[0]

    def run_answering(self, call: ToolCall, answer: Callable[[str], bool]) -> tuple[ToolResult, bool]:
        """Run `call`; if a person is asked, answer with `answer(request id)`. Returns (result, asked)."""
        job = Background(lambda: self.gate.run(call, self.ctx()))
        asked = False
        try:
            req = self.waiter.next(timeout=1.5)
        except Exception:  # queue.Empty: nobody was asked
            req = None
        if req is not None:
            asked = True
            answer(req.id)
        return job.result()[0], asked


def marker(ws: Path) -> bool:
    return any(p.name == "F" for p in ws.rglob("F"))


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("form", list(FORMS))
def test_hostile_form_never_runs_without_a_person(tmp_path: Path, form: str, setting: str) -> None:
    argv = FORMS[form]
    assert rule_problem(from_argv(argv)) is not None, f"{form}: {argv} must never be allowed by a rule"
    rig = Rig(tmp_path, setting=setting, rules=[shlex.join(argv)] if setting.startswith("exact rule") else [])
    decided = []

    def reject(req_id: str) -> None:
        pending = [r for r in rig.broker.pending() if r.id == req_id]
        assert pending, "the request was decided by a policy, not left for a person"
        decided.append(req_id)
        rig.broker.resolve(req_id, approved=False, reason="a person said no")

    result, asked = rig.run_answering(rig.call("run_command", argv=argv), reject)
    assert asked and decided, f"{form} under {setting}: no person was asked"
    assert not result.ok and "a person said no" in (result.error or "")
    assert not marker(rig.ws), f"{form} under {setting} ran"


@pytest.mark.parametrize("form", list(FORMS))
def test_hostile_form_is_a_config_error_as_an_allow_rule(tmp_path: Path, form: str) -> None:
    cfg_file = tmp_path / "config.toml"
    cfg_file.write_text(tomli_w.dumps({"approvals": {"allow_commands": ["make test", shlex.join(FORMS[form])]}}))
    with pytest.raises(ConfigError) as err:
        load_config(cfg_file)
    assert str(cfg_file) in str(err.value) and "approvals.allow_commands" in str(err.value)
    assert "entry 1" in str(err.value)


@pytest.mark.parametrize("form", list(FORMS))
def test_hostile_form_cannot_be_remembered(tmp_path: Path, form: str) -> None:
    rig = Rig(tmp_path)
    call = rig.call("run_command", argv=FORMS[form])
    assert rig.policy.remember(call, rig.ctx(), rig.journal) is not None
    assert not rig.policy.allows(call, rig.ctx())


def test_auto_tool_approves_writes_but_never_a_plain_command(tmp_path: Path) -> None:
    rig = Rig(tmp_path, setting="auto tool")
    assert rig.run(rig.call("write_file", path="ok.txt", content="ok\n")).ok
    result, asked = rig.run_answering(rig.call("run_command", argv=["touch", "F"]),
                                      lambda rid: rig.broker.resolve(rid, approved=False, reason="no"))
    assert asked and not result.ok and not marker(rig.ws)


def test_two_steps_write_then_run_under_auto_tool_and_an_allow_rule(tmp_path: Path) -> None:
    """Writes are auto-approved and `make` is an exact rule: the worker writes a Makefile, then runs make.
    The unattended write suspends the track's rules, so make asks a person; the suspension is journalled and
    survives a restart."""
    rig = Rig(tmp_path, setting="auto tool", rules=["make"])
    assert rig.run(rig.call("write_file", path="Makefile", content="all:\n\ttouch F\n")).ok
    result, asked = rig.run_answering(rig.call("run_command", argv=["make"]),
                                      lambda rid: rig.broker.resolve(rid, approved=False, reason="no"))
    assert asked and not result.ok and not marker(rig.ws)
    assert [r.type for r in rig.journal.records()].count("unattended_write") == 1
    rig.journal.close()
    again = CommandPolicy(["make"], Journal(rig.journal.path))
    assert again.tainted("T-auto") == "Makefile" and not again.allows(ToolCall("x", "run_command",
                                                                             {"argv": ["make"]}), rig.ctx())


def test_control_an_exact_rule_runs_unattended_when_every_write_had_a_person(tmp_path: Path) -> None:
    rig = Rig(tmp_path, rules=["make"])
    (rig.ws / "Makefile").write_text("all:\n\ttouch ok.marker\n")
    result, asked = rig.run_answering(rig.call("run_command", argv=["make"]), lambda rid: None)
    assert result.ok and not asked and (rig.ws / "ok.marker").exists()


@pytest.mark.parametrize("entry", ["bin", ".", "", "./node_modules/.bin", "WS/bin"])
def test_a_repository_cannot_shadow_an_allowed_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       entry: str) -> None:
    """`make --version` is allowed; the repository ships bin/make (and ./make) that would create F. With
    relative PATH entries, or an absolute one inside the workspace, in front: the real make still runs."""
    real_make = shutil.which("make")
    assert real_make
    rig = Rig(tmp_path, rules=["make --version"])
    for where in (rig.ws / "bin", rig.ws, rig.ws / "node_modules" / ".bin"):
        where.mkdir(parents=True, exist_ok=True)
        (where / "make").write_text("#!/bin/sh\ntouch F\necho fake make\n")
        (where / "make").chmod(0o755)
    front = str(rig.ws / "bin") if entry == "WS/bin" else entry
    monkeypatch.setenv("PATH", front + os.pathsep + os.environ["PATH"])
    monkeypatch.chdir(rig.ws)
    result, asked = rig.run_answering(rig.call("run_command", argv=["make", "--version"]), lambda rid: None)
    assert result.ok and not asked
    assert result.output is not None and result.output["argv"][0] == real_make
    assert "GNU Make" in result.output["output"] and not marker(rig.ws)


def test_a_program_found_only_in_the_workspace_is_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(tmp_path, rules=["mytool"])
    (rig.ws / "bin" / "mytool").write_text("#!/bin/sh\ntouch F\n")
    (rig.ws / "bin" / "mytool").chmod(0o755)
    monkeypatch.setenv("PATH", "bin" + os.pathsep + str(rig.ws / "bin") + os.pathsep + os.environ["PATH"])
    result, _ = rig.run_answering(rig.call("run_command", argv=["mytool"]), lambda rid: None)
    assert not result.ok and "not found on PATH" in (result.error or "") and not marker(rig.ws)


def test_the_readme_states_the_policy() -> None:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "never approves a command" in text and "absolute PATH" in text


def test_lax_values_are_config_errors_naming_file_and_key(tmp_path: Path) -> None:
    cfg_file = tmp_path / "config.toml"
    cfg_file.write_text('[engine]\nstep_mode = "no"\n')
    with pytest.raises(ConfigError, match=r"config.toml.*engine.step_mode"):
        load_config(cfg_file)
    cfg_file.write_text('[engine]\nmax_workers = "4"\n')
    with pytest.raises(ConfigError, match=r"engine.max_workers"):
        load_config(cfg_file)
    cfg = Config()
    with pytest.raises(ValueError, match="frozen"):  # the loaded config is a value: never changed in place
        cfg.engine.step_mode = "yes"  # type: ignore[misc]
    with pytest.raises(ConfigError, match=r"settings: key 'engine.step_mode': input should be a valid boolean"):
        cfg.updated({"engine": {"step_mode": "yes"}})  # a Settings change is validated whole, naming the key
