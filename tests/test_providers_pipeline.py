"""The whole pipeline through the OpenAI-compatible and Anthropic providers (real SDKs, fake servers, faults
included), a mixed run with a different endpoint per tier, and `conductor run --provider openai --model`.

The ledger must equal, token for token, the usage each server delivered, and no key may reach any file."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conductor.config import Config, parse_config
from conductor.model import TicketStatus, TrackStatus, Usage
from conductor.providers.factory import make_provider
from conductor.session import Session
from conductor.testing.fake_anthropic import FakeAnthropicServer
from conductor.testing.fake_gemini import FakeGeminiServer, PipelineScript, RequestRecord, Script
from conductor.testing.fake_openai import FakeOpenAIServer, Quirks

OPENAI_KEY = "sk-test-openai-key-0001"
ANTHROPIC_KEY = "sk-ant-test-key-0002"
GEMINI_KEY = "gemini-test-key-0003"
KEYS = (OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY)


def openai_tuple(u: dict[str, Any]) -> tuple[int, ...]:
    """OpenAI usage as our (prompt, output, thinking, cached) — reasoning moved out of the completion."""
    reasoning = (u.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)
    return (u["prompt_tokens"], u["completion_tokens"] - reasoning, reasoning,
            (u.get("prompt_tokens_details") or {}).get("cached_tokens", 0))


def anthropic_tuple(u: dict[str, Any]) -> tuple[int, ...]:
    thinking = (u.get("output_tokens_details") or {}).get("thinking_tokens", 0)
    return (u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"],
            u["output_tokens"] - thinking, thinking, u["cache_read_input_tokens"])


def ours(u: Usage) -> tuple[int, ...]:
    return (u.prompt_tokens, u.output_tokens, u.thinking_tokens, u.cached_tokens)


def delivered(server: FakeGeminiServer, convert: Callable[[dict[str, Any]], tuple[int, ...]]) -> list[tuple[int, ...]]:
    return [convert(r.usage) for r in server.responses() if r.completed and r.usage is not None]


def run_session(cfg: Config, ws: Path, tracks: Path, provider_name: str, env: dict[str, str]) -> Session:
    session = Session(cfg, workspace=ws, tracks_dir=tracks, provider=make_provider(provider_name, cfg, env=env),
                      linger=False)
    session.broker.auto_approve({"plan", "tickets", "spawn", "tool"})
    track_ids = session.plan_epic("Add a friendly greeting to the README").wait(timeout=60)
    assert track_ids, "planning approved no track"
    for tid in track_ids:
        session.engines[tid].join(timeout=60)
    return session


def assert_no_key_in_any_file(root: Path) -> None:
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files
    for key in KEYS:
        assert [p for p in files if key.encode() in p.read_bytes()] == []


def with_faults(pipeline: PipelineScript, fault_for: dict[str, Script]) -> Callable[[RequestRecord, int], Script]:
    """The pipeline script, with each role's FIRST request answered by a fault (then normally)."""
    seen: set[str] = set()

    def responder(rec: RequestRecord, n: int) -> Script:
        if rec.role in fault_for and rec.role not in seen:
            seen.add(rec.role)
            return fault_for[rec.role]
        return pipeline(rec, n)
    return responder


FAULTS = {"tier1": Script.unavailable(503), "tier2": Script(text="half an answer " * 4, cut_after=2, chunk_chars=8),
          "tier3": Script.rate_limited(retry_after="0"), "tier4": Script(text="abc", error_after=1)}


def fast_cfg(data: dict[str, Any]) -> Config:
    cfg = parse_config(data)
    cfg = cfg.updated({"retry": {"initial_delay_s": 0.01, "max_delay_s": 0.05}})
    return cfg


def check_done(session: Session) -> None:
    (engine,) = session.engines.values()
    assert engine.track.status == TrackStatus.DONE
    assert [t.status for t in engine.track.tickets] == [TicketStatus.DONE] * 3


@pytest.mark.parametrize("quirks", [Quirks(), Quirks(choices_null_final=True, tool_index=False)],
                         ids=["openai", "vllm-ollama-quirks"])
