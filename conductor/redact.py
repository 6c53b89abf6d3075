"""The one redactor: what counts as a secret, how children are kept from it, and how every sink hides it.

Every place Conductor writes text a person or a file will see goes through this module: the journal
(`store.Journal.append`), snapshots and specs, ticket and planning outputs, raw planning answers, command spill
files and tool results (`tools.process`), the comms log, the CLI's lines and approval prompts, the GUI's panes
(through the view-model) and Python logging (`install_log_filter`).

What is a secret:
  * the value of every environment variable whose NAME looks secret: any `_`-separated part containing
    PASSWORD, PASSWD, SECRET, CREDENTIAL or APIKEY (so PGPASSWORD), a part that is or ends in KEY(S) or
    TOKEN(S) (GEMINI_API_KEY, GITHUB_TOKEN, SSHKEY), a part that is or ends in PWD or PASS (MYSQL_PWD, DBPASS;
    but never PWD/OLDPWD themselves), a part AUTH, COOKIE, SESSION, DSN or PRIVATE, plus whole
    provider families (AWS_*, GOOGLE_*, GEMINI_*, OPENAI_*, ...);
  * the credentials inside any variable's URL value, e.g. DATABASE_URL=postgres://user:pass@host/db (the
    password, and the whole URL, are secrets; the variable is removed from children);
  * key-shaped text wherever it appears (`AIza...`, `sk-...`, `ghp_...`, `xox.-`, `AKIA...`, PEM private keys,
    and `scheme://user:password@` in any text).

Child processes get none of these variables (`scrubbed_env`), and no SSH agent socket.
The process-wide redactor (`current()`) follows the environment: it is rebuilt whenever a variable changed
(checked by a ~1 µs fingerprint), so a secret set at any time before a write is known to every sink.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping

REDACTED = "[REDACTED]"
MIN_SECRET_LEN = 6
"""Shorter env values are not redacted as text: 'on', '1' or 'true' would mangle every line."""

_CONTAINS = ("PASSWORD", "PASSWD", "SECRET", "CREDENTIAL", "APIKEY")
_ENDS = ("KEY", "KEYS", "PWD", "PASS", "TOKEN", "TOKENS")
_EXACT_PARTS = frozenset({"AUTH", "COOKIE", "COOKIES", "SESSION", "DSN", "PRIVATE", "CREDS", "SIGNATURE"})
_SECRET_PREFIXES = ("AWS_", "AZURE_", "GCP_", "GOOGLE_", "GEMINI_", "OPENAI_", "ANTHROPIC_", "GITHUB_", "GH_",
                    "GITLAB_", "HF_", "HUGGING", "NPM_", "PYPI_", "TWINE_", "DOCKER_", "VAULT_", "SLACK_", "STRIPE_")
_KEEP = frozenset({"PWD", "OLDPWD", "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TERM", "TMPDIR", "TZ",
                   "DISPLAY", "XAUTHORITY", "WAYLAND_DISPLAY", "XDG_RUNTIME_DIR", "XDG_SESSION_TYPE",
                   "XDG_SESSION_ID", "XDG_SESSION_CLASS", "XDG_SESSION_DESKTOP", "KEYMAP", "XKB_DEFAULT_LAYOUT"})
_URL_CREDS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^\s/:@\"'<>]*):([^\s/@\"'<>]+)@")
"""scheme://user:password@ — the userinfo of a URL that carries a password."""

SECRET_PATTERNS = (
    re.compile(r"AIza[0-9A-Za-z_\-]{35}"),                       # Google API keys
    re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{20,}"),      # OpenAI / Anthropic style
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),                 # GitHub tokens
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{30,}"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),              # Slack tokens
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),                         # AWS access key ids
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
)
_ANCHORS: tuple[tuple[str, ...], ...] = (("AIza",), ("sk-",), ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
                                         ("github_pat_",), ("xox",), ("AKIA",), ("PRIVATE KEY-----",))
