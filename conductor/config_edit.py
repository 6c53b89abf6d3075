"""Change values in a hand-written config.toml without touching anything else: comments, blank lines, key order
and the spelling of untouched values stay byte for byte (tomlkit edits the parsed document in place).

Only what differs is written: a value equal to what the file already means (written there, or the default
when absent) is left alone, so saving Settings after changing the worker count changes one line. A key
whose new value is None (an optional limit switched off) is removed. A file that is not valid TOML is never
overwritten: the caller gets an error naming it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import Any

import tomlkit
from tomlkit.container import Container
from tomlkit.items import AbstractTable, AoT

from conductor.errors import ConfigError

Data = Mapping[str, Any]


def changed_values(before: Data, after: Data) -> dict[str, Any]:
    """The nested subset of `after` that differs from `before`; a key only in `before` maps to None."""
    out: dict[str, Any] = {}
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            sub = changed_values(old, value)
            if sub:
                out[key] = sub
        elif key not in before or old != value:
            out[key] = value
    for key in before:
        if key not in after:
            out[key] = None
    return out


def edit_toml(text: str, values: Data, *, source: str = "config.toml") -> str:
    """`text` with the nested `values` set (None removes a key). Raises ConfigError when `text` is not TOML."""
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc}); not overwritten", path=source) from None
    _apply(doc, values)
    return tomlkit.dumps(doc)


def _apply(container: Container | AbstractTable, values: Data) -> None:
    for key, value in values.items():
        if value is None:
            if key in container:
                del container[key]
            continue
        current = container.get(key)
        if isinstance(value, Mapping):
            if not isinstance(current, AbstractTable | Container):  # absent, or a value becoming a table
                if current is not None:
                    del container[key]
                container[key] = tomlkit.table()
                current = container[key]
                assert isinstance(current, AbstractTable)
            _apply(current, value)  # an inline table stays inline, with its other keys
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            aot = AoT([])
            for entry in value:
                table = tomlkit.table()
                for k, v in entry.items():
                    table[k] = v
                aot.append(table)
            container[key] = aot
        else:
            container[key] = value  # tomlkit keeps the line's trailing comment and indentation


def effective(text: str, defaults: Data, source: str) -> dict[str, Any]:
    """What a config file means: its values over the defaults (for computing what changed)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc}); not overwritten", path=source) from None
    return _merge(dict(defaults), data)


def _merge(base: dict[str, Any], over: Data) -> dict[str, Any]:
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            base[key] = _merge(dict(base[key]), value)
        else:
            base[key] = value
    return base
