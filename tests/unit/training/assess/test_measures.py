"""Ranking and probability measures on cases small enough to check by hand."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.assess.measures import (
    base_rate,
    brier,
    curves,
    scalar_metrics,
    pr_auc,
    reliability,
    roc_auc,
    score_quantile_threshold,
    top_k,
    top_n,
)


def test_perfect_and_inverted_ranking() -> None:
    y = [0, 0, 0, 1, 1]
    p = [0.1, 0.2, 0.3, 0.8, 0.9]
    assert roc_auc(y, p) == 1.0
    assert pr_auc(y, p) == 1.0
    assert roc_auc(y, [1 - v for v in p]) == 0.0


def test_uninformative_scores_give_half() -> None:
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5


def test_one_class_gives_nan_not_an_exception() -> None:
    assert math.isnan(roc_auc([0, 0, 0], [0.1, 0.2, 0.3]))
    assert math.isnan(pr_auc([1, 1], [0.1, 0.2]))
    assert math.isnan(base_rate([]))


def test_brier_known_value() -> None:
    # ((0.9-1)^2 + (0.2-0)^2 + (0.5-1)^2 + (0-0)^2) / 4
    assert brier([1, 0, 1, 0], [0.9, 0.2, 0.5, 0.0]) == pytest.approx((0.01 + 0.04 + 0.25 + 0.0) / 4)


def test_top_n_rounds_up_and_keeps_at_least_one() -> None:
    assert top_n(100, 10) == 10
    assert top_n(95, 10) == 10
    assert top_n(5, 10) == 1
    assert top_n(0, 10) == 0
    assert top_n(10, 100) == 10


def test_lift_maths() -> None:
    """100 rows, 20 churners (base rate 0.2); the top 10 rows hold 5 churners."""
    y = np.zeros(100, dtype=int)
    p = np.linspace(1.0, 0.01, 100)  # row i has the (i+1)-th highest score
    y[[0, 2, 4, 6, 8]] = 1  # 5 of the top 10
    y[50:65] = 1  # 15 more further down
    k = top_k(y, p, 10)
    assert (k.n, k.positives) == (10, 5)
    assert k.precision == 0.5
    assert k.recall == 5 / 20
    assert k.lift == pytest.approx(0.5 / 0.2)
    assert k.threshold == pytest.approx(p[9])


def test_perfect_ranking_has_maximal_lift() -> None:
    y = np.r_[np.ones(10, dtype=int), np.zeros(90, dtype=int)]
    p = np.r_[np.full(10, 0.9), np.full(90, 0.1)]
    k = top_k(y, p, 10)
    assert k.precision == 1.0 and k.recall == 1.0 and k.lift == pytest.approx(10.0)
    assert top_k(y, p, 20).recall == 1.0 and top_k(y, p, 20).precision == 0.5


def test_ties_at_the_cut_keep_the_count_exact() -> None:
    k = top_k([1, 0, 0, 0], [0.5, 0.5, 0.5, 0.5], 50)
    assert k.n == 2 and k.positives == 1  # stable order: the first two rows


def test_score_quantile_threshold_selects_the_top_share() -> None:
    p = np.arange(100) / 100.0
    thr = score_quantile_threshold(p, 8)
    assert (p >= thr).sum() == 8
    assert math.isnan(score_quantile_threshold([], 8))


def test_reliability_bins_cover_all_rows() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(1000)
    y = (rng.random(1000) < p).astype(int)
    bins = reliability(y, p, bins=10)
    assert sum(b["n"] for b in bins) == 1000
    assert [b["mean_predicted"] for b in bins] == sorted(b["mean_predicted"] for b in bins)
    assert all(abs(b["mean_predicted"] - b["observed_rate"]) < 0.12 for b in bins)


def test_scalar_metrics_are_json_ready_and_name_the_headline_numbers() -> None:
    out = scalar_metrics([0, 0, 0, 0], [0.1, 0.2, 0.3, 0.4])
    assert out["roc_auc"] is None and out["pr_auc"] is None  # NaN -> null
    orjson.dumps(out)  # no NaN, no numpy scalars
    out = scalar_metrics([0, 1, 0, 1, 0, 0, 0, 0, 0, 0], [0.1, 0.9, 0.2, 0.8, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1])
    assert out["roc_auc"] == 1.0
    assert out["lift_at_10"] == pytest.approx(1.0 / 0.2)
    assert out["precision_at_10"] == 1.0 and out["recall_at_10"] == 0.5
    assert set(out["top"]) == {"5pct", "10pct", "20pct"}
    assert out["base_rate"] == 0.2 and out["rows"] == 10 and out["positives"] == 2


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError):
        roc_auc([0, 1], [0.1])


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.floats(0, 1)), min_size=2, max_size=60))
def test_top_k_invariants(rows: list[tuple[int, float]]) -> None:
    y = np.array([r[0] for r in rows])
    p = np.array([r[1] for r in rows])
    for pct in (5, 10, 20, 100):
        k = top_k(y, p, pct)
        assert 1 <= k.n <= len(rows)
        assert 0 <= k.positives <= min(k.n, int(y.sum()))
        if y.sum():
            assert 0.0 <= k.recall <= 1.0
            assert k.lift == pytest.approx(k.precision / y.mean())
    assert top_k(y, p, 100).precision == pytest.approx(y.mean())


def test_curves_are_small_and_consistent() -> None:
    rng = np.random.default_rng(5)
    y = (rng.random(10_000) < 0.05).astype(int)
    p = np.clip(0.05 + 0.3 * y + rng.normal(0, 0.1, 10_000), 0, 1)
    c = curves(y, p, points=200)
    assert len(c["roc"]["fpr"]) <= 201 and c["roc"]["fpr"][0] == 0.0 and c["roc"]["tpr"][-1] == 1.0
    assert c["pr"]["recall"][0] == 1.0 and c["pr"]["recall"][-1] == 0.0
    gain = np.array(c["gain"]["captured"])
    assert gain[0] == 0.0 and gain[-1] == 1.0 and np.all(np.diff(gain) >= 0)
    assert sum(c["scores"]["churners"]) == y.sum() and sum(c["scores"]["stayers"]) == (1 - y).sum()
    # the gain curve agrees with the top-decile recall
    share = np.array(c["gain"]["share"])
    at10 = gain[np.argmin(np.abs(share - 0.1))]
    assert at10 == pytest.approx(top_k(y, p, 10).recall, abs=0.01)
    assert curves([0, 0], [0.1, 0.2])["roc"] is None  # one class: no ROC, but no exception
    orjson.dumps(c)

