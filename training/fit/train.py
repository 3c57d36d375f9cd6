"""Train a churn model from an event log and put it in the registry.

The pipeline is: read + validate the log (:mod:`training.data.eventlog`), replay it through the stream's own
feature code into point-in-time snapshots (:mod:`training.rows.dataset`), split by *time*, fit LightGBM for
the number of rounds rolling-origin folds chose (:mod:`training.fit.cv`), calibrate, choose per-tier alert
thresholds, evaluate on a later period, save.
Two baselines (:mod:`training.fit.baselines`) are fitted on the same split in the same run, and an
evaluation report (:mod:`training.assess.report`: ``metrics.json``, ``report/report.html`` and plots) is
saved with the model.

Why the split looks the way it does: rows are snapshots of the same customers week after week, and a
label looks ``horizon_days`` ahead. A random split would put a customer's week-5 row in training and
week-6 row in test — nearly the same row with the same future — and report a fantasy. So observation
dates are cut into train / validation / test in time order, and ``horizon_days`` + ``label_delay_days``
of dates are purged before validation and before test, so no label of an earlier period needs data
from a later one: a label at T is settled by T + horizon, or, when a churn is only known some days
after its date (inactivity churn, ``--inactive-days N``: a delay of N), by T + horizon + N.
Validation drives calibration and thresholds (and the rolling-origin folds that choose the number of
boosting rounds reach into it); test is touched once, for the report.

Thresholds follow a CSM team's capacity: ``TrainConfig.alert_budget_per_1k_week`` new alerts per week
per 1,000 customers, measured on validation by replaying the stream's alert policy
(:func:`training.assess.measures.propose_thresholds`), VIPs flagged at a higher rate (a lower threshold).
"""

from __future__ import annotations

import hashlib
import math
import platform
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import lightgbm as lgb
import numpy as np
import orjson
import sklearn
from sklearn.isotonic import IsotonicRegression

from pipeline.core.contract import DAY_MS, format_ts
from pipeline.core.spec import DEFAULT_TOP_K, FeatureSpec, spec_of_meta
from pipeline.model.registry import Registry, sha256_file
from pipeline.model.scoring import ModelError, load_version
from training.fit.gate import Verdict, judge_baselines, judge_current
from training.fit.baselines import (
    BASELINE_LABELS,
    BASELINES_FILE,
    COUNT_FEATURES,
    COUNT_WINDOW_DAYS,
    LinearBaseline,
    baseline_inputs,
    baselines_json,
    count_matrix,
    event_counts,
    fit_linear,
    load_baselines,
)
from training.rows.dataset import Dataset, DatasetConfig, build_dataset, row_selector
from training.assess.measures import (
    alert_rate,
    evaluate,
    json_safe,
    propose_thresholds,
    roc_auc,
    score_quantile_threshold,
)
from training.data.eventlog import EventLog, read_events
from training.rows.labels import Labels
from training.assess.report import MIN_TEST_CHURNERS, MODEL, REPORT_HTML, Frame, cv_line, evaluation, render

METRICS_FILE = "metrics.json"
REPORT_DIR = "report"
TIERS = ("vip", "standard")


class TrainingError(RuntimeError):
    """The data cannot produce a trustworthy model; the message says what to change (one line)."""


@dataclass(frozen=True)
class TrainConfig:
    """Model and policy knobs. Defaults suit tens of thousands to millions of snapshot rows."""

    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    #: Chosen cut points (epoch ms), instead of the fractions where given: training ends at
    #: ``train_until_ms``, testing starts at ``test_from_ms`` (see :func:`time_split`).
    train_until_ms: int | None = None
    test_from_ms: int | None = None
    num_threads: int = 1
    learning_rate: float = 0.02
    #: Shallow trees and half the features per tree: over simulator seeds 7-12 at 600 customers x 200
    #: days (about 6,000 training rows, 250-400 churn labels) 4 leaves / 0.5 beat 15 / 0.8 on mean test
    #: ROC-AUC (0.840 vs 0.826) and top-decile lift (5.65 vs 5.44), and at 2,000 x 240 on both too.
    num_leaves: int = 4
    min_data_in_leaf: int = 40
    feature_fraction: float = 0.5
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    max_rounds: int = 1000
    early_stopping_rounds: int = 100
    #: Rolling-origin folds over the training + validation dates that choose the number of boosting
    #: rounds (:mod:`training.fit.cv`); below 2, or a log too short for 2 folds: early stopping on validation.
    cv_folds: int = 3
    #: Scale each fold's best iteration by final / fold training rows before the median (training.fit.cv).
    cv_scale_rounds: bool = True
    #: LightGBM settings scored on the folds (the configured ones + seeded random draws, at most 8);
    #: 0 or 1: no search. Off by default: it did not beat noise on the simulator (docs/evaluation.md).
    search_candidates: int = 0
    #: Time budget of the search: no further candidate is started after this many seconds.
    search_seconds: float = 120.0
    #: What the search maximises, averaged over the folds: ``roc_auc`` or ``pr_auc``.
    search_metric: str = "roc_auc"
    balance_classes: bool = True
    #: What the CSM team can work: new alerts per week per 1,000 customers (all tiers together). The
    #: per-tier thresholds are the lowest whose alert volume on validation stays within it. None: use
    #: ``top_pct`` instead (a fixed share of each tier's scores, blind to how many alerts that makes).
    alert_budget_per_1k_week: float | None = 25.0
    #: VIP threshold = this × the standard one: VIPs are alerted at a lower risk (the stream's default
    #: policy has 0.35 vs 0.5).
    vip_threshold_ratio: float = 0.7
    #: Floor under the standard threshold, as a multiple of the validation churn rate: an alert means at
    #: least this many times the average customer's risk, whatever budget is left unspent (on a small
    #: population a budget can exceed the customers at real risk).
    min_threshold_lift: float = 2.0
    #: Only when ``alert_budget_per_1k_week`` is None: alert the top X % of validation scores per tier.
    top_pct: dict[str, float] = field(default_factory=lambda: {"vip": 15.0, "standard": 8.0})
    #: Blend of the identity into the isotonic map so it is strictly increasing (see _calibration).
    calibration_blend: float = 1e-4


# ---- time split ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    """A run of observation dates, inclusive."""

    start_ms: int
    end_ms: int
    dates: int

    def mask(self, obs_ms: np.ndarray) -> np.ndarray:
        return (obs_ms >= self.start_ms) & (obs_ms <= self.end_ms)

    def to_json(self) -> dict[str, Any]:
        return {"start": format_ts(self.start_ms), "end": format_ts(self.end_ms), "dates": self.dates}


@dataclass(frozen=True)
class TimeSplit:
    train: Period
    validation: Period
    test: Period
    purge_days: int

    def to_json(self) -> dict[str, Any]:
        return {"train": self.train.to_json(), "validation": self.validation.to_json(),
                "test": self.test.to_json(), "purge_days": self.purge_days}


