"""Regenerate the README's screenshots (docs/*.png) from the offline demo on its own project, driven by the pilot:

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python scripts/readme_screenshots.py

docs/screenshot.png   the main window mid-run
docs/approval.png     a tool approval: the coloured diff, the editable arguments and the dialog's shortcut line
docs/diff.png         the track's changes so far against its base, coloured, file by file
docs/dashboard.png    tokens & cost, with the lifetime / today / this-track budgets
docs/graph.png        the tickets as a graph, the critical path marked

The demo runs in a scratch XDG data folder, never the person's own demo.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="conductor-shots-"))
    os.environ["XDG_DATA_HOME"] = str(root / "data")  # before the demo's folders are looked up

    from gui_support import AppHandle

    from conductor.app.controller import AppController
    from conductor.app.session_factory import demo_folders, demo_home, open_session
    from conductor.config import Config
    from conductor.demo.person import answer
    from conductor.gui import tags
    from conductor.providers.scripted import ScriptedProvider

    cfg = Config().updated({"budget": {"max_cost_usd_per_day": 2.0, "max_tokens_per_track": 200_000},
                            "git": {"worktrees_root": str(root / "worktrees")}})
    ws, tracks = demo_folders(demo_home())
    session, _note = open_session(cfg, workspace=ws, tracks_dir=tracks, provider_name="scripted", demo=True)
    assert isinstance(session.provider, ScriptedProvider)
    session.provider.latency_s, session.provider.chunk_delay_s = 0.05, 0.004  # streams visibly mid-run
    c = AppController(session, demo=True, provider_name="scripted")
    h = AppHandle(c, render=True)
    p = h.pilot
    docs = ROOT / "docs"
    p.frame(5)
    p.press("Ctrl+Enter")
    p.wait_for_approval("plan", 30)
    p.press("A")
    p.wait_for_approval("tickets", 30)
    p.press("A")
    p.wait_until(lambda: any(r.payload.kind == "tool" and r.payload.tool == "write_file"  # type: ignore[union-attr]
                             for r in p.pending("tool")), 60, "a write's approval")
    write = next(r for r in p.pending("tool") if getattr(r.payload, "tool", "") == "write_file")
    p.open_approval("tool", write.id)
    p.frame(5)
    p.screenshot(docs / "approval.png")
    p.app.dialogs.auto_open = False
    shot_mid_run = False

    def settled() -> bool:
        return all(r.status in ("done", "failed", "skipped") for r in c.ticket_rows()) and bool(c.ticket_rows())

    while not settled():
        for req in p.pending():
            a = answer(req)
            if a.approve:
                p.approve(req.kind.value, req.id)
            else:
                p.reject(req.kind.value, a.reason, req.id)
        if any(r.status == "needs_merge" for r in c.ticket_rows()):
            p.press("Ctrl+M")
        if not shot_mid_run and sum(r.status == "done" for r in c.ticket_rows()) >= 2 \
                and any(r.status in ("running", "review") for r in c.ticket_rows()):
            p.frame(20)
            p.screenshot(docs / "screenshot.png")
            shot_mid_run = True
        p.frame()
    p.wait_until(lambda: p.shown(tags.RUN_SUMMARY), 60, "the end-of-run summary")
    p.app.summary.close()
    p.press("Ctrl+D")
    p.wait_until(lambda: p.shown(tags.DIFF_WINDOW), 60, "the changes so far")
    p.frame(10)
    p.screenshot(docs / "diff.png")
    p.press("Escape")
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
