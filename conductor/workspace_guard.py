"""A track runs in the workspace it was planned for: resuming it elsewhere needs the person to say so."""

from __future__ import annotations

from pathlib import Path

from conductor.errors import StoreError
from conductor.model import Track
from conductor.records import track_update
from conductor.store import Journal


class WorkspaceMismatch(StoreError):
    """A track is being run in another folder than the one it recorded."""


def check_track_workspace(track: Track, workspace: Path, journal: Journal, *, force: bool) -> None:
    """Refuse to run `track` in `workspace` unless it is the recorded one, or `force`. A track made before the
    workspace was recorded adopts the one it is opened with (the front end made the person name it: the CLI
    requires --workspace for such a track). Either way the folder is journalled as the track's workspace, so
    the next resume goes there."""
    here = Path(workspace).resolve()
    recorded = Path(track.workspace).resolve() if track.workspace else None
    if recorded == here:
        return
    if recorded is not None and not force:
        raise WorkspaceMismatch(f"track {track.id!r} was planned for the workspace {str(recorded)!r}, not "
                                f"{str(here)!r}; open that workspace, or force this one (--force-workspace)")
    journal.append(track_update(reason="workspace chosen at resume", workspace=str(here)))
    track.workspace = str(here)
