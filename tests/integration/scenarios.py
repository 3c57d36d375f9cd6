"""Hand-scripted customer histories for integration tests: behaviour we can reason about exactly."""

from __future__ import annotations

import itertools
from typing import Any

from pipeline.core.contract import DAY_MS, format_ts

HOUR = 3_600_000
_seq = itertools.count()
Record = tuple[str, dict[str, Any]]


def event(source: str, customer: str, ts_ms: int, typ: str, **fields: Any) -> Record:
    value = {"event_id": f"{customer}-{next(_seq)}", "customer_id": customer, "ts": format_ts(ts_ms),
             "type": typ, "schema_version": 1, **fields}
    return (source, value)


def profile(customer: str, ts_ms: int, tier: str = "standard") -> Record:
    return event("customers", customer, ts_ms, "profile", tier=tier, plan="pro", mrr=500.0,
                 signup_ts=format_ts(ts_ms - 400 * DAY_MS), renewal_ts=format_ts(ts_ms + 200 * DAY_MS), csm="alice")


def healthy(customer: str, start_ms: int, days: int) -> list[Record]:
    """Steady daily use, quick-resolved minor ticket, promoter NPS, good CSAT."""
    out = [profile(customer, start_ms)]
    for d in range(days):
        day = start_ms + d * DAY_MS
        out.append(event("interactions", customer, day + 9 * HOUR, "login", duration_s=1800))
        for k in range(3):
            out.append(event("interactions", customer, day + (10 + k) * HOUR, "feature_use", feature="reports"))
        out.append(event("interactions", customer, day + 14 * HOUR, "page_view"))
        if d % 30 == 5:
            out.append(event("surveys", customer, day + 15 * HOUR, "nps", score=9))
        if d == 20:
            t = f"{customer}-t1"
            out.append(event("tickets", customer, day + 10 * HOUR, "opened", ticket_id=t, severity="low",
                             category="how-to", sla_due=format_ts(day + 82 * HOUR)))
            out.append(event("tickets", customer, day + 12 * HOUR, "resolved", ticket_id=t))
            out.append(event("surveys", customer, day + 13 * HOUR, "csat", score=5))
    return out


def deteriorating(customer: str, start_ms: int, days: int, healthy_days: int = 35) -> list[Record]:
    """Healthy at first, then usage collapses, severe tickets pile up past SLA and surveys turn bad."""
    out = healthy(customer, start_ms, healthy_days)
    for d in range(healthy_days, days):
        day = start_ms + d * DAY_MS
        if d < healthy_days + 5:
            out.append(event("interactions", customer, day + 9 * HOUR, "login", duration_s=120))
        if d % 3 == 0:
            out.append(event("interactions", customer, day + 16 * HOUR, "help_view", feature="integrations", success=False))
        if d in (healthy_days + 3, healthy_days + 8, healthy_days + 12):
            t = f"{customer}-bad{d}"
            out.append(event("tickets", customer, day + 8 * HOUR, "opened", ticket_id=t, severity="critical",
                             category="outage", sla_due=format_ts(day + 12 * HOUR)))
            out.append(event("tickets", customer, day + 20 * HOUR, "escalated", ticket_id=t))
        if d == healthy_days + 10:
            out.append(event("surveys", customer, day + 15 * HOUR, "nps", score=1))
        if d == healthy_days + 14:
            out.append(event("surveys", customer, day + 15 * HOUR, "csat", score=1))
            out.append(event("surveys", customer, day + 16 * HOUR, "ces", score=7))
    return out


def interleave(*histories: list[Record]) -> list[Record]:
    """Merge histories into one event-time ordered stream, as a real topic would carry them."""
    from pipeline.core.contract import parse_ts

    merged = [r for h in histories for r in h]
    merged.sort(key=lambda r: parse_ts(r[1]["ts"]))
    return merged
