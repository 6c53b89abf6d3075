"""The app object and its frame loop. Only the GUI thread ever calls Dear PyGui.

Each frame: drain the event queue into the view-model within `cfg.gui.frame_budget_ms` (stream deltas are
applied per event, but each pane's widget is set once per frame), refresh the views that changed, render,
then run the callbacks the frame produced (`manual_callback_management`: callbacks run here, on this
thread, after rendering).

Without a viewport (tests with no display) `frame()` does everything but render: it waits briefly for the
next event on the queue instead (no sleeping), so the pilot can drive the real item tree headless.
"""

from __future__ import annotations

import os
import time
import traceback
from collections import deque
from collections.abc import Callable

import dearpygui.dearpygui as dpg

from conductor import gcfreeze
from conductor.app import AppController
from conductor.app.notifications import DesktopNotifier, attention
from conductor.app.run_summary import RunSummaries
from conductor.events import Event
from conductor.gui import hidpi, tags, util
from conductor.gui.dialogs.manager import DialogManager
from conductor.gui.dialogs.misc import ConfirmCloseDialog, EditTicketDialog
from conductor.gui.dialogs.settings import SettingsDialog
from conductor.gui.dialogs.summary import SummaryDialog
from conductor.gui.dialogs.tool import ToolDialog
from conductor.gui.draft_keeper import DraftKeeper
from conductor.gui.git_ui import GitUi
from conductor.gui.keyboard import Keyboard
from conductor.gui.main_window import MainWindow
from conductor.gui.theme import ThemeName, Themes, window_colour

MAX_DRAIN_FACTOR = 3.0
HEADLESS_WAIT_S = 0.005
"""Without rendering, a frame waits this long for an event (on the queue, not a sleep)."""

APP_WINDOWS = (tags.MAIN_WINDOW, tags.PLAN_DIALOG, tags.TICKETS_DIALOG, tags.SPAWN_DIALOG, tags.TOOL_DIALOG,
               tags.SETTINGS_DIALOG, tags.CONFIRM_CLOSE, tags.EDIT_TICKET, tags.PALETTE, tags.HELP, tags.KEY_HANDLERS,
               tags.RUN_SUMMARY, tags.GRAPH_HANDLERS, tags.DIFF_WINDOW, tags.GIT_CONFIRM, tags.DISCARD_CONFIRM)


class _Process:
    """Dear PyGui state that outlives one app in this process.

    Dear PyGui 2.2+ does not tear the viewport's window and GL backend down in destroy_context()
    (hoffstadt/DearPyGui#2662); a second context with a viewport in the same process then crashes on its
    first frame. So once a viewport was shown, the context is kept and reused: a closed app deletes its
    windows, the next app builds into the same context and viewport (tests open several apps in one process).
    Fonts and themes are made once per context."""

    context = False
    viewport = False
    themes: Themes | None = None

    @classmethod
    def ensure_context(cls) -> Themes:
        if not cls.context:
            dpg.create_context()
            # keyboard_navigation: Tab / Shift+Tab reach every button and field, Enter or Space presses one.
            dpg.configure_app(manual_callback_management=True, keyboard_navigation=True)
            cls.context, cls.themes = True, Themes()
        assert cls.themes is not None
        return cls.themes

    @classmethod
    def release(cls) -> None:
        if cls.viewport:
            for tag in APP_WINDOWS:
                if dpg.does_item_exist(tag):
                    dpg.delete_item(tag)
            return
        dpg.destroy_context()
        cls.context, cls.themes = False, None


