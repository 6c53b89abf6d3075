"""The shipped config.toml documents the defaults: loading it must give exactly the built-in defaults."""

from __future__ import annotations

from pathlib import Path

from conductor.config import Config, load_config

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_config_equals_the_defaults() -> None:
    # [gui] is the user's remembered layout: the app rewrites it on exit, so only the rest must match.
    shipped = load_config(ROOT / "config.toml")
    assert shipped.model_copy(update={"gui": Config().gui}) == Config()


def test_readme_starts_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().split("```")[1]
    assert "./scripts/run.sh" in head and "./scripts/test.sh" in head
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