def period_rows(obs_ms: np.ndarray, period: Period, context_days: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks over ``obs_ms``: the rows of ``period`` plus those of the ``context_days`` before it, and
    the period's own rows (a subset of the first).

    Alert volume and lead time need each customer's recent history: the alert policy remembers who was
    alerted in the weeks before, and a churner early in the period was flaggable before it started.
    With ``context_days`` = the purge gap (horizon + label delay, :attr:`DatasetConfig.purge_days`), that
    history is the gap between periods, whose rows no model was fitted or calibrated on.
    """
    start = period.start_ms - context_days * DAY_MS
    return (obs_ms > start) & (obs_ms <= period.end_ms), period.mask(obs_ms)


def scores_for(dataset: Dataset, split: TimeSplit, predict: Callable[[np.ndarray], np.ndarray],
               X: np.ndarray | None = None) -> np.ndarray:
    """A scorer's predictions aligned with ``dataset``'s rows, computed only where the validation and
    test periods (with their context) need them; NaN elsewhere. ``X`` replaces the feature matrix for
    a scorer with other inputs (the event-count baseline)."""
    X = dataset.X if X is None else X
    need = np.zeros(len(dataset), dtype=bool)
    for period in (split.validation, split.test):
        need |= period_rows(dataset.obs_ms, period, dataset.config.purge_days)[0]
    out = np.full(len(dataset), np.nan)
    if need.any():
        rows = row_selector(need)  # validation through test is one run of rows: a view, not a copy
        out[rows] = predict(X[rows])
    return out


def time_split(obs_ms: np.ndarray, purge_days: int,
               fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), *,
               train_until_ms: int | None = None, test_from_ms: int | None = None) -> TimeSplit:
    """Cut the observation dates into train / validation / test with a purge gap before each later part.

    The gaps are taken out of the date count first and the rest is shared by ``fractions``, so a
    short log loses its gap dates rather than its whole validation period. A data scientist who knows
    their product's calendar chooses the cuts instead: ``test_from_ms`` starts the test period (a
    launch, a pricing change, "the last quarter"), ``train_until_ms`` ends training; whatever lies
    between, purge gaps apart, is validation, and a cut not given is placed by the fractions.
    """
    if train_until_ms is not None or test_from_ms is not None:
        return _chosen_split(np.unique(obs_ms), purge_days, fractions, train_until_ms, test_from_ms)
    dates = np.unique(obs_ms)
    purge_ms = purge_days * DAY_MS
    step = int(np.median(np.diff(dates))) if dates.size > 1 else DAY_MS
    gap = max(0, math.ceil(purge_ms / step) - 1)
    usable = dates.size - 2 * gap
    total = sum(fractions)
    n_valid = max(1, round(fractions[1] / total * usable))
    n_test = max(1, round(fractions[2] / total * usable))
    n_train = usable - n_valid - n_test  # training absorbs the rounding: it has the most rows to spare
    if usable < 3 or n_train < 1:
        raise TrainingError(
            f"the log gives only {dates.size} observation dates; a time split with {purge_days}-day purge gaps "
            f"needs at least {2 * gap + 3} — use a longer event log (or a shorter horizon or inactivity)")
    train = dates[:n_train]
    valid_from = int(np.searchsorted(dates, train[-1] + purge_ms, side="left"))
    valid = dates[valid_from:valid_from + n_valid]
    test_from = int(np.searchsorted(dates, valid[-1] + purge_ms, side="left")) if valid.size else dates.size
    test = dates[test_from:]
    if valid.size == 0 or test.size == 0:
        raise TrainingError(f"the log's observation dates cannot hold train, validation and test periods "
                            f"{purge_days} days apart — use a longer event log")
    return TimeSplit(_period(train), _period(valid), _period(test), purge_days)


def _chosen_split(dates: np.ndarray, purge_days: int, fractions: tuple[float, float, float],
                  train_until_ms: int | None, test_from_ms: int | None) -> TimeSplit:
    purge_ms = purge_days * DAY_MS
    if train_until_ms is not None and test_from_ms is not None and test_from_ms <= train_until_ms + 2 * purge_ms:
        raise TrainingError(f"--test-from must be more than two {purge_days}-day purge gaps after --train-until "
                            f"(validation lies between them)")
    if test_from_ms is None:  # the fractions place the test period within what follows training
        rest = dates[dates > int(train_until_ms) + purge_ms]  # type: ignore[arg-type]
        share = fractions[2] / (fractions[1] + fractions[2])
        n_test = max(1, round(share * max(0, rest.size - math.ceil(purge_ms / _step(dates)) + 1)))
        test_from_ms = int(rest[-n_test]) if rest.size else int(dates[-1]) + 1
    test = dates[dates >= test_from_ms]
    before = dates[dates <= (int(test[0]) if test.size else test_from_ms) - purge_ms]
    if train_until_ms is None:
        share = fractions[0] / (fractions[0] + fractions[1])
        usable = before.size - max(0, math.ceil(purge_ms / _step(dates)) - 1)
        n_train = max(1, round(share * usable))
        train_until_ms = int(before[min(n_train, before.size) - 1]) if before.size else int(dates[0]) - 1
    train = before[before <= train_until_ms]
    valid = before[before >= int(train[-1]) + purge_ms] if train.size else before[:0]
    for name, part in (("training", train), ("validation", valid), ("test", test)):
        if part.size == 0:
            raise TrainingError(f"the chosen split leaves no observation dates for {name} (dates "
                                f"{format_ts(int(dates[0]))[:10]}..{format_ts(int(dates[-1]))[:10]}, "
                                f"{purge_days}-day purge gaps)")
    return TimeSplit(_period(train), _period(valid), _period(test), purge_days)


PERIOD_NAMES = ("train", "validation", "test")


def period_labels(obs_ms: np.ndarray, split: TimeSplit) -> np.ndarray:
    """Each row's part of ``split``: ``train``, ``validation``, ``test``, or ``purge`` for the rows of
    the gaps between them, which no period uses (``dataset --train-until/--test-from``)."""
    out = np.full(len(obs_ms), "purge", dtype=object)
    for name in PERIOD_NAMES:
        out[getattr(split, name).mask(np.asarray(obs_ms))] = name
    return out


def _step(dates: np.ndarray) -> int:
    return int(np.median(np.diff(dates))) if dates.size > 1 else DAY_MS


def _period(dates: np.ndarray) -> Period:
    return Period(int(dates[0]), int(dates[-1]), int(dates.size))


# ---- model --------------------------------------------------------------------------------------
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
    #: elsewhere, see :func:`scores_for`); kept for the evaluation report, never saved as is.
    scores: np.ndarray | None = field(default=None, repr=False)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, computed exactly as :class:`pipeline.model.scoring.Model` does."""
        raw = self.booster.predict(np.asarray(X, dtype=np.float64), num_threads=1)
        return np.interp(raw, self.calibration["x"], self.calibration["y"])


IterationFn = Callable[[int, int], None]


#: LightGBM places its feature bins from a sample of the training rows (200,000 by default). The sample
#: is held as values while the bins are built: +255 MB for 130,000 rows x 154 features, +125 MB with
#: 50,000, which place a feature's (at most 255) bins about as well. Below 50,000 rows nothing changes.
DATASET_PARAMS = {"bin_construct_sample_cnt": 50_000}


def lgb_params(cfg: TrainConfig, seed: int, scale_pos_weight: float) -> dict[str, Any]:
    return {
        "objective": "binary",
        # Stop on the class-weighted validation log-loss (see _fit); AUC is reported alongside.
        "metric": ["binary_logloss", "auc"],
        "first_metric_only": True,
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "min_data_in_leaf": cfg.min_data_in_leaf,
        "feature_fraction": cfg.feature_fraction,
        "bagging_fraction": cfg.bagging_fraction,
        "bagging_freq": 1,
        "lambda_l2": cfg.lambda_l2,
        "scale_pos_weight": scale_pos_weight,
        "num_threads": cfg.num_threads,
        "deterministic": True,
        "force_row_wise": True,  # deterministic=True needs a fixed histogram layout
        "seed": seed,
        "verbose": -1,
    }


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
    from training.fit import cv  # training.fit.cv imports this module

    chosen = cv.choose(dataset, split, cfg, seed, len(tr), on_fold)
    positives = int(tr.y.sum())
    balance = (len(tr) - positives) / positives if cfg.balance_classes else 1.0
    params = lgb_params(chosen.cfg, seed, scale_pos_weight=balance)
    if chosen.rounds is None:  # too few dates for folds: early stopping on validation, as the record says
        booster = _fit(tr, va, params, cfg, on_iteration)
        chosen.record["rounds"] = int(booster.best_iteration or booster.current_iteration())
    else:
        booster = _fit_rounds(tr, params, chosen.rounds, on_iteration)
    calibration = _calibration(booster.predict(va.X, num_threads=1), va.y, cfg.calibration_blend)
    model = TrainedModel(booster=booster, calibration=calibration, thresholds={}, split=split, metrics={}, rows={},
                         best_iteration=booster.best_iteration or booster.current_iteration(), params=params,
                         seed=seed, feature_importance=_importance(booster), train_seconds=0.0, cv=chosen.record)
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
    model.metrics["test"]["roc_auc_raw"] = json_safe(_raw_auc(booster, te))
    model.rows = {name: _row_counts(part) for name, part in parts.items()}
    model.rows["all"] = _row_counts(dataset)
    model.train_seconds = time.perf_counter() - started
    return model


