"""The Workers tab: remote Tier 3 workers when a broker is configured (workers, queue depth, throughput, the
dead-letter queue with Retry and Discard), else one line saying Tier 3 runs locally.

Everything shown comes from the view-model (conductor.app.cluster), which holds the poller's latest snapshot: this
view never touches Redis. Tables are rebuilt when the snapshot changes (they are small); the header's "polled …
ago" follows the clock every frame, and says STALE with the error when polls fail. Discard asks first.
"""

from __future__ import annotations

import time

import dearpygui.dearpygui as dpg

from conductor.app import AppController
from conductor.app.cluster import Level
from conductor.distributed.monitor import DiscardDeadLetter, RetryDeadLetter
from conductor.gui import tags
from conductor.gui.theme import DIM, ERROR, OK, THEMED, WARNING, Themes
from conductor.gui.util import centre, safe, set_if_changed, show

LEVEL_COLOUR = {"ok": OK, "warning": WARNING, "error": ERROR, "dim": DIM}
WORKER_COLUMNS = (("Worker", 1.2), ("Host", 1.0), ("Threads", 0.5), ("Heartbeat", 0.9), ("Current tickets", 2.0),
                  ("State", 1.3))
QUEUE_COLUMNS = (("Queue", 1.6), ("Waiting", 0.6), ("Taken", 0.6), ("Delayed", 0.6), ("Dramatiq dead", 0.8))
DLQ_COLUMNS = (("When", 0.6), ("Queue", 1.2), ("Request", 0.9), ("Reason", 2.2), ("Deliveries", 0.5), ("", 1.3))
CONFIRM_SIZE = (560, 190)


