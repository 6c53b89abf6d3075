"""The end-of-run summary: what one run of a track did (tickets by outcome, files written, commands run,
what it cost, how long it took), gathered from the events as they pass and shown when the run finishes."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from conductor.app.formatting import fmt_cost
from conductor.events import Event, RunFinished, ToolCalled, ToolResulted
from conductor.git.results import TrackSummary
from conductor.git_events import CheckRan
from conductor.model import TicketStatus, Track
from conductor.usage import UsageLedger

FILE_TOOLS = ("write_file", "edit_file")
COMMAND_TOOL = "run_command"
_RESULT_PATH = re.compile(r"""\bpath=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")


def written_path(summary: str, called_with: str) -> str:
    """The path a file tool wrote: its result names it (an approval may have edited the path the model
    asked for); the requested path when the result does not say."""
    m = _RESULT_PATH.search(summary)
    if m is None:
        return called_with
    try:
        return str(ast.literal_eval(m.group(1)))
    except (ValueError, SyntaxError):  # a summary cut mid-path: the requested path is the best we know
        return called_with


@dataclass
class RunSummary:
    track_id: str
    title: str = ""
    status: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    commands_ok: int = 0
    commands_failed: int = 0
    cost: str = ""
    tokens: int = 0
    started: float = 0.0
    finished: float = 0.0
    checks_run: int = 0
    checks_passed: int = 0
    waiting: list[str] = field(default_factory=list)
    """Tickets the run left for the person, each with what can be done about it."""

    @staticmethod
    def git_lines(git: TrackSummary | None, error: str | None = None) -> list[str]:
        """What the track branch holds (from git, once the run finished): the branch ready for a pull request."""
        if git is None:
            return [f"Git: {error}"] if error else []
        merged = [k for k in git.merged if k not in git.reverted]
        return [f"Branch: {git.branch} — ready for a pull request (nothing was pushed)",
                f"Commits: {git.commits} on the branch since its base {git.base_sha[:12]} ({len(merged)} ticket "
                f"merge{'s' if len(merged) != 1 else ''}" + (f", {len(git.reverted)} reverted" if git.reverted else "")
                + ")",
                f"Files changed against the base: {len(git.files)}"]

    @property
    def duration_s(self) -> float:
        return max(self.finished - self.started, 0.0)

    def lines(self) -> list[str]:
        tickets = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items())) or "no tickets"
        minutes, seconds = divmod(round(self.duration_s), 60)
        files = ", ".join(self.files[:8]) + (f" and {len(self.files) - 8} more" if len(self.files) > 8 else "")
        return [f"{self.title or self.track_id}: {self.status}",
                f"Tickets: {tickets}",
                f"Files changed ({len(self.files)}): {files or 'none'}",
                f"Commands run: {self.commands_ok} ok, {self.commands_failed} failed",
                f"Checks run: {self.checks_run}, passed {self.checks_passed}",
                f"Spent: {self.cost} ({self.tokens:,} tokens) on this track so far",
                f"Duration: {minutes} min {seconds:02d} s",
                *([f"Waiting for you: {'; '.join(self.waiting)}"] if self.waiting else [])]


WHAT_NEXT = {TicketStatus.NEEDS_MERGE: "needs merge (Retry starts a resolve attempt)",
             TicketStatus.FAILED: "failed (Retry, Edit or Skip it)",
             TicketStatus.BLOCKED: "blocked (see its reason; Retry or Skip it)"}


def waiting_for_person(track: Track) -> list[str]:
    """`T3 needs merge (Retry starts a resolve attempt)` for each ticket only the person can move on."""
    return [f"{t.id} {WHAT_NEXT[t.status]}" for t in track.tickets if t.status in WHAT_NEXT]


class RunSummaries:
    """Feed every applied event to `see`; it returns a summary when a run finishes."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self._calls: dict[tuple[str, str | None, str], tuple[str, str]] = {}
        """By (track, ticket, call id): call ids are unique within one worker's turn only."""
        self._files: dict[str, dict[str, None]] = {}
        self._commands: dict[str, list[int]] = {}
        self._checks: dict[str, list[int]] = {}
        """Per track: [checks run, checks passed] (QA's check command, conductor/checks.py)."""

    def see(self, ev: Event, ledger: UsageLedger, title: str = "",
            track_now: Track | None = None) -> RunSummary | None:
        """`track_now`: the track as the screen has it (says which tickets wait for the person)."""
        track = ev.track_id
        if not track:
            return None
        self._started.setdefault(track, ev.ts)
        match ev:
            case ToolCalled():
                self._calls[(track, ev.ticket_id, ev.call_id)] = (ev.name, str(ev.args.get("path", "")))
            case ToolResulted():
                name, path = self._calls.pop((track, ev.ticket_id, ev.call_id), (ev.name, ""))
                if name in FILE_TOOLS and ev.ok and not ev.replayed:
                    if written := written_path(ev.summary, path):
                        self._files.setdefault(track, {})[written] = None
                elif name == COMMAND_TOOL and not ev.replayed:
                    self._commands.setdefault(track, [0, 0])[0 if ev.ok else 1] += 1
            case CheckRan():
                checks = self._checks.setdefault(track, [0, 0])
                checks[0] += 1 if ev.ran else 0
                checks[1] += 1 if ev.passed else 0
            case RunFinished():
                spent = ledger.by_track().get(track)
                ok, failed = self._commands.pop(track, [0, 0])
                run, passed = self._checks.pop(track, [0, 0])
                summary = RunSummary(track, title, ev.status, dict(ev.counts), list(self._files.pop(track, {})),
                                     ok, failed, fmt_cost(spent.cost_usd) if spent else fmt_cost(0.0),
                                     spent.total_tokens if spent else 0, self._started.pop(track), ev.ts,
                                     checks_run=run, checks_passed=passed,
                                     waiting=waiting_for_person(track_now) if track_now is not None else [])
                return summary
            case _:
                pass
        return None
