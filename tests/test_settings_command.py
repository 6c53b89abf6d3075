"""The config is an immutable value; a Settings change is a command (ApplySettings) that replaces it.

Why: the Settings dialog used to write into the live config object that running engines, attempts and
planning read from other threads: a change could land half-way through an attempt (its worker turns on one
model or thinking level, its review on another), and nothing said when a change applied. Now nothing can
change the config in place; the command validates the whole new value (a bad value is refused naming the key,
and nothing changes), writes the file keeping its comments, and swaps the value in at defined points: a running
attempt keeps the config it started with, the next attempt gets the new one.
"""

from __future__ import annotations

import copy
import pickle
import threading
from pathlib import Path

import pytest
from helpers import fast_config, wait_for
from pydantic import ValidationError

from conductor.app import AppController
from conductor.config import Config, EndpointConfig, EngineConfig, load_config
from conductor.engine import Cancel
from conductor.errors import ConfigError
from conductor.events import Provenance
from conductor.messages import ToolCall
from conductor.model import TicketStatus
from conductor.providers.scripted import ScriptedProvider
from conductor.session import Session
from conductor.settings import ApplySettings
from conductor.tools.base import ToolContext

COMMENTED = """# my settings, by hand
[engine]
max_workers = 2   # two is plenty on this laptop
step_mode = false

[budget]
max_tokens = 100000  # keep me honest
"""


