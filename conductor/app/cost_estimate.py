"""What a ticket is likely to cost, shown in the ticket review before anything is spent.

An estimate, and labelled so: the prompt is measured (system prompt, the ticket's text, its target files as the
worker will receive them, the tool declarations) at ~4 characters a token; a worker is assumed to take
`WORKER_TURNS` turns, each sending the conversation again, and to write `WORKER_OUTPUT` tokens; Tier 4 then reads
the ticket and the report once. Each part is priced by the PriceTable for the model that tier will use on the
ticket's first attempt. A model with no price makes the cost "unknown" — never zero.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from conductor.config import Config
from conductor.messages import ToolSpec
from conductor.model import Usage
from conductor.tiers.prompts import TIER3_SYSTEM, TIER4_SYSTEM, read_context
from conductor.usage import PriceTable

CHARS_PER_TOKEN = 4
WORKER_TURNS = 3
"""Typical worker turns for one attempt (read, write, summarise); each re-sends the conversation so far."""
WORKER_OUTPUT = 1_500
"""Typical tokens a worker writes over an attempt (file bodies in tool calls included)."""
REVIEW_OUTPUT = 300


@dataclass(frozen=True)
class TicketText:
    """The parts of a ticket under review that go into its prompts."""

    id: str
    title: str
    description: str
    criteria: str
    model_override: str | None
    context_chars: int
    """Characters of the target files as the worker will be sent them (see `prompts.read_context`)."""


@dataclass(frozen=True)
class TicketEstimate:
    ticket_id: str
    worker_model: str
    review_model: str
    prompt_tokens: int
    output_tokens: int
    cost_usd: float | None
    """None when a model it uses has no price."""
    unpriced: tuple[str, ...]

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    def label(self) -> str:
        """'14.2k · ~$0.0031' or '14.2k · unknown' (tokens, then USD: the column header says so)."""
        cost = "unknown" if self.cost_usd is None else f"~${self.cost_usd:,.4f}"
        return f"{fmt_k(self.tokens)} · {cost}"


def fmt_k(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)


def _tokens(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN)  # rounded up: a short prompt is not free


def estimate_ticket(t: TicketText, cfg: Config, prices: PriceTable, *, tool_chars: int,
                    on: dt.date | None = None) -> TicketEstimate:
    worker_model = cfg.model_for_attempt(1, t.model_override)
    review_model = cfg.models.tier4
    ticket_chars = len(t.id) + len(t.title) + len(t.description) + len(t.criteria) + 200  # headings, fences
    base = _tokens(len(TIER3_SYSTEM) + ticket_chars + t.context_chars + tool_chars)
    per_turn_output = WORKER_OUTPUT // WORKER_TURNS
    worker_in = sum(base + turn * per_turn_output for turn in range(WORKER_TURNS))
    review_in = _tokens(len(TIER4_SYSTEM) + ticket_chars + tool_chars) + WORKER_OUTPUT
    day = on or dt.date.today()
    costs = [prices.cost(Usage(model=worker_model, prompt_tokens=worker_in, output_tokens=WORKER_OUTPUT), day),
             prices.cost(Usage(model=review_model, prompt_tokens=review_in, output_tokens=REVIEW_OUTPUT), day)]
    unpriced = tuple(dict.fromkeys(m for m, c in zip((worker_model, review_model), costs, strict=True) if c is None))
    total = None if unpriced else sum(c for c in costs if c is not None)
    return TicketEstimate(t.id, worker_model, review_model, worker_in + review_in, WORKER_OUTPUT + REVIEW_OUTPUT,
                          total, unpriced)


def summary(estimates: Sequence[TicketEstimate]) -> str:
    """The line under the ticket table: the total, or what is unknown and why."""
    if not estimates:
        return ""
    tokens = sum(e.tokens for e in estimates)
    priced = [e for e in estimates if e.cost_usd is not None]
    unpriced = sorted({m for e in estimates for m in e.unpriced})
    n = len(estimates)
    head = f"Estimated first attempt of {n} ticket{'s' if n != 1 else ''}: ~{fmt_k(tokens)} tokens"
    spent = sum(e.cost_usd or 0.0 for e in priced)
    if not unpriced:
        return f"{head}, ~${spent:,.4f} (rough: prompt size × {WORKER_TURNS} turns + typical output)"
    known = f"~${spent:,.4f} for {len(priced)}, " if priced else ""
    return f"{head}, cost {known}unknown for {len(estimates) - len(priced)} (no price for {', '.join(unpriced)})"


class CostEstimator:
    """Estimates for the tickets of a review, with the target files' sizes read once per set of files (the
    estimate is redone on every keystroke in the dialog)."""

    def __init__(self, workspace: Path, protected: tuple[Path, ...], specs: Sequence[ToolSpec]) -> None:
        self.workspace = workspace
        self.protected = protected
        self.tool_chars = sum(len(s.name) + len(s.description) + len(json.dumps(s.parameters)) for s in specs)
        self._context: dict[tuple[str, ...], int] = {}

    def context_chars(self, files: Sequence[str]) -> int:
        key = tuple(files)
        if key not in self._context:
            # Through the worker's own sandboxed reader: a refused path counts as its refusal note, as sent.
            self._context[key] = sum(len(p) + len(text) for p, text in
                                     read_context(self.workspace, list(files), protected=self.protected).items())
        return self._context[key]

    def estimate(self, t: TicketText, cfg: Config) -> TicketEstimate:
        """With the config as it is now (Settings may have changed a tier's model or a price)."""
        return estimate_ticket(t, cfg, PriceTable.for_config(cfg), tool_chars=self.tool_chars)


class SentSizes(CostEstimator):
    """An estimator whose context sizes are the ones a spawn approval measured where the worker's files were
    read (the track branch); a file not measured there (added to the list in the dialog) is read as usual."""

    def __init__(self, base: CostEstimator, sizes: dict[str, int]) -> None:
        super().__init__(base.workspace, base.protected, ())
        self.tool_chars = base.tool_chars
        self._sizes = sizes

    def context_chars(self, files: Sequence[str]) -> int:
        return sum(self._sizes[p] if p in self._sizes else super(SentSizes, self).context_chars([p]) for p in files)
