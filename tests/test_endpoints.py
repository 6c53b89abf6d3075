"""Named endpoints: `endpoint:model` references, where a key may go (the trust rule), which key is missing for
which tier, prices for endpoints (free only when said so), and the SDKs imported only on first use."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from conductor.config import ConfigError, load_config, parse_config
from conductor.errors import MissingApiKey
from conductor.model import Usage
from conductor.providers.endpoints import key_may_be_sent, missing_keys, resolve_endpoint
from conductor.providers.factory import make_provider
from conductor.usage import PriceTable

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("kind, url, source, allowed", [
    ("openai", "https://api.openai.com/v1", "config", True),
    ("openai", "http://127.0.0.1:8000/v1", "config", True),
    ("openai", "http://localhost:11434/v1", "config", True),
    ("openai", "https://evil.example.com/v1", "config", False),
    ("openai", "https://api.openai.com.evil.example/v1", "config", False),
    ("anthropic", "https://api.openai.com", "config", False),  # another provider's host is not this key's home
    ("openai", "https://proxy.corp.example/v1", "env", True),
    ("openai", "https://proxy.corp.example/v1", "cli", True),
    ("anthropic", "https://api.anthropic.com", "default", True),
    ("gemini", "http://[::1]:9000/", "config", True),
])
def test_the_key_trust_rule(kind: str, url: str, source: str, allowed: bool) -> None:
    assert key_may_be_sent(kind, url, source) is allowed  # type: ignore[arg-type]


def test_a_config_file_url_never_receives_a_key_for_another_host() -> None:
    cfg = parse_config({"endpoints": {"openai": {"kind": "openai", "base_url": "https://collector.example/v1"}}})
    with pytest.raises(ConfigError) as info:
        resolve_endpoint(cfg, "openai", {"OPENAI_API_KEY": "sk-secret"})
    assert "collector.example" in str(info.value) and "sk-secret" not in str(info.value)
    assert "CONDUCTOR_OPENAI_BASE_URL" in str(info.value)
    # The person names the same URL in the environment: then it is theirs to trust.
    ep = resolve_endpoint(cfg, "openai", {"OPENAI_API_KEY": "sk-secret",
                                          "CONDUCTOR_OPENAI_BASE_URL": "https://collector.example/v1"})
    assert ep.url_source == "env" and ep.key is not None and "sk-secret" not in repr(ep)
    ep = resolve_endpoint(cfg, "openai", {"OPENAI_API_KEY": "sk-secret"}, cli_base_url="https://collector.example/v1")
    assert ep.url_source == "cli"


def test_the_sdk_variables_work_as_their_users_expect() -> None:
    cfg = parse_config({})
    ep = resolve_endpoint(cfg, "openai", {"OPENAI_API_KEY": "k1", "OPENAI_BASE_URL": "https://gw.example/v1"})
    assert (ep.base_url, ep.url_source, ep.key_env) == ("https://gw.example/v1", "env", "OPENAI_API_KEY")
    ep = resolve_endpoint(cfg, "anthropic", {"ANTHROPIC_API_KEY": "k2"})
    assert ep.base_url == "https://api.anthropic.com" and ep.key is not None and ep.key.reveal() == "k2"


def test_a_local_endpoint_gets_no_key_from_the_environment() -> None:
    cfg = parse_config({"endpoints": {"local": {"kind": "openai", "base_url": "http://127.0.0.1:11434/v1"}}})
    ep = resolve_endpoint(cfg, "local", {"OPENAI_API_KEY": "sk-not-for-ollama"})
    assert ep.key is None and ep.local


def test_missing_keys_name_the_variable_for_each_tier() -> None:
    cfg = parse_config({"models": {"tier2": "anthropic:claude-haiku-4-5", "tier4": "openai:gpt-5-mini"}})
    lines = missing_keys(cfg, {"GEMINI_API_KEY": "g"})
    assert lines == [l for l in lines if "tier2" in l or "tier4" in l] and len(lines) == 2
    assert any("tier2" in l and "ANTHROPIC_API_KEY" in l for l in lines)
    assert any("tier4" in l and "OPENAI_API_KEY" in l for l in lines)
    with pytest.raises(MissingApiKey) as info:
        make_provider("gemini", cfg, env={"GEMINI_API_KEY": "g"})
    assert "ANTHROPIC_API_KEY" in str(info.value) and "OPENAI_API_KEY" in str(info.value)


@pytest.mark.parametrize("data, words", [
    ({"models": {"tier3": "olama:llama3"}}, "names endpoint 'olama'"),
    ({"models": {"tier3": "openai:"}}, "names no model"),
    ({"endpoints": {"Bad Name": {"kind": "openai"}}}, "endpoint name"),
    ({"endpoints": {"x": {"kind": "openai", "api_key_env": "sk-live-abc"}}}, "NAME of an environment variable"),
    ({"endpoints": {"x": {"kind": "openai", "api_key": "sk-live-abc"}}}, "looks like a secret"),
    ({"endpoints": {"x": {"kind": "mistral"}}}, "kind"),
    ({"endpoints": {"x": {"kind": "openai", "base_url": "ftp://host"}}}, "http"),
])
def test_bad_endpoint_config_is_named(data: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert words in str(info.value)


def test_the_shipped_config_loads_and_documents_endpoints() -> None:
    cfg = load_config(ROOT / "config.toml")
    text = (ROOT / "config.toml").read_text()
    assert "endpoint:model" in text and "[endpoints." in text and "free = true" in text
    assert cfg.models.tier1


def test_prices_by_endpoint_free_only_when_said_so() -> None:
    cfg = parse_config({"endpoints": {"local": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1", "free": True},
                                      "lan": {"kind": "openai", "base_url": "http://10.0.0.5:8000/v1"}}})
    table = PriceTable.for_config(cfg)
    day = dt.date(2026, 11, 27)
    u = Usage(model="x", prompt_tokens=1000, output_tokens=100)
    assert table.cost(u.model_copy(update={"model": "local:qwen3"}), day) == 0.0
    assert table.cost(u.model_copy(update={"model": "lan:qwen3"}), day) is None  # unknown, not zero
    assert table.cost(u.model_copy(update={"model": "lan:gpt-5"}), day) is None  # a bare name's price is not borrowed
    assert table.cost(u.model_copy(update={"model": "openai:gpt-5"}), day) == table.cost(
        u.model_copy(update={"model": "gpt-5"}), day) == pytest.approx((1000 * 1.25 + 100 * 10) / 1e6)


def test_the_sdks_load_only_on_first_use() -> None:
    code = ("import sys\n"
            "import conductor.providers.factory, conductor.providers.router, conductor.providers.openai_compat\n"
            "import conductor.providers.anthropic_provider, conductor.cli\n"
            "print(sorted(m for m in ('openai', 'anthropic', 'google.genai') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_app_without_a_key_names_which_key_is_missing_for_which_tier(tmp_path: Path, workspace: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from conductor.app.session_factory import UnavailableProvider, open_session
    monkeypatch.setenv("GEMINI_API_KEY", "g-key")
    cfg = parse_config({"models": {"tier2": "anthropic:claude-haiku-4-5", "tier4": "openai:gpt-5-mini"}})
    session, note = open_session(cfg, workspace=workspace, tracks_dir=tmp_path / "tracks", provider_name="gemini")
    try:
        assert isinstance(session.provider, UnavailableProvider)
        assert "no API key" in note
        assert "tier2: endpoint 'anthropic' needs an API key: set $ANTHROPIC_API_KEY" in note
        assert "tier4: endpoint 'openai' needs an API key: set $OPENAI_API_KEY" in note
        assert "tier1" not in note and "g-key" not in note
    finally:
        session.shutdown()


def test_the_model_pickers_offer_each_configured_endpoints_models(tmp_path: Path) -> None:
    from tests.gui_support import make_controller, make_session
    cfg = parse_config({"endpoints": {"local": {"kind": "openai", "base_url": "http://127.0.0.1:11434/v1",
                                                "models": ["qwen3-coder", "llama3.1:8b"]}},
                        "models": {"tier2": "anthropic:claude-haiku-4-5"}})
    session = make_session(tmp_path, cfg=cfg)
    try:
        offered = make_controller(session).offered_models()
        assert {"local:qwen3-coder", "local:llama3.1:8b", "anthropic:claude-haiku-4-5"} <= set(offered)
    finally:
        session.shutdown()


def test_endpoints_survive_the_settings_dialogs_atomic_rewrite(tmp_path: Path) -> None:
    from conductor.config import save_config
    cfg = parse_config({"endpoints": {"local": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1",
                                                "models": ["llama3.1:8b"], "free": True,
                                                "compat": {"stream_tools": False, "thinking": "off"}}},
                        "models": {"tier3": "local:llama3.1:8b", "ladder": ["local:llama3.1:8b", "gemini-3.8-flash"]}})
    save_config(cfg, tmp_path / "config.toml")
    again = load_config(tmp_path / "config.toml")
    assert again.endpoints == cfg.endpoints and again.models == cfg.models


def test_anthropic_thinking_modes_per_model_and_profile() -> None:
    from conductor.providers.anthropic_mapping import request_kwargs
    from conductor.providers.base import ProviderRequest
    req = ProviderRequest(model="m", tier=1, system="s", messages=(), thinking="medium", max_output_tokens=4000)
    budget = request_kwargs(req, "claude-haiku-4-5", json_schema=False, thinking="auto", default_max_tokens=8192)
    assert budget["thinking"] == {"type": "enabled", "budget_tokens": 8192} and budget["max_tokens"] == 4000 + 8192
    old = request_kwargs(req, "claude-3-haiku-20240307", json_schema=False, thinking="auto", default_max_tokens=8192)
    assert "thinking" not in old and old["max_tokens"] == 4000
    adaptive = request_kwargs(req, "claude-opus-5", json_schema=False, thinking="adaptive", default_max_tokens=8192)
    assert adaptive["thinking"] == {"type": "adaptive"} and adaptive["output_config"] == {"effort": "medium"}
    off = request_kwargs(ProviderRequest(model="m", tier=1, system="", messages=(), thinking="off"),
                         "claude-haiku-4-5", json_schema=False, thinking="auto", default_max_tokens=8192)
    assert "thinking" not in off and "system" not in off and off["max_tokens"] == 8192


def test_a_config_file_gemini_base_url_gets_no_key_unless_named_in_the_environment() -> None:
    cfg = parse_config({"gemini": {"base_url": "https://gemini-proxy.example/"}})
    with pytest.raises(ConfigError) as info:
        make_provider("gemini", cfg, env={"GEMINI_API_KEY": "g-secret"})
    assert "gemini-proxy.example" in str(info.value) and "g-secret" not in str(info.value)
    named = make_provider("gemini", cfg, env={"GEMINI_API_KEY": "g-secret",
                                              "CONDUCTOR_GEMINI_BASE_URL": "https://gemini-proxy.example/"})
    local = make_provider("gemini", parse_config({"gemini": {"base_url": "http://127.0.0.1:9/"}}),
                          env={"GEMINI_API_KEY": "g-secret"})
    assert named.name == local.name == "gemini"


def test_model_flag_keeps_an_ollama_tag_whole_and_is_validated() -> None:
    from conductor.providers.factory import with_model_everywhere
    cfg = parse_config({"endpoints": {"local": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1"}}})
    assert with_model_everywhere(cfg, "llama3.1:8b", "local").models.tier3 == "local:llama3.1:8b"
    assert with_model_everywhere(cfg, "openai:gpt-5", "openai").models.ladder == ("openai:gpt-5",)
    with pytest.raises(ConfigError) as info:
        with_model_everywhere(cfg, "nowhere:x", "gemini")
    assert "--model" in str(info.value) and "nowhere" in str(info.value)
