"""`AppController`, the view-model: the parts put together, plus the frame loop's entry points (`drain`,
`wait`), the provider's model list fetched in the background, and the orderly shutdown."""

from __future__ import annotations

import threading
import time
from typing import Any

from conductor.app.commands import Commands
from conductor.app.git_view import GitActions
from conductor.app.handlers import EventHandling
from conductor.app.streams import coalesce
from conductor.app.views import DerivedViews
from conductor.config import save_config_values
from conductor.errors import ConductorError, ConfigError
from conductor.events import Event


class AppController(EventHandling, Commands, DerivedViews, GitActions):
    """The view-model. Views read its state; callbacks call its commands; `drain` applies events."""

    def __init__(self, session: object, **kw: Any) -> None:
        super().__init__(session, **kw)
        self.init_git_state()

    def apply(self, ev: Event) -> None:
        if not self.apply_git(ev):
            EventHandling.apply(self, ev)

    # ---------------- applying events

    def drain(self, budget_s: float | None = None, max_items: int = 8192) -> list[Event]:
        """Apply queued events until the queue is empty, `max_items` were taken or `budget_s` passed.
        Events are taken first (cheap), then applied with each stream's deltas joined (by the queue, or here by
        `coalesce`), so the cost of a frame grows with the number of streams, not with the number of deltas."""
        deadline = None if budget_s is None else time.perf_counter() + budget_s
        out: list[Event] = []
        while len(out) < max_items:
            batch = self.events.drain(min(1024, max_items - len(out)))
            if not batch:
                break
            out.extend(batch)
            if deadline is not None and time.perf_counter() >= deadline:
                break
        # A merging queue already joined each stream's deltas (off this thread); joining what is left (a run
        # taken in one batch, the next in another) would save an append at the cost of a pass over them all.
        for ev in out if self.events.merging else coalesce(out):
            self.apply(ev)
        self._poll_models()
        return out

    def wait(self, timeout: float) -> Event | None:
        """Block up to `timeout` for one event and apply it (headless frames wait here, never sleep)."""
        ev = self.events.get(timeout)
        if ev is not None:
            self.apply(ev)
        return ev

    # ---------------- the provider's model list (shown in the model pickers)

    def offered_models(self) -> list[str]:
        """The config's offered models, each configured endpoint's models (as `endpoint:model`), then the
        provider's list (fetched in the background), no duplicates."""
        endpoints = [f"{name}:{m}" for name, ep in self.cfg.endpoints.items() for m in ep.models]
        out = list(dict.fromkeys([*self.cfg.models.offered, *endpoints, *self.extra_models]))
        for tier in (1, 2, 3, 4):
            m = self.cfg.models.for_tier(tier)
            if m not in out:
                out.append(m)
        return out

    def fetch_models(self) -> None:
        """Ask the provider for its models on a background thread (it may import an SDK and hit the network)."""
        if self._models_thread is not None or self.session.provider.offline:
            return
        result: list[str] = []

        def work() -> None:
            try:
                result.extend(self.session.provider.list_models())
            except Exception:  # noqa: BLE001 — the offered list still works; the list is a convenience
                pass
        self._models_result: list[str] | None = result
        self._models_thread = threading.Thread(target=work, name="conductor-list-models", daemon=True)
        self._models_thread.start()

    def _poll_models(self) -> None:
        th = self._models_thread
        found: list[str] | None = getattr(self, "_models_result", None)
        if th is not None and not th.is_alive() and found is not None:
            self.extra_models = list(found)
            self._models_result = None
            self._bump("models")

    # ---------------- closing

    def needs_close_confirm(self) -> bool:
        return bool(self.pending)

    def shutdown(self, timeout: float = 10.0, layout: dict[str, int | float | str] | None = None) -> list[str]:
        """Cancel and join all work, then save the layout. Returns problems (shown or printed by the caller)."""
        problems = self.cluster.stop()
        self.close_git()
        if self._models_thread is not None:
            self._models_thread.join(min(timeout, 2.0))  # a slow model list must not hold the exit for long
        try:
            self.session.shutdown(timeout)
        except (TimeoutError, ConductorError, OSError) as exc:
            problems.append(f"shutdown: {exc}")
        changed = {k: v for k, v in (layout or {}).items() if getattr(self.cfg.gui, k) != v}
        if changed and self.config_path is not None:  # unchanged layout: leave the file (and its comments) alone
            try:
                self.cfg.updated({"gui": changed})  # validated first: a bad value is refused, naming its key
                # Only the layout keys: a toolbar toggle (step mode, a tier's model) is for this session.
                save_config_values(self.config_path, {"gui": changed})
            except (ValueError, ConfigError, OSError) as exc:
                problems.append(f"could not save the layout: {exc}")
        return problems
