"""Usage and cost: hand-checked arithmetic, dated prices, long-context tier, unknown = None (never free),
record-once, grouping, and budget messages that carry the numbers.

Why: the dashboard's cost and the budget stop are only as right as this arithmetic; an unknown price shown as
$0 or a usage counted twice would mislead the person paying.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from conductor.config import BudgetConfig, Price, default_prices
from conductor.errors import BudgetExceeded
from conductor.model import Usage
from conductor.usage import PriceTable, Totals, UsageLedger, UsageRecord

D = dt.date
TABLE = PriceTable(default_prices())


def rec(rid: str, usage: Usage, tier: int = 3, ticket: str | None = "T1", track: str | None = "tr") -> UsageRecord:
    return UsageRecord(record_id=rid, tier=tier, model=usage.model, usage=usage, track_id=track, ticket_id=ticket)


# ---------------------------------------------------------------- arithmetic by hand

def test_cost_of_each_component_by_hand() -> None:
    table = PriceTable([Price(model="m", effective=D(2026, 1, 1), input_per_mtok=1.0, output_per_mtok=4.0,
                              cached_per_mtok=0.25)])
    on = D(2026, 6, 1)
    # input only: 10,000 fresh × $1/M
    assert table.cost(Usage(model="m", prompt_tokens=10_000), on) == pytest.approx(0.010)
    # cached: 4,000 of the 10,000 prompt tokens at $0.25/M, the other 6,000 at $1/M
    assert table.cost(Usage(model="m", prompt_tokens=10_000, cached_tokens=4_000), on) == pytest.approx(
        6_000 * 1.0 / 1e6 + 4_000 * 0.25 / 1e6)  # 0.007
    # output + thinking both at the output price: (1,000 + 500) × $4/M
    assert table.cost(Usage(model="m", output_tokens=1_000, thinking_tokens=500), on) == pytest.approx(0.006)
    # tool-use prompt tokens at the input price: 2,000 × $1/M
    assert table.cost(Usage(model="m", tool_use_prompt_tokens=2_000), on) == pytest.approx(0.002)
    # all together: 0.008 (6,000 + 2,000 fresh) + 0.001 (cached) + 0.006 (output + thinking) = 0.015
    u = Usage(model="m", prompt_tokens=10_000, cached_tokens=4_000, output_tokens=1_000, thinking_tokens=500,
              tool_use_prompt_tokens=2_000)
    assert table.cost(u, on) == pytest.approx(0.015)


def test_cost_for_a_known_default_model() -> None:
    # gemini-3.8-flash before 2027: $0.75 in, $3.75 out, no cached price (cached = input price).
    u = Usage(model="gemini-3.8-flash", prompt_tokens=1_000_000, cached_tokens=400_000, output_tokens=100_000,
              thinking_tokens=50_000, tool_use_prompt_tokens=20_000)
    # fresh 620,000 × 0.75 = 0.465; cached 400,000 × 0.75 = 0.30; out 150,000 × 3.75 = 0.5625 → 1.3275
    assert TABLE.cost(u, D(2026, 10, 7)) == pytest.approx(1.3275)
    assert TABLE.cost(u.model_copy(update={"model": "models/gemini-3.8-flash"}), D(2026, 10, 7)) == \
        pytest.approx(1.3275)  # the API's "models/" prefix is the same model


def test_dated_price_switch_on_2027_01_01() -> None:
    u = Usage(model="gemini-3.8-flash", prompt_tokens=1_000_000, output_tokens=1_000_000)
    assert TABLE.cost(u, D(2026, 12, 31)) == pytest.approx(0.75 + 3.75)
    assert TABLE.cost(u, D(2027, 1, 1)) == pytest.approx(1.50 + 7.50)
    assert TABLE.cost(u, D(2030, 1, 1)) == pytest.approx(1.50 + 7.50)
    assert TABLE.cost(u, D(2026, 9, 1)) is None  # before the first price: unknown, not free
    assert TABLE.price_for("gemini-3.8-flash", D(2027, 1, 1)).effective == D(2027, 1, 1)


def test_price_table_order_does_not_matter() -> None:
    shuffled = PriceTable(list(reversed(default_prices())))
    u = Usage(model="gemini-3.8-flash", prompt_tokens=1_000_000)
    assert shuffled.cost(u, D(2026, 12, 31)) == pytest.approx(0.75)
    assert shuffled.cost(u, D(2027, 1, 2)) == pytest.approx(1.50)


def test_long_context_prices_apply_above_the_threshold_only() -> None:
    # gemini-3.1-pro-preview: $2 / $12, above 200,000 prompt tokens $4 / $18.
    at = Usage(model="gemini-3.1-pro-preview", prompt_tokens=200_000, output_tokens=10_000)
    above = Usage(model="gemini-3.1-pro-preview", prompt_tokens=250_000, output_tokens=10_000)
    assert TABLE.cost(at, D(2026, 10, 7)) == pytest.approx(200_000 * 2 / 1e6 + 10_000 * 12 / 1e6)   # 0.52
    assert TABLE.cost(above, D(2026, 10, 7)) == pytest.approx(250_000 * 4 / 1e6 + 10_000 * 18 / 1e6)  # 1.18


def test_unknown_model_costs_none() -> None:
    assert TABLE.cost(Usage(model="some-new-model", prompt_tokens=10), D(2026, 10, 7)) is None
    ledger = UsageLedger(TABLE)
    assert ledger.priced(Usage(model="some-new-model", prompt_tokens=10)).cost_usd is None


# ---------------------------------------------------------------- ledger

def test_totals_cost_is_none_when_any_call_is_unpriced_but_priced_cost_sums_the_rest() -> None:
    ledger = UsageLedger(TABLE)
    ledger.record(rec("a", Usage(model="gemini-3.8-flash", prompt_tokens=100, cost_usd=0.25)))
    ledger.record(rec("b", Usage(model="gemini-3.8-flash", output_tokens=10, cost_usd=0.5)))
    assert ledger.total().cost_usd == pytest.approx(0.75)
    ledger.record(rec("c", Usage(model="mystery", prompt_tokens=1_000, cost_usd=None)))
    total = ledger.total()
    assert total.cost_usd is None
    assert total.priced_cost_usd == pytest.approx(0.75)
    assert total.unpriced == 1 and total.calls == 3
    assert total.total_tokens == 1_110


def test_record_once_by_record_id() -> None:
    ledger = UsageLedger(TABLE)
    u = Usage(model="gemini-3.8-flash", prompt_tokens=100, output_tokens=7, cost_usd=0.01)
    assert ledger.record(rec("tier3:T1#a1.c1", u)) is True
    assert ledger.record(rec("tier3:T1#a1.c1", u.model_copy(update={"prompt_tokens": 999}))) is False
    assert ledger.total().calls == 1 and ledger.total().prompt_tokens == 100


def test_record_once_holds_under_concurrent_recording() -> None:
    ledger = UsageLedger(TABLE)
    u = Usage(model="gemini-3.8-flash", prompt_tokens=1, cost_usd=0.0)
    barrier = threading.Barrier(8, timeout=10)
    accepted: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        n = sum(ledger.record(rec(f"id-{i}", u)) for i in range(300))
        with lock:
            accepted.append(n)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sum(accepted) == 300 and ledger.total().calls == 300


def test_grouping_by_tier_ticket_and_model() -> None:
    ledger = UsageLedger(TABLE)
    ledger.record(rec("1", Usage(model="a", prompt_tokens=10, cost_usd=1.0), tier=3, ticket="T1"))
    ledger.record(rec("2", Usage(model="a", prompt_tokens=20, cost_usd=2.0), tier=4, ticket="T1"))
    ledger.record(rec("3", Usage(model="b", prompt_tokens=40, cost_usd=None), tier=3, ticket="T2"))
    ledger.record(rec("4", Usage(model="c", prompt_tokens=80, cost_usd=4.0), tier=1, ticket=None, track=None))
    tiers = ledger.by_tier()
    assert {k: v.prompt_tokens for k, v in tiers.items()} == {3: 50, 4: 20, 1: 80}
    assert tiers[3].cost_usd is None and tiers[3].priced_cost_usd == pytest.approx(1.0)
    assert tiers[4].cost_usd == pytest.approx(2.0)
    tickets = ledger.by_ticket()
    assert {k: v.calls for k, v in tickets.items()} == {("tr", "T1"): 2, ("tr", "T2"): 1, (None, None): 1}
    assert tickets[("tr", "T1")].cost_usd == pytest.approx(3.0)
    models = ledger.by_model()
    assert {k: v.prompt_tokens for k, v in models.items()} == {"a": 30, "b": 40, "c": 80}


def test_usage_record_json_round_trip() -> None:
    r = rec("x#1", Usage(model="m", prompt_tokens=5, thinking_tokens=2, cost_usd=None, partial=True), tier=4)
    assert UsageRecord.from_json(r.to_json()) == r


def test_totals_count_partial_calls() -> None:
    t = Totals()
    t.add(Usage(model="m", prompt_tokens=1, partial=True, cost_usd=0.1))
    t.add(Usage(model="m", prompt_tokens=1, cost_usd=0.2))
    assert t.partial == 1 and t.calls == 2 and t.cost_usd == pytest.approx(0.3)


# ---------------------------------------------------------------- budget

def test_budget_allows_spending_below_the_limits() -> None:
    ledger = UsageLedger(TABLE)
    ledger.record(rec("1", Usage(model="m", prompt_tokens=999, cost_usd=0.009)))
    ledger.check_budget(BudgetConfig(max_tokens=1_000, max_cost_usd=0.01))  # no raise
    ledger.check_budget(BudgetConfig())  # no limits


def test_token_budget_message_carries_the_numbers() -> None:
    ledger = UsageLedger(TABLE)
    ledger.record(rec("1", Usage(model="m", prompt_tokens=1_200, output_tokens=300, cost_usd=0.0)))
    with pytest.raises(BudgetExceeded) as info:
        ledger.check_budget(BudgetConfig(max_tokens=1_500))
    assert "1,500 of 1,500" in str(info.value)




def test_the_per_call_budget_check_does_not_re_sum_the_whole_ledger(monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = UsageLedger(TABLE)
    for i in range(1_000):
        ledger.record(rec(f"r{i}", Usage(model="m", prompt_tokens=1, cost_usd=0.0)))
    adds = 0
    real_add = Totals.add

    def counting_add(self: Totals, u: Usage) -> None:
        nonlocal adds
        adds += 1
        real_add(self, u)

    monkeypatch.setattr(Totals, "add", counting_add)
    for budget in (BudgetConfig(), BudgetConfig(max_tokens=10**9, max_cost_usd=10**6)):
        for _ in range(100):
            ledger.check_budget(budget)
    # 200 checks over 1,000 records: re-summing costs 200,000 additions; a running total costs none.
    assert adds < 1_000, f"{adds} Totals.add calls for 200 budget checks"


def test_cost_budget_message_carries_the_numbers() -> None:
    ledger = UsageLedger(TABLE)
    ledger.record(rec("1", Usage(model="m", prompt_tokens=1, cost_usd=0.0125)))
    ledger.record(rec("2", Usage(model="unknown", prompt_tokens=1, cost_usd=None)))
    with pytest.raises(BudgetExceeded) as info:
        ledger.check_budget(BudgetConfig(max_cost_usd=0.01))
    assert "$0.0125" in str(info.value) and "$0.01" in str(info.value)


def test_a_cost_cap_refuses_a_model_without_a_price() -> None:
    """Fail closed: a call whose cost cannot be counted cannot be kept under a cost limit."""
    ledger = UsageLedger(PriceTable(default_prices()))
    capped = BudgetConfig(max_cost_usd=1.0)
    ledger.check_budget(capped, "gemini-3.8-flash")  # priced: fine
    with pytest.raises(BudgetExceeded, match="'my-local-model' has no price"):
        ledger.check_budget(capped, "my-local-model")
    ledger.check_budget(BudgetConfig(max_tokens=10_000), "my-local-model")  # no cost cap: nothing to keep
