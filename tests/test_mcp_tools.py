"""MCP servers as Tier 3 tool sources, with the official SDK (mcp 2.x) against a real server: in-process
(`Client(MCPServer)`) and as a real stdio subprocess (conductor/testing/mcp_server.py).

Why: an MCP tool runs third-party code, so every call must pass the approval gate (asked, run after approval,
refused after a rejection with the reason back to the model); a slow call must fail alone and leave the client
usable; a server that will not start or dies must be named in a plain message, never a traceback; its stderr
belongs in the ticket's log, not on our terminal; and the one thread that owns each client must be joined.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from helpers import preview_of, tool_of

from conductor.approval_payloads import McpCallPreview
from conductor.approvals import ApprovalBroker
from conductor.config import Config, McpServerConfig, parse_config
from conductor.errors import Cancelled, ConfigError
from conductor.events import ErrorRaised, Provenance
from conductor.messages import ToolCall, ToolResult
from conductor.store import Journal
from conductor.testing.mcp_server import build_server
from conductor.tools import ToolGate, workspace_toolbox
from conductor.tools.base import ToolContext
from conductor.tools.mcp_client import InProcessTarget, McpConnection, StdioTarget
from conductor.tools.mcp_tools import McpServers, model_schema
from conductor.tools.schema import problems
from conductor.tools.testkit import ApprovalWaiter, Background

PY = sys.executable
PROV = Provenance(trace_id="run-1", track_id="T1", ticket_id="K7", tier=3, attempt=2)
STDIO_ARGS = ("-m", "conductor.testing.mcp_server")


def stdio_config(*extra: str, timeout: float = 5.0, **kw: Any) -> McpServerConfig:
    return McpServerConfig(command=PY, args=[*STDIO_ARGS, *extra], call_timeout_s=timeout, **kw)


class Rig:
    """A workspace, a journal, a broker, a waiter that sees every approval request, MCP servers as a tool
    source of the workspace toolbox, and the gate every call goes through."""

    def __init__(self, tmp: Path, servers: McpServers) -> None:
        self.tmp = tmp
        self.ws = tmp / "ws"
        self.ws.mkdir(exist_ok=True)
        self.outputs = tmp / "track" / "outputs"
        self.journal = Journal(tmp / "track" / "events.jsonl")
        self.broker = ApprovalBroker()
        self.waiter = ApprovalWaiter(self.broker)
        self.servers = servers
        self.cancel = threading.Event()
        self.gate = ToolGate(workspace_toolbox(self.ws, sources=(servers,)), self.broker, self.journal)

    def ctx(self) -> ToolContext:
        return ToolContext(self.ws, PROV, cancel=self.cancel, spill_path=self.outputs / "K7.a2.cmd.log")

    def start(self, call: ToolCall) -> Background[tuple[ToolResult, bool]]:
        return Background(lambda: self.gate.run(call, self.ctx()))

    def approved(self, call: ToolCall) -> ToolResult:
        job = self.start(call)
        req = self.waiter.next()
        assert tool_of(req).tool == call.name
        self.broker.resolve(req.id, approved=True)
        return job.result()[0]

    def ticket_log(self) -> str:
        return (self.outputs / "K7.a2.mcp.log").read_text("utf-8")


def in_process(tmp: Path, name: str = "mem", timeout: float = 5.0,
               problems_seen: list[str] | None = None) -> McpServers:
    (tmp / "markers").mkdir(exist_ok=True)
    conn = McpConnection(name, InProcessTarget(build_server(tmp / "markers")))
    return McpServers([(conn, timeout)], on_problem=(problems_seen.append if problems_seen is not None else None))


def from_config(tmp: Path, servers: dict[str, McpServerConfig], problems_seen: list[str] | None = None,
                environ: dict[str, str] | None = None) -> McpServers:
    return McpServers.from_config(servers, tmp / "_mcp", environ=environ,
                                  on_problem=problems_seen.append if problems_seen is not None else None)


@pytest.fixture()
def mem(tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(tmp_path, in_process(tmp_path, timeout=0.5))
    yield rig
    rig.servers.close()


@pytest.fixture()
def stdio(tmp_path: Path) -> Iterator[Rig]:
    markers = tmp_path / "markers"
    markers.mkdir()
    servers = from_config(tmp_path, {"local": stdio_config("--marker-dir", str(markers), timeout=1.0)})
    rig = Rig(tmp_path, servers)
    yield rig
    rig.servers.close()


def no_new_threads(baseline: set[int], *, reap: bool = True) -> list[str]:
    """Threads alive now that were not before. Python 3.11's asyncio reaps each child process on a daemon
    'asyncio-waitpid-N' thread of its own, which ends by itself a moment after the child is reaped (the SDK has
    already seen the exit by then): those are joined here; every other thread must already be gone."""
    for t in threading.enumerate():
        if reap and t.ident not in baseline and t.name.startswith("asyncio-waitpid-"):
            t.join(5)
    return [t.name for t in threading.enumerate() if t.ident not in baseline]


# ---------------------------------------------------------------- what is offered

def test_tools_are_offered_as_mcp_server_slash_tool_with_their_schemas(mem: Rig) -> None:
    specs = {s.name: s for s in mem.gate.toolbox.specs()}
    assert {"read_file", "write_file", "run_command"} <= set(specs)  # the workspace tools are still there
    mcp = {n: s for n, s in specs.items() if n.startswith("mcp:")}
    assert set(mcp) == {f"mcp:mem/{t}" for t in ("echo", "add", "touch", "slow", "shout", "fail", "crash")}
    add = mcp["mcp:mem/add"]
    assert add.mutating, "an MCP tool can do anything: every call must be approved"
    assert add.parameters["properties"]["a"]["type"] == "integer" and add.parameters["required"] == ["a", "b"]
    assert "MCP server 'mem'" in add.description and "Add two integers" in add.description


def test_a_read_only_toolbox_never_gets_mcp_tools(tmp_path: Path) -> None:
    servers = in_process(tmp_path)
    try:
        box = workspace_toolbox(tmp_path, readonly=True, sources=(servers,))
        assert not [s for s in box.specs() if s.name.startswith("mcp:")]
        assert not servers.connections[0]._started  # and nothing was started for it
    finally:
        servers.close()


# ---------------------------------------------------------------- approval: in-process server

def test_a_call_asks_for_approval_naming_the_server_then_runs(mem: Rig) -> None:
    job = mem.start(ToolCall("c1", "mcp:mem/touch", {"name": "approved.marker"}))
    req = mem.waiter.next()
    p = tool_of(req)
    assert req.kind == "tool" and p.tool == "mcp:mem/touch" and p.args == {"name": "approved.marker"}
    m = preview_of(req, McpCallPreview)
    assert m.server == "mem" and m.tool == "touch" and m.transport == "in-process"
    assert p.provenance == Provenance(trace_id="run-1", track_id="T1", ticket_id="K7", tier=3, attempt=2)
    assert p.can_remember is False
    assert not (mem.tmp / "markers" / "approved.marker").exists(), "nothing runs before the decision"
    mem.broker.resolve(req.id, approved=True)
    result, replayed = job.result()
    assert result.ok and not replayed, result.error
    assert (mem.tmp / "markers" / "approved.marker").exists()
    assert result.output["server"] == "mem" and result.output["text"].endswith("approved.marker")
    again, replayed = mem.gate.run(ToolCall("c1", "mcp:mem/touch", {"name": "approved.marker"}), mem.ctx())
    assert replayed and again == result and mem.waiter.empty(), "a journalled call is replayed, never rerun"


def test_a_rejected_call_does_not_run_and_the_model_sees_the_reason(mem: Rig) -> None:
    job = mem.start(ToolCall("c1", "mcp:mem/touch", {"name": "rejected.marker"}))
    mem.broker.resolve(mem.waiter.next().id, approved=False, reason="not that server, use write_file")
    result, _ = job.result()
    assert not result.ok and result.error == "rejected by the user: not that server, use write_file"
    assert result.for_model() == {"ok": False, "error": "rejected by the user: not that server, use write_file"}
    assert not (mem.tmp / "markers" / "rejected.marker").exists()


def test_an_edited_approval_runs_the_edited_arguments(mem: Rig) -> None:
    job = mem.start(ToolCall("c1", "mcp:mem/add", {"a": 1, "b": 2}))
    req = mem.waiter.next()
    with pytest.raises(ValueError, match="args.a must be integer"):
        mem.broker.resolve(req.id, approved=True, payload=tool_of(req).with_args({"a": "x", "b": 2}))
    with pytest.raises(ValueError, match="only 'args' can be edited"):
        other = preview_of(req, McpCallPreview).model_copy(update={"server": "other"})
        mem.broker.resolve(req.id, approved=True, payload=tool_of(req).model_copy(update={"preview": other}))
    mem.broker.resolve(req.id, approved=True, payload=tool_of(req).with_args({"a": 40, "b": 2}))
    result, _ = job.result()
    assert result.ok and result.output["structured"] == {"result": 42}


def test_a_slow_call_times_out_cleanly_and_the_client_stays_usable(mem: Rig) -> None:
    result = mem.approved(ToolCall("c1", "mcp:mem/slow", {"seconds": 30}))
    assert not result.ok and "'slow' did not answer within 0.5 s" in (result.error or "")
    assert "still connected" in (result.error or "")
    after = mem.approved(ToolCall("c2", "mcp:mem/echo", {"text": "still here"}))
    assert after.ok and after.output["text"] == "still here"


def test_a_tool_error_reaches_the_model_as_an_error_result(mem: Rig) -> None:
    result = mem.approved(ToolCall("c1", "mcp:mem/fail", {"message": "the index is locked"}))
    assert not result.ok and result.error == ("mcp:mem/fail reported an error: "
                                                 "Error executing tool fail: the index is locked")


def test_bad_arguments_fail_before_anyone_is_asked(mem: Rig) -> None:
    result, _ = mem.gate.run(ToolCall("c1", "mcp:mem/add", {"a": "one"}), mem.ctx())
    assert not result.ok and "args.a must be integer" in (result.error or "") and "args.b is required" in (
        result.error or "")
    assert mem.waiter.empty()


def test_cancel_during_a_call_raises_cancelled_and_the_client_stays_usable(mem: Rig) -> None:
    job = mem.start(ToolCall("c1", "mcp:mem/slow", {"seconds": 30}))
    mem.broker.resolve(mem.waiter.next().id, approved=True)
    mem.cancel.set()
    with pytest.raises(Cancelled, match="mem/slow"):
        job.result()
    mem.cancel.clear()
    assert mem.approved(ToolCall("c2", "mcp:mem/add", {"a": 2, "b": 2})).output["structured"] == {"result": 4}


def test_concurrent_calls_from_many_worker_threads_share_one_client(tmp_path: Path) -> None:
    servers = in_process(tmp_path)
    try:
        (add,) = [t for t in servers.tools() if t.spec.name == "mcp:mem/add"]
        ctx = ToolContext(tmp_path, PROV)
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: add.run({"a": i, "b": 1000}, ctx), range(64)))
        assert [r["structured"]["result"] for r in results] == [i + 1000 for i in range(64)]
    finally:
        servers.close()


# ---------------------------------------------------------------- a real stdio subprocess

def test_stdio_server_approve_reject_and_timeout(stdio: Rig, capfd: pytest.CaptureFixture[str]) -> None:
    job = stdio.start(ToolCall("c1", "mcp:local/touch", {"name": "stdio.marker"}))
    req = stdio.waiter.next()
    m = preview_of(req, McpCallPreview)
    assert m.server == "local" and m.transport.startswith(PY)
    stdio.broker.resolve(req.id, approved=True)
    assert job.result()[0].ok and (stdio.tmp / "markers" / "stdio.marker").exists()

    job = stdio.start(ToolCall("c2", "mcp:local/touch", {"name": "never.marker"}))
    stdio.broker.resolve(stdio.waiter.next().id, approved=False, reason="no more markers")
    result, _ = job.result()
    assert result.error == "rejected by the user: no more markers"
    assert not (stdio.tmp / "markers" / "never.marker").exists()

    result = stdio.approved(ToolCall("c3", "mcp:local/slow", {"seconds": 30}))
    assert not result.ok and "did not answer within 1 s" in (result.error or "")
    result = stdio.approved(ToolCall("c4", "mcp:local/add", {"a": 20, "b": 22}))
    assert result.ok and result.output["structured"] == {"result": 42}, "the client survived the timeout"
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


def test_stdio_stderr_goes_to_the_ticket_log_not_our_terminal(stdio: Rig,
                                                              capfd: pytest.CaptureFixture[str]) -> None:
    result = stdio.approved(ToolCall("c1", "mcp:local/shout", {"text": "warming the cache: 12 files"}))
    assert result.ok
    log = stdio.ticket_log()
    assert "## mcp:local/shout" in log and "· ok ·" in log and "warming the cache: 12 files" in log
    assert "warming the cache" in (stdio.tmp / "_mcp" / "local.stderr.log").read_text()
    out, err = capfd.readouterr()
    assert "warming the cache" not in out + err, "the server's stderr must not reach our terminal"


def test_a_server_that_dies_gives_a_clear_message_naming_it(stdio: Rig, capfd: pytest.CaptureFixture[str]) -> None:
    result = stdio.approved(ToolCall("c1", "mcp:local/crash", {"code": 3}))
    assert not result.ok
    error = result.error or ""
    assert error.startswith("MCP server 'local'") and "exited or crashed" in error
    assert "test server crashing with exit code 3" in error, "the end of its stderr says why"
    assert "crashing with exit code 3" in stdio.ticket_log()
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "crashing" not in out + err


def test_a_server_that_fails_to_start_is_reported_once_and_others_still_work(tmp_path: Path,
                                                                               thread_baseline: set[int]) -> None:
    seen: list[str] = []
    servers = from_config(tmp_path, {"broken": stdio_config("--fail-at-start"),
                                     "missing": McpServerConfig(command="/nonexistent/mcp-server"),
                                     "good": stdio_config()}, seen)
    try:
        names = {t.spec.name for t in servers.tools()}
        assert "mcp:good/echo" in names and not any(n.startswith(("mcp:broken/", "mcp:missing/")) for n in names)
        servers.tools()  # asking again reports nothing twice
        assert len(seen) == 2
        broken, missing = sorted(seen)
        first_line, _, rest = broken.partition("\n")
        assert first_line.startswith("MCP server 'broken'") and "exited during start-up" in first_line
        assert first_line.endswith("its tools are not offered to workers")
        assert "cannot open the database (on purpose)" in rest
        assert missing.startswith("MCP server 'missing'") and "command not found" in missing
        assert "Traceback" not in broken + missing
    finally:
        servers.close()
    assert no_new_threads(thread_baseline) == []


def test_a_stdio_server_sees_only_the_variables_it_is_given(tmp_path: Path) -> None:
    env = {"GEMINI_API_KEY": "sk-secret-must-not-leak", "SERVER_TOKEN": "t0k", "PATH": "/usr/bin:/bin"}
    script = tmp_path / "env_server.py"
    script.write_text(
        "import os\nfrom mcp.server.mcpserver import MCPServer\ns = MCPServer('env')\n"
        "@s.tool()\ndef getenv(name: str) -> str:\n    return os.environ.get(name, '<unset>')\n"
        "s.run('stdio')\n")
    servers = from_config(tmp_path, {"env": McpServerConfig(command=PY, args=[str(script)], env={"MODE": "test"},
                                                            pass_env=["SERVER_TOKEN", "NOT_SET_ANYWHERE"])},
                          environ=env)
    try:
        (getenv,) = servers.tools()
        ctx = ToolContext(tmp_path, PROV)
        assert getenv.run({"name": "MODE"}, ctx)["text"] == "test"
        assert getenv.run({"name": "SERVER_TOKEN"}, ctx)["text"] == "t0k"
        assert getenv.run({"name": "GEMINI_API_KEY"}, ctx)["text"] == "<unset>"
    finally:
        servers.close()


def test_shutdown_joins_every_thread_and_ends_the_child(tmp_path: Path, thread_baseline: set[int]) -> None:
    mine = str(tmp_path / "only-this-test")  # other test runs may have servers of their own running
    servers = from_config(tmp_path, {"a": stdio_config("--marker-dir", mine), "b": stdio_config("--marker-dir", mine)})
    mem = in_process(tmp_path, name="m")
    try:
        assert len(servers.tools()) == 14 and len(mem.tools()) == 7
        assert len(no_new_threads(thread_baseline, reap=False)) >= 3
        running = subprocess.run(["ps", "-ewwo", "args"], capture_output=True, text=True, check=True).stdout
        assert running.count(mine) == 2, "(the check below can see these servers)"
    finally:
        servers.close()
        mem.close()
    assert no_new_threads(thread_baseline) == []
    ps = subprocess.run(["ps", "-ewwo", "args"], capture_output=True, text=True, check=True).stdout
    assert mine not in ps, "no server process outlives close()"
    with pytest.raises(Exception, match="shut down"):
        servers.connections[0].call("echo", {"text": "x"}, timeout_s=1)


# ---------------------------------------------------------------- schemas and config

def test_mcp_schemas_become_schemas_our_checker_and_the_providers_take() -> None:
    schema = {"type": "object", "properties": {
        "path": {"type": ["string", "null"]}, "n": {"type": ["integer", "string"]},
        "tags": {"type": "array", "items": {"type": ["string", "null"]}}}, "required": ["path"]}
    out = model_schema(schema)
    assert out["properties"]["path"]["type"] == "string" and "type" not in out["properties"]["n"]
    assert out["properties"]["tags"]["items"]["type"] == "string"
    assert problems(out, {"path": "a", "n": 3, "tags": ["x"]}) == []
    assert problems(out, {"path": 5}) == ["args.path must be string, got int"]
    assert model_schema({}) == {"type": "object", "properties": {}}
    assert model_schema({"type": "string"}) == {"type": "object", "properties": {}}


def test_config_reads_mcp_servers_and_names_bad_entries(tmp_path: Path) -> None:
    cfg = parse_config({"mcp": {"files": {"command": "npx", "args": ["-y", "server"], "call_timeout_s": 12},
                                "web": {"url": "http://127.0.0.1:9000/mcp"}}})
    assert cfg.mcp["files"].command == "npx" and cfg.mcp["files"].call_timeout_s == 12
    assert cfg.mcp["web"].url == "http://127.0.0.1:9000/mcp"
    assert Config().mcp == {}
    for bad, why in [({"a b": {"command": "x"}}, r"\[mcp.a b\]: the server name"),
                     ({"a": {}}, r"\[mcp.a\]: needs exactly one of `command`"),
                     ({"a": {"command": "x", "url": "http://h"}}, r"\[mcp.a\]: needs exactly one"),
                     ({"a": {"url": "file:///etc/passwd"}}, r"\[mcp.a\]: url 'file:///etc/passwd' must start"),
                     ({"a": {"url": "http://h", "args": ["x"]}}, r"apply to a stdio `command`"),
                     ({"a": {"command": "x", "env": {"GITHUB_TOKEN": "ghp_x"}}}, r"'GITHUB_TOKEN' looks like a secret"),
                     ({"a": {"command": "x", "env": {"api_key": "x"}}}, r"looks like a secret"),
                     ({"a": {"command": "x", "call_timeout_s": 0}}, r"mcp.a.call_timeout_s"),
                     ({"a": {"command": "x", "colour": "red"}}, r"'mcp.a.colour' is not a known setting")]:
        with pytest.raises(ConfigError, match=why):
            parse_config({"mcp": bad})


def test_the_session_offers_configured_servers_and_never_the_workspaces(tmp_path: Path, workspace: Path,
                                                                         thread_baseline: set[int]) -> None:
    from conductor.providers.scripted import ScriptedProvider
    from conductor.session import Session

    # A hostile workspace declares its own servers in every form a tool might read: none may start.
    (workspace / "config.toml").write_text(f'[mcp.evil]\ncommand = "{PY}"\nargs = ["-c", "open(\'pwned\',\'w\')"]\n')
    (workspace / ".mcp.json").write_text('{"mcpServers": {"evil": {"command": "touch", "args": ["pwned"]}}}')
    cfg = Config(mcp={"good": stdio_config(), "dead": McpServerConfig(command="/nonexistent/x")})
    session = Session(cfg, workspace=workspace, tracks_dir=tmp_path / "tracks", provider=ScriptedProvider())
    try:
        assert not session.mcp.connections[0]._started, "nothing starts before a worker needs the tools"
        names = {s.name for s in session.toolbox.specs()}
        assert {n for n in names if n.startswith("mcp:")} == {f"mcp:good/{t}" for t in
                                                              ("echo", "add", "touch", "slow", "shout", "fail", "crash")}
        errors = [e for e in session.events.drain(1000) if isinstance(e, ErrorRaised)]
        assert len(errors) == 1 and errors[0].message.startswith("MCP server 'dead'") and not errors[0].fatal
    finally:
        session.shutdown()
    assert not (workspace / "pwned").exists() and not (Path.cwd() / "pwned").exists()
    assert no_new_threads(thread_baseline) == []
    assert (tmp_path / "tracks" / "_mcp" / "good.stderr.log").exists()
    assert session.list_tracks() == []  # the _mcp log folder is not taken for a track


def test_importing_the_app_does_not_import_the_sdk() -> None:
    code = ("import sys\nimport conductor.session, conductor.tools.mcp_tools, conductor.config\n"
            "from conductor.config import Config\nfrom conductor.session import Session\n"
            "print(sorted(m for m in sys.modules if m == 'mcp' or m.startswith(('mcp.', 'mcp_types'))))")
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------- streamable HTTP

def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def http_server(tmp_path: Path) -> Iterator[str]:
    """The test server over streamable HTTP on 127.0.0.1, in its own process; ready once uvicorn says so."""
    port = _free_port()
    proc = subprocess.Popen([PY, *STDIO_ARGS, "--http-port", str(port), "--marker-dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # blocks until the server logs; a server that dies ends the loop
        seen.append(line)
        if "Uvicorn running on" in line:
            break
    else:
        proc.wait()
        pytest.fail(f"the HTTP test server did not start: {''.join(seen)}")
    drain = threading.Thread(target=proc.stderr.read, daemon=True)  # keep its log pipe from filling
    drain.start()
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(10)
        drain.join(10)


def test_a_streamable_http_server_is_approved_called_and_timed_out(tmp_path: Path, http_server: str) -> None:
    servers = from_config(tmp_path, {"web": McpServerConfig(url=http_server, call_timeout_s=1.0)})
    rig = Rig(tmp_path, servers)
    try:
        job = rig.start(ToolCall("c1", "mcp:web/touch", {"name": "http.marker"}))
        req = rig.waiter.next()
        m = preview_of(req, McpCallPreview)
        assert m.server == "web" and m.transport == http_server
        rig.broker.resolve(req.id, approved=True)
        assert job.result()[0].ok and (tmp_path / "http.marker").exists()
        assert not rig.approved(ToolCall("c2", "mcp:web/slow", {"seconds": 30})).ok
        assert rig.approved(ToolCall("c3", "mcp:web/add", {"a": 1, "b": 1})).output["structured"] == {"result": 2}
    finally:
        servers.close()


# ---------------------------------------------------------------- the whole pipeline

def test_workers_call_an_mcp_server_through_the_whole_pipeline(tmp_path: Path, workspace: Path,
                                                                 thread_baseline: set[int]) -> None:
    from conductor.approvals import ApprovalDecision, ApprovalRequest, DecidedBy
    from conductor.model import TicketStatus
    from conductor.providers.base import ProviderRequest
    from conductor.providers.scripted import Reply, ScriptedProvider
    from conductor.session import Session

    markers = tmp_path / "markers"
    markers.mkdir()
    cfg = Config(mcp={"local": stdio_config("--marker-dir", str(markers))})
    cfg = cfg.updated({"engine": {"max_workers": 2}})

    def tier3(req: ProviderRequest, n: int) -> Reply:
        ticket = req.prov.ticket_id
        assert "mcp:local/touch" in {t.name for t in req.tools}
        if not any(m.role == "model" for m in req.messages):
            return Reply(text="Using the MCP server.\n", tool_calls=(
                ToolCall(f"{ticket}-m1", "mcp:local/shout", {"text": f"stderr of {ticket}"}),
                ToolCall(f"{ticket}-m2", "mcp:local/touch", {"name": f"{ticket}.marker"})))
        return Reply(text=f"{ticket} is done: the marker step ran or was refused as the user decided.\n")

    asked: list[ApprovalRequest] = []

    def decide(r: ApprovalRequest) -> ApprovalDecision | None:
        if r.kind.value != "tool":
            return ApprovalDecision(request_id=r.id, approved=True, payload=r.payload)
        asked.append(r)
        if tool_of(r).tool == "mcp:local/touch" and r.prov.ticket_id == "T2" and r.prov.attempt == 1:
            return ApprovalDecision(request_id=r.id, approved=False, reason="no marker for T2", by=DecidedBy.POLICY)
        return ApprovalDecision(request_id=r.id, approved=True, payload=r.payload, by=DecidedBy.POLICY)

    provider = ScriptedProvider({3: tier3})
    session = Session(cfg, workspace=workspace, tracks_dir=tmp_path / "tracks", provider=provider, linger=False)
    session.broker.add_policy("test", decide)
    try:
        (track_id,) = session.plan_epic("Mark every ticket through the MCP server").wait(timeout=30)
        track = session.engines[track_id].join(timeout=60)
        assert all(t.status == TicketStatus.DONE for t in track.tickets), [(t.id, t.status) for t in track.tickets]
        ids = [t.id for t in track.tickets]
        # T2's refused call fails its review (nothing was marked), so T2 runs a second attempt that marks.
        assert len(asked) == 2 * len(ids) + 2, "every MCP call asked"
        assert track.ticket("T2").attempts == 2
        assert all(preview_of(r, McpCallPreview).server == "local" and r.prov.track_id == track_id for r in asked)
        assert sorted(p.name for p in markers.iterdir()) == sorted(f"{i}.marker" for i in ids)
        refused = [res for q in provider.calls(3) if q.prov.ticket_id == "T2" for m in q.messages
                   for res in m.tool_results if res.name == "mcp:local/touch"]
        assert refused and refused[0].for_model() == {"ok": False, "error": "rejected by the user: no marker for T2"}
        journal = (tmp_path / "tracks" / track_id / "events.jsonl").read_text("utf-8")
        decided = [json.loads(line) for line in journal.splitlines() if '"approval_resolved"' in line]
        mcp_decisions = [d["data"]["request"]["payload"] for d in decided
                         if d["data"]["request"]["payload"].get("tool", "").startswith("mcp:")]
        assert len(mcp_decisions) == 2 * len(ids) + 2 and all(p["preview"]["server"] == "local"
                                                               for p in mcp_decisions), \
            "each decision is on record with the server it was for"
        log = (tmp_path / "tracks" / track_id / "outputs" / "tickets" / "T3" / "T3.a1.mcp.log").read_text("utf-8")
        assert "## mcp:local/shout" in log and "stderr of T3" in log
    finally:
        session.shutdown()
    assert no_new_threads(thread_baseline) == []


def test_overlapping_calls_say_their_stderr_may_be_mixed(stdio: Rig) -> None:
    conn = stdio.servers.connections[0]
    stdio.servers.tools()
    slow = Background(lambda: conn.call("slow", {"seconds": 0.5}, timeout_s=5))
    tick = threading.Event()  # never set: its timed wait paces the check below
    while conn._inflight == 0:  # the slow call registers within microseconds; wait for that state
        assert slow._thread.is_alive(), "the slow call ended before it was seen"
        tick.wait(0.002)
    during = conn.call("shout", {"text": "during"}, timeout_s=5)
    first = slow.result()
    assert during.overlapped and first.overlapped and "during" in during.stderr
    solo = conn.call("shout", {"text": "alone"}, timeout_s=5)
    assert not solo.overlapped and solo.stderr == "alone\n"


def hangs(tag: Path) -> list[str]:
    """A stdio 'server' that never answers the handshake and exits at EOF on its stdin; `tag` marks it in ps."""
    return ["-c", f"import sys; sys.stdin.read()  # mute {tag}"]


def mute_processes(tag: Path) -> list[str]:
    ps = subprocess.run(["ps", "-ewwo", "args"], capture_output=True, text=True, check=True).stdout
    return [line for line in ps.splitlines() if f"# mute {tag}" in line]


def test_a_server_that_never_answers_times_out_at_start_up(tmp_path: Path, thread_baseline: set[int]) -> None:
    seen: list[str] = []
    servers = from_config(tmp_path, {"mute": McpServerConfig(command=PY, args=hangs(tmp_path), startup_timeout_s=0.5)},
                          seen)
    try:
        assert servers.tools() == []
        assert len(seen) == 1 and seen[0].startswith("MCP server 'mute'") and "within 0.5 s" in seen[0]
    finally:
        servers.close()
    assert no_new_threads(thread_baseline) == [] and mute_processes(tmp_path) == []


def test_shutdown_does_not_wait_for_a_server_still_starting(tmp_path: Path, thread_baseline: set[int]) -> None:
    seen: list[str] = []
    servers = from_config(tmp_path, {"mute": McpServerConfig(command=PY, args=hangs(tmp_path), startup_timeout_s=600)},
                          seen)
    worker = Background(servers.tools)  # a worker asking for its tools while the server hangs at start-up
    conn = servers.connections[0]
    tick = threading.Event()
    while conn._main_task is None:  # wait until the connection is on its way (its owner task exists)
        tick.wait(0.002)
    servers.interrupt_startup()
    assert worker.result(timeout=10) == [], "the worker goes on without the tools"
    servers.close()
    assert seen == [], "abandoning a start-up at shutdown is not reported as a server failure"
    assert no_new_threads(thread_baseline) == [] and mute_processes(tmp_path) == []


def test_without_the_sdk_a_configured_server_says_how_to_install_it(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)  # as if the optional extra were not installed
    seen: list[str] = []
    servers = from_config(tmp_path, {"files": stdio_config()}, seen)
    try:
        assert servers.tools() == []
    finally:
        servers.close()
    assert len(seen) == 1 and seen[0].startswith("MCP server 'files'") and "pip install -e '.[mcp]'" in seen[0]


def test_a_server_that_died_is_started_again_on_the_next_call_a_few_times(stdio: Rig,
                                                                          thread_baseline: set[int]) -> None:
    from conductor.tools.mcp_tools import MAX_RESTARTS
    crashed = stdio.approved(ToolCall("c1", "mcp:local/crash", {"code": 5}))
    assert not crashed.ok and "started again on the next call (3 restart(s) left" in (crashed.error or "")
    first = stdio.servers.connections[0]
    again = stdio.approved(ToolCall("c2", "mcp:local/add", {"a": 1, "b": 1}))
    assert again.ok and again.output["structured"] == {"result": 2}, "the server was started again"
    assert stdio.servers.connections[0] is not first and not first._thread.is_alive()
    for i in range(MAX_RESTARTS - 1):  # crash it until no restart is left
        assert stdio.approved(ToolCall(f"k{i}", "mcp:local/crash", {"code": 5})).ok is False
        assert stdio.approved(ToolCall(f"a{i}", "mcp:local/add", {"a": 1, "b": 1})).ok
    last = stdio.approved(ToolCall("k-last", "mcp:local/crash", {"code": 5}))
    assert "restarted too often and stays stopped" in (last.error or "")
    after = stdio.approved(ToolCall("a-last", "mcp:local/add", {"a": 1, "b": 1}))
    assert not after.ok and (after.error or "").startswith("MCP server 'local'")


def test_a_log_that_cannot_be_written_does_not_fail_a_call_that_ran(mem: Rig) -> None:
    mem.outputs.parent.mkdir(parents=True, exist_ok=True)
    mem.outputs.write_text("a file where the outputs folder should be")  # every write under it fails
    result = mem.approved(ToolCall("c1", "mcp:mem/touch", {"name": "ran.marker"}))
    assert result.ok and (mem.tmp / "markers" / "ran.marker").exists()
    assert "could not be written" in result.output["log_error"]
    failed = mem.approved(ToolCall("c2", "mcp:mem/fail", {"message": "nope"}))
    assert not failed.ok and "nope" in (failed.error or "") and "could not be written" in (failed.error or "")


def test_pass_env_naming_an_unset_variable_is_reported_by_name(tmp_path: Path) -> None:
    seen: list[str] = []
    servers = from_config(tmp_path, {"gh": stdio_config(pass_env=["GH_TOKEN", "GH_HOST"])}, seen,
                          environ={"GH_HOST": "github.example"})
    servers.close()
    assert seen == ["MCP server 'gh': pass_env names GH_TOKEN, which is not set in Conductor's environment"]
    assert servers.connections[0].target == StdioTarget(PY, STDIO_ARGS, {"GH_HOST": "github.example"})


def test_an_allowed_command_line_never_lets_an_mcp_call_through(tmp_path: Path) -> None:
    from mcp.server.mcpserver import MCPServer

    from conductor.tools import CommandPolicy

    shell = MCPServer("shell")

    @shell.tool()
    def run_command(command: str) -> str:  # same tool name and argument as ours: it must still ask
        return f"would run {command}"

    servers = McpServers([(McpConnection("sh", InProcessTarget(shell)), 5.0)])
    rig = Rig(tmp_path, servers)
    rig.gate = ToolGate(rig.gate.toolbox, rig.broker, rig.journal, allow=CommandPolicy(["ls"]))
    try:
        ours, _ = rig.gate.run(ToolCall("c1", "run_command", {"command": "ls"}), rig.ctx())
        assert ours.ok and rig.waiter.empty(), "the allow rule applies to our own run_command"
        job = rig.start(ToolCall("c2", "mcp:sh/run_command", {"command": "ls"}))
        req = rig.waiter.next()
        assert preview_of(req, McpCallPreview).server == "sh" and tool_of(req).can_remember is False
        rig.broker.resolve(req.id, approved=False, reason="no")
        assert job.result()[0].error == "rejected by the user: no"
    finally:
        servers.close()
