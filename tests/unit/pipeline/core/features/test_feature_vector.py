"""Unit tests for pipeline.core.features.feature_vector: windows, trends, own-baseline ratios, recency."""

from __future__ import annotations

import math

import pytest

from pipeline.core.contract import DAY_MS, HOUR_MS, Event, parse_ts
from pipeline.core.features import FEATURE_INDEX, FEATURES, CustomerState, day_of
from tests.unit.pipeline.core.features.events import T0, ev, feats, login, opened, state_of, survey


def test_feature_index_matches_feature_order():
    assert len(set(FEATURES)) == len(FEATURES)
    assert all(FEATURES[i] == name for name, i in FEATURE_INDEX.items())


# ---- day buckets and windows ------------------------------------------------------------------------
def test_day_buckets_are_utc_days():
    late_evening_new_york = parse_ts("2024-03-10T23:30:00-05:00")  # = 2024-03-11T04:30Z
    assert day_of(late_evening_new_york) == day_of(parse_ts("2024-03-11T00:00:00Z"))
    assert day_of(late_evening_new_york) == day_of(parse_ts("2024-03-10T00:00:00Z")) + 1
    s = state_of(login(late_evening_new_york))
    assert list(s.days) == [day_of(parse_ts("2024-03-11T12:00:00Z"))]
    # Six days after the UTC day the event belongs to it is still inside the 7-day window;
    # had it been bucketed on its local day (03-10) it would be 7 days old and outside.
    f = feats(s, parse_ts("2024-03-17T01:00:00Z"))
    assert f["logins_7d"] == 1.0
    assert f["active_days_7d"] == 1.0


@pytest.mark.parametrize(("window", "days_before", "inside"), [
    (7, 6, True), (7, 7, False),
    (30, 29, True), (30, 30, False),
    (90, 89, True), (90, 90, False),
])
def test_window_edges(window, days_before, inside):
    s = state_of(login(T0 - days_before * DAY_MS), ev("interactions", "page_view", T0 - days_before * DAY_MS))
    f = feats(s, T0)
    expected = 1.0 if inside else 0.0
    assert f[f"logins_{window}d"] == expected
    assert f[f"page_views_{window}d"] == expected
    assert f[f"active_days_{window}d"] == expected
    for bigger in (w for w in (7, 30, 90) if w > window):
        assert f[f"logins_{bigger}d"] == 1.0  # and it is still in every longer window


def test_window_counts_per_channel():
    events = [
        login(T0 - HOUR_MS),
        login(T0 - 2 * HOUR_MS),
        ev("interactions", "feature_use", T0 - 3 * DAY_MS, feature="reports"),
        ev("interactions", "page_view", T0 - 10 * DAY_MS),
        ev("interactions", "help_view", T0 - 20 * DAY_MS, success=False),
        ev("interactions", "help_view", T0 - 20 * DAY_MS, success=True),
        ev("interactions", "purchase", T0 - 40 * DAY_MS),
        ev("interactions", "export_report", T0 - 50 * DAY_MS),  # unknown types count as other events
    ]
    f = feats(state_of(*events))
    assert (f["logins_7d"], f["feature_uses_7d"], f["page_views_7d"]) == (2, 1, 0)
    assert (f["page_views_30d"], f["help_views_30d"], f["failed_help_30d"]) == (1, 2, 1)
    assert (f["purchases_30d"], f["purchases_90d"], f["other_events_90d"]) == (0, 1, 1)
    assert f["logins_90d"] == 2


def test_active_days_count_distinct_days_with_interactions_only():
    events = [
        login(T0), login(T0 - HOUR_MS),  # same day twice
        ev("interactions", "page_view", T0 - 2 * DAY_MS),
        ev("interactions", "custom_thing", T0 - 5 * DAY_MS),
        opened("t1", T0 - 3 * DAY_MS),  # a ticket alone does not make a day active
        survey("nps", 8, T0 - 4 * DAY_MS),
        login(T0 - 12 * DAY_MS),
    ]
    f = feats(state_of(*events))
    assert f["active_days_7d"] == 3
    assert f["active_days_30d"] == 4


