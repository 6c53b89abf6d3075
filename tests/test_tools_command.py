"""run_command: no shell for plain argv, workspace cwd, scrubbed environment, timeout kills the process group,
output capped in memory and spilled in full (100 MB with bounded memory)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from conductor.errors import Cancelled
from conductor.events import Provenance
from conductor.tools.base import ToolContext
from conductor.tools.command import RunCommand
from conductor.redact import is_secret_env_name, scrubbed_env

PY = sys.executable
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


def ctx(ws: Path, **kw: Any) -> ToolContext:
    kw.setdefault("human_approved", True)  # these tests run the tool as the gate does after a person said yes
    return ToolContext(ws, Provenance(track_id="T1", ticket_id="K1", tier=3, attempt=1), **kw)


def test_plain_command_runs_without_a_shell_in_the_workspace(ws: Path) -> None:
    out = RunCommand().run({"command": "pwd"}, ctx(ws))
    assert out["exit_code"] == 0 and out["output"].strip() == str(ws.resolve()) and out["shell"] is False
    out = RunCommand().run({"argv": ["echo", "$HOME", "a;b", "`x`"]}, ctx(ws, human_approved=True))
    assert out["output"] == "$HOME a;b `x`\n"  # literally: no shell ever saw it


def test_nonzero_exit_is_a_result_and_stdin_is_closed(ws: Path) -> None:
    out = RunCommand().run({"argv": [PY, "-c", "import sys; print('bad'); sys.exit(3)"]}, ctx(ws))
    assert out["exit_code"] == 3 and out["output"] == "bad\n"
    out = RunCommand().run({"argv": ["cat"]}, ctx(ws), )  # would hang forever on an open stdin
    assert out["exit_code"] == 0 and out["output"] == ""


def test_missing_program_is_a_clear_error(ws: Path) -> None:
    from conductor.errors import ToolError
    with pytest.raises(ToolError, match="cannot run 'no-such-program-xyz'"):
        RunCommand().run({"command": "no-such-program-xyz --flag"}, ctx(ws))


def test_shell_syntax_refused_without_a_persons_approval(ws: Path) -> None:
    from conductor.errors import SandboxViolation
    with pytest.raises(SandboxViolation, match="without a person's approval"):
        RunCommand().run({"command": "touch F && touch G"}, ctx(ws, human_approved=False))
    assert not (ws / "F").exists()
    out = RunCommand().run({"command": "touch F && echo done"}, ctx(ws, human_approved=True))
    assert out["shell"] is True and out["argv"][0].endswith("/bash") and out["argv"][1] == "-c"
    assert out["output"] == "done\n"
    assert (ws / "F").exists()


def test_environment_has_no_secrets(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {"GEMINI_API_KEY": "AIzaSyA-gemini-secret-value-0000000000", "GOOGLE_API_KEY": "google-secret-1",
               "OPENAI_API_KEY": "sk-secret", "GITHUB_TOKEN": "ghp_secret", "MY_SERVICE_SECRET": "s3cret",
               "AWS_ACCESS_KEY_ID": "AKIAxxxx", "DB_PASSWORD": "pw", "SSH_AUTH_SOCK": "/tmp/agent"}
    for k, v in secrets.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("HARMLESS_SETTING", "kept")
    out = RunCommand().run({"argv": [PY, "-c", "import os, json; print(json.dumps(dict(os.environ)))"]}, ctx(ws))
    env = json.loads(out["output"])
    assert not set(secrets) & set(env)
    assert env["HARMLESS_SETTING"] == "kept" and "PATH" in env
    assert not any(v in out["output"] for v in secrets.values())


@pytest.mark.parametrize("name,secret", [("GEMINI_API_KEY", True), ("GOOGLE_API_KEY", True), ("X_API_KEY", True),
                                         ("NPM_TOKEN", True), ("APP_SECRET", True), ("AWS_REGION", True),
                                         ("PATH", False), ("HOME", False), ("LANG", False), ("PWD", False),
                                         ("TOKENIZERS_PARALLELISM", False), ("PYTHONPATH", False)])
def test_secret_env_names(name: str, secret: bool) -> None:
    assert is_secret_env_name(name) is secret
    assert (name in scrubbed_env({name: "v"})) is not secret


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] in ("Z", "X")  # a zombie no longer runs
    except FileNotFoundError:
        return True


def test_timeout_kills_the_whole_process_group(ws: Path) -> None:
    script = ("import subprocess, sys, time\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"  # ok-sleep: killed
              "open('child.pid', 'w').write(str(child.pid))\n"
              "print('started', flush=True)\n"
              "time.sleep(60)\n")  # ok-sleep: the command under test must outlive its timeout
    out = RunCommand().run({"argv": [PY, "-c", script], "timeout_s": 2.0}, ctx(ws))
    assert out["timed_out"] and "timeout" in out["note"] and out["output"] == "started\n"
    assert out["duration_s"] < 10
    assert _gone(int((ws / "child.pid").read_text()))


def test_background_children_do_not_outlive_the_command(ws: Path) -> None:
    script = ("import subprocess, sys\n"
              "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"  # ok-sleep: killed
              " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
              "open('bg.pid', 'w').write(str(c.pid))\n")
    out = RunCommand().run({"argv": [PY, "-c", script]}, ctx(ws))
    assert out["exit_code"] == 0
    assert _gone(int((ws / "bg.pid").read_text()))


def test_cancel_stops_the_command(ws: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled, match="cancelled while running"):
        RunCommand().run({"argv": ["sleep", "30"]}, ctx(ws, cancel=cancel))


def test_output_cap_head_tail_and_spill(ws: Path, tmp_path: Path) -> None:
    spill = tmp_path / "spill" / "cmd.log"
    script = "import sys\nfor i in range(100000): print(f'line {i}')\n"
    out = RunCommand().run({"argv": [PY, "-c", script]}, ctx(ws, spill_path=spill))
    full = spill.read_text()
    assert full == "".join(f"line {i}\n" for i in range(100000))
    assert out["truncated"] and out["output_bytes"] == len(full) and out["full_output_path"] == str(spill)
    assert out["output"].startswith("line 0\nline 1\n") and out["output"].endswith("line 99999\n")
    assert "bytes omitted" in out["output"] and len(out["output"]) < 20_000


def test_spill_defaults(ws: Path, tmp_path: Path) -> None:
    folder = tmp_path / "outs"
    folder.mkdir()
    short = RunCommand().run({"command": "echo hi"}, ctx(ws, spill_path=folder))
    assert "full_output_path" not in short and list(folder.iterdir()) == []  # short output: nothing kept
    long = RunCommand(head_bytes=10, tail_bytes=10).run({"argv": [PY, "-c", "print('x' * 1000)"]},
                                                         ctx(ws, spill_path=folder))
    kept = Path(long["full_output_path"])
    assert kept.parent == folder and kept.read_text() == "x" * 1000 + "\n"
    temp = RunCommand(head_bytes=10, tail_bytes=10).run({"argv": [PY, "-c", "print('y' * 100)"]}, ctx(ws))
    assert Path(temp["full_output_path"]).read_text() == "y" * 100 + "\n"
    Path(temp["full_output_path"]).unlink()


MEMORY_PROBE = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from conductor.events import Provenance
    from conductor.tools.base import ToolContext
    from conductor.tools.command import RunCommand

    def hwm_kb():
        for line in open('/proc/self/status'):
            if line.startswith('VmHWM:'):
                return int(line.split()[1])

    ws, spill = Path(sys.argv[1]), Path(sys.argv[2])
    ctx = ToolContext(ws, Provenance(), spill_path=spill, human_approved=True)
    tool = RunCommand()
    tool.run({'argv': [sys.executable, '-c', 'print(1)']}, ctx)  # warm up: threads, imports
    before = hwm_kb()
    writer = "import sys\\nb = b'x' * 1048575 + b'\\\\n'\\nfor _ in range(100): sys.stdout.buffer.write(b)\\n"
    out = tool.run({'argv': [sys.executable, '-c', writer]}, ctx)
    print(json.dumps({'before_kb': before, 'after_kb': hwm_kb(), 'bytes': out['output_bytes'],
                      'spill': out['full_output_path'],
                      'shown': len(out['output']), 'truncated': out['truncated']}))
""")