def _require_both_classes(part: Dataset, name: str) -> None:
    positives = int(part.y.sum())
    if len(part) == 0 or positives == 0 or positives == len(part):
        raise TrainingError(f"the {name} period has {len(part)} rows and {positives} churn labels; it needs both "
                            f"churners and stayers — use a longer log or one with churn outcomes")


def _fit(tr: Dataset, va: Dataset, params: dict[str, Any], cfg: TrainConfig,
         on_iteration: IterationFn | None) -> lgb.Booster:
    """Early stopping watches the validation log-loss weighted exactly like the training loss.

    Unweighted, the log-loss punishes the up-weighting of churners and stops almost at once; AUC over
    a validation period with a few dozen churners moves in steps and, on simulated data, stopped one
    run after 3 trees (test AUC 0.65 vs 0.71 with the weighted loss; over six simulator seeds the
    weighted loss had the best worst case at the same mean).
    """
    names = list(tr.features)
    weight = np.where(va.y == 1, params["scale_pos_weight"], 1.0)
    d_train = lgb.Dataset(tr.X, label=tr.y, feature_name=names, free_raw_data=True, params=DATASET_PARAMS)
    d_valid = lgb.Dataset(va.X, label=va.y, weight=weight, feature_name=names, reference=d_train,
                          free_raw_data=True, params=DATASET_PARAMS)
    callbacks: list[Any] = [lgb.early_stopping(cfg.early_stopping_rounds, first_metric_only=True, verbose=False)]
    if on_iteration is not None:
        callbacks.append(lambda env: on_iteration(env.iteration + 1, env.end_iteration))
    return lgb.train(params, d_train, num_boost_round=cfg.max_rounds, valid_sets=[d_valid],
                     valid_names=["validation"], callbacks=callbacks)


def _fit_rounds(tr: Dataset, params: dict[str, Any], rounds: int, on_iteration: IterationFn | None) -> lgb.Booster:
    """The final fit for a number of rounds the folds chose: no validation set, no early stopping."""
    d_train = lgb.Dataset(tr.X, label=tr.y, feature_name=list(tr.features), free_raw_data=True,
                          params=DATASET_PARAMS)
    callbacks: list[Any] = []
    if on_iteration is not None:
        callbacks.append(lambda env: on_iteration(env.iteration + 1, env.end_iteration))
    return lgb.train(params, d_train, num_boost_round=rounds, callbacks=callbacks)


def _calibration(raw: np.ndarray, y: np.ndarray, blend: float) -> dict[str, list[float]]:
    """Isotonic map from raw booster output to churn probability, as interpolation breakpoints.

    Isotonic regression is a step function: whole ranges of raw scores get the same probability, which
    would turn "the top 8 %" into "everybody on one plateau" and throw away the booster's ranking.
    Blending ``blend`` (1e-4) of the identity into the breakpoints makes the map strictly increasing,
    so ranking is preserved while no probability moves by more than ``blend``. End points at raw 0 and
    1 make the map total (raw scores are probabilities).
    """
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit(raw, y)
    xs = [float(v) for v in iso.X_thresholds_]
    ys = [float(v) for v in iso.y_thresholds_]
    if xs[0] > 0.0:
        xs.insert(0, 0.0)
        ys.insert(0, ys[0])
    if xs[-1] < 1.0:
        xs.append(1.0)
        ys.append(ys[-1])
    x_arr, y_arr = np.asarray(xs), np.asarray(ys)
    y_arr = (1.0 - blend) * y_arr + blend * x_arr
    return {"x": x_arr.tolist(), "y": np.clip(y_arr, 0.0, 1.0).tolist()}


def policy_rate(dataset: Dataset, period: Period, scores: np.ndarray, thresholds: dict[str, float]) -> dict[str, Any]:
    """:func:`training.assess.measures.alert_rate` over one period, with the purge gap before it as warm-up."""
    rows, counted = period_rows(dataset.obs_ms, period, dataset.config.purge_days)
    return alert_rate(dataset.customer_ids[rows], dataset.obs_ms[rows], dataset.tiers[rows], dataset.y[rows],
                      scores[rows], thresholds, counted[rows], dataset.config.cadence_days)


