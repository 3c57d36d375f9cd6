"""Ranking and probability measures of churn scores. Pure functions over label and score arrays.

Churn is rare and CSMs can only call so many customers, so the numbers that matter are about the top of
the ranking (precision, recall and lift in the top k%) as much as the global ones (ROC-AUC, PR-AUC).
Brier score and a reliability table say whether the calibrated probabilities can be read as
probabilities. Metrics that are undefined for the data (AUC with one class) are NaN, never an exception:
an evaluation report must always be producible. The alert policy's view (new alerts per week, budget
thresholds, lead time) is :mod:`training.assess.alert_measures`; bootstrap intervals are
:mod:`training.assess.intervals`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

TOP_PCTS = (5, 10, 20)


@dataclass(frozen=True)
class TopK:
    """The customers a CSM team would call if it called the top ``pct`` percent of scores."""

    pct: float
    n: int
    threshold: float
    positives: int
    precision: float
    recall: float
    lift: float


def _arrays(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_arr = np.asarray(y).astype(np.int64).ravel()
    p_arr = np.asarray(p, dtype=np.float64).ravel()
    if y_arr.shape != p_arr.shape:
        raise ValueError(f"labels and scores differ in length ({y_arr.size} vs {p_arr.size})")
    return y_arr, p_arr


def base_rate(y: Sequence[int] | np.ndarray) -> float:
    """The churn rate a random ranking would achieve; lift is measured against it."""
    y_arr = np.asarray(y)
    return float(y_arr.mean()) if y_arr.size else math.nan


def _two_classes(y: np.ndarray) -> bool:
    return y.size > 0 and 0 < y.sum() < y.size


def roc_auc(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray) -> float:
    y_arr, p_arr = _arrays(y, p)
    return float(roc_auc_score(y_arr, p_arr)) if _two_classes(y_arr) else math.nan


def pr_auc(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray) -> float:
    """Average precision (the step-wise PR-AUC; the trapezoid version is optimistic)."""
    y_arr, p_arr = _arrays(y, p)
    return float(average_precision_score(y_arr, p_arr)) if _two_classes(y_arr) else math.nan


def brier(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray) -> float:
    y_arr, p_arr = _arrays(y, p)
    return float(brier_score_loss(y_arr, p_arr)) if y_arr.size else math.nan


def top_n(size: int, pct: float) -> int:
    """Rows in the top ``pct`` percent: rounded up, at least one, so a small set still has a top."""
    return min(size, max(1, math.ceil(size * pct / 100.0 - 1e-9))) if size else 0


def top_k(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray, pct: float) -> TopK:
    """Precision/recall/lift of the ``pct`` % highest scores. Ties at the cut are broken by row order
    (a stable sort), so the count is exactly ``top_n`` rows."""
    y_arr, p_arr = _arrays(y, p)
    n = top_n(y_arr.size, pct)
    if n == 0:
        return TopK(pct, 0, math.nan, 0, math.nan, math.nan, math.nan)
    order = np.argsort(-p_arr, kind="stable")[:n]
    hits = int(y_arr[order].sum())
    total = int(y_arr.sum())
    precision = hits / n
    rate = total / y_arr.size
    return TopK(
        pct=pct,
        n=n,
        threshold=float(p_arr[order[-1]]),
        positives=hits,
        precision=precision,
        recall=hits / total if total else math.nan,
        lift=precision / rate if rate else math.nan,
    )


def score_quantile_threshold(p: Sequence[float] | np.ndarray, top_pct: float) -> float:
    """The score at which roughly the top ``top_pct`` % of ``p`` is at or above it."""
    p_arr = np.asarray(p, dtype=np.float64)
    if p_arr.size == 0:
        return math.nan
    n = top_n(p_arr.size, top_pct)
    return float(np.sort(p_arr)[::-1][n - 1])


def reliability(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray,
                bins: int = 10) -> list[dict[str, float]]:
    """Mean predicted vs observed churn rate per score-quantile bin (the data of a calibration plot).
    Quantile bins, because churn scores pile up near zero and equal-width bins would be mostly empty."""
    y_arr, p_arr = _arrays(y, p)
    if y_arr.size == 0:
        return []
    order = np.argsort(p_arr, kind="stable")
    out = []
    for chunk in np.array_split(order, min(bins, y_arr.size)):
        if chunk.size:
            out.append({
                "n": int(chunk.size),
                "mean_predicted": float(p_arr[chunk].mean()),
                "observed_rate": float(y_arr[chunk].mean()),
            })
    return out


def scalar_metrics(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray,
             pcts: Sequence[float] = TOP_PCTS) -> dict[str, Any]:
    """All scalar metrics in one JSON-ready dict (NaN becomes None, as JSON has no NaN)."""
    y_arr, p_arr = _arrays(y, p)
    out: dict[str, Any] = {
        "rows": int(y_arr.size),
        "positives": int(y_arr.sum()),
        "base_rate": base_rate(y_arr),
        "roc_auc": roc_auc(y_arr, p_arr),
        "pr_auc": pr_auc(y_arr, p_arr),
        "brier": brier(y_arr, p_arr),
        "mean_score": float(p_arr.mean()) if p_arr.size else math.nan,
        "top": {_pct_key(k): asdict(top_k(y_arr, p_arr, k)) for k in pcts},
    }
    # Flat copies of the headline numbers (``lift_at_10`` is the top-decile lift) for tables and CLIs.
    for k in pcts:
        t = out["top"][_pct_key(k)]
        suffix = _pct_key(k)[:-3]
        out[f"precision_at_{suffix}"] = t["precision"]
        out[f"recall_at_{suffix}"] = t["recall"]
        out[f"lift_at_{suffix}"] = t["lift"]
    return json_safe(out)


def _pct_key(pct: float) -> str:
    return f"{int(pct)}pct" if float(pct).is_integer() else f"{pct}pct"


def json_safe(value: Any) -> Any:
    """Replace NaN/inf by None and numpy scalars by Python ones, recursively."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---- curves for the report ----------------------------------------------------------------------------
