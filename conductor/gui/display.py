"""Can an X display be opened? Asked before `show_viewport()`, which aborts the whole process (GLFW
assertion, not a Python exception) when there is none. No dearpygui import here."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

NO_DISPLAY_HELP = "no display: run under xvfb-run or set DISPLAY"


def display_available() -> bool:
    """True when XOpenDisplay(NULL) succeeds (the connection is closed again at once)."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return False
    name = ctypes.util.find_library("X11") or "libX11.so.6"
    try:
        x11 = ctypes.CDLL(name)
    except OSError:
        return False
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    handle = x11.XOpenDisplay(None)
    if not handle:
        return False
    x11.XCloseDisplay(handle)
    return True
