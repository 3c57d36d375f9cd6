"""Unit tests of the feature spec: learning it, its JSON, and the features it compiles to, checked against
values worked out by hand from a small event list (not against the feature code's own helpers)."""

from __future__ import annotations

import math
import random

import orjson
import pytest

from pipeline.core.contract import DAY_MS, Event, validate
from pipeline.core.features import FEATURES, OTHER_TYPE, TYPE_CAP, CustomerState, apply, states_from_events, vector
from pipeline.core.spec import FeatureSpec, SpecError, compile_spec, learn, safe_name, spec_of_meta

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a UTC midnight
NOW = T0 + 60 * DAY_MS + 12 * 3_600_000  # day 60, noon
_ids = iter(range(10**9))


def ev(typ: str, day: float, source: str = "interactions", cid: str = "c1", **data) -> Event:
    obj = {"event_id": f"e{next(_ids)}", "customer_id": cid, "ts": int(T0 + day * DAY_MS), "type": typ,
           "schema_version": 1, **data}
    return validate(source, obj, NOW + DAY_MS)


def state_of(events: list[Event]) -> CustomerState:
    return states_from_events(sorted(events, key=lambda e: e.ts_ms))["c1"]


def features(spec: FeatureSpec, st: CustomerState, now: int = NOW) -> dict[str, float]:
    c = compile_spec(spec)
    return dict(zip(c.names, c.vector(st, now)))


# ---- learning --------------------------------------------------------------------------------
def test_learn_takes_the_top_k_types_by_volume_ties_by_name() -> None:
    events = ([ev("post", d) for d in range(10)] + [ev("like", d) for d in range(6)]
              + [ev("comment", d) for d in range(6)] + [ev("unfriend", 1)]
              + [ev("nps", 2, source="surveys", score=9)])
    spec = learn(events, top_k=3)
    assert spec.types == ("post", "comment", "like")  # comment and like tie at 6: by name
    assert spec.ratios == (("comment", "post"), ("like", "post"))
    assert not spec.users and not spec.values
    assert learn(events, top_k=1).types == ("post",)
    with pytest.raises(SpecError, match="top-K"):
        learn(events, top_k=0)
    with pytest.raises(SpecError, match="top-K"):
        learn(events, top_k=TYPE_CAP)


def test_learn_notices_users_and_values() -> None:
    spec = learn([ev("post", 1, user_id="u1"), ev("purchase_credits", 2, value=9.5)])
    assert spec.users and spec.values


# ---- JSON ------------------------------------------------------------------------------------
def test_spec_json_round_trip_and_legacy_default() -> None:
    spec = FeatureSpec(types=("post", "like"), ratios=(("like", "post"),), users=True)
    assert FeatureSpec.from_json(orjson.loads(orjson.dumps(spec.to_json()))) == spec
    assert spec_of_meta({}) == FeatureSpec.legacy_spec()  # a model saved before specs existed
    assert compile_spec(FeatureSpec.legacy_spec()).names == FEATURES


@pytest.mark.parametrize("raw, message", [
    ([], "JSON object"),
    ({"version": 2}, "version"),
    ({"types": ["a"], "colour": "red"}, "unknown keys"),
    ({"types": ["a", "a"]}, "distinct"),
    ({"types": [OTHER_TYPE]}, "distinct"),
    ({"types": ["a"], "windows": [7, 7, 28]}, "windows"),
    ({"types": ["a"], "windows": [7, 28]}, "windows"),
    ({"types": ["a"], "windows": [7, 14, 120]}, "windows"),
    ({"types": ["a", "b"], "ratios": [["a", "c"]]}, "ratio"),
    ({"types": ["a"], "users": "yes"}, "true or false"),
    ({"types": [f"t{i}" for i in range(TYPE_CAP)]}, "at most"),
])
def test_bad_specs_are_refused_in_one_line(raw, message: str) -> None:
    with pytest.raises(SpecError, match=message) as err:
        FeatureSpec.from_json(raw)
    assert "\n" not in str(err.value)


def test_type_names_become_distinct_feature_names() -> None:
    assert safe_name("Export Report!") == "export_report" and safe_name("***") == "type"
    names = compile_spec(FeatureSpec(types=("a-b", "a_b", "A B"))).names
    assert {"type_a_b_7d", "type_a_b_2_7d", "type_a_b_3_7d"} <= set(names)
    assert len(set(names)) == len(names)


