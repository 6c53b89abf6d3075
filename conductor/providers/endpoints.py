"""Where a named endpoint is and which key it gets — decided once, here, from config + environment + CLI.

The trust rule (`key_may_be_sent`): an API key goes only to its provider's own host or to loopback, unless
the person named the base URL on the command line or in the environment. A base URL that came from a
config file (which a workspace might have planted) never receives a key for another host.

Sources, strongest first: the command line (`--base-url`), the environment (`CONDUCTOR_<NAME>_BASE_URL` for
any endpoint; the SDKs' own `OPENAI_BASE_URL` / `ANTHROPIC_BASE_URL` for the built-in `openai` / `anthropic`
endpoints, `CONDUCTOR_GEMINI_BASE_URL` for `gemini`), the config's `base_url`, the provider's own host.
Keys come from the environment only: the endpoint's `api_key_env`, or for the built-ins the SDK's variable
(`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, `GEMINI_API_KEY` / `GOOGLE_API_KEY`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from conductor.config import BUILTIN_ENDPOINTS, CompatConfig, Config, EndpointConfig, EndpointKind
from conductor.errors import ConfigError, MissingApiKey

UrlSource = Literal["default", "cli", "env", "config"]
OWN_HOSTS: dict[EndpointKind, str] = {"gemini": "generativelanguage.googleapis.com", "openai": "api.openai.com",
                                      "anthropic": "api.anthropic.com"}
DEFAULT_URLS: dict[EndpointKind, str] = {"gemini": "https://generativelanguage.googleapis.com/",
                                         "openai": "https://api.openai.com/v1",
                                         "anthropic": "https://api.anthropic.com"}
SDK_URL_ENV = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL", "gemini": "CONDUCTOR_GEMINI_BASE_URL"}
SDK_KEY_ENV = {"openai": ("OPENAI_API_KEY",), "anthropic": ("ANTHROPIC_API_KEY",),
               "gemini": ("GOOGLE_API_KEY", "GEMINI_API_KEY")}
NO_KEY = "no-key"
"""Sent to keyless (local) endpoints: the SDKs insist on some key, and must never fall back to the environment's."""


class Secret:
    """Holds an API key; its repr and str never show it, and it refuses to be pickled."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __reduce__(self) -> tuple[()]:
        raise TypeError("an API key cannot be pickled")


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def key_may_be_sent(kind: EndpointKind, base_url: str, source: UrlSource) -> bool:
    """THE trust rule: may this kind's API key be sent to `base_url`, named by `source`?"""
    if source in ("cli", "env", "default"):
        return True
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https"):
        return False
    if is_loopback(base_url):
        return True
    return parts.scheme == "https" and (parts.hostname or "").lower() == OWN_HOSTS[kind]


@dataclass(frozen=True)
class Endpoint:
    """A resolved endpoint: where requests go and with which key (None: send none)."""

    name: str
    kind: EndpointKind
    base_url: str
    url_source: UrlSource
    key: Secret | None
    key_env: str | None
    """The variable the key came from (or should come from), for messages."""
    free: bool
    compat: CompatConfig
    models: tuple[str, ...]

    @property
    def local(self) -> bool:
        return is_loopback(self.base_url)

    def describe(self) -> str:
        return f"endpoint {self.name!r} ({self.kind}, {self.base_url})"


def _env_url_name(name: str) -> str:
    return f"CONDUCTOR_{name.upper().replace('-', '_')}_BASE_URL"


def resolve_endpoint(cfg: Config, name: str, env: Mapping[str, str], *, cli_base_url: str | None = None,
                     require_key: bool = True) -> Endpoint:
    """The endpoint named `name`, its URL and key. Raises MissingApiKey (naming the variable) when it needs a
    key that is not set, and ConfigError when a config-file URL would receive a key for another host."""
    ep: EndpointConfig = cfg.endpoint(name)
    kind = ep.kind
    url, source = _base_url(name, ep, env, cli_base_url)
    key_env, key = _key(name, ep, env)
    if key is not None and not key_may_be_sent(kind, url, source):
        raise ConfigError(
            f"endpoint {name!r}: refusing to send the key from ${key_env} to {urlsplit(url).hostname} — that "
            f"base URL comes from the config file, and a key goes only to {OWN_HOSTS[kind]} or to this machine. "
            f"If you trust it, name it yourself: `export {_env_url_name(name)}={url}` (or --base-url)",
            key=f"endpoints.{name}.base_url")
    needs_key = (name in BUILTIN_ENDPOINTS and ep.api_key_env is None and not is_loopback(url)) \
        or ep.api_key_env is not None
    if key is None and needs_key and require_key:
        raise MissingApiKey(f"endpoint {name!r} needs an API key: set ${key_env} in the environment "
                            f"(`export {key_env}=...`)")
    return Endpoint(name=name, kind=kind, base_url=url, url_source=source, key=key, key_env=key_env, free=ep.free,
                    compat=ep.compat, models=tuple(ep.models))


def _base_url(name: str, ep: EndpointConfig, env: Mapping[str, str], cli: str | None) -> tuple[str, UrlSource]:
    if cli:
        return cli, "cli"
    for var in (_env_url_name(name), SDK_URL_ENV.get(name) if name in BUILTIN_ENDPOINTS else None):
        if var and (env.get(var) or "").strip():
            return env[var].strip(), "env"
    if ep.base_url:
        return ep.base_url, "config"
    return DEFAULT_URLS[ep.kind], "default"


def _key(name: str, ep: EndpointConfig, env: Mapping[str, str]) -> tuple[str | None, Secret | None]:
    names: tuple[str, ...] = (ep.api_key_env,) if ep.api_key_env else (
        SDK_KEY_ENV[ep.kind] if name in BUILTIN_ENDPOINTS else ())
    for var in names:
        value = (env.get(var) or "").strip()
        if value:
            return var, Secret(value)
    return (names[-1] if names else None), None


def missing_keys(cfg: Config, env: Mapping[str, str], default_endpoint: str = "gemini") -> list[str]:
    """One line per tier (and ladder) whose endpoint cannot be used, saying which key is missing for which
    tier — what the GUI's no-key state shows."""
    from conductor.config import split_model_ref

    problems: dict[str, list[str]] = {}
    for key, ref in cfg.model_refs():
        endpoint = split_model_ref(ref)[0] or default_endpoint
        try:
            resolve_endpoint(cfg, endpoint, env)
        except (MissingApiKey, ConfigError) as exc:
            problems.setdefault(str(exc), []).append(key.removeprefix("models."))
    return [f"{', '.join(where)}: {why}" for why, where in problems.items()]