def guide_thresholds(dataset: Dataset, split: TimeSplit, scores: np.ndarray,
                     cfg: TrainConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Per-tier thresholds for a scorer, chosen on validation (plus the purge gap before it as the alert
    policy's warm-up), and the record of how: the budget, the expected weekly volume and precision.
    ``scores`` is aligned with ``dataset`` (see :func:`scores_for`)."""
    rows, counted = period_rows(dataset.obs_ms, split.validation, dataset.config.purge_days)
    ids, obs, tiers, y, p = (dataset.customer_ids[rows], dataset.obs_ms[rows], dataset.tiers[rows],
                             dataset.y[rows], scores[rows])
    counted = counted[rows]
    cadence = dataset.config.cadence_days
    if cfg.alert_budget_per_1k_week is None:
        thresholds = choose_thresholds(p[counted], tiers[counted], cfg.top_pct)
        rate = alert_rate(ids, obs, tiers, y, p, thresholds, counted, cadence)
        return thresholds, json_safe({"budget_per_1k_week": None, "top_pct": cfg.top_pct, "chosen_on": "validation",
                                      "thresholds": thresholds, "expected": rate})
    return budget_guidance(ids, obs, tiers, y, p, counted, cfg.alert_budget_per_1k_week, cfg, cadence,
                           chosen_on="validation")


def budget_guidance(ids: np.ndarray, obs: np.ndarray, tiers: np.ndarray, y: np.ndarray, p: np.ndarray,
                    counted: np.ndarray, budget: float, cfg: TrainConfig = TrainConfig(), cadence_days: int = 7,
                    chosen_on: str = "validation") -> tuple[dict[str, float], dict[str, Any]]:
    """:func:`training.assess.measures.propose_thresholds` with this config's VIP ratio and threshold floor
    (``min_threshold_lift`` × the churn rate of the counted rows)."""
    counted = np.asarray(counted, dtype=bool)
    rate = float(y[counted].mean()) if counted.any() else 0.0
    guidance = propose_thresholds(ids, obs, tiers, y, p, counted, budget, cfg.vip_threshold_ratio, cadence_days,
                                  min_threshold=round(min(1.0, cfg.min_threshold_lift * rate), 6))
    guidance["chosen_on"] = chosen_on
    guidance["base_rate"] = rate
    return dict(guidance["thresholds"]), json_safe(guidance)


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
        baseline.calibration = _calibration(baseline.raw(X[va_rows]), dataset.y[va_rows], cfg.calibration_blend)
        scores = scores_for(dataset, split, baseline.predict, X)
        baseline.thresholds, baseline.guidance = guide_thresholds(dataset, split, scores, cfg)
        baseline.fit_seconds = round(time.perf_counter() - started, 3)
        out[name] = baseline
    return out


def choose_thresholds(p: np.ndarray, tiers: np.ndarray, top_pct: dict[str, float]) -> dict[str, float]:
    """Per-tier score thresholds that alert about ``top_pct[tier]`` % of that tier's customers.

    A tier absent from the data falls back to the whole population's quantile. VIPs must be alerted at
    least as early as standard customers, so their threshold is capped at the standard one.
    """
    out: dict[str, float] = {}
    for tier, pct in top_pct.items():
        scores = p[tiers == tier]
        out[tier] = score_quantile_threshold(scores if scores.size else p, pct)
    if "vip" in out and "standard" in out:
        out["vip"] = min(out["vip"], out["standard"])
    return {tier: round(float(v), 6) for tier, v in out.items()}


def _period_metrics(part: Dataset, p: np.ndarray, thresholds: dict[str, float]) -> dict[str, Any]:
    out = evaluate(part.y, p)
    out["alerts"] = alert_volume(part, p, thresholds)
    return out


def alert_volume(part: Dataset, p: np.ndarray, thresholds: dict[str, float]) -> dict[str, Any]:
    """How many snapshots would cross their tier threshold, per observation (≈ per week at the default
    cadence), and how many of those churn — the CSM workload the thresholds imply."""
    default = thresholds.get("standard", 0.5)
    cut = np.array([thresholds.get(t, default) for t in part.tiers], dtype=np.float64)
    alerted = p >= cut if len(part) else np.zeros(0, dtype=bool)
    dates = max(1, np.unique(part.obs_ms).size)
    out: dict[str, Any] = {}
    for tier in sorted(set(part.tiers.tolist()) | set(thresholds)):
        in_tier = part.tiers == tier
        hits = alerted & in_tier
        out[tier] = {
            "rows": int(in_tier.sum()),
            "alerted": int(hits.sum()),
            "alert_rate": float(hits.sum() / in_tier.sum()) if in_tier.any() else None,
            "per_observation": float(hits.sum() / dates),
            "precision": float(part.y[hits].mean()) if hits.any() else None,
        }
    return json_safe(out)


def _raw_auc(booster: lgb.Booster, part: Dataset) -> float:
    return roc_auc(part.y, booster.predict(part.X, num_threads=1))


def _importance(booster: lgb.Booster, top: int = 15) -> dict[str, float]:
    gains = booster.feature_importance(importance_type="gain")
    order = np.argsort(-gains, kind="stable")[:top]
    total = float(gains.sum()) or 1.0
    names = booster.feature_name()
    return {names[i]: round(float(gains[i]) / total, 4) for i in order if gains[i] > 0}


def _row_counts(part: Dataset) -> dict[str, Any]:
    positives = int(part.y.sum())
    return {"rows": len(part), "positives": positives,
            "positive_rate": round(positives / len(part), 5) if len(part) else None}


# ---- the evaluation report ----------------------------------------------------------------------
SCORES_FILE = "scores.npz"


def churners_in(customer_ids: np.ndarray, obs_ms: np.ndarray, y: np.ndarray, counted: np.ndarray,
                labels: Labels, horizon_days: int | None = None, delay_days: int = 0) -> dict[str, int]:
    """The churners of a period — customers with a positive row in it — and the churn instant that made
    their first positive row positive (:meth:`Labels.labelling_churn`; without ``horizon_days``, the
    first churn after that row)."""
    out: dict[str, int] = {}
    pos = np.flatnonzero(np.asarray(counted, dtype=bool) & (np.asarray(y) == 1))
    for i in pos[np.argsort(obs_ms[pos], kind="stable")]:
        cid = str(customer_ids[i])
        if cid in out:
            continue
        if horizon_days is not None:
            churn = labels.labelling_churn(cid, int(obs_ms[i]), horizon_days * DAY_MS, delay_days * DAY_MS)
            if churn is not None:
                out[cid] = churn
            continue
        times = labels.churns.get(cid) or []
        after = [t for t in times if t > int(obs_ms[i])]
        if after:
            out[cid] = after[0]
    return out


def frame_for(dataset: Dataset, rows: np.ndarray, counted: np.ndarray, labels: Labels) -> Frame:
    """A :class:`training.assess.report.Frame` over ``dataset[rows]``, ``counted`` (a subset of ``rows``) being
    the period measured and the rest its warm-up context."""
    ids, obs, y = dataset.customer_ids[rows], dataset.obs_ms[rows], dataset.y[rows]
    c = counted[rows]
    cfg = dataset.config
    return Frame(ids, obs, dataset.tiers[rows], y, c,
                 churners_in(ids, obs, y, c, labels, cfg.horizon_days, cfg.label_delay_days),
                 cfg.cadence_days, cfg.horizon_days)


def _baseline_scores(dataset: Dataset, counts: np.ndarray, baseline: LinearBaseline,
                     rows: np.ndarray | None = None) -> np.ndarray:
    X, _ = baseline_inputs(baseline.name, dataset.X, counts, dataset.features)
    return baseline.predict(X if rows is None else X[rows])


def evaluation_of_run(dataset: Dataset, counts: np.ndarray, model: TrainedModel,
                      baselines: dict[str, LinearBaseline], labels: Labels) -> tuple[dict[str, Any], dict[str, Any]]:
    """The test-period evaluation of a training run (model and baselines), and the arrays behind it
    (validation and test frames with every scorer's scores) for ``scores.npz``."""
    split = model.split
    frames: dict[str, tuple[Frame, dict[str, np.ndarray]]] = {}
    for name in ("validation", "test"):
        rows, counted = period_rows(dataset.obs_ms, getattr(split, name), dataset.config.purge_days)
        frame = frame_for(dataset, rows, counted, labels)
        scores = {MODEL: model.scores[rows] if model.scores is not None else model.predict(dataset.X[rows])}
        for bname, baseline in baselines.items():
            scores[bname] = _baseline_scores(dataset, counts, baseline, rows)
        frames[name] = (frame, scores)
    test_frame, test_scores = frames["test"]
    scorers = {MODEL: {"p": test_scores[MODEL], "thresholds": model.thresholds, "guidance": model.guidance,
                       "importance": model.feature_importance}}
    for bname, baseline in baselines.items():
        scorers[bname] = {"p": test_scores[bname], "thresholds": baseline.thresholds, "guidance": baseline.guidance,
                          "importance": baseline.importance()}
    period = {"name": "test", **split.test.to_json()}
    return evaluation(test_frame, period, scorers), frames


def save_frames(path: Path, frames: dict[str, tuple[Frame, dict[str, np.ndarray]]]) -> None:
    """Validation and test rows with every scorer's scores, as plain arrays (no pickle): enough to
    re-propose thresholds for another budget and re-evaluate them without the event log."""
    arrays: dict[str, np.ndarray] = {}
    for name, (frame, scores) in frames.items():
        arrays[f"{name}.customer_ids"] = frame.customer_ids.astype(str)
        arrays[f"{name}.obs_ms"] = frame.obs_ms.astype(np.int64)
        arrays[f"{name}.tiers"] = frame.tiers.astype(str)
        arrays[f"{name}.y"] = frame.y.astype(np.int8)
        arrays[f"{name}.counted"] = frame.counted.astype(bool)
        arrays[f"{name}.churn_ids"] = np.asarray(list(frame.churn_ms), dtype=str)
        arrays[f"{name}.churn_ms"] = np.asarray(list(frame.churn_ms.values()), dtype=np.int64)
        arrays[f"{name}.cadence_horizon"] = np.asarray([frame.cadence_days, frame.horizon_days], dtype=np.int64)
        for scorer, p in scores.items():
            arrays[f"{name}.score.{scorer}"] = np.asarray(p, dtype=np.float64)
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def load_frames(path: Path) -> dict[str, tuple[Frame, dict[str, np.ndarray]]]:
    out: dict[str, tuple[Frame, dict[str, np.ndarray]]] = {}
    with np.load(path, allow_pickle=False) as z:
        names = sorted({k.split(".", 1)[0] for k in z.files})
        for name in names:
            cadence, horizon = (int(v) for v in z[f"{name}.cadence_horizon"])
            frame = Frame(z[f"{name}.customer_ids"].astype(object), z[f"{name}.obs_ms"], z[f"{name}.tiers"].astype(object),
                          z[f"{name}.y"].astype(np.int64), z[f"{name}.counted"],
                          dict(zip(z[f"{name}.churn_ids"].tolist(), (int(t) for t in z[f"{name}.churn_ms"]))),
                          cadence, horizon)
            prefix = f"{name}.score."
            scores = {k[len(prefix):]: z[k] for k in z.files if k.startswith(prefix)}
            out[name] = (frame, scores)
    return out


# ---- from a log to the registry -----------------------------------------------------------------
@dataclass
class TrainResult:
    version: str
    promoted: bool
    registry_root: Path
    metrics: dict[str, Any]
    thresholds: dict[str, float]
    rows: dict[str, dict[str, Any]]
    timings: dict[str, float]
    log_stats: dict[str, Any]
    #: Headline test-period figures per scorer (``model`` and the baselines), see training.assess.report.
    comparison: dict[str, dict[str, Any]] = field(default_factory=dict)
    guidance: dict[str, Any] = field(default_factory=dict)
    #: churners in the test period: below MIN_TEST_CHURNERS every figure is mostly noise
    test_churners: int | None = None
    #: why a model that was to be promoted was not (None: it was, or promotion was not asked for)
    not_promoted: str | None = None
    #: how the boosting rounds (and settings) were chosen, see :func:`training.fit.cv.choose`
    cv: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.registry_root / self.version

    @property
    def report_path(self) -> Path:
        return self.path / REPORT_DIR / REPORT_HTML

    def summary(self) -> str:
        test = self.metrics["test"]
        t = self.timings

        def f(key: str, fmt: str) -> str:
            value = test.get(key)
            return format(value, fmt) if isinstance(value, (int, float)) else "n/a"

        state = "promoted" if self.promoted else "saved, not promoted"
        text = (f"model {self.version} ({state}) in {self.registry_root}: test ROC-AUC {f('roc_auc', '.3f')}, "
                f"PR-AUC {f('pr_auc', '.3f')}, lift@10% {f('lift_at_10', '.2f')}, precision@10% "
                f"{f('precision_at_10', '.3f')} on {test.get('rows', 0):,} rows; "
                f"{self.log_stats.get('events', 0):,} events replayed at {t['replay_events_per_s']:,.0f}/s, "
                f"total {t['total_s']:.1f}s" + (f" (of which conversion {t['convert_s']:.1f}s)" if "convert_s" in t else ""))
        for name, c in self.comparison.items():
            if name == MODEL:
                continue
            auc, lift = c.get("roc_auc"), c.get("lift_at_10")
            text += (f"\n  baseline {name}: ROC-AUC {auc:.3f}" if isinstance(auc, float) else f"\n  baseline {name}: ROC-AUC n/a")
            text += f", lift@10% {lift:.2f}" if isinstance(lift, float) else ", lift@10% n/a"
        if self.cv:
            text += f"\n  {cv_line(self.cv)}"
        if self.comparison:
            text += f"\n  report: {self.report_path}"
        warning = few_churners_warning(self.test_churners, "use a longer log or a longer --horizon-days")
        if warning:
            text += f"\n  {warning}"
        if self.not_promoted:
            text += f"\n  {self.not_promoted}"
        return text


def few_churners_warning(churners: int | None, advice: str, period: str = "test") -> str | None:
    """The loud line ``train`` and ``evaluate`` print when a period has fewer than MIN_TEST_CHURNERS
    churners (None otherwise): with so few, every figure is mostly noise."""
    if churners is None or churners >= MIN_TEST_CHURNERS:
        return None
    return (f"WARNING: the {period} period has only {churners} churners: every figure above is mostly noise "
            f"(see the intervals); {advice}")


def _progress(enabled: bool):  # -> rich.progress.Progress | None
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=False)


def train_from_log(path: Path | str, registry: Registry, *, horizon_days: int = 30, cadence_days: int = 7,
                   seed: int = 42, promote: bool = True, progress: bool = True,
                   dataset_config: DatasetConfig | None = None, config: TrainConfig = TrainConfig(),
                   spec: FeatureSpec | None = None, top_k: int = DEFAULT_TOP_K, strict: bool = False,
                   gate: bool = False, force_promote: bool = False, as_of_ms: int | None = None,
                   label_delay_days: int | None = None) -> TrainResult:
    """Read ``path``, build the point-in-time dataset (and the baselines' 28-day counts), train the
    model and the baselines, evaluate them on the test period, save model, metadata, baselines
    and the evaluation report to ``registry`` as one new version and (optionally) promote it.

    With ``gate`` (the CLI's default) promotion is decided by :mod:`training.fit.gate` — against the
    baselines and the current model on the same test rows — unless ``force_promote``; ``strict`` also
    holds back a model whose test period has fewer than 30 churners. ``as_of_ms`` reads the log as
    if exported then (:mod:`training.data.asof`). ``label_delay_days``, when given, overrides the dataset
    config's (:func:`training.data.foreign.train_foreign` sets it to N for inactivity churn). Progress bars
    go to stderr so stdout stays clean for the summary."""
    path = Path(path)
    t0 = time.perf_counter()
    bars = _progress(progress)
    with bars if bars is not None else nullcontext():
        # reading and validating a large log is the first minute of a run: it gets its bar too
        log = read_events(path, progress=_read_bar(bars))
        if not log.events:
            raise TrainingError(f"{path}: no valid events ({log.stats.skipped} invalid records)")
        as_of = _as_of(log, as_of_ms)
        log = as_of.log
        t_read = time.perf_counter() - t0
        dcfg = dataset_config or DatasetConfig(cadence_days=cadence_days, horizon_days=horizon_days)
        if as_of.end_ms is not None:
            dcfg = replace(dcfg, log_end_ms=as_of.end_ms)
        if label_delay_days is not None:
            dcfg = replace(dcfg, label_delay_days=int(label_delay_days))
        if dcfg.spec.legacy:
            # the product's own vocabulary decides the channels, unless the caller brought a spec
            dcfg = replace(dcfg, spec=spec if spec is not None else log.learn_spec(top_k))
        t1 = time.perf_counter()
        dataset = _build(log, dcfg, bars)
        t_replay = time.perf_counter() - t1
        if len(dataset) == 0:
            raise TrainingError(f"{path}: no observations — the log spans too few days for "
                                f"{dcfg.min_history_days} days of history plus a {dcfg.horizon_days}-day horizon")
        model = train(dataset, seed, config, _iteration_bar(bars, config.max_rounds), _fold_bar(bars))
        if bars is not None:  # early stopping ends short of max_rounds: show the bar as done
            for task in bars.tasks:
                bars.update(task.id, total=task.completed)
        t2 = time.perf_counter()
        counts = _counts(log, dataset, bars)
        t_counts = time.perf_counter() - t2
        t3 = time.perf_counter()
        task = bars.add_task("baselines + evaluation report", total=3) if bars is not None else None
        baselines = train_baselines(dataset, counts, model.split, config, seed)
        if bars is not None:
            bars.update(task, completed=1)
        labels = log.labels()
        evaluation_, frames = evaluation_of_run(dataset, counts, model, baselines, labels)
        if bars is not None:
            bars.update(task, completed=2)
        t_eval = time.perf_counter() - t3
        timings = {
            "read_s": round(t_read, 3),
            "replay_s": round(t_replay, 3),
            "replay_events_per_s": round(len(log.events) / t_replay, 1) if t_replay > 0 else float("inf"),
            "train_s": round(model.train_seconds, 3),
            "counts_s": round(t_counts, 3),
            "baselines_eval_s": round(t_eval, 3),
        }
        meta = model_meta(model, dataset, log, timings)
        meta["guidance"] = model.guidance
        meta["comparison"] = evaluation_["comparison"]
        if as_of.record is not None:
            meta["as_of"] = as_of.record
        verdict = _gate(registry, log, dataset, model) if gate and promote else None
        if verdict is not None:
            judge_baselines(evaluation_["comparison"], verdict)
            meta["gate"] = json_safe(verdict.to_json())
        version = _save(registry, model, meta, baselines, evaluation_, frames)
        if bars is not None:
            bars.update(task, completed=3)
    churners = int(evaluation_["period"]["churners"])
    held = None
    if strict and churners < MIN_TEST_CHURNERS:
        held = f"the test period has {churners} churners (fewer than {MIN_TEST_CHURNERS}): not promoted (--strict)"
    elif verdict is not None and not verdict.passed:
        if force_promote:
            log_note = "; ".join(verdict.reasons)
            print(f"promotion gate failed ({log_note}); promoted anyway (--force-promote)", file=sys.stderr)
        else:
            held = "not promoted: " + "; ".join(verdict.reasons) + " (--force-promote to promote anyway)"
    if promote and held is None:
        registry.promote(version, validate=lambda _p: load_version(registry, version))
    timings["total_s"] = round(time.perf_counter() - t0, 3)
    return TrainResult(version, promote and held is None, registry.root, model.metrics, model.thresholds, model.rows,
                       timings, log.stats.to_json(), evaluation_["comparison"], model.guidance, churners, held,
                       model.cv)


def _gate(registry: Registry, log: EventLog, dataset: Dataset, model: TrainedModel) -> Verdict:
    """The gate's comparison with the current model: re-scored on the new model's test rows, from
    the same log, through the current model's own feature spec (the rows are the same: which
    customers are observed when does not depend on the spec)."""
    verdict = Verdict()
    current = registry.current()
    if current is None:
        return verdict
    try:
        running = load_version(registry, current)
    except ModelError as exc:  # a broken current model must not keep a good new one out
        verdict.current = {"version": current, "error": str(exc)}
        return verdict
    test = model.split.test.mask(dataset.obs_ms)
    if not test.any():
        return verdict
    cur = build_dataset(log.events, replace(dataset.config, spec=running.compiled.spec), labels=log.labels())
    if not (np.array_equal(cur.customer_ids, dataset.customer_ids) and np.array_equal(cur.obs_ms, dataset.obs_ms)):
        verdict.current = {"version": current, "error": "its rows differ from the new model's"}
        return verdict
    judge_current(current, dataset.y[test], model.predict(dataset.X[test]), running.predict(cur.X[test]),
                  dataset.customer_ids[test], verdict)
    return verdict


def _counts(log: EventLog, dataset: Dataset, bars: Any) -> np.ndarray:
    if dataset.extra is not None:  # taken in the same replay as the rows (see _build)
        return dataset.extra
    if bars is None:
        return count_matrix(log.events, dataset, labels=log.labels())
    task = bars.add_task("28-day counts (baseline)", total=1)
    out = count_matrix(log.events, dataset, labels=log.labels())
    bars.update(task, completed=1)
    return out


def _build(log: EventLog, cfg: DatasetConfig, bars: Any) -> Dataset:
    """The rows, with the baselines' 28-day counts of the same states at the same instants: one replay
    of the log for both (:func:`training.fit.baselines.count_matrix` would be a second)."""
    counts = dict(extra=lambda state, t: event_counts(state, t, COUNT_WINDOW_DAYS), extra_width=len(COUNT_FEATURES))
    if bars is None:
        return build_dataset(log.events, cfg, labels=log.labels(), **counts)
    task = bars.add_task("replaying events", total=len(log.events))
    dataset = build_dataset(log.events, cfg, labels=log.labels(), on_progress=lambda n: bars.advance(task, n), **counts)
    bars.update(task, completed=len(log.events))
    return dataset


def _read_bar(bars: Any) -> Callable[[str, int, int | None], None] | None:
    """The reading of the log (:func:`training.data.eventlog.read_events`' progress) as bars: one per label
    (the file read, then the sort when the log is out of time order)."""
    if bars is None:
        return None
    tasks: dict[str, Any] = {}

    def update(label: str, done: int, total: int | None) -> None:
        if label not in tasks:
            tasks[label] = bars.add_task(label, total=total)
        bars.update(tasks[label], completed=done, total=total)

    return update


def _iteration_bar(bars: Any, max_rounds: int) -> IterationFn | None:
    if bars is None:
        return None
    task = bars.add_task("boosting", total=max_rounds)
    return lambda i, end: bars.update(task, completed=i, total=end)


def _fold_bar(bars: Any) -> IterationFn | None:
    if bars is None:
        return None
    task: list[Any] = []

    def update(done: int, total: int) -> None:
        if not task:
            task.append(bars.add_task("cross-validation folds", total=total))
        bars.update(task[0], completed=done, total=total)

    return update


def _as_of(log: EventLog, as_of_ms: int | None) -> Any:  # -> training.data.asof.Cut
    from training.data.asof import AsOfError, cut

    try:
        return cut(log, as_of_ms)
    except AsOfError as exc:
        raise TrainingError(f"{log.path}: {exc}") from None


def package_versions() -> dict[str, str]:
    try:
        churnwatch = importlib_metadata.version("churnwatch")
    except importlib_metadata.PackageNotFoundError:
        churnwatch = "unknown"
    return {"churnwatch": churnwatch, "lightgbm": lgb.__version__, "sklearn": sklearn.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def model_meta(model: TrainedModel, dataset: Dataset, log: EventLog, timings: dict[str, float]) -> dict[str, Any]:
    """The registry metadata: enough to load the model safely and to reproduce or audit the run."""
    cfg = dataset.config
    return json_safe({
        "features": list(dataset.features),
        "feature_spec": cfg.spec.to_json(),
        "calibration": model.calibration,
        "thresholds": model.thresholds,
        "horizon_days": cfg.horizon_days,
        "label_delay_days": cfg.label_delay_days,
        "cadence_days": cfg.cadence_days,
        "min_history_days": cfg.min_history_days,
        "feature_config": asdict(cfg.features),
        "data_window": {"start": format_ts(dataset.log_start_ms), "end": format_ts(dataset.log_end_ms)},
        "split": model.split.to_json(),
        "metrics": model.metrics,
        "rows": model.rows,
        "best_iteration": model.best_iteration,
        "params": model.params,
        "seed": model.seed,
        "feature_importance": model.feature_importance,
        "package_versions": package_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source_log": {"path": str(log.path.resolve()), "sha256": sha256_file(log.path)},
        "eventlog": log.stats.to_json(),
        "timings": timings,
        "cv": model.cv,
    })


#: Keys of the metadata repeated in ``metrics.json`` (the report's context).
_REPORT_KEYS = ("metrics", "thresholds", "guidance", "rows", "split", "data_window", "horizon_days",
                "label_delay_days", "cadence_days",
                "best_iteration", "feature_importance", "timings", "created", "cv", "as_of")


def _save(registry: Registry, model: TrainedModel, meta: dict[str, Any], baselines: dict[str, LinearBaseline],
          evaluation_: dict[str, Any], frames: dict[str, Any]) -> str:
    """One atomic registry version: model, metadata, ``metrics.json``, ``baselines.json``,
    ``scores.npz`` and ``report/`` (HTML + PNGs), all written before the version directory appears."""
    text = model.booster.model_to_string(num_iteration=model.best_iteration)
    report = {k: meta[k] for k in _REPORT_KEYS if k in meta}
    report["evaluation"] = evaluation_
    report["source"] = f"{meta['source_log']['path']} (sha256 {meta['source_log']['sha256'][:12]}…)"
    report["model_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    report = json_safe(report)
    with tempfile.TemporaryDirectory(prefix="churnwatch-train-") as tmp:
        metrics_path = Path(tmp) / METRICS_FILE
        metrics_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        baselines_path = Path(tmp) / BASELINES_FILE
        baselines_path.write_bytes(orjson.dumps(json_safe(baselines_json(baselines)), option=orjson.OPT_INDENT_2))
        scores_path = Path(tmp) / SCORES_FILE
        save_frames(scores_path, frames)
        report_dir = Path(tmp) / REPORT_DIR
        render(report, report_dir, title="churnwatch model evaluation")
        return registry.save(text, meta, files={METRICS_FILE: metrics_path, BASELINES_FILE: baselines_path,
                                                SCORES_FILE: scores_path, REPORT_DIR: report_dir})


# ---- evaluating a saved model ---------------------------------------------------------------------
@dataclass
class EvaluationResult:
    version: str
    out_dir: Path
    report_path: Path
    metrics: dict[str, Any]
    #: The guidance recomputed for ``--budget`` (model), else None.
    guidance: dict[str, Any] | None
    baseline_guidance: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def churners(self) -> int | None:
        value = self.metrics.get("evaluation", {}).get("period", {}).get("churners")
        return int(value) if isinstance(value, (int, float)) else None

    @property
    def few_churners(self) -> bool:
        """Fewer than MIN_TEST_CHURNERS churners in the evaluated period (``evaluate --strict`` exits 2)."""
        return few_churners_warning(self.churners, "") is not None

    def print(self, console: Any = None) -> None:
        """What ``churnwatch evaluate`` shows: the period, model vs baselines, the guidance for a
        ``--budget`` (with a policy-file snippet), and where the report is."""
        from rich.console import Console

        from training.assess.report import comparison_table, guidance_table

        console = console or Console()
        ev = self.metrics["evaluation"]
        period = ev["period"]
        console.print(f"model {self.version}, {period.get('name', 'test')} period {period.get('start')} … "
                      f"{period.get('end')}: {period.get('rows', 0):,} snapshots, {period.get('positives', 0):,} "
                      f"churn labels, {period.get('churners', 0):,} churners", highlight=False)
        console.print(comparison_table(ev["comparison"]))
        if self.guidance is not None:
            console.print(guidance_table(self.guidance, title=f"model {self.version}: threshold guidance for "
                                         f"{self.guidance.get('budget_per_1k_week'):g} new alerts / week / 1,000 "
                                         f"customers (chosen on the {self.guidance.get('chosen_on')} period)"))
            thr = self.guidance.get("thresholds") or {}
            if not self.guidance.get("within_budget", True):
                console.print("[yellow]even the single highest score is over this budget: nobody would be alerted[/]")
            elif self.guidance.get("floor_binding"):
                console.print(f"[yellow]the threshold floor ({self.guidance.get('min_threshold')}) leaves part of "
                              f"the budget unspent[/]")
            console.print("to use them, put in the alert policy file (CHURNWATCH_POLICY_FILE):\n[thresholds]\n"
                          + "\n".join(f"{t} = {v}" for t, v in sorted(thr.items())), highlight=False, markup=False)
        console.print(f"report: {self.report_path}", highlight=False, soft_wrap=True)
        warning = few_churners_warning(self.churners, "evaluate on a longer log", period="evaluated")
        if warning:
            console.print(warning, style="bold yellow", highlight=False, markup=False, soft_wrap=True)


def evaluate_version(registry: Registry, version: str | None = None, *, events: Path | str | None = None,
                     out: Path | str | None = None, budget: float | None = None, period: str = "later",
                     config: TrainConfig = TrainConfig(), train_until_ms: int | None = None,
                     test_from_ms: int | None = None, as_of_ms: int | None = None) -> EvaluationResult:
    """``churnwatch evaluate``: the evaluation report of a registry version (default: the current one).

    - no ``events``: re-draw the report from the saved ``metrics.json`` (into the version's own
      ``report/`` unless ``out`` is given);
    - ``events``: score that log with the saved model and the saved baselines and evaluate them on
      the observations the model never saw — those from the start of its test period on
      (``period="later"``, the default; a log entirely after training is used whole), or on every
      observation (``period="all"``, for a log of other customers);
    - ``budget``: propose per-tier thresholds for that weekly budget (new alerts per week per 1,000
      customers) and evaluate every scorer at them: chosen on the saved validation period
      (``scores.npz``) without ``events``, on the evaluated log period with it;
    - with ``events`` only: ``test_from_ms`` evaluates from that observation date on instead (not
      before the model's test period with ``period="later"``: those rows fitted or calibrated it);
      ``train_until_ms`` alone evaluates the test period :func:`time_split` places after it (what
      ``train --train-until`` would have tested on); ``as_of_ms`` reads the log as exported then
      (:mod:`training.data.asof`).

    Without ``out``, anything but a plain re-draw goes to ``./churnwatch-eval-<version>/``; the saved
    version is never changed then (the worker reads its thresholds from the metadata as trained).
    """
    version = version or registry.current()
    if version is None:
        raise TrainingError(f"no current model in {registry.root}; name a VERSION (see 'churnwatch models list')")
    meta = registry.verify(version)
    vdir = registry.path(version)
    if period not in ("later", "all"):
        raise TrainingError(f"--period must be 'later' or 'all', not {period!r}")
    if budget is not None and not (budget > 0 and math.isfinite(budget)):
        raise TrainingError(f"--budget must be a positive number of alerts per week per 1,000 customers, not {budget}")
    saved = _read_json(vdir / METRICS_FILE, version) if (vdir / METRICS_FILE).is_file() else None
    cuts = {"train_until_ms": train_until_ms, "test_from_ms": test_from_ms, "as_of_ms": as_of_ms}
    if events is None and any(v is not None for v in cuts.values()):
        raise TrainingError("--train-until, --test-from and --as-of choose what of an event log is evaluated: "
                            "give --events LOG")
    if events is None:
        if saved is None or "evaluation" not in saved:
            raise TrainingError(f"model {version} has no saved evaluation (trained before reports existed); "
                                f"evaluate it on a log: churnwatch evaluate {version} --events LOG")
        metrics = dict(saved, version=version)
        guidance, baseline_guidance = None, {}
        if budget is not None:
            metrics, guidance, baseline_guidance = _rebudget_saved(vdir, version, metrics, budget, config)
        default_out = vdir / REPORT_DIR if budget is None else Path(f"churnwatch-eval-{version}")
    else:
        metrics, guidance, baseline_guidance = _evaluate_log(registry, version, meta, vdir, Path(events), budget,
                                                             period, saved, config, **cuts)
        default_out = Path(f"churnwatch-eval-{version}")
    out_dir = Path(out) if out is not None else default_out
    if out_dir.exists() and not out_dir.is_dir():
        raise TrainingError(f"--out {out_dir} exists and is not a directory")
    report_dir = out_dir if out_dir == vdir / REPORT_DIR else out_dir / REPORT_DIR
    if out_dir != vdir / REPORT_DIR:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / METRICS_FILE).write_bytes(orjson.dumps(json_safe(metrics), option=orjson.OPT_INDENT_2))
    html_path = render(metrics, report_dir, title=f"churnwatch model evaluation — {version}")
    return EvaluationResult(version, out_dir, html_path, metrics, guidance, baseline_guidance)


def _read_json(path: Path, version: str) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise TrainingError(f"model {version}: unreadable {path.name} ({exc})") from None
    if not isinstance(data, dict):
        raise TrainingError(f"model {version}: {path.name} is not a JSON object")
    return data


def _saved_baselines(vdir: Path, version: str, features: Sequence[str]) -> dict[str, LinearBaseline]:
    path = vdir / BASELINES_FILE
    if not path.is_file():
        return {}
    try:
        return load_baselines(_read_json(path, version), features)
    except ValueError as exc:
        raise TrainingError(f"model {version}: {BASELINES_FILE}: {exc}") from None


def _rebudget_saved(vdir: Path, version: str, metrics: dict[str, Any], budget: float,
                    config: TrainConfig) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, Any]]]:
    path = vdir / SCORES_FILE
    if not path.is_file():
        raise TrainingError(f"model {version} has no saved {SCORES_FILE}; use --events LOG with --budget")
    try:
        frames = load_frames(path)
        (valid, v_scores), (test, t_scores) = frames["validation"], frames["test"]
    except (OSError, ValueError, KeyError) as exc:
        raise TrainingError(f"model {version}: unreadable {SCORES_FILE} ({exc})") from None
    old = metrics["evaluation"]
    scorers: dict[str, dict[str, Any]] = {}
    guidance: dict[str, dict[str, Any]] = {}
    for name in old["scorers"]:
        if name not in v_scores or name not in t_scores:
            continue
        thr, g = budget_guidance(valid.customer_ids, valid.obs_ms, valid.tiers, valid.y, v_scores[name],
                                 valid.counted, budget, config, valid.cadence_days, chosen_on="validation")
        guidance[name] = g
        scorers[name] = {"p": t_scores[name], "thresholds": thr, "guidance": g,
                         "importance": old["scorers"][name].get("importance")}
    period = {k: v for k, v in old["period"].items() if k in ("name", "start", "end", "dates")}
    new = dict(metrics, evaluation=evaluation(test, period, scorers), budget_per_1k_week=budget)
    model_g = guidance.pop(MODEL, None)
    return new, model_g, guidance


