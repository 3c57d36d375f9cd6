"""Train a churn model on one dataset: fit, calibrate, choose per-tier alert thresholds, measure.

The steps: split by *time* (:mod:`training.fit.split`), fit LightGBM for the number of rounds
rolling-origin folds chose (:mod:`training.fit.cv`, :mod:`training.fit.booster`), calibrate on
validation, choose per-tier alert thresholds from the weekly alert budget (:mod:`training.fit.thresholds`),
measure on validation and test. The two baselines (:mod:`training.fit.baselines`) are fitted on the same
split the same way (:func:`train_baselines`). Reading the log and saving to the registry is
:mod:`training.runs.from_log`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np

from pipeline.model.calibration import calibrate
from training.assess.measures import json_safe, scalar_metrics
from training.fit import cv
from training.fit.baselines import BASELINE_LABELS, LinearBaseline, baseline_inputs, fit_linear
from training.fit.booster import (IterationFn, fit_calibration, fit_early_stopping, fit_rounds, importance,
                                  lgb_params, raw_auc)
from training.fit.config import TrainConfig, TrainingError
from training.fit.split import TimeSplit, scores_for, time_split
from training.fit.thresholds import alert_volume, guide_thresholds, policy_rate
from training.rows.dataset import Dataset, row_selector


@dataclass
class TrainedModel:
    """Everything :func:`train` learned, before it is written anywhere."""

    booster: lgb.Booster
    calibration: dict[str, list[float]]
    thresholds: dict[str, float]
    split: TimeSplit
    metrics: dict[str, Any]
    rows: dict[str, dict[str, Any]]
    best_iteration: int
    params: dict[str, Any]
    seed: int
    feature_importance: dict[str, float]
    train_seconds: float
    #: How the thresholds were chosen (budget, expected volume and precision per tier on validation).
    guidance: dict[str, Any] = field(default_factory=dict)
    #: How the rounds (and settings) were chosen: the rolling-origin folds, or why there were none
    #: (:func:`training.fit.cv.choose`); saved as ``cv`` in meta.json and metrics.json.
    cv: dict[str, Any] = field(default_factory=dict)
    #: Calibrated scores aligned with the dataset's rows where validation and test need them (NaN
    #: elsewhere, see :func:`training.fit.split.scores_for`); kept for the evaluation report, never saved
    #: as is.
    scores: np.ndarray | None = field(default=None, repr=False)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, computed exactly as :class:`pipeline.model.scoring.Model` does."""
        raw = self.booster.predict(np.asarray(X, dtype=np.float64), num_threads=1)
        return calibrate(raw, self.calibration["x"], self.calibration["y"])



def train(dataset: Dataset, seed: int = 42, cfg: TrainConfig = TrainConfig(),
          on_iteration: IterationFn | None = None, on_fold: IterationFn | None = None) -> TrainedModel:
    """Fit, calibrate, choose thresholds and evaluate on one dataset. Deterministic for a seed.

    The number of boosting rounds (and, with ``cfg.search_candidates``, the LightGBM settings) comes
    from rolling-origin folds over the training + validation dates (:mod:`training.fit.cv`); the model
    is then fit on the training period. ``on_iteration(i, rounds)`` follows the final fit,
    ``on_fold(done, total)`` the folds'."""
    started = time.perf_counter()
    split = time_split(dataset.obs_ms, dataset.config.purge_days, cfg.fractions,
                       train_until_ms=cfg.train_until_ms, test_from_ms=cfg.test_from_ms)
    parts = {name: dataset.subset(getattr(split, name).mask(dataset.obs_ms))
             for name in ("train", "validation", "test")}
    for name in ("train", "validation"):
        _require_both_classes(parts[name], name)
    tr, va, te = parts["train"], parts["validation"], parts["test"]
    chosen = cv.choose(dataset, split, cfg, seed, len(tr), on_fold)
    positives = int(tr.y.sum())
    balance = (len(tr) - positives) / positives if cfg.balance_classes else 1.0
    params = lgb_params(chosen.cfg, seed, scale_pos_weight=balance)
    if chosen.rounds is None:  # too few dates for folds: early stopping on validation, as the record says
        booster = fit_early_stopping(tr, va, params, cfg, on_iteration)
        chosen.record["rounds"] = int(booster.best_iteration or booster.current_iteration())
    else:
        booster = fit_rounds(tr, params, chosen.rounds, on_iteration)
    calibration = fit_calibration(booster.predict(va.X, num_threads=1), va.y, cfg.calibration_blend)
    model = TrainedModel(booster=booster, calibration=calibration, thresholds={}, split=split, metrics={}, rows={},
                         best_iteration=booster.best_iteration or booster.current_iteration(), params=params,
                         seed=seed, feature_importance=importance(booster), train_seconds=0.0, cv=chosen.record)
    p_valid, p_test = model.predict(va.X), model.predict(te.X)
    scores = scores_for(dataset, split, model.predict)
    model.scores = scores
    model.thresholds, model.guidance = guide_thresholds(dataset, split, scores, cfg)
    model.metrics = {
        "test": _period_metrics(te, p_test, model.thresholds),
        "validation": _period_metrics(va, p_valid, model.thresholds),
    }
    for name in ("test", "validation"):
        rate = policy_rate(dataset, getattr(split, name), scores, model.thresholds)
        model.metrics[name]["alerts_per_week_per_1k"] = rate["share_per_1k_all"]
        model.metrics[name]["alert_precision"] = rate["precision"]
    model.metrics["test"]["roc_auc_raw"] = json_safe(raw_auc(booster, te))
    model.rows = {name: _row_counts(part) for name, part in parts.items()}
    model.rows["all"] = _row_counts(dataset)
    model.train_seconds = time.perf_counter() - started
    return model


