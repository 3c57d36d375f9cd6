"""The feature vector computed from a customer's state as of a point in event time.

:data:`FEATURES` is the model-input order; training stores it with every model, so a name or its place
changes only with a new model.
"""

from __future__ import annotations

from typing import Sequence

from pipeline.core.contract import DAY_MS, VIP_TIER
from pipeline.core.features.state import (ACTIVITY_CH, CH, CHANNELS, N_CH, N_INTERACTION_CH, NAN, RING_DAYS,
                                          SEVERITY_RANK, WINDOWS, CustomerState, day_of)

PLAN_LEVEL = {"free": -1.0, "basic": 0.0, "starter": 0.0, "pro": 1.0, "business": 1.5, "enterprise": 2.0}


#: Usage against the customer's own baseline: a steady low-usage customer stays near 1, a collapsing one
#: falls towards 0, whatever their absolute level (see docs/features.md for the exact definitions).
BASELINE_FEATURES = (
    "logins_14d_vs_90d", "feature_uses_14d_vs_90d", "activity_14d_vs_90d", "active_days_14d_vs_90d",
    "logins_7d_vs_90d", "activity_30d_vs_prev60d", "active_days_30d_vs_prev60d",
)
#: Per-session figures: how much a customer does once logged in, and how often help fails them.
SESSION_FEATURES = (
    "actions_per_login_14d", "actions_per_login_90d", "help_views_per_login_30d",
    "failed_help_share_30d", "failed_help_share_90d",
)
#: Age bands (in days before ``now``'s day) that the windows are built from: [0,7) [7,14) [14,30) [30,90).
_BAND_ENDS = (7, 14, 30, RING_DAYS)


def _names() -> tuple[str, ...]:
    names = ["is_vip", "plan_level", "mrr", "tenure_days", "days_to_renewal"]
    for w in WINDOWS:
        names += [f"{ch}_{w}d" for ch in CHANNELS[:N_INTERACTION_CH]]
        names.append(f"active_days_{w}d")
    names += ["logins_trend_7d", "activity_trend_7d", "feature_uses_trend_7d"]
    names += list(BASELINE_FEATURES)
    names += list(SESSION_FEATURES)
    names += ["days_since_login", "days_since_activity"]
    names += [
        "open_tickets", "open_high_sev_tickets", "open_past_sla",
        "tickets_30d", "high_sev_tickets_30d", "escalations_30d", "sla_breaches_30d",
        "reopens_90d", "mean_resolve_hours",
    ]
    names += ["last_nps", "nps_category", "nps_change", "days_since_nps", "min_csat_30d", "mean_csat_90d", "mean_ces_90d"]
    return tuple(names)


#: Feature names in model-input order. Training stores this list with every model.
FEATURES: tuple[str, ...] = _names()
FEATURE_INDEX = {name: i for i, name in enumerate(FEATURES)}


def _band_sums(state: CustomerState, now_day: int) -> tuple[list[list[float]], list[int]]:
    """Channel sums and active days per age band (:data:`_BAND_ENDS`): each day bucket is added once,
    and every window is a sum of leading bands."""
    sums = [[0.0] * N_CH for _ in _BAND_ENDS]
    active = [0] * len(_BAND_ENDS)
    b0, b1, b2 = _BAND_ENDS[:3]
    for day, counts in state.days.items():
        age = now_day - day
        if age < 0 or age >= RING_DAYS:
            continue  # a bucket "after" now only exists when scoring in the past (never in the stream)
        bi = 0 if age < b0 else (1 if age < b1 else (2 if age < b2 else 3))
        row = sums[bi]
        for c in range(N_CH):
            row[c] += counts[c]
        if any(counts[:N_INTERACTION_CH]):
            active[bi] += 1
    return sums, active


def _add(a: list[float], b: list[float]) -> list[float]:
    return [x + y for x, y in zip(a, b)]


def rate_ratio(recent: float, recent_days: int, total: float, total_days: int) -> float:
    """Per-day rate over the recent window / per-day rate over the whole (longer) window; NaN when the
    longer window is empty (no baseline to compare with). Shared with the learnt specs' features."""
    if total <= 0 or total_days <= 0 or recent_days <= 0:
        return NAN
    return (recent / recent_days) / (total / total_days)


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else NAN


def trend(now: float, before: float) -> float:
    """Relative change of a window vs the one before it (the last 7 days vs the 7 before); 0 when both are
    empty."""
    return (now - before) / max(before, 1.0)


def days_covered(state: CustomerState, now_day: int) -> int:
    """Days the state covers as of ``now_day``, the first event's day and today included (0: no event yet):
    the customer's own baseline is capped at this."""
    return now_day - day_of(state.first_ms) + 1 if state.first_ms else 0


def _days_since(now_ms: int, ts_ms: int) -> float:
    return (now_ms - ts_ms) / DAY_MS if ts_ms else NAN


