"""Baseline models the churn model must beat, trained in the same run on the same time split.

A LightGBM model that cannot beat a logistic regression has not earned its complexity, and a model that
cannot beat "how much did this customer do in the last four weeks" has not learnt anything a CSM could
not read off a dashboard. Two baselines answer those two questions:

- ``logreg``: logistic regression on exactly the model's feature vectors (median imputation for the
  NaNs the feature code emits, standardisation, ``class_weight="balanced"``);
- ``counts_28d``: logistic regression on raw counts of each event type in the 28 days before the
  observation, read from the same day buckets of :class:`~pipeline.core.features.CustomerState` the stream
  keeps (:func:`event_counts`), so the baseline sees the same events, lateness and ticket bookkeeping
  as the model — only less cleverly summarised.

A fitted baseline is stored as plain numbers (medians, means, scales, coefficients, calibration map) in
``baselines.json`` next to the model, never as a pickle: loading it executes no code, and an on-demand
evaluation scores the very same baselines the training run reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from pipeline.core.contract import Event
from pipeline.core.features import CHANNELS, FEATURES, N_CH, CustomerState, FeatureConfig, day_of
from pipeline.model.calibration import calibrate
from training.rows.dataset import Dataset
from training.rows.labels import Labels
from training.rows.timeline import snapshots

BASELINES_FILE = "baselines.json"
COUNT_WINDOW_DAYS = 28
#: Rows a linear baseline scores at once (its imputed and scaled copies: ~25 MB at 150 inputs).
PREDICT_ROWS = 20_000
SURVEY_TYPES = ("nps", "csat", "ces")
#: Columns of :func:`event_counts`: every day-bucket channel, then survey answers per type.
COUNT_FEATURES: tuple[str, ...] = (tuple(f"{ch}_{COUNT_WINDOW_DAYS}d" for ch in CHANNELS)
                                   + tuple(f"{s}_answers_{COUNT_WINDOW_DAYS}d" for s in SURVEY_TYPES))
#: Baseline names in the order reports show them, with the label figures use.
BASELINE_LABELS = {
    "logreg": "logistic regression, same features",
    "counts_28d": "logistic regression, 28-day event counts",
    "type_counts_28d": "logistic regression, 28-day counts per event type + tenure",
}
#: Columns of the per-type counts baseline, picked by name from a learnt spec's features: what a data
#: scientist's first model on their own product would be (counts of each of its event types + age).
TENURE_FEATURES = ("tenure_days", "usage_observed_days")


def type_count_columns(features: Sequence[str]) -> tuple[str, ...]:
    """The per-type 28-day counts (every type of the spec, and the rest) plus tenure, from ``features``;
    empty for a spec without types of its own (the built-in features)."""
    names = tuple(f for f in features if (f.startswith("type_") or f.startswith("other_types_"))
                  and f.endswith(f"_{COUNT_WINDOW_DAYS}d") and "_active_days_" not in f and "_share_" not in f
                  and "_per_active_day_" not in f and "_vs_" not in f)
    return names + tuple(f for f in TENURE_FEATURES if f in features) if names else ()


# ---- 28-day event counts ------------------------------------------------------------------------
def event_counts(state: CustomerState, now_ms: int, days: int = COUNT_WINDOW_DAYS) -> list[float]:
    """Counts per event type in the ``days`` UTC day buckets ending with the day of the instant just
    before ``now_ms``.

    At a snapshot at midnight T (how the dataset observes) that is exactly the 28 whole days before T;
    at any other instant, today's partial day and the 27 before it. (The stream's features count
    ``now_day - days < day <= now_day``, which at midnight holds only ``days - 1`` days of events;
    here the baseline gets its full four weeks.) The day buckets are the stream's, so the baseline and
    the model disagree only in what they make of the events. Survey answers come from the state's
    survey memory: CSAT and CES are kept 90 days, so their counts are exact; NPS keeps only the last
    two answers (all the features need), which caps ``nps_answers`` at 2 — NPS is asked a few times a
    year, so four weeks rarely hold more.
    """
    now_day = day_of(now_ms - 1)
    out = [0.0] * (N_CH + len(SURVEY_TYPES))
    for day, counts in state.days.items():
        if 0 <= now_day - day < days:
            for c in range(N_CH):
                out[c] += counts[c]
    for i, series in enumerate((state.nps, state.csat, state.ces)):
        out[N_CH + i] = float(sum(1 for ts, _ in series if ts <= now_ms and 0 <= now_day - day_of(int(ts)) < days))
    return out


def count_matrix(events: Iterable[Event], dataset: Dataset, cfg: FeatureConfig | None = None,
                 days: int = COUNT_WINDOW_DAYS, labels: Labels | None = None) -> np.ndarray:
    """:func:`event_counts` for every row of ``dataset``, in its row order.

    Replays ``events`` (time-sorted, as given to :func:`training.rows.dataset.build_dataset`) through the
    stream's :func:`pipeline.core.features.apply` and reads each row's customer at its observation time T
    after exactly the events with ``ts < T`` — the same point-in-time cut as the dataset builder
    (:func:`training.rows.timeline.snapshots`). The dataset decides who has a row, so the two matrices line
    up row for row. ``labels`` only lets the replay drop customers gone for good. Costs one ``apply``
    pass (about 2 s per million events here), not a second feature build.
    """
    cfg = cfg if cfg is not None else dataset.config.features
    out = np.zeros((len(dataset), len(COUNT_FEATURES)), dtype=np.float64)
    if len(dataset) == 0:
        return out
    order = np.argsort(dataset.obs_ms, kind="stable")
    times = dataset.obs_ms[order]
    bounds = np.flatnonzero(np.diff(times)) + 1
    groups = {int(times[g[0]]): g for g in np.split(order, bounds)}
    for t_ms, states in snapshots(events, list(groups), cfg, labels=labels, delay_ms=dataset.config.delay_ms):
        for r in groups[t_ms]:
            state = states.get(dataset.customer_ids[r])
            if state is not None:
                out[r] = event_counts(state, t_ms, days)
    return out


# ---- a logistic regression stored as numbers ---------------------------------------------------
@dataclass
class LinearBaseline:
    """Median-impute, standardise, logistic regression, then the same kind of monotone calibration map
    the model has. :meth:`raw` reproduces the fitted sklearn pipeline's ``predict_proba`` exactly."""

    name: str
    features: tuple[str, ...]
    medians: np.ndarray
    means: np.ndarray
    scales: np.ndarray
    coef: np.ndarray
    intercept: float
    calibration: dict[str, list[float]] | None = None
    #: Per-tier alert thresholds from the same budget as the model's (lead time and volume compare
    #: like for like), and the record of how they were chosen.
    thresholds: dict[str, float] = field(default_factory=dict)
    guidance: dict[str, Any] = field(default_factory=dict)
    fit_seconds: float = 0.0

    def raw(self, X: np.ndarray) -> np.ndarray:
        """Uncalibrated probability (inflated: the fit weights churners up to balance the classes).
        Row blocks of :data:`PREDICT_ROWS`: imputing and scaling copy the input, a block at a time."""
        if X.shape[0] > PREDICT_ROWS:
            return np.concatenate([self.raw(X[i:i + PREDICT_ROWS]) for i in range(0, X.shape[0], PREDICT_ROWS)])
        X = np.asarray(X, dtype=np.float64)
        X = np.where(np.isnan(X), self.medians, X)
        z = ((X - self.means) / self.scales) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Calibrated churn probability; the raw output until a calibration map is set."""
        raw = self.raw(X)
        if not self.calibration:
            return raw
        return calibrate(raw, self.calibration["x"], self.calibration["y"])

    def importance(self, top: int = 15) -> dict[str, float]:
        """|standardised coefficient| shares: how much each input moves the log-odds per standard
        deviation — the linear model's counterpart of LightGBM's gain importance."""
        mag = np.abs(self.coef)
        total = float(mag.sum()) or 1.0
        order = np.argsort(-mag, kind="stable")[:top]
        return {self.features[i]: round(float(mag[i]) / total, 4) for i in order if mag[i] > 0}

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "logistic_regression",
            "features": list(self.features),
            "medians": self.medians.tolist(),
            "means": self.means.tolist(),
            "scales": self.scales.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "calibration": self.calibration,
            "thresholds": self.thresholds,
            "guidance": self.guidance,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "LinearBaseline":
        arrays = {k: np.asarray(d[k], dtype=np.float64) for k in ("medians", "means", "scales", "coef")}
        n = len(d["features"])
        if any(a.shape != (n,) for a in arrays.values()):
            raise ValueError(f"baseline {d.get('name')!r}: parameter lengths do not match its {n} features")
        return cls(name=d["name"], features=tuple(d["features"]), intercept=float(d["intercept"]),
                   calibration=d.get("calibration"), thresholds=dict(d.get("thresholds") or {}),
                   guidance=dict(d.get("guidance") or {}), **arrays)


def fit_linear(name: str, X: np.ndarray, y: np.ndarray, features: Sequence[str], seed: int = 0,
               C: float = 1.0, max_iter: int = 2000, rows: np.ndarray | None = None) -> LinearBaseline:
    """Fit the sklearn pipeline (median imputation, standardisation, balanced logistic regression) and
    keep its parameters as numbers. ``rows``: fit on these rows of ``X`` and ``y`` only.

    ``keep_empty_features=True`` keeps a column that is all-NaN in training (imputed 0, zero weight), so
    the stored vectors line up with the input columns whatever the data. The pipeline imputes and
    scales one private copy of the rows in place (``copy=False``): at 100,000 rows x 154 features each
    of its default copies was another 123 MB, the largest spike of a ``train`` on a 10M-event log.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if rows is not None:
        X, y = X[rows], y[rows]  # fancy indexing: already a private copy
    else:
        X = np.array(X, dtype=np.float64)  # never impute the caller's matrix in place
    pipe = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True, copy=False),
        StandardScaler(copy=False),
        LogisticRegression(class_weight="balanced", C=C, max_iter=max_iter, random_state=seed),
    )
    pipe.fit(np.asarray(X, dtype=np.float64), np.asarray(y))
    imputer, scaler, lr = pipe.steps[0][1], pipe.steps[1][1], pipe.steps[2][1]
    return LinearBaseline(
        name=name,
        features=tuple(features),
        medians=np.asarray(imputer.statistics_, dtype=np.float64),
        means=np.asarray(scaler.mean_, dtype=np.float64),
        scales=np.asarray(scaler.scale_, dtype=np.float64),
        coef=np.asarray(lr.coef_[0], dtype=np.float64),
        intercept=float(lr.intercept_[0]),
    )


