"""Turning per-feature contributions into reasons a customer-success manager can read.

A score alone is not actionable; "logins down 80% vs the previous week" is. Each feature has a
category (what kind of problem it points at) and a sentence template that reads the feature vector,
so the sentence can mention related values (a trend and its underlying counts).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

from pipeline.core.features import FEATURE_INDEX, FEATURES, WINDOWS

Vec = Sequence[float]


@dataclass(frozen=True)
class Reason:
    feature: str
    value: float | None
    contribution: float
    category: str
    text: str

    def to_json(self) -> dict:
        d = asdict(self)
        d["value"] = None if self.value is None or math.isnan(self.value) else round(self.value, 4)
        d["contribution"] = round(self.contribution, 4)
        return d


def _v(vec: Vec, name: str) -> float:
    return vec[FEATURE_INDEX[name]]


def figure(x: float) -> str:
    """A number as a sentence shows it: whole numbers without decimals, others with one; NaN as "unknown"."""
    if math.isnan(x):
        return "unknown"
    return f"{x:.0f}" if abs(x - round(x)) < 1e-9 else f"{x:.1f}"


def _pct_change(vec: Vec, trend_name: str, last_name: str, what: str) -> str:
    trend = _v(vec, trend_name)
    last7 = _v(vec, last_name)
    if math.isnan(trend):
        return f"{what} trend unknown"
    if trend < 0:
        return f"{what} down {min(100, round(-trend * 100))}% vs the previous week ({figure(last7)} in the last 7 days)"
    if trend > 0:
        return f"{what} up {round(trend * 100)}% vs the previous week ({figure(last7)} in the last 7 days)"
    return f"{what} flat vs the previous week ({figure(last7)} in the last 7 days)"


def _activity_text(vec: Vec) -> str:
    trend = _v(vec, "activity_trend_7d")
    days = _v(vec, "active_days_7d")
    if math.isnan(trend) or trend == 0:
        return f"product activity flat vs the previous week (active {figure(days)} of the last 7 days)"
    direction = "down" if trend < 0 else "up"
    pct = min(100, round(-trend * 100)) if trend < 0 else round(trend * 100)
    return f"product activity {direction} {pct}% vs the previous week (active {figure(days)} of the last 7 days)"


def _plural(x: float, word: str) -> str:
    return f"{figure(x)} {word}" if x == 1 else f"{figure(x)} {word}s"


def _nps_text(vec: Vec) -> str:
    score = _v(vec, "last_nps")
    if math.isnan(score):
        return "no NPS answer yet"
    label = "detractor" if score <= 6 else ("passive" if score <= 8 else "promoter")
    return f"NPS {figure(score)} ({label}) {_plural(_v(vec, 'days_since_nps'), 'day')} ago"


def _vs_own(vec: Vec, name: str, what: str, recent: str, base: str) -> str:
    """A usage-vs-own-baseline ratio as a share of the customer's usual daily rate."""
    x = _v(vec, name)
    if math.isnan(x):
        return f"{what} in the last {recent}: no earlier activity to compare with"
    return f"{what} in the last {recent} at {round(x * 100)}% of their daily rate {base}"


def _per_login(vec: Vec, name: str, what: str, days: int) -> str:
    x = _v(vec, name)
    if math.isnan(x):
        return f"no logins in the last {days} days"
    return f"{x:.1f} {what} per login in the last {days} days"


def _failed_share(vec: Vec, name: str, days: int) -> str:
    x = _v(vec, name)
    if math.isnan(x):
        return f"no help-article views in the last {days} days"
    return f"{round(x * 100)}% of help-article views unsuccessful in the last {days} days"