def test_trends_compare_last_7_days_with_the_7_before():
    events = [login(T0 - d * DAY_MS) for d in (7, 8, 9, 10, 11, 12, 13, 13, 13, 13)]  # 10 the week before
    events += [login(T0), login(T0 - 6 * DAY_MS)]  # 2 in the last week
    events += [ev("interactions", "feature_use", T0 - 1 * DAY_MS)] * 3  # 3 now, 0 before
    f = feats(state_of(*[ev(e.source, e.type, e.ts_ms) for e in events]))
    assert f["logins_trend_7d"] == pytest.approx(-0.8)
    assert f["feature_uses_trend_7d"] == pytest.approx(3.0)  # relative to max(before, 1)
    assert f["activity_trend_7d"] == pytest.approx((5 - 10) / 10)
    assert f["logins_7d"] == 2


def test_trends_are_zero_without_activity():
    f = feats(state_of(opened("t1", T0)))
    assert (f["logins_trend_7d"], f["activity_trend_7d"], f["feature_uses_trend_7d"]) == (0.0, 0.0, 0.0)


def test_events_14_days_old_do_not_enter_the_trend():
    f = feats(state_of(login(T0 - 14 * DAY_MS), login(T0)))
    assert f["logins_trend_7d"] == 1.0


# ---- recency ---------------------------------------------------------------------------------------
# ---- usage against the customer's own baseline, per-session figures --------------------------------
BASELINE_RATIOS = ("logins_14d_vs_90d", "feature_uses_14d_vs_90d", "activity_14d_vs_90d",
                   "active_days_14d_vs_90d", "logins_7d_vs_90d", "activity_30d_vs_prev60d",
                   "active_days_30d_vs_prev60d")


def daily(days: range, per_day: int = 1, typ: str = "login") -> list[Event]:
    """``per_day`` events of ``typ`` at noon UTC on each of ``days`` (days before T0's day)."""
    return [ev("interactions", typ, T0 - d * DAY_MS) for d in days for _ in range(per_day)]


def test_steady_usage_reads_one_whatever_its_level():
    """A low-usage customer who keeps their habit and a heavy one who keeps theirs look the same."""
    for per_day in (1, 5):
        f = feats(state_of(*daily(range(89, -1, -1), per_day)))
        for name in BASELINE_RATIOS:
            if "feature_uses" not in name:
                assert f[name] == pytest.approx(1.0), (per_day, name)
        assert math.isnan(f["feature_uses_14d_vs_90d"])  # no feature use in 90 days: no baseline


def test_collapsing_usage_falls_towards_zero():
    # 5 logins a day for 60 days, then 1 a day for the last 30 (days 29..0)
    events = daily(range(89, 29, -1), 5) + daily(range(29, -1, -1), 1)
    f = feats(state_of(*events))
    total = 60 * 5 + 30
    assert f["logins_14d_vs_90d"] == pytest.approx((14 / 14) / (total / 90))
    assert f["logins_7d_vs_90d"] == pytest.approx((7 / 7) / (total / 90))
    assert f["activity_30d_vs_prev60d"] == pytest.approx((30 / 30) / (300 / 60))  # 0.2
    assert f["active_days_30d_vs_prev60d"] == pytest.approx(1.0)  # still active every day
    assert f["active_days_14d_vs_90d"] == pytest.approx(1.0)
    # and silence for the last 14 days reads 0, not NaN: the baseline is there
    g = feats(state_of(*daily(range(89, 13, -1), 2)))
    assert g["logins_14d_vs_90d"] == 0.0 and g["active_days_14d_vs_90d"] == 0.0 and g["logins_7d_vs_90d"] == 0.0


def test_baseline_windows_are_capped_at_the_history_the_state_covers():
    """A customer first seen 20 days ago is compared with those 20 days, not with 90 mostly empty ones."""
    f = feats(state_of(*daily(range(19, -1, -1), 3)))
    assert f["logins_14d_vs_90d"] == pytest.approx(1.0)
    assert f["logins_7d_vs_90d"] == pytest.approx(1.0)
    # 30 days vs the ones before them needs at least a week of earlier history
    assert math.isnan(f["activity_30d_vs_prev60d"]) and math.isnan(f["active_days_30d_vs_prev60d"])
    g = feats(state_of(*daily(range(39, -1, -1), 1)))  # 40 days: 10 before the last 30
    assert g["activity_30d_vs_prev60d"] == pytest.approx(1.0)


