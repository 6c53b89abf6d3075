"""The command policy: which mutating calls may run without asking.

    reads (non-mutating tools)        run at once (the gate never asks)
    write_file / edit_file            a `tool` approval; automatic approval (`auto = ["tool"]`) may answer it
    run_command, plain argv that      runs without asking only if that EXACT argv is in
    cmdline.rule_problem accepts      cfg.approvals.allow_commands (parsed with shlex, compared as lists:
                                      `make test` allows `make test`, never `make test-all` or `make test x`),
                                      or the user approved it with "always allow for this track" (remember),
                                      and only while no write/edit of the track ran without a person (taint)
    any other run_command             a person, always: never a rule, never automatic approval (shell syntax,
                                      interpreters given code, runners like env/xargs, downloads, find -exec,
                                      git -c, programs named by a path)

Remembered rules are per track and persisted in the track's journal as `allow_rule` records (key
`<track>:<argv json>`), so they come back on resume. One policy may serve every track of a session: the gate
hands it each track's journal (`load(journal)` when the gate is built, `remember(call, ctx, journal)` when a
person chooses "always allow").
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from conductor.messages import ToolCall
from conductor.records import AllowRuleAdded, UnattendedWrite
from conductor.tools import cmdline
from conductor.tools.base import ToolContext

if TYPE_CHECKING:
    from conductor.config import Config
    from conductor.store import Journal

COMMAND_TOOL = "run_command"


def rule_key(track_id: str, argv: tuple[str, ...]) -> str:
    return f"{track_id}:{json.dumps(list(argv), ensure_ascii=False)}"


class CommandPolicy:
    """An `AllowPolicy` for ToolGate (call it with (call, ctx)), plus `remember` for approvals with
    remember=True. Thread-safe: workers of one track share it."""

    def __init__(self, allow_commands: Iterable[str] = (), journal: Journal | None = None) -> None:
        self.journal = journal
        self.warnings: list[str] = []
        self._config: set[tuple[str, ...]] = set()
        self._rules: dict[str, set[tuple[str, ...]]] = {}
        self._loaded: set[str] = set()
        self._tainted: dict[str, str] = {}
        """track id -> the path of the first change no person approved."""
        self._lock = threading.Lock()
        self.set_config_rules(allow_commands)
        if journal is not None:
            self.load(journal)

    def set_config_rules(self, allow_commands: Iterable[str]) -> None:
        """The config's rules (at start, and when Settings replace the config): from the next command asked. A
        withdrawn rule stops matching at once, even inside a running attempt (a person's "no longer" must not
        wait); the tracks' remembered rules are kept."""
        rules: set[tuple[str, ...]] = set()
        for line in allow_commands:
            form = cmdline.from_line(line)
            why = cmdline.rule_problem(form)
            if why is None:
                assert form.argv is not None
                rules.add(form.argv)
            else:  # fail closed (config.py refuses these too, naming the file and key)
                self.warnings.append(f"approvals.allow_commands entry {line!r} is ignored: {why}")
        with self._lock:
            self._config = rules

    @classmethod
    def from_config(cls, cfg: Config, journal: Journal | None = None) -> CommandPolicy:
        return cls(cfg.approvals.allow_commands, journal)

    def load(self, journal: Journal) -> int:
        """Read the remembered rules of a track's journal (on resume); a journal already read is skipped.
        Returns how many rules were read."""
        with self._lock:
            where = str(journal.path.resolve())
            if where in self._loaded:
                return 0
            self._loaded.add(where)
        n = 0
        for rec in journal.records():
            if isinstance(rec, UnattendedWrite) and rec.track_id:
                with self._lock:
                    self._tainted.setdefault(rec.track_id, rec.path)
                continue
            if isinstance(rec, AllowRuleAdded) and rec.track_id:
                form = cmdline.from_argv(list(rec.argv))
                if cmdline.auto_allowable(form):
                    assert form.argv is not None
                    with self._lock:
                        self._rules.setdefault(rec.track_id, set()).add(form.argv)
                    n += 1
        return n

    def __call__(self, call: ToolCall, ctx: ToolContext) -> bool:
        return self.allows(call, ctx)

    def allows(self, call: ToolCall, ctx: ToolContext) -> bool:
        """True only for a run_command whose exact, plain argv is allowed by the config or by this track's rules."""
        if call.name != COMMAND_TOOL:
            return False
        try:
            form = cmdline.from_args(dict(call.args))
        except ValueError:
            return False
        if not cmdline.auto_allowable(form):
            return False
        assert form.argv is not None
        track = ctx.prov.track_id or ""
        with self._lock:
            if track in self._tainted:
                return False
            return form.argv in self._config or form.argv in self._rules.get(track, set())

    def taint(self, call: ToolCall, ctx: ToolContext, journal: Journal | None = None) -> None:
        """A write or edit runs in this track without a person: journal it, then stop matching rules here."""
        track = ctx.prov.track_id or ""
        path = str(call.args.get("path", "?"))
        with self._lock:
            if track in self._tainted:
                return
            journal = journal if journal is not None else self.journal
            if journal is not None:
                journal.append(UnattendedWrite(key=f"{track}:taint", track_id=track, path=path, tool=call.name))
            self._tainted[track] = path

    def tainted(self, track_id: str) -> str | None:
        """The path of the first change in this track no person approved (rules are off), or None."""
        with self._lock:
            return self._tainted.get(track_id)

    def remember(self, call: ToolCall, ctx: ToolContext, journal: Journal | None = None) -> str | None:
        """'Always allow this exact command for this track'. Journals the rule (in `journal`, else the policy's
        own) before it takes effect. Returns None when remembered, else why not (the call itself still runs:
        it was approved)."""
        if call.name != COMMAND_TOOL:
            return f"'always allow' applies to commands only; {call.name} will ask again next time"
        track = ctx.prov.track_id
        if not track:
            return "'always allow' needs a track; this call has none"
        try:
            form = cmdline.from_args(dict(call.args))
        except ValueError as exc:
            return f"not remembered: {exc}"
        if not cmdline.auto_allowable(form):
            return f"not remembered: {form.text!r} always needs a person's approval ({form.human_reason})"
        assert form.argv is not None
        with self._lock:
            if form.argv in self._rules.get(track, set()):
                return None
            journal = journal if journal is not None else self.journal
            if journal is not None:  # journal first: a rule in force is a rule on disk
                journal.append(AllowRuleAdded(key=rule_key(track, form.argv), track_id=track,
                                              argv=list(form.argv), command=form.text))
            self._rules.setdefault(track, set()).add(form.argv)
        return None

    def rules(self, track_id: str) -> list[list[str]]:
        """This track's remembered rules (for a settings view)."""
        with self._lock:
            return sorted(list(a) for a in self._rules.get(track_id, set()))


def policy_from_config(cfg: Config, journal: Journal | None = None) -> CommandPolicy:
    """The session's allow policy: cfg.approvals.allow_commands plus each track's remembered rules."""
    return CommandPolicy.from_config(cfg, journal)
