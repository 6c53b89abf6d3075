"""A Settings change is a command that replaces the config.

The loaded config is an immutable value (conductor.config: every section is frozen). Nothing changes it in
place: the Settings dialog and the toolbar toggles send `ApplySettings`; its handler (`Session.apply_settings`)
validates the whole new value (a bad one is refused with an error naming the file or source and the key, and
nothing changes), writes the file when asked (only the values that differ; comments and order kept, through
conductor/config_edit.py), and only then swaps the new value in where readers get it:

- the session's `cfg` (the approval policy reads it at each request; planning at each step; new tracks' engines
  when they start);
- each running engine, through its inbox (`ReplaceConfig`): attempts launched after it use the new value, an
  attempt already running finishes with the config it started with;
- the ledger's price table and the command allow rules (from the next command asked).

What is built once from the config takes a change on its next start: the providers and their endpoints, the
per-model gates and the MCP servers (next app start; the Settings dialog does not offer them), and a running
track's worker count and git set-up (the track's next run).

The workspace has no way in: the config comes from the file the person chose (conductor.launch) and from this
command, sent only by the person's own front end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from conductor.config import Config, save_config
from conductor.launch import check_config_endpoint


@dataclass(frozen=True)
class ApplySettings:
    """Replace the config with the current one plus `values` (nested: {"engine": {"max_workers": 3}}; the
    Settings dialog sends the whole config, a toolbar toggle one key)."""

    values: Mapping[str, object] = field(default_factory=dict)
    save_to: Path | None = None
    """Write the new value to this config file (the Settings dialog); None: for this session only (a toolbar
    toggle, or no config file)."""


def settled_config(current: Config, cmd: ApplySettings) -> Config:
    """The config `cmd` asks for: validated (ConfigError names the key) and, when asked, written (ConfigError,
    OSError). Nothing is swapped in here; the caller does that once this returns."""
    source = str(cmd.save_to) if cmd.save_to is not None else "settings"
    new = current.updated(cmd.values, source=source)
    check_config_endpoint(new, source)  # the same trust rule as a loaded file: no key sent to a stranger
    if cmd.save_to is not None:
        save_config(new, cmd.save_to)
    return new
