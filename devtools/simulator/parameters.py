"""The numbers the fixed story's population is drawn from: plans, prices, session and ticket rates, pages,
severities and SLAs, hours of the day, time zones, survey comments, churn reasons, and the churn risk
of a plan, term and tier."""

from __future__ import annotations

from devtools.simulator.draw import _cum


PLANS: tuple[str, ...] = ("basic", "pro", "enterprise")
_PLAN_CUM = (0.50, 0.85, 1.0)
_VIP_P = {"basic": 0.04, "pro": 0.15, "enterprise": 0.40}  # overall ~13% VIP
_MONTHLY_P = {"basic": 0.75, "pro": 0.45, "enterprise": 0.12}
_MRR_MEDIAN = {"basic": 59.0, "pro": 450.0, "enterprise": 3500.0}
_MRR_SIGMA = {"basic": 0.35, "pro": 0.40, "enterprise": 0.50}
_SESSIONS_MEDIAN = {"basic": 1.0, "pro": 1.7, "enterprise": 3.0}  # sessions per weekday at full health
_TICKET_MEDIAN = {"basic": 0.025, "pro": 0.04, "enterprise": 0.065}  # tickets per weekday at full health

CSMS: tuple[str, ...] = ("alice", "bob", "carol", "dave", "erin", "frank")
FEATURES: tuple[str, ...] = ("reports", "dashboards", "integrations", "export", "automation", "api")
PAGES: tuple[str, ...] = ("/home", "/projects", "/reports", "/settings", "/team", "/billing", "/docs")
_PAGE_CUM_HEALTHY = (0.30, 0.55, 0.72, 0.80, 0.88, 0.91, 1.0)
_PAGE_CUM_STRESSED = (0.22, 0.40, 0.52, 0.62, 0.70, 0.88, 1.0)  # billing/settings pages rise before churn

SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
_SEV_W_HEALTHY = (0.45, 0.36, 0.15, 0.04)
_SEV_W_STRESSED = (0.12, 0.30, 0.36, 0.22)
SLA_HOURS = (72, 24, 8, 4)  # by severity index: time to resolution promised at opening
_RES_MEDIAN_H = (30.0, 12.0, 4.5, 2.2)  # healthy median hours to resolve, by severity
_FIRST_REPLY_H = (5.0, 2.5, 0.8, 0.25)
_ESCALATE_P = (0.02, 0.05, 0.15, 0.35)
CATEGORIES: tuple[str, ...] = ("bug", "billing", "how-to", "outage", "access")
_CAT_CUM_BY_SEV = (
    (0.25, 0.45, 0.85, 0.86, 1.0),  # low: mostly how-to
    (0.45, 0.62, 0.85, 0.88, 1.0),
    (0.60, 0.70, 0.74, 0.90, 1.0),
    (0.45, 0.48, 0.48, 0.95, 1.0),  # critical: bugs and outages
)

# Local-time activity shape: business hours on weekdays, a flat low curve at weekends.
_WEEKDAY_HOURS = (0.15, 0.08, 0.05, 0.05, 0.05, 0.1, 0.3, 0.9, 2.2, 4.0, 5.0, 4.8,
                  3.4, 4.4, 4.9, 4.7, 4.0, 2.8, 1.5, 1.1, 0.9, 0.7, 0.5, 0.3)
_WEEKEND_HOURS = (0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.4, 0.8, 1.2, 1.5, 1.6,
                  1.5, 1.5, 1.4, 1.3, 1.2, 1.1, 1.1, 1.1, 1.0, 0.9, 0.7, 0.5)
_BUSINESS_HOURS = tuple(1.0 if 9 <= h < 17 else (0.3 if 8 <= h < 19 else 0.0) for h in range(24))
_WEEKEND_FACTOR = 0.22

# (UTC offset hours, weight). Positive offsets are ahead of UTC: their local midnight falls *before* the UTC
# midnight, which is what bounds the streaming watermark (see _MAX_AHEAD_H).
_UTC_OFFSETS = ((-8, 0.12), (-7, 0.05), (-6, 0.10), (-5, 0.18), (-3, 0.04), (0, 0.12),
                (1, 0.15), (2, 0.06), (5, 0.03), (8, 0.08), (9, 0.07))
_MAX_AHEAD_H = max(o for o, _ in _UTC_OFFSETS)

_NPS_COMMENTS = (
    ("Thinking about alternatives.", "Too many bugs lately.", "Support takes forever.",
     "Too expensive for what we use.", "We barely use it any more.", "Nobody on the team likes it."),
    ("It's fine.", "Does the job.", "Reporting could be better.", "OK but pricey."),
    ("Love it!", "Great support team.", "Dashboards save us hours.", "Couldn't work without it."),
)
_CHURN_REASONS_DECLINE = ("product_gaps", "support", "price", "competitor")
_CHURN_REASONS_QUIET = ("no_usage", "no_usage", "budget")
_CHURN_REASONS_ABRUPT = ("budget", "acquired", "competitor", "business_closed")


_WEEKDAY_CUM = _cum(_WEEKDAY_HOURS)
_WEEKEND_CUM = _cum(_WEEKEND_HOURS)
_BUSINESS_CUM = _cum(_BUSINESS_HOURS)
_OFFSET_CUM = _cum(w for _, w in _UTC_OFFSETS)


def _risk(plan: str, term: str, tier: str) -> float:
    """Relative churn propensity: small monthly accounts leave more often than big annual VIP ones."""
    r = {"basic": 1.25, "pro": 0.95, "enterprise": 0.6}[plan]
    r *= 1.25 if term == "monthly" else 0.75
    return r * (0.7 if tier == "vip" else 1.0)


def _mean_risk(annual_share: float | None = None) -> float:
    """Normaliser so that the population churn share stays close to ``churn_rate`` despite the risk mix."""
    total = 0.0
    lo = 0.0
    for plan, hi in zip(PLANS, _PLAN_CUM):
        pp = hi - lo
        lo = hi
        monthly = _MONTHLY_P[plan] if annual_share is None else 1.0 - annual_share
        for term, pt in (("monthly", monthly), ("annual", 1 - monthly)):
            for tier, pv in (("vip", _VIP_P[plan]), ("standard", 1 - _VIP_P[plan])):
                total += pp * pt * pv * _risk(plan, term, tier)
    return total


_MEAN_RISK = _mean_risk()


_SEV_CACHE: dict[int, tuple[float, ...]] = {}


def _sev_weights(ss: float) -> tuple[float, ...]:
    key = int(ss * 20)
    w = _SEV_CACHE.get(key)
    if w is None:
        x = key / 20.0
        w = _cum(a + (b - a) * x for a, b in zip(_SEV_W_HEALTHY, _SEV_W_STRESSED))
        _SEV_CACHE[key] = w
    return w
