"""Telling a per-day quota error from a per-minute rate limit, on the error body Gemini sends.

Both are HTTP 429 RESOURCE_EXHAUSTED. The difference is in `error.details`: a `google.rpc.QuotaFailure`
lists the violated quotas, and a daily one has a `quotaId` such as `GenerateRequestsPerDayPerProjectPerModel`
(`-FreeTier`), metric `generativelanguage.googleapis.com/generate_requests_per_model_per_day`. Real bodies
(googleapis/python-genai#2044, google-gemini/gemini-cli#8437, langgenius/dify#19838) list several violations
at once, per-minute and per-day together, often with a `RetryInfo` of a few seconds: any per-day violation
wins, since retrying after those seconds is refused again until the daily reset. Daily quotas reset at
midnight Pacific time (ai.google.dev/gemini-api/docs/rate-limits).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conductor.errors import QuotaExhausted

_DAILY = re.compile(r"per_?day|daily", re.IGNORECASE)
RESET_ZONE = "America/Los_Angeles"


@dataclass(frozen=True)
class DailyViolation:
    quota_id: str
    metric: str
    model: str
    limit: str


def _get(obj: Any, *names: str) -> Any:
    if not isinstance(obj, Mapping):
        return None
    for n in names:
        if n in obj:
            return obj[n]
    return None


def daily_violation(details: Any) -> DailyViolation | None:
    """The first per-day QuotaFailure violation in an error body (`{"error": {...}}` or the error itself)."""
    err = _get(details, "error") if isinstance(_get(details, "error"), Mapping) else details
    for d in _get(err, "details") or []:
        if not str(_get(d, "@type") or "").endswith("google.rpc.QuotaFailure"):
            continue
        for v in _get(d, "violations") or []:
            quota_id = str(_get(v, "quotaId", "quota_id") or "")
            metric = str(_get(v, "quotaMetric", "quota_metric") or "")
            if _DAILY.search(quota_id) or _DAILY.search(metric):
                dims = _get(v, "quotaDimensions", "quota_dimensions") or {}
                return DailyViolation(quota_id=quota_id or metric, metric=metric,
                                      model=str(_get(dims, "model") or ""),
                                      limit=str(_get(v, "quotaValue", "quota_value") or ""))
    return None


def next_reset(now_epoch: float) -> float | None:
    """The next midnight Pacific time after `now_epoch`, as epoch seconds; None without time-zone data."""
    try:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
        zone = ZoneInfo(RESET_ZONE)
    except (ImportError, ZoneInfoNotFoundError, ValueError):
        return None
    local = dt.datetime.fromtimestamp(now_epoch, zone)
    midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
    return midnight.timestamp()


def quota_error(violation: DailyViolation, server_message: str, *, now_epoch: float,
                status: int | None = 429) -> QuotaExhausted:
    """The QuotaExhausted to raise, with a message a person can act on: which quota, and when it resets."""
    resets_at = next_reset(now_epoch)
    what = violation.quota_id + (f" (limit {violation.limit})" if violation.limit else "")
    model = f" for {violation.model}" if violation.model else ""
    if resets_at is None:
        when = "it resets at midnight Pacific time (the exact time is unknown here)"
    else:
        left = max(int(resets_at - now_epoch), 0)
        at = dt.datetime.fromtimestamp(resets_at, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        when = f"it resets at midnight Pacific time, {at} (in {left // 3600}h{left % 3600 // 60:02d}m)"
    msg = (f"daily quota exhausted: {what}{model}; {when}. Resume the track after the reset, or raise the "
           f"quota. Gemini said: {server_message or 'RESOURCE_EXHAUSTED'}")
    return QuotaExhausted(msg, model=violation.model, quota_id=violation.quota_id, resets_at=resets_at,
                          status=status)
