"""What counts as a secret: environment variable names to strip from commands, values and patterns to redact.

Shared by the command runner (the child's environment never carries keys) and the comms log (no key is ever
written to disk). Deliberately broad: removing a harmless variable costs little, leaking a key costs a lot.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

_SECRET_NAME = re.compile(
    r"(?:^|_)(?:API_?KEYS?|KEYS?|TOKENS?|SECRETS?|PASSWORDS?|PASSWD|PASS|PWD_?HASH|CREDENTIALS?|CREDS|AUTH|"
    r"PRIVATE|SESSION|COOKIE|SIGNATURE|DSN)(?:_|$)")
_SECRET_PREFIXES = ("AWS_", "AZURE_", "GCP_", "GOOGLE_", "GEMINI_", "OPENAI_", "ANTHROPIC_", "GITHUB_", "GH_",
                    "GITLAB_", "HF_", "HUGGING", "NPM_", "PYPI_", "TWINE_", "DOCKER_", "VAULT_", "SLACK_", "STRIPE_")
_KEEP = frozenset({"PWD", "OLDPWD", "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TERM", "TMPDIR", "TZ"})

SECRET_PATTERNS = (
    re.compile(r"AIza[0-9A-Za-z_\-]{35}"),                       # Google API keys
    re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{20,}"),      # OpenAI / Anthropic style
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),                 # GitHub tokens
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),              # Slack tokens
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),                         # AWS access key ids
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
)
REDACTED = "[REDACTED]"
MIN_SECRET_LEN = 8
"""Shorter env values are not redacted as text: 'on' or '1' would mangle every log line."""


def is_secret_env_name(name: str) -> bool:
    """True for GEMINI_API_KEY, GOOGLE_API_KEY, *_API_KEY, *_TOKEN, *_SECRET, AWS_*, passwords, ..."""
    up = name.upper()
    if up in _KEEP:
        return False
    return bool(_SECRET_NAME.search(up)) or up.startswith(_SECRET_PREFIXES)


def scrubbed_env(base: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment without secret-looking variables (and without SSH agent access)."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not is_secret_env_name(k)}
    env.pop("SSH_AUTH_SOCK", None)
    env.update(extra or {})
    return env


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """Values of secret-looking variables long enough to redact, longest first (so a key that contains
    another is replaced whole)."""
    vals = {v for k, v in (os.environ if env is None else env).items()
            if is_secret_env_name(k) and len(v) >= MIN_SECRET_LEN}
    return sorted(vals, key=len, reverse=True)


class Redactor:
    """Replaces known secret values and secret-looking patterns in text and in nested JSON data."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        vals = sorted({v for v in values if v and len(v) >= MIN_SECRET_LEN}, key=len, reverse=True)
        self._values_re = re.compile("|".join(re.escape(v) for v in vals)) if vals else None

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None) -> Redactor:
        return cls(secret_values(env))

    def text(self, s: str) -> str:
        if self._values_re is not None:
            s = self._values_re.sub(REDACTED, s)
        for pat in SECRET_PATTERNS:
            s = pat.sub(REDACTED, s)
        return s

    def data(self, obj: object) -> object:
        """A redacted copy of JSON-like data (dict keys are redacted too: a key can be a secret)."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.text(str(k)): self.data(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.data(v) for v in obj]
        return obj
