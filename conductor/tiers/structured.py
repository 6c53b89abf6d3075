"""Structured answers (tiers 1, 2, 4): stream, validate with pydantic, repair with the errors, or fail clearly.

Never a silent empty plan: after the repair attempts, PlanInvalid is raised with every raw output saved.
A truncated answer (MAX_TOKENS) is never parsed; it is re-asked with a larger output limit, without
appending the truncated text (so prompts do not grow).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from conductor import redact
from conductor.atomic import atomic_write_text
from conductor.errors import OutputTruncated, PlanInvalid
from conductor.messages import user
from conductor.providers.base import ProviderRequest
from conductor.tiers.call import CallDeps, call_model

M = TypeVar("M", bound=BaseModel)
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.DOTALL)
MAX_OUTPUT_CAP = 65_536


def extract_json(text: str) -> str:
    """The JSON inside a model answer: the whole text, or the body of a ``` fence around it."""
    m = _FENCE.match(text)
    return m.group(1) if m else text.strip()


def validation_problems(schema: type[M], text: str, extra: Callable[[M], list[str]] | None = None
                        ) -> tuple[M | None, list[str]]:
    """Parse and validate; returns (object, []) or (None, problems naming each location)."""
    body = extract_json(text)
    if not body:
        return None, ["the answer was empty"]
    try:
        obj = schema.model_validate_json(body)
    except ValidationError as exc:
        probs = []
        for e in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
            probs.append(f"{loc}: {e['msg']}")
        return None, probs
    more = extra(obj) if extra else []
    return (obj, []) if not more else (None, more)


def ask_structured(schema: type[M], req: ProviderRequest, deps: CallDeps, *, cancel: threading.Event,
                   raw_dir: Path, label: str, extra_check: Callable[[M], list[str]] | None = None) -> M:
    """Ask for JSON matching `schema`; up to cfg.engine.repair_attempts re-asks that quote the problems."""
    req = replace(req, response_schema=schema, max_output_tokens=req.max_output_tokens
                  or deps.cfg.engine.max_output_tokens)
    raws: list[str] = []
    problems: list[str] = []
    rounds = 1 + deps.cfg.engine.repair_attempts
    for n in range(rounds):
        try:
            res = call_model(req, deps, cancel=cancel, call_no=n + 1)
        except OutputTruncated as exc:
            raws.append(exc.partial_text)
            problems = [f"the answer was cut off at the output limit ({req.max_output_tokens} tokens)"]
            req = replace(req, max_output_tokens=min((req.max_output_tokens or 8192) * 2, MAX_OUTPUT_CAP))
            continue
        raws.append(res.text)
        obj, problems = validation_problems(schema, res.text, extra_check)
        if obj is not None:
            return obj
        fenced = "\n".join(f"- {p}" for p in problems)
        req = replace(req, messages=(*req.messages, res.message, user(
            f"Your answer is not valid for the required JSON schema.\n<validation_errors>\n{fenced}\n"
            "</validation_errors>\nReply with the corrected JSON only.")))
    path = raw_dir / f"{label}-invalid.txt"
    atomic_write_text(path, redact.text("\n\n".join(f"--- answer {i + 1} ---\n{r}" for i, r in enumerate(raws))))
    raise PlanInvalid(f"{label}: no valid answer after {rounds} tries ({'; '.join(problems)}); raw output saved "
                      f"to {path}", raw_output_path=str(path), errors=problems)


def dumps(obj: BaseModel) -> str:
    return json.dumps(obj.model_dump(mode="json"), indent=1)
