"""The commands the views' callbacks call: planning, approvals, track and ticket commands, settings, and
switching workspace or provider. Most return the problem as a message, or None when it worked.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, assert_never

from conductor.app.budget_resets import BudgetResetFile
from conductor.app.session_factory import UnavailableProvider, demo_folders, demo_home, open_session
from conductor.app.state import ControllerState
from conductor.app.streams import Streams
from conductor.approval_payloads import ApprovalPayload
from conductor.engine import Cancel, CancelTicket, Edit, EngineCommand, Pause, Resume, Retry, Skip
from conductor.errors import ApprovalError, ConductorError, ConfigError
from conductor.model import TicketStatus, TrackStatus
from conductor.settings import ApplySettings
from conductor.usage import BudgetScope

TrackCommandName = Literal["pause", "resume", "cancel"]
TicketCommandName = Literal["retry", "skip", "cancel_ticket", "edit"]


class Commands(ControllerState):
    """The part of `AppController` that acts on the Session."""

    # ---------------- commands: planning and approvals

    def plan(self, epic: str) -> str | None:
        """Start planning an epic. Returns an error message, or None."""
        if not epic.strip():
            return self.fail("The epic is empty: describe the work first.")
        if isinstance(self.session.provider, UnavailableProvider):
            return self.fail(f"Cannot plan: {self.session.provider.reason}")
        try:
            handle = self.session.plan_epic(epic)
        except (ValueError, ConductorError, OSError) as exc:
            return self.fail(f"Cannot plan: {exc}")
        self.status_message = f"planning: Tier 1 is reading the epic ({handle.epic_id})"
        self._bump("status")
        return None

    def approve(self, request_id: str, payload: ApprovalPayload | None = None, remember: bool = False) -> str | None:
        """Approve (possibly with an edited payload). Returns the problem when the edit is refused."""
        try:
            self.session.resolve_approval(request_id, approved=True, payload=payload, remember=remember,
                                          background=True)  # the journal write happens off the GUI thread
        except ValueError as exc:
            return f"Not approved: {exc}"
        except ApprovalError as exc:
            self.pending.pop(request_id, None)
            self._bump("approvals")
            return f"Not approved: {exc}"
        self._resolved_here(request_id)
        return None

    def reject(self, request_id: str, reason: str) -> str | None:
        try:
            self.session.resolve_approval(request_id, approved=False, reason=reason.strip() or None,
                                          background=True)
        except (ValueError, ApprovalError) as exc:
            self.pending.pop(request_id, None)
            self._bump("approvals")
            return f"Not rejected: {exc}"
        self._resolved_here(request_id)
        return None

    def _resolved_here(self, request_id: str) -> None:
        # Drop it now, not when the event arrives: the queue must never show a decided request for a frame.
        self.pending.pop(request_id, None)
        self._bump("approvals", "status")

    # ---------------- commands: tracks and tickets

    def _track_or_error(self) -> str | None:
        if self.active_track is None:
            self.fail("No track is loaded: load one from the track browser first.")
        return self.active_track

    def track_command(self, name: TrackCommandName, track_id: str | None = None) -> str | None:
        """pause / resume / cancel the active (or given) track."""
        tid = track_id or self._track_or_error()
        if tid is None:
            return "no track"
        command: EngineCommand
        match name:
            case "pause":
                command = Pause()
            case "resume":
                command = Resume()
            case "cancel":
                command = Cancel()
            case _:
                assert_never(name)
        try:
            self.session.command(tid, command)
        except (ValueError, ConductorError) as exc:
            return self.fail(f"Cannot {name} track {tid}: {exc}")
        self.status_message = f"{name} sent to {tid}"
        self._bump("status")
        return None

    def ticket_command(self, name: TicketCommandName, ticket_id: str,
                       fields: dict[str, Any] | None = None) -> str | None:
        """retry / skip / edit (with `fields`) / cancel_ticket on a ticket of the active track."""
        tid = self._track_or_error()
        if tid is None:
            return "no track"
        command: EngineCommand
        match name:
            case "retry":
                command = Retry(ticket_id)
            case "skip":
                command = Skip(ticket_id)
            case "cancel_ticket":
                command = CancelTicket(ticket_id)
            case "edit":
                command = Edit(ticket_id, dict(fields or {}))
            case _:
                assert_never(name)
        try:
            self.session.command(tid, command)
        except (ValueError, ConductorError) as exc:
            return self.fail(f"Cannot {name} {ticket_id}: {exc}")
        return None

    def set_model_override(self, ticket_id: str, model: str | None) -> str | None:
        return self.ticket_command("edit", ticket_id, fields={"model_override": model or None})

    def load_track(self, track_id: str) -> str | None:
        """Load a track off the GUI thread; it arrives as TrackLoaded (or an error in the banner)."""
        self.session.in_background(f"load {track_id}", lambda: self.session.load_track(track_id))
        return None

    def resume_track(self, track_id: str) -> str | None:
        try:
            self.session.run_track(track_id)
        except (ConductorError, ValueError, OSError) as exc:
            return self.fail(f"Cannot resume {track_id}: {exc}")
        return None

    def resolve_merges(self) -> str | None:
        """Retry every ticket of the active track waiting in "needs merge": each gets a resolve attempt (its
        commit with the track merged in, conflict markers and all), whose changes are asked like any work."""
        track = self.tracks.get(self.active_track or "")
        waiting = [t.id for t in track.tickets if t.status == TicketStatus.NEEDS_MERGE] if track is not None else []
        if not waiting:
            self.status_message = "no ticket of the active track needs a merge"
            self._bump("status")
            return self.status_message
        for ticket_id in waiting:
            if (problem := self.ticket_command("retry", ticket_id)) is not None:
                return problem
        self.status_message = f"resolve attempt started for {', '.join(waiting)}"
        self._bump("status")
        return None

    def archive_track(self, track_id: str) -> str | None:
        try:
            self.session.archive_track(track_id)
        except (ConductorError, ValueError, OSError) as exc:
            return self.fail(f"Cannot archive {track_id}: {exc}")
        return None

    # ---------------- commands: settings

    def set_step_mode(self, on: bool) -> str | None:
        """For this session (the file keeps its own value unless Settings are saved)."""
        return self._apply({"engine": {"step_mode": bool(on)}}, None, "Step mode refused")

    def set_auto_run(self, on: bool) -> None:
        self.session.auto_run = bool(on)

    def set_tier_model(self, tier: int, model: str) -> str | None:
        """For this session, from the tier's next call (a running attempt keeps its model)."""
        return self._apply({"models": {f"tier{tier}": model}}, None, f"Model for tier {tier} refused")

    def save_settings(self, data: Mapping[str, object]) -> str | None:
        """Validate a whole config (as a dict), save it (only what changed, comments kept) and apply it: the
        Settings command. Returns the problem (naming the key) or None; nothing changes when refused."""
        err = self._apply(data, self.config_path, None)
        if err:
            return err
        self.status_message = f"settings saved to {self.config_path}" if self.config_path else "settings applied"
        self._bump("status", "usage", "models")
        return None

    def _apply(self, values: Mapping[str, object], save_to: Path | None, refused: str | None) -> str | None:
        try:
            self.session.apply_settings(ApplySettings(values, save_to=save_to))
        except ConfigError as exc:
            return self.fail(f"{refused}: {exc}") if refused else str(exc)
        except OSError as exc:
            return f"Could not save {save_to}: {exc}"
        return None

    # ---------------- budgets

    def load_budget_resets(self) -> None:
        """Read when each budget was last reset (tracks/_budget.json) into the ledger; problems go to the banner."""
        store = BudgetResetFile(self.session.store.root)
        self.session.ledger.resets = store.load()
        for problem in store.problems:
            self.fail(problem)
        self.__dict__["_budget_file"] = store

    def reset_budget(self, scope: BudgetScope, track_id: str | None = None) -> str | None:
        """Start one budget counting again from now (the ledger keeps every call). Saved in the background."""
        if "_budget_file" not in self.__dict__:
            self.load_budget_resets()
        store: BudgetResetFile = self.__dict__["_budget_file"]
        ledger = self.session.ledger
        try:
            ledger.resets = ledger.resets.reset(scope, time.time(), track_id)
        except ValueError as exc:
            return self.fail(f"Cannot reset the budget: {exc}")
        store.submit(ledger.resets)
        what = {"lifetime": "the lifetime budget", "day": "today's budget", "track": f"track {track_id}'s budget"}
        self.status_message = f"{what[scope]} counts from now"
        self._bump("usage", "status", "tracks")
        return None

    def close_files(self) -> list[str]:
        store: BudgetResetFile | None = self.__dict__.pop("_budget_file", None)
        return store.close() if store is not None else []

    def switch(self, *, workspace: Path | None = None, provider: str | None = None, tracks_dir: Path | None = None,
               demo: bool | None = None) -> str | None:
        """Reopen the session on another workspace, provider or tracks folder (only while nothing runs)."""
        busy = [e for e in self.session.engines.values() if e.alive and e.track.status == TrackStatus.RUNNING]
        if busy or self.session.pending_approvals() or any(not h.future.done() for h in self.session.plans.values()):
            return self.fail("Finish, pause or cancel the running work (and answer pending approvals) first.")
        ws = Path(workspace).expanduser() if workspace else self.session.workspace
        if not ws.is_dir():
            return self.fail(f"Workspace {ws} is not a folder.")
        provider = provider or self.provider_name
        demo = self.demo and provider == "scripted" if demo is None else demo
        self.session.shutdown(10.0)
        try:
            new, note = open_session(self.cfg, workspace=ws, tracks_dir=tracks_dir or self.session.store.root,
                                     provider_name=provider, demo=demo, events=self.session.events)
        except (ConductorError, ValueError, OSError) as exc:
            return self.fail(f"Cannot open {ws} with {provider}: {exc}")
        self.session, self.provider_name, self.provider_note, self.demo = new, provider, note, demo
        wire = getattr(self, "wire_git", None)  # the git part of the controller asks the new session's questions
        if wire is not None:
            wire()
        self.tracks.clear()
        self.pending.clear()
        self._restored.clear()
        self.active_track = None
        self.streams = Streams(self.cfg.gui.stream_tail_chars)
        self._models_thread = None
        self.close_files()
        self.load_budget_resets()
        self._load_initial_state()
        self.status_message = f"opened {ws} with the {provider} provider"
        self._bump("tickets", "status", "banner", "models", "workspace")
        return None

    def start_demo(self, *, fresh: bool = False) -> str | None:
        """The labelled offline demo: the scripted provider in the demo's own folder (reused across starts, so
        its tracks survive; `fresh` sets the old one aside first)."""
        try:
            ws, tracks = demo_folders(demo_home(), fresh=fresh)
        except OSError as exc:
            return self.fail(f"Cannot prepare the demo folder {demo_home()}: {exc}")
        return self.switch(workspace=ws, provider="scripted", tracks_dir=tracks, demo=True)

    def recover(self) -> list[str]:
        """After a restart: reopen the plan and ticket reviews that were waiting (spawn and tool approvals are
        asked again when their run resumes)."""
        try:
            epics = self.session.recover()
        except (ConductorError, OSError) as exc:
            self.fail(f"Could not recover pending planning: {exc}")
            return []
        if epics:
            self.status_message = f"recovered {len(epics)} planning run(s) waiting for review"
            self._bump("status")
        return list(epics)
