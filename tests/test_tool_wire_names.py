"""Tool names on the wire: `mcp:<server>/<tool>` is not a legal function name for Gemini (no '/') nor for
OpenAI and Anthropic (`[A-Za-z0-9_-]{1,64}`), and one bad name makes the provider refuse the whole request.

Why: with an MCP server configured, every Tier 3 request carries such names; they must be sent in a form every
provider takes and come back as ours, so the gate finds the tool (and the approval names it as configured).
"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from conductor.events import Provenance
from conductor.messages import Message, ToolCall, ToolResult, ToolSpec, user
from conductor.providers import gemini_mapping as gm
from conductor.providers.base import ProviderRequest, ToolCallChunk
from conductor.providers.tool_names import WireNames, wire_name

STRICTEST = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")  # OpenAI/Anthropic charset, Gemini's first letter
OBJ = {"type": "object", "properties": {}}
MCP = ToolSpec("mcp:files/read.text", "Read a file.", OBJ, mutating=True)
READ = ToolSpec("read_file", "Read.", OBJ)


def test_names_that_fit_everywhere_are_unchanged() -> None:
    for name in ("read_file", "run_command", "git-diff", "_x", "a" * 64):
        assert wire_name(name) == name


@given(st.text(min_size=1, max_size=200))
def test_every_name_becomes_legal_everywhere_and_stays_stable(name: str) -> None:
    wire = wire_name(name)
    assert STRICTEST.match(wire), wire
    assert wire_name(name) == wire


def test_close_names_stay_apart() -> None:
    names = ["mcp:a/b_c", "mcp:a_b/c", "mcp:a/b/c", "mcp:a/b.c", "mcp:a/b-c", "mcp_a_b_c", "mcp:" + "x" * 100,
             "mcp:" + "x" * 100 + "y"]
    assert len({wire_name(n) for n in names}) == len(names)


def test_gemini_requests_send_wire_names_and_calls_come_back_as_ours() -> None:
    prior = (user("go"),
             Message(role="model", tool_calls=(ToolCall("c1", MCP.name, {"path": "a"}),)),
             Message(role="tool", tool_results=(ToolResult("c1", MCP.name, True, {"text": "hi"}),)))
    r = ProviderRequest(model="gemini-3.8-flash", tier=3, system="s", messages=prior, tools=(READ, MCP),
                        prov=Provenance(ticket_id="K1", attempt=1, tier=3))
    declared = [d["name"] for d in gm.config_kwargs(r)["tools"][0]["function_declarations"]]
    assert declared == ["read_file", wire_name(MCP.name)] and all(STRICTEST.match(n) for n in declared)
    contents = gm.to_contents(r.messages)
    assert contents[1]["parts"][0]["function_call"]["name"] == wire_name(MCP.name)
    assert contents[2]["parts"][0]["function_response"]["name"] == wire_name(MCP.name)

    turn = gm.TurnAssembler(r)
    events = turn.feed({"candidates": [{"content": {"parts": [
        {"function_call": {"id": "g1", "name": wire_name(MCP.name), "args": {"path": "b"}}},
        {"function_call": {"id": "g2", "name": "read_file", "args": {"path": "c"}}},
        {"function_call": {"id": "g3", "name": "no_such_tool", "args": {}}}]}, "finish_reason": "STOP"}]})
    calls = [e.call.name for e in events if isinstance(e, ToolCallChunk)]
    assert calls == [MCP.name, "read_file", "no_such_tool"]  # unknown names are left for the gate to report
    assert WireNames([MCP]).ours("other") == "other"
