"""The API key: where it comes from, and that it never shows up anywhere but the request header.
Also: importing the provider does not import the SDK."""

from __future__ import annotations

import json
import logging
import pickle
import subprocess
import sys
import threading
import traceback

import pytest

from conductor.config import Config
from conductor.errors import MissingApiKey, ProviderError
from conductor.messages import Message, ToolResult, ToolSpec, user
from conductor.model import Review
from conductor.providers.base import ProviderRequest
from conductor.providers.gemini import GeminiProvider
from conductor.testing.fake_gemini import FakeGeminiServer, Script

CANARY = "AIzaSyCANARY-conductor-leak-test-7f3e9b21"


# --- from_env ---

def test_from_env_prefers_google_api_key(monkeypatch: pytest.MonkeyPatch, server: FakeGeminiServer) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-key")
    monkeypatch.setenv("GOOGLE_API_KEY", "google-key")
    monkeypatch.setenv("CONDUCTOR_GEMINI_BASE_URL", server.url)
    p = GeminiProvider.from_env(Config())
    try:
        list(p.stream(ProviderRequest(model="gemini-3.8-flash", tier=4, system="QA", messages=(user("x"),),
                                      response_schema=Review), threading.Event()))
    finally:
        p.close()
    [rec] = server.generate_requests()
    assert rec.key_matches("google-key") and not rec.key_matches("gemini-key")
    assert p.base_url == server.url and p.offline


def test_from_env_uses_gemini_api_key_alone() -> None:
    p = GeminiProvider.from_env(Config(), environ={"GEMINI_API_KEY": " gemini-key \n"}, base_url="http://127.0.0.1:9")
    assert p._key.reveal() == "gemini-key"


def test_missing_key_says_how_to_set_one_and_how_to_run_offline() -> None:
    with pytest.raises(MissingApiKey) as info:
        GeminiProvider.from_env(Config(), environ={"GEMINI_API_KEY": "  "})
    assert "export GEMINI_API_KEY=" in str(info.value) and "--provider scripted" in str(info.value)


def test_config_base_url_is_used_when_no_override() -> None:
    cfg = Config()
    cfg = cfg.updated({"gemini": {"base_url": "http://localhost:1234"}})
    p = GeminiProvider(cfg, api_key="k")
    assert p.base_url == "http://localhost:1234" and p.offline
    assert GeminiProvider(cfg, api_key="k", base_url="http://127.0.0.2:5").base_url == "http://127.0.0.2:5"


# --- the key never leaks ---

def _exercise(p: GeminiProvider, server: FakeGeminiServer) -> list[BaseException]:
    """Run calls that succeed, fail before and inside the stream, list models; return what was raised."""
    tools = (ToolSpec("list_dir", "List.", {"type": "object", "properties": {"path": {"type": "string"}}}),)
    req = ProviderRequest(model="gemini-3.8-flash", tier=3, system="worker", messages=(user("go"),), tools=tools)
    fin = list(p.stream(req, threading.Event()))[-1]
    call = fin.message.tool_calls[0]
    tool_turn = Message(role="tool", tool_results=(ToolResult(call.id, call.name, True, {"entries": []}),))
    list(p.stream(ProviderRequest(model="gemini-3.8-flash", tier=3, system="worker",
                                  messages=(user("go"), fin.message, tool_turn), tools=tools), threading.Event()))
    raised: list[BaseException] = []
    for script in (Script.bad_request(400, "API key not valid."), Script.bad_request(403), Script.rate_limited(),
                   Script.unavailable(), Script.error_mid_stream(), Script.cut(), Script.no_finish()):
        server.set_script(script)
        try:
            list(p.stream(req, threading.Event()))
        except ProviderError as exc:
            raised.append(exc)
    server.models_status = 401
    assert p.list_models() == []
    return raised


def test_the_key_never_appears_in_logs_errors_reprs_or_server_records(
        server: FakeGeminiServer, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, the SDK's and httpx2's included
    p = GeminiProvider(Config(), api_key=CANARY, base_url=server.url, sdk_retry_initial_delay_s=0.01,
                       sdk_retry_max_delay_s=0.02)
    try:
        raised = _exercise(p, server)
        assert len(raised) == 7
        texts = [caplog.text, repr(p), str(p), repr(vars(p)), repr(p._key), str(p._key)]
        for exc in raised:
            texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
            assert exc.__cause__ is None and exc.__context__ is None  # nothing chains to the SDK's request
        texts += [json.dumps(r.redacted()) for r in server.requests()] + [repr(server.requests())]
        out, err = capsys.readouterr()
        texts += [out, err]
        assert all(r.key_matches(CANARY) for r in server.requests())  # it was sent, in the header only
        leaks = [t[:200] for t in texts if CANARY in t]
        assert leaks == []
        with pytest.raises(TypeError):
            pickle.dumps(p._key)
    finally:
        p.close()


# --- lazy import ---

def test_importing_the_provider_does_not_import_the_sdk() -> None:
    code = ("import sys\n"
            "import conductor.providers.gemini, conductor.providers.gemini_mapping, conductor.testing.fake_gemini\n"
            "import conductor.providers.factory\n"
            "bad = sorted(m for m in sys.modules if m.startswith(('google.genai', 'httpx2')))\n"
            "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
