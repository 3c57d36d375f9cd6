"""Rolling-origin cross-validation: how many boosting rounds the final model gets, and (optionally)
which LightGBM settings, chosen over several periods instead of one.

Early stopping on the single validation period picks the round where *that* period's few dozen
churners happened to be ranked best; a different month would have stopped elsewhere. Here the
observation dates from the start of training to the end of validation (the purge gap between them
included) are cut into folds with an expanding window: fold *i* trains on every date up to its
origin and validates on the next block of dates at least one horizon later, so no label window of a
fold's training rows reaches into its validation block. The last fold's block ends where validation
ends; the blocks are contiguous and do not overlap; each fold trains on more dates than the one
before, the first on at least half as many as the final model::

    dates  |d0 d1 d2 d3 d4 d5 d6 d7 d8 d9 d10 d11 d12 d13|   (train d0-d6, gap d7-d10, validation d11-d13)
    fold 1  T  T  T  T  .  .  .  .  V  V
    fold 2  T  T  T  T  T  T  .  .  .  .  V   V
    fold 3  T  T  T  T  T  T  T  T  .  .  .   .   V   V

Each fold early-stops on its block's class-weighted log-loss (as
:func:`training.fit.booster.fit_early_stopping` does on validation); the final model is then fit on the
training period for the median of the folds' best iterations, each scaled by how many more rows the
final training set has than the fold's (see :func:`rounds_from_folds`). Validation keeps its role for
calibration and thresholds.

With ``TrainConfig.search_candidates`` > 1 the same folds also score a few LightGBM settings (the
configured ones and seeded random draws from :data:`SEARCH_GRID`) by mean fold ROC-AUC, within
``TrainConfig.search_seconds``; the best one is the final model's. It is off by default: on the
simulator it did not beat seed-to-seed noise on held-out periods (docs/evaluation.md).

A log too short for two folds falls back to early stopping on the validation period, with the reason
recorded (``cv.fallback`` in ``meta.json``/``metrics.json``) and printed by ``churnwatch train``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from pipeline.core.contract import DAY_MS
from training.assess.measures import json_safe, pr_auc, roc_auc
from training.fit.booster import fit_early_stopping, lgb_params
from training.fit.config import TrainConfig
from training.fit.split import Period, TimeSplit, period_of
from training.rows.dataset import Dataset

#: A fold's training block and its validation block each need this many churn labels: below it the
#: early-stopping curve of that fold is noise (and a block without churners has no curve at all).
MIN_FOLD_POSITIVES = 10
#: ...and the training block at least this many observation dates.
MIN_FOLD_TRAIN_DATES = 2

#: Settings a search draws from (one value per knob per candidate). The configured settings are always
#: candidate 0, so a search can only replace them by something that scored better on the folds.
SEARCH_GRID: dict[str, tuple[float, ...]] = {
    "num_leaves": (4, 7, 15, 31),
    "min_data_in_leaf": (20, 40, 80, 160),
    "learning_rate": (0.02, 0.04, 0.08),
    "feature_fraction": (0.3, 0.5, 0.8),
    "lambda_l2": (0.0, 1.0, 10.0),
}
MAX_CANDIDATES = 8

FoldFn = Callable[[int, int], None]


@dataclass(frozen=True)
class Fold:
    """One rolling origin: fit on ``train``, early-stop on ``validation`` (a purge gap later)."""

    train: Period
    validation: Period

    def to_json(self) -> dict[str, Any]:
        return {"train": self.train.to_json(), "validation": self.validation.to_json()}


def rolling_origin_folds(obs_ms: np.ndarray, split: TimeSplit, k: int, y: np.ndarray | None = None,
                         min_positives: int = MIN_FOLD_POSITIVES) -> tuple[list[Fold], str | None]:
    """Up to ``k`` expanding-window folds over the dates from ``split.train``'s start to
    ``split.validation``'s end, and, when fewer than ``k`` fit, why (None when all did).

    The blocks are as large as they can be while the first fold still trains on at least half the
    training period's dates (and :data:`MIN_FOLD_TRAIN_DATES`); with ``y`` given, every fold's
    training and validation rows must hold ``min_positives`` churn labels and some stayers. When
    ``k`` folds do not fit, fewer are tried; fewer than two is no cross-validation (an empty list).
    """
    if k < 2:
        return [], f"cross-validation is off (cv_folds={k})"
    obs_ms = np.asarray(obs_ms)
    purge_ms = split.purge_days * DAY_MS
    dates = np.unique(obs_ms)
    dates = dates[(dates >= split.train.start_ms) & (dates <= split.validation.end_ms)]
    n = int(dates.size)
    min_train = max(MIN_FOLD_TRAIN_DATES, math.ceil(split.train.dates / 2))
    why = f"{n} observation dates from the start of training to the end of validation"
    for kk in range(k, 1, -1):
        folds = _folds(dates, purge_ms, kk, min_train)
        if not folds:
            why = (f"{n} observation dates from the start of training to the end of validation hold no {kk} "
                   f"blocks after {min_train} training dates and a {split.purge_days}-day purge gap")
            continue
        short = _short_of_labels(folds, obs_ms, y, min_positives) if y is not None else None
        if short is not None:
            why = short
            continue
        return folds, None if kk == k else f"{k} folds asked, {kk} fit ({why})"
    return [], f"fewer than 2 folds fit: {why}"


def _folds(dates: np.ndarray, purge_ms: int, k: int, min_train: int) -> list[Fold]:
    n = dates.size
    for b in range(n // k, 0, -1):  # the largest blocks that leave the first fold enough training dates
        first = n - k * b
        if first < 0:
            continue
        if _train_end(dates, first, purge_ms) >= min_train:
            out = []
            for i in range(k):
                start = first + i * b
                n_train = _train_end(dates, start, purge_ms)
                out.append(Fold(period_of(dates[:n_train]), period_of(dates[start:start + b])))
            return out
    return []


def _train_end(dates: np.ndarray, start: int, purge_ms: int) -> int:
    """How many dates lie at least one purge gap before ``dates[start]`` (the fold's training dates)."""
    return int(np.searchsorted(dates, dates[start] - purge_ms, side="right"))


def _short_of_labels(folds: list[Fold], obs_ms: np.ndarray, y: np.ndarray, min_positives: int) -> str | None:
    for i, fold in enumerate(folds, start=1):
        for name, period in (("training", fold.train), ("validation", fold.validation)):
            mask = period.mask(obs_ms)
            pos, rows = int(y[mask].sum()), int(mask.sum())
            if pos == rows:
                return f"fold {i}'s {name} block has no stayers"
            if pos < min_positives:
                dates = f"{period.dates} date{'s' if period.dates != 1 else ''}"
                return (f"fold {i}'s {name} block ({dates}) has {pos} churn labels in {rows} rows, "
                        f"fewer than {min_positives}")
    return None


# ---- fitting the folds --------------------------------------------------------------------------
@dataclass
class FoldFit:
    best_iteration: int
    train_rows: int
    validation_rows: int
    validation_positives: int
    roc_auc: float
    pr_auc: float

    def to_json(self) -> dict[str, Any]:
        return {"best_iteration": self.best_iteration, "train_rows": self.train_rows,
                "validation_rows": self.validation_rows, "validation_positives": self.validation_positives,
                "roc_auc": self.roc_auc, "pr_auc": self.pr_auc}


def balance_of(y: np.ndarray, cfg: TrainConfig) -> float:
    positives = int(np.sum(y))
    return (len(y) - positives) / positives if cfg.balance_classes and positives else 1.0


def fit_folds(dataset: Dataset, folds: list[Fold], cfg: TrainConfig, seed: int,
              on_fold: FoldFn | None = None, done: int = 0, total: int = 0) -> list[FoldFit]:
    """Early-stop one booster per fold with ``cfg``'s settings (each fold's own class balance)."""
    out = []
    for i, fold in enumerate(folds):
        tr = dataset.subset(fold.train.mask(dataset.obs_ms))
        va = dataset.subset(fold.validation.mask(dataset.obs_ms))
        params = lgb_params(cfg, seed, scale_pos_weight=balance_of(tr.y, cfg))
        booster = fit_early_stopping(tr, va, params, cfg, None)
        best = int(booster.best_iteration or booster.current_iteration())
        p = booster.predict(va.X, num_iteration=best, num_threads=1)
        out.append(FoldFit(best, len(tr), len(va), int(va.y.sum()), float(roc_auc(va.y, p)), float(pr_auc(va.y, p))))
        if on_fold is not None:
            on_fold(done + i + 1, total)
    return out


def rounds_from_folds(fits: list[FoldFit], final_rows: int, max_rounds: int, scale: bool = True) -> int:
    """The median of the folds' best iterations, each × final training rows / fold training rows.

    A booster at a fixed learning rate keeps improving for longer on more rows before it starts
    fitting noise; the folds train on fewer rows than the final model (the first on about half), so
    their best iterations are scaled up by the row ratio before taking the median. Without ``scale``
    the plain median. Clamped to 1 .. ``max_rounds``."""
    values = [f.best_iteration * (final_rows / f.train_rows if scale and f.train_rows else 1.0) for f in fits]
    return int(min(max_rounds, max(1, round(float(np.median(values))))))


# ---- the search ---------------------------------------------------------------------------------
SEARCH_KEYS = tuple(SEARCH_GRID)


def settings_of(cfg: TrainConfig) -> dict[str, float]:
    return {k: getattr(cfg, k) for k in SEARCH_KEYS}


def search_candidates(cfg: TrainConfig, n: int, seed: int) -> list[dict[str, float]]:
    """``cfg``'s settings, then up to ``n - 1`` distinct random draws from :data:`SEARCH_GRID`
    (seeded: the same ``seed`` draws the same candidates). At most :data:`MAX_CANDIDATES`."""
    n = max(1, min(int(n), MAX_CANDIDATES))
    out = [settings_of(cfg)]
    seen = {tuple(out[0].values())}
    rng = np.random.default_rng([seed, 10])
    for _ in range(200):
        if len(out) >= n:
            break
        cand = {k: SEARCH_GRID[k][int(rng.integers(len(SEARCH_GRID[k])))] for k in SEARCH_KEYS}
        cand = {k: (int(v) if k in ("num_leaves", "min_data_in_leaf") else float(v)) for k, v in cand.items()}
        key = tuple(cand.values())
        if key not in seen:
            seen.add(key)
            out.append(cand)
    return out


@dataclass
class CVResult:
    """What the folds decided: the rounds and settings of the final fit, and the record of how."""

    rounds: int | None  #: None: no folds, early stopping on validation instead
    cfg: TrainConfig
    record: dict[str, Any] = field(default_factory=dict)


def choose(dataset: Dataset, split: TimeSplit, cfg: TrainConfig, seed: int, final_rows: int,
           on_fold: FoldFn | None = None, clock: Callable[[], float] = time.perf_counter) -> CVResult:
    """Folds -> (search) -> rounds for the final fit on the training period."""
    started = clock()
    folds, note = rolling_origin_folds(dataset.obs_ms, split, cfg.cv_folds, dataset.y)
    record: dict[str, Any] = {"folds_asked": cfg.cv_folds, "purge_days": split.purge_days}
    if not folds:
        record.update(folds=[], fallback=note, rounds=None,
                      rule="early stopping on the validation period (no cross-validation)")
        return CVResult(None, cfg, json_safe(record))
    if note:
        record["note"] = note
    candidates = search_candidates(cfg, cfg.search_candidates, seed) if cfg.search_candidates > 1 else [settings_of(cfg)]
    total = len(folds) * len(candidates)
    scored: list[tuple[dict[str, float], list[FoldFit]]] = []
    stopped = None
    for i, cand in enumerate(candidates):
        if i > 0 and clock() - started > cfg.search_seconds:
            stopped = (f"time budget of {cfg.search_seconds:g} s spent after {i} of {len(candidates)} candidates")
            break
        c_cfg = replace(cfg, **cand)
        scored.append((cand, fit_folds(dataset, folds, c_cfg, seed, on_fold, i * len(folds), total)))
    metric = cfg.search_metric

    def score(fits: list[FoldFit]) -> float:
        values = [getattr(f, metric) for f in fits]
        return float(np.mean(values)) if all(math.isfinite(v) for v in values) else -math.inf

    best = max(range(len(scored)), key=lambda j: (score(scored[j][1]), -j))  # ties: the earlier candidate
    chosen, fits = scored[best]
    rounds = rounds_from_folds(fits, final_rows, cfg.max_rounds, cfg.cv_scale_rounds)
    record.update(
        folds=[dict(f.to_json(), **fit.to_json()) for f, fit in zip(folds, fits)],
        fallback=None,
        rounds=rounds,
        rule=("median over folds of best iteration × final/fold training rows" if cfg.cv_scale_rounds
              else "median over folds of best iteration"),
        mean_roc_auc=float(np.mean([f.roc_auc for f in fits])),
        mean_pr_auc=float(np.mean([f.pr_auc for f in fits])),
        seconds=round(clock() - started, 3),
    )
    if len(candidates) > 1:
        record["search"] = {
            "metric": f"mean fold {metric}",
            "seed": seed,
            "candidates": [dict(settings=c, score=score(f), best_iterations=[x.best_iteration for x in f])
                           for c, f in scored],
            "chosen": chosen,
            "chosen_index": best,
            "changed": best != 0,
            "stopped": stopped,
            "budget_s": cfg.search_seconds,
        }
    return CVResult(rounds, replace(cfg, **chosen), json_safe(record))