"""A literal each pattern's match contains: the regex runs only when one is present (a substring search is far
cheaper than a regex that starts with a word boundary), so command output is redacted at tens of MB/s."""
STREAM_CARRY = 8192
"""Bytes a stream redactor holds back so a secret split across two chunks is still caught (a PEM key block is
~3.3 kB; env values are far shorter)."""


def is_secret_env_name(name: str) -> bool:
    """True for GEMINI_API_KEY, PGPASSWORD, MYSQL_PWD, *_TOKEN, *_SECRET, AWS_*, ... (see the module doc)."""
    up = name.upper()
    if up in _KEEP:
        return False
    if up.startswith(_SECRET_PREFIXES):
        return True
    for part in up.split("_"):
        if not part:
            continue
        if any(c in part for c in _CONTAINS) or part.endswith(_ENDS) or part in _EXACT_PARTS:
            return True
    return False


def url_credentials(value: str) -> list[str]:
    """The passwords (and whole userinfo) inside URLs in `value`: postgres://u:p@h gives ['u:p', 'p']."""
    out: list[str] = []
    for m in _URL_CREDS.finditer(value):
        out += [f"{m.group(2)}:{m.group(3)}", m.group(3)]
    return out


def is_secret_env(name: str, value: str) -> bool:
    """A variable children must not see: a secret-looking name, or a value holding URL credentials."""
    return is_secret_env_name(name) or bool(_URL_CREDS.search(value))


