"""A small .gitignore matcher for `search`: enough of git's rules to skip build output and vendored code.

Supported: comments, blank lines, `!` negation, trailing `/` (folders only), leading or inner `/` (anchored to
the .gitignore's folder), `*`, `?`, `[...]`, `**` (leading, trailing, inner), escaped leading `#`/`!`, and
nested .gitignore files (rules apply below their own folder; later and deeper rules win). Not supported:
.git/info/exclude and the global excludes file — a file they hide may show up in search results, which is
harmless (reads are allowed anyway).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Rule:
    base: str
    """The folder of the .gitignore, relative to the workspace ('' for the root)."""
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def _glob_to_regex(pat: str) -> str:
    out, i, n = [], 0, len(pat)
    while i < n:
        c = pat[i]
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pat.startswith("/**", i) and i + 3 == n:
            out.append("/.*")
            i += 3
        elif pat.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = pat.find("]", i + 2 if pat[i + 1:i + 2] in ("!", "^") else i + 1)
            if j < 0:
                out.append(re.escape(c))
                i += 1
                continue
            body = pat[i + 1:j]
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = j + 1
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(pat[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def parse_line(line: str, base: str) -> Rule | None:
    """One .gitignore line as a Rule, or None for blanks and comments."""
    line = line.rstrip("\n").rstrip("\r")
    if not line.strip() or line.startswith("#"):
        return None
    if not line.endswith("\\ "):
        line = line.rstrip()
    negate = line.startswith("!")
    if negate or line.startswith(("\\#", "\\!")):
        line = line[1:]
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    line = line.lstrip("/")
    body = _glob_to_regex(line)
    if not anchored:
        body = "(?:.*/)?" + body
    return Rule(base, re.compile(body + r"\Z", re.DOTALL), negate, dir_only)


class GitIgnore:
    """Rules from every .gitignore met while walking down; `ignored(rel, is_dir)` applies them like git."""

    def __init__(self) -> None:
        self._rules: list[Rule] = []
        self._loaded: set[str] = set()

    def load_dir(self, root: Path, rel_dir: str) -> None:
        """Read `<rel_dir>/.gitignore` once, if there is one."""
        if rel_dir in self._loaded:
            return
        self._loaded.add(rel_dir)
        path = root / rel_dir / ".gitignore" if rel_dir else root / ".gitignore"
        try:
            text = path.read_text("utf-8", errors="replace")
        except OSError:
            return
        for line in text.splitlines():
            rule = parse_line(line, rel_dir)
            if rule is not None:
                self._rules.append(rule)

    def add(self, pattern: str, base: str = "") -> None:
        rule = parse_line(pattern, base)
        if rule is not None:
            self._rules.append(rule)

    def ignored(self, rel: str, is_dir: bool) -> bool:
        """Whether the workspace-relative posix path `rel` is ignored (its parents are assumed not ignored:
        callers walk top-down and prune ignored folders, as git does)."""
        result = False
        for rule in self._rules:
            if rule.dir_only and not is_dir:
                continue
            if rule.base:
                if not rel.startswith(rule.base + "/"):
                    continue
                sub = rel[len(rule.base) + 1:]
            else:
                sub = rel
            if rule.regex.match(sub):
                result = not rule.negate
        return result
