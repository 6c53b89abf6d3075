"""Can an X display be opened? Asked before `show_viewport()`, which aborts the whole process (GLFW
assertion, not a Python exception) when there is none. No dearpygui import here."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

NO_DISPLAY_HELP = "no display: run under xvfb-run or set DISPLAY"


def _x11() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("X11") or "libX11.so.6"
    try:
        x11 = ctypes.CDLL(name)
    except OSError:
        return None
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    return x11


class HeldDisplay:
    """An X connection kept open on purpose. An X server with no client left resets (Xvfb does), and a client
    connecting during that reset fails: GLFW then aborts the whole process. Holding one connection from before
    the display-scale probe's commands (xrdb, xdpyinfo: each connects and leaves) until the viewport has its
    own connection means no reset can happen in between."""

    def __init__(self) -> None:
        self._x11 = _x11() if os.environ.get("DISPLAY") else None
        self._handle = self._x11.XOpenDisplay(None) if self._x11 is not None else None

    def close(self) -> None:
        if self._x11 is not None and self._handle:
            self._x11.XCloseDisplay(self._handle)
        self._handle = None


def display_available() -> bool:
    """True when XOpenDisplay(NULL) succeeds (the connection is closed again at once)."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return False
    x11 = _x11()
    if x11 is None:
        return False
    handle = x11.XOpenDisplay(None)
    if not handle:
        return False
    x11.XCloseDisplay(handle)
    return True
