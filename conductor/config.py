"""config.toml: load with tomllib, validate with pydantic, save atomically. Saving over an existing file
changes only the values that differ, keeping its comments and order byte for byte (conductor/config_edit.py);
a new file is written whole with tomli-w.

The API key is never read from or written to this file: it comes from the environment only.
Errors name the file, the key and what was expected.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, Never, Self, TypeAlias, TypeVar

import tomli_w
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from conductor import config_edit
from conductor.atomic import atomic_write_bytes
from conductor.errors import ConfigError

ThinkingLevel = Literal["off", "minimal", "low", "medium", "high"]
ApprovalKindName = Literal["plan", "tickets", "spawn", "tool"]
_SECRET_KEYS = {"api_key", "apikey", "gemini_api_key", "google_api_key", "key", "token", "secret"}


T = TypeVar("T")
Seq: TypeAlias = Annotated[tuple[T, ...], Field(strict=False)]
"""A list setting, held as a tuple: a frozen config has no list to append to. TOML's arrays (lists) are read
into it (strict=False for the container only: each item stays strictly typed)."""
K = TypeVar("K")
V = TypeVar("V")
FrozenMap: TypeAlias = Annotated[Mapping[K, V], AfterValidator(MappingProxyType), PlainSerializer(dict)]
"""A table of settings ([endpoints.x], [mcp.x]), held read-only."""


def _empty_map() -> Mapping[str, Never]:
    return MappingProxyType({})


class _Section(BaseModel):
    # strict: "no" is not a boolean and "3" is not a number; a typo in a security setting must stop the app,
    # not be coerced into something the person did not write. frozen: the loaded config is a value; a change is
    # a new value (`Config.updated`), swapped in by the session's ApplySettings (conductor/settings.py).
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # Its tables are read-only mappings, which neither copy nor pickle: a copy is the same value built again.
    def __deepcopy__(self, memo: dict[int, object] | None = None) -> Self:
        return self.model_validate(self.model_dump())

    def __reduce__(self) -> tuple[Callable[[dict[str, object]], Self], tuple[dict[str, object]]]:
        return (type(self).model_validate, (self.model_dump(),))

    def model_copy(self, *, update: Mapping[str, object] | None = None, deep: bool = False) -> Self:
        """A new value with `update` set, validated like any other (there is nothing to copy deeply in a value
        that never changes)."""
        return self.model_validate({**self.model_dump(), **(update or {})})


class ModelsConfig(_Section):
    tier1: str = "gemini-3.1-pro-preview"
    tier2: str = "gemini-3.8-flash"
    tier3: str = "gemini-3.5-flash-lite"
    tier4: str = "gemini-3.5-flash-lite"
    ladder: Seq[str] = Field(default_factory=lambda: ("gemini-3.5-flash-lite", "gemini-3.8-flash",
                                                      "gemini-3.1-pro-preview"))
    """Escalation: attempt n of a ticket uses ladder[n-1] (the last entry once past the end)."""
    offered: Seq[str] = Field(default_factory=lambda: ("gemini-3.8-flash", "gemini-3.5-flash",
                                                       "gemini-3.5-flash-lite", "gemini-3.1-pro-preview",
                                                       "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite"))
    """Models offered in the settings dialog (the API's model list is added when a key is present)."""

    @field_validator("ladder")
    @classmethod
    def _ladder_not_empty(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("the escalation ladder needs at least one model")
        return v

    def for_tier(self, tier: int) -> str:
        return {1: self.tier1, 2: self.tier2, 3: self.tier3, 4: self.tier4}[tier]


class ThinkingConfig(_Section):
    tier1: ThinkingLevel = "high"
    tier2: ThinkingLevel = "medium"
    tier3: ThinkingLevel = "low"
    tier4: ThinkingLevel = "low"

    def for_tier(self, tier: int) -> ThinkingLevel:
        return {1: self.tier1, 2: self.tier2, 3: self.tier3, 4: self.tier4}[tier]


class EngineConfig(_Section):
    max_workers: int = Field(default=4, ge=1, le=64)
    max_attempts: int = Field(default=3, ge=1, le=20)
    step_mode: bool = False
    """Ask for a spawn approval before every worker (a ticket's own step_mode flag asks for just that one)."""
    call_timeout_s: float = Field(default=180.0, gt=0)
    repair_attempts: int = Field(default=2, ge=0, le=10)
    """Re-asks with the validation errors when a planning tier's JSON is invalid."""
    max_tool_turns: int = Field(default=24, ge=1, le=500)
    max_output_tokens: int = Field(default=8192, ge=256)


class RetryConfig(_Section):
    """The one retry budget of a model call: every HTTP request that fails transiently counts (the SDK's own
    retries included). When a call spends it on a 429/503/cut stream, it stops retrying and waits, on the same
    attempt and model, for the model's circuit to close (see LimitsConfig); other transient failures then
    fail the attempt."""

    max_retries: int = Field(default=4, ge=0, le=20)
    initial_delay_s: float = Field(default=1.0, ge=0)
    max_delay_s: float = Field(default=30.0, ge=0)
    jitter: float = Field(default=0.5, ge=0, le=1)


class LimitsConfig(_Section):
    """The per-model gate every worker shares (conductor/limits.py): circuit breaker, rate, daily quota."""

    breaker_failures: int = Field(default=5, ge=1, le=100)
    """Consecutive failed requests to a model (over all workers) that open its circuit."""
    open_s: float = Field(default=10.0, ge=0)
    """How long an open circuit stays shut before one probe request; doubles on each re-open."""
    max_open_s: float = Field(default=120.0, ge=0)
    requests_per_minute: float | None = Field(default=None, gt=0)
    """Spaces request starts per model; absent means no client-side rate limit."""
    quota_hold_s: float = Field(default=900.0, ge=0)
    """After a per-day quota error whose reset time is unknown, refuse calls for this long, then probe once."""


class ApprovalsConfig(_Section):
    auto: Seq[ApprovalKindName] = ()
    """Kinds approved without asking. `tool` here approves every write and command: use with care."""
    allow_commands: Seq[str] = ()
    """Exact command lines that run without asking (compared after parsing, never by prefix). An entry that no
    command could ever match safely (shell syntax, an interpreter given code, a program named by a path, ...)
    is an error, not a silent no-op: see conductor.tools.cmdline.rule_problem."""

    @field_validator("allow_commands")
    @classmethod
    def _rules_are_plain(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from conductor.tools import cmdline  # pure module; imported here to keep config free of tool imports

        bad = [f"entry {i} {line!r}: {why}" for i, line in enumerate(v)
               if (why := cmdline.rule_problem(cmdline.from_line(line))) is not None]
        if bad:
            raise ValueError("approvals.allow_commands: " + "; ".join(bad)
                             + " (an allow rule is one exact command with its arguments, without shell syntax)")
        return v
    timeout_s: float = Field(default=0, ge=0)
    """0 waits forever; otherwise an unanswered approval is rejected after this many seconds."""


class BudgetConfig(_Section):
    """Limits checked before every model call; None is no limit. Lifetime (all tracks), per local calendar
    day, and per track; each can be reset from the dashboard (the reset times live in tracks/_budget.json)."""

    max_cost_usd: float | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)
    max_cost_usd_per_day: float | None = Field(default=None, ge=0)
    max_tokens_per_day: int | None = Field(default=None, ge=0)
    max_cost_usd_per_track: float | None = Field(default=None, ge=0)
    max_tokens_per_track: int | None = Field(default=None, ge=0)


class Price(_Section):
    """USD per million tokens for one model from `effective` on. Thinking is billed as output."""

    model: str
    effective: dt.date
    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    cached_per_mtok: float | None = Field(default=None, ge=0)
    """Cached input price; None means cached tokens cost the input price."""
    cache_write_per_mtok: float | None = Field(default=None, ge=0)
    """Price of input written to a cache (Anthropic's cache creation); None means the input price."""
    long_context_threshold: int | None = Field(default=None, ge=1)
    long_input_per_mtok: float | None = Field(default=None, ge=0)
    long_output_per_mtok: float | None = Field(default=None, ge=0)


def default_prices() -> list[Price]:
    """Gemini paid-tier prices, from the pricing page as read on 2026-10-07 (see shared/reference)."""
    d = dt.date
    return [
        Price(model="gemini-3.8-flash", effective=d(2026, 9, 2), input_per_mtok=0.75, output_per_mtok=3.75),
        Price(model="gemini-3.8-flash", effective=d(2027, 1, 1), input_per_mtok=1.50, output_per_mtok=7.50),
        Price(model="gemini-3.5-flash", effective=d(2026, 1, 1), input_per_mtok=1.50, output_per_mtok=9.00),
        Price(model="gemini-3.5-flash-lite", effective=d(2026, 1, 1), input_per_mtok=0.30, output_per_mtok=2.50),
        Price(model="gemini-3.1-pro-preview", effective=d(2026, 1, 1), input_per_mtok=2.00, output_per_mtok=12.00,
              long_context_threshold=200_000, long_input_per_mtok=4.00, long_output_per_mtok=18.00),
        Price(model="gemini-2.5-pro", effective=d(2025, 6, 17), input_per_mtok=1.25, output_per_mtok=10.00,
              long_context_threshold=200_000, long_input_per_mtok=2.50, long_output_per_mtok=15.00),
        Price(model="gemini-2.5-flash", effective=d(2025, 6, 17), input_per_mtok=0.30, output_per_mtok=2.50),
        Price(model="gemini-2.5-flash-lite", effective=d(2025, 7, 22), input_per_mtok=0.10, output_per_mtok=0.40),
        *default_other_prices(),
    ]


def default_other_prices() -> list[Price]:
    """OpenAI and Anthropic list prices at each model's launch (openai.com/api/pricing, claude.com/pricing).

    Keyed by the bare model name: they apply to the built-in `openai` / `anthropic` endpoints only (a model
    of the same name on another endpoint needs its own `endpoint:model` entry, or `free = true`)."""
    d = dt.date
    return [
        Price(model="gpt-5", effective=d(2025, 8, 7), input_per_mtok=1.25, output_per_mtok=10.00,
              cached_per_mtok=0.125),
        Price(model="gpt-5-mini", effective=d(2025, 8, 7), input_per_mtok=0.25, output_per_mtok=2.00,
              cached_per_mtok=0.025),
        Price(model="gpt-5-nano", effective=d(2025, 8, 7), input_per_mtok=0.05, output_per_mtok=0.40,
              cached_per_mtok=0.005),
        Price(model="gpt-4.1", effective=d(2025, 4, 14), input_per_mtok=2.00, output_per_mtok=8.00,
              cached_per_mtok=0.50),
        Price(model="claude-sonnet-4-5", effective=d(2025, 9, 29), input_per_mtok=3.00, output_per_mtok=15.00,
              cached_per_mtok=0.30, cache_write_per_mtok=3.75, long_context_threshold=200_000,
              long_input_per_mtok=6.00, long_output_per_mtok=22.50),
        Price(model="claude-opus-4-5", effective=d(2025, 11, 24), input_per_mtok=5.00, output_per_mtok=25.00,
              cached_per_mtok=0.50, cache_write_per_mtok=6.25),
        Price(model="claude-haiku-4-5", effective=d(2025, 10, 15), input_per_mtok=1.00, output_per_mtok=5.00,
              cached_per_mtok=0.10, cache_write_per_mtok=1.25),
        Price(model="claude-opus-4-1", effective=d(2025, 8, 5), input_per_mtok=15.00, output_per_mtok=75.00,
              cached_per_mtok=1.50, cache_write_per_mtok=18.75),
    ]


class GeminiConfig(_Section):
    api_version: Literal["v1", "v1beta"] = "v1"
    base_url: str | None = None
    """Only for tests and proxies; None uses Google's endpoint."""
    http_timeout_s: float = Field(default=120.0, gt=0)
    sdk_retry_attempts: int = Field(default=1, ge=1, le=10)
    """Attempts the SDK makes for the initial request. 1: Conductor makes every retry, through the shared
    per-model gate; more: the SDK's extra requests still count against the one retry budget ([retry])."""


EndpointKind = Literal["gemini", "openai", "anthropic"]
BUILTIN_ENDPOINTS: dict[str, EndpointKind] = {"gemini": "gemini", "openai": "openai", "anthropic": "anthropic"}
"""Endpoints that exist without configuration (each on its provider's own host, keyed by the SDK's variable)."""
_ENDPOINT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")


class CompatConfig(_Section):
    """What an OpenAI-compatible (or Anthropic) endpoint supports. None means "find out": the provider tries
    the standard behaviour and remembers, for this run, what the endpoint refused."""

    stream_usage: bool | None = None
    """Accepts `stream_options.include_usage` (Azure and old Ollama refuse it)."""
    continuous_usage: bool = False
    """Send `continuous_usage_stats` too (vLLM): usage on every chunk, so a broken stream still has counts."""
    stream_tools: bool | None = None
    """Streams tool calls. False (old Ollama) sends requests that carry tools without streaming."""
    json_schema: bool | None = None
    """Accepts a JSON schema for structured answers; False puts the schema in the instructions instead."""
    reasoning: bool | None = None
    """Accepts `reasoning_effort` (OpenAI reasoning models). None: only on api.openai.com."""
    thinking: Literal["auto", "off", "budget", "adaptive"] = "auto"
    """Anthropic: extended thinking with a token budget, adaptive thinking, or none; auto picks by model."""
    max_tokens: int = Field(default=8192, ge=256)
    """The output limit sent when a call names none (Anthropic requires one)."""


class EndpointConfig(_Section):
    """A named model endpoint. Models on it are named `<endpoint>:<model>` in [models]."""

    kind: EndpointKind
    base_url: str | None = None
    """None: the provider's own host (or the SDK's variable, e.g. OPENAI_BASE_URL). Your API key is sent only to
    the provider's own host or to loopback unless you name the URL in the environment or on the command line."""
    api_key_env: str | None = None
    """The environment variable holding the key (never the key itself). None: no key (local servers)."""
    models: Seq[str] = ()
    """Models offered in the settings dialog (the endpoint's own list is added when it answers)."""
    free: bool = False
    """True only when you say so: calls here cost nothing. Otherwise a model without a price has an unknown cost."""
    compat: CompatConfig = Field(default_factory=CompatConfig)

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not _ENV_NAME.match(v):
            raise ValueError(f"api_key_env {v!r} must be the NAME of an environment variable (e.g. "
                             "\"OPENAI_API_KEY\"), never the key itself")
        return v

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"base_url {v!r} must be an http:// or https:// URL")
        return v


def split_model_ref(ref: str) -> tuple[str | None, str]:
    """`"local:llama3.1:8b"` -> ("local", "llama3.1:8b"); a name without a colon -> (None, name), which means
    the default endpoint (Gemini unless `--provider` says otherwise). The first colon separates."""
    head, sep, rest = ref.partition(":")
    return (head, rest) if sep else (None, ref)


class GuiConfig(_Section):
    width: int = Field(default=1280, ge=640)
    height: int = Field(default=800, ge=480)
    left_width: int = Field(default=380, ge=200)
    tickets_height: int = Field(default=240, ge=110)
    """Height of the ticket view above the stream panes (the split the user drags)."""
    stream_tail_chars: int = Field(default=20_000, ge=1_000)
    """How much of each stream a pane keeps in memory; the full text is on disk."""
    frame_budget_ms: float = Field(default=4.0, gt=0)
    notify: bool = False
    """Desktop notifications (notify-send) when an approval waits, a ticket fails or a run ends."""
    font_scale: float = Field(default=1.0, ge=0.5, le=4.0)
    """Text size (Ctrl +/− in the app; set 2.0 on a 4K screen). Remembered on exit with the layout."""
    theme: Literal["dark", "light"] = "dark"
    """Colour theme (switch it from the command palette, Ctrl+P). Remembered on exit with the layout."""
    scale: float | None = Field(default=None, ge=0.5, le=4.0)
    """HiDPI scale of fonts and layout metrics (2.0 on a 4K screen). None: from the system (GDK_SCALE or
    QT_SCALE_FACTOR, else Xft.dpi from the X resources, else the monitor's physical size); set, it wins."""


class PathsConfig(_Section):
    tracks_dir: str | None = None
    """Relative to the config file's folder; None: $XDG_DATA_HOME/conductor/tracks (see conductor.launch)."""


_MCP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_SECRETISH_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)


