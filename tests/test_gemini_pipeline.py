"""The whole headless pipeline with `--provider gemini`: the real google-genai SDK against the fake Gemini
server (epic → tracks → tickets → workers with tool calls → review), and faults through `call_model`
asserting what a user would see. The ledger must equal, token for token, the usage the server sent."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from conductor import cli
from conductor.config import Config
from conductor.errors import BadRequest, OutputTruncated, ProviderUnavailable, SafetyBlocked
from conductor.events import EventQueue, Provenance, StreamReset
from conductor.messages import user
from conductor.model import TicketStatus, TrackProposal, TrackStatus
from conductor.providers.base import ProviderRequest
from conductor.providers.factory import make_provider
from conductor.providers.gemini import GeminiProvider
from conductor.session import Session
from conductor.testing.fake_gemini import FakeGeminiServer, PipelineScript, RequestRecord, Script
from conductor.tiers.call import CallDeps, call_model
from conductor.usage import PriceTable, UsageLedger

KEY = "pipeline-test-key"
ROLE_TIER = {"tier1": 1, "tier2": 2, "tier3": 3, "tier4": 4}


@pytest.fixture
def gemini_env(monkeypatch: pytest.MonkeyPatch, server: FakeGeminiServer) -> None:
    """What a user does to point `--provider gemini` at another endpoint."""
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    monkeypatch.setenv("CONDUCTOR_GEMINI_BASE_URL", server.url)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "README.md").write_text("# demo\n")
    return root


def as_tuple(u: dict[str, int]) -> tuple[int, ...]:
    return tuple(u.get(k, 0) for k in ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount",
                                       "cachedContentTokenCount", "toolUsePromptTokenCount"))


def sent_by_tier(server: FakeGeminiServer) -> dict[int, list[dict[str, int]]]:
    out: dict[int, list[dict[str, int]]] = {}
    for r in server.responses():
        if r.completed and r.usage is not None:
            out.setdefault(ROLE_TIER[r.role], []).append(r.usage)
    return out


def run_session(cfg: Config, ws: Path, tracks: Path) -> Session:
    session = Session(cfg, workspace=ws, tracks_dir=tracks, provider=make_provider("gemini", cfg), linger=False)
    session.broker.auto_approve({"plan", "tickets", "spawn", "tool"})
    track_ids = session.plan_epic("Add a friendly greeting to the README").wait(timeout=30)
    assert track_ids, "planning approved no track"
    for tid in track_ids:
        session.engines[tid].join(timeout=30)
    return session


@pytest.mark.usefixtures("gemini_env")
def test_pipeline_through_the_real_sdk_and_a_ledger_equal_to_what_the_server_sent(
        server: FakeGeminiServer, ws: Path, tmp_path: Path) -> None:
    session = run_session(Config(), ws, tmp_path / "tracks")
    try:
        assert isinstance(session.provider, GeminiProvider) and session.provider.base_url == server.url
        (engine,) = session.engines.values()
        assert engine.track.status == TrackStatus.DONE
        assert [(t.id, t.status) for t in engine.track.tickets] == [(f"T{i}", TicketStatus.DONE) for i in (1, 2, 3)]
        # Every tier spoke to the server; each worker asked for list_dir once, then answered.
        roles = Counter(r.role for r in server.generate_requests())
        assert roles == {"tier1": 1, "tier2": 1, "tier3": 6, "tier4": 3}
        for r in server.generate_requests(role="tier3"):
            if r.function_responses:
                assert r.function_responses[0]["name"] == "list_dir"
                assert r.function_responses[0]["response"]["ok"] is True
                assert "thoughtSignature" in r.model_turns[-1]["parts"][-1]
        # The ledger holds exactly the usage the server sent: every call, every count, nothing twice.
        ledger = [(r.usage.prompt_tokens, r.usage.output_tokens, r.usage.thinking_tokens, r.usage.cached_tokens,
                   r.usage.tool_use_prompt_tokens) for r in session.ledger.records()]
        assert sorted(ledger) == sorted(as_tuple(u) for u in server.usage_sent())
        assert not any(r.usage.partial for r in session.ledger.records())
        for tier, sent in sent_by_tier(server).items():
            tot = session.ledger.by_tier()[tier]
            assert (tot.calls, tot.prompt_tokens, tot.thinking_tokens) == (
                len(sent), sum(u["promptTokenCount"] for u in sent), sum(u["thoughtsTokenCount"] for u in sent))
    finally:
        session.shutdown()
    assert_key_in_no_file(tmp_path)


def assert_key_in_no_file(root: Path) -> None:
    """Journals, snapshots, outputs, comms logs: the key is in none of them."""
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files
    assert [p for p in files if KEY.encode() in p.read_bytes()] == []


def test_cli_run_with_provider_gemini(server: FakeGeminiServer, ws: Path, tmp_path: Path) -> None:
    """`conductor run --provider gemini` as a user runs it: a separate process, pointed at the fake by env."""
    env = {**os.environ, "GEMINI_API_KEY": KEY, "CONDUCTOR_GEMINI_BASE_URL": server.url}
    for var in ("GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GEMINI_BASE_URL"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "-m", "conductor.cli", "--tracks-dir", str(tmp_path / "tracks"), "run",
                           "--epic", "Add a greeting", "--workspace", str(ws), "--provider", "gemini",
                           "--approve", "all"], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for tier, sent in sorted(sent_by_tier(server).items()):
        line = (f"tier {tier}: {len(sent)} calls, {sum(u['promptTokenCount'] for u in sent)} prompt, "
                f"{sum(u['candidatesTokenCount'] for u in sent)} output, "
                f"{sum(u['thoughtsTokenCount'] for u in sent)} thinking, "
                f"{sum(u.get('cachedContentTokenCount', 0) for u in sent)} cached tokens")
        assert line in proc.stdout
    assert KEY not in proc.stdout + proc.stderr
    assert_key_in_no_file(tmp_path)


def test_cli_without_a_key_says_how_to_set_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    code = cli.main(["run", "--epic", "x", "--workspace", str(tmp_path), "--provider", "gemini"])
    err = capsys.readouterr().err
    assert code == 2 and "export GEMINI_API_KEY=" in err and "--provider scripted" in err


@pytest.mark.usefixtures("gemini_env")
def test_a_safety_block_in_one_worker_blocks_that_ticket_with_the_reason(
        server: FakeGeminiServer, ws: Path, tmp_path: Path) -> None:
    pipeline = PipelineScript()

    def responder(rec: RequestRecord, n: int) -> Script:
        if rec.role == "tier3" and "TICKET: T2" in rec.user_text:
            return Script(text="I will not", finish_reason="SAFETY")
        return pipeline(rec, n)

    server.set_script(responder)
    session = run_session(Config(), ws, tmp_path / "tracks")
    try:
        track = next(iter(session.engines.values())).track
        t2 = track.ticket("T2")
        assert t2.status == TicketStatus.BLOCKED and "safety" in (t2.blocked_reason or "").lower()
        assert "SAFETY" in (t2.blocked_reason or "")
        assert track.ticket("T1").status == track.ticket("T3").status == TicketStatus.DONE
        assert len([r for r in server.generate_requests(role="tier3") if "TICKET: T2" in r.user_text]) == 1
    finally:
        session.shutdown()


# --- faults through call_model (our retry layer on top of the SDK's) ---

SDK_ATTEMPTS = 2
MAX_RETRIES = 2


@pytest.fixture
def deps(server: FakeGeminiServer) -> Iterator[CallDeps]:
    cfg = Config()
    cfg = cfg.updated({"retry": {"initial_delay_s": 0.01, "max_delay_s": 0.05, "max_retries": MAX_RETRIES}})
    cfg = cfg.updated({"gemini": {"sdk_retry_attempts": SDK_ATTEMPTS}})
    provider = GeminiProvider(cfg, api_key=KEY, base_url=server.url, sdk_retry_initial_delay_s=0.01,
                              sdk_retry_max_delay_s=0.02)
    yield CallDeps(provider=provider, events=EventQueue(), ledger=UsageLedger(PriceTable(cfg.prices)), cfg=cfg)
    provider.close()


REQ = ProviderRequest(model="gemini-3.8-flash", tier=1, system="You are the orchestrator.",
                      messages=(user("EPIC: greet"),), response_schema=TrackProposal,
                      prov=Provenance(trace_id="t", tier=1))
GOOD = Script.json(PipelineScript().tracks_json(), usage={"promptTokenCount": 111, "candidatesTokenCount": 22,
                                                          "thoughtsTokenCount": 3, "totalTokenCount": 136})
PARTIAL = {"promptTokenCount": 111, "candidatesTokenCount": 5, "totalTokenCount": 116}


def call(deps: CallDeps):  # type: ignore[no-untyped-def]
    return call_model(REQ, deps, cancel=threading.Event())


@pytest.mark.parametrize("fault", [Script.error_mid_stream(after=1, usage=PARTIAL),
                                   Script.cut(after=1, usage=PARTIAL), Script.no_finish(usage=PARTIAL)],
                         ids=["error-event", "cut", "no-finish"])
def test_interrupted_stream_is_retried_and_completes(deps: CallDeps, server: FakeGeminiServer,
                                                     fault: Script) -> None:
    server.set_script([fault, GOOD])
    result = call(deps)
    assert result.finish == "stop" and result.retries == 1
    assert TrackProposal.model_validate_json(result.text).tracks
    assert len(server.generate_requests()) == 2
    resets = [e for e in deps.events.drain(max_items=1000) if isinstance(e, StreamReset)]
    assert len(resets) == 1 and "StreamInterrupted" in resets[0].reason
    assert server.wait_for_responses(2)
    last_seen = server.responses()[0].usage  # the last counts the broken stream delivered
    usages = sorted((r.usage.partial, r.usage.output_tokens) for r in deps.ledger.records())
    assert usages == [(False, 22), (True, last_seen["candidatesTokenCount"])]  # kept, marked partial


def test_rate_limit_is_retried_after_the_server_delay(deps: CallDeps, server: FakeGeminiServer) -> None:
    server.set_script([Script.rate_limited(retry_delay="0.05s"), GOOD])
    assert call(deps).retries == 1
    assert len(server.generate_requests()) == 2  # one 429 (the SDK leaves it to us), one success


def test_persistent_500_fails_within_the_one_request_budget(deps: CallDeps, server: FakeGeminiServer) -> None:
    # The SDK's retries count in our budget (they used to multiply it). A 503 never fails the call: it waits
    # for the model (tests/test_storms.py); a 500 may be the request's own fault, so it fails.
    server.set_script(Script.unavailable(500))
    with pytest.raises(ProviderUnavailable):
        call(deps)
    assert len(server.generate_requests()) <= MAX_RETRIES + SDK_ATTEMPTS


@pytest.mark.parametrize("fault, error", [(Script.bad_request(400), BadRequest),
                                          (Script(text="no", finish_reason="SAFETY"), SafetyBlocked),
                                          (Script.prompt_blocked("BLOCKLIST"), SafetyBlocked),
                                          (Script(text='{"tracks": [', finish_reason="MAX_TOKENS"), OutputTruncated)],
                         ids=["400", "safety", "prompt-blocked", "max-tokens"])
def test_permanent_outcomes_are_not_retried(deps: CallDeps, server: FakeGeminiServer, fault: Script,
                                            error: type) -> None:
    server.set_script([fault, GOOD])
    with pytest.raises(error) as info:
        call(deps)
    assert len(server.generate_requests()) == 1
    if error is SafetyBlocked:
        assert "SAFETY" in str(info.value) or "BLOCKLIST" in str(info.value)