Template = Callable[[Vec], str]
_TEXT: dict[str, tuple[str, Template]] = {
    "is_vip": ("profile", lambda v: "VIP account"),
    "plan_level": ("profile", lambda v: f"plan level {figure(_v(v, 'plan_level'))}"),
    "mrr": ("profile", lambda v: f"MRR {figure(_v(v, 'mrr'))}"),
    "tenure_days": ("profile", lambda v: f"customer for {figure(_v(v, 'tenure_days'))} days"),
    "days_to_renewal": ("renewal", lambda v: f"renewal in {figure(_v(v, 'days_to_renewal'))} days"),
    "logins_trend_7d": ("adoption", lambda v: _pct_change(v, "logins_trend_7d", "logins_7d", "logins")),
    "activity_trend_7d": ("adoption", lambda v: _activity_text(v)),
    "feature_uses_trend_7d": ("adoption", lambda v: _pct_change(v, "feature_uses_trend_7d", "feature_uses_7d", "feature use")),
    "logins_14d_vs_90d": ("adoption", lambda v: _vs_own(v, "logins_14d_vs_90d", "logins", "14 days", "over 90 days")),
    "feature_uses_14d_vs_90d": ("adoption", lambda v: _vs_own(v, "feature_uses_14d_vs_90d", "feature use", "14 days", "over 90 days")),
    "activity_14d_vs_90d": ("adoption", lambda v: _vs_own(v, "activity_14d_vs_90d", "product activity", "14 days", "over 90 days")),
    "active_days_14d_vs_90d": ("adoption", lambda v: _vs_own(v, "active_days_14d_vs_90d", "active days", "14 days", "over 90 days")),
    "logins_7d_vs_90d": ("adoption", lambda v: _vs_own(v, "logins_7d_vs_90d", "logins", "7 days", "over 90 days")),
    "activity_30d_vs_prev60d": ("adoption", lambda v: _vs_own(v, "activity_30d_vs_prev60d", "product activity", "30 days", "in the 60 days before")),
    "active_days_30d_vs_prev60d": ("adoption", lambda v: _vs_own(v, "active_days_30d_vs_prev60d", "active days", "30 days", "in the 60 days before")),
    "actions_per_login_14d": ("adoption", lambda v: _per_login(v, "actions_per_login_14d", "actions", 14)),
    "actions_per_login_90d": ("adoption", lambda v: _per_login(v, "actions_per_login_90d", "actions", 90)),
    "help_views_per_login_30d": ("service", lambda v: _per_login(v, "help_views_per_login_30d", "help-article views", 30)),
    "failed_help_share_30d": ("service", lambda v: _failed_share(v, "failed_help_share_30d", 30)),
    "failed_help_share_90d": ("service", lambda v: _failed_share(v, "failed_help_share_90d", 90)),
    "days_since_login": ("adoption", lambda v: f"no login for {_plural(_v(v, 'days_since_login'), 'day')}"),
    "days_since_activity": ("adoption", lambda v: f"no activity for {_plural(_v(v, 'days_since_activity'), 'day')}"),
    "open_tickets": ("service", lambda v: f"{_plural(_v(v, 'open_tickets'), 'support ticket')} open"),
    "open_high_sev_tickets": ("service", lambda v: f"{_plural(_v(v, 'open_high_sev_tickets'), 'high-severity ticket')} open"),
    "open_past_sla": ("service", lambda v: f"{_plural(_v(v, 'open_past_sla'), 'open ticket')} past SLA"),
    "tickets_30d": ("service", lambda v: f"{_plural(_v(v, 'tickets_30d'), 'ticket')} opened in 30 days"),
    "high_sev_tickets_30d": ("service", lambda v: f"{_plural(_v(v, 'high_sev_tickets_30d'), 'high-severity ticket')} in 30 days"),
    "escalations_30d": ("service", lambda v: f"{_plural(_v(v, 'escalations_30d'), 'ticket escalation')} in 30 days"),
    "sla_breaches_30d": ("service", lambda v: f"{figure(_v(v, 'sla_breaches_30d'))} SLA breach{'' if _v(v, 'sla_breaches_30d') == 1 else 'es'} in 30 days"),
    "reopens_90d": ("service", lambda v: f"{_plural(_v(v, 'reopens_90d'), 'ticket')} reopened in 90 days"),
    "mean_resolve_hours": ("service", lambda v: f"tickets take {figure(_v(v, 'mean_resolve_hours'))} h to resolve on average"),
    "last_nps": ("value", _nps_text),
    "nps_category": ("value", _nps_text),
    "nps_change": ("value", lambda v: f"NPS changed by {figure(_v(v, 'nps_change'))} since the previous answer"),
    "days_since_nps": ("value", _nps_text),
    "min_csat_30d": ("value", lambda v: f"lowest CSAT in 30 days: {figure(_v(v, 'min_csat_30d'))}/5"),
    "mean_csat_90d": ("value", lambda v: f"average CSAT over 90 days: {figure(_v(v, 'mean_csat_90d'))}/5"),
    "mean_ces_90d": ("value", lambda v: f"customer effort score {figure(_v(v, 'mean_ces_90d'))}/7 (higher is harder)"),
}
_WINDOW_WORDS = {
    "logins": "logins", "feature_uses": "feature uses", "page_views": "page views", "help_views": "help-article views",
    "failed_help": "unsuccessful help-article views", "purchases": "purchases", "other_events": "other product events",
    "active_days": "active days",
}
for _w in WINDOWS:
    for _ch, _words in _WINDOW_WORDS.items():
        _name = f"{_ch}_{_w}d"
        _cat = "service" if _ch == "failed_help" else "adoption"
        _TEXT[_name] = (_cat, (lambda name, words, w: lambda v: f"{figure(_v(v, name))} {words} in the last {w} days")(_name, _words, _w))

