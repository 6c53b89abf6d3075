"""Build a provider by name. The Gemini SDK is imported only when a Gemini provider is actually built."""

from __future__ import annotations

import os

from conductor.config import Config
from conductor.providers.base import Provider

PROVIDERS = ("gemini", "scripted")
BASE_URL_ENV = "CONDUCTOR_GEMINI_BASE_URL"
"""Points the Gemini provider at another endpoint (the fake server in tests and offline demos)."""


def api_key_present(env: os._Environ[str] | dict[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return bool(env.get("GOOGLE_API_KEY") or env.get("GEMINI_API_KEY"))


def make_provider(name: str, cfg: Config, *, latency_s: float = 0.0, chunk_delay_s: float = 0.0,
                  base_url: str | None = None) -> Provider:
    """'scripted' (offline, deterministic) or 'gemini' (needs GEMINI_API_KEY / GOOGLE_API_KEY).

    The Gemini endpoint: `base_url` (the command line), else $CONDUCTOR_GEMINI_BASE_URL or $GOOGLE_GEMINI_BASE_URL,
    else the config's `gemini.base_url` only when it is Google's or this machine's (ConfigError otherwise: a
    config file must not send the key elsewhere), else Google's."""
    if name == "scripted":
        from conductor.providers.scripted import ScriptedProvider
        return ScriptedProvider(latency_s=latency_s, chunk_delay_s=chunk_delay_s)
    if name == "gemini":
        from conductor.launch import check_config_endpoint, env_base_url
        from conductor.providers.gemini import GeminiProvider
        url = base_url or env_base_url()
        if url is None:
            check_config_endpoint(cfg, "config")
        return GeminiProvider.from_env(cfg, base_url=url)
    raise ValueError(f"unknown provider {name!r}; choose one of {', '.join(PROVIDERS)}")