def _require_both_classes(part: Dataset, name: str) -> None:
    positives = int(part.y.sum())
    if len(part) == 0 or positives == 0 or positives == len(part):
        raise TrainingError(f"the {name} period has {len(part)} rows and {positives} churn labels; it needs both "
                            f"churners and stayers — use a longer log or one with churn outcomes")



#: Most training rows a linear baseline is fitted on: a seeded sample beyond it. A logistic regression
#: with ~150 inputs has settled long before 100,000 rows, while its fit (and the imputed, scaled copies
#: of its input) grows with every row: on a 10M-event log the full training period is ~200,000 rows.
BASELINE_FIT_ROWS = 100_000


def _sample_rows(mask: np.ndarray, most: int, seed: int) -> np.ndarray:
    """Indices of ``mask``'s rows, or a seeded sample of ``most`` of them in row order."""
    idx = np.flatnonzero(mask)
    if idx.size <= most:
        return idx
    return np.sort(np.random.default_rng(seed).choice(idx, size=most, replace=False))


def train_baselines(dataset: Dataset, counts: np.ndarray, split: TimeSplit, cfg: TrainConfig = TrainConfig(),
                    seed: int = 42) -> dict[str, LinearBaseline]:
    """Fit both baselines on the model's training period, calibrate them on its validation period the
    same way as the model, and give them thresholds from the same alert budget — so every comparison
    in the report (ranking, calibration, alert volume, lead time) is like for like."""
    tr, va = split.train.mask(dataset.obs_ms), split.validation.mask(dataset.obs_ms)
    fit_rows = _sample_rows(tr, BASELINE_FIT_ROWS, seed)
    out: dict[str, LinearBaseline] = {}
    for name in BASELINE_LABELS:
        started = time.perf_counter()
        X, features = baseline_inputs(name, dataset.X, counts, dataset.features)
        if not features:
            continue  # e.g. per-type counts for a spec without types of its own
        baseline = fit_linear(name, X, dataset.y, features, seed, rows=fit_rows)
        va_rows = row_selector(va)  # one run of rows: a view, not a copy of the matrix
        baseline.calibration = fit_calibration(baseline.raw(X[va_rows]), dataset.y[va_rows], cfg.calibration_blend)
        scores = scores_for(dataset, split, baseline.predict, X)
        baseline.thresholds, baseline.guidance = guide_thresholds(dataset, split, scores, cfg)
        baseline.fit_seconds = round(time.perf_counter() - started, 3)
        out[name] = baseline
    return out



def _period_metrics(part: Dataset, p: np.ndarray, thresholds: dict[str, float]) -> dict[str, Any]:
    out = scalar_metrics(part.y, p)
    out["alerts"] = alert_volume(part, p, thresholds)
    return out



def _row_counts(part: Dataset) -> dict[str, Any]:
    positives = int(part.y.sum())
    return {"rows": len(part), "positives": positives,
            "positive_rate": round(positives / len(part), 5) if len(part) else None}

