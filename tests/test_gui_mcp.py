"""The tool approval dialog for an MCP call, through the real Dear PyGui item tree (headless pilot): it names
the server, the tool and how the server is run, and approving or rejecting there decides the call.

Why: an MCP server runs third-party code; the person deciding must see which server acts, not just a name."""

from __future__ import annotations

import sys
from pathlib import Path

from helpers import tool_of
from gui_support import answer_until, app_factory, make_controller, make_session, plan  # noqa: F401

from conductor.config import Config, McpServerConfig
from conductor.gui import tags
from conductor.messages import ToolCall
from conductor.providers.scripted import Reply, ScriptedProvider


def test_the_dialog_names_the_mcp_server_and_decides_the_call(tmp_path: Path, app_factory) -> None:  # noqa: F811
    markers = tmp_path / "markers"
    markers.mkdir()
    cfg = Config(mcp={"local": McpServerConfig(command=sys.executable, args=[
        "-m", "conductor.testing.mcp_server", "--marker-dir", str(markers)])})

    def call(name: str):  # type: ignore[no-untyped-def]
        return lambda req, n: Reply(text="marking", tool_calls=(ToolCall("c1", "mcp:local/touch", {"name": name}),)
                                    ) if n == 0 else Reply(text="done")

    provider = ScriptedProvider({(3, "T1"): call("approved.marker"), (3, "T2"): call("rejected.marker")})
    c = make_controller(make_session(tmp_path, provider, cfg))
    p = app_factory(c).pilot
    plan(p)
    seen: dict[str, str] = {}

    def decide(ticket: str) -> None:
        def mine() -> list:  # type: ignore[type-arg]
            return [r for r in p.pending("tool") if r.prov.ticket_id == ticket]

        # other tickets' approvals are answered meanwhile; this ticket's MCP call is held for us to open
        answer_until(p, lambda: bool(mine()), timeout=30, hold={("tool", "T1"), ("tool", "T2")})
        (req,) = mine()
        assert tool_of(req).tool == "mcp:local/touch"
        p.open_approval("tool", req.id)
        seen[ticket] = p.value(tags.TOOL_MCP)
        result = p.approve("tool", req.id) if ticket == "T1" else p.reject("tool", "no marker here", req.id)
        assert result == ""

    decide("T1")
    decide("T2")
    assert seen["T1"].startswith("server: local    tool: touch") and "timeout: 60.0 s" in seen["T1"]
    answer_until(p, lambda: (markers / "approved.marker").exists(), timeout=30)
    assert not (markers / "rejected.marker").exists()
