"""Regenerate the README's screenshots (docs/*.png) from the offline demo, driven by the pilot:

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python scripts/readme_screenshots.py

docs/screenshot.png   the main window mid-run
docs/approval.png     a tool approval: the diff, the editable arguments and the dialog's shortcut line
docs/dashboard.png    tokens & cost, with the lifetime / today / this-track budgets
docs/graph.png        the tickets as a graph, the critical path marked
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> int:
    from gui_support import AppHandle, done, make_controller, make_session

    from conductor.config import Config
    from conductor.gui import tags
    from conductor.gui.left_panel import DEMO_EPIC
    from conductor.providers.scripted import ScriptedProvider

    cfg = Config()
    cfg.budget.max_cost_usd_per_day = 2.0
    cfg.budget.max_tokens_per_track = 200_000
    root = Path(tempfile.mkdtemp(prefix="conductor-shots-"))
    c = make_controller(make_session(root, ScriptedProvider(chunk_delay_s=0.004), cfg), demo=True)
    h = AppHandle(c, render=True)
    p = h.pilot
    docs = ROOT / "docs"
    p.frame(5)
    p.type(tags.EPIC_INPUT, DEMO_EPIC)
    p.press("Ctrl+Enter")
    p.wait_for_approval("plan")
    p.press("A")
    p.wait_for_approval("tickets")
    p.press("A")
    p.wait_for_approval("tool")
    p.open_approval("tool")
    p.frame(5)
    p.screenshot(docs / "approval.png")
    p.press("A")
    p.app.dialogs.auto_open = False
    while sum(r.status == "done" for r in c.ticket_rows()) < 3:
        for req in p.pending():
            p.approve(req.kind.value, req.id)
        p.frame()
    p.wait_until(lambda: bool(p.pending("tool")), 60, "a tool approval waiting mid-run")
    p.frame(20)
    p.screenshot(docs / "screenshot.png")
    p.app.dialogs.auto_open = True
    while not done(c):
        for req in p.pending():
            p.approve(req.kind.value, req.id)
        p.frame()
    p.app.summary.close()
    p.press("Ctrl+3")
    p.frame(10)
    p.screenshot(docs / "dashboard.png")
    p.press("Ctrl+2")
    p.frame(10)
    p.screenshot(docs / "graph.png")
    h.close()
    print("wrote", ", ".join(str(x.relative_to(ROOT)) for x in sorted(docs.glob("*.png"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
