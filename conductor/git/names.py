"""Branch names and worktree folders for tracks and ticket attempts.

Git stores refs as files, so `conductor/<track>` (a branch) and `conductor/<track>/<ticket>` (a branch below
it) cannot both exist: the default ticket template is therefore `conductor/<track>--<ticket>`, and templates
that would nest one inside the other are refused up front with a clear error instead of a late git failure.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class AttemptKey:
    """What idempotent git operations are keyed by: a ticket's attempt on a track."""

    track: str
    ticket: str
    attempt: int

    def __post_init__(self) -> None:
        if not isinstance(self.attempt, int) or self.attempt < 1:
            raise ValueError(f"attempt must be a whole number from 1, got {self.attempt!r} "
                             f"(ticket {self.ticket!r})")
        for what, value in (("track", self.track), ("ticket", self.ticket)):
            if not isinstance(value, str) or not value.strip() or "\n" in value or "\x00" in value:
                raise ValueError(f"{what} id {value!r} is empty or contains a newline or NUL")

    @property
    def text(self) -> str:
        """The key written into commit trailers: `<track>/<ticket>/a<attempt>`."""
        return f"{slug(self.track)}/{slug(self.ticket)}/a{self.attempt}"


def slug(ident: str) -> str:
    """`ident` made safe for a ref component and a folder name. A changed id gets a short hash of the original,
    so two ids that differ only in unsafe characters ('a b', 'a/b') never share a branch."""
    clean = _UNSAFE.sub("-", ident).strip(".-")
    clean = re.sub(r"\.{2,}", ".", clean)
    if clean.endswith(".lock"):
        clean = clean[:-5] + "-lock"
    if clean != ident or not clean:
        clean = f"{clean or 'id'}-{hashlib.sha1(ident.encode()).hexdigest()[:6]}"
    return clean


@dataclass(frozen=True)
class BranchNaming:
    """Branch name templates. `{track}` and `{ticket}` are replaced by slugs; attempts after the first get
    `attempt_suffix` (with `{attempt}`), so every attempt keeps its own branch and commit (for rewind)."""

    track: str = "conductor/{track}"
    ticket: str = "conductor/{track}--{ticket}"
    attempt_suffix: str = "-a{attempt}"

    def __post_init__(self) -> None:
        if "{track}" not in self.track:
            raise ValueError(f"the track branch template {self.track!r} must contain {{track}}")
        if "{ticket}" not in self.ticket or "{track}" not in self.ticket:
            raise ValueError(f"the ticket branch template {self.ticket!r} must contain {{track}} and {{ticket}}")
        if "{attempt}" not in self.attempt_suffix:
            raise ValueError(f"the attempt suffix {self.attempt_suffix!r} must contain {{attempt}}")
        track = self.track_branch("t")
        ticket = self.attempt_branch(AttemptKey("t", "k", 1))
        if ticket.startswith(track + "/") or track.startswith(ticket + "/"):
            raise ValueError(f"branch templates {self.track!r} and {self.ticket!r} nest one branch inside the "
                             "other, which git cannot store (refs are files); use e.g. 'conductor/{track}--{ticket}'")

    def track_branch(self, track: str) -> str:
        return self.track.format(track=slug(track))

    def attempt_branch(self, key: AttemptKey) -> str:
        name = self.ticket.format(track=slug(key.track), ticket=slug(key.ticket))
        return name if key.attempt == 1 else name + self.attempt_suffix.format(attempt=key.attempt)


def attempt_folder(key: AttemptKey) -> str:
    """The worktree's folder below the worktrees root: `<track>/<ticket>-a<n>`."""
    return f"{slug(key.track)}/{slug(key.ticket)}-a{key.attempt}"
