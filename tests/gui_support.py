"""Helpers for the app and GUI tests: sessions on the scripted provider in a temp workspace, the app with or
without a shown viewport, a pilot fixture, and a non-blank check for screenshots.

Import the fixtures into a test module with `from gui_support import app_factory, ...` (pytest finds them
there). Nothing here sleeps: waits render frames or block on the event queue.
"""

from __future__ import annotations

import struct
import subprocess
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from conductor.app import AppController, fmt_cost, fmt_tokens
from conductor.config import Config
from conductor.gui import tags  # plain constants: no Dear PyGui import
from conductor.model import TIER_NAMES
from conductor.providers.base import Provider, set_allow_real_model_requests
from conductor.providers.scripted import ScriptedProvider
from conductor.session import Session

if TYPE_CHECKING:
    from conductor.gui.pilot import Pilot

IDENTIFY = "/usr/bin/identify"


def make_workspace(root: Path) -> Path:
    ws = root / "workspace"
    (ws / "src").mkdir(parents=True, exist_ok=True)
    (ws / "README.md").write_text("# Test project\n", "utf-8")
    (ws / "src" / "app.py").write_text("print('hello')\n", "utf-8")
    return ws


def make_session(root: Path, provider: Provider | None = None, cfg: Config | None = None, *,
                 tracks: Path | None = None, **kw: Any) -> Session:
    """A Session on the scripted provider (offline, deterministic) with the full workspace toolbox."""
    set_allow_real_model_requests(False)  # a forgotten fake fails loudly instead of spending tokens
    ws = root / "workspace"
    if not ws.exists():
        make_workspace(root)
    return Session(cfg or Config(), workspace=ws, tracks_dir=tracks or root / "tracks",
                   provider=provider or ScriptedProvider(), **kw)


def make_controller(session: Session, *, offer_git_init: bool = False, **kw: Any) -> AppController:
    """The view-model on `session`. A plain test folder runs as before (one worker) unless the test turns the git
    init question on (`offer_git_init`)."""
    c = AppController(session, provider_name="scripted", **kw)
    if not offer_git_init:
        session.offer_git_init = None
    return c


def display_ok() -> bool:
    from conductor.gui.display import display_available
    return display_available()


needs_display = pytest.mark.skipif(not display_ok(), reason="no X display: run under xvfb-run (the .ci/run does)")


class AppHandle:
    """A built GuiApp with its pilot; `close()` shuts the session down and destroys the DPG context."""

    def __init__(self, controller: AppController, render: bool) -> None:
        from conductor.gui.loop import GuiApp
        from conductor.gui.pilot import Pilot
        self.controller = controller
        self.app = GuiApp(controller, render=render).build()
        if render:
            self.app.show()
        self.pilot = Pilot(self.app)
        self.closed = False

    def close(self) -> list[str]:
        if self.closed:
            return []
        self.closed = True
        from conductor.gui import util
        util.STRICT = False
        return self.app.close()


@pytest.fixture
def app_factory() -> Iterator[Callable[..., AppHandle]]:
    """Build apps (one at a time: Dear PyGui has one context per process); each is closed at teardown."""
    handles: list[AppHandle] = []

    def build(controller: AppController, render: bool = False) -> AppHandle:
        for h in handles:
            h.close()
        h = AppHandle(controller, render)
        handles.append(h)
        return h

    yield build
    for h in handles:
        h.close()


# ---------------------------------------------------------------- driving a run through the GUI

Decider = Callable[["Pilot", object], None]


def done(c: AppController) -> bool:
    rows = c.ticket_rows()
    return bool(rows) and all(r.status in ("done", "skipped") for r in rows)


