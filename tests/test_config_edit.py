"""Saving settings keeps the person's config.toml: every comment, blank line and key order stays byte for byte
outside the values that changed, and a layout saved on exit writes only the layout (never a toolbar toggle)."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conductor.config import Config, load_config, save_config, save_config_values
from conductor.config_edit import changed_values, edit_toml
from conductor.errors import ConfigError

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config.toml"


def shipped(tmp_path: Path) -> Path:
    p = tmp_path / "config.toml"
    shutil.copyfile(REPO_CONFIG, p)
    return p


def changed_lines(before: str, after: str) -> list[str]:
    return [line for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line[:2] in ("- ", "+ ")]


def test_saving_the_shipped_config_unchanged_leaves_it_byte_for_byte(tmp_path: Path) -> None:
    p = shipped(tmp_path)
    before = p.read_bytes()
    save_config(load_config(p), p)
    assert p.read_bytes() == before


def test_saving_changed_settings_keeps_every_comment_of_the_shipped_config(tmp_path: Path) -> None:
    p = shipped(tmp_path)
    before = p.read_text(encoding="utf-8")
    cfg = load_config(p)
    cfg = cfg.updated({"engine": {"max_workers": 7}})
    cfg = cfg.updated({"models": {"tier3": "gemini-2.5-flash"}})
    cfg = cfg.updated({"budget": {"max_cost_usd": 2.5}})
    cfg = cfg.updated({"approvals": {"auto": ["plan"]}})
    save_config(cfg, p)
    after = p.read_text(encoding="utf-8")
    assert load_config(p) == cfg
    comments = [line for line in before.splitlines() if line.lstrip().startswith("#") or "#" in line]
    for line in comments:
        if not line.startswith("max_workers"):
            assert line in after.splitlines(), f"comment line lost: {line!r}"
    assert "max_workers = 7          # Tier 3 workers running at once" in after, "the trailing comment stays"
    diff = changed_lines(before, after)
    assert sorted(diff) == sorted([
        "- max_workers = 4          # Tier 3 workers running at once",
        "+ max_workers = 7          # Tier 3 workers running at once",
        '- tier3 = "gemini-3.5-flash-lite"', '+ tier3 = "gemini-2.5-flash"',
        "- auto = []", '+ auto = ["plan"]',
        "+ max_cost_usd = 2.5"]), diff


def test_a_limit_switched_off_is_removed_and_prices_edit_in_place(tmp_path: Path) -> None:
    p = shipped(tmp_path)
    cfg = load_config(p)
    cfg = cfg.updated({"budget": {"max_tokens": 1000}})
    save_config(cfg, p)
    assert "max_tokens = 1000" in p.read_text(encoding="utf-8")
    cfg = cfg.updated({"budget": {"max_tokens": None}})
    cfg = cfg.updated({"prices": [p.model_dump() for p in cfg.prices[:2]]})
    save_config(cfg, p)
    text = p.read_text(encoding="utf-8")
    assert "max_tokens = 1000" not in text and "# max_tokens = 2000000" in text
    assert load_config(p) == cfg
    assert sum(1 for line in text.splitlines() if line.startswith("[[prices]]")) == 2  # tables, not comments


def test_layout_on_exit_writes_only_the_layout_never_a_session_toggle(tmp_path: Path) -> None:
    p = shipped(tmp_path)
    before = p.read_text(encoding="utf-8")
    save_config_values(p, {"gui": {"left_width": 420, "font_scale": 1.3}})
    after = p.read_text(encoding="utf-8")
    assert changed_lines(before, after) == ["- left_width = 380", "+ left_width = 420", "+ font_scale = 1.3"]
    assert load_config(p).engine.step_mode is False


def test_an_inline_table_keeps_its_other_keys(tmp_path: Path) -> None:
    p = tmp_path / "config.toml"
    p.write_text('gui = { width = 900, height = 700 }  # mine\n', encoding="utf-8")
    save_config_values(p, {"gui": {"left_width": 300}})
    text = p.read_text(encoding="utf-8")
    assert text.startswith("gui = { width = 900, height = 700, left_width = 300") and text.endswith("}  # mine\n")
    assert load_config(p).gui.width == 900


def test_a_damaged_file_is_never_overwritten(tmp_path: Path) -> None:
    p = tmp_path / "config.toml"
    p.write_text("# mine\n[engine\nmax_workers = 2\n", encoding="utf-8")
    before = p.read_bytes()
    cfg = Config()
    cfg = cfg.updated({"engine": {"max_workers": 5}})
    with pytest.raises(ConfigError, match=r"config.toml: not valid TOML.*not overwritten"):
        save_config(cfg, p)
    with pytest.raises(ConfigError, match="not overwritten"):
        save_config_values(p, {"gui": {"left_width": 300}})
    assert p.read_bytes() == before


_keys = st.sampled_from(["a", "b", "c"])
_leaf = st.one_of(st.integers(-5, 5), st.text("xyz", max_size=3), st.booleans())
_tree = st.recursive(_leaf, lambda kids: st.dictionaries(_keys, kids, max_size=3), max_leaves=8)


def prune(d: dict) -> dict:
    """Drop empty tables (they hold no setting; TOML may not even spell an emptied super-table)."""
    out = {k: prune(v) if isinstance(v, dict) else v for k, v in d.items()}
    return {k: v for k, v in out.items() if v != {}}


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_keys, _tree, max_size=3), st.dictionaries(_keys, _tree, max_size=3))
def test_editing_by_the_changes_gives_the_new_data(before: dict, after: dict) -> None:
    import tomllib

    import tomlkit
    text = "# top comment\n" + tomlkit.dumps(before)
    edited = edit_toml(text, changed_values(before, after))
    assert prune(tomllib.loads(edited)) == prune(after)
    assert edited.startswith("# top comment\n")
