"""Alert volume under the stream's policy, budget thresholds and lead time, on cases small enough to
check by hand."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from training.assess.alert_measures import alert_rate, lead_times, policy_alerts, propose_thresholds

DAY_MS = 86_400_000
T0 = 1_699_920_000_000


# ---- alert volume under the stream's policy ---------------------------------------------------------
def weekly_rows(scores: list[float], cid: str = "a", tier: str = "standard") -> tuple[np.ndarray, ...]:
    n = len(scores)
    return (np.array([cid] * n, dtype=object), T0 + np.arange(n) * 7 * DAY_MS, np.array([tier] * n, dtype=object),
            np.array(scores, dtype=float))


def test_policy_replay_counts_new_alerts_once_per_episode() -> None:
    """Threshold 0.5: alert at week 1; open (no re-alert) until it expires after 30 days; re-armed by the
    drop below 0.4 at week 3; the cool-down has passed by week 7, so a second new alert."""
    ids, obs, tiers, p = weekly_rows([0.1, 0.6, 0.7, 0.3, 0.6, 0.6, 0.1, 0.7])
    new = policy_alerts(ids, obs, tiers, p, {"standard": 0.5, "vip": 0.35})
    assert new.tolist() == [False, True, False, False, False, False, False, True]
    # order of the rows and other customers in between do not matter
    ids2, obs2, tiers2, p2 = weekly_rows([0.9] * 8, cid="b")
    perm = np.random.default_rng(0).permutation(16)
    both = [np.concatenate(pair)[perm] for pair in ((ids, ids2), (obs, obs2), (tiers, tiers2), (p, p2))]
    got = policy_alerts(*both, {"standard": 0.5})
    # b stays above the threshold: alerted once; the alert expires after 30 days, but without a drop below
    # the re-arm mark b is never alerted again
    expected = np.concatenate([new, [True, False, False, False, False, False, False, False]])[perm]
    assert got.tolist() == expected.tolist()


def test_alert_rate_counts_only_the_period_and_scales_per_week_and_1k() -> None:
    ids, obs, tiers, p = weekly_rows([0.1, 0.6, 0.7, 0.3, 0.6, 0.6, 0.1, 0.7])
    y = np.array([0, 0, 0, 0, 0, 0, 0, 1])
    counted = np.arange(8) >= 4  # weeks 0-3 only warm the policy up: the week-1 alert is not counted
    rate = alert_rate(ids, obs, tiers, y, p, {"standard": 0.5}, counted, cadence_days=7)
    assert rate["alerts"] == 1 and rate["weeks"] == 4 and rate["dates"] == 4
    assert rate["per_week_per_1k"] == pytest.approx(1000 * 1 / 4 / 1)
    assert rate["precision"] == 1.0
    assert rate["flagged_per_week_per_1k"] == pytest.approx(1000 * 3 / 4)  # rows above: weeks 4, 5, 7
    assert rate["tiers"]["standard"]["threshold"] == 0.5


def population(customers: int = 300, weeks: int = 12, seed: int = 0):
    """Customers with a persistent latent risk; scores follow it with noise; 10 % VIPs."""
    rng = np.random.default_rng(seed)
    risk = rng.beta(0.6, 8.0, customers)
    ids = np.repeat(np.array([f"c{i}" for i in range(customers)], dtype=object), weeks)
    obs = np.tile(T0 + np.arange(weeks) * 7 * DAY_MS, customers)
    tiers = np.repeat(np.where(np.arange(customers) % 10 == 0, "vip", "standard").astype(object), weeks)
    p = np.clip(np.repeat(risk, weeks) + rng.normal(0, 0.03, customers * weeks), 0, 1)
    y = (rng.random(customers * weeks) < np.repeat(risk, weeks)).astype(int)
    counted = obs >= T0 + 4 * 7 * DAY_MS
    return ids, obs, tiers, y, p, counted


def test_proposed_thresholds_spend_the_budget_without_exceeding_it() -> None:
    ids, obs, tiers, y, p, counted = population()
    g = propose_thresholds(ids, obs, tiers, y, p, counted, budget_per_1k_week=20.0, vip_ratio=0.7)
    thr = g["thresholds"]
    assert g["within_budget"] and not g["floor_binding"]
    assert thr["vip"] == pytest.approx(0.7 * thr["standard"], abs=1e-6)
    measured = alert_rate(ids, obs, tiers, y, p, thr, counted)
    assert measured["share_per_1k_all"] == pytest.approx(g["expected"]["share_per_1k_all"])
    assert 0.7 * 20.0 <= measured["share_per_1k_all"] <= 20.0  # spent, not exceeded
    # a slightly lower threshold (about one more standard row flagged) is over budget
    lower = {"standard": thr["standard"] - 1e-3, "vip": 0.7 * (thr["standard"] - 1e-3)}
    assert alert_rate(ids, obs, tiers, y, p, lower, counted)["share_per_1k_all"] > 20.0
    # a bigger budget buys lower thresholds and more alerts
    g2 = propose_thresholds(ids, obs, tiers, y, p, counted, budget_per_1k_week=40.0, vip_ratio=0.7)
    assert g2["thresholds"]["standard"] < thr["standard"]
    assert 20.0 < g2["expected"]["share_per_1k_all"] <= 40.0


def test_a_budget_below_one_alert_alerts_nobody() -> None:
    ids, obs, tiers, y, p, counted = population()
    g = propose_thresholds(ids, obs, tiers, y, p, counted, budget_per_1k_week=0.01)
    assert g["within_budget"] and g["expected"]["alerts"] == 0  # (it may flag customers alerted before the period)
    assert g["thresholds"]["standard"] > float(np.quantile(p[counted], 0.99))
    # scores of exactly 1 are over any budget even at threshold 1: nobody is alerted, and it says so
    g = propose_thresholds(ids, obs, tiers, y, np.ones_like(p), np.ones_like(counted), budget_per_1k_week=0.01)
    assert not g["within_budget"] and g["thresholds"] == {"vip": 1.0, "standard": 1.0}


def test_a_budget_above_the_peak_gets_the_peak_not_everybody() -> None:
    """With a budget no threshold can reach, the answer is the most new alerts the policy produces, not
    the lowest threshold (everybody above it, alerted once in the warm-up, no new alerts in the period)."""
    ids, obs, tiers, y, p, counted = population(customers=100)
    g = propose_thresholds(ids, obs, tiers, y, p, counted, budget_per_1k_week=10_000.0)
    assert g["expected"]["share_per_1k_all"] > 0
    everybody = {"standard": float(p.min()), "vip": 0.7 * float(p.min())}
    assert alert_rate(ids, obs, tiers, y, p, everybody, counted)["share_per_1k_all"] < g["expected"]["share_per_1k_all"]
    assert g["thresholds"]["standard"] > float(np.quantile(p[counted], 0.5))


def test_the_threshold_floor_leaves_budget_unspent_rather_than_alert_ordinary_risk() -> None:
    ids, obs, tiers, y, p, counted = population()
    free = propose_thresholds(ids, obs, tiers, y, p, counted, budget_per_1k_week=200.0)
    floored = propose_thresholds(ids, obs, tiers, y, p, counted, budget_per_1k_week=200.0, min_threshold=0.3)
    assert free["thresholds"]["standard"] < 0.3 <= floored["thresholds"]["standard"]
    assert floored["floor_binding"] and not free["floor_binding"]
    assert floored["expected"]["share_per_1k_all"] < free["expected"]["share_per_1k_all"]


def test_lead_times_by_hand() -> None:
    day = lambda d: T0 + d * DAY_MS  # noqa: E731
    rows = [  # customer, day, tier, score
        ("a", 60, "standard", 0.9),   # flagged, but more than a horizon before churn: not a call yet
        ("a", 75, "standard", 0.6),   # first flag within the horizon: 25 days ahead
        ("a", 90, "standard", 0.7),
        ("b", 80, "standard", 0.4),
        ("b", 95, "standard", 0.55),  # 5 days ahead
        ("b", 101, "standard", 0.99),  # after churning
        ("c", 90, "standard", 0.2),   # never flagged
        ("d", 88, "vip", 0.4),        # above the VIP threshold: 12 days ahead
        ("e", 80, "standard", 0.9),   # not a churner of the period
    ]
    ids = np.array([r[0] for r in rows], dtype=object)
    obs = np.array([day(r[1]) for r in rows])
    tiers = np.array([r[2] for r in rows], dtype=object)
    p = np.array([r[3] for r in rows])
    churn = {"a": day(100), "b": day(100), "c": day(100), "d": day(100)}
    out = lead_times(ids, obs, tiers, p, {"standard": 0.5, "vip": 0.35}, churn, horizon_days=30)
    assert out["churners"] == 4 and out["flagged"] == 3
    assert out["days"] == [5.0, 12.0, 25.0]
    assert out["median_days"] == 12.0 and out["flagged_share"] == 0.75
    assert out["share_flagged_early"] == 0.25  # only a, of all four churners
    none = lead_times(ids, obs, tiers, p, {"standard": 0.5}, {}, horizon_days=30)
    assert none["churners"] == 0 and none["median_days"] is None
    orjson.dumps(none)

