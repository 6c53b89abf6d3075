"""Opening a Session for the app: the chosen provider (or a stand-in that explains what is missing), and the
folders of the offline demo (one demo folder reused across starts, so its tracks survive a restart)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from conductor.config import Config
from conductor.demo import CHECK_COMMAND, create_project, demo_team_reply, own_pytest_path
from conductor.errors import ConfigError, MissingApiKey
from conductor.providers.base import Provider, ProviderRequest
from conductor.providers.endpoints import missing_keys
from conductor.providers.factory import make_provider
from conductor.providers.scripted import ScriptedProvider
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
    it is; otherwise the demo's own project inside `home` (created once: a small Python package with a pytest
    suite, in git). `fresh` sets the previous demo folder aside (renamed, never deleted) and starts an empty one;
    so does a demo folder made by an older version (its project is not the one the demo's team works on)."""
    own = home / "workspace"
    outdated = workspace is None and own.is_dir() and not (own / "greeter").is_dir()  # an older version's project
    if (fresh or outdated) and home.exists():
        os.replace(home, home.with_name(f"{home.name}.old-{time.strftime('%Y%m%dT%H%M%S')}"))
    ws = workspace.resolve() if workspace is not None else own
    if workspace is None and not ws.is_dir():  # built aside, then renamed: a kill never leaves half a project
        part = home / f"workspace.part-{os.getpid()}"
        shutil.rmtree(part, ignore_errors=True)  # ours (this pid) from an earlier failed try in this process
        part.mkdir(parents=True)
        create_project(part)
        os.replace(part, ws)
    return ws, home / "tracks"


def is_demo_project(workspace: Path, home: Path | None = None) -> bool:
    """True for the demo's own project (the folder demo_folders made), never for a folder named by the person."""
    return workspace.resolve() == ((home or demo_home()) / "workspace").resolve()


def open_session(cfg: Config, *, workspace: Path, tracks_dir: Path, provider_name: str, demo: bool = False,
                 events: Any = None, toolbox: Any = None, base_url: str | None = None) -> tuple[Session, str]:
    """A Session on the named provider, and a note for the status bar when the provider is limited.

    With no API key the app still opens: the provider is replaced by one that explains what is missing."""
    note, check_command = "", None
    path_first: tuple[str, ...] = ()
    own_project = provider_name == "scripted" and demo and is_demo_project(workspace)
    if own_project:
        # The demo's team works on its own project, whose QA runs the project's tests (a session setting, never
        # saved to the person's config); it streams at a human pace so the panes visibly fill.
        provider: Provider = ScriptedProvider(latency_s=0.25, chunk_delay_s=0.03, fallback=demo_team_reply)
        check_command = CHECK_COMMAND
        path_first, problem = own_pytest_path()
        note = problem or ""
    elif provider_name == "scripted":  # the generic script: any workspace (tests pass their own provider)
        provider = make_provider("scripted", cfg, latency_s=0.25 if demo else 0.0,
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
                      toolbox=toolbox, check_command=check_command, path_first=path_first)
    try:  # a broker in [distributed] (or CONDUCTOR_BROKER_URL): Tier 3 goes to remote workers
        from conductor.distributed.commands import attach
        attach(session, cfg, broker=None, remote=None)
    except ConfigError as exc:
        note = "; ".join(x for x in (note, f"Tier 3 runs locally: {exc}") if x)
    return session, note