# ---- the features, against hand-worked values --------------------------------------------------
def test_per_type_features_by_hand() -> None:
    # day 60 is "now"'s day; windows cover now_day - N < day <= now_day
    events = ([ev("post", 59.5), ev("post", 58.5), ev("post", 50.5), ev("post", 20.5)]
              + [ev("like", 59.2), ev("like", 59.3), ev("like", 45.0)]
              + [ev("unfriend", 55.0), ev("scroll", 40.0)])
    st = state_of(events)
    f = features(FeatureSpec(types=("post", "like", "unfriend")), st)
    assert (f["type_post_7d"], f["type_post_14d"], f["type_post_28d"], f["type_post_90d"]) == (2, 3, 3, 4)
    assert (f["type_like_7d"], f["type_like_28d"]) == (2, 3)
    assert f["type_post_active_days_28d"] == 3  # days 58, 59 and 50
    assert f["type_post_days_since"] == pytest.approx((NOW - (T0 + 59.5 * DAY_MS)) / DAY_MS)
    # last 7 days (days 54..60) vs the 7 before (47..53): posts 2 vs 1 -> +100 %
    assert f["type_post_trend_7d"] == pytest.approx(1.0)
    # 28-day window (days 33..60): 9 events minus the day-20 post = 8; posts 3 of them
    assert f["usage_events_28d"] == 8 and f["type_post_share_28d"] == pytest.approx(3 / 8)
    active_28 = len({58, 59, 50, 45, 55, 40})
    assert f["usage_active_days_28d"] == active_28 and f["type_post_per_active_day_28d"] == pytest.approx(3 / active_28)
    assert f["usage_types_28d"] == 4  # post, like, unfriend, scroll
    assert f["other_types_28d"] == 1 and f["other_types_90d"] == 1  # the scroll
    # own habit: 14-day rate / 90-day rate, both capped at the days the state covers (days 20..60: 41)
    assert f["type_post_14d_vs_90d"] == pytest.approx((3 / 14) / (4 / 41))
    assert f["usage_observed_days"] == pytest.approx((59.5 - 20.5))
    # never used: zero counts, unknown recency
    g = features(FeatureSpec(types=("post", "share")), st)
    assert g["type_share_28d"] == 0 and math.isnan(g["type_share_days_since"])


def test_users_values_and_ratios_by_hand() -> None:
    events = [ev("post", 59.5, user_id="ann", value=2.5), ev("post", 59.6, user_id="bob", value=1.25),
              ev("post", 50.0, user_id="ann"), ev("like", 40.0, user_id="cy", value=-1.0), ev("like", 59.7)]
    st = state_of(events)
    f = features(FeatureSpec(types=("post", "like"), ratios=(("like", "post"),), users=True, values=True), st)
    assert (f["users_7d"], f["users_14d"], f["users_28d"]) == (2, 2, 3)
    assert f["events_per_user_28d"] == pytest.approx(5 / 3)
    assert f["value_7d"] == pytest.approx(3.75) and f["value_28d"] == pytest.approx(2.75)
    assert f["ratio_like_per_post_28d"] == pytest.approx(2 / 3)


def test_billing_cycle_by_hand() -> None:
    renewal = T0 + 70 * DAY_MS  # monthly: the period began 30.4375 days before
    events = ([ev("profile", 1.0, source="customers", renewal_ts=renewal, term="monthly")]
              + [ev("post", d + 0.5) for d in (40, 41, 42, 55, 58)])
    st = state_of(events)
    f = features(FeatureSpec(types=("post",)), st)
    assert f["period_days"] == pytest.approx(30.4375)
    into = 30.4375 - (renewal - NOW) / DAY_MS
    assert f["days_into_period"] == pytest.approx(into)
    span = int(into) + 1  # 21 days: days 40..60 this period, 19..39 before it
    assert span == 21
    assert math.isnan(f["period_events_vs_prev"])  # nothing in the span before: no ratio
    events.append(ev("post", 25.0))
    f = features(FeatureSpec(types=("post",)), state_of(events))
    assert f["period_events_vs_prev"] == pytest.approx(5 / 1)
    assert math.isnan(features(FeatureSpec(types=("post",)), state_of(events[1:]))["period_days"])


# ---- the state behind them ---------------------------------------------------------------------
def test_arrival_order_does_not_change_state_or_features() -> None:
    rng = random.Random(4)
    events = [ev(rng.choice(["post", "like", "share", "unfriend"]), rng.uniform(0, 60), user_id=rng.choice("abc"),
                 value=round(rng.uniform(0, 9), 3)) for _ in range(300)]
    spec = learn(events)
    in_order = state_of(events)
    shuffled = CustomerState("c1")
    for e in rng.sample(events, len(events)):
        apply(shuffled, e)
    assert shuffled.comparable() == in_order.comparable()
    assert features(spec, shuffled) == features(spec, in_order)


def test_types_past_the_cap_share_one_slot_and_state_round_trips() -> None:
    events = [ev(f"type{i:02d}", 10 + i * 0.01) for i in range(TYPE_CAP + 5)]
    st = state_of(events)
    assert len(st.tnames) == TYPE_CAP and st.tnames[-1] == OTHER_TYPE
    back = CustomerState.from_bytes(st.to_bytes())
    assert back.comparable() == st.comparable()
    f = features(FeatureSpec(types=("type00",)), back, T0 + 20 * DAY_MS)
    assert f["type_type00_28d"] == 1 and f["other_types_28d"] == TYPE_CAP + 4


def test_a_state_saved_before_per_type_buckets_still_scores() -> None:
    """States in a changelog written by an older worker have no per-type fields: zero counts, no crash."""
    st = state_of([ev("post", 59.0)])
    old = orjson.loads(st.to_json())
    for name in ("tnames", "tdays", "tlast", "udays", "vdays", "term"):
        del old[name]
    back = CustomerState.from_bytes(orjson.dumps(old))
    f = features(FeatureSpec(types=("post",)), back)
    assert f["type_post_28d"] == 0 and f["logins_7d"] == 0
    assert vector(back, NOW) == vector(st, NOW)  # the built-in features are unchanged
