"""Anthropic's Messages API on the official `anthropic` SDK (2.14.0, an optional extra), imported on first use.

    provider = AnthropicProvider(resolve_endpoint(cfg, "anthropic", os.environ))

Each call streams `messages.create(stream=True)` and folds the raw events (`anthropic_mapping`): text,
thinking (kept verbatim with its signature for the next turn), tool_use blocks returned to our gate (never
executed here). Structured answers put the schema in the instructions (or `output_config.format` where the
endpoint profile says `json_schema = true`); we validate and repair either way. Usage = input + cache read +
cache creation + output (thinking included, split out where reported): exact, from message_start and the
cumulative message_delta. Errors are translated once (shared with the OpenAI provider); the SDK's retries
are off so ours (with the server's retry-after) handle 429/529/5xx and broken streams.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from conductor.errors import CallTimeout, Cancelled, ProviderError, StreamInterrupted
from conductor.providers import anthropic_mapping as am
from conductor.providers import openai_mapping as om
from conductor.providers.base import (
    ProviderEvent,
    ProviderRequest,
    UsageChunk,
)
from conductor.providers.compat import EndpointProfile, estimate_usage
from conductor.providers.endpoint_provider import EndpointProvider
from conductor.providers.endpoints import Endpoint
from conductor.providers.gemini import _on_response, _Slot

log = logging.getLogger(__name__)


class AnthropicProvider(EndpointProvider):
    """One Anthropic endpoint. Safe to use from several worker threads at once."""

    def __init__(self, endpoint: Endpoint, *, http_timeout_s: float = 120.0,
                 profile: EndpointProfile | None = None) -> None:
        name = "anthropic" if endpoint.name == "anthropic" else f"anthropic:{endpoint.name}"
        super().__init__(endpoint, name=name, http_timeout_s=http_timeout_s, profile=profile)

    def _new_client(self, key: str) -> Any:
        import anthropic

        return anthropic.Anthropic(
            api_key=key, base_url=self.base_url, max_retries=0, timeout=self.http_timeout_s,
            http_client=anthropic.DefaultHttpxClient(event_hooks={"response": [_on_response]}))

    def stream(self, request: ProviderRequest, cancel: threading.Event) -> Iterator[ProviderEvent]:
        if cancel.is_set():
            raise Cancelled(f"cancelled before the {self.name} request was sent")
        client = self._sdk()
        kwargs = am.request_kwargs(request, request.model, json_schema=self.profile.json_schema is True,
                                   thinking=self.profile.thinking, default_max_tokens=self.profile.max_tokens)
        if request.timeout_s is not None and request.timeout_s < self.http_timeout_s:
            kwargs["timeout"] = max(request.timeout_s, 0.001)  # also bounds a server silent before its headers
        turn = am.MessageAssembler(request, request.model)
        deadline = time.monotonic() + request.timeout_s if request.timeout_s else None
        failure: ProviderError | None = None
        with self._watcher.track(cancel, deadline) as slot:
            try:
                events = client.messages.create(**kwargs, stream=True)
                try:
                    for event in events:
                        self._check_stop(cancel, slot, request, turn)
                        yield from turn.feed(event.to_dict())
                finally:
                    events.close()
            except (Cancelled, ProviderError):
                raise
            except Exception as exc:  # noqa: BLE001 — the provider boundary: every SDK error is translated here, once
                self._check_stop(cancel, slot, request, turn)
                # A request refused before its stream (429, 5xx, 4xx) used no tokens: no usage, not even an estimate.
                usage = self._usage_so_far(request, turn) if slot.started else None
                failure = self._translate(exc, mid_stream=slot.started, usage=usage)
        if failure is not None:
            raise failure
        self._check_stop(cancel, slot, request, turn)
        try:
            finish, calls = turn.finish()
        except StreamInterrupted as exc:
            exc.usage = self._usage_so_far(request, turn)
            raise
        yield from calls
        if turn.usage is None:  # a compatible server that reports nothing: estimate, and say so
            yield UsageChunk(estimate_usage(request, request.model, finish.message))
        yield finish

    def _usage_so_far(self, request: ProviderRequest, turn: am.MessageAssembler) -> Any:
        if turn.usage is not None:
            return turn.partial_usage()
        text = "".join(b.get("text", "") + b.get("thinking", "") for b in turn.blocks.values())
        return estimate_usage(request, request.model, text, partial=True)

    def _check_stop(self, cancel: threading.Event, slot: _Slot, request: ProviderRequest,
                    turn: am.MessageAssembler) -> None:
        if cancel.is_set():
            raise Cancelled(f"{self.name} call cancelled ({request.prov.describe() or request.model})")
        if slot.cut == "deadline" or (slot.deadline is not None and time.monotonic() > slot.deadline):
            raise CallTimeout(f"the {self.name} call exceeded its {request.timeout_s:g}s deadline",
                              usage=self._usage_so_far(request, turn))

    def list_models(self) -> list[str]:
        try:
            return sorted(m.id for m in self._sdk().models.list())
        except Exception as exc:  # noqa: BLE001 — listing is a nicety: never fail the caller
            err = om.translate_exception(exc, who=self._who, key_env=self.endpoint.key_env, mid_stream=False,
                                         secrets=self._secrets())
            log.warning("could not list the models of %s (%s)", self.endpoint.describe(), err)
            return []
