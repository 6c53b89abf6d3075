"""Events that carry git results computed off the GUI thread (a `git diff`, a merge plan, a track summary, a tool
approval's recomputed preview) to the GUI through the one event queue. The GUI only renders them.

`DiffSubject` names what a diff is of: one ticket's commit against the commit it started from, or the whole
track against its base ("changes so far").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from conductor.events import Event
from conductor.git.base_merge import BaseMergePlan
from conductor.git.diffs import Diff
from conductor.git.results import TrackSummary


@dataclass(frozen=True)
class TicketDiffOf:
    ticket_id: str
    attempt: int | None = None
    """None: the ticket's newest committed attempt."""
    kind: Literal["ticket"] = "ticket"

    @property
    def key(self) -> str:
        return f"ticket:{self.ticket_id}" + (f"/a{self.attempt}" if self.attempt else "")


@dataclass(frozen=True)
class TrackDiffOf:
    kind: Literal["track"] = "track"

    @property
    def key(self) -> str:
        return "track"


DiffSubject = TicketDiffOf | TrackDiffOf


@dataclass(frozen=True, kw_only=True)
class DiffReady(Event):
    """A diff the person asked to see, or why there is none (`error`)."""

    kind: ClassVar[str] = "diff_ready"
    subject: DiffSubject
    title: str
    diff: Diff | None = None
    error: str | None = None
    attempts: tuple[int, ...] = ()
    """For a ticket: the attempts that made a commit (what a rewind can go back to)."""


@dataclass(frozen=True, kw_only=True)
class BaseMergePlanned(Event):
    """What "merge into base" would do, for the confirmation dialog (or why it cannot be asked: `error`)."""

    kind: ClassVar[str] = "base_merge_planned"
    plan: BaseMergePlan | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class GitSummaryReady(Event):
    """What the track branch holds when a run finishes (commits, files), for the end-of-run summary."""

    kind: ClassVar[str] = "git_summary_ready"
    summary: TrackSummary | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class ToolPreviewReady(Event):
    """A tool approval's preview recomputed for the arguments as the person edited them (`revision` orders the
    answers: only the newest is shown)."""

    kind: ClassVar[str] = "tool_preview_ready"
    request_id: str
    revision: int
    diff: str | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class GitInitOffered(Event):
    """The workspace is not a git repository: the person is asked whether to initialise one before the track
    runs (else it runs one worker at a time in the folder)."""

    kind: ClassVar[str] = "git_init_offered"
    workspace: str
    files: int
    """How many files the first commit would hold (what .gitignore leaves)."""
    reason: str


@dataclass(frozen=True, kw_only=True)
class CheckRan(Event):
    """QA ran the workspace's check command in a ticket's tree (conductor/checks.py): counted in the summary."""

    kind: ClassVar[str] = "check_ran"
    command: str
    ran: bool
    passed: bool
    exit_code: int | None = None
