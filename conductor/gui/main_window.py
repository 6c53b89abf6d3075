"""The main window: toolbar, error banner, the left column | right column split (draggable), the tickets
table over the tabs (streams, dashboard, event log) (draggable too), and the status bar."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dearpygui.dearpygui as dpg

from conductor.app import AppController
from conductor.gui import tags
from conductor.gui.cluster_view import ClusterView
from conductor.gui.dashboard import DashboardView
from conductor.gui.git_ui import GitUi
from conductor.gui.graph_view import GraphView
from conductor.gui.hidpi import px, scale
from conductor.gui.left_panel import LeftPanel
from conductor.gui.log_view import LogView
from conductor.gui.streams import StreamsView
from conductor.gui.theme import DEMO, DIM, THEMED, WARNING, Themes
from conductor.gui.tickets import TicketsView
from conductor.gui.util import safe, set_if_changed, viewport_size

PROVIDERS = ["scripted", "gemini"]
STATUS_BAR_H = 30
SPLITTER = 5
TAB_HEADER_H = 34


class Splitter:
    """A thin bar the user drags to resize the pane before it (DPG has no splitter widget)."""

    def __init__(self, tag: str, axis: int, get: Callable[[], int], set_: Callable[[int], None],
                 lo: int, hi: Callable[[], int]) -> None:
        self.tag, self.axis, self.get, self.set, self.lo, self.hi = tag, axis, get, set_, lo, hi
        self.start: int | None = None

    def update(self) -> bool:
        if not dpg.is_item_active(self.tag):
            self.start = None
            return False
        if self.start is None:
            self.start = self.get()
        delta = int(dpg.get_mouse_drag_delta()[self.axis])
        size = max(self.lo, min(self.start + delta, self.hi()))
        if size != self.get():
            self.set(size)
            return True
        return False


class MainWindow:
    def __init__(self, controller: AppController, themes: Themes, *, open_approval: Callable[[str], Any],
                 open_settings: Callable[[], Any], open_edit: Callable[[str], Any], git: GitUi | None = None) -> None:
        self.c = controller
        self.themes = themes
        self.open_settings = open_settings
        self.left = LeftPanel(controller, themes, open_approval)
        self.tickets = TicketsView(controller, themes, open_edit, git=git)
        self.streams = StreamsView(controller, themes)
        self.dashboard = DashboardView(controller, themes)
        self.graph = GraphView(controller, themes)
        self.log = LogView(controller, themes)
        self.cluster = ClusterView(controller, themes)
        gui = controller.cfg.gui
        self.left_width = px(gui.left_width)  # the config keeps layout pixels; the window, screen pixels (HiDPI)
        self.tickets_height = px(gui.tickets_height)
        self._seen: dict[str, int] = {}
        self._size: tuple[int, int] = (0, 0)
        self._right_h = 0
        self.splitters = [
            Splitter(tags.V_SPLITTER, 0, lambda: self.left_width, self._set_left, px(240),
                     lambda: max(self._size[0] - px(520), px(260))),
            Splitter(tags.H_SPLITTER, 1, lambda: self.tickets_height, self._set_tickets, px(110),
                     lambda: max(self._size[1] - px(320), px(130))),
        ]

    # ---------------- building

    def build(self) -> None:
        with dpg.window(tag=tags.MAIN_WINDOW, no_scrollbar=True, no_scroll_with_mouse=True):
            self._toolbar()
            # The banner grows to fit its text, wrapped at the window's width: a long error is read, not cut.
            with dpg.child_window(tag=tags.BANNER, auto_resize_y=True, show=False, border=True, no_scrollbar=True):
                with dpg.group(horizontal=True):
                    dpg.add_button(label="Dismiss", tag=tags.BANNER_CLOSE, small=True,
                                   callback=safe(lambda *_: self.c.dismiss_banner()))
                    dpg.add_text("", tag=tags.BANNER_TEXT, wrap=px(600))
            with dpg.group(horizontal=True, horizontal_spacing=0):
                with dpg.child_window(tag=tags.LEFT_PANEL, width=self.left_width, height=-px(STATUS_BAR_H + 6),
                                      border=True) as left:
                    self.left.build(left)
                self._splitter_bar(tags.V_SPLITTER, width=px(SPLITTER + 4), height=-px(STATUS_BAR_H + 6))
                with dpg.child_window(tag=tags.RIGHT_PANEL, width=-1, height=-px(STATUS_BAR_H + 6), border=False,
                                      no_scrollbar=True):
                    with dpg.child_window(tag=tags.TICKETS_PANEL, height=self.tickets_height, border=True) as tp:
                        self.tickets.build(tp)
                    self._splitter_bar(tags.H_SPLITTER, width=-1, height=px(SPLITTER))
                    with dpg.tab_bar(tag=tags.MAIN_TABS):
                        with dpg.tab(label="Streams", tag=tags.STREAMS_TAB) as t:
                            self.streams.build(t)
                        with dpg.tab(label="Graph", tag=tags.GRAPH_TAB) as t:
                            self.graph.build(t)
                        with dpg.tab(label="Tokens & cost", tag=tags.DASHBOARD_TAB) as t:
                            self.dashboard.build(t)
                        with dpg.tab(label="Event log", tag=tags.LOG_TAB) as t:
                            self.log.build(t)
                        with dpg.tab(label="Workers", tag=tags.WORKERS_TAB) as t:
                            self.cluster.build(t)
            self._status_bar()
        self.layout(force=True)

    def _splitter_bar(self, tag: str, width: int, height: int) -> None:
        b = dpg.add_button(tag=tag, label="", width=width, height=height)
        dpg.bind_item_theme(b, self.themes.neutral)

    def _toolbar(self) -> None:
        # Two halves on one line; when the window is too narrow for both, the second half wraps to a line of
        # its own (layout() moves it), so Settings and the OFFLINE DEMO label are never cut off.
        with dpg.group(tag=tags.TOOLBAR), dpg.group(horizontal=True, tag=tags.TOOLBAR_LINE):
            with dpg.group(horizontal=True, tag=tags.TOOLBAR_MAIN):
                self._toolbar_main()
            with dpg.group(horizontal=True, tag=tags.TOOLBAR_MORE):
                self._toolbar_more()

    def _toolbar_main(self) -> None:
        dpg.add_text("Workspace")
        dpg.add_input_text(tag=tags.WORKSPACE_INPUT, width=px(250), default_value=str(self.c.session.workspace),
                           on_enter=True, callback=safe(self._open_workspace))
        dpg.add_button(label="Open", tag=tags.WORKSPACE_OPEN, callback=safe(self._open_workspace))
        dpg.add_text("  Provider")
        dpg.add_combo(PROVIDERS, tag=tags.PROVIDER_COMBO, width=px(100), default_value=self.c.provider_name,
                      callback=safe(self._provider))
        dpg.add_checkbox(label="Step mode", tag=tags.STEP_MODE, default_value=self.c.cfg.engine.step_mode,
                         callback=safe(lambda _s, v, _u: self.c.set_step_mode(v)))
        dpg.add_checkbox(label="Auto-run", tag=tags.AUTO_RUN, default_value=self.c.session.auto_run,
                         callback=safe(lambda _s, v, _u: self.c.set_auto_run(v)))

    def _toolbar_more(self) -> None:
        for tag, label, name in ((tags.PAUSE, "Pause", "pause"), (tags.RESUME, "Resume", "resume"),
                                 (tags.CANCEL, "Cancel", "cancel")):
            b = dpg.add_button(label=label, tag=tag, user_data=name,
                               callback=safe(lambda _s, _a, n: self.c.track_command(n)))
            if name == "cancel":
                dpg.bind_item_theme(b, self.themes.danger)
        dpg.add_button(label="Settings", tag=tags.SETTINGS_BUTTON, callback=safe(lambda *_: self.open_settings()))
        b = dpg.add_button(label="OFFLINE DEMO", tag=tags.DEMO_LABEL)
        dpg.bind_item_theme(b, self.themes.demo)
        dpg.add_button(label="Try the offline demo", tag=tags.DEMO_BUTTON, callback=safe(self._demo))

    def _status_bar(self) -> None:
        with dpg.child_window(height=px(STATUS_BAR_H), border=False, no_scrollbar=True):
            with dpg.group(horizontal=True):
                dpg.add_text("", tag=tags.STATUS_PROVIDER)
                dpg.add_text("|", color=DIM)
                dpg.add_text("", tag=tags.STATUS_COUNTS)
                dpg.add_text("|", color=DIM)
                dpg.add_text("", tag=tags.STATUS_MESSAGE, color=DIM)
                dpg.add_text("", tag=tags.STATUS_FPS, color=DIM)

    # ---------------- callbacks

    def _open_workspace(self, *_: object) -> None:
        self.c.switch(workspace=Path(dpg.get_value(tags.WORKSPACE_INPUT) or "."))

    def _provider(self, _s: object, name: str, _u: object) -> None:
        if self.c.switch(provider=name) is not None:
            dpg.set_value(tags.PROVIDER_COMBO, self.c.provider_name)

    def _demo(self, *_: object) -> None:
        self.c.start_demo()

    def _set_left(self, width: int) -> None:
        self.left_width = width
        dpg.configure_item(tags.LEFT_PANEL, width=width)

    def _set_tickets(self, height: int) -> None:
        self.tickets_height = height  # layout() re-sizes the stream rows in the same frame
        dpg.configure_item(tags.TICKETS_PANEL, height=height)

    # ---------------- per frame

    def layout(self, force: bool = False) -> None:
        """Follow the viewport size, the splitters and what the last frame measured (toolbar on one line or
        two, banner height, text size); size the stream rows to the space left."""
        size = viewport_size((self.c.cfg.gui.width, self.c.cfg.gui.height))
        moved = any([s.update() for s in self.splitters])
        self._fold_toolbar(size[0])
        right_h = int(dpg.get_item_rect_size(tags.RIGHT_PANEL)[1]) if dpg.does_item_exist(tags.RIGHT_PANEL) else 0
        if size == self._size and right_h == self._right_h and not force and not moved:
            return
        if size[0] != self._size[0] or force:
            dpg.configure_item(tags.BANNER_TEXT, wrap=max(size[0] - px(130), px(200)))
        self._size, self._right_h = size, right_h
        if right_h <= 0:  # not rendered yet: estimate from the window
            banner = px(42) if self.c.banner else 0
            right_h = size[1] - px(16 + 34 + STATUS_BAR_H + 6) - banner
        self.streams.layout(right_h - self.tickets_height - px(SPLITTER + 8 + TAB_HEADER_H + 10))

    def _fold_toolbar(self, width: int) -> None:
        main_w = dpg.get_item_rect_size(tags.TOOLBAR_MAIN)[0]
        more_w = dpg.get_item_rect_size(tags.TOOLBAR_MORE)[0]
        if not main_w or not more_w:
            return  # not rendered yet
        inline = dpg.get_item_parent(tags.TOOLBAR_MORE) in (tags.TOOLBAR_LINE, dpg.get_alias_id(tags.TOOLBAR_LINE))
        fits = main_w + more_w + 24 <= width
        if fits != inline:
            dpg.move_item(tags.TOOLBAR_MORE, parent=tags.TOOLBAR_LINE if fits else tags.TOOLBAR)

    def rescale(self, factor: float) -> None:
        """The HiDPI scale changed after the window was built (the system's answer came late): the splits and the
        toolbar's fixed widths follow; fonts and theme metrics are the theme's business."""
        self._set_left(round(self.left_width * factor))
        self._set_tickets(round(self.tickets_height * factor))
        dpg.configure_item(tags.WORKSPACE_INPUT, width=px(250))
        dpg.configure_item(tags.PROVIDER_COMBO, width=px(100))
        self.layout(force=True)

    def layout_state(self) -> dict[str, int | float]:
        """What is remembered in config.toml [gui] on exit."""
        w, h = self._size
        state: dict[str, int | float] = {"left_width": round(self.left_width / scale()),
                                         "tickets_height": round(self.tickets_height / scale())}
        if w >= 640 and h >= 480:
            state.update(width=int(w), height=int(h))
        return state

    def refresh(self) -> None:
        self.left.refresh()
        self.tickets.refresh()
        self.streams.refresh()
        self.dashboard.refresh()
        self.graph.refresh()
        self.log.refresh()
        self.cluster.refresh()
        self._banner()
        self._status()
        self._toolbar_state()

    def _changed(self, name: str) -> bool:
        v = self.c.versions[name]
        if self._seen.get(name) == v:
            return False
        self._seen[name] = v
        return True

    def _banner(self) -> None:
        if not self._changed("banner"):
            return
        shown = self.c.banner is not None
        dpg.configure_item(tags.BANNER, show=shown)
        if shown:
            dpg.set_value(tags.BANNER_TEXT, self.c.banner)
            dpg.bind_item_theme(tags.BANNER, self.themes.banner.get(self.c.banner_level, self.themes.banner["error"]))
        self.layout(force=True)

    def _status(self) -> None:
        if not self._changed("status") and not self._changed("approvals"):
            return
        set_if_changed(tags.STATUS_PROVIDER, self.c.provider_text())
        dpg.configure_item(tags.STATUS_PROVIDER, color=DEMO if self.c.demo else (WARNING if self.c.provider_note
                                                                                 else DIM))
        set_if_changed(tags.STATUS_COUNTS, self.c.status_text())
        dpg.configure_item(tags.STATUS_COUNTS, color=WARNING if self.c.pending else THEMED)
        set_if_changed(tags.STATUS_MESSAGE, self.c.status_message)

    def _toolbar_state(self) -> None:
        if not self._changed("workspace"):
            return
        set_if_changed(tags.WORKSPACE_INPUT, str(self.c.session.workspace))
        set_if_changed(tags.PROVIDER_COMBO, self.c.provider_name)
        dpg.configure_item(tags.DEMO_LABEL, show=self.c.demo)
        offline = self.c.demo or self.c.session.provider.offline
        dpg.configure_item(tags.DEMO_BUTTON, show=not offline)
        set_if_changed(tags.AUTO_RUN, self.c.session.auto_run)
        set_if_changed(tags.STEP_MODE, self.c.cfg.engine.step_mode)
        self._seen.pop("status", None)

    def show_fps(self, frame_ms: float) -> None:
        dpg.set_value(tags.STATUS_FPS, f"|  frame {frame_ms:4.1f} ms")