class McpServerConfig(_Section):
    """One MCP server, `[mcp.<name>]`: a stdio command (command, args, env) or a streamable-HTTP `url`.

    Servers come only from this file, never from the workspace: their tools run third-party code, and every
    call goes through the tool approval gate. Secrets never go in `env`: name them in `pass_env` and they are
    copied from Conductor's own environment when the server starts."""

    command: str | None = None
    args: Seq[str] = ()
    env: FrozenMap[str, str] = Field(default_factory=_empty_map)
    """Literal, non-secret variables for a stdio server (added to a minimal PATH/HOME/USER environment)."""
    pass_env: Seq[str] = ()
    """Names of variables copied from Conductor's environment into a stdio server's (e.g. its own token)."""
    url: str | None = None
    call_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    """A tool call that takes longer fails (the server stays connected and usable)."""
    startup_timeout_s: float = Field(default=30.0, gt=0, le=600)

    def problem(self) -> str | None:
        """What is wrong with this entry (checked by `Config`, which knows its name), or None."""
        if (self.command is None) == (self.url is None):
            return "needs exactly one of `command` (stdio) or `url` (streamable HTTP)"
        if self.url is not None:
            if not self.url.startswith(("http://", "https://")):
                return f"url {self.url!r} must start with http:// or https://"
            if self.args or self.env or self.pass_env:
                return "`args`, `env` and `pass_env` apply to a stdio `command`, not to a `url` server"
        if self.command is not None and not self.command.strip():
            return "`command` is empty"
        for name in self.env:
            if _SECRETISH_ENV.search(name):
                return (f"env {name!r} looks like a secret; config.toml never holds one: list {name!r} in "
                        "`pass_env` and set it in Conductor's environment instead")
        return None