def baseline_inputs(name: str, X: np.ndarray, counts: np.ndarray,
                    features: Sequence[str] = FEATURES) -> tuple[np.ndarray, tuple[str, ...]]:
    """The input matrix and column names of baseline ``name``: the model's features (named
    ``features``), a selection of them, or the counts. An empty name tuple: not applicable here."""
    if name == "counts_28d":
        return counts, COUNT_FEATURES
    if name == "logreg":
        return X, tuple(features)
    if name == "type_counts_28d":
        cols = type_count_columns(features)
        index = {f: i for i, f in enumerate(features)}
        return X[:, [index[c] for c in cols]], cols
    raise ValueError(f"unknown baseline {name!r} (known: {', '.join(BASELINE_LABELS)})")


# ---- baselines.json -------------------------------------------------------------------------------
def baselines_json(baselines: dict[str, LinearBaseline]) -> dict[str, Any]:
    """The content of ``baselines.json``: every fitted baseline as plain numbers."""
    return {"format": 1, "count_window_days": COUNT_WINDOW_DAYS,
            "baselines": {name: b.to_json() for name, b in baselines.items()}}


def load_baselines(data: dict[str, Any], features: Sequence[str] = FEATURES) -> dict[str, LinearBaseline]:
    """Parse ``baselines.json`` content; ``ValueError`` with a one-line message when it does not fit
    this code (another count window, unknown baseline names, mismatched parameter lengths)."""
    if not isinstance(data, dict) or not isinstance(data.get("baselines"), dict):
        raise ValueError("not a baselines file (no 'baselines' object)")
    window = data.get("count_window_days", COUNT_WINDOW_DAYS)
    if window != COUNT_WINDOW_DAYS:
        raise ValueError(f"baselines were fitted on {window}-day counts, this code computes {COUNT_WINDOW_DAYS}-day ones")
    out: dict[str, LinearBaseline] = {}
    for name, d in data["baselines"].items():
        if name not in BASELINE_LABELS:
            raise ValueError(f"unknown baseline {name!r} (known: {', '.join(BASELINE_LABELS)})")
        try:
            baseline = LinearBaseline.from_json(d)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"baseline {name!r} is incomplete ({exc})") from None
        expected = baseline_inputs(name, np.zeros((0, len(features))), np.zeros((0, len(COUNT_FEATURES))), features)[1]
        if baseline.features != expected:
            raise ValueError(f"baseline {name!r} was fitted on other inputs than this code computes")
        out[name] = baseline
    return out