class ClusterView:
    def __init__(self, controller: AppController, themes: Themes) -> None:
        self.c = controller
        self.themes = themes
        self.seen = -1
        self.discarding: str | None = None
        """The entry the confirmation asks about."""

    # ---------------- building

    def build(self, parent: int | str) -> None:
        dpg.add_text("Tier 3 runs locally, on this machine's threads: no broker is configured ([distributed] "
                     "broker_url in config.toml, or the CONDUCTOR_BROKER_URL environment variable; see README).",
                     tag=tags.CLUSTER_LOCAL, parent=parent, wrap=0, color=DIM)
        with dpg.child_window(tag=tags.CLUSTER_BODY, parent=parent, border=False, show=False):
            dpg.add_text("", tag=tags.CLUSTER_HEADER, wrap=0)
            dpg.add_text("", tag=tags.CLUSTER_SUMMARY, wrap=0)
            dpg.add_text("", tag=tags.CLUSTER_PROBLEMS, wrap=0, color=ERROR, show=False)
            self._table("Workers", tags.CLUSTER_WORKERS_TABLE, WORKER_COLUMNS)
            self._table("Dead letters", tags.CLUSTER_DLQ_TABLE, DLQ_COLUMNS)
            self._table("Queues", tags.CLUSTER_QUEUES_TABLE, QUEUE_COLUMNS)

    @staticmethod
    def _table(title: str, tag: str, columns: tuple[tuple[str, float], ...]) -> None:
        dpg.add_spacer(height=4)
        dpg.add_text(title, color=THEMED)
        with dpg.table(tag=tag, header_row=True, borders_innerH=True, borders_outerH=True, row_background=True,
                       policy=dpg.mvTable_SizingStretchProp):
            for name, weight in columns:
                dpg.add_table_column(label=name, init_width_or_weight=weight)

    def build_confirm(self) -> None:
        """The Discard confirmation, a top-level modal (built with the other dialogs)."""
        if dpg.does_item_exist(tags.DISCARD_CONFIRM):
            dpg.delete_item(tags.DISCARD_CONFIRM)
        with dpg.window(tag=tags.DISCARD_CONFIRM, label="Discard dead letter?", modal=True, show=False,
                        no_collapse=True, width=CONFIRM_SIZE[0], height=CONFIRM_SIZE[1], no_saved_settings=True):
            dpg.add_text("", tag=tags.DISCARD_CONFIRM_TEXT, wrap=0, color=WARNING)
            dpg.add_text("Its message is dropped for good; the attempt it carried is not run again (Retry would).",
                         wrap=0, color=DIM)
            with dpg.group(horizontal=True):
                b = dpg.add_button(label="Discard", tag=tags.DISCARD_CONFIRM_YES, width=140,
                                   callback=safe(self._discard_yes))
                dpg.bind_item_theme(b, self.themes.danger)
                dpg.add_button(label="Keep it", tag=tags.DISCARD_CONFIRM_NO, width=140,
                               callback=safe(lambda *_: self.close_confirm()))

    # ---------------- per frame

    def refresh(self) -> None:
        m = self.c.cluster
        show(tags.CLUSTER_LOCAL, not m.configured)
        show(tags.CLUSTER_BODY, m.configured)
        if not m.configured:
            if m.error is not None:  # a broker setting that cannot be used: say so instead of "local"
                set_if_changed(tags.CLUSTER_LOCAL, f"Tier 3 runs locally: the broker setting is refused: {m.error}")
            return
        now = time.time()
        text, level = m.header(now)
        set_if_changed(tags.CLUSTER_HEADER, text)
        dpg.configure_item(tags.CLUSTER_HEADER, color=LEVEL_COLOUR[level])
        if m.version == self.seen:
            return
        self.seen = m.version
        set_if_changed(tags.CLUSTER_SUMMARY, m.summary())
        problems = m.problems()
        set_if_changed(tags.CLUSTER_PROBLEMS, "Unreadable: " + " · ".join(problems) if problems else "")
        show(tags.CLUSTER_PROBLEMS, bool(problems))
        self._fill(tags.CLUSTER_WORKERS_TABLE, [((r.name, r.host, r.threads, r.heartbeat, r.current, r.state), r.level)
                                                for r in m.worker_rows()])
        self._fill(tags.CLUSTER_QUEUES_TABLE, [((r.name, r.ready, r.running, r.delayed, r.dramatiq_dead), "dim")
                                               for r in m.queue_rows()])
        self._fill_dlq(now)

    def _fill(self, table: str, rows: list[tuple[tuple[str, ...], Level]]) -> None:
        for row in dpg.get_item_children(table, 1) or []:
            dpg.delete_item(row)
        for r, (values, level) in enumerate(rows):
            with dpg.table_row(parent=table):
                for col, value in enumerate(values):
                    kw = {"color": LEVEL_COLOUR[level]} if col == len(values) - 1 and level != "dim" else {}
                    dpg.add_text(value, tag=tags.cluster_cell(table, r, col), wrap=0, **kw)

    def _fill_dlq(self, now: float) -> None:
        table = tags.CLUSTER_DLQ_TABLE
        for row in dpg.get_item_children(table, 1) or []:
            dpg.delete_item(row)
        for r, d in enumerate(self.c.cluster.dead_letter_rows(now)):
            with dpg.table_row(parent=table):
                for col, value in enumerate((d.when, d.queue, d.request, d.reason, d.deliveries)):
                    kw = {"color": ERROR} if not d.readable and col == 3 else {}
                    dpg.add_text(value, tag=tags.cluster_cell(table, r, col), wrap=0, **kw)
                with dpg.group(horizontal=True):
                    if d.sent:
                        dpg.add_text(d.sent, tag=tags.cluster_cell(table, r, 5), color=DIM, wrap=0)
                    else:
                        if d.readable:
                            dpg.add_button(label="Retry", tag=tags.dlq_retry(r), small=True, user_data=d.entry_id,
                                           callback=safe(self._retry))
                        else:  # nothing to re-enqueue: only Discard
                            dpg.add_text("no retry", color=DIM)
                        b = dpg.add_button(label="Discard", tag=tags.dlq_discard(r), small=True, user_data=d.entry_id,
                                           callback=safe(self._ask_discard))
                        dpg.bind_item_theme(b, self.themes.danger)

    # ---------------- callbacks

    def _retry(self, _s: object, _a: object, entry_id: str) -> None:
        problem = self.c.cluster.submit(RetryDeadLetter(entry_id))
        if problem is not None:
            self.c.fail(problem)

    def _ask_discard(self, _s: object, _a: object, entry_id: str) -> None:
        self.discarding = entry_id
        row = next((d for d in self.c.cluster.dead_letter_rows(time.time()) if d.entry_id == entry_id), None)
        what = f" (request {row.request}: {row.reason[:120]})" if row is not None else ""
        dpg.set_value(tags.DISCARD_CONFIRM_TEXT, f"Discard dead letter {entry_id[:80]}{what}?")
        centre(tags.DISCARD_CONFIRM, *CONFIRM_SIZE)
        dpg.configure_item(tags.DISCARD_CONFIRM, show=True)
        dpg.focus_item(tags.DISCARD_CONFIRM_NO)  # Enter on an unread dialog keeps the entry

    def _discard_yes(self, *_: object) -> None:
        entry_id, self.discarding = self.discarding, None
        dpg.configure_item(tags.DISCARD_CONFIRM, show=False)
        if entry_id is None:
            return
        problem = self.c.cluster.submit(DiscardDeadLetter(entry_id))
        if problem is not None:
            self.c.fail(problem)

    def close_confirm(self) -> None:
        self.discarding = None
        dpg.configure_item(tags.DISCARD_CONFIRM, show=False)