def test_baseline_ratios_are_nan_without_activity():
    f = feats(state_of(opened("t1", T0 - 5 * DAY_MS)))
    for name in BASELINE_RATIOS:
        assert math.isnan(f[name]), name
    assert math.isnan(feats(CustomerState("c1"))["logins_14d_vs_90d"])


def test_activity_before_the_last_30_days_only():
    f = feats(state_of(*daily(range(89, 29, -1), 2)))
    assert f["activity_30d_vs_prev60d"] == 0.0 and f["active_days_30d_vs_prev60d"] == 0.0
    g = feats(state_of(*daily(range(29, -1, -1), 2), ev("customers", "upsert", T0 - 80 * DAY_MS, tier="vip")))
    assert math.isnan(g["activity_30d_vs_prev60d"])  # covered, but nothing to compare with


def test_actions_and_help_per_login():
    events = daily(range(0, 10), 1)  # 10 logins in the last 14 days
    events += daily(range(0, 5), 3, "page_view") + daily(range(0, 5), 1, "feature_use")  # 20 actions
    events += daily(range(20, 30), 2) + daily(range(20, 30), 1, "feature_use")  # 20 logins, 10 actions
    events += [ev("interactions", "help_view", T0 - d * DAY_MS, success=d % 2 == 0) for d in range(1, 7)]
    events += [ev("interactions", "help_view", T0 - 60 * DAY_MS, success=False) for _ in range(2)]
    f = feats(state_of(*events))
    assert f["actions_per_login_14d"] == pytest.approx(20 / 10)
    assert f["actions_per_login_90d"] == pytest.approx(30 / 30)
    assert f["help_views_per_login_30d"] == pytest.approx(6 / 30)
    assert f["failed_help_share_30d"] == pytest.approx(3 / 6)
    assert f["failed_help_share_90d"] == pytest.approx(5 / 8)


def test_per_session_figures_are_nan_without_their_denominator():
    f = feats(state_of(*daily(range(20, 25), 2, "page_view")))
    for name in ("actions_per_login_14d", "actions_per_login_90d", "help_views_per_login_30d",
                 "failed_help_share_30d", "failed_help_share_90d"):
        assert math.isnan(f[name]), name
    g = feats(state_of(*daily(range(20, 25), 1), *daily(range(20, 25), 1, "page_view")))
    assert math.isnan(g["actions_per_login_14d"]) and g["actions_per_login_90d"] == 1.0


def test_new_features_keep_the_old_windows_unchanged():
    """Windows are built from age bands now; the 7/30/90-day counts and the trend must not move."""
    events = daily(range(0, 90, 3), 2) + daily(range(1, 90, 5), 1, "feature_use") + [login(T0 + DAY_MS)]
    f = feats(state_of(*events))
    logins = [d for d in range(0, 90, 3) for _ in range(2)]
    for w in (7, 30, 90):
        assert f[f"logins_{w}d"] == sum(1 for d in logins if d < w)
    assert f["logins_7d"] == 6  # the future bucket (scoring in the past) is ignored
    assert f["logins_trend_7d"] == pytest.approx((6 - 4) / 4)


def test_recency_is_nan_when_never_seen():
    f = feats(CustomerState("c1"))
    assert math.isnan(f["days_since_login"])
    assert math.isnan(f["days_since_activity"])


def test_recency_by_kind():
    s = state_of(login(T0 - 5 * DAY_MS), ev("interactions", "page_view", T0 - 36 * HOUR_MS))
    f = feats(s)
    assert f["days_since_login"] == pytest.approx(5.0)
    assert f["days_since_activity"] == pytest.approx(1.5)
    only_views = feats(state_of(ev("interactions", "page_view", T0 - DAY_MS)))
    assert math.isnan(only_views["days_since_login"])
    assert only_views["days_since_activity"] == pytest.approx(1.0)


def test_recency_uses_the_newest_event_even_when_it_arrives_first():
    s = state_of(login(T0 - DAY_MS), login(T0 - 3 * DAY_MS))
    assert feats(s)["days_since_login"] == pytest.approx(1.0)


def test_silence_decays_recency():
    s = state_of(login(T0))
    assert feats(s, T0 + 10 * DAY_MS)["days_since_login"] == pytest.approx(10.0)
    assert feats(s, T0 + 10 * DAY_MS)["logins_7d"] == 0.0
