"""Issue 9, class 2: secrets reach disk. An adversary's worker prints the app's secrets; none may reach a sink.

Secrets are planted in the environment the way a person's shell has them (an API key, PGPASSWORD, MYSQL_PWD,
a password inside DATABASE_URL, a custom *_TOKEN, an AWS secret). A scripted worker then runs commands that
print them: `printenv` (the child's own environment) and `cat /proc/<pid>/environ` of a process started with
those variables, standing for the app itself (a command can read its parent's /proc entry: same user). Then
EVERY file written under the tracks folder, the CLI's output, the text the model was sent, the GUI pane's text
and a log line are searched for every secret.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conductor import redact
from conductor.app.streams import StreamBuffer
from conductor.cli import Console
from conductor.config import Config
from conductor.messages import ToolCall
from conductor.providers.base import ProviderRequest
from conductor.providers.scripted import Reply, ScriptedProvider, demo_reply
from conductor.session import Session

SECRETS = {
    "GEMINI_API_KEY": "AIza" + "Sy9xQ" * 7,
    "PGPASSWORD": "pg-hunter2-planted",
    "MYSQL_PWD": "mysql-pw-31337x",
    "CUSTOM_SERVICE_TOKEN": "tok-5f2a9c1e77ab",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYPLANTED",
    "DATABASE_URL": "postgres://dbuser:dbpass-99817@db.internal:5432/app",
}
NEEDLES = [v for k, v in SECRETS.items() if k != "DATABASE_URL"] + ["dbpass-99817"]
"""What must appear nowhere (for the URL: its password)."""


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The secrets in our environment, and a process whose kernel-visible environment holds them (the app as a
    command sees it through /proc). Yields that process's pid."""
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    proc = subprocess.Popen(["sleep", "120"], env={**os.environ, **SECRETS})
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def one_ticket_plan() -> Reply:
    return Reply(text=json.dumps({"tickets": [{
        "id": "T1", "title": "Look at the environment", "description": "Print the environment.", "depends_on": [],
        "target_files": ["notes.md"], "acceptance_criteria": ["done"], "step_mode": False,
        "model_override": None}]}))


def leaking_worker(app_pid: int) -> ScriptedProvider:
    big = "x" * 20_000  # long output: the head/tail cut and the spill file both carry the text

    def t1(req: ProviderRequest, n: int) -> Reply:
        if n == 0:
            return Reply(text="printing the environment", tool_calls=(
                ToolCall("c1", "run_command", {"argv": ["printenv"]}),))
        if n == 1:
            return Reply(text="reading the app's environment", tool_calls=(
                ToolCall("c2", "run_command", {"argv": ["cat", f"/proc/{app_pid}/environ"]}),))
        if n == 2:
            return Reply(text="and once more in the middle of a long output", tool_calls=(
                ToolCall("c3", "write_file", {"path": "pad.txt", "content": big + "\n"}),))
        if n == 3:
            return Reply(text="", tool_calls=(
                ToolCall("c4", "run_command", {"argv": ["cat", "pad.txt", f"/proc/{app_pid}/environ", "pad.txt"]}),))
        return Reply(text="Done: I printed the environment.")

    return ScriptedProvider({2: [one_ticket_plan()], (3, "T1"): t1, 1: demo_reply, 4: demo_reply})


def all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def leaks(blob: bytes) -> list[str]:
    return [s for s in NEEDLES if s.encode() in blob]


def test_secrets_printed_by_commands_reach_no_file_no_output_and_not_the_model(tmp_path: Path, planted: int) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    tracks = tmp_path / "tracks"
    cfg = Config()
    # The person allowed exactly these commands (rules need no person to answer each time).
    cfg = cfg.updated({"approvals": {"allow_commands": ["printenv", f"cat /proc/{planted}/environ",
                                                        f"cat pad.txt /proc/{planted}/environ pad.txt"]}})
    provider = leaking_worker(planted)
    session = Session(cfg, workspace=ws, tracks_dir=tracks, provider=provider, linger=False)
    session.broker.auto_approve({"plan", "tickets", "spawn", "tool"})
    out = io.StringIO()
    try:
        assert Console(session, interactive=False, out=out).run(epic="inspect the environment", resume=None) == 0
    finally:
        session.shutdown()

    # The commands did run and did print the app's environment (else this test proves nothing).
    results = [m for req in provider.calls(3) for m in req.messages if m.role == "tool"]
    sent = "\n".join(json.dumps(r.to_json()) for r in results)
    assert "PGPASSWORD=" in sent and "DATABASE_URL=" in sent and "[REDACTED]" in sent

    files = all_files(tracks)
    names = {p.name for p in files}
    assert {"events.jsonl", "comms.jsonl", "track.toml"} <= names and any(n.endswith(".cmd.log") for n in names)
    found = {str(p.relative_to(tracks)): leaks(p.read_bytes()) for p in files}
    print(f"searched {len(files)} files, {sum(p.stat().st_size for p in files)} bytes")
    assert not {k: v for k, v in found.items() if v}, f"secrets written to disk: {found}"
    assert not leaks(out.getvalue().encode()), "the CLI printed a secret"
    assert not leaks(sent.encode()), "a secret was sent to the model"
    # printenv ran with a scrubbed environment: the variables are not even there to be redacted.
    printenv = next(r for r in results if r.tool_results[0].call_id == "c1").tool_results[0].output
    assert printenv is not None
    assert not any(f"{k}=" in printenv["output"] for k in SECRETS)


