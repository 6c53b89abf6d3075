"""HiDPI: how many screen pixels one layout pixel takes, from the config or the system, and `px()` to size
things by it.

Where the scale comes from, first found wins:
  1. config.toml `[gui] scale`, when set (the person's word beats any guess);
  2. the environment: GDK_SCALE, then QT_SCALE_FACTOR (what GTK and Qt apps on this desktop use);
  3. the X resources: `Xft.dpi` from `xrdb -query` (what desktops set for a HiDPI screen), as dpi / 96;
  4. the monitor's physical size from `xdpyinfo` (pixels per inch / 96), snapped to a quarter.
A value the system gives that is not a number is reported and skipped, never a traceback. The commands run on
a background thread (`ScaleProbe`), never on the GUI thread: the app starts the probe before it opens its
session, so the answer is usually there before the first frame; a late answer is applied when it comes.

No Dear PyGui here: the GUI applies the scale to its fonts and theme (conductor.gui.theme) and sizes its
fixed metrics with `px()`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from conductor import redact

BASE_DPI = 96.0
"""The dpi at which the layout is drawn 1:1."""
MIN_SCALE, MAX_SCALE = 0.5, 4.0
PROBE_TIMEOUT_S = 3.0

Runner = Callable[[list[str]], str | None]
"""Runs a command and returns its stdout (None: the command is not there or failed)."""


@dataclass(frozen=True)
class ScaleFound:
    scale: float
    source: str
    """Where it came from, said the way a person would check it ("Xft.dpi 192 (xrdb)")."""


@dataclass(frozen=True)
class Detection:
    found: ScaleFound | None
    problems: tuple[str, ...] = field(default=())
    """Values the system gave that could not be used (each names the variable or command)."""


def snap(value: float) -> float:
    """To the nearest quarter, within [MIN_SCALE, MAX_SCALE]."""
    return min(max(round(value * 4) / 4, MIN_SCALE), MAX_SCALE)


def from_env(env: Mapping[str, str]) -> tuple[ScaleFound | None, list[str]]:
    problems: list[str] = []
    for name in ("GDK_SCALE", "QT_SCALE_FACTOR"):
        raw = env.get(name, "").strip()
        if not raw:
            continue
        try:
            value = float(raw)
        except ValueError:
            problems.append(f"{name}={raw!r} is not a number; ignored")
            continue
        if not MIN_SCALE <= value <= MAX_SCALE:
            problems.append(f"{name}={raw!r} is outside {MIN_SCALE}..{MAX_SCALE}; ignored")
            continue
        return ScaleFound(value, f"{name}={raw}"), problems
    return None, problems


_XFT_DPI = re.compile(r"^\s*Xft\.dpi\s*:\s*(\S+)\s*$", re.MULTILINE)


def from_xresources(text: str) -> tuple[ScaleFound | None, list[str]]:
    """`xrdb -query` output: Xft.dpi / 96."""
    m = _XFT_DPI.search(text)
    if m is None:
        return None, []
    try:
        dpi = float(m.group(1))
    except ValueError:
        return None, [f"Xft.dpi {m.group(1)!r} in the X resources is not a number; ignored"]
    if dpi <= 0:
        return None, [f"Xft.dpi {m.group(1)!r} in the X resources is not a dpi; ignored"]
    return ScaleFound(snap(dpi / BASE_DPI), f"Xft.dpi {m.group(1)} (xrdb)"), []


_DIMENSIONS = re.compile(r"dimensions:\s+(\d+)x(\d+) pixels \((\d+)x(\d+) millimeters\)")


def from_monitor(text: str) -> ScaleFound | None:
    """`xdpyinfo` output: the screen's pixels per inch / 96 (a monitor that reports no size says nothing)."""
    m = _DIMENSIONS.search(text)
    if m is None:
        return None
    width_px, width_mm = int(m.group(1)), int(m.group(3))
    if width_mm <= 0 or width_px <= 0:
        return None
    dpi = width_px / (width_mm / 25.4)
    return ScaleFound(max(snap(dpi / BASE_DPI), 1.0), f"monitor {dpi:.0f} dpi (xdpyinfo)")


def run_tool(argv: list[str]) -> str | None:
    """stdout of an X tool, or None when it is not installed, fails or hangs (its environment holds no secret)."""
    exe = shutil.which(argv[0])
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                             env=redact.scrubbed_env(), check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def detect(env: Mapping[str, str], run: Runner = run_tool) -> Detection:
    """The system's scale (no config): the environment, then the X resources, then the monitor."""
    found, problems = from_env(env)
    if found is None and env.get("DISPLAY"):
        xres = run(["xrdb", "-query"])
        if xres is not None:
            found, more = from_xresources(xres)
            problems += more
        if found is None and (info := run(["xdpyinfo"])) is not None:
            found = from_monitor(info)
    return Detection(found, tuple(problems))


def choose(configured: float | None, detection: Detection | None) -> ScaleFound:
    if configured is not None:
        return ScaleFound(configured, "config.toml [gui] scale")
    if detection is not None and detection.found is not None:
        return detection.found
    return ScaleFound(1.0, "default")


class ScaleProbe:
    """Runs `detect` on its own thread; `result()` never blocks unless asked to wait."""

    def __init__(self, env: Mapping[str, str], run: Runner = run_tool) -> None:
        self._result: Detection | None = None
        self._done = threading.Event()
        env = dict(env)

        def work() -> None:
            try:
                self._result = detect(env, run)
            except Exception as exc:  # noqa: BLE001 — a broken probe must leave the app at scale 1, said why
                self._result = Detection(None, (f"the display scale could not be read: {type(exc).__name__}: "
                                                f"{exc}",))
            self._done.set()

        self._thread = threading.Thread(target=work, name="conductor-hidpi", daemon=True)
        self._thread.start()

    def result(self, wait: float = 0.0) -> Detection | None:
        self._done.wait(wait)
        return self._result if self._done.is_set() else None

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


_scale = [1.0]


def set_scale(scale: float) -> None:
    _scale[0] = scale


def scale() -> float:
    return _scale[0]


def px(n: float) -> int:
    """A layout length (in pixels at 96 dpi) in screen pixels at the current scale."""
    return round(n * _scale[0])