class GitConfig(_Section):
    """How a track uses a workspace that is a git repository (conductor/gitwork.py)."""

    enabled: bool = True
    """False: work in the workspace itself even when it is a repository (one worker at a time)."""
    track_branch: str = "conductor/{track}"
    ticket_branch: str = "conductor/{track}--{ticket}"
    base_ref: str = "HEAD"
    """Where a new track branch starts (the person's current HEAD by default)."""
    merge_strategy: Literal["merge", "squash"] = "merge"
    author: str = ""
    """Who authors the conductor's commits and merges, as `Name <email>`; empty: the repository's own identity
    (user.name / user.email), else `Conductor <conductor@localhost>`."""
    worktrees_root: str | None = None
    """Where attempt worktrees go (outside the repository); None: the user's state folder."""
    check_command: str = ""
    """The workspace's checks (e.g. `pytest -q`), run by QA in each ticket's worktree through the command
    policy; a failing check fails the ticket with its output as the hint."""
    check_timeout_s: float = Field(default=600.0, gt=0)
    offer_init: bool = True
    """A track about to run in a folder that is not a repository: the GUI asks whether to `git init` it first
    (never without asking; the CLI never asks and runs one worker). False: do not ask."""

    @field_validator("author")
    @classmethod
    def _author(cls, value: str) -> str:
        if value.strip() and author_parts(value) is None:
            raise ValueError(f"key 'git.author': {value!r} is not `Name <email>` (one name, one email in angle "
                             "brackets, no newline)")
        return value.strip()


