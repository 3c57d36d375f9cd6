"""The foreign-vocabulary mode (``SimConfig.vocabulary > 0``): a product that sends its own event types,
drawn from the seed (names, roles, shares, plan names), and the constants its customers behave by."""

from __future__ import annotations

import math
from dataclasses import dataclass

from devtools.simulator.draw import _Draw, _ss_rng
from devtools.simulator.records import SimConfig


#: The interaction types of the fixed story; a foreign product never sends any of them.
FIXED_TYPES: frozenset[str] = frozenset({"login", "feature_use", "page_view", "help_view", "purchase"})
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