def test_child_processes_get_none_of_the_secret_variables(planted: int) -> None:
    env = redact.scrubbed_env()
    assert not set(SECRETS) & set(env)
    assert "SSH_AUTH_SOCK" not in env and env.get("PATH")


@pytest.mark.parametrize("name", ["PGPASSWORD", "MYSQL_PWD", "DB_PASSWD", "REDIS_PASS", "SMTP_CREDENTIALS",
                                  "NPM_TOKEN", "SENTRY_DSN", "MY_APP_SECRET_KEY", "SESSION_COOKIE", "GH_PAT",
                                  "JWT_PRIVATE", "OPENAI_API_KEY", "KEY"])
def test_every_secret_shaped_name_is_a_secret(name: str) -> None:
    assert redact.is_secret_env_name(name)


@pytest.mark.parametrize("name", ["PATH", "HOME", "PWD", "OLDPWD", "LANG", "TOKENIZERS_PARALLELISM", "PYTHONPATH",
                                  "DISPLAY", "KEYBOARD_LAYOUT"])
def test_ordinary_names_are_not(name: str) -> None:
    assert not redact.is_secret_env_name(name)


def test_credentials_inside_any_url_value_are_secrets_and_redacted_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM", "https://deploy:s3cr3t-url-pw@git.example.org/repo.git")
    assert "UPSTREAM" not in redact.scrubbed_env()
    shown = redact.text("cloning https://deploy:s3cr3t-url-pw@git.example.org/repo.git; pw s3cr3t-url-pw")
    assert "s3cr3t-url-pw" not in shown
    # Also a URL password no variable holds (pasted into a file the model read).
    assert "other-pw-123" not in redact.text("redis://:other-pw-123@cache:6379/0 and mysql://u:other-pw-123@h/db")


def test_a_secret_split_across_stream_chunks_is_still_caught(planted: int) -> None:
    stream = redact.current().stream()
    secret = SECRETS["PGPASSWORD"].encode()
    data = b"y" * 70_000 + secret + b"z" * 10
    out = b""
    for i in range(0, len(data), 4093):  # chunk edges fall inside the secret
        out += stream.feed(data[i:i + 4093])
    out += stream.flush()
    assert secret not in out and b"[REDACTED]" in out


def test_gui_pane_text_is_redacted_even_when_deltas_split_a_secret(planted: int) -> None:
    buf = StreamBuffer("tier3:T1@t", 20_000)
    s = SECRETS["MYSQL_PWD"]
    buf.append("the password is " + s[:5])
    buf.append(s[5:] + " ok")
    assert s not in buf.text and "[REDACTED]" in buf.text


def test_log_records_are_redacted(planted: int, caplog: pytest.LogCaptureFixture) -> None:
    redact.install_log_filter()
    with caplog.at_level(logging.INFO):
        logging.getLogger("conductor.test").info("connecting with %s", SECRETS["PGPASSWORD"])
    assert SECRETS["PGPASSWORD"] not in caplog.text and "[REDACTED]" in caplog.text


@pytest.mark.parametrize("secret", ['pa"ss\\\\word-123', "quote\"s-and\\nnewline-456", 'x","k":"v-789', "plain-secret-0001"])
def test_the_journal_redacts_secrets_whatever_json_does_to_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 secret: str) -> None:
    """The journal redacts each line's text in one pass: a secret with quotes, backslashes or JSON syntax in
    it is caught in its escaped form, and a line stays valid JSON that verifies."""
    from conductor import redact
    from conductor.records import ModelTurn
    from conductor.store import Journal

    monkeypatch.setenv("DB_PASSWORD", secret)
    assert redact.text(secret) == "[REDACTED]"
    j = Journal(tmp_path / "events.jsonl")
    j.append(ModelTurn(key="k1", message={"text": f"the password is {secret}!", secret: [secret, {"n": secret}]}))
    j.close()
    raw = (tmp_path / "events.jsonl").read_text()
    assert secret not in raw and json.dumps(secret)[1:-1] not in raw
    again = Journal(tmp_path / "events.jsonl")
    assert again.warnings == [] and [e.seq for e in again.entries()] == [1]
    assert "[REDACTED]" in again.entries()[0].data["message"]["text"]
