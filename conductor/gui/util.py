"""Small helpers shared by the views: safe callbacks, value access, table rebuilding."""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from typing import Any

import dearpygui.dearpygui as dpg

from conductor.gui.hidpi import px

STRICT = False
"""The pilot sets this: a callback that raises then fails the test instead of becoming a banner."""

_error_sink: list[Callable[[str], Any]] = []


def set_error_sink(sink: Callable[[str], Any] | None) -> None:
    _error_sink.clear()
    if sink is not None:
        _error_sink.append(sink)


def safe(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a DPG callback: a bug in one handler is shown to the user and never takes the app down."""
    @functools.wraps(fn)
    def wrapper(sender: Any = None, app_data: Any = None, user_data: Any = None) -> Any:
        try:
            return fn(sender, app_data, user_data)
        except Exception as exc:
            if STRICT:
                raise
            traceback.print_exc()
            for sink in _error_sink:
                sink(f"Internal error in {getattr(fn, '__name__', 'a handler')}: {type(exc).__name__}: {exc}")
            return None
    return wrapper


def set_if_changed(tag: int | str, value: Any) -> None:
    """set_value only when the value differs (cheap, and keeps the user's cursor in inputs)."""
    if dpg.get_value(tag) != value:
        dpg.set_value(tag, value)


def clear(container: int | str) -> None:
    """Delete a container's children (their aliases are freed with them)."""
    for slot in (0, 1):
        for child in dpg.get_item_children(container, slot) or []:
            dpg.delete_item(child)


def show(tag: int | str, visible: bool) -> None:
    if dpg.get_item_configuration(tag).get("show") != visible:
        dpg.configure_item(tag, show=visible)


def viewport_size(default: tuple[int, int] = (1280, 800)) -> tuple[int, int]:
    """The viewport's client size, or `default` when there is no viewport (headless tests)."""
    try:
        w, h = dpg.get_viewport_client_width(), dpg.get_viewport_client_height()
    except Exception:  # noqa: BLE001 — DPG raises a bare Exception when no viewport was created
        return default
    return (w or default[0], h or default[1])


def centre(window: int | str, width: int, height: int) -> None:
    """Put a dialog in the middle of the viewport (or at a sane spot without one). `width` and `height` are layout
    pixels: HiDPI scales them, and the viewport caps them."""
    vw, vh = viewport_size()
    w, h = min(px(width), vw - 20), min(px(height), vh - 20)
    dpg.configure_item(window, width=w, height=h, pos=(max((vw - w) // 2, 0), max((vh - h) // 2, 0)))
