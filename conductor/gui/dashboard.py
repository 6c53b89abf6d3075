"""The token dashboard: usage per tier, per ticket and per model (straight from the ledger), the budget bar
and a plot of cumulative tokens and cost over time."""

from __future__ import annotations

import dearpygui.dearpygui as dpg

from conductor.app import AppController, UsageRow
from conductor.gui import tags
from conductor.gui.theme import ACCENT, DIM, ERROR, Themes
from conductor.gui.util import safe

COLUMNS = ("", "Calls", "Prompt", "Output", "Thinking", "Cached", "Cost")
WEIGHTS = (2.3, 0.6, 0.9, 0.9, 1.0, 0.9, 1.1)


class DashboardView:
    def __init__(self, controller: AppController, themes: Themes) -> None:
        self.c = controller
        self.themes = themes
        self.seen: tuple[int, str | None] | None = None

    def build(self, parent: int | str) -> None:
        with dpg.table(parent=parent, header_row=False, resizable=True, policy=dpg.mvTable_SizingStretchProp):
            dpg.add_table_column(init_width_or_weight=0.64)
            dpg.add_table_column(init_width_or_weight=0.36)
            with dpg.table_row():
                with dpg.child_window(border=False, tag="dash_left"):
                    self._table("By tier", tags.USAGE_TIER_TABLE)
                    self._table("By model", tags.USAGE_MODEL_TABLE)
                    self._table("By ticket", tags.USAGE_TICKET_TABLE)
                with dpg.child_window(border=False, tag="dash_right"):
                    dpg.add_text("Budget", color=ACCENT)
                    dpg.add_progress_bar(tag=tags.BUDGET_BAR, default_value=0.0, width=-1, overlay="")
                    dpg.add_text("", tag=tags.BUDGET_LABEL, color=DIM, wrap=0)
                    for scope in ("lifetime", "day", "track"):
                        with dpg.group(horizontal=True, tag=tags.budget_line(scope)):
                            dpg.add_button(label="Reset", small=True, tag=tags.budget_reset(scope), user_data=scope,
                                           callback=safe(self._reset))
                            dpg.add_text("", tag=tags.budget_text(scope), wrap=0)
                    dpg.add_text("", tag=tags.USAGE_TOTAL, wrap=0)
                    with dpg.plot(tag=tags.USAGE_PLOT, height=-1, width=-1, no_title=True):
                        dpg.add_plot_legend(location=dpg.mvPlot_Location_NorthWest)
                        dpg.add_plot_axis(dpg.mvXAxis, label="seconds", tag=tags.PLOT_X, auto_fit=True)
                        with dpg.plot_axis(dpg.mvYAxis, label="tokens", tag=tags.PLOT_Y_TOKENS, auto_fit=True):
                            dpg.add_line_series([], [], label="tokens", tag=tags.SERIES_TOKENS)
                        with dpg.plot_axis(dpg.mvYAxis2, label="USD", tag=tags.PLOT_Y_COST, auto_fit=True,
                                           opposite=True):
                            dpg.add_line_series([], [], label="cost (priced calls)", tag=tags.SERIES_COST)

    def _table(self, title: str, tag: str) -> None:
        dpg.add_text(title, color=ACCENT)
        with dpg.table(tag=tag, header_row=True, borders_innerH=True, borders_outerH=True, row_background=True,
                       policy=dpg.mvTable_SizingStretchProp):
            for name, weight in zip(COLUMNS, WEIGHTS, strict=True):
                dpg.add_table_column(label=name, init_width_or_weight=weight)
        dpg.add_spacer(height=4)

    def refresh(self) -> None:
        version = (self.c.versions["usage"], self.c.active_track)  # "This track" follows the loaded track
        if version == self.seen:
            return
        self.seen = version
        view = self.c.usage_view()
        self._fill(tags.USAGE_TIER_TABLE, view.by_tier)
        self._fill(tags.USAGE_MODEL_TABLE, view.by_model)
        self._fill(tags.USAGE_TICKET_TABLE, view.by_ticket)
        t = view.total
        if t is not None:
            dpg.set_value(tags.USAGE_TOTAL, f"Total: {t.calls} calls · {t.prompt} prompt · {t.output} output · "
                                            f"{t.thinking} thinking · {t.cached} cached · cost {t.cost}")
        dpg.set_value(tags.BUDGET_BAR, view.budget_fraction)
        dpg.configure_item(tags.BUDGET_BAR, overlay=f"{view.budget_fraction:.0%}" if view.budget_fraction else "")
        dpg.set_value(tags.BUDGET_LABEL, view.budget_label)
        spent = view.budget_fraction >= 1
        dpg.configure_item(tags.BUDGET_LABEL, color=ERROR if spent else DIM)
        dpg.bind_item_theme(tags.BUDGET_BAR, self.themes.bar_spent if spent else self.themes.bar_ok)
        shown = {scope: (label, frac) for scope, label, frac in self.c.budget_lines()}
        for scope in ("lifetime", "day", "track"):
            dpg.configure_item(tags.budget_line(scope), show=scope in shown)
            if scope in shown:
                label, frac = shown[scope]
                dpg.set_value(tags.budget_text(scope), label)
                dpg.configure_item(tags.budget_text(scope), color=ERROR if frac >= 1 else DIM)
        dpg.set_value(tags.SERIES_TOKENS, [view.series_t, view.series_tokens])
        dpg.set_value(tags.SERIES_COST, [view.series_t, view.series_cost])

    def _reset(self, _s: object, _a: object, scope: str) -> None:
        match scope:
            case "lifetime" | "day":
                self.c.reset_budget(scope)
            case "track":
                self.c.reset_budget("track", self.c.active_track)

    def _fill(self, table: str, rows: list[UsageRow]) -> None:
        """Rows are few (tiers, models, tickets): rebuilt whole, with tagged cells tests can read."""
        for row in dpg.get_item_children(table, 1) or []:
            dpg.delete_item(row)
        for r, row in enumerate(rows):
            values = (row.label, str(row.calls), row.prompt, row.output, row.thinking, row.cached, row.cost)
            with dpg.table_row(parent=table):
                for col, value in enumerate(values):
                    colour = DIM if value == "unknown" else None
                    kw = {"color": colour} if colour else {}
                    dpg.add_text(value, tag=tags.usage_cell(table, r, col), **kw)