def _evaluate_log(registry: Registry, version: str, meta: dict[str, Any], vdir: Path, path: Path,
                  budget: float | None, period: str, saved: dict[str, Any] | None, config: TrainConfig,
                  train_until_ms: int | None = None, test_from_ms: int | None = None,
                  as_of_ms: int | None = None) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, dict[str, Any]]]:
    from pipeline.core.features import FeatureConfig
    from pipeline.core.contract import parse_ts

    if not path.is_file():
        raise TrainingError(f"event log {path} not found")
    model = load_version(registry, version)
    baselines = _saved_baselines(vdir, version, model.features)
    try:
        log = read_events(path)
    except (ValueError, OSError) as exc:
        detail = str(exc).splitlines()[0][:240] if str(exc) else type(exc).__name__
        raise TrainingError(detail if str(path) in detail else f"{path}: cannot read the event log ({detail})") from None
    if not log.events:
        raise TrainingError(f"{path}: no valid events ({log.stats.skipped} invalid records)")
    as_of = _as_of(log, as_of_ms)
    log = as_of.log
    try:
        dcfg = DatasetConfig(cadence_days=int(meta["cadence_days"]), horizon_days=int(meta["horizon_days"]),
                             min_history_days=int(meta.get("min_history_days", 28)),
                             label_delay_days=int(meta.get("label_delay_days") or 0),
                             features=FeatureConfig(**(meta.get("feature_config") or {})),
                             spec=spec_of_meta(meta), log_end_ms=as_of.end_ms)
    except (KeyError, TypeError, ValueError) as exc:
        raise TrainingError(f"model {version}: metadata lacks the dataset settings ({exc})") from None
    dataset = build_dataset(log.events, dcfg, labels=log.labels())
    if len(dataset) == 0:
        raise TrainingError(f"{path}: no observations — the log spans too few days for {dcfg.min_history_days} "
                            f"days of history plus a {dcfg.horizon_days}-day horizon")
    dates = np.unique(dataset.obs_ms)
    chosen = _chosen_start(dates, dcfg.purge_days, config, train_until_ms, test_from_ms)
    if period == "later":
        try:
            first = parse_ts(meta["split"]["test"]["start"])
        except (KeyError, TypeError, ValueError):
            raise TrainingError(f"model {version}: metadata has no time split; use --period all") from None
        if chosen is not None and dates[dates >= chosen].size and dates[dates >= chosen][0] < first:
            raise TrainingError(f"the evaluated period would start {format_ts(int(dates[dates >= chosen][0]))[:10]}, "
                                f"before the model's test period ({meta['split']['test']['start'][:10]}): earlier "
                                f"observations fitted or calibrated it; use --period all for a log of other customers")
        dates = dates[dates >= (chosen if chosen is not None else first)]
        if dates.size == 0:
            raise TrainingError(f"{path}: no observations from {format_ts(chosen or first)[:10]} on (the model's test "
                                f"period; earlier ones were used to fit it); use --period all for another population")
    elif chosen is not None:
        dates = dates[dates >= chosen]
        if dates.size == 0:
            raise TrainingError(f"{path}: no observations from {format_ts(chosen)[:10]} on")
    evaluated = Period(int(dates[0]), int(dates[-1]), int(dates.size))
    context = dcfg.purge_days if period == "later" or chosen is not None else 0
    rows, counted = period_rows(dataset.obs_ms, evaluated, context)
    labels = log.labels()
    frame = frame_for(dataset, rows, counted, labels)
    scores = {MODEL: model.predict(dataset.X[rows])}
    counts = count_matrix(log.events, dataset, labels=labels) if baselines else None
    for name, baseline in baselines.items():
        scores[name] = _baseline_scores(dataset, counts, baseline, rows)
    old_scorers = (saved or {}).get("evaluation", {}).get("scorers", {})
    stored = {MODEL: (dict(meta.get("thresholds") or {}), meta.get("guidance") or {})}
    stored.update({n: (b.thresholds, b.guidance) for n, b in baselines.items()})
    importance = {MODEL: meta.get("feature_importance") or {}}
    importance.update({n: b.importance() for n, b in baselines.items()})
    scorers: dict[str, dict[str, Any]] = {}
    guidance: dict[str, dict[str, Any]] = {}
    for name, p in scores.items():
        thr, g = stored[name]
        if budget is not None:
            thr, g = budget_guidance(frame.customer_ids, frame.obs_ms, frame.tiers, frame.y, p, frame.counted,
                                     budget, config, frame.cadence_days, chosen_on="evaluated log period")
            guidance[name] = g
        scorers[name] = {"p": p, "thresholds": thr, "guidance": g,
                         "importance": importance.get(name) or old_scorers.get(name, {}).get("importance")}
    if chosen is not None:
        name = "chosen"
    else:
        name = "log, after the model's validation period" if period == "later" else "whole log"
    metrics = {k: meta[k] for k in _REPORT_KEYS if k in meta and k not in ("metrics", "timings", "rows", "as_of")}
    if as_of.record is not None:
        metrics["as_of"] = as_of.record
    metrics.update({
        "version": version,
        "evaluation": evaluation(frame, {"name": name, **evaluated.to_json()}, scorers),
        "source": f"{path.resolve()} (sha256 {sha256_file(path)[:12]}…), {len(log.events):,} events",
        "data_window": {"start": format_ts(dataset.log_start_ms), "end": format_ts(dataset.log_end_ms)},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "budget_per_1k_week": budget,
    })
    model_g = guidance.pop(MODEL, None)
    return json_safe(metrics), model_g, guidance


def _chosen_start(dates: np.ndarray, purge_days: int, config: TrainConfig, train_until_ms: int | None,
                  test_from_ms: int | None) -> int | None:
    """Where ``evaluate --train-until/--test-from`` start the evaluated period (None: not chosen):
    ``--test-from`` itself (checked against ``--train-until`` as ``train`` checks them), or the test
    period :func:`time_split` places after ``--train-until``."""
    if test_from_ms is not None:
        if train_until_ms is not None and test_from_ms <= train_until_ms + 2 * purge_days * DAY_MS:
            raise TrainingError(f"--test-from must be more than two {purge_days}-day purge gaps after --train-until "
                                f"(validation lies between them)")
        return int(test_from_ms)
    if train_until_ms is None:
        return None
    return time_split(dates, purge_days, config.fractions, train_until_ms=train_until_ms).test.start_ms


def main(argv: list[str] | None = None) -> int:
    """``python -m training.fit.train LOG MODELS_DIR``: a thin entry point; ``churnwatch train`` is the CLI."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m training.fit.train EVENT_LOG MODELS_DIR", file=sys.stderr)
        return 2
    result = train_from_log(args[0], Registry(args[1]))
    print(result.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
