"""Where the settings and the tracks live: one decision for the GUI and the CLI.

The workspace (the repository the agents work on) is untrusted, and so is whatever folder the app happens to
be started in: neither may choose the config, the approvals, the endpoint that receives the API key, or the
tracks folder. So:

  * the config file is `$XDG_CONFIG_HOME/conductor/config.toml` (`~/.config/conductor/config.toml` when the
    variable is unset or not absolute), never `./config.toml`; `--config FILE` is the only way to name another
    one. A missing default file means the built-in defaults (the GUI creates it when it saves settings);
  * the tracks folder is `--tracks-dir`, else the config's `paths.tracks_dir` (relative to the config file's
    folder), else `$XDG_DATA_HOME/conductor/tracks` (`~/.local/share/conductor/tracks`); never the current
    folder or the workspace;
  * the Gemini endpoint in a config file is used only when it is Google's own or this machine (loopback);
    any other endpoint must be named on the command line (`--gemini-base-url`) or in the environment
    (`CONDUCTOR_GEMINI_BASE_URL`, or the SDK's own `GOOGLE_GEMINI_BASE_URL`) — see `endpoint_problem`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from conductor.config import Config, load_config
from conductor.errors import ConfigError
from conductor.tools.sandbox import protect_always

APP_DIR = "conductor"
ENDPOINT_ENVS = ("CONDUCTOR_GEMINI_BASE_URL", "GOOGLE_GEMINI_BASE_URL")
"""Environment variables that may name a Gemini endpoint (ours first, then the SDK's own)."""


def _xdg(env: Mapping[str, str], var: str, fallback: str) -> Path:
    value = env.get(var, "")
    if value and Path(value).is_absolute():  # the spec says: a relative value is invalid, ignore it
        return Path(value)
    home = env.get("HOME") or str(Path.home())
    return Path(home) / fallback


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    return _xdg(os.environ if env is None else env, "XDG_CONFIG_HOME", ".config") / APP_DIR / "config.toml"


def default_tracks_dir(env: Mapping[str, str] | None = None) -> Path:
    return _xdg(os.environ if env is None else env, "XDG_DATA_HOME", ".local/share") / APP_DIR / "tracks"


@dataclass(frozen=True)
class Launch:
    cfg: Config
    config_path: Path
    """Where settings are read from and saved to (it may not exist yet)."""
    config_exists: bool
    tracks_dir: Path
    base_url: str | None
    """The Gemini endpoint named on the command line or in the environment (None: the config's or Google's)."""


def endpoint_problem(url: str) -> str | None:
    """Why a config file may not send the API key to `url`; None for Google's endpoint or this machine (the one
    rule is providers.endpoints.key_may_be_sent)."""
    from conductor.providers.endpoints import key_may_be_sent
    if key_may_be_sent("gemini", url, "config"):
        return None
    return (f"{url!r} is neither Google's endpoint nor this machine; an endpoint that receives your API key is "
            "used only when named on the command line (--gemini-base-url) or in the environment "
            f"({' or '.join(ENDPOINT_ENVS)})")


def env_base_url(env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    for var in ENDPOINT_ENVS:
        if env.get(var, "").strip():
            return env[var].strip()
    return None


def check_config_endpoint(cfg: Config, source: str | Path) -> None:
    """ConfigError naming the file and the key when a config file names an untrusted endpoint."""
    if cfg.gemini.base_url:
        why = endpoint_problem(cfg.gemini.base_url)
        if why is not None:
            raise ConfigError(f"{source}: key 'gemini.base_url': {why}", path=str(source), key="gemini.base_url")


def tracks_dir_for(cfg: Config, config_path: Path, env: Mapping[str, str] | None = None) -> Path:
    """The config's tracks folder (relative to the config file's folder), else the user's data folder."""
    if cfg.paths.tracks_dir:
        p = Path(cfg.paths.tracks_dir).expanduser()
        return p if p.is_absolute() else config_path.resolve().parent / p
    return default_tracks_dir(env)


def resolve_launch(*, config: str | Path | None, tracks_dir: str | Path | None = None,
                   base_url: str | None = None, env: Mapping[str, str] | None = None,
                   named_must_exist: bool = True) -> Launch:
    """The config (loaded and checked), where it lives, the tracks folder and the endpoint, for either front end.

    Raises ConfigError (naming the file and key) for a bad or untrusted config, or a named file that is missing
    (unless `named_must_exist` is False: the GUI then starts from the defaults and creates it when it saves)."""
    env = os.environ if env is None else env
    path = Path(config).expanduser() if config else default_config_path(env)
    exists = path.is_file()
    if config and not exists and named_must_exist:
        raise ConfigError(f"{path}: file not found (named by --config)", path=str(path))
    cfg = load_config(path) if exists else Config()
    url = (base_url or "").strip() or env_base_url(env)
    if url is None:
        check_config_endpoint(cfg, path)
    tracks = Path(tracks_dir).expanduser() if tracks_dir else tracks_dir_for(cfg, path, env)
    protect_always(path.parent if not config else path)  # our settings: never a tool's to read or change
    return Launch(cfg=cfg, config_path=path, config_exists=exists, tracks_dir=tracks.resolve(), base_url=url)