class GuiApp:
    def __init__(self, controller: AppController, *, render: bool, title: str = "Conductor",
                 scale_probe: hidpi.ScaleProbe | None = None) -> None:
        self.c = controller
        self.render = render
        self.title = title
        self.quit_requested = False
        self.frames = 0
        self._frozen = False
        """Holds one gcfreeze.freeze from show() until close()."""
        self.frame_ms: deque[float] = deque(maxlen=240)
        self._last_error = ""
        self.after_frame: list[Callable[[GuiApp, list[Event]], None]] = []
        """Hooks run at the end of every frame (the bench measures latency here; the entry point prints the
        first-frame time)."""
        self.themes = _Process.ensure_context()
        # HiDPI before any widget is made (they are sized with hidpi.px): the config's scale, else what the
        # system said by now (the probe runs its commands on its own thread), else the environment alone. Without
        # a probe from the caller, one starts once the viewport holds its X connection (show): a probe's commands
        # connecting and leaving before that could make Xvfb reset under GLFW's feet.
        self._probe: hidpi.ScaleProbe | None = scale_probe
        answered = self._probe.result() if self._probe is not None else None
        detection = answered
        if detection is None:
            found, problems = hidpi.from_env(os.environ)
            detection = hidpi.Detection(found, tuple(problems))
        self._scale_found(detection, probe_done=answered is not None)
        self.scale = hidpi.choose(controller.cfg.gui.scale, detection)
        hidpi.set_scale(self.scale.scale)
        self.themes.set_scale(self.scale.scale)
        self.themes.apply(controller.cfg.gui.theme)  # themes outlive an app in one process: set this one's
        self.dialogs = DialogManager(controller, self.themes)
        self.settings = SettingsDialog(controller, self.themes)
        self.confirm = ConfirmCloseDialog(controller, self.themes, on_quit=self.quit)
        self.edit = EditTicketDialog(controller, self.themes)
        self.git = GitUi(controller, self.themes)
        self.window = MainWindow(controller, self.themes, open_approval=self.dialogs.open,
                                 open_settings=self.settings.open, open_edit=self.edit.open, git=self.git)
        self.zoom = controller.cfg.gui.font_scale
        self._drain_budget_s = controller.cfg.gui.frame_budget_ms / 1000
        self.keys = Keyboard(self)
        self.drafts = DraftKeeper(self)
        self.summary = SummaryDialog(self.themes, controller, self.git)
        self.summaries = RunSummaries()
        self.notifier: DesktopNotifier | None = None
        self._title_seen = -1
        self.dialogs.plan.on_approved.append(lambda plan: self.window.left.epic_accepted(plan.epic))
        util.set_error_sink(controller.fail)

    def build(self) -> GuiApp:
        self.window.build()
        self.dialogs.build()
        self.settings.build()
        self.confirm.build()
        self.edit.build()
        self.keys.build()
        self.summary.build()
        self.git.build()
        self.window.cluster.build_confirm()
        dpg.set_global_font_scale(self.zoom)
        dpg.set_primary_window(tags.MAIN_WINDOW, True)
        # After set_primary_window (which resets the window's flags): no background of its own; the viewport's
        # clear colour paints it for free (show). On a software renderer the window-sized fill was half the CPU
        # of a frame (5 of 10 ms at 1280x800).
        dpg.configure_item(tags.MAIN_WINDOW, no_background=True)
        self.drafts.restore()
        self.c.load_budget_resets()
        self.c.cluster.start(self.c.events.post)  # polls Redis on its own thread, only when a broker is configured
        self.refresh()
        return self

    def show(self) -> None:
        """Create and show the viewport. The caller must have checked that a display can be opened
        (conductor.gui.display): show_viewport() aborts the process without one."""
        if not _Process.viewport:
            gui = self.c.cfg.gui
            dpg.create_viewport(title=self.title, width=gui.width, height=gui.height, x_pos=0, y_pos=0,
                                min_width=900, min_height=600, disable_close=True)
            dpg.setup_dearpygui()
            dpg.show_viewport()
            _Process.viewport = True
        else:  # the process's one viewport, reused: take this app's size
            gui = self.c.cfg.gui
            dpg.set_viewport_width(gui.width)
            dpg.set_viewport_height(gui.height)
        dpg.set_exit_callback(self.request_close)
        self._paint_background()
        if not self._frozen:  # startup is done: full collections stop walking what it built (see gcfreeze)
            gcfreeze.freeze()
            self._frozen = True
        if self._probe is None and self.scale.source == "default":  # nothing said yet: ask the system
            self._probe = hidpi.ScaleProbe(os.environ)

    def _paint_background(self) -> None:
        """The main window draws no background (a window-sized fill is the costliest thing a software renderer
        draws each frame); the viewport's clear colour shows the theme's window colour in its place."""
        if _Process.viewport:
            dpg.set_viewport_clear_color(window_colour(self.themes.name))

    # ---------------- frames

    def refresh(self) -> None:
        """Bring the widgets up to date. A bug in a view is shown in the banner (once) and never stops the loop."""
        try:
            self.dialogs.blocked = bool(dpg.is_item_shown(tags.SETTINGS_DIALOG) or dpg.is_item_shown(tags.CONFIRM_CLOSE)
                                        or dpg.is_item_shown(tags.EDIT_TICKET) or self.git.modal_open()
                                        or dpg.is_item_shown(tags.DISCARD_CONFIRM))
            self.window.refresh()
            self.dialogs.refresh()
            self.git.refresh()
            tool = self.dialogs.by_kind["tool"]
            if isinstance(tool, ToolDialog):
                tool.refresh_preview()
            self.summary.refresh()
            self._title()
        except Exception as exc:
            if util.STRICT:
                raise
            message = f"Internal error while drawing: {type(exc).__name__}: {exc}"
            if message != self._last_error:
                self._last_error = message
                traceback.print_exc()
                self.c.fail(message)

    def _title(self) -> None:
        """The window title counts what waits for the person ("Conductor (2)"), visible from the task bar."""
        if self._title_seen == self.c.versions["approvals"] or not (self.render and _Process.viewport):
            return
        self._title_seen = self.c.versions["approvals"]
        dpg.set_viewport_title(self.c.window_title(self.title))

    def _scale_found(self, detection: hidpi.Detection, *, probe_done: bool = True) -> None:
        """What the system said: say what could not be used; once the probe answered, stop asking."""
        if probe_done:
            self._probe = None
        for problem in detection.problems:
            self.c.status_message = f"display scale: {problem}"
            self.c.versions["status"] += 1

    def _late_scale(self) -> None:
        """The system's scale arrived after the window was built: fonts, theme metrics and the layout follow it
        (the config's scale, when set, still wins)."""
        assert self._probe is not None
        detection = self._probe.result()
        if detection is None:
            return
        self._scale_found(detection)
        found = hidpi.choose(self.c.cfg.gui.scale, detection)
        if found.scale != self.scale.scale:
            factor = found.scale / self.scale.scale
            self.scale = found
            hidpi.set_scale(found.scale)
            self.themes.set_scale(found.scale)
            self.c.status_message = f"display scale {found.scale:g} ({found.source})"
            self.c.versions["status"] += 1
            self.window.rescale(factor)

    def set_zoom(self, scale: float) -> None:
        """Scale every font (Ctrl +/−); remembered in config.toml [gui] font_scale on exit, with the layout."""
        self.zoom = scale
        dpg.set_global_font_scale(scale)
        self.c.status_message = f"text size {round(scale * 100)}%"
        self.c.versions["status"] += 1
        self.window.layout(force=True)

    def set_theme(self, name: ThemeName) -> None:
        """Dark or light, now; remembered in config.toml [gui] theme on exit, with the layout."""
        self.themes.apply(name)
        self._paint_background()
        if dpg.does_item_exist(tags.BANNER):  # the banner's tint is per theme
            dpg.bind_item_theme(tags.BANNER, self.themes.banner.get(self.c.banner_level, self.themes.banner["error"]))
        self.c.status_message = f"{name} theme"
        self.c.versions["status"] += 1

    def _notify(self, events: list[Event]) -> None:
        """Desktop notifications, when the person asked for them in config.toml ([gui] notify)."""
        if not self.c.cfg.gui.notify or not events:
            return
        if self.notifier is None:
            self.notifier = DesktopNotifier()
            if self.notifier.problem:
                self.c.fail(self.notifier.problem)
        for message in attention(events):
            self.notifier.send(message)

    def _summarise(self, events: list[Event]) -> None:
        """Watch the events for the end of a run; show its summary."""
        for ev in events:
            if ev.track_id is None:
                continue
            track = self.c.tracks.get(ev.track_id)
            summary = self.summaries.see(ev, self.c.session.ledger, track.title if track is not None else "", track)
            if summary is not None:
                self.summary.open(summary)

    def _adapt_budget(self) -> None:
        """Taking events is bounded by a budget per frame; when a burst leaves a backlog the budget grows (up to
        MAX_DRAIN_FACTOR times), so the queue cannot grow without end (latency and memory with it); it
        returns to the configured value once the queue is drained."""
        base = self.c.cfg.gui.frame_budget_ms / 1000
        if self.c.events.empty():
            self._drain_budget_s = max(base, self._drain_budget_s * 0.8)
        else:
            self._drain_budget_s = min(base * MAX_DRAIN_FACTOR, self._drain_budget_s * 1.5)

    def frame(self) -> list[Event]:
        """One frame: events → view-model → widgets → render → callbacks. Returns the events applied."""
        start = time.perf_counter()
        waited = self.c.wait(HEADLESS_WAIT_S) if not self.render else None
        events = self.c.drain(budget_s=self._drain_budget_s)
        if waited is not None:
            events.insert(0, waited)  # applied already; the hooks (and the run summary) must see it too
        self._adapt_budget()
        if self._probe is not None:
            self._late_scale()
        self._summarise(events)
        self._notify(events)
        self.refresh()
        self.drafts.tick()
        if self.render:
            self.window.layout()
            self.keys.before_render()
            dpg.render_dearpygui_frame()
            jobs = dpg.get_callback_queue()
            if jobs:
                dpg.run_callbacks(jobs)
        self.frames += 1
        if self.frames == 2:
            self.c.fetch_models()  # after the first frame: the provider's model list may import an SDK
        ms = (time.perf_counter() - start) * 1000
        self.frame_ms.append(ms)
        if self.render and self.frames % 30 == 0:
            self.window.show_fps(sorted(self.frame_ms)[len(self.frame_ms) // 2])
        for hook in self.after_frame:
            hook(self, events)
        return events

    def run(self) -> None:
        while not self.quit_requested and dpg.is_dearpygui_running():
            self.frame()

    # ---------------- closing

    def request_close(self, *_: object) -> None:
        """The window's close button: ask first when approvals are pending."""
        if self.c.needs_close_confirm():
            self.confirm.open()
        else:
            self.quit()

    def quit(self) -> None:
        self.quit_requested = True

    def close(self) -> list[str]:
        """Cancel and join all work, save the layout, destroy the context. Returns problems to report."""
        if self.render and dpg.is_dearpygui_running():
            self.c.status_message = "shutting down: cancelling work and saving state…"
            self.c.versions["status"] += 1
            self.refresh()
            dpg.render_dearpygui_frame()
        layout: dict[str, int | float | str] | None = (
            {**self.window.layout_state(), "font_scale": self.zoom, "theme": self.themes.name} if self.render else None)
        if self._probe is not None:
            self._probe.join(2.0)  # xrdb / xdpyinfo answer in milliseconds; never leave the thread behind
        problems = self.drafts.close() + self.c.close_files()
        problems += self.c.shutdown(10.0, layout=layout)
        util.set_error_sink(None)
        _Process.release()
        if self._frozen:
            gcfreeze.thaw()
            self._frozen = False
        return problems
