"""The comms log: one JSON line per model request/response and tool call/result, secrets redacted, thread-safe."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest

from conductor.approvals import ApprovalBroker
from conductor.comms import CommsLog, read_comms
from conductor.events import Provenance
from conductor.messages import ToolCall
from conductor.store import Journal
from conductor.tools import ToolGate, workspace_toolbox
from conductor.tools.base import ToolContext
from conductor.redact import Redactor
from conductor.tools.testkit import ApprovalWaiter, Background

PROV = Provenance(trace_id="r", track_id="T1", ticket_id="K2", tier=3, attempt=1)
GEMINI_KEY = "AIzaSyB" + "x" * 32          # 39 chars: the real key shape
OTHER_KEY = "AIzaSyQ" + "Z9_-" * 8          # a key that is in no variable: caught by the pattern


@pytest.fixture()
def keys(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"GEMINI_API_KEY": GEMINI_KEY, "GOOGLE_API_KEY": "google-secret-value-123",
           "ACME_API_KEY": "acme-secret-value-456", "CI_DEPLOY_TOKEN": "deploy-token-789",
           "WEBHOOK_SECRET": "whsec-abcdef-0123"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def test_line_format(tmp_path: Path) -> None:
    log = CommsLog(tmp_path / "T1" / "comms.jsonl")
    log.log("model_request", PROV, {"model": "m", "prompt": "hello"})
    log.close()
    [rec] = read_comms(tmp_path / "T1" / "comms.jsonl")
    assert set(rec) == {"ts", "kind", "tier", "track_id", "ticket_id", "attempt", "data"}
    assert (rec["kind"], rec["tier"], rec["track_id"], rec["ticket_id"], rec["attempt"]) == ("model_request", 3,
                                                                                              "T1", "K2", 1)
    assert rec["data"] == {"model": "m", "prompt": "hello"} and rec["ts"] > 0


def test_secrets_are_redacted_everywhere(tmp_path: Path, keys: dict[str, str]) -> None:
    path = tmp_path / "comms.jsonl"
    with CommsLog(path) as log:
        log.log("model_response", PROV, {
            "text": f"the key is {GEMINI_KEY} and {keys['GOOGLE_API_KEY']}",
            "nested": [{"auth": f"Bearer {keys['CI_DEPLOY_TOKEN']}"}, keys["ACME_API_KEY"]],
            keys["WEBHOOK_SECRET"]: "as a dict key", "other": f"x{OTHER_KEY}y",
            "pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
            "obj": Path(f"/tmp/{GEMINI_KEY}"),  # not JSON: rendered with str(), then redacted
        })
    raw = path.read_text()
    for v in [*keys.values(), OTHER_KEY, "MIIE"]:
        assert v not in raw
    rec = read_comms(path)[0]["data"]
    assert rec["text"] == "the key is [REDACTED] and [REDACTED]"
    assert rec["nested"] == [{"auth": "Bearer [REDACTED]"}, "[REDACTED]"]
    assert rec["[REDACTED]"] == "as a dict key" and rec["other"] == "x[REDACTED]y"
    assert rec["obj"] == "/tmp/[REDACTED]"


def test_short_values_are_not_redacted_as_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEATURE_TOKEN", "1")
    with CommsLog(tmp_path / "c.jsonl") as log:
        log.log("note", PROV, {"n": "version 1.1"})
    assert read_comms(tmp_path / "c.jsonl")[0]["data"] == {"n": "version 1.1"}


def test_redactor_prefers_the_longest_secret() -> None:
    r = Redactor(["abcdefgh", "abcdefgh-ijkl"])
    assert r.text("x abcdefgh-ijkl y abcdefgh") == "x [REDACTED] y [REDACTED]"


def test_concurrent_writers_never_tear_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    log = CommsLog(path)
    start = threading.Barrier(8)

    def writer(n: int) -> None:
        start.wait()
        for i in range(200):
            log.log("tool_call", PROV.with_(ticket_id=f"K{n}"), {"i": i, "blob": "x" * 2000})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 1600 and all(json.loads(ln)["data"]["blob"] == "x" * 2000 for ln in lines)
    per = {f"K{n}": [json.loads(ln)["data"]["i"] for ln in lines if f'"K{n}"' in ln] for n in range(8)}
    assert all(v == list(range(200)) for v in per.values())


def test_the_gate_logs_calls_approvals_and_results(tmp_path: Path, keys: dict[str, str]) -> None:
    """S3 in miniature: a key in the environment appears in neither the comms log nor the journal, even when
    the model writes it into a file and a command tries to print the environment."""
    ws = tmp_path / "ws"
    ws.mkdir()
    comms = CommsLog(tmp_path / "comms.jsonl")
    journal = Journal(tmp_path / "events.jsonl")
    broker = ApprovalBroker()
    waiter = ApprovalWaiter(broker)
    gate = ToolGate(workspace_toolbox(ws), broker, journal, comms=comms)
    ctx = ToolContext(ws, PROV)
    env_dump = ToolCall("c2", "run_command", {"argv": [sys.executable, "-c", "import os; print(dict(os.environ))"]})
    job = Background(lambda: [gate.run(c, ctx)[0] for c in
                              [ToolCall("c1", "write_file", {"path": "k.txt", "content": f"key={GEMINI_KEY}"}),
                               env_dump]])
    for _ in range(2):
        broker.resolve(waiter.next().id, approved=True)
    results = job.result()
    assert all(r.ok for r in results)
    assert GEMINI_KEY not in results[1].output["output"]  # the command's environment had no key
    gate.run(env_dump, ctx)  # replayed: logged as such
    comms.close()
    kinds = [r["kind"] for r in read_comms(tmp_path / "comms.jsonl")]
    assert kinds == ["tool_call", "approval", "tool_result", "tool_call", "approval", "tool_result", "tool_result"]
    raw = (tmp_path / "comms.jsonl").read_text()
    assert GEMINI_KEY not in raw and "key=[REDACTED]" in raw
    assert all(v not in raw for v in keys.values())
    assert read_comms(tmp_path / "comms.jsonl")[-1]["data"]["replayed"] is True
    journal.close()
    assert all(v not in (tmp_path / "events.jsonl").read_text() for v in keys.values())
