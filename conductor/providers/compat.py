"""A per-endpoint compatibility profile (configured or learned) and the usage estimate for endpoints that
report none.

An endpoint's profile starts from its `[endpoints.<name>.compat]` settings; a setting left unset (None) is
tried the standard way and, when the endpoint refuses it, learned for the rest of the run (e.g. a 400 for
`stream_options` turns `stream_usage` off; a streamed request with tools answered as one JSON body turns
`stream_tools` off). Thread-safe: several workers share one profile.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field

from conductor.config import CompatConfig
from conductor.messages import Message
from conductor.model import Usage
from conductor.providers.base import ProviderRequest

log = logging.getLogger(__name__)
CHARS_PER_TOKEN = 4
"""The estimate's ratio. Rough on purpose: an estimated count is marked as such and never passes for exact."""


@dataclass
class EndpointProfile:
    """What one endpoint accepts. `None` = not known yet (try the standard behaviour)."""

    name: str
    stream_usage: bool | None = None
    continuous_usage: bool = False
    stream_tools: bool | None = None
    json_schema: bool | None = None
    reasoning: bool | None = None
    thinking: str = "auto"
    max_tokens: int = 8192
    learned: dict[str, str] = field(default_factory=dict)
    """What was learned this run, and why (shown in logs and tests)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_config(cls, name: str, c: CompatConfig) -> EndpointProfile:
        return cls(name=name, stream_usage=c.stream_usage, continuous_usage=c.continuous_usage,
                   stream_tools=c.stream_tools, json_schema=c.json_schema, reasoning=c.reasoning,
                   thinking=c.thinking, max_tokens=c.max_tokens)

    def learn(self, setting: str, value: bool, why: str) -> None:
        with self._lock:
            if getattr(self, setting) == value:
                return
            setattr(self, setting, value)
            self.learned[setting] = why
        log.warning("endpoint %r: %s = %s from now on (%s)", self.name, setting, value, why)


def _chars(obj: object) -> int:
    return len(obj) if isinstance(obj, str) else len(json.dumps(obj, default=str))


def prompt_chars(request: ProviderRequest) -> int:
    msgs = sum(_chars(m.text) + _chars([c.to_json() for c in m.tool_calls])
               + _chars([r.for_model() for r in m.tool_results]) for m in request.messages)
    tools = sum(_chars(t.parameters) + len(t.name) + len(t.description) for t in request.tools)
    return len(request.system) + msgs + tools


def estimate_usage(request: ProviderRequest, model: str, output: Message | str, *, partial: bool = False) -> Usage:
    """Usage counted locally (≈ 4 characters a token), for an endpoint that reported none.

    Never zero — a call that happened cost something — and always marked `estimated`."""
    out = len(output) if isinstance(output, str) else (
        len(output.text) + (_chars([c.to_json() for c in output.tool_calls]) if output.tool_calls else 0))
    return Usage(model=model, prompt_tokens=max(1, prompt_chars(request) // CHARS_PER_TOKEN),
                 output_tokens=max(1, out // CHARS_PER_TOKEN), estimated=True, partial=partial)