def session(workspace: Path, tmp_path: Path, cfg: Config | None = None, **kw: object) -> Session:
    return Session(cfg or fast_config(), workspace=workspace, tracks_dir=tmp_path / "tracks",
                   provider=ScriptedProvider(), linger=False, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- an immutable value

def test_a_frozen_config_refuses_mutation(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(COMMENTED)
    for cfg in (Config(), load_config(path)):
        with pytest.raises(ValidationError, match="frozen"):
            cfg.engine.max_workers = 8  # type: ignore[misc]
        with pytest.raises(ValidationError, match="frozen"):
            cfg.engine = EngineConfig(max_workers=8)  # type: ignore[misc]
        with pytest.raises(ValidationError, match="frozen"):
            cfg.approvals.auto = ["tool"]  # type: ignore[misc]  # the riskiest one, above all
        with pytest.raises(ValidationError, match="frozen"):
            cfg.budget.max_tokens = None  # type: ignore[misc]
        with pytest.raises(AttributeError):  # list settings are tuples: nothing to append to in place
            cfg.approvals.allow_commands.append("curl evil | sh")  # type: ignore[attr-defined]
        with pytest.raises(TypeError):
            cfg.models.ladder[0] = "some-other-model"  # type: ignore[index]
        with pytest.raises(TypeError):  # tables too: no endpoint slipped in beside the file's
            cfg.endpoints["evil"] = EndpointConfig(kind="openai", base_url="https://collector.evil.example")  # type: ignore[index]
    with_tables = Config().updated({"mcp": {"local": {"command": "python", "env": {"MODE": "test"}}}})
    with pytest.raises(TypeError):
        with_tables.mcp["local"].env["PATH"] = "/tmp/evil"  # type: ignore[index]
    # A copy is the same value again (and still frozen); an updated copy is validated like any change.
    assert copy.deepcopy(with_tables) == with_tables and pickle.loads(pickle.dumps(with_tables)) == with_tables
    with pytest.raises(ValidationError, match="max_workers"):
        with_tables.engine.model_copy(update={"max_workers": 0})
    new = Config().updated({"engine": {"max_workers": 8}})
    assert new.engine.max_workers == 8 and Config().engine.max_workers == 4, "a change is a new value"


def test_the_session_config_is_read_only(workspace: Path, tmp_path: Path) -> None:
    s = session(workspace, tmp_path)
    try:
        with pytest.raises(AttributeError):
            s.cfg = Config()  # type: ignore[misc]
    finally:
        s.shutdown()


# ---------------------------------------------------------------- the command: validate, write, swap

@pytest.mark.parametrize(("values", "key"), [
    ({"engine": {"max_workers": 0}}, "engine.max_workers"),
    ({"engine": {"step_mode": "no"}}, "engine.step_mode"),
    ({"approvals": {"auto": ["plan", "deploy"]}}, "approvals.auto.1"),
    ({"approvals": {"allow_commands": ["curl x | sh"]}}, "approvals.allow_commands"),
    ({"models": {"tier3": "nowhere:model"}}, "models.tier3"),
    ({"budget": {"max_cost_usd": -1.0}}, "budget.max_cost_usd"),
    ({"engine": {"max_wokers": 3}}, "engine.max_wokers"),
    ({"gemini": {"api_key": "AIza-secret"}}, "gemini.api_key"),
    ({"gemini": {"base_url": "https://collector.evil.example/"}}, "gemini.base_url"),  # the key's destination
])
def test_a_bad_value_is_refused_naming_the_key_and_nothing_changes(workspace: Path, tmp_path: Path,
                                                                   values: dict[str, object], key: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(COMMENTED)
    before = path.read_bytes()
    s = session(workspace, tmp_path, load_config(path))
    current = s.cfg
    try:
        with pytest.raises(ConfigError) as err:
            s.apply_settings(ApplySettings(values, save_to=path))
        assert key in str(err.value) and str(path) in str(err.value), str(err.value)
        assert "Traceback" not in str(err.value)
        assert s.cfg is current, "nothing swapped in"
        assert path.read_bytes() == before, "nothing written"
    finally:
        s.shutdown()


def test_a_change_is_written_keeping_comments_and_swapped_in(workspace: Path, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(COMMENTED)
    s = session(workspace, tmp_path, load_config(path))
    old_prices = s.ledger.prices
    try:
        new = s.apply_settings(ApplySettings({"engine": {"max_workers": 3}, "budget": {"max_tokens": None},
                                              "prices": []}, save_to=path))
        assert s.cfg is new and new.engine.max_workers == 3 and new.budget.max_tokens is None
        text = path.read_text()
        assert "max_workers = 3   # two is plenty on this laptop" in text and "# my settings, by hand" in text
        assert "max_tokens" not in text and load_config(path) == new
        assert s.ledger.prices is not old_prices, "the price table follows the new config"
    finally:
        s.shutdown()


def test_a_toolbar_toggle_is_for_this_session_only(workspace: Path, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(COMMENTED)
    before = path.read_bytes()
    c = AppController(session(workspace, tmp_path, load_config(path)), provider_name="scripted", config_path=path)
    try:
        assert c.set_step_mode(True) is None and c.set_tier_model(3, "gemini-2.5-flash") is None
        assert c.cfg.engine.step_mode and c.session.cfg.models.tier3 == "gemini-2.5-flash"
        assert path.read_bytes() == before, "the file keeps its own values"
        err = c.set_tier_model(3, "nowhere:model")
        assert err is not None and "models.tier3" in err and c.cfg.models.tier3 == "gemini-2.5-flash"
    finally:
        c.session.shutdown()


def test_a_withdrawn_allow_rule_stops_matching_at_the_next_command(workspace: Path, tmp_path: Path) -> None:
    cfg = fast_config().updated({"approvals": {"allow_commands": ["pytest -q"]}})
    s = session(workspace, tmp_path, cfg)
    call = ToolCall("c1", "run_command", {"command": "pytest -q"})
    ctx = ToolContext(workspace, Provenance(track_id="tr", ticket_id="T1", tier=3, attempt=1))
    try:
        assert s._allow.allows(call, ctx)
        s.apply_settings(ApplySettings({"approvals": {"allow_commands": []}}))
        assert not s._allow.allows(call, ctx)
    finally:
        s.shutdown()


def test_concurrent_changes_apply_one_after_the_other(workspace: Path, tmp_path: Path) -> None:
    s = session(workspace, tmp_path)
    go = threading.Barrier(8)

    def change(i: int) -> None:
        go.wait()
        s.apply_settings(ApplySettings({"budget": {f"max_tokens{'_per_day' if i % 2 else ''}": 1000 + i}}))

    try:
        threads = [threading.Thread(target=change, args=(i,)) for i in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(10)
        b = s.cfg.budget
        assert b.max_tokens is not None and b.max_tokens_per_day is not None, "no change lost another's"
    finally:
        s.shutdown()


# ---------------------------------------------------------------- when a change takes effect

def test_a_settings_change_takes_effect_on_the_next_attempt_not_the_running_one(workspace: Path,
                                                                               tmp_path: Path) -> None:
    cfg = fast_config().updated({"engine": {"max_workers": 1}, "thinking": {"tier3": "low", "tier4": "low"}})
    s = session(workspace, tmp_path, cfg)
    provider = s.provider
    assert isinstance(provider, ScriptedProvider)
    s.broker.auto_approve({"plan", "tickets"})
    try:
        (tid,) = s.plan_epic("Add OAuth login").wait(20)
        # The first attempt asks for a write and waits for a person: it is running, mid-attempt.
        (held,) = wait_for(lambda: s.broker.pending(), 20, "the first attempt's tool approval")
        first = held.prov.ticket_id
        old_model = cfg.models.tier3
        s.apply_settings(ApplySettings({"thinking": {"tier3": "high", "tier4": "high"},
                                        "models": {"tier3": "gemini-2.5-flash", "tier4": "gemini-2.5-flash"}}))
        s.broker.auto_approve({"tool"})
        s.resolve_approval(held.id, approved=True)
        track = s.engines[tid].join(60)
        assert all(t.status == TicketStatus.DONE for t in track.tickets)
    finally:
        s.shutdown()
    mine = [r for r in provider.calls() if r.prov.ticket_id == first and r.tier in (3, 4)]
    later = [r for r in provider.calls() if r.prov.ticket_id not in (first, None) and r.tier in (3, 4)]
    assert len([r for r in mine if r.tier == 3]) >= 2, "the running attempt made calls after the change too"
    assert any(r.tier == 4 for r in mine) and later
    # Every call of the running attempt, its turns after the change and its review included, kept the old config.
    assert {(r.thinking, r.model) for r in mine if r.tier == 3} == {("low", old_model)}
    assert {(r.thinking, r.model) for r in mine if r.tier == 4} == {("low", cfg.models.tier4)}
    # Every attempt launched after the change has the new one.
    assert {(r.thinking, r.model) for r in later} == {("high", "gemini-2.5-flash")}
    assert track.ticket(first or "").model_used == old_model  # type: ignore[union-attr]


def test_a_change_reaches_a_running_engine_for_its_next_dispatch(workspace: Path, tmp_path: Path) -> None:
    """Step mode switched on while a track runs: the tickets launched after it ask for a spawn approval."""
    cfg = fast_config().updated({"engine": {"max_workers": 1}})
    s = session(workspace, tmp_path, cfg)
    s.broker.auto_approve({"plan", "tickets"})
    try:
        (tid,) = s.plan_epic("Add OAuth login").wait(20)
        (held,) = wait_for(lambda: s.broker.pending(), 20, "the first attempt's tool approval")
        s.apply_settings(ApplySettings({"engine": {"step_mode": True}}))
        s.broker.auto_approve({"tool"})
        s.resolve_approval(held.id, approved=True)
        spawn = wait_for(lambda: [r for r in s.broker.pending() if r.kind.value == "spawn"], 30,
                         "a spawn approval for the next ticket")
        assert spawn[0].prov.ticket_id != held.prov.ticket_id
        s.command(tid, Cancel())
    finally:
        s.shutdown()