def vector(state: CustomerState, now_ms: int) -> list[float]:
    """The feature vector of ``state`` as of event time ``now_ms``, in :data:`FEATURES` order.

    Missing information is NaN (LightGBM treats it as missing), never a made-up zero.
    """
    now_day = day_of(now_ms)
    bands, band_active = _band_sums(state, now_day)
    s7 = bands[0]
    s14 = _add(s7, bands[1])
    s30 = _add(s14, bands[2])
    s90 = _add(s30, bands[3])
    sums = (s7, s30, s90)
    a7 = band_active[0]
    a14 = a7 + band_active[1]
    a30 = a14 + band_active[2]
    a90 = a30 + band_active[3]
    active = (a7, a30, a90)
    prev7 = bands[1]
    out: list[float] = [
        1.0 if state.tier == VIP_TIER else 0.0,
        PLAN_LEVEL.get(state.plan, NAN),
        state.mrr,
        _days_since(now_ms, state.signup_ms),
        (state.renewal_ms - now_ms) / DAY_MS if state.renewal_ms else NAN,
    ]
    for wi in range(len(WINDOWS)):
        out += sums[wi][:N_INTERACTION_CH]
        out.append(float(active[wi]))
    act7, act14 = sum(s7[c] for c in ACTIVITY_CH), sum(s14[c] for c in ACTIVITY_CH)
    act30, act90 = sum(s30[c] for c in ACTIVITY_CH), sum(s90[c] for c in ACTIVITY_CH)
    out.append(trend(s7[CH["logins"]], prev7[CH["logins"]]))
    out.append(trend(act7, act14 - act7))
    out.append(trend(s7[CH["feature_uses"]], prev7[CH["feature_uses"]]))
    # own baseline: days the state covers (since the customer's first event), capped per window
    covered = days_covered(state, now_day)
    d7, d14, d30, d90 = (min(w, covered) for w in (7, 14, 30, RING_DAYS))
    logins, uses = CH["logins"], CH["feature_uses"]
    out += [
        rate_ratio(s14[logins], d14, s90[logins], d90),
        rate_ratio(s14[uses], d14, s90[uses], d90),
        rate_ratio(act14, d14, act90, d90),
        rate_ratio(a14, d14, a90, d90),
        rate_ratio(s7[logins], d7, s90[logins], d90),
    ]
    if d90 - d30 >= 7:  # at least a week before the last 30 days to compare with
        out.append(rate_ratio(act30, d30, act90 - act30, d90 - d30) if act90 > act30 else NAN)
        out.append(rate_ratio(a30, d30, a90 - a30, d90 - d30) if a90 > a30 else NAN)
    else:
        out += [NAN, NAN]
    views, help_, failed = CH["page_views"], CH["help_views"], CH["failed_help"]
    out += [
        _ratio(s14[views] + s14[uses], s14[logins]),
        _ratio(s90[views] + s90[uses], s90[logins]),
        _ratio(s30[help_], s30[logins]),
        _ratio(s30[failed], s30[help_]),
        _ratio(s90[failed], s90[help_]),
    ]
    out.append(_days_since(now_ms, state.last_login_ms))
    out.append(_days_since(now_ms, state.last_activity_ms))
    open_t = [t for t in state.open_tickets.values() if t[0] <= now_ms]
    out += [
        float(len(open_t)),
        float(sum(1 for t in open_t if t[1] >= SEVERITY_RANK["high"])),
        float(sum(1 for t in open_t if t[2] and t[2] < now_ms)),
        s30[CH["tickets"]],
        s30[CH["high_sev_tickets"]],
        s30[CH["escalations"]],
        s30[CH["sla_breaches"]],
        s90[CH["reopens"]],
        state.ttr_sum_h / state.ttr_count if state.ttr_count else NAN,
    ]
    nps = [p for p in state.nps if p[0] <= now_ms]
    if nps:
        last = nps[-1][1]
        out += [
            last,
            -1.0 if last <= 6 else (0.0 if last <= 8 else 1.0),
            last - nps[-2][1] if len(nps) > 1 else NAN,
            (now_ms - nps[-1][0]) / DAY_MS,
        ]
    else:
        out += [NAN, NAN, NAN, NAN]
    csat30 = [s for t, s in state.csat if now_ms - 30 * DAY_MS <= t <= now_ms]
    csat90 = [s for t, s in state.csat if now_ms - 90 * DAY_MS <= t <= now_ms]
    ces90 = [s for t, s in state.ces if now_ms - 90 * DAY_MS <= t <= now_ms]
    out.append(min(csat30) if csat30 else NAN)
    out.append(sum(csat90) / len(csat90) if csat90 else NAN)
    out.append(sum(ces90) / len(ces90) if ces90 else NAN)
    return out


def as_dict(vec: Sequence[float]) -> dict[str, float]:
    return dict(zip(FEATURES, vec))
