"""The left column: the epic and its Plan button, the queue of pending approvals, the track browser and the
model per tier."""

from __future__ import annotations

from collections.abc import Callable

import dearpygui.dearpygui as dpg

from conductor.app import AppController, TrackRow
from conductor.demo import DEMO_EPIC
from conductor.gui import tags
from conductor.gui.theme import ACCENT, DIM, KIND_LABELS, Themes, status_colour
from conductor.gui.util import safe, set_if_changed

TIER_LABELS = {1: "Tier 1 · orchestrator", 2: "Tier 2 · tech lead", 3: "Tier 3 · workers", 4: "Tier 4 · QA"}

__all__ = ["DEMO_EPIC", "LeftPanel"]


class LeftPanel:
    def __init__(self, controller: AppController, themes: Themes, open_approval: Callable[[str], None]) -> None:
        self.c = controller
        self.themes = themes
        self.open_approval = open_approval
        self.approvals_seen = -1
        self.tracks_seen: tuple[int, int] = (-1, -1)
        self.track_ids: tuple[str, ...] | None = None
        self.models_seen = -1

    def build(self, parent: int | str) -> None:
        dpg.add_text("Epic", parent=parent, color=ACCENT)
        # A multiline input shows no hint text, so the demo starts with an example epic ready to plan.
        dpg.add_input_text(parent=parent, tag=tags.EPIC_INPUT, multiline=True, height=72, width=-1,
                           hint="Describe the work, e.g. 'Add OAuth login to this repo'",
                           default_value=DEMO_EPIC if self.c.demo else "")
        dpg.add_button(parent=parent, label="Plan  (Tier 1 proposes tracks)   [Ctrl+Enter]", tag=tags.PLAN_BUTTON,
                       width=-1, callback=safe(lambda *_: self.plan()))
        dpg.add_spacer(parent=parent, height=4)
        with dpg.collapsing_header(parent=parent, label="Pending approvals", default_open=True,
                                   tag=tags.APPROVAL_HEADER):
            dpg.add_text("Nothing is waiting for you.", tag=tags.APPROVAL_EMPTY, color=DIM)
            dpg.add_group(tag=tags.APPROVAL_LIST)
        with dpg.collapsing_header(parent=parent, label="Tracks", default_open=True):
            dpg.add_group(tag=tags.TRACK_TABLE)
        with dpg.collapsing_header(parent=parent, label="Models per tier", default_open=True):
            with dpg.table(header_row=False, policy=dpg.mvTable_SizingStretchProp):
                dpg.add_table_column(init_width_or_weight=0.42)
                dpg.add_table_column(init_width_or_weight=0.58)
                for tier, label in TIER_LABELS.items():
                    with dpg.table_row():
                        dpg.add_text(label)
                        combo = dpg.add_combo([], tag=tags.model_combo(tier), width=-1, user_data=tier,
                                              callback=safe(self._model))
                        with dpg.tooltip(combo):  # the full name when the column is too narrow for it
                            dpg.add_text("", tag=tags.model_tooltip(f"tier{tier}"))

    # -- callbacks

    def plan(self) -> None:
        # The epic stays in the box: a plan refused (or a proposal rejected) must not cost the person its text.
        self.c.plan(dpg.get_value(tags.EPIC_INPUT) or "")

    def epic_accepted(self, epic: str) -> None:
        """Its plan was approved: now the box may be cleared (only if it still holds that epic)."""
        epic = epic.strip()
        if epic and (dpg.get_value(tags.EPIC_INPUT) or "").strip() == epic:
            dpg.set_value(tags.EPIC_INPUT, "")

    def _model(self, _s: object, model: str, tier: int) -> None:
        self.c.set_tier_model(tier, model)
        set_if_changed(tags.model_tooltip(f"tier{tier}"), model)

    def _open(self, _s: object, _a: object, request_id: str) -> None:
        self.open_approval(request_id)

    def _load(self, _s: object, _a: object, track_id: str) -> None:
        self.c.load_track(track_id)

    def _resume(self, _s: object, _a: object, track_id: str) -> None:
        self.c.resume_track(track_id)

    def _archive(self, _s: object, _a: object, track_id: str) -> None:
        self.c.archive_track(track_id)

    # -- refresh

    def refresh(self) -> None:
        v = self.c.versions
        if v["approvals"] != self.approvals_seen:
            self.approvals_seen = v["approvals"]
            self._approvals()
        if (v["tracks"], v["usage"]) != self.tracks_seen:
            self.tracks_seen = (v["tracks"], v["usage"])  # the usage version: each track shows what it spent
            self._tracks()
        if v["models"] != self.models_seen:
            self.models_seen = v["models"]
            offered = self.c.offered_models()
            for tier in TIER_LABELS:
                dpg.configure_item(tags.model_combo(tier), items=offered)
                set_if_changed(tags.model_combo(tier), self.c.cfg.models.for_tier(tier))
                set_if_changed(tags.model_tooltip(f"tier{tier}"), self.c.cfg.models.for_tier(tier))

    def _approvals(self) -> None:
        pending = self.c.pending_list()
        dpg.configure_item(tags.APPROVAL_HEADER, label=f"Pending approvals ({len(pending)})")
        dpg.configure_item(tags.APPROVAL_EMPTY, show=not pending)
        for child in dpg.get_item_children(tags.APPROVAL_LIST, 1) or []:
            dpg.delete_item(child)
        for req in pending:
            where = req.prov.ticket_id or (req.prov.track_id or "")[9:] or "epic"
            label = f"{KIND_LABELS[req.kind.value]} · {where} · {req.title}"
            b = dpg.add_button(label=label[:60], parent=tags.APPROVAL_LIST, width=-1, user_data=req.id,
                               tag=tags.approval_item(req.id), callback=safe(self._open))
            dpg.bind_item_theme(b, self.themes.kind[req.kind.value])

    def _tracks(self) -> None:
        rows = self.c.track_rows()
        ids = tuple(r.id for r in rows)
        if ids != self.track_ids:
            self._rebuild_tracks(rows)
            self.track_ids = ids
        for r in rows:
            self._update_track(r)

    def _rebuild_tracks(self, rows: list[TrackRow]) -> None:
        for child in dpg.get_item_children(tags.TRACK_TABLE, 1) or []:
            dpg.delete_item(child)
        if not rows:
            dpg.add_text("No tracks yet.", parent=tags.TRACK_TABLE, color=DIM)
        for r in rows:
            with dpg.group(parent=tags.TRACK_TABLE):
                dpg.add_text(r.title, wrap=0)
                with dpg.group(horizontal=True):
                    dpg.add_text("", tag=tags.track_status(r.id))
                    dpg.add_progress_bar(tag=tags.track_progress(r.id), width=-1, default_value=0.0)
                with dpg.group(horizontal=True):
                    for action, label in (("load", "Load"), ("resume", "Resume"), ("archive", "Archive")):
                        fn = {"load": tags.track_load, "resume": tags.track_resume, "archive": tags.track_archive}
                        dpg.add_button(label=label, small=True, tag=fn[action](r.id), user_data=r.id,
                                       callback=safe(getattr(self, f"_{action}")))
                dpg.add_separator()

    def _update_track(self, r: TrackRow) -> None:
        status_tag = tags.track_status(r.id)
        active = " ◀" if r.id == self.c.active_track else ""
        set_if_changed(status_tag, f"{r.status:<9}{active}  {r.cost}")
        dpg.configure_item(status_tag, color=status_colour(r.status))
        dpg.set_value(tags.track_progress(r.id), r.progress)
        dpg.configure_item(tags.track_progress(r.id), overlay=f"{r.done}/{r.total}" if r.total else "no tickets")
        can_resume = r.total > 0 and r.status in ("ready", "paused", "stalled", "cancelled", "interrupted")
        dpg.configure_item(tags.track_resume(r.id), show=can_resume)
        dpg.configure_item(tags.track_archive(r.id), show=r.status not in ("running", "archived"))


