"""OpenAI-compatible chat completions (OpenAI, Ollama's /v1, llama.cpp's server, vLLM) on the official `openai`
SDK (3.57.0, an optional extra), one long-lived client per endpoint, imported on first use.

    provider = OpenAICompatProvider(resolve_endpoint(cfg, "local", os.environ))

Each call iterates the RAW chunks of `chat.completions.create(stream=True)` (the SDK's `.stream()` helper
breaks on `choices: null` and on tool calls without an index) and never runs a tool: calls go back to our
gate as ToolCallChunk. The endpoint's compatibility profile decides (and learns):
- `stream_options.include_usage` is always asked for; an endpoint that answers 400 is asked again once
  without it, and remembered. Usage it never reports is estimated and marked `estimated`;
- tool calls that an endpoint does not stream: a request with tools goes unstreamed where configured, and a
  streamed request answered with one JSON completion is read as such (and remembered);
- a JSON schema for structured answers where accepted, else the schema in the instructions (we validate
  and repair in `tiers.structured` either way); an endpoint that answers 400 to the schema is asked again
  with instructions, and remembered; `reasoning_effort` where accepted (api.openai.com).

Errors are translated once, here (`openai_mapping.translate_exception`). The SDK's own retries are off: our
retry layer (tiers/call.py) handles 429 (with the server's retry-after), 5xx and broken streams alike.
Cancellation and deadlines: checked between chunks, and the Gemini provider's watcher cuts the socket of a
stream that is cancelled or past its deadline while the model is silent.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from conductor.errors import BadRequest, CallTimeout, Cancelled, ProviderError, StreamInterrupted
from conductor.providers import openai_mapping as om
from conductor.providers.base import (
    ProviderEvent,
    ProviderRequest,
    UsageChunk,
)
from conductor.providers.compat import EndpointProfile, estimate_usage
from conductor.providers.endpoint_provider import EndpointProvider
from conductor.providers.endpoints import OWN_HOSTS, Endpoint
from conductor.providers.gemini import _on_response, _Slot

log = logging.getLogger(__name__)


class OpenAICompatProvider(EndpointProvider):
    """One OpenAI-compatible endpoint. Safe to use from several worker threads at once."""

    def __init__(self, endpoint: Endpoint, *, http_timeout_s: float = 120.0,
                 profile: EndpointProfile | None = None) -> None:
        name = f"openai:{endpoint.name}" if endpoint.name != "openai" else "openai"
        super().__init__(endpoint, name=name, http_timeout_s=http_timeout_s, profile=profile)

    def _new_client(self, key: str) -> Any:
        import openai

        return openai.OpenAI(
            api_key=key, base_url=self.base_url, max_retries=0, timeout=self.http_timeout_s,
            http_client=openai.DefaultHttpxClient(event_hooks={"response": [_on_response]}))

    # -- what the profile says for this request --

    def _reasoning(self) -> bool:
        if self.profile.reasoning is not None:
            return self.profile.reasoning
        return (urlsplit(self.base_url).hostname or "") == OWN_HOSTS["openai"]

    def _kwargs(self, request: ProviderRequest, model: str, *, json_schema: bool | None = None) -> dict[str, Any]:
        schema = self.profile.json_schema is not False if json_schema is None else json_schema
        kw = om.request_kwargs(request, model, json_schema=schema,
                               reasoning=self._reasoning(), max_tokens=request.max_output_tokens)
        if request.timeout_s is not None and request.timeout_s < self.http_timeout_s:
            kw["timeout"] = max(request.timeout_s, 0.001)  # also bounds a server silent before its headers
        return kw

    # -- streaming --

    def stream(self, request: ProviderRequest, cancel: threading.Event) -> Iterator[ProviderEvent]:
        """Stream one call (see `conductor.providers.base`). Raises Cancelled, or a ProviderError subclass."""
        if cancel.is_set():
            raise Cancelled(f"cancelled before the {self.name} request was sent")
        client = self._sdk()
        model = request.model
        turn = om.ChatAssembler(request, model)
        deadline = time.monotonic() + request.timeout_s if request.timeout_s else None
        streamed = not (request.tools and self.profile.stream_tools is False)
        failure: ProviderError | None = None
        with self._watcher.track(cancel, deadline) as slot:
            try:
                body = self._open_learning(client, request, streamed)
                if isinstance(body, dict):  # one whole completion: unstreamed, or the endpoint ignored stream
                    yield from turn.feed(body)
                else:
                    try:
                        for chunk in body:
                            self._check_stop(cancel, slot, request, turn)
                            yield from turn.feed(chunk.to_dict(exclude_none=True))
                    finally:
                        body.close()
            except (Cancelled, ProviderError):
                raise
            except Exception as exc:  # noqa: BLE001 — the SDK and httpx2 raise many kinds; all are translated here
                self._check_stop(cancel, slot, request, turn)
                # A request refused before its stream (429, 5xx, 4xx) used no tokens: no usage, not even an estimate.
                usage = self._usage_so_far(request, turn) if slot.started else None
                failure = self._translate(exc, mid_stream=slot.started, usage=usage)
        if failure is not None:
            raise failure  # outside the except: no __context__ chain to the SDK error (it holds the request)
        self._check_stop(cancel, slot, request, turn)
        yield from self._close_turn(request, turn)

    def _plain_bad_request(self, exc: BaseException) -> bool:
        """A 400/422 that is not a context, safety or auth error: possibly a parameter the endpoint refuses."""
        return getattr(exc, "status_code", None) in (400, 422) and type(
            self._translate(exc, mid_stream=False, usage=None)) is BadRequest

    def _open_learning(self, client: Any, request: ProviderRequest, streamed: bool) -> Any:
        """`_open`, and when a structured request's JSON schema is refused (a plain 400) by an endpoint whose
        profile does not say, once more with the schema in the instructions instead (and remembered)."""
        kwargs = self._kwargs(request, request.model)
        try:
            return self._open(client, kwargs, streamed, request)
        except Exception as exc:
            if not ("response_format" in kwargs and self.profile.json_schema is None and self._plain_bad_request(exc)):
                raise
        body = self._open(client, self._kwargs(request, request.model, json_schema=False), streamed, request)
        self.profile.learn("json_schema", False, "the endpoint answered 400 to a json_schema response_format")
        return body

    def _open(self, client: Any, kwargs: dict[str, Any], streamed: bool, request: ProviderRequest) -> Any:
        """The chunk stream, or a completion dict. Asks for usage in the stream unless the endpoint refused it;
        a 400 to that is answered by asking once more without it (and remembering)."""
        if not streamed:
            return client.chat.completions.create(**kwargs, stream=False).to_dict(exclude_none=True)
        ask_usage = self.profile.stream_usage is not False
        options: dict[str, Any] = {}
        if ask_usage:
            options["stream_options"] = {"include_usage": True}
            if self.profile.continuous_usage:
                options["stream_options"]["continuous_usage_stats"] = True
        try:
            raw = client.chat.completions.with_raw_response.create(**kwargs, **options, stream=True)
        except Exception as exc:
            # Only a plain "bad request" may be the endpoint refusing stream_options; a context, safety or
            # auth error is what it says, and is not asked twice.
            refused = ask_usage and self.profile.stream_usage is None and self._plain_bad_request(exc)
            if not refused:
                raise
            log.info("%s refused stream_options (%s); asking again without it", self.name, type(exc).__name__)
            raw = client.chat.completions.with_raw_response.create(**kwargs, stream=True)
            self.profile.learn("stream_usage", False, "the endpoint answered 400 to stream_options.include_usage")
        ctype = (raw.headers.get("content-type") or "").lower()
        if "json" in ctype:  # the endpoint did not stream (old Ollama with tools): one whole completion
            data = json.loads(raw.http_response.read())
            if request.tools:
                self.profile.learn("stream_tools", False, "a streamed request with tools came back unstreamed")
            return data
        return raw.parse()

    def _usage_so_far(self, request: ProviderRequest, turn: om.ChatAssembler) -> Any:
        """Usage for a call that broke: the last counts seen (partial), else an estimate (partial, estimated)."""
        if turn.usage is not None:
            return turn.partial_usage()
        return estimate_usage(request, request.model, "".join(turn.text) + "".join(turn.reasoning), partial=True)

    def _close_turn(self, request: ProviderRequest, turn: om.ChatAssembler) -> Iterator[ProviderEvent]:
        try:
            finish, calls = turn.finish()
        except StreamInterrupted as exc:
            exc.usage = self._usage_so_far(request, turn)
            raise
        yield from calls
        if turn.usage is None:  # the endpoint reported none: estimate, and say so
            yield UsageChunk(estimate_usage(request, request.model, finish.message))
        yield finish

    def _check_stop(self, cancel: threading.Event, slot: _Slot, request: ProviderRequest,
                    turn: om.ChatAssembler) -> None:
        if cancel.is_set():
            raise Cancelled(f"{self.name} call cancelled ({request.prov.describe() or request.model})")
        if slot.cut == "deadline" or (slot.deadline is not None and time.monotonic() > slot.deadline):
            raise CallTimeout(f"the {self.name} call exceeded its {request.timeout_s:g}s deadline",
                              usage=self._usage_so_far(request, turn))

    # -- other endpoints --

    def list_models(self) -> list[str]:
        """Model ids the endpoint lists; [] (and a log line saying why) on any failure."""
        try:
            return sorted(m.id for m in self._sdk().models.list())
        except Exception as exc:  # noqa: BLE001 — listing is a nicety: never fail the caller
            err = om.translate_exception(exc, who=self._who, key_env=self.endpoint.key_env, mid_stream=False,
                                         secrets=self._secrets())
            log.warning("could not list the models of %s (%s)", self.endpoint.describe(), err)
            return []
