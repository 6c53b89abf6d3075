"""Check a tool call's arguments against the tool's JSON schema (the subset our specs use).

The model sees the schema, but nothing forces it to follow it, and an edited approval payload is typed by a
person: both are checked here so a tool never runs on arguments of the wrong shape.
Supported: type object/string/integer/number/boolean/array, properties, required, items, enum, minimum,
maximum, additionalProperties: false.
"""

from __future__ import annotations

from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {"object": (dict,), "string": (str,), "integer": (int,),
                                       "number": (int, float), "boolean": (bool,), "array": (list, tuple)}


def _type_ok(value: Any, typ: str) -> bool:
    if typ in ("integer", "number") and isinstance(value, bool):
        return False  # bool is an int in Python, never in JSON
    return isinstance(value, _TYPES.get(typ, (object,)))


def problems(schema: dict[str, Any], value: Any, where: str = "args") -> list[str]:
    """Every mismatch between `value` and `schema`, each naming the field; [] when it fits."""
    out: list[str] = []
    typ = schema.get("type")
    if typ is not None and value is not None and not _type_ok(value, typ):
        return [f"{where} must be {typ}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where} must be one of {schema['enum']}, got {value!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(f"{where} must be >= {schema['minimum']}, got {value}")
        if "maximum" in schema and value > schema["maximum"]:
            out.append(f"{where} must be <= {schema['maximum']}, got {value}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if value.get(name) is None:
                out.append(f"{where}.{name} is required")
        for name, v in value.items():
            if name in props:
                if v is not None:
                    out += problems(props[name], v, f"{where}.{name}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{where}.{name} is not a known argument (known: {', '.join(sorted(props))})")
    if isinstance(value, list | tuple) and "items" in schema:
        for i, v in enumerate(value):
            out += problems(schema["items"], v, f"{where}[{i}]")
    return out
