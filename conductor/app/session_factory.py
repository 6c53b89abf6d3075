"""Opening a Session for the app: the chosen provider (or a stand-in that explains what is missing), and the
folders of the offline demo (one demo folder reused across starts, so its tracks survive a restart)."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from conductor.config import Config
from conductor.errors import ConfigError, MissingApiKey
from conductor.providers.base import Provider, ProviderRequest
from conductor.providers.endpoints import missing_keys
from conductor.providers.factory import make_provider
from conductor.redact import scrubbed_env
from conductor.session import Session


class UnavailableProvider(Provider):
    """Stands in when the chosen provider cannot be built (no API key): every call fails with the reason."""

    name = "unavailable"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def stream(self, request: ProviderRequest, cancel: threading.Event):  # type: ignore[no-untyped-def]
        raise MissingApiKey(self.reason)


def demo_home() -> Path:
    """Where the offline demo keeps its workspace and tracks: $XDG_DATA_HOME/conductor/demo
    (~/.local/share/conductor/demo). Never the current folder."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "conductor" / "demo"


def demo_folders(home: Path, workspace: Path | None = None, *, fresh: bool = False) -> tuple[Path, Path]:
    """The demo's workspace and tracks folder, reused across starts. `workspace` (from --workspace) is used as
    it is; otherwise the demo's own small project inside `home` (created once). `fresh` sets the previous demo
    folder aside (renamed, never deleted) and starts an empty one."""
    if fresh and home.exists():
        os.replace(home, home.with_name(f"{home.name}.old-{time.strftime('%Y%m%dT%H%M%S')}"))
    ws = workspace.resolve() if workspace is not None else home / "workspace"
    if workspace is None and not ws.is_dir():
        (ws / "src").mkdir(parents=True)
        (ws / "README.md").write_text("# Demo project\n\nA tiny project for the offline demo.\n", "utf-8")
        (ws / "src" / "app.py").write_text("def greet(name):\n    return f'hello {name}'\n", "utf-8")
        _init_demo_repository(ws)
    return ws, home / "tracks"


def _init_demo_repository(ws: Path) -> None:
    """The demo's own project is a git repository, so the demo shows a branch per track and a worktree per
    ticket. Without git it stays a plain folder (the app then says it runs one worker at a time)."""
    git = shutil.which("git")
    if git is None:
        return
    ident = ["-c", "user.name=Conductor demo", "-c", "user.email=demo@localhost", "-c", "commit.gpgsign=false"]
    for argv in ([git, "init", "-q"], [git, "add", "-A"], [git, *ident, "commit", "-q", "-m", "The demo project"]):
        subprocess.run(argv, cwd=ws, check=True, capture_output=True, timeout=30, env=scrubbed_env())


def open_session(cfg: Config, *, workspace: Path, tracks_dir: Path, provider_name: str, demo: bool = False,
                 events: Any = None, toolbox: Any = None, base_url: str | None = None) -> tuple[Session, str]:
    """A Session on the named provider, and a note for the status bar when the provider is limited.

    With no API key the app still opens: the provider is replaced by one that explains what is missing."""
    note = ""
    if provider_name == "scripted":
        # The demo streams at a human pace so the panes visibly fill; tests pass their own provider.
        provider: Provider = make_provider("scripted", cfg, latency_s=0.25 if demo else 0.0,
                                           chunk_delay_s=0.03 if demo else 0.0)
    else:
        try:
            provider = make_provider(provider_name, cfg, base_url=base_url)
        except (MissingApiKey, ConfigError) as exc:
            missing = missing_keys(cfg, os.environ, provider_name)
            what = "; ".join(missing) if missing else str(exc)
            lead = "no API key" if isinstance(exc, MissingApiKey) else "an endpoint cannot be used"
            provider, note = UnavailableProvider(what), f"{lead} — {what}; or run the offline demo"
    session = Session(cfg, workspace=workspace, tracks_dir=tracks_dir, provider=provider, events=events,
                      toolbox=toolbox)
    try:  # a broker in [distributed] (or CONDUCTOR_BROKER_URL): Tier 3 goes to remote workers
        from conductor.distributed.commands import attach
        attach(session, cfg, broker=None, remote=None)
    except ConfigError as exc:
        note = "; ".join(x for x in (note, f"Tier 3 runs locally: {exc}") if x)
    return session, note
