"""config.toml: defaults, round trip, errors that name the file, the key and what was expected (reliability
B7), secrets refused, atomic save, and the model escalation ladder.

Why: a bad config must stop the app with a message a person can act on, never fall back to defaults silently,
and never hold the API key; a failed save must leave the old file as it was.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from conductor import atomic
from conductor.config import Config, load_config, parse_config, save_config
from conductor.errors import ConfigError

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config.toml"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text, encoding="utf-8")
    return p


# ---------------------------------------------------------------- defaults and round trip

def test_defaults_load() -> None:
    cfg = load_config(None)
    assert cfg == Config()
    assert cfg.engine.max_workers == 4 and cfg.engine.max_attempts == 3
    assert cfg.approvals.auto == ()  # nothing is approved without asking by default
    assert cfg.models.ladder[0] == cfg.models.tier3
    assert any(p.model == "gemini-3.8-flash" for p in cfg.prices)


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")) == Config()


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    p = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert str(p) in str(info.value) and info.value.path == str(p)


def test_values_from_the_file_are_used(tmp_path: Path) -> None:
    p = write(tmp_path, '[engine]\nmax_workers = 7\nstep_mode = true\n[approvals]\nauto = ["plan"]\n'
                        '[models]\ntier3 = "gemini-2.5-flash"\n')
    cfg = load_config(p)
    assert cfg.engine.max_workers == 7 and cfg.engine.step_mode is True
    assert cfg.approvals.auto == ("plan",)
    assert cfg.models.tier3 == "gemini-2.5-flash"
    assert cfg.retry == Config().retry  # untouched sections keep their defaults


def test_default_config_round_trips(tmp_path: Path) -> None:
    p = tmp_path / "config.toml"
    save_config(Config(), p)
    assert load_config(p) == Config()


def test_changed_config_round_trips_including_prices_and_nones(tmp_path: Path) -> None:
    cfg = Config()
    cfg = cfg.updated({"engine": {"max_workers": 9}})
    cfg = cfg.updated({"budget": {"max_cost_usd": 2.5}})
    cfg = cfg.updated({"gemini": {"base_url": "http://127.0.0.1:9"}})
    cfg = cfg.updated({"approvals": {"allow_commands": ["pytest -q"]}})
    cfg = cfg.updated({"prices": [p.model_dump() for p in cfg.prices[:2]]})
    p = tmp_path / "config.toml"
    save_config(cfg, p)
    back = load_config(p)
    assert back == cfg
    assert back.budget.max_tokens is None and back.prices[1].effective.isoformat() == "2027-01-01"


@pytest.mark.skipif(not REPO_CONFIG.exists(), reason="the repo's config.toml is not written yet")
def test_the_repo_config_loads_and_round_trips(tmp_path: Path) -> None:
    cfg = load_config(REPO_CONFIG)
    out = tmp_path / "config.toml"
    save_config(cfg, out)
    assert load_config(out) == cfg
    # Comments may mention GEMINI_API_KEY; no line may set one.
    assert not re.search(r"^\s*\w*(api_?key|token|secret)\s*=", REPO_CONFIG.read_text(encoding="utf-8"),
                         re.IGNORECASE | re.MULTILINE)


# ---------------------------------------------------------------- errors (B7)

def test_wrong_type_names_file_key_and_expectation(tmp_path: Path) -> None:
    p = write(tmp_path, '[engine]\nmax_workers = "many"\n')
    with pytest.raises(ConfigError) as info:
        load_config(p)
    msg = str(info.value)
    assert str(p) in msg
    assert "engine.max_workers" in msg
    assert "integer" in msg and "'many'" in msg  # what was expected, and what was found
    assert info.value.path == str(p) and info.value.key == "engine.max_workers"


def test_out_of_range_value_says_the_limit(tmp_path: Path) -> None:
    p = write(tmp_path, "[engine]\nmax_workers = 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert "engine.max_workers" in str(info.value) and "greater than or equal to 1" in str(info.value)


def test_unknown_key_is_named(tmp_path: Path) -> None:
    p = write(tmp_path, "[engine]\nmax_wrokers = 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert str(p) in str(info.value)
    assert "engine.max_wrokers" in str(info.value) and "not a known setting" in str(info.value)
    assert info.value.key == "engine.max_wrokers"


def test_unknown_section_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'enigne'"):
        load_config(write(tmp_path, "[enigne]\nmax_workers = 3\n"))


def test_every_bad_key_is_listed(tmp_path: Path) -> None:
    p = write(tmp_path, '[engine]\nmax_workers = "x"\nmax_attempts = -1\n[gui]\nwidht = 3\n')
    with pytest.raises(ConfigError) as info:
        load_config(p)
    msg = str(info.value)
    for key in ("engine.max_workers", "engine.max_attempts", "gui.widht"):
        assert key in msg


def test_security_relevant_keys_are_not_defaulted_silently(tmp_path: Path) -> None:
    """An unknown approval kind must stop the load, not be dropped (which would silently mean 'ask')."""
    p = write(tmp_path, '[approvals]\nauto = ["plan", "everything"]\n')
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert "approvals.auto" in str(info.value) and "'everything'" in str(info.value)


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    p = write(tmp_path, "[engine]\nmax_workers = 3\nstep_mode = = true\n")
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert str(p) in str(info.value)
    assert "line 3" in str(info.value)
    assert info.value.path == str(p)


def test_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    p = tmp_path / "config.toml"
    p.write_bytes(b"[engine]\nmax_workers = 3 # \xff\xfe\n")
    with pytest.raises(ConfigError, match="config.toml"):
        load_config(p)


@pytest.mark.parametrize("text", [
    'api_key = "AIza-secret"\n',
    '[gemini]\napi_key = "AIza-secret"\n',
    '[gemini]\nGEMINI_API_KEY = "AIza-secret"\n',
    '[[prices]]\nmodel = "m"\neffective = 2026-01-01\ninput_per_mtok = 1.0\noutput_per_mtok = 1.0\n'
    'token = "AIza-secret"\n',
])
def test_api_key_anywhere_is_refused_pointing_to_the_environment(tmp_path: Path, text: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    msg = str(info.value)
    assert "GEMINI_API_KEY" in msg and str(p) in msg
    assert "AIza-secret" not in msg  # the secret itself is never echoed


def test_parse_config_names_its_source() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"engine": {"max_workers": "x"}}, source="settings dialog")
    assert str(info.value).startswith("settings dialog: ") and info.value.path == "settings dialog"


# ---------------------------------------------------------------- atomic save

def test_save_writes_atomically_and_leaves_no_temp_files(tmp_path: Path) -> None:
    p = tmp_path / "config.toml"
    save_config(Config(), p)
    cfg = Config()
    cfg = cfg.updated({"engine": {"max_workers": 11}})
    save_config(cfg, p)
    assert load_config(p).engine.max_workers == 11
    assert sorted(x.name for x in tmp_path.iterdir()) == ["config.toml"]


@pytest.mark.parametrize("stage", ["replace", "fsync"])
def test_failed_save_keeps_the_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    stage: str) -> None:
    p = write(tmp_path, "# my hand-written config\n[engine]\nmax_workers = 2\n")
    before = p.read_bytes()

    def boom(*_a: object, **_k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, stage, boom)
    cfg = Config()
    cfg = cfg.updated({"engine": {"max_workers": 12}})
    with pytest.raises(OSError, match="No space"):
        save_config(cfg, p)
    monkeypatch.undo()
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["config.toml"]
    assert load_config(p).engine.max_workers == 2


def test_saved_file_holds_no_secret_shaped_key(tmp_path: Path) -> None:
    p = tmp_path / "config.toml"
    save_config(Config(), p)
    text = p.read_text(encoding="utf-8").lower()
    assert "api_key" not in text and "secret" not in text
    assert os.stat(p).st_size > 0


# ---------------------------------------------------------------- model ladder

def test_model_for_attempt_escalates_along_the_ladder() -> None:
    cfg = Config()
    lite, flash, pro = cfg.models.ladder
    assert cfg.models.tier3 == lite
    assert [cfg.model_for_attempt(n) for n in (1, 2, 3, 4, 9)] == [lite, flash, pro, pro, pro]


def test_model_for_attempt_respects_an_override() -> None:
    cfg = Config()
    lite, flash, pro = cfg.models.ladder
    assert cfg.model_for_attempt(1, "gemini-3.8-flash") == "gemini-3.8-flash"
    assert cfg.model_for_attempt(2, "gemini-3.8-flash") == pro  # escalates from the override's rung
    assert cfg.model_for_attempt(3, "gemini-3.8-flash") == pro
    assert cfg.model_for_attempt(1, "gemini-2.5-pro") == "gemini-2.5-pro"  # off-ladder override: used first


def test_custom_ladder(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[models]\ntier3 = "a"\nladder = ["a", "b"]\n'))
    assert [cfg.model_for_attempt(n) for n in (1, 2, 3)] == ["a", "b", "b"]


def test_empty_ladder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least one model"):
        load_config(write(tmp_path, "[models]\nladder = []\n"))