assert set(_TEXT) == set(FEATURES), sorted(set(FEATURES) ^ set(_TEXT))


# ---- features of a learnt spec (pipeline.core.spec): the product's own event types -------------------------
#: Words in a type name that mark friction (the product failing the customer), not adoption. Generic
#: English, not one product's vocabulary.
_FRICTION = ("fail", "error", "crash", "timeout", "denied", "reject", "bounce", "complain", "cancel", "downgrade",
             "remove", "delete", "unsubscribe", "uninstall", "unfriend", "block", "report_issue")
_SPEC_PATTERNS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str], float], tuple[str, str]]], ...] = (
    (re.compile(r"^type_(.+)_(\d+)d_vs_(\d+)d$"), lambda m, x: (
        _kind(m[1]), f"{_words(m[1])} at {figure(x * 100)}% of the customer's usual rate (last {m[2]} vs {m[3]} days)")),
    (re.compile(r"^type_(.+)_trend_(\d+)d$"), lambda m, x: (
        _kind(m[1]), f"{_words(m[1])} {'down' if x < 0 else 'up'} {figure(min(100.0, abs(x) * 100) if x < 0 else abs(x) * 100)}% "
                     f"vs the {m[2]} days before")),
    (re.compile(r"^type_(.+)_active_days_(\d+)d$"), lambda m, x: (
        _kind(m[1]), f"{_words(m[1])} on {figure(x)} of the last {m[2]} days")),
    (re.compile(r"^type_(.+)_days_since$"), lambda m, x: (
        _kind(m[1]), f"{figure(x)} days since the last {_words(m[1])}" if not math.isnan(x) else f"never a {_words(m[1])}")),
    (re.compile(r"^type_(.+)_share_(\d+)d$"), lambda m, x: (
        _kind(m[1]), f"{_words(m[1])} {figure(x * 100)}% of all activity in the last {m[2]} days")),
    (re.compile(r"^type_(.+)_per_active_day_(\d+)d$"), lambda m, x: (
        _kind(m[1]), f"{figure(x)} {_words(m[1])} per active day (last {m[2]} days)")),
    (re.compile(r"^type_(.+)_(\d+)d$"), lambda m, x: (
        _kind(m[1]), f"{figure(x)} {_words(m[1])} events in the last {m[2]} days")),
    (re.compile(r"^ratio_(.+)_per_(.+)_(\d+)d$"), lambda m, x: (
        "adoption", f"{figure(x)} {_words(m[1])} per {_words(m[2])} (last {m[3]} days)")),
    (re.compile(r"^usage_events_(\d+)d_vs_(\d+)d$"), lambda m, x: (
        "adoption", f"activity at {figure(x * 100)}% of the customer's usual rate (last {m[1]} vs {m[2]} days)")),
    (re.compile(r"^usage_events_trend_(\d+)d$"), lambda m, x: (
        "adoption", f"activity {'down' if x < 0 else 'up'} {figure(abs(x) * 100)}% vs the {m[1]} days before")),
    (re.compile(r"^usage_events_(\d+)d$"), lambda m, x: ("adoption", f"{figure(x)} product events in the last {m[1]} days")),
    (re.compile(r"^usage_active_days_(\d+)d$"), lambda m, x: ("adoption", f"active on {figure(x)} of the last {m[1]} days")),
    (re.compile(r"^usage_types_(\d+)d$"), lambda m, x: ("adoption", f"{figure(x)} kinds of product events in the last {m[1]} days")),
    (re.compile(r"^usage_observed_days$"), lambda m, x: ("profile", f"{figure(x)} days of activity history")),
    (re.compile(r"^other_types_(\d+)d$"), lambda m, x: ("adoption", f"{figure(x)} other product events in the last {m[1]} days")),
    (re.compile(r"^users_(\d+)d$"), lambda m, x: ("adoption", f"{figure(x)} active users in the last {m[1]} days")),
    (re.compile(r"^events_per_user_(\d+)d$"), lambda m, x: ("adoption", f"{figure(x)} events per active user (last {m[1]} days)")),
    (re.compile(r"^value_trend_(\d+)d$"), lambda m, x: (
        "value", f"value {'down' if x < 0 else 'up'} {figure(abs(x) * 100)}% vs the {m[1]} days before")),
    (re.compile(r"^value_(\d+)d$"), lambda m, x: ("value", f"value {figure(x)} in the last {m[1]} days")),
    (re.compile(r"^period_days$"), lambda m, x: ("renewal", f"billing period of {figure(x)} days")),
    (re.compile(r"^days_into_period$"), lambda m, x: ("renewal", f"{figure(x)} days into the billing period")),
    (re.compile(r"^period_events_vs_prev$"), lambda m, x: (
        "renewal", f"activity this billing period at {figure(x * 100)}% of the same span before it")),
)