def author_parts(value: str) -> tuple[str, str] | None:
    """(name, email) of `Name <email>`, or None when it is not that shape."""
    m = re.fullmatch(r"([^<>\n\x00]*[^<>\s\x00])\s*<([^<>\s\x00]+)>", value.strip())
    return (m.group(1).strip(), m.group(2)) if m else None


class DistributedConfig(_Section):
    """Tier 3 on `conductor worker` processes over Dramatiq + Redis (conductor/distributed/). Empty `broker_url`
    and no URL in the `broker_url_env` variable: local threads, as always."""

    broker_url: str = ""
    """redis://HOST:PORT/DB or unix:///path/redis.sock, WITHOUT a password: a URL that carries one belongs in the
    environment variable named by `broker_url_env` (never in this file)."""
    broker_url_env: str = "CONDUCTOR_BROKER_URL"
    remote: str = ""
    """The git remote workers fetch the track branch from and push their ticket branches to (a URL or path both
    the desktop and the workers reach)."""
    namespace: str = Field(default="conductor", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    """Prefix of every Redis key; the desktop advertises it and a worker for another namespace refuses to start."""
    queue: str = Field(default="conductor-attempts", pattern=r"^[A-Za-z_][A-Za-z0-9._-]{0,99}$")
    beat_interval_s: float = Field(default=10.0, gt=0)
    """Worker heartbeats and lease refreshes; silent for three beats = offline, its attempt reassigned once."""
    heartbeat_timeout_ms: int = Field(default=30_000, ge=100)
    """Dramatiq's own broker heartbeat: a dead process's unacked messages return to the queue after it."""
    max_deliveries: int = Field(default=4, ge=1, le=100)
    """A request delivered more often than this is a poison attempt: dead-lettered, the attempt fails."""
    approval_wait_s: float = Field(default=120.0, gt=0)
    """How long a remote attempt waits for an approval before it parks (saves its state, frees its thread)."""
    local_threads: int = Field(default=0, ge=0, le=64)
    """Worker threads the desktop itself runs on the queue beside the remote workers (0: none)."""

    @field_validator("broker_url")
    @classmethod
    def _no_password(cls, v: str) -> str:
        from urllib.parse import urlsplit
        if v and urlsplit(v).password:
            raise ValueError("distributed.broker_url carries a password; put the URL in the environment variable "
                             "named by distributed.broker_url_env (CONDUCTOR_BROKER_URL) instead")
        return v


class Config(_Section):
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    thinking: ThinkingConfig = Field(default_factory=ThinkingConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    git: GitConfig = Field(default_factory=GitConfig)
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    approvals: ApprovalsConfig = Field(default_factory=ApprovalsConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    gemini: GeminiConfig = Field(default_factory=GeminiConfig)
    gui: GuiConfig = Field(default_factory=GuiConfig)
    paths: PathsConfig = Field(default_factory=PathsConfig)
    endpoints: FrozenMap[str, EndpointConfig] = Field(default_factory=_empty_map)
    """Named endpoints beside the built-in `gemini`, `openai` and `anthropic` (which may be overridden)."""
    prices: Seq[Price] = Field(default_factory=lambda: tuple(default_prices()))
    mcp: FrozenMap[str, McpServerConfig] = Field(default_factory=_empty_map)
    """MCP servers whose tools Tier 3 may call (each call approved): `[mcp.<name>]`."""

    @field_validator("mcp")
    @classmethod
    def _mcp_names(cls, v: Mapping[str, McpServerConfig]) -> Mapping[str, McpServerConfig]:
        for name in v:
            if not _MCP_NAME.match(name):
                raise ValueError(f"[mcp.{name}]: the server name must be 1-32 letters, digits, '-' or '_' "
                                 "(it becomes part of the tool names)")
        for name, server in v.items():
            why = server.problem()
            if why is not None:
                raise ValueError(f"[mcp.{name}]: {why}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        for path, key in _walk_keys(data):
            if key.lower() in _SECRET_KEYS:
                raise ValueError(f"key {'.'.join(path)!r} looks like a secret; config.toml never holds the API key: "
                                 "set GEMINI_API_KEY in the environment instead")
        return data

    @model_validator(mode="after")
    def _model_refs_name_endpoints(self) -> Config:
        for name in self.endpoints:
            if not _ENDPOINT_NAME.match(name):
                raise ValueError(f"endpoint name {name!r} (in [endpoints.{name}]) must be lower-case letters, digits, "
                                 "'-' or '_', starting with a letter")
        for key, ref in self.model_refs():
            endpoint, model = split_model_ref(ref)
            if endpoint is not None and endpoint not in self.endpoint_names():
                raise ValueError(f"{key} = {ref!r} names endpoint {endpoint!r}, which is not configured (known: "
                                 f"{', '.join(sorted(self.endpoint_names()))}); write <endpoint>:<model>")
            if not model:
                raise ValueError(f"{key} = {ref!r} names no model after the colon")
        return self

    def model_refs(self) -> list[tuple[str, str]]:
        """(config key, model reference) for every tier and ladder rung."""
        m = self.models
        return [*((f"models.tier{t}", m.for_tier(t)) for t in (1, 2, 3, 4)),
                *((f"models.ladder[{i}]", ref) for i, ref in enumerate(m.ladder))]

    def endpoint_names(self) -> set[str]:
        return set(BUILTIN_ENDPOINTS) | set(self.endpoints)

    def endpoint(self, name: str) -> EndpointConfig:
        """The configured endpoint, or the built-in one of that name."""
        if name in self.endpoints:
            return self.endpoints[name]
        if name in BUILTIN_ENDPOINTS:
            return EndpointConfig(kind=BUILTIN_ENDPOINTS[name])
        raise ConfigError(f"no endpoint named {name!r} (known: {', '.join(sorted(self.endpoint_names()))})",
                          key=f"endpoints.{name}")

    def updated(self, values: Mapping[str, object], *, source: str = "settings") -> Config:
        """A new config: this one with the nested `values` set (a None value clears an optional setting),
        validated whole. Raises ConfigError naming the key (`source` names where the values came from)."""
        return parse_config(_merged(self.model_dump(mode="python"), values), source=source)

    def model_for_attempt(self, attempt: int, override: str | None = None) -> str:
        """Tier 3's model for attempt n (1-based): the override or tier3 first, then up the ladder."""
        if attempt <= 1:
            return override or self.models.tier3
        ladder = self.models.ladder
        start = ladder.index(override or self.models.tier3) if (override or self.models.tier3) in ladder else 0
        return ladder[min(start + attempt - 1, len(ladder) - 1)]


def _merged(base: Mapping[str, object], over: Mapping[str, object]) -> dict[str, object]:
    out = dict(base)
    for key, value in over.items():
        current = out.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            out[key] = _merged(current, value)
        else:
            out[key] = value
    return out


def _walk_keys(data: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    out: list[tuple[tuple[str, ...], str]] = []
    if isinstance(data, dict):
        for k, v in data.items():
            out.append(((*path, str(k)), str(k)))
            out.extend(_walk_keys(v, (*path, str(k))))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.extend(_walk_keys(v, (*path, str(i))))
    return out


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"key {loc!r} is not a known setting"
    if err["type"] == "value_error":
        return str(err["ctx"]["error"]) if "ctx" in err else err["msg"]
    got = err.get("input")
    shown = f", got {got!r}" if got is not None and not isinstance(got, dict | list) else ""
    return f"key {loc!r}: {err['msg'].lower()}{shown}"


def parse_config(data: dict[str, Any], *, source: str = "config.toml") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        errs = exc.errors(include_url=False)
        first = errs[0]
        key = ".".join(str(p) for p in first["loc"]) or None
        lines = [f"{source}: {_describe(dict(e))}" for e in errs]
        raise ConfigError("\n".join(lines), path=source, key=key) from None


def load_config(path: str | Path | None) -> Config:
    """Load and validate a config file; None gives the defaults. A path that does not exist is an error
    (callers that treat a missing default file as "use the defaults" check for it first)."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: file not found", path=str(p)) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}", path=str(p)) from None
    return parse_config(data, source=str(p))


def plain(cfg: Config, *, exclude_none: bool = False) -> dict[str, object]:
    """The config as TOML-ready data (its tuples as lists, as tomllib reads arrays back)."""
    return _plain_dict(cfg.model_dump(mode="python", exclude_none=exclude_none))


def _plain_dict(data: Mapping[str, object]) -> dict[str, object]:
    return {k: _lists(v) for k, v in data.items()}


def _lists(value: object) -> object:
    if isinstance(value, Mapping):
        return _plain_dict(value)
    if isinstance(value, list | tuple):
        return [_lists(v) for v in value]
    return value


def config_to_toml(cfg: Config) -> str:
    return tomli_w.dumps(plain(cfg, exclude_none=True))


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the config atomically (validated first, so an invalid config never reaches disk). An existing
    file keeps every comment and its order: only values that differ from what it says are rewritten."""
    parse_config(plain(cfg), source=str(path))
    p = Path(path)
    try:
        old = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        atomic_write_bytes(p, config_to_toml(cfg).encode("utf-8"))
        return
    defaults = plain(Config(), exclude_none=True)
    before = config_edit.effective(old, defaults, str(p))
    changes = config_edit.changed_values(before, plain(cfg, exclude_none=True))
    if changes:
        _write_edited(p, old, changes)


def save_config_values(path: str | Path, values: dict[str, Any]) -> None:
    """Set just these nested values in the file (e.g. the window layout on exit), nothing else: settings
    changed only for this session (toolbar toggles) are never written behind the person's back. The result
    is validated before it replaces the file."""
    p = Path(path)
    try:
        old = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        old = ""
    _write_edited(p, old, values)


def _write_edited(p: Path, old: str, values: dict[str, Any]) -> None:
    text = config_edit.edit_toml(old, values, source=str(p))
    try:
        parse_config(tomllib.loads(text), source=str(p))
    except tomllib.TOMLDecodeError as exc:  # a bug in the editor, never the person's input
        raise ConfigError(f"{p}: the edited file would not be valid TOML ({exc}); not written", path=str(p)) from None
    atomic_write_bytes(p, text.encode("utf-8"))