def test_pipeline_through_openai_with_faults_and_an_exact_ledger(tmp_path: Path, workspace: Path,
                                                                 quirks: Quirks) -> None:
    with FakeOpenAIServer(with_faults(PipelineScript(), FAULTS), quirks=quirks) as server:
        env = {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": server.url + "/v1"}
        cfg = fast_cfg({"models": {"tier1": "gpt-5", "tier2": "gpt-5", "tier3": "gpt-5-mini",
                                   "tier4": "gpt-5-mini", "ladder": ["gpt-5-mini", "gpt-5"]}})
        session = run_session(cfg, workspace, tmp_path / "tracks", "openai", env)
        try:
            check_done(session)
            complete = [r for r in session.ledger.records() if not r.usage.partial]
            assert sorted(ours(r.usage) for r in complete) == sorted(delivered(server, openai_tuple))
            assert not any(r.usage.estimated for r in complete)
            assert all(r.usage.cost_usd is not None for r in complete)  # gpt-5 / gpt-5-mini are priced
            broken = [r for r in session.ledger.records() if r.usage.partial]
            assert broken and all(r.usage.estimated for r in broken)  # the cut and the error event: estimated
            assert {r.role for r in server.generate_requests()} == {"tier1", "tier2", "tier3", "tier4"}
            assert all(r.key_matches(OPENAI_KEY) for r in server.generate_requests())
        finally:
            session.shutdown()
    assert_no_key_in_any_file(tmp_path)


def test_pipeline_through_anthropic_with_faults_and_an_exact_ledger(tmp_path: Path, workspace: Path) -> None:
    pipeline = PipelineScript()
    faults = {**FAULTS, "tier3": Script(http_status=529, error_message="Overloaded")}
    with FakeAnthropicServer(with_faults(pipeline, faults)) as server:
        env = {"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_BASE_URL": server.url}
        cfg = fast_cfg({"models": {"tier1": "claude-haiku-4-5", "tier2": "claude-haiku-4-5",
                                   "tier3": "claude-haiku-4-5", "tier4": "claude-haiku-4-5",
                                   "ladder": ["claude-haiku-4-5", "claude-haiku-4-5"]}})
        session = run_session(cfg, workspace, tmp_path / "tracks", "anthropic", env)
        try:
            check_done(session)
            complete = [r for r in session.ledger.records() if not r.usage.partial]
            assert sorted(ours(r.usage) for r in complete) == sorted(delivered(server, anthropic_tuple))
            assert all(r.usage.cost_usd is not None and not r.usage.estimated for r in complete)
            # Every worker's second turn sent the first one back verbatim, tool_use and all.
            for rec in server.generate_requests(role="tier3"):
                if rec.function_responses:
                    assert rec.function_responses[0]["name"] == "list_dir"
                    assert rec.model_turns[-1]["content"][-1]["type"] == "tool_use"
        finally:
            session.shutdown()
    assert_no_key_in_any_file(tmp_path)


def test_an_endpoint_refusing_include_usage_completes_with_usage_marked_estimated(tmp_path: Path,
                                                                                 workspace: Path) -> None:
    with FakeOpenAIServer(PipelineScript(), quirks=Quirks(usage="reject_options")) as server:
        cfg = fast_cfg({"endpoints": {"local": {"kind": "openai", "base_url": server.url + "/v1"}},
                        "models": {"tier1": "local:llama3.1:8b", "tier2": "local:llama3.1:8b",
                                   "tier3": "local:llama3.1:8b", "tier4": "local:llama3.1:8b",
                                   "ladder": ["local:llama3.1:8b"]}})
        session = run_session(cfg, workspace, tmp_path / "tracks", "gemini", {})
        try:
            check_done(session)
            records = session.ledger.records()
            assert records and all(r.usage.estimated and r.usage.prompt_tokens > 0 for r in records)
            assert all(r.usage.cost_usd is None for r in records)  # a local model is not free unless you say so
            assert {r.model for r in records} == {"local:llama3.1:8b"}
            refused = [r for r in server.responses() if r.kind == "http 400 stream_options"]
            assert len(refused) == 1  # asked once, learned, never again
            from conductor.app.usage_view import build_usage_view
            view = build_usage_view(session.ledger, cfg.budget, lambda _: "")
            assert view.total is not None and "estimated" in view.total.label and view.total.prompt.startswith("~")
        finally:
            session.shutdown()


def test_mixed_tiers_in_one_run(tmp_path: Path, workspace: Path) -> None:
    """Tier 1 on Gemini, Tier 2 on Anthropic, Tier 3 on a local OpenAI-compatible server, Tier 4 on OpenAI."""
    with FakeGeminiServer(PipelineScript()) as gemini, FakeAnthropicServer(PipelineScript()) as claude, \
            FakeOpenAIServer(PipelineScript(), quirks=Quirks(tool_index=False)) as local, \
            FakeOpenAIServer(PipelineScript()) as openai_:
        env = {"GEMINI_API_KEY": GEMINI_KEY, "CONDUCTOR_GEMINI_BASE_URL": gemini.url,
               "ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_BASE_URL": claude.url,
               "OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": openai_.url + "/v1"}
        cfg = fast_cfg({"endpoints": {"local": {"kind": "openai", "base_url": local.url + "/v1", "free": True}},
                        "models": {"tier1": "gemini-3.8-flash", "tier2": "anthropic:claude-haiku-4-5",
                                   "tier3": "local:qwen3-coder", "tier4": "openai:gpt-5-mini",
                                   "ladder": ["local:qwen3-coder"]}})
        session = run_session(cfg, workspace, tmp_path / "tracks", "gemini", env)
        try:
            check_done(session)
            assert {r.role for r in gemini.generate_requests()} == {"tier1"}
            assert {r.role for r in claude.generate_requests()} == {"tier2"}
            assert {r.role for r in local.generate_requests()} == {"tier3"}
            assert {r.role for r in openai_.generate_requests()} == {"tier4"}
            assert local.generate_requests()[0].key_fingerprint is not None  # a placeholder, never a real key
            assert not any(r.key_matches(k) for r in local.generate_requests() for k in KEYS)
            by_model = session.ledger.by_model()
            assert set(by_model) == {"gemini-3.8-flash", "anthropic:claude-haiku-4-5", "local:qwen3-coder",
                                     "openai:gpt-5-mini"}
            assert by_model["local:qwen3-coder"].cost_usd == 0.0  # free because the config says so
            assert by_model["anthropic:claude-haiku-4-5"].cost_usd and by_model["openai:gpt-5-mini"].cost_usd
            by_tier = session.ledger.by_tier()
            assert by_tier[2].prompt_tokens == sum(anthropic_tuple(u)[0] for u in
                                                   [r.usage for r in claude.responses() if r.completed])
            assert by_tier[4].output_tokens == sum(openai_tuple(r.usage)[1] for r in openai_.responses()
                                                   if r.completed and r.usage)
        finally:
            session.shutdown()
    assert_no_key_in_any_file(tmp_path)


def test_cli_run_with_provider_openai_and_model(tmp_path: Path, workspace: Path) -> None:
    with FakeOpenAIServer(PipelineScript()) as server:
        env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
        env.update({"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": server.url + "/v1"})
        proc = subprocess.run([sys.executable, "-m", "conductor.cli", "--tracks-dir", str(tmp_path / "tracks"),
                               "run", "--epic", "Add a greeting", "--workspace", str(workspace), "--provider",
                               "openai", "--model", "gpt-5-mini", "--approve", "all"], cwd=tmp_path, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        models = {r.model for r in server.generate_requests()}
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert models == {"gpt-5-mini"} and "tier 3:" in proc.stdout
    assert OPENAI_KEY not in proc.stdout + proc.stderr
    assert_no_key_in_any_file(tmp_path)


def test_cli_provider_anthropic_without_a_key_names_the_variable(tmp_path: Path, workspace: Path,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from conductor import cli
    monkeypatch.chdir(tmp_path)
    code = cli.main(["run", "--epic", "x", "--workspace", str(workspace), "--provider", "anthropic",
                     "--model", "claude-haiku-4-5"])
    err = capsys.readouterr().err
    assert code == 2 and "ANTHROPIC_API_KEY" in err and "tier1" in err
    code = cli.main(["run", "--epic", "x", "--workspace", str(workspace), "--provider", "openai"])
    assert code == 2 and "--model" in capsys.readouterr().err


def test_cli_on_a_configured_local_endpoint_that_reports_no_usage_says_estimated(
        tmp_path: Path, workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from conductor import cli
    with FakeOpenAIServer(PipelineScript(), quirks=Quirks(usage="never")) as server:
        config = tmp_path / "conductor.toml"
        config.write_text(f'[endpoints.local]\nkind = "openai"\nbase_url = "{server.url}/v1"\n', "utf-8")
        monkeypatch.chdir(tmp_path)
        code = cli.main(["--config", str(config), "--tracks-dir", str(tmp_path / "tracks"), "run", "--epic", "greet",
                         "--workspace", str(workspace), "--provider", "local", "--model", "llama3.1:8b",
                         "--approve", "all"])
        out = capsys.readouterr().out
        assert {r.model for r in server.generate_requests()} == {"llama3.1:8b"}
    assert code == 0, out[-2000:]
    for tier in (1, 2, 3, 4):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(f"tier {tier}:"))
        assert "cost unknown" in line and "ESTIMATED" in line  # a local model: unknown cost, estimated counts
