"""Our tool names as every provider accepts them, and back.

Our names may contain ':' and '/' (MCP tools are `mcp:<server>/<tool>`). Function names on the wire are
stricter: Gemini takes letters, digits, '_', '.', ':' and '-' (no '/'), OpenAI and Anthropic only
`[A-Za-z0-9_-]{1,64}`. A request with one bad name is refused whole, so every provider sends `wire_name(name)`
(names that already fit everywhere, like `read_file`, are unchanged) and maps the names the model calls back
with `WireNames(request.tools).ours(name)`.

    mcp:files/read_text  ->  mcp_files_read_text_3f9a1c   (a short hash keeps two close names apart)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from conductor.messages import ToolSpec

MAX_LEN = 64
_FITS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_BAD = re.compile(r"[^A-Za-z0-9_-]")


def wire_name(name: str) -> str:
    """A function name every provider accepts; the same name always gives the same result."""
    if _FITS.match(name):
        return name
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:6]
    base = _BAD.sub("_", name)
    if not re.match(r"[A-Za-z_]", base):
        base = "_" + base
    return f"{base[: MAX_LEN - 7]}_{digest}"


class WireNames:
    """The wire names of one request's tools, to map a called name back to ours."""

    def __init__(self, tools: Iterable[ToolSpec]) -> None:
        self._ours = {wire_name(t.name): t.name for t in tools}

    def ours(self, wire: str) -> str:
        """Our name for a name the model called; an unknown name is kept as it is (the gate reports it)."""
        return self._ours.get(wire, wire)
