"""One provider in front of many endpoints: each request goes to the endpoint its model names.

A tier or ladder rung names `endpoint:model` (`anthropic:claude-sonnet-4-5`, `local:llama3.1:8b`); a bare name
goes to the default endpoint (`gemini`, or the one `--provider` chose). So Tier 1 on Gemini, Tier 2 on
Anthropic, Tier 3 on a local server and Tier 4 on OpenAI run in one session. Each endpoint's provider (and
SDK) is built on its first request and kept; usage comes back under the name the config used, so the
ledger and the price table see `anthropic:claude-sonnet-4-5`, not a bare name that another endpoint might
share.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import replace

from conductor.config import Config, split_model_ref
from conductor.errors import ConfigError, MissingApiKey, ProviderError
from conductor.providers.base import Provider, ProviderEvent, ProviderRequest, UsageChunk
from conductor.providers.endpoints import NO_KEY, Endpoint, missing_keys, resolve_endpoint


def build_endpoint_provider(cfg: Config, endpoint: Endpoint) -> Provider:
    """The provider for one resolved endpoint (its SDK is imported on its first request, not here)."""
    match endpoint.kind:
        case "openai":
            from conductor.providers.openai_compat import OpenAICompatProvider
            return OpenAICompatProvider(endpoint, http_timeout_s=cfg.gemini.http_timeout_s)
        case "anthropic":
            from conductor.providers.anthropic_provider import AnthropicProvider
            return AnthropicProvider(endpoint, http_timeout_s=cfg.gemini.http_timeout_s)
        case "gemini":
            from conductor.providers.gemini import GeminiProvider
            key = endpoint.key.reveal() if endpoint.key is not None else NO_KEY
            return GeminiProvider(cfg, api_key=key, base_url=endpoint.base_url)


class RoutingProvider(Provider):
    """Dispatches each request to the endpoint named by its model. Thread-safe."""

    name = "router"

    def __init__(self, cfg: Config, *, env: Mapping[str, str] | None = None, default_endpoint: str = "gemini",
                 cli_base_url: str | None = None) -> None:
        """Raises MissingApiKey (one line per tier whose key is missing) or ConfigError (an untrusted URL)."""
        self.cfg = cfg
        self.env = dict(os.environ if env is None else env)
        self.default_endpoint = default_endpoint
        self.cli_base_url = cli_base_url
        problems = missing_keys(cfg, self.env, default_endpoint)
        if problems:
            raise MissingApiKey("cannot use every endpoint the tiers name — " + "; ".join(problems))
        self.endpoints: dict[str, Endpoint] = {}
        for _, ref in cfg.model_refs():
            name = split_model_ref(ref)[0] or default_endpoint
            if name not in self.endpoints:
                self.endpoints[name] = self._resolve(name)
        self.offline = all(e.local for e in self.endpoints.values())
        self._providers: dict[str, Provider] = {}
        self._lock = threading.Lock()

    def _resolve(self, name: str) -> Endpoint:
        cli = self.cli_base_url if name == self.default_endpoint else None
        return resolve_endpoint(self.cfg, name, self.env, cli_base_url=cli)

    def __repr__(self) -> str:
        return f"RoutingProvider(default={self.default_endpoint!r}, endpoints={sorted(self.endpoints)})"

    def provider_for(self, endpoint: str) -> Provider:
        with self._lock:
            p = self._providers.get(endpoint)
            if p is None:
                ep = self.endpoints.get(endpoint)
                if ep is None:  # a model named at run time (a ticket's override): resolve it now
                    ep = self.endpoints[endpoint] = self._resolve(endpoint)
                p = self._providers[endpoint] = build_endpoint_provider(self.cfg, ep)
            return p

    def stream(self, request: ProviderRequest, cancel: threading.Event) -> Iterator[ProviderEvent]:
        endpoint, model = split_model_ref(request.model)
        try:
            provider = self.provider_for(endpoint or self.default_endpoint)
        except ConfigError as exc:
            raise ProviderError(str(exc)) from None
        try:
            for ev in provider.stream(replace(request, model=model), cancel):
                if isinstance(ev, UsageChunk):  # the ledger keeps the name the config used
                    ev = UsageChunk(ev.usage.model_copy(update={"model": request.model}))
                yield ev
        except ProviderError as exc:
            if exc.usage is not None:
                exc.usage = exc.usage.model_copy(update={"model": request.model})
            raise

    def list_models(self) -> list[str]:
        """Every endpoint's models, as `endpoint:model` (bare on the default endpoint)."""
        out: list[str] = []
        for name in sorted(self.endpoints):
            prefix = "" if name == self.default_endpoint else f"{name}:"
            ep = self.endpoints[name]
            models = [*ep.models, *self.provider_for(name).list_models()]
            out += [prefix + m for m in dict.fromkeys(models)]
        return out

    def close(self) -> None:
        with self._lock:
            providers, self._providers = list(self._providers.values()), {}
        for p in providers:
            p.close()
