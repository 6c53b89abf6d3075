"""Build a provider by name. No SDK is imported here: each is imported on its provider's first request.

`gemini` with every tier on a bare Gemini model is the plain Gemini provider. Anything else — another default
endpoint (`openai`, `anthropic`, a configured one), or tiers naming `endpoint:model` — is a RoutingProvider
that sends each request to its model's endpoint.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from conductor.config import Config, parse_config, split_model_ref
from conductor.providers.base import Provider

PROVIDERS = ("gemini", "scripted", "openai", "anthropic")
"""Built-in choices; a configured endpoint's name works as well."""
"""Points the Gemini provider at another endpoint (the fake server in tests and offline demos)."""


def api_key_present(env: os._Environ[str] | dict[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return bool(env.get("GOOGLE_API_KEY") or env.get("GEMINI_API_KEY"))


def uses_endpoints(cfg: Config) -> bool:
    """True when some tier or ladder rung names an endpoint (`endpoint:model`)."""
    return any(split_model_ref(ref)[0] is not None for _, ref in cfg.model_refs())


def with_model_everywhere(cfg: Config, model: str, provider: str = "gemini") -> Config:
    """`--provider P --model NAME`: every tier and every ladder rung on that model of that endpoint. The name is
    qualified as `P:NAME` (so an Ollama tag's colon, `llama3.1:8b`, is never read as an endpoint), and the result
    is validated like a config file (a bad name is a ConfigError naming the key)."""
    ref = model if provider in ("gemini", "scripted") or model.startswith(f"{provider}:") else f"{provider}:{model}"
    data = cfg.model_dump(mode="python")
    data["models"].update({"tier1": ref, "tier2": ref, "tier3": ref, "tier4": ref, "ladder": [ref]})
    return parse_config(data, source="--model")


def make_provider(name: str, cfg: Config, *, latency_s: float = 0.0, chunk_delay_s: float = 0.0,
                  env: Mapping[str, str] | None = None, base_url: str | None = None) -> Provider:
    """'scripted' (offline, deterministic), 'gemini', 'openai', 'anthropic' or a configured endpoint's name
    (the default endpoint for bare model names). Raises MissingApiKey naming the missing variable(s)."""
    if name == "scripted":
        from conductor.providers.scripted import ScriptedProvider
        return ScriptedProvider(latency_s=latency_s, chunk_delay_s=chunk_delay_s)
    env = os.environ if env is None else env
    if name == "gemini" and not uses_endpoints(cfg):
        from conductor.launch import check_config_endpoint, env_base_url
        from conductor.providers.gemini import GeminiProvider
        url = base_url or env_base_url(env)  # named by the person: trusted
        if url is None:
            check_config_endpoint(cfg, "config")  # from a file: Google's host or this machine only
        return GeminiProvider.from_env(cfg, environ=env, base_url=url)
    if name not in cfg.endpoint_names():
        raise ValueError(f"unknown provider {name!r}; choose one of {', '.join(PROVIDERS)} or a configured "
                         f"endpoint ({', '.join(sorted(set(cfg.endpoints))) or 'none configured'})")
    from conductor.providers.router import RoutingProvider
    return RoutingProvider(cfg, env=env, default_endpoint=name, cli_base_url=base_url)