def test_100_mb_of_output_keeps_memory_bounded(ws: Path, tmp_path: Path) -> None:
    spill = tmp_path / "big.log"
    proc = subprocess.run([PY, "-c", MEMORY_PROBE, str(ws), str(spill)], capture_output=True, text=True,
                          cwd=REPO, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    total = 100 * 1048576
    assert r["bytes"] == total and Path(r["spill"]).stat().st_size == total and r["truncated"]
    assert r["shown"] < 20_000
    growth_mb = (r["after_kb"] - r["before_kb"]) / 1024
    assert growth_mb < 20, f"peak RSS grew by {growth_mb:.1f} MB while streaming 100 MB"
    with open(r["spill"], "rb") as f:
        assert f.read(1048576) == b"x" * 1048575 + b"\n"
    assert spill.read_bytes() == b"1\n"  # the warm-up's own full output: the second command did not overwrite it


def test_session_folders_are_searched_first_but_never_from_the_workspace(ws: Path, tmp_path: Path) -> None:
    """ToolContext.path_first (the demo's interpreter folder) is searched before PATH for this call only; an entry
    inside the workspace is dropped like a PATH entry there would be (a repository cannot plant its own `pytest`)."""
    mine = tmp_path / "mine"
    mine.mkdir()
    tool = mine / "only-in-mine"
    tool.write_text("#!/bin/sh\necho from-mine\n")
    tool.chmod(0o755)
    planted = ws / "bin"
    planted.mkdir()
    (planted / "only-in-mine").write_text("#!/bin/sh\necho planted\n")
    (planted / "only-in-mine").chmod(0o755)
    before = os.environ.get("PATH")
    out = RunCommand().run({"command": "only-in-mine"}, ctx(ws, path_first=(str(planted), str(mine))))
    assert out["output"] == "from-mine\n" and os.environ.get("PATH") == before
    from conductor.errors import ToolError
    with pytest.raises(ToolError, match="not found on PATH"):  # the workspace's folder alone is never searched
        RunCommand().run({"command": "only-in-mine"}, ctx(ws, path_first=(str(planted),)))
