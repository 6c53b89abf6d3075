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


def make_provider(name: str, cfg: Config, *, latency_s: float = 0.0, chunk_delay_s: float = 0.0) -> Provider:
    """'scripted' (offline, deterministic) or 'gemini' (needs GEMINI_API_KEY / GOOGLE_API_KEY)."""
    if name == "scripted":
        from conductor.providers.scripted import ScriptedProvider
        return ScriptedProvider(latency_s=latency_s, chunk_delay_s=chunk_delay_s)
    if name == "gemini":
        from conductor.providers.gemini import GeminiProvider
        base_url = os.environ.get(BASE_URL_ENV)
        if base_url:
            cfg = cfg.model_copy(update={"gemini": cfg.gemini.model_copy(update={"base_url": base_url})})
        return GeminiProvider.from_env(cfg)
    raise ValueError(f"unknown provider {name!r}; choose one of {', '.join(PROVIDERS)}")
