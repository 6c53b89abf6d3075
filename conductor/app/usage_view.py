"""The dashboard's numbers, built from the ledger in one pass.

Usage numbers are never summed by the view-model: everything here is read from the Session's ledger, so the
dashboard shows exactly what the ledger holds. The cumulative series and the budget bar are derived from the
same records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from conductor.app.formatting import fmt_cost, fmt_tokens
from conductor.app.rows import UsageRow
from conductor.config import BudgetConfig
from conductor.model import TIER_NAMES
from conductor.usage import Totals, UsageLedger


@dataclass
class UsageView:
    """The dashboard's numbers, taken from the ledger in one pass."""

    by_tier: list[UsageRow] = field(default_factory=list)
    by_ticket: list[UsageRow] = field(default_factory=list)
    by_model: list[UsageRow] = field(default_factory=list)
    total: UsageRow | None = None
    series_t: list[float] = field(default_factory=list)
    series_tokens: list[float] = field(default_factory=list)
    series_cost: list[float] = field(default_factory=list)
    budget_fraction: float = 0.0
    budget_label: str = "no budget set"


def usage_row(label: str, t: Totals) -> UsageRow:
    """One table row. Counts that include an estimate (an endpoint that reported no usage) are shown with a
    leading "~" and the label says how many calls were estimated: an estimate never passes for exact."""
    if not t.estimated:
        return UsageRow(label, t.calls, fmt_tokens(t.prompt_tokens), fmt_tokens(t.output_tokens),
                        fmt_tokens(t.thinking_tokens), fmt_tokens(t.cached_tokens), fmt_cost(t.cost_usd))
    return UsageRow(f"{label} ({t.estimated} estimated)", t.calls, "~" + fmt_tokens(t.prompt_tokens),
                    "~" + fmt_tokens(t.output_tokens), "~" + fmt_tokens(t.thinking_tokens),
                    "~" + fmt_tokens(t.cached_tokens), fmt_cost(t.cost_usd) if t.cost_usd is None
                    else "~" + fmt_cost(t.cost_usd))


def build_usage_view(ledger: UsageLedger, budget: BudgetConfig,
                     track_title: Callable[[str | None], str]) -> UsageView:
    """Every table, the series and the budget bar. `track_title` names a ticket's track when several tracks
    have usage (two tracks may both have a T1)."""
    view = UsageView()
    view.by_tier = [usage_row(TIER_NAMES.get(k, f"tier {k}"), v) for k, v in sorted(ledger.by_tier().items())]
    tickets = sorted(((tr, tk, v) for (tr, tk), v in ledger.by_ticket().items() if tk is not None),
                     key=lambda x: (str(x[0]), x[1]))
    several = len({tr for tr, _, _ in tickets}) > 1
    view.by_ticket = [usage_row(f"{tk} · {track_title(tr)[:22]}" if several else tk, v)
                      for tr, tk, v in tickets]
    view.by_model = [usage_row(k, v) for k, v in sorted(ledger.by_model().items())]
    total = ledger.total()
    view.total = usage_row("Total", total)
    _fill_series(view, ledger.records())
    _fill_budget(view, total, budget)
    return view


def _fill_series(view: UsageView, records: Iterable[Any]) -> None:
    recs = sorted(records, key=lambda r: r.ts)
    if not recs:
        return
    t0, tokens, cost = recs[0].ts, 0, 0.0
    for r in recs:
        tokens += r.usage.total_tokens
        cost += r.usage.cost_usd or 0.0
        view.series_t.append(r.ts - t0)
        view.series_tokens.append(float(tokens))
        view.series_cost.append(cost)


def _fill_budget(view: UsageView, total: Totals, b: BudgetConfig) -> None:
    parts, fracs = [], []
    if b.max_tokens:
        fracs.append(total.total_tokens / b.max_tokens)
        parts.append(f"{total.total_tokens:,} / {b.max_tokens:,} tokens")
    if b.max_cost_usd:
        fracs.append(total.priced_cost_usd / b.max_cost_usd)
        parts.append(f"${total.priced_cost_usd:,.4f} / ${b.max_cost_usd:,.2f}")
    if fracs:
        view.budget_fraction = min(max(fracs), 1.0)
        view.budget_label = "   ".join(parts) + (" — budget spent" if max(fracs) >= 1 else "")
    else:
        view.budget_label = f"no budget set · {total.total_tokens:,} tokens used"
