"""Budgets per track and per day beside the lifetime cap, each resettable: the check is pure (records with
timestamps, an explicit 'now'), so days and resets are tested exactly, including the local midnight."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conductor.config import BudgetConfig, default_prices
from conductor.errors import BudgetExceeded
from conductor.model import Usage
from conductor.usage import BudgetResets, PriceTable, UsageLedger, UsageRecord, start_of_day

TABLE = PriceTable(default_prices())
NOON = dt.datetime(2026, 11, 27, 12, 0).timestamp()
YESTERDAY = NOON - 86_400


def ledger_with(*calls: tuple[str, float, int, float]) -> UsageLedger:
    """calls: (track, ts, tokens, cost)."""
    ledger = UsageLedger(TABLE)
    for n, (track, ts, tokens, cost) in enumerate(calls):
        ledger.record(UsageRecord(record_id=f"r{n}", tier=3, model="gemini-3.8-flash", track_id=track,
                                  ticket_id="T1", ts=ts, usage=Usage(model="gemini-3.8-flash", prompt_tokens=tokens,
                                                                    cost_usd=cost)))
    return ledger


def test_per_track_budget_stops_only_that_track() -> None:
    ledger = ledger_with(("a", NOON, 900, 0.9), ("b", NOON, 100, 0.1))
    budget = BudgetConfig(max_tokens_per_track=900)
    with pytest.raises(BudgetExceeded, match="track a's token budget spent: 900 of 900"):
        ledger.check_budget(budget, "gemini-3.8-flash", track_id="a", now=NOON)
    ledger.check_budget(budget, "gemini-3.8-flash", track_id="b", now=NOON)  # b has spent 100: fine
    ledger.check_budget(budget, "gemini-3.8-flash", now=NOON)  # planning (no track yet): no track limit
    cost = BudgetConfig(max_cost_usd_per_track=0.5)
    with pytest.raises(BudgetExceeded, match=r"track a's cost budget spent: \$0.9000 of \$0.50"):
        ledger.check_budget(cost, "gemini-3.8-flash", track_id="a", now=NOON)


def test_resetting_a_track_budget_counts_from_then_and_keeps_the_ledger() -> None:
    ledger = ledger_with(("a", NOON - 60, 900, 0.9))
    budget = BudgetConfig(max_tokens_per_track=900)
    ledger.resets = ledger.resets.reset("track", NOON - 30, "a")
    ledger.check_budget(budget, track_id="a", now=NOON)
    assert ledger.total().total_tokens == 900 and ledger.by_track()["a"].total_tokens == 900, "history is kept"
    ledger.record(UsageRecord(record_id="later", tier=3, model="m", track_id="a", ts=NOON,
                              usage=Usage(model="m", prompt_tokens=900, cost_usd=0.0)))
    with pytest.raises(BudgetExceeded, match="900 of 900"):
        ledger.check_budget(budget, track_id="a", now=NOON)


def test_day_budget_counts_today_only_and_renews_at_local_midnight() -> None:
    ledger = ledger_with(("a", YESTERDAY, 5_000, 5.0), ("b", NOON - 3_600, 400, 0.4))
    budget = BudgetConfig(max_tokens_per_day=1_000, max_cost_usd_per_day=1.0)
    ledger.check_budget(budget, "gemini-3.8-flash", track_id="a", now=NOON)   # today: 400 tokens
    ledger.record(UsageRecord(record_id="x", tier=3, model="m", track_id="c", ts=NOON,
                              usage=Usage(model="m", prompt_tokens=600, cost_usd=0.0)))
    with pytest.raises(BudgetExceeded, match="today's token budget spent: 1,000 of 1,000"):
        ledger.check_budget(budget, "gemini-3.8-flash", track_id="a", now=NOON)
    tomorrow = start_of_day(NOON) + 86_400 + 1
    ledger.check_budget(budget, "gemini-3.8-flash", track_id="a", now=tomorrow)
    ledger.resets = ledger.resets.reset("day", NOON + 1)
    ledger.check_budget(budget, "gemini-3.8-flash", track_id="a", now=NOON + 2)


def test_lifetime_reset_and_the_three_budgets_together() -> None:
    ledger = ledger_with(("a", YESTERDAY, 10_000, 1.0))
    budget = BudgetConfig(max_tokens=10_000, max_tokens_per_day=10_000, max_tokens_per_track=10_000)
    with pytest.raises(BudgetExceeded, match="^token budget spent"):
        ledger.check_budget(budget, track_id="a", now=NOON)
    ledger.resets = ledger.resets.reset("lifetime", NOON - 1)
    with pytest.raises(BudgetExceeded, match="track a's token budget"):
        ledger.check_budget(budget, track_id="a", now=NOON)
    ledger.check_budget(budget, track_id="b", now=NOON)


def test_an_unpriced_model_is_refused_under_any_cost_limit() -> None:
    ledger = UsageLedger(TABLE)
    for cfg in (BudgetConfig(max_cost_usd_per_day=1.0), BudgetConfig(max_cost_usd_per_track=1.0)):
        with pytest.raises(BudgetExceeded, match="'local-model' has no price"):
            ledger.check_budget(cfg, "local-model", track_id="a", now=NOON)


@pytest.mark.parametrize("bad", [[], {"lifetime_from": -1}, {"day_from": "noon"}, {"tracks": {"a": "x"}},
                                 {"tracks": ["a"]}, {"lifetime_from": True}])
def test_damaged_reset_data_is_named(bad: object) -> None:
    with pytest.raises(ValueError, match="_budget.json"):
        BudgetResets.from_json(bad, "tracks/_budget.json")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.floats(YESTERDAY - 86_400, NOON + 86_400),
                          st.integers(0, 500)), max_size=30),
       st.floats(YESTERDAY, NOON + 86_400), st.sampled_from(["a", "b"]))
def test_spend_is_the_sum_of_the_records_in_scope(calls: list, now: float, track: str) -> None:
    ledger = ledger_with(*[(t, ts, n, 0.0) for t, ts, n in calls])
    day0 = start_of_day(now)
    assert ledger.spend("day", now=now).total_tokens == sum(n for _, ts, n in calls if ts >= day0)
    assert ledger.spend("track", track_id=track).total_tokens == sum(n for t, _, n in calls if t == track)
    assert ledger.spend("lifetime").total_tokens == sum(n for _, _, n in calls)
    assert BudgetResets.from_json(ledger.resets.reset("track", now, track).to_json(), "x").tracks == {track: now}
