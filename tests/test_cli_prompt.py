"""`conductor run` answers approvals at the prompt: every kind is asked, a rejection's reason reaches the model."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from conductor.cli import Console
from conductor.config import Config
from conductor.model import TicketStatus
from conductor.providers.scripted import ScriptedProvider
from conductor.session import Session


def test_every_approval_is_asked_at_the_prompt(workspace: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = Config()
    cfg = cfg.updated({"engine": {"step_mode": True}})
    provider = ScriptedProvider()
    session = Session(cfg, workspace=workspace, tracks_dir=tmp_path / "tracks", provider=provider, linger=False)
    asked: list[str] = []

    rejected: list[str] = []

    def fake_input(prompt: str) -> str:
        """Approve everything but T6's first file write, which is rejected with a reason."""
        asked.append(prompt)
        if prompt.startswith("reason"):
            return "not that file"
        block = out.getvalue().rsplit("=== ", 1)[-1]  # the approval being asked about
        if block.startswith("tool") and "ticket T6" in block and "write_file" in block and not rejected:
            rejected.append(block)
            return "n"
        return "y"

    out = io.StringIO()
    monkeypatch.setattr("builtins.input", fake_input)
    console = Console(session, interactive=True, out=out)
    try:
        code = console.run(epic="Add OAuth login", resume=None)
    finally:
        session.shutdown()
    text = out.getvalue()
    kinds = [line.split()[1] for line in text.splitlines() if line.startswith("=== ")]
    assert kinds.count("plan") == 1 and kinds.count("tickets") == 1
    # T6's rejected write fails its review (nothing was changed), so T6 runs a second attempt.
    assert kinds.count("spawn") == 7 and kinds.count("tool") == 7
    assert any(p.startswith("reason") for p in asked)
    (engine,) = session.engines.values()
    assert all(t.status == TicketStatus.DONE for t in engine.track.tickets) and code == 0
    t6_calls = [r for r in provider.calls(tier=3) if r.prov.ticket_id == "T6"]
    results = [res for r in t6_calls for m in r.messages for res in m.tool_results if res.name == "write_file"]
    assert results and results[0].error == "rejected by the user: not that file"
    assert engine.track.ticket("T6").attempts == 2
    assert (workspace / "notes" / "docs.md").exists() and (workspace / "notes" / "survey.md").exists()
