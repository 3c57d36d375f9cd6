"""Rolling-origin cross-validation (training.fit.cv): the folds, the fallback, the rounds and the search.

On a synthetic dataset (a per-customer risk that drives the label, plus noise columns): no replay,
so each fit takes a fraction of a second.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.core.contract import DAY_MS
from training.fit.cv import (
    MAX_CANDIDATES,
    SEARCH_GRID,
    FoldFit,
    choose,
    rolling_origin_folds,
    rounds_from_folds,
    search_candidates,
    settings_of,
)
from training.fit.config import TrainConfig
from training.fit.split import time_split
from training.fit.train import train
from training.rows.dataset import Dataset, DatasetConfig

T0 = 1_699_920_000_000  # 2023-11-14T00:00:00Z


def weekly(n: int, per_date: int = 3) -> np.ndarray:
    return np.repeat(T0 + np.arange(n) * 7 * DAY_MS, per_date)


def synthetic(n_dates: int = 24, customers: int = 200, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    dates = T0 + np.arange(n_dates) * 7 * DAY_MS
    risk = rng.normal(size=customers)
    obs = np.repeat(dates, customers)
    r = np.tile(risk, n_dates)
    X = np.column_stack([r + rng.normal(scale=0.8, size=r.size), rng.normal(size=(r.size, 4))])
    y = (rng.random(r.size) < 1 / (1 + np.exp(-(1.6 * r - 3.2)))).astype(np.int64)
    ids = np.tile(np.array([f"c{i}" for i in range(customers)], dtype=object), n_dates)
    tiers = np.tile(np.where(np.arange(customers) % 8 == 0, "vip", "standard").astype(object), n_dates)
    return Dataset(X, y, ids, obs, tiers, int(dates[0]) - 28 * DAY_MS, int(dates[-1]) + 30 * DAY_MS,
                   DatasetConfig(), tuple(f"f{i}" for i in range(X.shape[1])))


# ---- the folds ----------------------------------------------------------------------------------
@pytest.mark.parametrize("n_dates,purge_days,step_days", [(40, 30, 7), (24, 30, 7), (90, 14, 1), (60, 30, 3)])
def test_folds_expand_keep_purge_gaps_and_never_overlap(n_dates: int, purge_days: int, step_days: int) -> None:
    obs = np.repeat(T0 + np.arange(n_dates) * step_days * DAY_MS, 2)
    split = time_split(obs, purge_days)
    folds, note = rolling_origin_folds(obs, split, 3)
    assert len(folds) == 3 and note is None
    for i, fold in enumerate(folds):
        assert fold.train.start_ms == split.train.start_ms  # expanding window: every fold from the start
        # the purge gap: no training row's label window (t, t + horizon] reaches into the validation block
        assert fold.train.end_ms + purge_days * DAY_MS <= fold.validation.start_ms
        assert fold.validation.end_ms <= split.validation.end_ms
        if i:
            prev = folds[i - 1]
            assert fold.train.end_ms > prev.train.end_ms and fold.train.dates > prev.train.dates
            assert prev.validation.end_ms < fold.validation.start_ms  # blocks do not overlap ...
            between = np.unique(obs[(obs > prev.validation.end_ms) & (obs < fold.validation.start_ms)])
            assert between.size == 0  # ... and leave no date out between them
    assert folds[-1].validation.end_ms == split.validation.end_ms
    assert folds[0].train.dates >= math.ceil(split.train.dates / 2)
    assert len({f.validation.dates for f in folds}) == 1  # equal blocks


def test_short_logs_get_fewer_folds_then_none_with_a_reason() -> None:
    seen = {}
    for n in range(11, 41):
        obs = weekly(n)
        folds, note = rolling_origin_folds(obs, time_split(obs, 30), 3)
        seen[n] = len(folds)
        if len(folds) == 3:
            assert note is None
        elif len(folds) == 2:
            assert note.startswith("3 folds asked, 2 fit")
        else:
            assert folds == [] and note.startswith("fewer than 2 folds fit")
    counts = [seen[n] for n in sorted(seen)]
    assert counts == sorted(counts) and counts[0] == 0 and counts[-1] == 3 and 2 in counts
    assert rolling_origin_folds(weekly(40), time_split(weekly(40), 30), 1) == ([], "cross-validation is off (cv_folds=1)")


def test_folds_need_churners_in_every_block() -> None:
    obs = weekly(40, per_date=50)
    split = time_split(obs, 30)
    y = np.zeros(obs.size, dtype=np.int64)
    y[::10] = 1  # 5 churn labels per date
    assert len(rolling_origin_folds(obs, split, 3, y)[0]) == 3
    folds, note = rolling_origin_folds(obs, split, 3, y, min_positives=1000)
    assert folds == [] and "churn labels" in note and "fewer than 1000" in note


# ---- rounds -------------------------------------------------------------------------------------
def test_rounds_are_the_median_of_scaled_best_iterations() -> None:
    fits = [FoldFit(100, 1000, 300, 20, 0.8, 0.3), FoldFit(150, 2000, 300, 20, 0.8, 0.3),
            FoldFit(90, 3000, 300, 20, 0.8, 0.3)]
    assert rounds_from_folds(fits, 3000, 1000) == 225  # median of 300, 225, 90
    assert rounds_from_folds(fits, 3000, 1000, scale=False) == 100
    assert rounds_from_folds(fits, 3000, 200) == 200  # clamped to max_rounds
    assert rounds_from_folds([FoldFit(0, 10, 1, 1, 0.5, 0.5)] * 2, 10, 50) == 1


def test_the_final_model_gets_the_rounds_the_folds_chose() -> None:
    ds = synthetic()
    model = train(ds, seed=1)
    cv = model.cv
    assert cv["fallback"] is None and len(cv["folds"]) == 3
    assert cv["rounds"] == model.best_iteration == model.booster.current_iteration()
    fits = [FoldFit(f["best_iteration"], f["train_rows"], 0, 0, 0.0, 0.0) for f in cv["folds"]]
    assert cv["rounds"] == rounds_from_folds(fits, model.rows["train"]["rows"], TrainConfig().max_rounds)
    for f in cv["folds"]:
        assert 0.5 < f["roc_auc"] <= 1 and f["validation_positives"] >= 10
    assert "search" not in cv  # off by default
    # validation keeps its role: calibration (and thresholds) are fitted there, not on the folds
    assert model.metrics["validation"]["rows"] == model.rows["validation"]["rows"]


def test_a_log_too_short_for_folds_falls_back_to_early_stopping_on_validation() -> None:
    ds = synthetic(n_dates=11)  # the fewest dates a time split takes: no room for two folds
    model = train(ds, seed=1)
    cv = model.cv
    assert cv["folds"] == [] and cv["fallback"].startswith("fewer than 2 folds fit")
    assert cv["rounds"] == model.best_iteration > 0
    assert "validation" in cv["rule"]
    off = train(ds, seed=1, cfg=TrainConfig(cv_folds=1))
    assert off.cv["fallback"] == "cross-validation is off (cv_folds=1)"
    assert off.booster.model_to_string() == model.booster.model_to_string()  # the same fit as without folds


# ---- the search ---------------------------------------------------------------------------------
def test_search_candidates_are_seeded_distinct_and_start_with_the_configured_settings() -> None:
    cfg = TrainConfig()
    a, b = search_candidates(cfg, 8, seed=3), search_candidates(cfg, 8, seed=3)
    assert a == b and len(a) == MAX_CANDIDATES and a[0] == settings_of(cfg)
    assert len({tuple(c.values()) for c in a}) == len(a)
    assert all(c[k] in SEARCH_GRID[k] for c in a[1:] for k in SEARCH_GRID)
    assert search_candidates(cfg, 8, seed=4) != a
    assert len(search_candidates(cfg, 50, seed=3)) == MAX_CANDIDATES


def test_search_is_deterministic_for_a_seed() -> None:
    ds = synthetic(customers=150)
    cfg = TrainConfig(search_candidates=3, search_seconds=1e9)
    a, b = train(ds, seed=2, cfg=cfg), train(ds, seed=2, cfg=cfg)
    sa, sb = a.cv["search"], b.cv["search"]
    assert sa == sb and len(sa["candidates"]) == 3 and sa["stopped"] is None
    best = max(range(3), key=lambda j: (sa["candidates"][j]["score"], -j))
    assert sa["chosen_index"] == best and sa["chosen"] == sa["candidates"][best]["settings"]
    assert all(a.params[k] == v for k, v in sa["chosen"].items())  # the final model has the chosen settings
    assert a.booster.model_to_string() == b.booster.model_to_string()


def test_search_stops_at_its_time_budget() -> None:
    ds = synthetic(customers=120)
    ticks = iter(range(0, 10_000, 100))  # every look at the clock: 100 s later
    split = time_split(ds.obs_ms, 30)
    cfg = TrainConfig(search_candidates=5, search_seconds=50)
    result = choose(ds, split, cfg, 7, int(split.train.mask(ds.obs_ms).sum()), clock=lambda: float(next(ticks)))
    search = result.record["search"]
    assert len(search["candidates"]) == 1 and search["chosen_index"] == 0 and not search["changed"]
    assert search["stopped"].startswith("time budget of 50 s spent after 1 of 5")
