"""The view-model's git part: what the person asks of a track's git (a diff, a revert, a rewind, a merge into the
base, `git init`) and the answers that come back as events (conductor/git_events.py).

Reading git (diffs, the merge plan, the summary, an edited tool call's preview) happens on the session's git
review thread (conductor/git_review.py); moving a branch (revert, rewind, merge into base) is an engine command
on the track's engine thread, journalled as a record. Nothing here runs git or touches a widget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conductor.app.state import ControllerState
from conductor.engine import MergeIntoBase, RevertTicket, RewindTicket
from conductor.errors import ConductorError
from conductor.events import Event, RunFinished
from conductor.git.base_merge import BaseMergePlan
from conductor.git_events import (
    BaseMergePlanned,
    DiffReady,
    DiffSubject,
    GitInitOffered,
    GitSummaryReady,
    TicketDiffOf,
    ToolPreviewReady,
    TrackDiffOf,
)
from conductor.git_review import GitReview
from conductor.model import TicketStatus
from conductor.session import AwaitingGitInit


@dataclass
class ToolPreview:
    """The newest recomputed preview of one tool approval (as its arguments were edited)."""

    revision: int
    diff: str | None = None
    error: str | None = None
    pending: bool = True


class GitActions(ControllerState):
    """Part of `AppController`. State: `diff` (the diff on screen), `base_plan`, `git_summary` per track,
    `tool_previews` per request id, `git_init_offer`; all bump `versions["git"]`."""

    def init_git_state(self) -> None:
        self.versions.setdefault("git", 0)
        self.diff: DiffReady | None = None
        self.diff_wanted: str | None = None
        """The subject key the person asked for last (an older answer arriving late is not shown)."""
        self.base_plan: BaseMergePlanned | None = None
        self.git_summaries: dict[str, GitSummaryReady] = {}
        self.tool_previews: dict[str, ToolPreview] = {}
        self.git_init_offer: GitInitOffered | None = None
        self._review: GitReview | None = None
        self.wire_git()

    @property
    def git_review(self) -> GitReview:
        if self._review is None or self._review.session is not self.session:
            if self._review is not None:
                self._review.close()
            self._review = GitReview(self.session)
        return self._review

    def wire_git(self) -> None:
        """The session asks the GUI (never decides alone) whether to `git init` a plain folder."""
        self.session.offer_git_init = lambda track_id, why: self.git_review.offer_init(track_id, why)

    def close_git(self) -> None:
        if self._review is not None:
            self._review.close()
            self._review = None

    # ---------------- asking

    def show_diff(self, subject: DiffSubject, track_id: str | None = None) -> str | None:
        tid = track_id or self.active_track
        if tid is None:
            return self.fail("No track is loaded: load one first to see its changes.")
        self.diff_wanted = subject.key
        self.diff = None
        self.git_review.request_diff(tid, subject)
        what = "the track" if isinstance(subject, TrackDiffOf) else subject.ticket_id
        self.status_message = f"computing the diff of {what}…"
        self._bump("git", "status")
        return None

    def plan_base_merge(self, track_id: str | None = None) -> str | None:
        tid = track_id or self.active_track
        if tid is None:
            return self.fail("No track is loaded: load the finished track first.")
        self.base_plan = None
        self.git_review.plan_base_merge(tid)
        self._bump("git")
        return None

    def dependents(self, ticket_id: str) -> list[str]:
        """Every ticket that depends on `ticket_id`, directly or through others (named before a revert)."""
        track = self.tracks.get(self.active_track or "")
        if track is None:
            return []
        out: list[str] = []
        frontier = [ticket_id]
        while frontier:
            cur = frontier.pop()
            for t in track.tickets:
                if cur in t.depends_on and t.id not in out:
                    out.append(t.id)
                    frontier.append(t.id)
        return sorted(out)

    def active_ticket_ids(self, statuses: set[TicketStatus] | None = None) -> list[str]:
        track = self.tracks.get(self.active_track or "")
        if track is None:
            return []
        return [t.id for t in track.tickets if statuses is None or t.status in statuses]

    def _engine_command(self, what: str, command: RevertTicket | RewindTicket | MergeIntoBase) -> str | None:
        tid = self.active_track
        if tid is None:
            return self.fail("No track is loaded.")
        try:
            self.session.command(tid, command)
        except AwaitingGitInit as exc:
            return str(exc)
        except (ValueError, ConductorError) as exc:
            return self.fail(f"Cannot {what}: {exc}")
        self.status_message = f"{what}: sent to {tid}"
        self._bump("status")
        return None

    def revert_ticket(self, ticket_id: str) -> str | None:
        """Only after the person confirmed (the dialog names the dependents)."""
        return self._engine_command(f"revert {ticket_id}", RevertTicket(ticket_id))

    def rewind_ticket(self, ticket_id: str, to_attempt: int) -> str | None:
        return self._engine_command(f"rewind {ticket_id} to attempt {to_attempt}", RewindTicket(ticket_id, to_attempt))

    def merge_into_base(self, plan: BaseMergePlan) -> str | None:
        """Only after the person read the plan and said yes; refused (by the engine) if anything moved since."""
        if plan.refused is not None:
            return self.fail(f"Not merged: {plan.refused}")
        return self._engine_command(f"merge {plan.track_branch} into {plan.base_branch}", MergeIntoBase(plan))

    def preview_tool(self, request_id: str, args: dict[str, Any]) -> None:
        """Recompute an approval's preview for edited arguments (off the GUI thread; the newest answer wins)."""
        cur = self.tool_previews.get(request_id)
        revision = (cur.revision if cur else 0) + 1
        self.tool_previews[request_id] = ToolPreview(revision, cur.diff if cur else None, None, pending=True)
        self.git_review.preview_tool(request_id, args, revision)
        self._bump("git")

    def answer_git_init(self, initialise: bool) -> str | None:
        """The person's answer to "initialise a git repository here?": yes runs `git init` (and a first commit of
        what .gitignore leaves), then the track; no runs the track with one worker in the folder."""
        offer = self.git_init_offer
        self.git_init_offer = None
        self._bump("git")
        if offer is None:
            return None
        self.session.git_init_answered.add(self.session.workspace)
        track_id = offer.track_id
        if initialise:
            self.git_review.init_and_run(track_id)
            self.status_message = f"initialising a git repository in {offer.workspace}…"
            self._bump("status")
            return None
        if track_id is None:
            return None
        try:
            self.session.run_track(track_id)
        except (ValueError, ConductorError, OSError) as exc:
            return self.fail(f"Cannot run {track_id}: {exc}")
        return None

    # ---------------- answers (events)

    def apply_git(self, ev: Event) -> bool:
        """Apply a git event; False when `ev` is not one (the other handlers take it)."""
        match ev:
            case DiffReady():
                if ev.subject.key == self.diff_wanted:
                    self.diff = ev
                    self.status_message = ev.error or f"diff: {ev.title}"
                    self._bump("git", "status")
            case BaseMergePlanned():
                self.base_plan = ev
                self._bump("git")
            case GitSummaryReady():
                if ev.track_id is not None:
                    self.git_summaries[ev.track_id] = ev
                    self._bump("git")
            case ToolPreviewReady():
                cur = self.tool_previews.get(ev.request_id)
                if cur is not None and ev.revision >= cur.revision:
                    self.tool_previews[ev.request_id] = ToolPreview(ev.revision, ev.diff, ev.error, pending=False)
                    self._bump("git")
            case GitInitOffered():
                self.git_init_offer = ev
                self._bump("git")
            case RunFinished():
                if ev.track_id is not None:
                    self.git_review.summarise(ev.track_id)
                return False  # the run summary and the status bar handle it too
            case _:
                return False
        self.applied += 1
        return True


__all__ = ["GitActions", "TicketDiffOf", "ToolPreview", "TrackDiffOf"]
