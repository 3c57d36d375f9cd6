"""Synthetic customer population and event stream for churnwatch.

The simulator exists so that every part of the system can be exercised without real customer data: data
scientists train on its history, the demo streams it live, and tests lean on it. That only works if the data
behaves like the real thing in the ways that matter for churn prediction:

* churners *visibly deteriorate* before they leave (usage decays, tickets become more frequent, more severe
  and slower to resolve, survey scores fall, failed help views rise), usually 20-60 days ahead;
* the signal is blurred by noise that looks like it: healthy customers have bad weeks, long rough patches
  they recover from, vacations, grumpy-but-loyal survey habits; and some churners leave with little warning;
* the structure real pipelines have to cope with is present: time zones, business hours, weekends, multi-day
  ticket lifecycles, contracts and renewals, profile upserts, and (optionally) malformed input.

By default the product speaks a fixed vocabulary (login, feature_use, page_view, help_view, purchase). The
opt-in *foreign-vocabulary mode* (``SimConfig.vocabulary`` = 8..25) makes it a product of its own instead:
that many product-specific event types with a long-tailed volume, multi-user accounts (``user_id``), an
optional numeric ``value``, subscriptions that end on renewal days, and a churn story told by the *mix* of
types (value types fade, friction types grow) more than by the volume. See ``docs/simulator.md``.

Design constraints, and why:

* **Deterministic and order-independent.** Every customer owns two random streams derived from
  ``(seed, customer index)``: a *plan* stream that fixes who the customer is and when (if ever) they churn, and
  an *event* stream for the noisy day-to-day behaviour. Customer ``i`` is therefore identical whatever the
  population size, and :func:`ground_truth` can answer from the plan stream alone without generating events.
* **Streaming.** Customers are advanced one (local) day at a time; a small buffer is sorted and flushed up to a
  watermark, so memory is bounded by about a day of events plus open tickets, not by the window.
* **Fast.** Random numbers are drawn from numpy in blocks and consumed as Python floats (per-call numpy
  overhead would dominate otherwise); timestamps are formatted with a per-day prefix cache.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import gzip
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import numpy as np
import orjson

__all__ = [
    "SOURCES",
    "SimConfig",
    "SimRecord",
    "encode_value",
    "ground_truth",
    "iso_ms",
    "product_vocabulary",
    "ProductEventType",
    "resolve_start_ms",
    "simulate",
    "to_log_line",
    "write_jsonl",
]

# --------------------------------------------------------------------------------------------- constants

SOURCES: tuple[str, ...] = ("customers", "interactions", "tickets", "surveys", "outcomes")

SEC_MS = 1_000
MIN_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
YEAR_MS = 365 * DAY_MS

SCHEMA_VERSION = 1

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

# ---- foreign-vocabulary mode (SimConfig.vocabulary > 0): a product that sends its own event types

VOCAB_MIN, VOCAB_MAX = 8, 25
#: The interaction types of the fixed story; a foreign product never sends any of them.
FIXED_TYPES: frozenset[str] = frozenset({"login", "feature_use", "page_view", "help_view", "purchase"})
_DEFAULT_USERS = 3.5
# Products a population can be: the object nouns its event names are built from, and its plan names.
_DOMAINS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("projects", ("task", "project", "board", "sprint", "milestone")),
    ("analytics", ("report", "dashboard", "query", "chart", "segment")),
    ("crm", ("deal", "contact", "pipeline", "sequence", "meeting")),
    ("docs", ("doc", "space", "folder", "whiteboard", "template")),
    ("design", ("design", "prototype", "component", "frame", "library")),
    ("helpdesk", ("conversation", "macro", "article", "inbox", "workflow")),
)
_PLAN_NAMES: tuple[tuple[str, str, str], ...] = (
    ("basic", "pro", "enterprise"), ("starter", "team", "business"), ("starter", "growth", "scale"),
)
# (name template, role, numeric ``value`` field). ``{o}`` is one of the domain's object nouns. Roles:
# "value" -- signs of getting value (creating, collaborating, exporting, paying); "friction" -- signs of
# struggling or leaving (errors, failed syncs, cancellation and downgrade pages); "neutral" -- navigation.
_VOCAB_TEMPLATES: tuple[tuple[str, str, str | None], ...] = (
    ("{o}_created", "value", None), ("{o}_shared", "value", None), ("{o}_exported", "value", "count"),
    ("export_report", "value", "count"), ("invite_sent", "value", None), ("comment", "value", None),
    ("comment_added", "value", None), ("integration_connected", "value", None),
    ("automation_created", "value", None), ("{o}_published", "value", None), ("seat_added", "value", None),
    ("addon_purchased", "value", "amount"), ("credits_purchased", "value", "amount"),
    ("api_key_created", "value", None), ("{o}_duplicated", "value", None), ("mention_sent", "value", None),
    ("template_used", "value", None), ("report_scheduled", "value", None), ("{o}_completed", "value", None),
    ("post_created", "value", None),
    ("{o}_view", "neutral", None), ("{o}_opened", "neutral", None), ("{o}_updated", "neutral", None),
    ("dashboard_view", "neutral", None), ("search", "neutral", None), ("notification_opened", "neutral", None),
    ("settings_view", "neutral", None), ("list_filtered", "neutral", None), ("app_opened", "neutral", None),
    ("file_uploaded", "neutral", "count"), ("profile_updated", "neutral", None), ("{o}_moved", "neutral", None),
    ("tab_switched", "neutral", None), ("{o}_list_view", "neutral", None), ("session_start", "neutral", None),
    ("error_shown", "friction", None), ("export_failed", "friction", None), ("sync_failed", "friction", None),
    ("payment_failed", "friction", "amount"), ("cancellation_page_view", "friction", None),
    ("downgrade_clicked", "friction", None), ("seat_removed", "friction", None),
    ("integration_disconnected", "friction", None), ("permission_denied", "friction", None),
    ("search_no_results", "friction", None), ("page_timeout", "friction", None), ("{o}_deleted", "friction", None),
    ("billing_page_view", "friction", None), ("undo_clicked", "friction", None), ("import_failed", "friction", None),
    ("rage_click", "friction", None), ("{o}_archived", "friction", None),
)
#: How strongly a customer's hidden health moves the mix: a type's rate is scaled by
#: ``exp(-_MIX_GAIN * weight * stress)`` (before renormalising), so at a typical late-decline stress of 0.6
#: a value type of weight 1 falls to ~20% of its rate and a friction type of weight -1 rises ~5x, while
#: the day's total volume falls far less.
_MIX_GAIN = 2.6
_FX_SESSION_RATE = 0.11  # sessions per user per weekday at full health, times the account's activity level
_FX_TICKET_FACTOR = 0.6  # tickets and surveys are part of the contract but a smaller part of the signal
_FX_NPS_P = 0.45
_FX_SNAP = 0.9  # share of churners (with a renewal inside the window) who leave on a renewal day
_FX_ANNUAL_DEFER = 0.75  # share of annual churners without a renewal in the window who wait for the next one


def _cum(weights: Iterable[float]) -> tuple[float, ...]:
    out: list[float] = []
    acc = 0.0
    for w in weights:
        acc += w
        out.append(acc)
    return tuple(x / acc for x in out)


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

# ------------------------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class SimRecord:
    """One simulated record, ready to be produced to ``churn.<source>`` keyed by ``key``.

    ``value`` is bytes only for deliberately malformed records, so consumers can tell at a glance which
    records are meant to end in the dead-letter topic.
    """

    source: str
    key: str
    ts_ms: int
    value: dict | bytes


@dataclass(frozen=True)
class SimConfig:
    """Knobs of a simulation run; two runs with equal configs yield identical records.

    ``start_ms=None`` anchors the window so that it ends at today's UTC midnight, which makes the live demo
    look current; pass an explicit value whenever reproducibility across days matters.
    """

    customers: int = 1000
    days: int = 180
    start_ms: int | None = None
    seed: int = 7
    churn_rate: float = 0.25
    bad_rate: float = 0.0
    id_prefix: str = "c"
    #: 0: the fixed login/feature_use/page_view/help_view/purchase story. 8..25: *foreign-vocabulary mode*,
    #: a product with that many event types of its own (see :func:`product_vocabulary`).
    vocabulary: int = 0
    #: Share of annual contracts; ``None`` keeps the per-plan mix (about 45% annual overall).
    annual_share: float | None = None
    #: Mean users per account (foreign-vocabulary mode only); 1.0 makes every account single-user.
    users_per_account: float = _DEFAULT_USERS

    def __post_init__(self) -> None:
        if self.customers < 0:
            raise ValueError("customers must be >= 0")
        if self.days <= 0:
            raise ValueError("days must be > 0")
        if not 0.0 <= self.churn_rate <= 1.0:
            raise ValueError("churn_rate must be within [0, 1]")
        if not 0.0 <= self.bad_rate < 1.0:
            raise ValueError("bad_rate must be within [0, 1)")
        if self.seed < 0:
            raise ValueError("seed must be >= 0")
        v = self.vocabulary
        if isinstance(v, bool) or not isinstance(v, int) or not (v == 0 or VOCAB_MIN <= v <= VOCAB_MAX):
            raise ValueError(f"vocabulary must be 0 (the fixed vocabulary) or an int within "
                             f"[{VOCAB_MIN}, {VOCAB_MAX}], got {v!r}")
        a = self.annual_share
        if a is not None and (isinstance(a, bool) or not isinstance(a, (int, float)) or not 0.0 <= a <= 1.0):
            raise ValueError(f"annual_share must be None or within [0, 1], got {a!r}")
        u = self.users_per_account
        if isinstance(u, bool) or not isinstance(u, (int, float)) or not 1.0 <= u <= 50.0:
            raise ValueError(f"users_per_account must be within [1, 50], got {u!r}")
        if v == 0 and u != _DEFAULT_USERS:
            raise ValueError("users_per_account needs the foreign-vocabulary mode (vocabulary > 0): "
                             "the fixed vocabulary has no users")


@dataclass(frozen=True)
class ProductEventType:
    """One event type of a foreign product (``SimConfig.vocabulary > 0``): the hidden truth behind its counts.

    ``weight`` in [-1, 1] is the type's latent value: positive types (``role == "value"``) become rarer as a
    customer's health falls, negative ones (``"friction"``) more frequent, ``"neutral"`` ones barely move.
    ``share`` is the type's share of a healthy customer's events (the shares sum to 1 and form a long tail).
    ``value_field`` says what the optional numeric ``value`` of its events is (``"count"``, ``"amount"``)
    or None if its events carry none.
    """

    name: str
    role: str
    weight: float
    share: float
    value_field: str | None


def resolve_start_ms(cfg: SimConfig) -> int:
    """Window start in epoch ms: explicit, or ``days`` days before today's UTC midnight.

    Both :func:`simulate` and :func:`ground_truth` go through here, so they agree as long as they are not
    called on different UTC dates with ``start_ms=None``.
    """
    if cfg.start_ms is not None:
        return int(cfg.start_ms)
    now_ms = int(_dt.datetime.now(_dt.timezone.utc).timestamp() * 1000)
    return (now_ms // DAY_MS) * DAY_MS - cfg.days * DAY_MS


# ----------------------------------------------------------------------------------------------- helpers

_EPOCH = _dt.datetime(1970, 1, 1)
_DATE_PREFIX: dict[int, str] = {}
# Lookup tables for the time of day: "HH:MM:" per minute of the day and "SS.mmmZ" per millisecond of the
# minute (~4 MB, built once at import in ~15 ms). Formatting is the single largest per-event cost otherwise.
_HHMM: tuple[str, ...] = tuple(f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440))
_SSMS: tuple[str, ...] = tuple(f"{x // 1000:02d}.{x % 1000:03d}Z" for x in range(60_000))


def iso_ms(ts_ms: int) -> str:
    """ISO-8601 UTC with milliseconds and ``Z`` (e.g. ``2026-03-01T14:03:22.120Z``), table-driven for speed."""
    day, r = divmod(ts_ms, DAY_MS)
    prefix = _DATE_PREFIX.get(day)
    if prefix is None:
        prefix = (_EPOCH + _dt.timedelta(days=day)).strftime("%Y-%m-%dT")
        _DATE_PREFIX[day] = prefix
    m, x = divmod(r, MIN_MS)
    return prefix + _HHMM[m] + _SSMS[x]


class _Draw:
    """Scalar random draws served from numpy blocks.

    A numpy scalar call costs ~0.5-1 µs, more than the rest of the per-event work; drawing 128 uniforms at a
    time and handing them out as Python floats keeps numpy's generator (and its reproducibility guarantees)
    while costing ~0.1 µs per draw.
    """

    __slots__ = ("_rng", "_buf", "_i", "_block")

    def __init__(self, rng: np.random.Generator, block: int = 128) -> None:
        self._rng = rng
        self._block = block
        self._buf: list[float] = rng.random(block).tolist()
        self._i = 0

    def u(self) -> float:
        i = self._i
        if i == self._block:
            self._buf = self._rng.random(self._block).tolist()
            i = 0
        self._i = i + 1
        return self._buf[i]

    def take(self, k: int) -> list[float]:
        """``k`` uniforms at once, for hot loops that can then iterate them at C speed."""
        i = self._i
        j = i + k
        if j <= self._block:
            self._i = j
            return self._buf[i:j]
        out = self._buf[i:]
        while len(out) < k:
            self._buf = self._rng.random(self._block).tolist()
            need = k - len(out)
            out += self._buf[:need]
            self._i = min(need, self._block)
        return out

    def between(self, a: float, b: float) -> float:
        return a + (b - a) * self.u()

    def exp(self, mean: float) -> float:
        return -mean * math.log(1.0 - self.u())

    def normal(self) -> float:
        # Box-Muller; one of the pair is discarded to keep the stream position simple to reason about.
        return math.sqrt(-2.0 * math.log(1.0 - self.u())) * math.cos(6.283185307179586 * self.u())

    def chance(self, p: float) -> bool:
        return self.u() < p

    def pick(self, cum: tuple[float, ...] | list[float]) -> int:
        return bisect.bisect_right(cum, self.u() * cum[-1])

    def poisson(self, lam: float) -> int:
        if lam <= 0.0:
            return 0
        if lam > 30.0:
            return max(0, int(round(lam + math.sqrt(lam) * self.normal())))
        u = self.u()
        p = math.exp(-lam)
        f = p
        k = 0
        while u > f and k < 200:
            k += 1
            p *= lam / k
            f += p
        return k


def _ss_rng(seed: int, key: tuple[int, ...]) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


class _Product:
    """The foreign product of a population: its event types and plan names, fixed by the seed."""

    __slots__ = ("domain", "types", "plan_names", "names", "weights", "shares", "value_fields", "value_idx")

    def __init__(self, seed: int, n: int) -> None:
        d = _Draw(_ss_rng(seed, (0xF0CAB, n)), 64)
        self.domain, objs = _DOMAINS[int(d.u() * len(_DOMAINS))]
        self.plan_names = _PLAN_NAMES[int(d.u() * len(_PLAN_NAMES))]
        pools: dict[str, list[tuple[str, str | None]]] = {"value": [], "neutral": [], "friction": []}
        seen: set[str] = set()
        for tmpl, role, vf in _VOCAB_TEMPLATES:
            if "{o}" in tmpl:  # two of the product's own nouns per template
                a = int(d.u() * len(objs))
                b = (a + 1 + int(d.u() * (len(objs) - 1))) % len(objs)
                names = [tmpl.format(o=objs[a]), tmpl.format(o=objs[b])]
            else:
                names = [tmpl]
            for name in names:
                if name not in seen and name not in FIXED_TYPES:
                    seen.add(name)
                    pools[role].append((name, vf))
        n_fric = max(2, round(0.28 * n))
        n_val = max(2, round(0.36 * n))
        counts = {"value": n_val, "friction": n_fric, "neutral": n - n_val - n_fric}
        picked: list[tuple[str, str, str | None, float]] = []
        for role in ("value", "neutral", "friction"):
            pool = pools[role]
            for j in range(counts[role]):  # draw without replacement
                if role == "value" and j < 2:  # every product has a counted export and a payment type
                    want = "count" if j == 0 else "amount"
                    cand = [k for k, (_, vf) in enumerate(pool) if vf == want]
                    name, vf = pool.pop(cand[int(d.u() * len(cand))])
                else:
                    name, vf = pool.pop(int(d.u() * len(pool)))
                # Navigation dominates the volume; value types sit in the middle, friction in the tail.
                rank_key = d.u() + {"neutral": 0.0, "value": 0.45, "friction": 0.8}[role]
                picked.append((name, role, vf, rank_key))
        picked.sort(key=lambda x: x[3])
        raw: list[float] = []
        weights: list[float] = []
        for r, (name, role, vf, _) in enumerate(picked):
            x = (r + 1.0) ** -1.15 * math.exp(0.3 * d.normal())
            raw.append(x * 0.12 if vf == "amount" else x)  # payments are rare whatever their rank
            if role == "value":
                weights.append(round(d.between(0.4, 1.0), 3))
            elif role == "friction":
                weights.append(round(-d.between(0.5, 1.0), 3))
            else:
                weights.append(round(d.between(-0.15, 0.15), 3))
        total = sum(raw)
        types = [ProductEventType(name, role, w, x / total, vf)
                 for (name, role, vf, _), w, x in zip(picked, weights, raw)]
        types.sort(key=lambda t: -t.share)
        self.types = tuple(types)
        self.names = tuple(t.name for t in self.types)
        self.weights = tuple(t.weight for t in self.types)
        self.shares = tuple(t.share for t in self.types)
        self.value_fields = tuple(t.value_field for t in self.types)
        self.value_idx = frozenset(i for i, t in enumerate(self.types) if t.value_field is not None)


_PRODUCTS: dict[tuple[int, int], _Product] = {}


def _product(cfg: SimConfig) -> _Product | None:
    if cfg.vocabulary == 0:
        return None
    key = (cfg.seed, cfg.vocabulary)
    prod = _PRODUCTS.get(key)
    if prod is None:
        prod = _PRODUCTS[key] = _Product(*key)
    return prod


def product_vocabulary(cfg: SimConfig) -> tuple[ProductEventType, ...]:
    """The foreign product's event types in ``cfg``'s mode, most frequent first; ``()`` in the fixed mode.

    Deterministic from ``(seed, vocabulary)``: every population of that seed and size is the same product.
    Use it to analyse a run (which types are value, which friction); a model under test must not see it.
    """
    prod = _product(cfg)
    return () if prod is None else prod.types


def _clip_round(x: float, lo: int, hi: int) -> int:
    v = int(math.floor(x + 0.5))
    return lo if v < lo else hi if v > hi else v


# ----------------------------------------------------------------------------------------- customer plan



def _envelope(x: float) -> float:
    """Quick onset, plateau, slower recovery over an episode (``x`` in [0, 1)): how a bad week or an
    incident usually feels."""
    return x / 0.15 if x < 0.15 else (1.0 if x < 0.6 else (1.0 - x) / 0.4)

class _Plan:
    """Who a customer is and how their health evolves; drawn from the plan stream only.

    Health is expressed as *stress* on three channels in [0, 1] -- usage, support, sentiment -- so that
    churners (and healthy customers in a bad week) can deteriorate on some channels more than on others.
    """

    __slots__ = (
        "index", "cid", "tier", "plan", "term", "period_ms", "mrr", "signup_ms", "csm", "offset_h",
        "sessions", "ticket_rate", "sat", "feat_cum", "api_user", "churn_ms", "latent_churn_ms",
        "archetype", "onset_ms", "decline_end_ms", "depth", "shape", "w_use", "w_sup", "w_sent",
        "episodes", "fixed", "lo_ms", "hi_ms", "reason", "ep_kind", "names", "foreign",
    )

    def decline_progress(self, t: int) -> float | None:
        """How far the churn decline has gone at ``t``: None before its onset, then 0..1."""
        onset = self.onset_ms
        if onset is None or t < onset:
            return None
        span = self.decline_end_ms - onset
        return 1.0 if span <= 0 or t >= self.decline_end_ms else (t - onset) / span

    def stress(self, t: int) -> tuple[float, float, float]:
        """(usage, support, sentiment) stress at ``t``: the churn decline overlaid with any bad episode."""
        su = ss = se = 0.0
        x = self.decline_progress(t)
        if x is not None:
            d = self.depth * x ** self.shape
            if t >= self.decline_end_ms and self.archetype == "quiet":
                d = 1.0
            su, ss, se = d * self.w_use, d * self.w_sup, d * self.w_sent
        for a, b, inten, wu, ws, we in self.episodes:
            if a <= t < b:
                f = inten * _envelope((t - a) / (b - a))
                su = max(su, f * wu)
                ss = max(ss, f * ws)
                se = max(se, f * we)
        return (min(su, 1.0), min(ss, 1.0), min(se, 1.0))

    def fstress(self, t: int) -> tuple[float, float, float]:
        """Foreign-vocabulary mode: (value loss, friction, volume loss) in [0, 1] at ``t``.

        A churn decline shows mostly in the *mix* (value types fade, friction types grow) and far less in
        the volume; only quiet churners fade to silence. Vacations are the opposite: volume, not mix.
        """
        mv = mf = vol = 0.0
        x = self.decline_progress(t)
        if x is not None:
            d = self.depth * x ** self.shape
            dm = self.depth * x ** (0.6 * self.shape)  # habits change before the volume does
            if t >= self.decline_end_ms and self.archetype == "quiet":
                d = dm = 1.0
            mv = dm * (0.55 + 0.45 * self.w_use)
            mf = dm * (0.55 + 0.45 * self.w_sup)
            vol = d if self.archetype == "quiet" else 0.2 * d * self.w_use
        for (a, b, inten, wu, ws, _we), kind in zip(self.episodes, self.ep_kind):
            if a <= t < b:
                f = inten * _envelope((t - a) / (b - a))
                if kind == 0:  # vacation: fewer events, same habits
                    vol = max(vol, f * wu)
                elif kind == 1:  # incident: errors and failures, a little less value
                    mf = max(mf, 0.8 * f * ws)
                    mv = max(mv, 0.3 * f)
                else:  # rough patch / long at-risk stretch: looks like a decline, then recovers
                    mv = max(mv, f * wu)
                    mf = max(mf, f * ws)
                    vol = max(vol, 0.3 * f * wu)
        return (min(mv, 1.0), min(mf, 1.0), min(vol, 1.0))


def _make_plan(cfg: SimConfig, i: int, start: int, end: int) -> _Plan:
    """Draw customer ``i`` from its own plan stream, so it is the same customer in any population size.

    Everything that decides the label (churn time) lives here and nowhere else; the event stream only adds
    behavioural noise on top, which is what keeps :func:`ground_truth` cheap and always in agreement.
    """
    d = _Draw(_ss_rng(cfg.seed, (i, 0)), 64)
    p = _Plan()
    p.index = i
    p.cid = f"{cfg.id_prefix}{i:06d}"
    plan = PLANS[d.pick(_PLAN_CUM)]
    p.plan = plan
    p.tier = "vip" if d.chance(_VIP_P[plan]) else "standard"
    prod = _product(cfg)
    p.foreign = prod is not None
    p.names = None if prod is None else dict(zip(PLANS, prod.plan_names))
    monthly_p = _MONTHLY_P[plan] if cfg.annual_share is None else 1.0 - cfg.annual_share
    p.term = "monthly" if d.chance(monthly_p) else "annual"
    p.period_ms = 30 * DAY_MS if p.term == "monthly" else YEAR_MS
    mrr = _MRR_MEDIAN[plan] * math.exp(_MRR_SIGMA[plan] * d.normal())
    if p.tier == "vip":
        mrr *= d.between(1.5, 2.5)
    if p.term == "annual":
        mrr *= 0.9
    p.mrr = round(mrr, 2)
    p.csm = CSMS[int(d.u() * len(CSMS))]
    p.offset_h = _UTC_OFFSETS[d.pick(_OFFSET_CUM)][0]

    window = end - start
    new_share = min(0.25, 0.12 * cfg.days / 180.0)
    if d.chance(new_share):
        p.signup_ms = start + int(d.u() * 0.85 * window)
    else:
        tenure = int((7 + (4 * 365 - 7) * d.u() ** 1.5) * DAY_MS)
        p.signup_ms = start - tenure - int(d.u() * DAY_MS)
    p.lo_ms = max(start, p.signup_ms)

    vip_boost = 1.2 if p.tier == "vip" else 1.0
    p.sessions = _SESSIONS_MEDIAN[plan] * vip_boost * math.exp(0.5 * d.normal())
    p.ticket_rate = _TICKET_MEDIAN[plan] * math.exp(0.5 * d.normal())
    if p.foreign:
        p.ticket_rate *= _FX_TICKET_FACTOR
    p.sat = d.normal()  # some customers are simply grumpier raters, churn or not
    raw = [-math.log(1.0 - d.u()) for _ in FEATURES]
    p.api_user = d.chance(0.3)
    if not p.api_user:
        raw[FEATURES.index("api")] *= 0.05
    p.feat_cum = _cum(raw)

    # ---- churn: decided up front so ground_truth() needs nothing else
    p.churn_ms = None
    p.latent_churn_ms = None
    p.archetype = "none"
    p.onset_ms = None
    p.decline_end_ms = 0
    p.depth = p.shape = p.w_use = p.w_sup = p.w_sent = 0.0
    p.reason = ""
    renewals = _renewals(p.signup_ms, p.period_ms, p.lo_ms, end + 2 * p.period_ms)

    mean_risk = _MEAN_RISK if cfg.annual_share is None else _mean_risk(cfg.annual_share)
    risk = _risk(plan, p.term, p.tier)
    if p.foreign and p.term == "annual" and cfg.days < 365:
        # Most annual churners without a renewal inside the window leave after it (see below): select
        # more of them so the in-window churn share still matches churn_rate.
        risk /= 1.0 - _FX_ANNUAL_DEFER * (1.0 - cfg.days / 365.0)
    prob = min(0.95, cfg.churn_rate * risk / mean_risk)
    earliest = max(start + 3 * DAY_MS, p.signup_ms + 14 * DAY_MS)
    u_churn = d.u()
    u_when = d.u()
    u_snap = d.u()
    u_jit = d.u()
    deferred = False
    if p.foreign and u_churn < prob and earliest < end - HOUR_MS:
        # Subscriptions end at a renewal: a cancellation takes effect at the end of the paid period, so
        # the churned event lands on the renewal day (within the 24 h before the renewal instant).
        t = earliest + int(u_when * (end - earliest))
        inside = [r for r in renewals if earliest + DAY_MS <= r < end]
        if inside and u_snap < _FX_SNAP:
            nxt = [r for r in inside if r >= t]
            r = (nxt[0] if nxt else inside[-1]) if p.term == "monthly" else min(inside, key=lambda r: abs(r - t))
            t = r - MIN_MS - int(u_jit * (DAY_MS - 2 * MIN_MS))
        elif not inside and p.term == "annual" and u_snap < _FX_ANNUAL_DEFER:
            deferred = True  # leaves at its next renewal, after the window
            after = [r for r in renewals if r >= end]
            if after and after[0] - end < 60 * DAY_MS:
                p.latent_churn_ms = after[0] - MIN_MS - int(u_jit * (DAY_MS - 2 * MIN_MS))
        if not deferred:
            p.churn_ms = max(earliest, t)
    elif u_churn < prob and earliest < end - HOUR_MS:
        t = earliest + int(u_when * (end - earliest))
        inside = [r for r in renewals if earliest <= r < end]
        if p.term == "annual" and inside and u_snap < 0.8:
            t = inside[0] if len(inside) == 1 else min(inside, key=lambda r: abs(r - t))
            t -= MIN_MS + int(u_jit * 3 * DAY_MS)
        elif p.term == "monthly" and u_snap < 0.55:
            nxt = [r for r in inside if r >= t]
            if nxt:
                t = nxt[0] - MIN_MS - int(u_jit * 3 * DAY_MS)
        p.churn_ms = max(earliest, t)
    else:
        # Customers who will leave shortly after the window already deteriorate inside it: their snapshots
        # near the end are right-censored, exactly like in production.
        q = min(0.5, (60.0 * cfg.churn_rate / cfg.days) / max(1e-9, 1.0 - cfg.churn_rate))
        if u_churn >= prob and d.chance(q):
            p.latent_churn_ms = end + int(d.u() * 60 * DAY_MS)
            if p.foreign:  # they too will leave at a renewal
                after = [r for r in renewals if r >= max(end + DAY_MS, p.latent_churn_ms - 5 * DAY_MS)]
                if after and after[0] - end < 75 * DAY_MS:
                    p.latent_churn_ms = after[0] - MIN_MS
    target = p.churn_ms if p.churn_ms is not None else p.latent_churn_ms
    if target is not None:
        _plan_decline(p, d, target)

    # ---- episodes: bad weeks and rough patches that do *not* end in churn
    p.episodes = []
    p.ep_kind = []  # 0 vacation, 1 incident, 2 rough patch or long at-risk stretch (foreign mode reads it)
    n_ep = d.poisson(0.9 * cfg.days / 180.0)
    for _ in range(n_ep):
        kind = d.u()
        a = start - 7 * DAY_MS + int(d.u() * (window + 7 * DAY_MS))
        if kind < 0.35:  # vacation / seasonal dip: usage only
            length, inten, w = d.between(5, 14), d.between(0.5, 0.9), (1.0, 0.0, 0.05)
            p.ep_kind.append(0)
        elif kind < 0.7:  # incident: a bad ticket or two, an unhappy survey
            length, inten, w = d.between(3, 10), d.between(0.45, 0.85), (0.15, 1.0, 0.8)
            p.ep_kind.append(1)
        else:  # rough patch on every channel
            length, inten = d.between(7, 21), d.between(0.3, 0.7)
            w = (d.between(0.3, 1.0), d.between(0.3, 1.0), d.between(0.3, 1.0))
            p.ep_kind.append(2)
        p.episodes.append((a, a + int(length * DAY_MS), inten, *w))
    if d.chance(0.13 * min(1.0, cfg.days / 180.0)):
        # A long at-risk stretch the customer recovers from: the hardest negatives for a model.
        length = d.between(25, 50)
        a = start - 10 * DAY_MS + int(d.u() * (window + 10 * DAY_MS))
        w = (d.between(0.4, 1.0), d.between(0.4, 1.0), d.between(0.4, 1.0))
        p.episodes.append((a, a + int(length * DAY_MS), d.between(0.4, 0.8), *w))
        p.ep_kind.append(2)

    p.hi_ms = end if p.churn_ms is None else p.churn_ms
    p.fixed = _fixed_events(p, d, renewals, start, end)
    return p


def _renewals(signup: int, period: int, after: int, until: int) -> list[int]:
    """Contract anniversaries strictly after ``after`` and before ``until`` (30-day months, 365-day years)."""
    k = max(1, (after - signup) // period + 1)
    out = []
    r = signup + k * period
    while r <= after:
        r += period
    while r < until:
        out.append(r)
        r += period
    return out


def _plan_decline(p: _Plan, d: _Draw, target: int) -> None:
    """Pick how this customer will leave: a visible decline, a fade into silence, or with little warning."""
    u = d.u()
    if u < 0.72:
        p.archetype = "decline"
        lead = d.between(20, 60) if d.u() < 0.85 else d.between(60, 90)
        p.depth = d.between(0.55, 0.95)
        p.shape = d.between(0.7, 1.6)
        w = [d.between(0.3, 1.0) for _ in range(3)]
        top = max(w)
        p.w_use, p.w_sup, p.w_sent = (x / top for x in w)
        p.decline_end_ms = target
        p.reason = _CHURN_REASONS_DECLINE[int(d.u() * len(_CHURN_REASONS_DECLINE))]
    elif u < 0.88:
        p.archetype = "quiet"  # silence is a signal: usage fades to nothing weeks before leaving
        lead = d.between(35, 75)
        p.depth, p.shape = 1.0, d.between(0.6, 1.0)
        p.w_use, p.w_sup, p.w_sent = 1.0, d.between(0.0, 0.3), d.between(0.2, 0.6)
        p.decline_end_ms = target - int(d.between(14, 40) * DAY_MS)
        p.reason = _CHURN_REASONS_QUIET[int(d.u() * len(_CHURN_REASONS_QUIET))]
    else:
        p.archetype = "abrupt"  # budget cut, acquisition: little warning
        lead = d.between(0.5, 10)
        p.depth, p.shape = d.between(0.15, 0.5), 1.0
        p.w_use, p.w_sup, p.w_sent = d.between(0.3, 1.0), d.between(0.2, 1.0), d.between(0.3, 1.0)
        p.decline_end_ms = target
        p.reason = _CHURN_REASONS_ABRUPT[int(d.u() * len(_CHURN_REASONS_ABRUPT))]
    p.onset_ms = max(p.signup_ms, target - int(lead * DAY_MS))
    if p.decline_end_ms <= p.onset_ms:
        p.decline_end_ms = p.onset_ms + DAY_MS


def _profile(p: _Plan, plan: str, mrr: float, renewal: int) -> dict[str, Any]:
    if p.names is not None:
        plan = p.names[plan]
    return {"tier": p.tier, "plan": plan, "mrr": mrr, "signup_ts": iso_ms(p.signup_ms),
            "renewal_ts": iso_ms(renewal), "csm": p.csm, "term": p.term}


def _fixed_events(p: _Plan, d: _Draw, renewals: list[int], start: int, end: int) -> list[tuple]:
    """Profile upserts, renewals, plan changes and the churn itself: known in advance, emitted on their day."""
    hi = p.hi_ms
    first = p.signup_ms if p.signup_ms >= start else start + int(d.u() * 20 * SEC_MS)
    out: list[tuple] = []
    plan, mrr = p.plan, p.mrr
    next_r = [r for r in renewals if r > first]
    if first < hi:
        out.append((first, "customers", "profile", _profile(p, plan, mrr, next_r[0])))
    for j, r in enumerate(next_r[:-1]):
        if r >= end or r >= hi:
            break
        su, ss, se = p.stress(r)
        s = (su + ss + se) / 3.0
        u = d.u()
        idx = PLANS.index(plan)
        if s > 0.3 and u < 0.3 and idx > 0:  # downgrade on the way out
            plan, mrr = PLANS[idx - 1], round(mrr * d.between(0.3, 0.6), 2)
        elif s < 0.1 and u < 0.05 and idx < 2:
            plan, mrr = PLANS[idx + 1], round(mrr * d.between(2.0, 4.0), 2)
        elif p.term == "annual":
            mrr = round(mrr * d.between(1.0, 1.07), 2)
        nxt = next_r[j + 1]
        out.append((r, "outcomes", "renewed",
                    {"renewal_ts": iso_ms(r), "next_renewal_ts": iso_ms(nxt),
                     "plan": plan if p.names is None else p.names[plan], "mrr": mrr, "term": p.term}))
        t_prof = r + SEC_MS + int(d.u() * 59 * SEC_MS)
        if t_prof < hi:
            out.append((t_prof, "customers", "profile", _profile(p, plan, mrr, nxt)))
    if p.churn_ms is not None:
        out.append((p.churn_ms, "outcomes", "churned",
                    {"reason": p.reason, "plan": plan if p.names is None else p.names[plan], "mrr": mrr,
                     "term": p.term}))
    out.sort(key=lambda e: e[0])
    return out


# ------------------------------------------------------------------------------------ day-by-day behaviour


class _Foreign:
    """Per-customer state of the foreign-vocabulary mode, drawn from the customer's third stream ``(i, 2)``.

    The account's users are kept sorted by how much decline they tolerate (the first, the account owner,
    never leaves), so the users still active at a given value loss are always a prefix.
    """

    __slots__ = ("prod", "uids", "neg_thr", "cum_w", "prefs", "h", "mix")

    def __init__(self, p: _Plan, seed: int, prod: _Product, users_per_account: float) -> None:
        d = _Draw(_ss_rng(seed, (p.index, 2)), 64)
        self.prod = prod
        size = {"basic": 0.5, "pro": 1.0, "enterprise": 2.0}[p.plan] / 0.9  # mean 1 over the plan mix
        n_users = min(200, 1 + d.poisson((users_per_account - 1.0) * size))
        users = []
        for j in range(n_users):
            w = math.exp(0.8 * d.normal()) * (2.0 if j == 0 else 1.0)
            thr = math.inf if j == 0 else d.between(0.25, 1.5) + 0.25 * math.log(w)  # occasional users go first
            users.append((thr, j, w))
        users.sort(key=lambda x: -x[0])
        self.uids = tuple(f"{p.cid}-u{j}" for _, j, _ in users)
        self.neg_thr = [-thr for thr, _, _ in users]
        self.cum_w = list(_cum_raw(w for _, _, w in users))
        # Each customer uses the product a little differently: per-type preferences around the product mix.
        self.prefs = tuple(sh * math.exp(0.3 * d.normal()) for sh in prod.shares)
        self.h = 0.0  # hidden health drift (an AR(1) around 0), shared by every user of the account
        self.mix: dict[tuple[int, int], list[float]] = {}

    def mix_cum(self, qv: int, qf: int) -> list[float]:
        """Cumulative type mix at value loss ``qv / 20`` and friction ``qf / 20`` (cached per customer)."""
        key = (qv, qf)
        cum = self.mix.get(key)
        if cum is None:
            xv, xf = qv / 20.0, qf / 20.0
            exp = math.exp
            cum = _cum_raw(pr * exp(-_MIX_GAIN * w * (xv if w > 0.0 else xf))
                           for pr, w in zip(self.prefs, self.prod.weights))
            top = cum[-1]
            cum = [c / top for c in cum]
            self.mix[key] = cum
        return cum


def _cum_raw(weights: Iterable[float]) -> list[float]:
    out: list[float] = []
    acc = 0.0
    for w in weights:
        acc += w
        out.append(acc)
    return out


class _Customer:
    """Event-stream state of one customer; advanced one local calendar day at a time."""

    __slots__ = ("p", "d", "cid", "n", "k", "z", "next_nps", "fi", "lo", "hi", "out", "onboard_ces", "fx",
                 "nps_p")

    def __init__(self, p: _Plan, seed: int, out: list[SimRecord], prod: _Product | None = None,
                 users_per_account: float = _DEFAULT_USERS) -> None:
        self.p = p
        self.d = _Draw(_ss_rng(seed, (p.index, 1)), 128)
        self.cid = p.cid
        self.n = 0
        self.k = 0
        self.z = 0.0
        self.lo = p.lo_ms
        self.hi = p.hi_ms
        self.out = out
        self.fi = 0
        self.fx = None if prod is None else _Foreign(p, seed, prod, users_per_account)
        self.nps_p = 0.7 if prod is None else _FX_NPS_P
        if p.signup_ms >= self.lo:  # signed up inside the window
            self.next_nps = p.signup_ms + int(self.d.between(30, 60) * DAY_MS)
            self.onboard_ces = p.signup_ms + int(self.d.between(5, 14) * DAY_MS)
        else:
            self.next_nps = self.lo + int(self.d.between(3, 90) * DAY_MS)
            self.onboard_ces = -1

    # -- emission

    def _ev(self, ts: int, source: str, typ: str, extra: dict[str, Any] | None) -> None:
        if ts < self.lo or ts >= self.hi:
            return
        self.n += 1
        cid = self.cid
        v = {"event_id": f"{cid}-{self.n}", "customer_id": cid, "ts": iso_ms(ts), "type": typ,
             "schema_version": SCHEMA_VERSION}
        if extra:
            v.update(extra)
        self.out.append(SimRecord(source, cid, ts, v))

    # -- one local day

    def day(self, lm: int, weekday: int) -> None:
        """Generate the customer's events for the local day starting at UTC instant ``lm``."""
        p = self.p
        d = self.d
        le = lm + DAY_MS
        fixed = p.fixed
        while self.fi < len(fixed) and fixed[self.fi][0] < le:
            ts, source, typ, extra = fixed[self.fi]
            self.fi += 1
            if typ == "churned":
                self.hi = ts + 1  # let the label itself through, nothing after it
                self._ev(ts, source, typ, extra)
                self.hi = ts
            else:
                self._ev(ts, source, typ, extra)
        if le <= self.lo or lm >= self.hi:
            return
        su, ss, se = p.stress(lm + DAY_MS // 2)
        weekend = weekday >= 5

        if self.fx is not None:
            self._fx_usage(lm, weekend)
        else:
            # Usage: sessions per day follow health, weekday and a slowly wandering mood (AR(1) in log space).
            self.z = 0.6 * self.z + 0.35 * d.normal()
            lam = p.sessions * (_WEEKEND_FACTOR if weekend else 1.0) * math.exp(self.z - 0.1)
            use = 1.0 - su
            lam *= use * use if use > 0.0 else 0.0
            since = lm - p.signup_ms
            if since < 14 * DAY_MS:
                lam *= 0.3 + 0.7 * max(0.0, since) / (14 * DAY_MS)
            n_sessions = d.poisson(lam)
            hours = _WEEKEND_CUM if weekend else _WEEKDAY_CUM
            for _ in range(n_sessions):
                t = lm + d.pick(hours) * HOUR_MS + int(d.u() * HOUR_MS)
                self._session(t, su, ss)

        # Support: ticket rate and severity climb with support stress.
        t_rate = p.ticket_rate * (1.0 + 5.0 * ss) * (0.3 if weekend else 1.0)
        for _ in range(d.poisson(t_rate)):
            sev_w = _sev_weights(ss)
            sev = d.pick(sev_w)
            cum = _BUSINESS_CUM if sev < 3 else _WEEKDAY_CUM  # outages do not wait for office hours
            t = lm + d.pick(cum) * HOUR_MS + int(d.u() * HOUR_MS)
            self._ticket(t, sev, ss, se)

        # Relationship surveys every 60-120 days; silent customers stop answering.
        if self.next_nps < le:
            self.next_nps = max(self.next_nps, lm) + int(d.between(60, 120) * DAY_MS)
            if d.chance(self.nps_p * (1.0 - 0.7 * su)):
                t = lm + d.pick(_BUSINESS_CUM) * HOUR_MS + int(d.u() * HOUR_MS)
                score = _clip_round(8.4 + 0.9 * p.sat - 7.0 * se + 1.3 * d.normal(), 0, 10)
                extra: dict[str, Any] = {"score": score, "touchpoint": "quarterly"}
                if d.chance(0.35):
                    cat = 0 if score <= 6 else (1 if score <= 8 else 2)
                    opts = _NPS_COMMENTS[cat]
                    extra["comment"] = opts[int(d.u() * len(opts))]
                self._ev(t, "surveys", "nps", extra)
        if 0 <= self.onboard_ces < le:
            self.onboard_ces = -1
            if d.chance(0.6):
                t = lm + d.pick(_BUSINESS_CUM) * HOUR_MS + int(d.u() * HOUR_MS)
                score = _clip_round(2.6 + 2.5 * se - 0.3 * p.sat + 0.9 * d.normal(), 1, 7)
                self._ev(t, "surveys", "ces", {"score": score, "touchpoint": "onboarding"})

    def _fx_usage(self, lm: int, weekend: bool) -> None:
        """Foreign-vocabulary mode: one local day of the account's users' sessions in the product's own types.

        Volume follows the active users, weekday, mood and (weakly) health; the *mix* of types follows the
        hidden health -- the plan's value loss and friction plus a drifting AR(1) term -- so a declining
        customer does different things, not only fewer.
        """
        p = self.p
        d = self.d
        fx = self.fx
        mv, mf, vol = p.fstress(lm + DAY_MS // 2)
        self.z = 0.6 * self.z + 0.35 * d.normal()
        fx.h = 0.93 * fx.h + 0.037 * d.normal()  # stationary sd ~0.1
        m = bisect.bisect_left(fx.neg_thr, -mv)  # users still active: a declining account loses them
        cum_w = fx.cum_w
        lam = (p.sessions * _FX_SESSION_RATE * cum_w[m - 1] * (_WEEKEND_FACTOR if weekend else 1.0)
               * math.exp(self.z - 0.1) * (1.0 - vol))
        since = lm - p.signup_ms
        if since < 14 * DAY_MS:
            lam *= 0.3 + 0.7 * max(0.0, since) / (14 * DAY_MS)
        n_sessions = d.poisson(lam)
        if n_sessions == 0:
            return
        h = fx.h
        qv = _clip_round((mv + h) * 20.0, -8, 24)
        qf = _clip_round((mf + h) * 20.0, -8, 24)
        cum = fx.mix_cum(qv, qf)
        last = len(cum) - 1
        prod = fx.prod
        names = prod.names
        value_idx = prod.value_idx
        uids = fx.uids
        hours = _WEEKEND_CUM if weekend else _WEEKDAY_CUM
        lo, hi = self.lo, self.hi
        cid = self.cid
        append = self.out.append
        bisect_right = bisect.bisect_right
        log = math.log
        top_w = cum_w[m - 1]
        for _ in range(n_sessions):
            t = lm + d.pick(hours) * HOUR_MS + int(d.u() * HOUR_MS)
            user = uids[bisect_right(cum_w, d.u() * top_w, 0, m - 1)]
            n_ev = 1 + d.poisson(2.5)
            if t < lo or t >= hi:
                continue
            n = self.n
            for k, (u1, u2) in enumerate(zip(d.take(n_ev), d.take(n_ev))):
                if k:
                    t += 5 * SEC_MS + int(-60_000.0 * log(1.0 - u1))
                    if t >= hi:
                        break
                i = bisect_right(cum, u2)
                if i > last:
                    i = last
                n += 1
                v = {"event_id": f"{cid}-{n}", "customer_id": cid, "ts": iso_ms(t), "type": names[i],
                     "schema_version": SCHEMA_VERSION, "user_id": user}
                if i in value_idx:
                    if prod.value_fields[i] == "count":  # rows exported, files uploaded: fewer when unhappy
                        v["value"] = max(1, int(math.exp(4.8 + 1.0 * d.normal()) * (1.0 - 0.4 * max(0.0, mv))))
                    else:
                        v["value"] = round(math.exp(3.7 + 0.9 * d.normal()), 2)
                append(SimRecord("interactions", cid, t, v))
            self.n = n

    def _session(self, t: int, su: float, ss: float) -> None:
        """A login followed by page views and feature use, then the occasional help lookup or export.

        This is the hot path (~90% of all records), so the common events are built inline rather than via
        ``_ev``; a session that starts outside the customer's live span is skipped whole.
        """
        if t < self.lo or t >= self.hi:
            return
        p = self.p
        d = self.d
        hi = self.hi
        cid = self.cid
        append = self.out.append
        feat_cum = p.feat_cum
        engaged = 1.0 - 0.6 * su
        n_actions = d.poisson(2.5 * engaged)
        nxt = iter(d.take(8 + 4 * n_actions)).__next__  # 2 + up to 4 per action + 5 after
        log = math.log
        bisect_right = bisect.bisect_right
        start = t
        n = self.n + 1
        append(SimRecord("interactions", cid, t, {
            "event_id": f"{cid}-{n}", "customer_id": cid, "ts": iso_ms(t), "type": "login",
            "schema_version": SCHEMA_VERSION, "duration_s": round(-900.0 * engaged * log(1.0 - nxt()), 1)}))
        pages = _PAGE_CUM_STRESSED if nxt() < su else _PAGE_CUM_HEALTHY
        for _ in range(n_actions):
            t += 5 * SEC_MS + int(-70_000.0 * log(1.0 - nxt()))
            if t >= hi:
                break
            n += 1
            if nxt() < 0.52:
                v = {"event_id": f"{cid}-{n}", "customer_id": cid, "ts": iso_ms(t), "type": "page_view",
                     "schema_version": SCHEMA_VERSION, "page": PAGES[bisect_right(pages, nxt())]}
            else:
                v = {"event_id": f"{cid}-{n}", "customer_id": cid, "ts": iso_ms(t), "type": "feature_use",
                     "schema_version": SCHEMA_VERSION, "feature": FEATURES[bisect_right(feat_cum, nxt())],
                     "duration_s": round(-110.0 * engaged * log(1.0 - nxt()), 1)}
            append(SimRecord("interactions", cid, t, v))
        self.n = n
        # Help: more lookups and more dead ends when the product is not working for the customer.
        if nxt() < 0.05 + 0.3 * ss:
            self._help(t, ss)
        if p.api_user and nxt() < 0.3:
            t2 = start + 1 + int(nxt() * (t - start + MIN_MS))
            self._ev(t2, "interactions", "api_call", {"feature": "api", "count": 1 + d.poisson(40.0 * engaged)})
        if nxt() < 0.06:
            self._ev(t + 3 * SEC_MS, "interactions", "report_export",
                     {"feature": "reports", "format": "csv" if d.u() < 0.7 else "pdf"})
        if nxt() < 0.004 * (1.0 - su):
            self._ev(t + 20 * SEC_MS, "interactions", "purchase",
                     {"item": "seats" if d.u() < 0.6 else "addon", "amount": round(d.between(20, 400), 2)})

    def _help(self, t: int, ss: float) -> None:
        """A help lookup; failures often repeat on the same feature within hours -- a proactive-service cue."""
        d = self.d
        feat = FEATURES[d.pick(self.p.feat_cum)]
        t += 10 * SEC_MS + int(d.exp(60.0) * SEC_MS)
        ok = d.u() < 0.88 - 0.6 * ss
        self._ev(t, "interactions", "help_view", {"feature": feat, "success": ok})
        if not ok and d.u() < 0.35 + 0.5 * ss:
            for _ in range(1 + d.poisson(0.8 * ss + 0.2)):
                t += 2 * MIN_MS + int(d.exp(3.0) * HOUR_MS)
                self._ev(t, "interactions", "help_view", {"feature": feat, "success": d.u() < 0.5 - 0.35 * ss})

    def _ticket(self, t: int, sev: int, ss: float, se: float) -> None:
        """A whole ticket lifecycle, emitted at once: later events land in the buffer ahead of time.

        A ticket that would open outside the customer's live span is dropped whole, so no lifecycle in the
        output starts anywhere but ``opened``; one cut short by churn or the window end simply stays open.
        """
        if t < self.lo or t >= self.hi:
            return
        d = self.d
        ev = self._ev
        self.k += 1
        tid = f"{self.cid}-t{self.k}"
        cat = CATEGORIES[d.pick(_CAT_CUM_BY_SEV[sev])]
        sla_due = t + SLA_HOURS[sev] * HOUR_MS
        ev(t, "tickets", "opened", {"ticket_id": tid, "severity": SEVERITIES[sev], "category": cat,
                                    "sla_due": iso_ms(sla_due), "channel": "email" if d.u() < 0.6 else "chat"})
        slow = (1.0 + 1.6 * ss) * math.exp(0.45 * d.normal())
        res = t + int(_RES_MEDIAN_H[sev] * slow * math.exp(0.5 * d.normal()) * HOUR_MS) + 10 * MIN_MS
        first = t + MIN_MS + int(d.exp(_FIRST_REPLY_H[sev] * slow) * HOUR_MS)
        if first >= res:
            first = t + (res - t) // 3
        mids: list[tuple[int, str]] = [(first, "agent_reply")]
        n_mid = d.poisson(0.6 + 1.5 * ss + 0.3 * sev)
        for j in range(n_mid):
            mids.append((first + 1 + int(d.u() * (res - first - 2)), ""))
        if d.u() < _ESCALATE_P[sev] + 0.25 * ss:
            mids.append((first + 1 + int(d.u() * (res - first - 2)), "escalated"))
        mids.sort()
        turn = 0
        for ts, typ in mids:
            if not typ:
                typ = "customer_reply" if turn % 2 == 0 else "agent_reply"
                turn += 1
            ev(ts, "tickets", typ, {"ticket_id": tid})
        ev(res, "tickets", "resolved", {"ticket_id": tid})
        breached = res > sla_due
        reopened = d.u() < 0.04 + 0.3 * ss
        if reopened:
            t2 = res + 30 * MIN_MS + int(d.exp(18.0) * HOUR_MS)
            ev(t2, "tickets", "reopened", {"ticket_id": tid})
            reply = t2 + MIN_MS + int(d.exp(_FIRST_REPLY_H[sev] * slow) * HOUR_MS)
            ev(reply, "tickets", "agent_reply", {"ticket_id": tid})
            res = reply + int(_RES_MEDIAN_H[sev] * slow * math.exp(0.5 * d.normal()) * HOUR_MS) + MIN_MS
            ev(res, "tickets", "resolved", {"ticket_id": tid})
        ev(res + int(d.between(24, 72) * HOUR_MS), "tickets", "closed", {"ticket_id": tid})
        # Post-support surveys: the moment customers tell you how the ticket felt.
        if d.u() < 0.45:
            score = _clip_round(4.4 + 0.3 * self.p.sat - 2.6 * se - 0.6 * breached - 0.6 * reopened
                                - 0.15 * sev + 0.7 * d.normal(), 1, 5)
            ev(res + 10 * MIN_MS + int(d.exp(4.0) * HOUR_MS), "surveys", "csat",
               {"score": score, "touchpoint": "support", "ticket_id": tid})
        if d.u() < 0.2:
            score = _clip_round(2.4 + 3.0 * se + 0.9 * breached + 0.5 * reopened - 0.3 * self.p.sat
                                + 0.9 * d.normal(), 1, 7)
            ev(res + 12 * MIN_MS + int(d.exp(4.0) * HOUR_MS), "surveys", "ces",
               {"score": score, "touchpoint": "support", "ticket_id": tid})


_SEV_CACHE: dict[int, tuple[float, ...]] = {}


def _sev_weights(ss: float) -> tuple[float, ...]:
    key = int(ss * 20)
    w = _SEV_CACHE.get(key)
    if w is None:
        x = key / 20.0
        w = _cum(a + (b - a) * x for a, b in zip(_SEV_W_HEALTHY, _SEV_W_STRESSED))
        _SEV_CACHE[key] = w
    return w


# ------------------------------------------------------------------------------------- malformed records

_BAD_KINDS = ("not_json", "truncated", "missing_customer_id", "wrong_type", "absurd_ts",
              "score_out_of_range", "unknown_ticket_type", "huge")
_BAD_CUM = _cum((0.18, 0.14, 0.16, 0.16, 0.16, 0.10, 0.08, 0.02))


def _malformed(near: SimRecord, d: _Draw, n: int) -> SimRecord:
    """A realistic failure shaped like ``near`` (same key, time, usually same source)."""
    kind = _BAD_KINDS[d.pick(_BAD_CUM)]
    source = near.source
    base: dict[str, Any] = dict(near.value) if isinstance(near.value, dict) else {}
    base["event_id"] = f"{near.key}-bad{n}"
    if kind == "not_json":
        raw = b"\x00garbage" + bytes(int(d.u() * 200) + 33 for _ in range(1 + int(d.u() * 20)))
        return SimRecord(source, near.key, near.ts_ms, raw)
    if kind == "truncated":
        full = orjson.dumps(base)
        return SimRecord(source, near.key, near.ts_ms, full[: max(1, int(len(full) * d.between(0.2, 0.9)))])
    if kind == "missing_customer_id":
        base.pop("customer_id", None)
    elif kind == "wrong_type":
        if source == "surveys" or d.u() < 0.5:
            source = "surveys"
            base.update({"type": "nps", "score": "ten"})
        else:
            base["ts"] = [base.get("ts")]
            base["schema_version"] = "one"
    elif kind == "absurd_ts":
        base["ts"] = "1970-01-01T00:00:00.000Z" if d.u() < 0.5 else "2100-01-01T00:00:00.000Z"
    elif kind == "score_out_of_range":
        source = "surveys"
        typ = ("nps", "csat", "ces")[int(d.u() * 3)]
        base.update({"type": typ, "score": (11, 42, -1)[int(d.u() * 3)] if typ == "nps" else
                     (0, 9, 99)[int(d.u() * 3)], "touchpoint": "support"})
    elif kind == "unknown_ticket_type":
        source = "tickets"
        base.pop("ticket_id", None)
        base.pop("severity", None)
        base["type"] = "merged"
    else:  # huge
        base["comment"] = "x" * (70 * 1024)
    return SimRecord(source, near.key, near.ts_ms, orjson.dumps(base))


# --------------------------------------------------------------------------------------------- drivers

_TS = attrgetter("ts_ms")


def _plans(cfg: SimConfig, start: int) -> Iterator[_Plan]:
    end = start + cfg.days * DAY_MS
    for i in range(cfg.customers):
        yield _make_plan(cfg, i, start, end)


def ground_truth(cfg: SimConfig) -> dict[str, int | None]:
    """Churn time (epoch ms) per customer, or None: the same labels ``simulate`` emits as ``churned``.

    Only the plan stream is drawn, so this costs ~50 µs per customer instead of a full simulation.
    """
    start = resolve_start_ms(cfg)
    return {p.cid: p.churn_ms for p in _plans(cfg, start)}


def simulate(cfg: SimConfig, progress: Callable[[str, int, int | None], None] | None = None) -> Iterator[SimRecord]:
    """All records of the run, globally sorted by ``ts_ms`` (ties keep generation order).

    Customers are advanced one local day at a time. Events of local day ``d`` are never earlier than that
    day's local midnight, and the earliest local midnight of day ``d + 1`` over all time zones is
    ``_MAX_AHEAD_H`` hours before the UTC midnight: everything below that watermark is final and flushed.
    ``progress`` is told ``("simulating days", done, total)`` after each simulated day (the CLI's bar).
    """
    start = resolve_start_ms(cfg)
    end = start + cfg.days * DAY_MS
    grid0 = (start // DAY_MS) * DAY_MS
    n_days = -(-(end - grid0) // DAY_MS)
    buf: list[SimRecord] = []
    prod = _product(cfg)
    active = [_Customer(p, cfg.seed, buf, prod, cfg.users_per_account) for p in _plans(cfg, start)]
    bad = _Draw(_ss_rng(cfg.seed, (0xBAD,)), 256) if cfg.bad_rate > 0 else None
    n_bad = 0
    ahead = _MAX_AHEAD_H * HOUR_MS
    for day in range(-1, n_days + 1):
        if progress is not None:
            progress("simulating days", day + 1, n_days + 2)
        day0 = grid0 + day * DAY_MS
        weekday = (day0 // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday; Monday == 0
        still: list[_Customer] = []
        for c in active:
            lm = day0 - c.p.offset_h * HOUR_MS
            c.day(lm, weekday)
            if lm + DAY_MS < c.hi or c.fi < len(c.p.fixed):
                still.append(c)
        active = still
        if day == n_days:
            wm = None
        else:
            wm = day0 + DAY_MS - ahead
        buf.sort(key=_TS)
        cut = len(buf) if wm is None else bisect.bisect_left(buf, wm, key=_TS)
        if cut == 0:
            continue
        ready = buf[:cut]
        del buf[:cut]
        if bad is None:
            yield from ready
            continue
        for rec in ready:
            yield rec
            if bad.u() < cfg.bad_rate:
                n_bad += 1
                yield _malformed(rec, bad, n_bad)
    if progress is not None:
        progress("simulating days", n_days + 2, n_days + 2)


# ----------------------------------------------------------------------------------------------- output


def encode_value(rec: SimRecord) -> bytes:
    """Kafka message value: the JSON event, or the malformed bytes untouched."""
    v = rec.value
    return v if isinstance(v, bytes) else orjson.dumps(v)


def to_log_line(rec: SimRecord) -> bytes:
    """One JSONL line *including* the trailing newline: ``{"source": ..., **value}`` or the raw bad bytes.

    The source is folded into the object so a single file can hold all topics and still be replayed per
    topic; malformed records keep their raw bytes so replaying the log reproduces the dead-letter traffic.
    """
    v = rec.value
    if isinstance(v, bytes):
        if b"\n" in v:
            raise ValueError("malformed record bytes must not contain a newline")
        try:  # a JSON object keeps its source, so the offline reader reports its real fault
            obj = orjson.loads(v)
        except orjson.JSONDecodeError:
            return v + b"\n"
        if isinstance(obj, dict) and "source" not in obj:
            return orjson.dumps({"source": rec.source, **obj}) + b"\n"
        return v + b"\n"
    return orjson.dumps({"source": rec.source, **v}) + b"\n"


def write_jsonl(records: Iterable[SimRecord], path: str | os.PathLike[str]) -> dict[str, int]:
    """Write an event log and return counts per source plus ``"malformed"``; ``.gz`` paths are gzipped."""
    counts: dict[str, int] = {s: 0 for s in SOURCES}
    counts["malformed"] = 0
    p = os.fspath(path)
    opener = gzip.open if p.endswith(".gz") else open
    chunk: list[bytes] = []
    with opener(p, "wb") as f:
        for rec in records:
            chunk.append(to_log_line(rec))
            if isinstance(rec.value, bytes):
                counts["malformed"] += 1
            else:
                counts[rec.source] = counts.get(rec.source, 0) + 1
            if len(chunk) >= 4096:
                f.write(b"".join(chunk))
                chunk.clear()
        if chunk:
            f.write(b"".join(chunk))
    return counts