def _thin(n: int, points: int) -> np.ndarray:
    """Indices of at most ``points`` of ``n`` curve points, always keeping the first and the last."""
    if n <= points:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, points)).astype(np.int64))


def curves(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray, points: int = 200,
           bins: int = 40) -> dict[str, Any]:
    """The data of the report's plots, small enough for ``metrics.json`` (so a report can be re-drawn
    without the data): ROC and precision-recall curves, the cumulative gain curve (share of churners
    among the top x % of scores, from which lift = gain / x), and score histograms per class.

    Curves are thinned to about ``points`` points. The score histogram uses ``bins`` equal-width bins
    over [0, 1] on a square-root scale of the score, since churn probabilities crowd near zero.
    """
    from sklearn.metrics import precision_recall_curve, roc_curve

    y_arr, p_arr = _arrays(y, p)
    out: dict[str, Any] = {"roc": None, "pr": None, "gain": None, "scores": None}
    if y_arr.size == 0:
        return out
    if _two_classes(y_arr):
        fpr, tpr, _ = roc_curve(y_arr, p_arr)
        keep = _thin(fpr.size, points)
        out["roc"] = {"fpr": np.round(fpr[keep], 5).tolist(), "tpr": np.round(tpr[keep], 5).tolist()}
        precision, recall, _ = precision_recall_curve(y_arr, p_arr)
        keep = _thin(precision.size, points)
        out["pr"] = {"recall": np.round(recall[keep], 5).tolist(),
                     "precision": np.round(precision[keep], 5).tolist()}
    order = np.argsort(-p_arr, kind="stable")
    total = int(y_arr.sum())
    hits = np.cumsum(y_arr[order])
    keep = _thin(y_arr.size, points)
    share = (keep + 1) / y_arr.size
    out["gain"] = {"share": np.concatenate([[0.0], np.round(share, 5)]).tolist(),
                   "captured": np.concatenate([[0.0], np.round(hits[keep] / total, 5) if total
                                               else np.zeros(keep.size)]).tolist()}
    edges = np.linspace(0.0, 1.0, bins + 1) ** 2
    out["scores"] = {
        "edges": np.round(edges, 6).tolist(),
        "churners": np.histogram(np.clip(p_arr[y_arr == 1], 0, 1), edges)[0].tolist(),
        "stayers": np.histogram(np.clip(p_arr[y_arr == 0], 0, 1), edges)[0].tolist(),
    }
    return out

