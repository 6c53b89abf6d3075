"""One small interface to models.

A `ProviderRequest` goes in; `Provider.stream` yields `TextChunk`, `ToolCallChunk` and `UsageChunk` events
and ends with exactly one `Finish` — or raises a `conductor.errors.ProviderError` subclass. Finish reasons
are data (`stop`, `tool_calls`, `max_tokens`, `safety`, `other`); the caller decides what they mean.
Usage chunks are cumulative: the last one seen is the call's usage.

Cancellation: providers check `cancel` between chunks (and while waiting) and raise `Cancelled`.
"""

from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

from conductor.errors import NetworkForbidden
from conductor.events import Provenance
from conductor.messages import Message, ToolCall, ToolSpec
from conductor.model import Usage

FinishReason = Literal["stop", "tool_calls", "max_tokens", "safety", "other"]


@dataclass(frozen=True)
class ProviderRequest:
    model: str
    tier: int
    system: str
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    response_schema: type[BaseModel] | None = None
    """Planning tiers (1, 2) and QA (4) ask for JSON of this shape; we validate it again ourselves."""
    thinking: str = "off"
    """off | minimal | low | medium | high (mapped per model family by the provider)."""
    max_output_tokens: int | None = None
    timeout_s: float | None = None
    prov: Provenance = field(default_factory=Provenance)


@dataclass(frozen=True)
class TextChunk:
    text: str
    thought: bool = False


@dataclass(frozen=True)
class ToolCallChunk:
    call: ToolCall


@dataclass(frozen=True)
class UsageChunk:
    usage: Usage
    """Cumulative for this call so far (replace, never add)."""


@dataclass(frozen=True)
class Finish:
    reason: FinishReason
    message: Message
    """The model's whole turn, to append to the conversation as is."""
    detail: str = ""
    """Provider detail: a block reason, a finish message."""


ProviderEvent = TextChunk | ToolCallChunk | UsageChunk | Finish


class Provider(ABC):
    """A model backend. Implementations must be safe to call from several worker threads at once."""

    name: str = "provider"
    offline: bool = False
    """True when no network is involved (scripted)."""

    @abstractmethod
    def stream(self, request: ProviderRequest, cancel: threading.Event) -> Iterator[ProviderEvent]:
        """Stream one model call. See the module docstring for the contract."""

    def list_models(self) -> list[str]:
        """Models this provider can offer, beyond the config's list (empty when unknown)."""
        return []

    def close(self) -> None:  # noqa: B027 — an optional hook: most providers hold nothing to close
        """Release connections. Called once at shutdown."""


# --- the global "no real model requests" switch (tests turn it off; a forgotten fake then fails loudly) ---

_allow_real_requests = True
_switch_lock = threading.Lock()


def allow_real_model_requests() -> bool:
    return _allow_real_requests


def set_allow_real_model_requests(allowed: bool) -> None:
    global _allow_real_requests
    with _switch_lock:
        _allow_real_requests = allowed


@contextlib.contextmanager
def real_model_requests(allowed: bool) -> Iterator[None]:
    before = _allow_real_requests
    set_allow_real_model_requests(allowed)
    try:
        yield
    finally:
        set_allow_real_model_requests(before)


def check_allow_real_model_requests(target: str) -> None:
    """Called by a provider before it contacts a real (non-loopback) endpoint."""
    if not _allow_real_requests:
        raise NetworkForbidden(f"real model requests are disabled here (attempted: {target}); "
                               "use the scripted provider or the fake Gemini server")
