"""Usage records, the ledger, the dated price table and the budget check.

Every model call's usage is recorded exactly once (keyed by its record id), attributed to tier, track,
ticket, model and attempt at that moment. Cost is None, never 0, when the model has no price.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar, assert_never

from conductor.config import BUILTIN_ENDPOINTS, BudgetConfig, Config, Price, split_model_ref
from conductor.errors import BudgetExceeded
from conductor.model import Usage

K = TypeVar("K")


class PriceTable:
    """Prices by model and effective date; `price_for` picks the newest entry not after the call's date.

    A model named `endpoint:model` takes the entry for exactly that name; failing that, on a built-in endpoint
    (gemini, openai, anthropic) the entry for the bare model name. A model on an endpoint the person marked
    `free = true` costs 0; on any other endpoint, a model without an entry has an unknown cost (None)."""

    def __init__(self, prices: Iterable[Price], free_endpoints: Iterable[str] = ()) -> None:
        self.free_endpoints = frozenset(free_endpoints)
        self._by_model: dict[str, list[Price]] = {}
        for p in prices:
            self._by_model.setdefault(p.model, []).append(p)
        for lst in self._by_model.values():
            lst.sort(key=lambda p: p.effective)

    @classmethod
    def for_config(cls, cfg: Config) -> PriceTable:
        return cls(cfg.prices, free_endpoints=[name for name, ep in cfg.endpoints.items() if ep.free])

    def price_for(self, model: str, on: dt.date) -> Price | None:
        endpoint, bare = split_model_ref(model)
        if endpoint is not None and endpoint in self.free_endpoints:
            return Price(model=model, effective=dt.date.min, input_per_mtok=0, output_per_mtok=0)
        found = self._dated(model, on)
        if found is None and endpoint in BUILTIN_ENDPOINTS:
            found = self._dated(bare, on)
        return found

    def _dated(self, model: str, on: dt.date) -> Price | None:
        name = model.removeprefix("models/")
        best = None
        for p in self._by_model.get(name, []):
            if p.effective <= on:
                best = p
        return best

    def cost(self, usage: Usage, on: dt.date | None = None) -> float | None:
        """USD for one call, or None when the model has no price on that date.

        Input = (prompt - cached + tool-use prompt) at the input price, cached at the cached price;
        output = (candidates + thinking) at the output price. Long-context prices apply above the threshold.
        """
        price = self.price_for(usage.model, on or dt.date.today())
        if price is None:
            return None
        long_ctx = price.long_context_threshold is not None and usage.prompt_tokens > price.long_context_threshold
        inp = price.long_input_per_mtok if long_ctx and price.long_input_per_mtok is not None else price.input_per_mtok
        out = (price.long_output_per_mtok if long_ctx and price.long_output_per_mtok is not None
               else price.output_per_mtok)
        cached = price.cached_per_mtok if price.cached_per_mtok is not None else inp
        write = price.cache_write_per_mtok if price.cache_write_per_mtok is not None else inp
        fresh_input = (max(usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens, 0)
                       + usage.tool_use_prompt_tokens)
        total = (fresh_input * inp + usage.cached_tokens * cached + usage.cache_write_tokens * write
                 + (usage.output_tokens + usage.thinking_tokens) * out) / 1_000_000
        return round(total, 8)


@dataclass(frozen=True)
class UsageRecord:
    record_id: str
    """Unique per model call: `<stream id>#<attempt>.<call n>`; recording the same id twice is refused."""
    tier: int
    model: str
    usage: Usage
    track_id: str | None = None
    ticket_id: str | None = None
    attempt: int = 0
    ts: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"record_id": self.record_id, "tier": self.tier, "model": self.model, "track_id": self.track_id,
                "ticket_id": self.ticket_id, "attempt": self.attempt, "ts": self.ts,
                "usage": self.usage.model_dump(mode="json")}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> UsageRecord:
        return cls(record_id=d["record_id"], tier=d["tier"], model=d["model"], track_id=d.get("track_id"),
                   ticket_id=d.get("ticket_id"), attempt=d.get("attempt", 0), ts=d.get("ts", 0.0),
                   usage=Usage.model_validate(d["usage"]))


@dataclass
class Totals:
    """Summed usage. `cost_usd` is None if any contributing call had an unknown cost (and `unpriced` counts them)."""

    calls: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cached_tokens: int = 0
    tool_use_prompt_tokens: int = 0
    cache_write_tokens: int = 0
    priced_cost_usd: float = 0.0
    unpriced: int = 0
    partial: int = 0
    estimated: int = 0
    """Calls whose counts were estimated (the endpoint reported none): these totals are then not exact."""

    def add(self, u: Usage) -> None:
        self.calls += 1
        self.prompt_tokens += u.prompt_tokens
        self.output_tokens += u.output_tokens
        self.thinking_tokens += u.thinking_tokens
        self.cached_tokens += u.cached_tokens
        self.tool_use_prompt_tokens += u.tool_use_prompt_tokens
        self.cache_write_tokens += u.cache_write_tokens
        if u.cost_usd is None:
            self.unpriced += 1
        else:
            self.priced_cost_usd += u.cost_usd
        self.partial += u.partial
        self.estimated += u.estimated

    @property
    def cost_usd(self) -> float | None:
        return None if self.unpriced else round(self.priced_cost_usd, 8)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens + self.thinking_tokens + self.tool_use_prompt_tokens


@dataclass(frozen=True)
class BudgetResets:
    """Where each budget starts counting: a reset moves the start to that moment (the spend before stays in
    the ledger and on the dashboard; it just no longer counts against the limit)."""

    lifetime_from: float = 0.0
    day_from: float = 0.0
    """A reset of today's budget; the day budget counts from the later of this and local midnight."""
    tracks: dict[str, float] = field(default_factory=dict)

    def reset(self, scope: BudgetScope, now: float, track_id: str | None = None) -> BudgetResets:
        match scope:
            case "lifetime":
                return replace(self, lifetime_from=now)
            case "day":
                return replace(self, day_from=now)
            case "track":
                if not track_id:
                    raise ValueError("resetting a track's budget needs the track id")
                return replace(self, tracks={**self.tracks, track_id: now})
            case _:
                assert_never(scope)

    def to_json(self) -> dict[str, Any]:
        return {"lifetime_from": self.lifetime_from, "day_from": self.day_from, "tracks": dict(self.tracks)}

    @classmethod
    def from_json(cls, data: Any, source: str) -> BudgetResets:
        """Raises ValueError naming `source` and the bad key."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a table of budget resets")
        out: dict[str, Any] = {}
        for key in ("lifetime_from", "day_from"):
            v = data.get(key, 0.0)
            if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{source}: {key!r} must be a time (seconds), got {v!r}")
            out[key] = float(v)
        tracks = data.get("tracks", {})
        if not isinstance(tracks, dict) or not all(isinstance(k, str) and isinstance(v, int | float)
                                                    and not isinstance(v, bool) for k, v in tracks.items()):
            raise ValueError(f"{source}: 'tracks' must map track ids to times")
        return cls(out["lifetime_from"], out["day_from"], {k: float(v) for k, v in tracks.items()})


BudgetScope = Literal["lifetime", "day", "track"]


def start_of_day(ts: float) -> float:
    """Local midnight before `ts` (a day budget follows the person's calendar, not UTC)."""
    d = dt.datetime.fromtimestamp(ts)
    return d.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


@dataclass
class UsageLedger:
    """Thread-safe accumulator of usage records. The one place where tokens are summed."""

    prices: PriceTable
    _records: dict[str, UsageRecord] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _total: Totals = field(default_factory=lambda: Totals())
    """Kept up to date by `record`, so the per-call budget check does not re-sum the whole ledger."""
    resets: BudgetResets = field(default_factory=BudgetResets)

    def priced(self, usage: Usage, on: dt.date | None = None) -> Usage:
        """`usage` with its cost filled in from the price table (None when the model has no price)."""
        return usage.model_copy(update={"cost_usd": self.prices.cost(usage, on)})

    def record(self, rec: UsageRecord) -> bool:
        """Add a record; returns False (and changes nothing) when its id was already recorded."""
        with self._lock:
            if rec.record_id in self._records:
                return False
            self._records[rec.record_id] = rec
            self._total.add(rec.usage)
            return True

    def records(self) -> list[UsageRecord]:
        with self._lock:
            return list(self._records.values())

    def _group(self, key: Callable[[UsageRecord], K]) -> dict[K, Totals]:
        out: dict[K, Totals] = {}
        for r in self.records():
            out.setdefault(key(r), Totals()).add(r.usage)
        return out

    def by_tier(self) -> dict[int, Totals]:
        return self._group(lambda r: r.tier)

    def by_ticket(self) -> dict[tuple[str | None, str | None], Totals]:
        return self._group(lambda r: (r.track_id, r.ticket_id))

    def by_model(self) -> dict[str, Totals]:
        return self._group(lambda r: r.model)

    def total(self) -> Totals:
        with self._lock:
            return replace(self._total)

    def spend(self, scope: BudgetScope, *, track_id: str | None = None, now: float | None = None) -> Totals:
        """What counts against one budget: everything since its reset (lifetime), today's calls since the
        day reset (day), or one track's calls since its reset (track)."""
        match scope:
            case "lifetime":
                if not self.resets.lifetime_from:
                    return self.total()
                since, track = self.resets.lifetime_from, None
            case "day":
                since = max(start_of_day(time.time() if now is None else now), self.resets.day_from)
                track = None
            case "track":
                if track_id is None:
                    raise ValueError("a track's spend needs the track id")
                since, track = self.resets.tracks.get(track_id, 0.0), track_id
            case _:
                assert_never(scope)
        out = Totals()
        for r in self.records():
            if r.ts >= since and (track is None or r.track_id == track):
                out.add(r.usage)
        return out

    def by_track(self) -> dict[str | None, Totals]:
        """Lifetime spend per track (the track browser shows it)."""
        return self._group(lambda r: r.track_id)

    def check_budget(self, budget: BudgetConfig, model: str | None = None, track_id: str | None = None,
                     now: float | None = None) -> None:
        """Raise BudgetExceeded when the spend so far has reached a limit; called before every model call.
        Three budgets, each with a token and a cost limit: lifetime (all tracks), today (local calendar day)
        and this track; each counts from its last reset.

        With a cost limit, a call to a model that has no price is refused too: its cost could not be
        counted, so the limit could not be kept (fail closed, naming the model)."""
        limits: list[tuple[BudgetScope, int | None, float | None]] = [
            ("lifetime", budget.max_tokens, budget.max_cost_usd),
            ("day", budget.max_tokens_per_day, budget.max_cost_usd_per_day)]
        if track_id is not None:
            limits.append(("track", budget.max_tokens_per_track, budget.max_cost_usd_per_track))
        limits = [x for x in limits if x[1] is not None or x[2] is not None]
        if not limits:
            return
        if any(cost is not None for _, _, cost in limits) and model is not None \
                and self.prices.price_for(model, dt.date.today()) is None:
            raise BudgetExceeded(f"a cost budget is set but model {model!r} has no price, so its cost cannot be "
                                 "counted: add it to [[prices]] in config.toml or remove the cost limit")
        for scope, max_tokens, max_cost in limits:
            t = self.spend(scope, track_id=track_id, now=now)
            name = {"lifetime": "", "day": "today's ", "track": f"track {track_id}'s "}[scope]
            if max_tokens is not None and t.total_tokens >= max_tokens:
                raise BudgetExceeded(f"{name}token budget spent: {t.total_tokens:,} of {max_tokens:,} tokens used"
                                     " (reset it under Tokens & cost, or raise it in Settings)")
            if max_cost is not None and t.priced_cost_usd >= max_cost:
                raise BudgetExceeded(f"{name}cost budget spent: ${t.priced_cost_usd:.4f} of ${max_cost:.2f} used"
                                     " (reset it under Tokens & cost, or raise it in Settings)")
