"""Unit tests for pipeline.core.reasons: reasons in words."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.features import FEATURE_INDEX, FEATURES
from pipeline.core.plays import PLAYS
from pipeline.core.reasons import Reason, category, top_reasons

NAN = float("nan")


def vec(**values: float) -> list[float]:
    out = [0.0] * len(FEATURES)
    for name, value in values.items():
        out[FEATURE_INDEX[name]] = value
    return out


def contrib(**values: float) -> list[float]:
    return vec(**values) + [0.42]  # LightGBM's pred_contrib appends the bias column


def reason(feature: str, c: float) -> Reason:
    return Reason(feature, 1.0, c, category(feature), f"text for {feature}")


# ---- top_reasons -----------------------------------------------------------------------------------
def test_only_positive_contributions_sorted_at_most_k():
    v = vec(logins_trend_7d=-0.8, logins_7d=2, open_tickets=3, last_nps=3, days_since_nps=5, mrr=100)
    c = contrib(open_tickets=0.2, logins_trend_7d=0.5, mrr=-0.3, tickets_30d=0.0, days_since_login=0.1, min_csat_30d=0.05)
    got = top_reasons(v, c, k=3)
    assert [r.feature for r in got] == ["logins_trend_7d", "open_tickets", "days_since_login"]
    assert [r.contribution for r in got] == [0.5, 0.2, 0.1]
    assert got[0].value == -0.8 and got[0].category == "adoption"
    assert got[1].text == "3 support tickets open"
    assert [r.feature for r in top_reasons(v, c, k=10)] == ["logins_trend_7d", "open_tickets", "days_since_login", "min_csat_30d"]
    assert top_reasons(v, c, k=1)[0].feature == "logins_trend_7d"


def test_no_positive_contribution_gives_no_reasons():
    assert top_reasons(vec(), contrib(mrr=-0.1, open_tickets=0.0)) == []


def test_same_text_counts_once():
    """last_nps, nps_category and days_since_nps all render the same NPS sentence."""
    v = vec(last_nps=3, nps_category=-1, days_since_nps=12, open_tickets=2)
    c = contrib(nps_category=0.4, last_nps=0.3, days_since_nps=0.25, open_tickets=0.2)
    got = top_reasons(v, c, k=3)
    assert [r.feature for r in got] == ["nps_category", "open_tickets"]
    assert got[0].text == "NPS 3 (detractor) 12 days ago"
    assert len({r.text for r in got}) == len(got)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(data=st.data(), k=st.integers(min_value=0, max_value=8))
def test_top_reasons_properties(data, k):
    c = data.draw(st.lists(st.floats(min_value=-1, max_value=1, allow_nan=False), min_size=len(FEATURES),
                           max_size=len(FEATURES)))
    v = data.draw(st.lists(st.one_of(st.just(NAN), st.floats(min_value=-5, max_value=500, allow_nan=False)),
                           min_size=len(FEATURES), max_size=len(FEATURES)))
    got = top_reasons(v, c, k=k)
    assert len(got) <= k
    assert all(r.contribution > 0 for r in got)
    assert [r.contribution for r in got] == sorted((r.contribution for r in got), reverse=True)
    assert len({r.text for r in got}) == len(got)
    for r in got:
        assert c[FEATURE_INDEX[r.feature]] == r.contribution
        assert r.category == category(r.feature)
    positive_texts = len({_text_of(v, i) for i in range(len(FEATURES)) if c[i] > 0})
    assert len(got) == min(k, positive_texts)


def _text_of(v: list[float], i: int) -> str:
    c = [0.0] * len(FEATURES)
    c[i] = 1.0
    return top_reasons(v, c, k=1)[0].text


# ---- texts -----------------------------------------------------------------------------------------
def _only(feature: str, v: list[float]) -> Reason:
    c = [0.0] * len(FEATURES)
    c[FEATURE_INDEX[feature]] = 1.0
    (r,) = top_reasons(v, c, k=3)
    return r


@pytest.mark.parametrize(("feature", "values", "text"), [
    ("logins_trend_7d", {"logins_trend_7d": -0.8, "logins_7d": 2}, "logins down 80% vs the previous week (2 in the last 7 days)"),
    ("logins_trend_7d", {"logins_trend_7d": 0.5, "logins_7d": 6}, "logins up 50% vs the previous week (6 in the last 7 days)"),
    ("logins_trend_7d", {"logins_trend_7d": 0.0, "logins_7d": 4}, "logins flat vs the previous week (4 in the last 7 days)"),
    ("logins_trend_7d", {"logins_trend_7d": NAN}, "logins trend unknown"),
    ("feature_uses_trend_7d", {"feature_uses_trend_7d": -1.0, "feature_uses_7d": 0}, "feature use down 100% vs the previous week (0 in the last 7 days)"),
    ("last_nps", {"last_nps": 3, "days_since_nps": 12}, "NPS 3 (detractor) 12 days ago"),
    ("last_nps", {"last_nps": 6, "days_since_nps": 1}, "NPS 6 (detractor) 1 day ago"),
    ("nps_category", {"last_nps": 7, "days_since_nps": 2}, "NPS 7 (passive) 2 days ago"),
    ("days_since_nps", {"last_nps": 9, "days_since_nps": 30}, "NPS 9 (promoter) 30 days ago"),
    ("last_nps", {"last_nps": NAN}, "no NPS answer yet"),
    ("open_tickets", {"open_tickets": 3}, "3 support tickets open"),
    ("open_high_sev_tickets", {"open_high_sev_tickets": 2}, "2 high-severity tickets open"),
    ("open_past_sla", {"open_past_sla": 1}, "1 open ticket past SLA"),
    ("tickets_30d", {"tickets_30d": 5}, "5 tickets opened in 30 days"),
    ("sla_breaches_30d", {"sla_breaches_30d": 2}, "2 SLA breaches in 30 days"),
    ("mean_resolve_hours", {"mean_resolve_hours": 36.5}, "tickets take 36.5 h to resolve on average"),
    ("mean_resolve_hours", {"mean_resolve_hours": NAN}, "tickets take unknown h to resolve on average"),
    ("days_since_login", {"days_since_login": 12.25}, "no login for 12.2 days"),
    ("min_csat_30d", {"min_csat_30d": 2}, "lowest CSAT in 30 days: 2/5"),
    ("logins_30d", {"logins_30d": 4}, "4 logins in the last 30 days"),
    ("failed_help_7d", {"failed_help_7d": 3}, "3 unsuccessful help-article views in the last 7 days"),
    ("active_days_90d", {"active_days_90d": 10}, "10 active days in the last 90 days"),
    ("days_to_renewal", {"days_to_renewal": 21}, "renewal in 21 days"),
    ("is_vip", {"is_vip": 1}, "VIP account"),
])
def test_reason_texts(feature, values, text):
    r = _only(feature, vec(**values))
    assert r.text == text


@pytest.mark.parametrize(("feature", "cat"), [
    ("logins_trend_7d", "adoption"), ("active_days_30d", "adoption"), ("failed_help_30d", "service"),
    ("open_tickets", "service"), ("last_nps", "value"), ("min_csat_30d", "value"),
    ("days_to_renewal", "renewal"), ("mrr", "profile"),
])
def test_categories(feature, cat):
    assert category(feature) == cat


@pytest.mark.parametrize("feature", FEATURES)
def test_every_feature_has_a_text(feature):
    rng = random.Random(feature)
    plausible = [rng.choice([0.0, 1.0, 3.0, 12.5, -0.8, 0.35, 250.0]) for _ in FEATURES]
    all_nan = [NAN] * len(FEATURES)
    mixed = [NAN if i % 2 else x for i, x in enumerate(plausible)]
    for v in (plausible, all_nan, mixed):
        r = _only(feature, v)
        assert isinstance(r.text, str) and r.text.strip()
        assert "nan" not in r.text.lower()  # a missing value reads "unknown", never "nan"
        assert r.category in PLAYS


def test_reason_to_json_rounds_and_hides_nan():
    assert Reason("mrr", NAN, 0.123456, "profile", "MRR unknown").to_json() == {
        "feature": "mrr", "value": None, "contribution": 0.1235, "category": "profile", "text": "MRR unknown"}
    assert Reason("mrr", 99.123456, 0.1, "profile", "x").to_json()["value"] == 99.1235
    assert Reason("mrr", None, 0.1, "profile", "x").to_json()["value"] is None


def test_a_learnt_specs_features_read_as_sentences_about_the_products_own_events() -> None:
    from pipeline.core.spec import FeatureSpec, compile_spec

    names = compile_spec(FeatureSpec(types=("whiteboard_shared", "sync_failed"), users=True)).names
    index = {n: i for i, n in enumerate(names)}
    row, c = [0.0] * len(names), [0.0] * (len(names) + 1)
    for name, value, weight in (("type_whiteboard_shared_14d_vs_90d", 0.2, 0.9), ("type_sync_failed_7d", 6.0, 0.7),
                                ("users_28d", 1.0, 0.5), ("logins_7d", 0.0, 0.1)):
        row[index[name]], c[index[name]] = value, weight
    reasons = top_reasons(row, c, names=names)
    assert [r.feature for r in reasons] == ["type_whiteboard_shared_14d_vs_90d", "type_sync_failed_7d", "users_28d"]
    assert reasons[0].text == "whiteboard shared at 20% of the customer's usual rate (last 14 vs 90 days)"
    assert reasons[0].category == "adoption"
    assert reasons[1].text == "6 sync failed events in the last 7 days" and reasons[1].category == "service"
    assert reasons[2].text == "1 active users in the last 28 days"
    # every name a spec can produce has a sentence of its own (no fallback to the bare name)
    full = compile_spec(FeatureSpec(types=("a", "b"), ratios=(("b", "a"),), users=True, values=True)).names
    for name in full[len(FEATURES):]:
        one = [0.0] * len(full)
        weights = [0.0] * (len(full) + 1)
        weights[full.index(name)] = 1.0
        (r,) = top_reasons(one, weights, names=full)
        assert name.replace("_", " ") not in r.text, (name, r.text)
