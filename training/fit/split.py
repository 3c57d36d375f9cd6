"""The time split: observation dates cut into train / validation / test, with purge gaps between.

Why the split looks the way it does: rows are snapshots of the same customers week after week, and a
label looks ``horizon_days`` ahead. A random split would put a customer's week-5 row in training and
week-6 row in test — nearly the same row with the same future — and report a fantasy. So observation
dates are cut into train / validation / test in time order, and ``horizon_days`` + ``label_delay_days``
of dates are purged before validation and before test, so no label of an earlier period needs data
from a later one: a label at T is settled by T + horizon, or, when a churn is only known some days
after its date (inactivity churn, ``--inactive-days N``: a delay of N), by T + horizon + N.
Validation drives calibration and thresholds (and the rolling-origin folds that choose the number of
boosting rounds reach into it); test is touched once, for the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from pipeline.core.contract import DAY_MS, format_ts
from training.fit.config import TrainingError
from training.rows.dataset import Dataset, row_selector


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
    return TimeSplit(period_of(train), period_of(valid), period_of(test), purge_days)


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
    return TimeSplit(period_of(train), period_of(valid), period_of(test), purge_days)


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


def period_of(dates: np.ndarray) -> Period:
    return Period(int(dates[0]), int(dates[-1]), int(dates.size))