def _words(type_name: str) -> str:
    return type_name.replace("_", " ")


def _kind(type_name: str) -> str:
    return "service" if any(w in type_name for w in _FRICTION) else "adoption"


def _spec_reason(name: str, value: float) -> tuple[str, str]:
    for pattern, make in _SPEC_PATTERNS:
        m = pattern.match(name)
        if m:
            return make(m, value)
    return "value", f"{name.replace('_', ' ')} {figure(value)}"


def category(feature: str) -> str:
    if feature in _TEXT:
        return _TEXT[feature][0]
    return _spec_reason(feature, 0.0)[0]


def top_reasons(vec: Vec, contrib: Sequence[float], k: int = 3, *, names: Sequence[str] = FEATURES) -> list[Reason]:
    """The ``k`` features pushing risk up the most (positive contributions only), as sentences.

    ``names`` are the model's features (its spec's): the built-in ones lead, with sentences of their own;
    a learnt spec's features are read from their names. Two features that produce the same sentence
    (e.g. last NPS and NPS category) count once.
    """
    order = sorted(range(len(names)), key=lambda i: contrib[i], reverse=True)
    out: list[Reason] = []
    seen: set[str] = set()
    for i in order:
        if contrib[i] <= 0 or len(out) == k:
            break
        name = names[i]
        if name in _TEXT:
            cat, template = _TEXT[name]
            text = template(vec)
        else:
            cat, text = _spec_reason(name, float(vec[i]))
        if text in seen:
            continue
        seen.add(text)
        out.append(Reason(name, float(vec[i]), float(contrib[i]), cat, text))
    return out
