"""One vocabulary, three readers (issue 8): random commands and restarts on a real track; after every step,

  * the live engine's state (a consistent snapshot taken on its own thread) equals a replay of the journal up
    to the seq that snapshot includes, and
  * the view-model's ticket table equals a replay of the journal up to the last record it applied,

so the engine, the journal and the screen can never disagree. Hypothesis picks the commands (approve, reject,
edit, skip, retry, pause, resume, cancel, cancel a ticket) and when to stop and reopen the app.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from gui_support import make_controller
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from conductor.app import AppController
from conductor.config import Config
from conductor.model import ACTIVE_STATUSES, TicketStatus, Track, TrackStatus
from conductor.providers.scripted import ScriptedProvider
from conductor.session import Session
from conductor.store import replay

TICKETS = ["T1", "T2", "T3", "T4", "T5", "T6"]
IN_FLIGHT = {s.value for s in ACTIVE_STATUSES} | {TicketStatus.INTERRUPTED.value}


def table(track: Track) -> list[tuple[Any, ...]]:
    """What the ticket table shows, with 'in flight' in one word: a reopened track shows tickets that were
    running as interrupted until the engine's first records say where they are."""
    def status(s: str) -> str:
        return "in-flight" if s in IN_FLIGHT else s
    return [(t.id, status(t.status.value), t.attempts, t.title, t.failed_reason, t.blocked_reason, t.model_used,
             tuple(t.depends_on)) for t in track.tickets]


def track_status(s: TrackStatus) -> str:
    return "running" if s in (TrackStatus.RUNNING, TrackStatus.INTERRUPTED) else s.value


def replayed(session: Session, track_id: str, upto: int) -> Track:
    journal = session.store.journal(track_id)
    track = Track(id=track_id, title=track_id, goal="")
    warnings = replay(track, [e for e in journal.entries() if e.seq <= upto], journal.path)
    assert warnings == []
    return track


class RecordsAgree(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="conductor-stateful-"))
        (self.root / "workspace").mkdir()
        (self.root / "workspace" / "README.md").write_text("# project\n")
        self.cfg = Config()
        self.cfg = self.cfg.updated({"engine": {"step_mode": True}})  # every ticket asks to spawn: commands meet tickets in every state
        self.cfg = self.cfg.updated({"engine": {"max_workers": 2}})
        self.c = self._open()
        handle = self.c.session.plan_epic("Add OAuth login")
        while not handle.future.done():
            for req in self.c.session.pending_approvals():
                self.c.session.resolve_approval(req.id, approved=True)
            self.c.wait(0.05)
        (self.track_id,) = handle.wait(10)

    def _open(self) -> AppController:
        session = Session(self.cfg, workspace=self.root / "workspace", tracks_dir=self.root / "tracks",
                          provider=ScriptedProvider())
        return make_controller(session)

    def teardown(self) -> None:
        self.c.shutdown(10)
        shutil.rmtree(self.root, ignore_errors=True)

    # ---------------- commands

    def _pending(self) -> list[Any]:
        return sorted(self.c.session.pending_approvals(), key=lambda r: r.id)

    # Which approvals are pending depends on threads, so the draws never do: an index picks one (modulo), and a
    # step with nothing pending changes nothing. (Strategies built from live state make Hypothesis flaky.)

    @rule(pick=st.integers(0, 63))
    def approve(self, pick: int) -> None:
        pending = self._pending()
        if pending:
            self.c.approve(pending[pick % len(pending)].id)

    @rule(pick=st.integers(0, 63), reason=st.sampled_from(["no", "wrong file", "not now"]))
    def reject(self, pick: int, reason: str) -> None:
        pending = self._pending()
        if pending:
            self.c.reject(pending[pick % len(pending)].id, reason)

    @rule(ticket=st.sampled_from(TICKETS), name=st.sampled_from(["skip", "retry", "cancel_ticket"]))
    def ticket_command(self, ticket: str, name: Any) -> None:
        self.c.active_track = self.track_id
        self.c.ticket_command(name, ticket)  # refusals come back as messages; they change nothing

    @rule(ticket=st.sampled_from(TICKETS), title=st.text("abcdef ", min_size=1, max_size=12))
    def edit(self, ticket: str, title: str) -> None:
        self.c.active_track = self.track_id
        self.c.ticket_command("edit", ticket, fields={"title": title})

    @rule(name=st.sampled_from(["pause", "resume", "cancel"]))
    def track_command(self, name: Any) -> None:
        self.c.track_command(name, self.track_id)

    @rule()
    def restart(self) -> None:
        """Close the app and open it again on the same folders (what a person does after a crash too)."""
        self.c.shutdown(10)
        self.c = self._open()
        self.c.session.run_track(self.track_id)

    # ---------------- the invariants

    @invariant()
    def engine_equals_its_journal(self) -> None:
        engine = self.c.session.engine(self.track_id)
        if engine is None or not engine.alive:
            return
        seq, live = engine.snapshot(timeout=10)
        oracle = replayed(self.c.session, self.track_id, seq)
        assert table(live) == table(oracle)
        assert track_status(live.status) == track_status(oracle.status)

    @invariant()
    def screen_equals_the_journal(self) -> None:
        while self.c.drain():
            pass
        shown = self.c.tracks.get(self.track_id)
        if shown is None:
            return
        oracle = replayed(self.c.session, self.track_id, shown.journal_seq)
        assert table(shown) == table(oracle), (shown.journal_seq, table(shown), table(oracle))
        rows = [(r.id, r.status, r.attempts, r.title) for r in self.c.ticket_rows(self.track_id)]
        assert rows == [(t.id, t.status.value, t.attempts, t.title) for t in shown.tickets]


RecordsAgree.TestCase.settings = settings(max_examples=12, stateful_step_count=14, deadline=None,
                                          suppress_health_check=list(HealthCheck))
test_engine_journal_and_screen_agree = RecordsAgree.TestCase
