"""GUI pilot on a git workspace: a merge conflict is shown as "needs merge" with its files, and retry resolves it.

Why here: the state must be visible where the person works (the ticket table), with the conflicting files in
the reason column and the retry action offered, and the retry must lead to a done track.
"""

from __future__ import annotations

import json
from pathlib import Path

from gui_support import answer_until, app_factory, done, make_controller, make_session, plan  # noqa: F401

from conductor.config import Config
from conductor.gui import tags
from conductor.messages import ToolCall
from conductor.providers.base import ProviderRequest
from conductor.providers.scripted import Reply, ScriptedProvider, demo_reply
from tests.git_support import sh_git

BASE = "".join(f"line {i}\n" for i in range(1, 11))
RESOLVED = BASE.replace("line 3\n", "line 3 by A and B\n")


def _writer(tid: str):  # type: ignore[no-untyped-def]
    def respond(req: ProviderRequest, n: int) -> Reply:
        if sum(1 for m in req.messages if m.role == "model") == 0:
            content = RESOLVED if req.prov.attempt > 1 else BASE.replace("line 3\n", f"line 3 by {tid}\n")
            return Reply(text="writing", tool_calls=(
                ToolCall(f"w{tid}{req.prov.attempt}", "write_file", {"path": "shared.py", "content": content}),))
        return Reply(text=f"Work on {tid} is complete.")
    return respond


def test_needs_merge_is_shown_with_its_files_and_retry_resolves_it(tmp_path: Path, app_factory) -> None:  # noqa: F811
    ws = tmp_path / "workspace"
    ws.mkdir()
    (ws / "shared.py").write_text(BASE)
    sh_git(ws, "init", "-q")
    sh_git(ws, "add", "-A")
    sh_git(ws, "commit", "-q", "-m", "initial")
    cfg = Config()
    cfg = cfg.updated({"engine": {"max_workers": 2}})
    cfg = cfg.updated({"git": {"worktrees_root": str(tmp_path / "worktrees")}})
    tickets = {"tickets": [{"id": t, "title": f"{t} edits line 3", "description": "Edit shared.py.", "depends_on": [],
                            "target_files": ["shared.py"], "acceptance_criteria": ["done"], "step_mode": False,
                            "model_override": None} for t in ("A", "B")]}
    provider = ScriptedProvider({1: demo_reply, 4: demo_reply, 2: [Reply(text=json.dumps(tickets))],
                                 (3, "A"): _writer("A"), (3, "B"): _writer("B")})
    c = make_controller(make_session(tmp_path, provider, cfg))
    p = app_factory(c).pilot
    plan(p)
    answer_until(p, lambda: any(r.status == "needs_merge" for r in c.ticket_rows()), timeout=60)
    (loser,) = [r.id for r in c.ticket_rows() if r.status == "needs_merge"]
    p.wait_until(lambda: p.value(tags.ticket_cell(loser, "status")) == "needs merge")
    assert "shared.py" in p.value(tags.ticket_cell(loser, "reason"))
    p.frame(3)
    assert p.shown(tags.ticket_action(loser, "retry")), "a ticket that needs a merge offers retry (a resolve attempt)"
    p.click(tags.ticket_action(loser, "retry"))
    answer_until(p, lambda: done(c), timeout=60)
    track = next(iter(c.session.engines))
    assert sh_git(ws, "show", f"conductor/{track}:shared.py") == RESOLVED
    assert (ws / "shared.py").read_text() == BASE, "the person's checkout is untouched"