def scrubbed_env(base: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment without secret variables (and without SSH agent access)."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not is_secret_env(k, v)}
    env.pop("SSH_AUTH_SOCK", None)
    env.update(extra or {})
    return env


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """Values to redact, longest first (so a key that contains another is replaced whole): every secret
    variable's value, and the credentials inside any variable's URLs."""
    vals: set[str] = set()
    for k, v in (os.environ if env is None else env).items():
        if is_secret_env_name(k):
            vals.add(v)
        for cred in url_credentials(v):
            vals.add(cred)
    return sorted((v for v in vals if len(v) >= MIN_SECRET_LEN), key=len, reverse=True)


class Redactor:
    """Replaces known secret values and secret-looking patterns in text, bytes and nested JSON data."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        vals = sorted({v for v in values if v and len(v) >= MIN_SECRET_LEN}, key=len, reverse=True)
        self.values: tuple[str, ...] = tuple(vals)
        self._values_re = re.compile("|".join(re.escape(v) for v in vals)) if vals else None
        # A value as it stands inside a JSON string (quotes, backslashes and control characters escaped).
        escaped = sorted({json.dumps(v, ensure_ascii=False)[1:-1] for v in vals} | set(vals), key=len, reverse=True)
        self._json_values_re = re.compile("|".join(re.escape(v) for v in escaped)) if vals else None
        self._values_bre = re.compile(b"|".join(re.escape(v.encode("utf-8")) for v in vals)) if vals else None
        self._patterns_b = tuple(re.compile(p.pattern.encode("ascii")) for p in SECRET_PATTERNS)
        self._url_b = re.compile(_URL_CREDS.pattern.encode("ascii"))
        self._anchors_b = tuple(tuple(a.encode("ascii") for a in group) for group in _ANCHORS)
        # One search for any anchor first: most text has none, and seven `any(...)` scans cost more than the
        # rest of redacting a short stream delta or journal line.
        self._any_anchor = re.compile("|".join(re.escape(a) for group in _ANCHORS for a in group))
        self._any_anchor_b = re.compile(self._any_anchor.pattern.encode("ascii"))

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None, extra: Iterable[str] = ()) -> Redactor:
        return cls([*secret_values(env), *extra])

    def text(self, s: str, *, _values: re.Pattern[str] | None = None) -> str:
        values = _values or self._values_re
        if values is not None:
            s = values.sub(REDACTED, s)
        if self._any_anchor.search(s) is not None:
            for pat, anchors in zip(SECRET_PATTERNS, _ANCHORS, strict=True):
                if any(a in s for a in anchors):
                    s = pat.sub(REDACTED, s)
        return _URL_CREDS.sub(lambda m: f"{m.group(1)}{REDACTED}@", s) if "://" in s else s

    def bytes(self, b: bytes) -> bytes:
        red = REDACTED.encode("ascii")
        if self._values_bre is not None:
            b = self._values_bre.sub(red, b)
        if self._any_anchor_b.search(b) is not None:
            for pat, anchors in zip(self._patterns_b, self._anchors_b, strict=True):
                if any(a in b for a in anchors):
                    b = pat.sub(red, b)
        return self._url_b.sub(lambda m: m.group(1) + red + b"@", b) if b"://" in b else b

    def json_text(self, doc: str) -> str:
        """A serialised JSON document, redacted in one pass over its text (what `data` does string by string,
        at a fraction of the cost). If a replacement could have broken the document (a secret that spans JSON
        syntax), the result is checked and the string-by-string walk is used instead."""
        out = self.text(doc, _values=self._json_values_re)
        if out == doc:
            return doc
        try:
            json.loads(out)
        except ValueError:
            return json.dumps(self.data(json.loads(doc)), ensure_ascii=False, separators=(",", ":"))
        return out

    def data(self, obj: object) -> object:
        """A redacted copy of JSON-like data (dict keys are redacted too: a key can be a secret)."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.text(str(k)) if isinstance(k, str) else k: self.data(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.data(v) for v in obj]
        return obj

    def stream(self) -> StreamRedactor:
        return StreamRedactor(self)


class StreamRedactor:
    """Redacts a byte stream chunk by chunk, holding back the last STREAM_CARRY bytes so a secret split across
    chunks is still caught. `feed` returns what is safe to write now; `flush` the rest at the end."""

    def __init__(self, redactor: Redactor, carry: int = STREAM_CARRY) -> None:
        self.r = redactor
        self.carry = max(carry, max((len(v.encode("utf-8")) for v in redactor.values), default=0))
        self._buf = b""

    def feed(self, chunk: bytes) -> bytes:
        buf = self.r.bytes(self._buf + chunk)
        if len(buf) <= self.carry:
            self._buf = buf
            return b""
        cut = len(buf) - self.carry
        out, self._buf = buf[:cut], buf[cut:]
        return out

    def flush(self) -> bytes:
        out, self._buf = self.r.bytes(self._buf), b""
        return out


_lock = threading.Lock()
_current: Redactor | None = None
_fingerprint: int | None = None
_extra: frozenset[str] = frozenset()


def _environ_fingerprint() -> int:
    data = getattr(os.environ, "_data", None)  # the raw bytes dict: hashing it costs ~1 µs
    return hash(frozenset((data if isinstance(data, dict) else os.environ).items()))


def current() -> Redactor:
    """The process-wide redactor: built from the environment, rebuilt whenever the environment changed."""
    global _current, _fingerprint
    fp = _environ_fingerprint()
    with _lock:
        if _current is None or fp != _fingerprint:
            _current, _fingerprint = Redactor.from_environ(None, _extra), fp
        return _current


def add_secrets(values: Iterable[str]) -> None:
    """Values to redact everywhere from now on although no environment variable holds them."""
    global _extra, _current
    with _lock:
        _extra = _extra | {v for v in values if v}
        _current = None


def text(s: str) -> str:
    return current().text(s)


def data(obj: object) -> object:
    return current().data(obj)


def json_text(doc: str) -> str:
    return current().json_text(doc)


def json_data(obj: dict[str, object]) -> dict[str, object]:
    """`data` for a JSON object, typed as one (journal records, comms lines)."""
    out = current().data(obj)
    assert isinstance(out, dict)
    return out


_factory_installed = False


def install_log_filter() -> None:
    """Redact every log record when it is created (a record factory, so records of every logger and every
    handler, added now or later, are covered; args can't smuggle a key past it). Idempotent."""
    global _factory_installed
    with _lock:
        if _factory_installed:
            return
        _factory_installed = True
    base = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = base(*args, **kwargs)
        try:
            msg = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: keep the raw template, still redacted
            msg = str(record.msg)
        record.msg, record.args = text(msg), None
        return record

    logging.setLogRecordFactory(factory)
