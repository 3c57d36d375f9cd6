"""The feature spec: one declarative description of a model's features, compiled for stream and training.

A product's churn signal lives in its *own* events (``post``, ``export_report``, ``seat_removed``...),
not in a fixed vocabulary. ``churnwatch train`` therefore learns a :class:`FeatureSpec` from the log —
the top-K interaction types by volume get channels of their own, everything else is "other" — and saves
it in the model's metadata. The worker computes exactly the spec of the model it scores with, and the
offline dataset builder runs the same :meth:`CompiledSpec.vector`; nothing else decides what a feature is.

A spec's vector is the built-in features (:data:`pipeline.core.features.FEATURES`, which the rules and the
explanations index by name) followed by the spec's own:

* per type ``t``: counts over each window, active days, days since the last one, the last week against
  the week before, the customer's own habit (``14d_vs_90d``), share of all activity, events per active day;
* all interaction events: counts per window, active days per window, distinct types used, trend, habit,
  days of history the state covers (tenure from the data itself, for accounts without a signup date);
* ``ratios``: one type per another;
* ``users`` / ``values`` (when the log has ``user_id`` / ``value``): distinct active users and value sums;
* ``subscription``: the billing cycle from the profile's ``renewal_ts`` and ``term`` — days into the
  current period, its length, and activity this period against the same span before it.

Every number comes from :class:`pipeline.core.features.CustomerState`, which keeps day buckets per type for
every type a customer has used (up to ``TYPE_CAP``): a model with a different spec is computed from the
same state, without a replay (see docs/features.md, "Hot reload across specs").

A model saved without a spec (before specs existed) gets :meth:`FeatureSpec.legacy`: the built-in
features only, exactly as it was trained.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any, Iterable, Mapping, Sequence

from pipeline.core.contract import DAY_MS, TERM_DAYS, Event
from pipeline.core.features import (FEATURES, OTHER_TYPE, RING_DAYS, TYPE_CAP, VALUE_SCALE, CustomerState, day_of,
                               vector as base_vector)
from pipeline.core.features.feature_vector import days_covered, rate_ratio, trend

SPEC_VERSION = 1
DEFAULT_WINDOWS = (7, 14, 28, 90)
DEFAULT_TOP_K = 16
#: Ratios learnt per spec: each of the next few types per the most common one.
LEARNT_RATIOS = 3
NAN = float("nan")
_NAME_RE = re.compile(r"[^a-z0-9]+")


class SpecError(ValueError):
    """A spec that cannot be used, in one line."""


def safe_name(typ: str) -> str:
    """A feature-name fragment for an event type: LightGBM refuses JSON punctuation in feature names."""
    return _NAME_RE.sub("_", typ.lower()).strip("_")[:40] or "type"


@dataclass(frozen=True)
class FeatureSpec:
    """What a model's features are. Plain data: saved as JSON in the model's ``meta.json``."""

    #: interaction types with channels of their own, most voluminous first
    types: tuple[str, ...] = ()
    windows: tuple[int, ...] = DEFAULT_WINDOWS
    #: (numerator, denominator) types: one per another over the main window
    ratios: tuple[tuple[str, str], ...] = ()
    users: bool = False
    values: bool = False
    subscription: bool = True
    #: the built-in features only (a model saved before specs existed)
    legacy: bool = False

    def __post_init__(self) -> None:
        if self.legacy:
            return
        if len(self.types) >= TYPE_CAP:
            raise SpecError(f"feature spec names {len(self.types)} types; at most {TYPE_CAP - 1} can have channels")
        if len(set(self.types)) != len(self.types) or any(not isinstance(t, str) or not t or t == OTHER_TYPE
                                                          for t in self.types):
            raise SpecError("feature spec types must be distinct, non-empty strings")
        w = self.windows
        if (len(w) < 3 or list(w) != sorted(set(w)) or any(not isinstance(x, int) or x < 1 for x in w)
                or w[-1] > RING_DAYS or 2 * w[0] > RING_DAYS):
            raise SpecError(f"feature spec windows {list(w)} must be 3 or more increasing whole days in 1..{RING_DAYS}")
        for a, b in self.ratios:
            if a not in self.types or b not in self.types or a == b:
                raise SpecError(f"feature spec ratio {a}/{b} must be two different types of the spec")

    @classmethod
    def legacy_spec(cls) -> "FeatureSpec":
        return cls(legacy=True)

    # ---- JSON -----------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        if self.legacy:
            return {"version": SPEC_VERSION, "legacy": True}
        return {"version": SPEC_VERSION, "types": list(self.types), "windows": list(self.windows),
                "ratios": [list(r) for r in self.ratios], "users": self.users, "values": self.values,
                "subscription": self.subscription}

    @classmethod
    def from_json(cls, d: Any) -> "FeatureSpec":
        if not isinstance(d, Mapping):
            raise SpecError("feature spec must be a JSON object")
        if d.get("version", SPEC_VERSION) != SPEC_VERSION:
            raise SpecError(f"feature spec version {d.get('version')!r} is not {SPEC_VERSION}")
        unknown = set(d) - {"version", "legacy", "types", "windows", "ratios", "users", "values", "subscription"}
        if unknown:
            raise SpecError(f"feature spec has unknown keys {sorted(unknown)}")
        if d.get("legacy"):
            return cls.legacy_spec()
        try:
            types = tuple(d.get("types", ()))
            windows = tuple(d.get("windows", DEFAULT_WINDOWS))
            ratios = tuple((str(a), str(b)) for a, b in d.get("ratios", ()))
        except (TypeError, ValueError):
            raise SpecError("feature spec types, windows and ratios must be lists") from None
        flags = {k: d.get(k, default) for k, default in (("users", False), ("values", False), ("subscription", True))}
        if any(not isinstance(v, bool) for v in flags.values()):
            raise SpecError("feature spec users, values and subscription must be true or false")
        return cls(types=types, windows=windows, ratios=ratios, **flags)

    def describe(self) -> str:
        if self.legacy:
            return "built-in features only"
        extra = [x for x, on in (("users", self.users), ("values", self.values), ("subscription", self.subscription)) if on]
        return f"{len(self.types)} event types ({', '.join(self.types[:5])}{', ...' if len(self.types) > 5 else ''})" + (
            f"; {', '.join(extra)}" if extra else "")


def learn(events: Iterable[Event], top_k: int = DEFAULT_TOP_K, windows: Sequence[int] = DEFAULT_WINDOWS) -> FeatureSpec:
    """The spec a log calls for: its ``top_k`` interaction types by volume (ties by name, so the same log
    always gives the same spec), users/values when any interaction carries them."""
    volume: Counter[str] = Counter()
    users = values = False
    for ev in events:
        if ev.source != "interactions":
            continue
        volume[ev.type] += 1
        if not users and "user_id" in ev.data:
            users = True
        if not values and "value" in ev.data:
            values = True
    return learn_from_volume(volume, users=users, values=values, top_k=top_k, windows=windows)


def learn_from_volume(volume: Mapping[str, int], *, users: bool, values: bool, top_k: int = DEFAULT_TOP_K,
                      windows: Sequence[int] = DEFAULT_WINDOWS) -> FeatureSpec:
    """:func:`learn` from counts already taken (a reader counts them while it reads a large log)."""
    if not 1 <= top_k < TYPE_CAP:
        raise SpecError(f"top-K must be in 1..{TYPE_CAP - 1}, got {top_k}")
    volume = {t: n for t, n in volume.items() if t != OTHER_TYPE}
    types = tuple(t for t, _ in sorted(volume.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k])
    ratios = tuple((t, types[0]) for t in types[1:1 + LEARNT_RATIOS])
    return FeatureSpec(types=types, windows=tuple(windows), ratios=ratios, users=users, values=values)


# ---- compiled -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CompiledSpec:
    """A spec turned into feature names and the function computing them (the one both sides call)."""

    spec: FeatureSpec
    names: tuple[str, ...]
    #: window boundaries (days) the day buckets are summed into; every window is a sum of leading bands
    edges: tuple[int, ...] = field(repr=False)
    main: int = 28
    #: age in days -> index of its band in ``edges``
    band_of: tuple[int, ...] = field(default=(), repr=False)
    #: age in days -> index of the shortest window holding it (it counts in that one and every longer one)
    window_of: tuple[int, ...] = field(default=(), repr=False)

    @property
    def index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}

    def vector(self, state: CustomerState, now_ms: int) -> list[float]:
        out = base_vector(state, now_ms)
        if not self.spec.legacy:
            out += _extension(self, state, now_ms)
        return out


def compile_spec(spec: FeatureSpec) -> CompiledSpec:
    if spec.legacy:
        return CompiledSpec(spec, FEATURES, (), 28)
    w = spec.windows
    main = max([x for x in w if x <= 30] or [w[0]])
    edges = tuple(sorted(set(w) | {2 * w[0]}))
    names: list[str] = []
    names += [f"usage_events_{x}d" for x in w]
    names += [f"usage_active_days_{x}d" for x in w]
    names += [f"usage_types_{main}d", f"usage_events_trend_{w[0]}d", f"usage_events_{w[1]}d_vs_{w[-1]}d",
              "usage_observed_days"]
    seen: set[str] = set()
    for t in spec.types:
        n = safe_name(t)
        base, k = n, 2
        while n in seen:
            n, k = f"{base}_{k}", k + 1
        seen.add(n)
        names += [f"type_{n}_{x}d" for x in w]
        names += [f"type_{n}_active_days_{main}d", f"type_{n}_days_since", f"type_{n}_trend_{w[0]}d",
                  f"type_{n}_{w[1]}d_vs_{w[-1]}d", f"type_{n}_share_{main}d", f"type_{n}_per_active_day_{main}d"]
    names += [f"other_types_{x}d" for x in w]
    names += [f"ratio_{safe_name(a)}_per_{safe_name(b)}_{main}d" for a, b in spec.ratios]
    if spec.users:
        names += [f"users_{x}d" for x in w] + [f"events_per_user_{main}d"]
    if spec.values:
        names += [f"value_{x}d" for x in w] + [f"value_trend_{w[0]}d"]
    if spec.subscription:
        names += ["period_days", "days_into_period", "period_events_vs_prev"]
    full = FEATURES + tuple(names)
    if len(set(full)) != len(full):
        raise SpecError("feature spec gives two features the same name")
    band_of = tuple(next(i for i, e in enumerate(edges) if age < e) for age in range(edges[-1]))
    window_of = tuple(next(i for i, x in enumerate(w) if age < x) for age in range(w[-1]))
    return CompiledSpec(spec, full, edges, main, band_of, window_of)


def _extension(c: CompiledSpec, state: CustomerState, now_ms: int) -> list[float]:
    spec = c.spec
    w, edges, main = spec.windows, c.edges, c.main
    now_day = day_of(now_ms)
    nslots = len(state.tnames)
    # day rows per band (summed column-wise in C by zip/map: this runs once per customer per batch)
    by_band: list[list[list[int]]] = [[] for _ in edges]
    horizon = edges[-1]
    for day, row in state.tdays.items():
        age = now_day - day
        if 0 <= age < horizon:
            by_band[c.band_of[age]].append(row)
    zero = [0] * nslots
    cum: dict[int, list[int]] = {}  # window edge -> per-slot counts over the window
    cum_active: dict[int, int] = {}
    running, days = zero, 0
    main_rows: list[list[int]] = []
    for edge, rows in zip(edges, by_band):
        if rows:
            band = list(map(sum, zip_longest(*rows, zero, fillvalue=0)))
            running = [a + b for a, b in zip(running, band)]
            days += len(rows)  # a day row exists only once something was counted on it
        cum[edge], cum_active[edge] = running, days
        if edge <= main:
            main_rows += rows
    slot_active = [sum(map(bool, col)) for col in zip_longest(*main_rows, zero, fillvalue=0)] if main_rows else zero
    totals = {edge: float(sum(v)) for edge, v in cum.items()}
    covered = days_covered(state, now_day)
    d1, dl = min(w[1], covered), min(w[-1], covered)
    w0, w2 = w[0], 2 * w[0]
    first, before = totals[w0], totals[w2] - totals[w0]
    out: list[float] = [totals[x] for x in w]
    out += [float(cum_active[x]) for x in w]
    out += [float(sum(1 for n in cum[main] if n)), trend(first, before),
            rate_ratio(totals[w[1]], d1, totals[w[-1]], dl), state.observed_days]
    index = state.type_index()
    main_all, main_active = totals[main], cum_active[main]
    main_counts: dict[str, float] = {}
    for t in spec.types:
        slot = index.get(t)
        if slot is None:
            out += [0.0] * len(w) + [0.0, NAN, 0.0, NAN, 0.0 if main_all else NAN, 0.0 if main_active else NAN]
            main_counts[t] = 0.0
            continue
        counts = [float(cum[x][slot]) for x in w]
        out += counts
        m = float(cum[main][slot])
        main_counts[t] = m
        a, prev = cum[w0][slot], cum[w2][slot] - cum[w0][slot]
        last = state.tlast[slot]
        out += [float(slot_active[slot]), (now_ms - last) / DAY_MS if last and last <= now_ms else NAN,
                trend(a, prev), rate_ratio(cum[w[1]][slot], d1, counts[-1], dl),
                m / main_all if main_all else NAN, m / main_active if main_active else NAN]
    named = {index[t] for t in spec.types if t in index}
    out += [totals[x] - float(sum(cum[x][i] for i in named)) for x in w]
    for a_, b_ in spec.ratios:
        out.append(main_counts[a_] / main_counts[b_] if main_counts[b_] else NAN)
    first_window = c.window_of
    if spec.users:
        per_window: list[set[int]] = [set() for _ in w]
        for day, hashes in state.udays.items():
            age = now_day - day
            if 0 <= age < w[-1]:
                per_window[first_window[age]].update(hashes)
        seen_users: set[int] = set()
        users_main = 0
        for x, users in zip(w, per_window):
            seen_users |= users
            out.append(float(len(seen_users)))
            if x == main:
                users_main = len(seen_users)
        out.append(main_all / users_main if users_main else NAN)
    if spec.values:
        vals = [0] * len(w)
        prev_v = 0
        for day, v in state.vdays.items():
            age = now_day - day
            if 0 <= age < w[-1]:
                vals[first_window[age]] += v
                if w0 <= age < w2:
                    prev_v += v
        total_v = 0
        for wi, v in enumerate(vals):
            total_v += v
            vals[wi] = total_v
        out += [v / VALUE_SCALE for v in vals]
        out.append((vals[0] - prev_v) / max(abs(prev_v), VALUE_SCALE))
    if spec.subscription:
        out += _cycle(state, now_ms, now_day)
    return out


def _cycle(state: CustomerState, now_ms: int, now_day: int) -> list[float]:
    """Billing-cycle position: where churn happens at renewal, usage this period and the time left matter."""
    period = TERM_DAYS.get(state.term, NAN)
    if not state.renewal_ms or math.isnan(period):
        return [period, NAN, NAN]
    to_renewal = (state.renewal_ms - now_ms) / DAY_MS
    into = period - to_renewal
    if not 0 <= into <= period:
        return [period, NAN, NAN]  # renewal date stale or far ahead: no period to place "now" in
    span = int(into) + 1  # whole days of this period, today included
    covered = days_covered(state, now_day)
    if 2 * span > min(covered, RING_DAYS):
        return [period, into, NAN]
    this = prev = 0
    for day, row in state.tdays.items():
        age = now_day - day
        if 0 <= age < span:
            this += sum(row)
        elif span <= age < 2 * span:
            prev += sum(row)
    return [period, into, this / prev if prev else NAN]


def spec_of_meta(meta: Mapping[str, Any]) -> FeatureSpec:
    """The spec a saved model was trained with (``legacy`` for models saved before specs existed)."""
    raw = meta.get("feature_spec")
    return FeatureSpec.legacy_spec() if raw is None else FeatureSpec.from_json(raw)