def answer_until(p: Pilot, until: Callable[[], bool], decide: dict[tuple[str, str | None], Decider] | None = None,
                 timeout: float = 30.0, hold: set[tuple[str, str | None]] = frozenset()) -> None:
    """Answer approvals as they come (custom decisions by (kind, ticket), else approve; `hold` ones are left
    waiting) until `until()`."""
    decide = decide or {}

    def step() -> bool:
        if until():
            return True
        for req in p.pending():
            if (req.kind.value, req.prov.ticket_id) in hold:
                continue
            fn = decide.pop((req.kind.value, req.prov.ticket_id), None)
            if fn is not None:
                fn(p, req)
            else:
                assert p.approve(req.kind.value, req.id) == ""
            return False
        return False
    p.wait_until(step, timeout, "the run to finish")


def plan(p: Pilot, epic: str = "Add OAuth login") -> None:
    p.type(tags.EPIC_INPUT, epic)
    p.click(tags.PLAN_BUTTON)


def assert_dashboard_is_the_ledger(p: Pilot) -> None:
    ledger = p.controller.session.ledger
    for r, (tier, t) in enumerate(sorted(ledger.by_tier().items())):
        cell = lambda col: p.value(tags.usage_cell(tags.USAGE_TIER_TABLE, r, col))  # noqa: E731
        assert cell(0) == TIER_NAMES[tier]
        assert [cell(1), cell(2), cell(3), cell(4), cell(5), cell(6)] == [
            str(t.calls), fmt_tokens(t.prompt_tokens), fmt_tokens(t.output_tokens), fmt_tokens(t.thinking_tokens),
            fmt_tokens(t.cached_tokens), fmt_cost(t.cost_usd)]
    for r, (model, t) in enumerate(sorted(ledger.by_model().items())):
        assert p.value(tags.usage_cell(tags.USAGE_MODEL_TABLE, r, 0)) == model
        assert p.value(tags.usage_cell(tags.USAGE_MODEL_TABLE, r, 2)) == fmt_tokens(t.prompt_tokens)
    total = ledger.total()
    assert f"{fmt_tokens(total.prompt_tokens)} prompt" in p.value(tags.USAGE_TOTAL)
    assert f"cost {fmt_cost(total.cost_usd)}" in p.value(tags.USAGE_TOTAL)


# ---------------------------------------------------------------- screenshots

def unique_colours(png: Path) -> int:
    """Unique colours in a PNG: ImageMagick's identify when installed, else a small pure-Python decoder."""
    if Path(IDENTIFY).exists():
        out = subprocess.run([IDENTIFY, "-format", "%k", str(png)], capture_output=True, text=True, check=True)
        return int(out.stdout.strip())
    return len(set(_pixels(png)))


def _pixels(png: Path) -> list[bytes]:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG (what output_frame_buffer writes)."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
    pos, idat, width, height, channels = 8, b"", 0, 0, 4
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8, "only 8-bit PNGs"
            channels = {2: 3, 6: 4}[colour]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, prev = zlib.decompress(idat), width * channels, bytearray(width * channels)
    pixels: list[bytes] = []
    for y in range(height):
        row = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        _unfilter(raw[y * (stride + 1)], row, prev, channels)
        pixels.extend(bytes(row[i:i + channels]) for i in range(0, stride, channels))
        prev = row
    return pixels


def _unfilter(kind: int, row: bytearray, prev: bytearray, bpp: int) -> None:
    for i in range(len(row)):
        a = row[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if kind == 1:
            row[i] = (row[i] + a) & 0xFF
        elif kind == 2:
            row[i] = (row[i] + b) & 0xFF
        elif kind == 3:
            row[i] = (row[i] + (a + b) // 2) & 0xFF
        elif kind == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF


def assert_not_blank(png: Path, minimum: int = 50) -> int:
    n = unique_colours(png)
    assert n > minimum, f"{png} looks blank: {n} unique colours"
    return n


__all__ = ["AppHandle", "answer_until", "app_factory", "assert_dashboard_is_the_ledger", "assert_not_blank",
           "display_ok", "done", "make_controller", "make_session", "make_workspace", "needs_display", "plan",
           "unique_colours"]
