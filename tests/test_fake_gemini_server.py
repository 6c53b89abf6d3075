"""The fake Gemini server on its own, over raw HTTP (stdlib http.client): routes, framing, scripting,
recording and shutdown. The SDK's view of it is covered by tests/test_gemini_*.py."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from conductor.model import TicketPlan, TrackProposal
from conductor.testing.fake_gemini import (FakeGeminiServer, PipelineScript, RequestRecord, Script, build_events,
                                           classify_request, get_field, key_fingerprint, merge_events, with_usage)

KEY = "raw-http-test-key"


@pytest.fixture
def server() -> Iterator[FakeGeminiServer]:
    with FakeGeminiServer(Script(text="hello there", chunk_chars=5)) as s:
        yield s


def post(server: FakeGeminiServer, path: str, body: Any, key: str | None = KEY) -> http.client.HTTPResponse:
    u = urlsplit(server.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    headers = {"Content-Type": "application/json", **({"x-goog-api-key": key} if key else {})}
    conn.request("POST", path, body=json.dumps(body), headers=headers)
    return conn.getresponse()


def get(server: FakeGeminiServer, path: str) -> http.client.HTTPResponse:
    u = urlsplit(server.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("GET", path, headers={"x-goog-api-key": KEY})
    return conn.getresponse()


def sse_events(resp: http.client.HTTPResponse) -> list[dict]:
    raw = resp.read().decode()
    assert raw.endswith("\r\n\r\n")
    return [json.loads(block[len("data: "):]) for block in raw.split("\r\n\r\n") if block]


BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_stream_is_chunked_sse_with_cumulative_usage_and_a_final_finish(server: FakeGeminiServer,
                                                                        version: str) -> None:
    resp = post(server, f"/{version}/models/gemini-3.8-flash:streamGenerateContent?alt=sse", BODY)
    assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
    assert resp.getheader("Content-Type") == "text/event-stream"
    events = sse_events(resp)
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events) == "hello there"
    assert [("finishReason" in e["candidates"][0]) for e in events] == [False, False, True]
    counts = [e["usageMetadata"]["candidatesTokenCount"] for e in events]
    assert counts == sorted(counts)
    [rec] = server.requests()
    assert (rec.api_version, rec.model, rec.action) == (version, "gemini-3.8-flash", "streamGenerateContent")
    assert rec.query == {"alt": "sse"} and rec.key_matches(KEY)
    assert server.usage_sent() == [events[-1]["usageMetadata"]]


def test_unary_generate_merges_the_events(server: FakeGeminiServer) -> None:
    resp = post(server, "/v1/models/gemini-2.5-flash:generateContent", BODY)
    body = json.loads(resp.read())
    assert [p["text"] for p in body["candidates"][0]["content"]["parts"]] == ["hello", " ther", "e"]
    assert body["candidates"][0]["finishReason"] == "STOP"
    assert server.responses()[0].kind == "unary" and server.responses()[0].completed


def test_count_tokens_and_model_list(server: FakeGeminiServer) -> None:
    assert json.loads(post(server, "/v1/models/gemini-3.8-flash:countTokens", BODY).read())["totalTokens"] > 0
    models = json.loads(get(server, "/v1beta/models?pageSize=50").read())["models"]
    assert "models/gemini-3.8-flash" in [m["name"] for m in models]
    assert json.loads(get(server, "/v1/models/gemini-2.5-pro").read())["name"] == "models/gemini-2.5-pro"
    assert get(server, "/v1/models/nope").status == 404
    server.models_status = 500
    assert get(server, "/v1/models").status == 500
    assert post(server, "/v2/elsewhere", BODY).status == 404


def test_the_key_is_redacted_in_every_record_and_log(server: FakeGeminiServer,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="conductor.testing.fake_gemini")
    post(server, "/v1/models/m:streamGenerateContent?alt=sse", BODY).read()
    [rec] = server.requests()
    assert rec.headers["x-goog-api-key"] == "<redacted>" and rec.key_fingerprint == key_fingerprint(KEY)
    assert KEY not in json.dumps(rec.redacted()) and KEY not in repr(rec) and KEY not in caplog.text
    assert "<redacted>" in caplog.text


def test_http_errors_carry_retry_info_and_retry_after(server: FakeGeminiServer) -> None:
    server.set_script(Script.rate_limited(retry_delay="2s", retry_after="5"))
    resp = post(server, "/v1/models/m:streamGenerateContent?alt=sse", BODY)
    err = json.loads(resp.read())["error"]
    assert resp.status == 429 and resp.getheader("Retry-After") == "5"
    assert err["status"] == "RESOURCE_EXHAUSTED" and err["details"][0]["retryDelay"] == "2s"
    server.set_script(Script.unavailable())
    assert post(server, "/v1/models/m:generateContent", BODY).status == 503


def test_mid_stream_faults_are_framed_like_the_real_thing(server: FakeGeminiServer) -> None:
    server.set_script(Script.error_mid_stream(text=["a", "b"], after=1))
    events = sse_events(post(server, "/v1/models/m:streamGenerateContent?alt=sse", BODY))
    assert events[-1] == {"error": {"code": 503, "message": "The service is currently unavailable.",
                                    "status": "UNAVAILABLE"}}
    server.set_script(Script.cut(text=["a", "b"], after=1))
    with pytest.raises(http.client.IncompleteRead):
        post(server, "/v1/models/m:streamGenerateContent?alt=sse", BODY).read()
    server.set_script(Script.no_finish(text="abc"))
    events = sse_events(post(server, "/v1/models/m:streamGenerateContent?alt=sse", BODY))
    assert all("finishReason" not in e["candidates"][0] for e in events)
    assert server.wait_for_responses(3)
    # Recorded as each handler finishes, which need not be request order: compare as a multiset.
    assert sorted(r.kind for r in server.responses()) == ["cut", "error event", "no finish"]
    assert not any(r.completed for r in server.responses())


def test_blocked_prompt_and_safety_events() -> None:
    [blocked] = build_events(Script.prompt_blocked("SAFETY"), BODY)
    assert blocked["promptFeedback"]["blockReason"] == "SAFETY" and "candidates" not in blocked
    last = build_events(Script(text="x", finish_reason="SAFETY"), BODY)[-1]["candidates"][0]
    assert last["finishReason"] == "SAFETY" and last["safetyRatings"][0]["blocked"] is True


def test_function_calls_carry_the_thought_signature() -> None:
    events = build_events(Script(text="look", function_calls=[{"name": "list_dir", "args": {"path": "."}}],
                                 thought_signature="c2ln"), BODY)
    parts = events[-1]["candidates"][0]["content"]["parts"]
    assert parts == [{"functionCall": {"name": "list_dir", "args": {"path": "."}}, "thoughtSignature": "c2ln"}]
    merged = merge_events(events)["candidates"][0]["content"]["parts"]
    assert [list(p) for p in merged] == [["text"], ["functionCall", "thoughtSignature"]]


def test_sequence_scripts_count_every_request_and_role_scripts_count_their_own(server: FakeGeminiServer) -> None:
    server.set_script([Script(text="one"), Script(text="two")])
    texts = [sse_events(post(server, "/v1/models/m:streamGenerateContent?alt=sse", BODY))[0]
             ["candidates"][0]["content"]["parts"][0]["text"] for _ in range(3)]
    assert texts == ["one", "two", "two"]
    seen: list[tuple[str, int]] = []

    def responder(record: RequestRecord, n: int) -> Script:
        seen.append((record.role, n))
        return Script(text=f"{record.role}#{n}")

    server.set_script({"tier1": responder, "tier4": responder, "*": Script(text="other")})
    schema = lambda fields: {"generationConfig": {"response_schema": {"properties": dict.fromkeys(fields, {})}}}  # noqa: E731
    for fields in (["tracks"], ["verdict", "hint"], ["tracks"], []):
        post(server, "/v1/models/m:streamGenerateContent?alt=sse", {**BODY, **schema(fields)}).read()
    assert seen == [("tier1", 0), ("tier4", 0), ("tier1", 1)]


def test_classification_by_schema_tools_then_system_text() -> None:
    def rec(body: dict) -> RequestRecord:
        return RequestRecord(seq=1, method="POST", path="/", query={}, api_version="v1", model="m",
                             action="streamGenerateContent", headers={}, body=body)
    schema = {"responseSchema": TrackProposal.model_json_schema()}
    assert classify_request(rec({"generationConfig": schema})) == "tier1"
    assert classify_request(rec({"generation_config": {"response_json_schema": TicketPlan.model_json_schema()}})) \
        == "tier2"
    assert classify_request(rec({"tools": [{"function_declarations": [{"name": "list_dir"}]}]})) == "tier3"
    assert classify_request(rec({"systemInstruction": {"parts": [{"text": "You are the QA reviewer"}]}})) == "tier4"
    assert classify_request(rec({"system_instruction": {"parts": [{"text": "You are the Orchestrator."}]}})) \
        == "tier1"
    assert classify_request(rec({})) == "other"
    assert get_field({"thinking_budget": 3}, "thinkingBudget") == 3


def test_pipeline_script_answers_each_tier_and_remembers_its_usage(server: FakeGeminiServer) -> None:
    script = PipelineScript(tracks=2, tickets=3)
    server.set_script(script)

    def ask(extra: dict) -> str:
        events = sse_events(post(server, "/v1/models/m:streamGenerateContent?alt=sse", {**BODY, **extra}))
        return "".join(p.get("text", "") for e in events for p in e["candidates"][0]["content"]["parts"])

    schema = lambda model: {"generationConfig": {"responseSchema": model.model_json_schema()}}  # noqa: E731
    assert len(TrackProposal.model_validate_json(ask(schema(TrackProposal))).tracks) == 2
    plan = TicketPlan.model_validate_json(ask(schema(TicketPlan)))
    assert [(t.id, t.depends_on) for t in plan.tickets] == [("T1", []), ("T2", ["T1"]), ("T3", ["T1"])]
    tools = {"tools": [{"functionDeclarations": [{"name": "list_dir"}]}]}
    ask(tools)
    call = server.requests()[-1]
    assert call.role == "tier3"
    with_result = {**tools, "contents": [*BODY["contents"], {"role": "model", "parts": [{"text": "x"}]},
                                         {"role": "user", "parts": [{"functionResponse": {"name": "list_dir",
                                                                                          "response": {}}}]}]}
    assert ask(with_result).startswith("Work complete")
    assert server.usage_sent() == script.expected_usage
    assert len({u["promptTokenCount"] for u in script.expected_usage}) == 4  # distinctive per call
    assert "toolUsePromptTokenCount" in script.expected_usage[-1]


def test_with_usage_accepts_snake_case() -> None:
    s = with_usage(Script(text="x"), prompt_token_count=5, candidatesTokenCount=2)
    assert s.usage == {"promptTokenCount": 5, "candidatesTokenCount": 2}


def test_stop_wakes_slow_handlers_and_leaves_no_threads() -> None:
    before = {t.ident for t in threading.enumerate()}
    srv = FakeGeminiServer(Script(text=["a", "b"], chunk_delay_s=30)).start()
    resp = post(srv, "/v1/models/m:streamGenerateContent?alt=sse", BODY)
    assert resp.status == 200 and srv.wait_for_requests(1)
    srv.stop()
    assert [t for t in threading.enumerate() if t.ident not in before and t.is_alive()] == []
    with pytest.raises(RuntimeError):
        srv.url  # noqa: B018 - a stopped server has no URL
