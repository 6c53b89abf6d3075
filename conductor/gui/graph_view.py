"""The DAG as a graph: one box per ticket, coloured by status, in columns by depth, arrows from each
dependency, the critical path drawn thick. Clicking a ticket opens its stream."""

from __future__ import annotations

import dearpygui.dearpygui as dpg

from conductor.app import AppController
from conductor.events import ticket_stream_id
from conductor.app.dag_layout import GraphLayout, layout
from conductor.gui import tags
from conductor.gui.theme import DIM, ERROR, WARNING, Themes, status_colour, text_rgb
from conductor.gui.util import safe

NODE_W, NODE_H, GAP_X, GAP_Y, MARGIN = 150, 40, 60, 18, 16


def node_box(col: int, row: int) -> tuple[float, float, float, float]:
    x = MARGIN + col * (NODE_W + GAP_X)
    y = MARGIN + row * (NODE_H + GAP_Y)
    return x, y, x + NODE_W, y + NODE_H


class GraphView:
    def __init__(self, controller: AppController, themes: Themes) -> None:
        self.c = controller
        self.themes = themes
        self.seen: tuple[int, str | None] | None = None
        self.graph = GraphLayout({}, [], [])

    def build(self, parent: int | str) -> None:
        dpg.add_text("", tag=tags.GRAPH_NOTE, parent=parent, color=DIM, wrap=0)
        with dpg.child_window(parent=parent, tag=tags.GRAPH_SCROLL, border=False, horizontal_scrollbar=True):
            dpg.add_drawlist(width=400, height=200, tag=tags.GRAPH_DRAWING)
        with dpg.item_handler_registry(tag=tags.GRAPH_HANDLERS):
            dpg.add_item_clicked_handler(callback=safe(self._clicked))
        dpg.bind_item_handler_registry(tags.GRAPH_DRAWING, tags.GRAPH_HANDLERS)

    def refresh(self) -> None:
        seen = (self.c.versions["tickets"], self.c.active_track)
        if seen == self.seen:
            return
        self.seen = seen
        track = self.c.tracks.get(self.c.active_track or "")
        dpg.delete_item(tags.GRAPH_DRAWING, children_only=True)
        if track is None or not track.tickets:
            dpg.set_value(tags.GRAPH_NOTE, "No track loaded: the graph of its tickets shows here.")
            self.graph = GraphLayout({}, [], [])
            return
        self.graph = g = layout(track.tickets)
        if g.problem:
            dpg.set_value(tags.GRAPH_NOTE, f"The graph cannot be drawn: {g.problem}")
            return
        dpg.set_value(tags.GRAPH_NOTE, f"{len(track.tickets)} tickets · critical path {' → '.join(g.critical)} "
                                       f"({len(g.critical)} long) · click a ticket to see its stream")
        x1, y1 = node_box(g.columns - 1, g.rows - 1)[2:]
        dpg.configure_item(tags.GRAPH_DRAWING, width=int(x1 + MARGIN), height=int(y1 + MARGIN))
        critical_edges = set(zip(g.critical, g.critical[1:]))
        for dep, child in g.edges:
            a, b = node_box(*g.positions[dep]), node_box(*g.positions[child])
            hot = (dep, child) in critical_edges
            dpg.draw_arrow((b[0], (b[1] + b[3]) / 2), (a[2], (a[1] + a[3]) / 2), parent=tags.GRAPH_DRAWING,
                           color=WARNING if hot else (110, 115, 130), thickness=3 if hot else 1, size=6)
        status = {t.id: t.status.value for t in track.tickets}
        titles = {t.id: t.title for t in track.tickets}
        for tid, (col, row) in g.positions.items():
            x0, y0, x1, y1 = node_box(col, row)
            colour = status_colour(status[tid])
            on_path = tid in g.critical
            dpg.draw_rectangle((x0, y0), (x1, y1), parent=tags.GRAPH_DRAWING, tag=tags.graph_node(tid),
                               color=WARNING if on_path else colour, fill=(*colour, 60), thickness=2 if on_path else 1,
                               rounding=5)
            dpg.draw_text((x0 + 6, y0 + 3), f"{tid}  {status[tid].replace('_', ' ')}", parent=tags.GRAPH_DRAWING,
                          color=colour, size=14)
            title = titles[tid] if len(titles[tid]) <= 21 else titles[tid][:20] + "…"  # the full title is in the table
            dpg.draw_text((x0 + 6, y0 + 21), title, parent=tags.GRAPH_DRAWING, color=text_rgb(), size=13)
            if status[tid] == "failed":
                dpg.draw_line((x0, y1), (x1, y1), parent=tags.GRAPH_DRAWING, color=ERROR, thickness=3)

    def ticket_at(self, x: float, y: float) -> str | None:
        for tid, pos in self.graph.positions.items():
            x0, y0, x1, y1 = node_box(*pos)
            if x0 <= x <= x1 and y0 <= y <= y1:
                return tid
        return None

    def _clicked(self, *_: object) -> None:
        x, y = dpg.get_drawing_mouse_pos()
        tid = self.ticket_at(x, y)
        if tid is not None:
            self.open_stream(tid)

    def open_stream(self, ticket_id: str) -> None:
        """Bring the ticket's stream to the front (its tab, or the picker when there are many tickets)."""
        dpg.set_value(tags.MAIN_TABS, tags.STREAMS_TAB)
        key = ticket_stream_id(3, self.c.active_track, ticket_id)
        if dpg.does_item_exist(tags.TIER3_PICK) and dpg.is_item_shown(tags.TIER3_PICK):
            cb = dpg.get_item_callback(tags.TIER3_PICK)
            if cb is not None:
                cb(tags.TIER3_PICK, ticket_id, None)
        elif dpg.does_item_exist(tags.tier3_tab(key)):
            dpg.set_value(tags.TIER3_TABS, tags.tier3_tab(key))
