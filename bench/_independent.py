"""An outside check on a trained churnwatch version: the simplest model a data scientist would try first.

The baselines churnwatch fits itself read their counts from the same feature state as the model, so a
bug there (a window off by a day, an event counted twice, an event from after the observation) would
flatter or hurt model and baselines alike and no comparison would show it. This module shares no code
with churnwatch: it reads the raw JSONL event log and the version's ``meta.json`` and ``scores.npz`` with
orjson and numpy, rebuilds the observation rows (customers seen before T and not churned by T, label =
a churn in (T, T + horizon]; with the version's ``label_delay_days`` D, a churn at c counts as "churned by
T" only once c + D <= T, and the label also takes a churn in (T - D, T] that no renewal at or before T
ended) from the outcome events, and counts each event type in the 28 days before T
from the events with ts < T. A logistic regression on those counts plus tenure is fitted on the
version's training period and scored on its test period.

Rebuilding the rows independently is itself a check: :func:`compare` insists that the test rows and
labels it derives are exactly the ones the version was evaluated on, so "same test rows" is verified,
not assumed.

The bootstrap resamples *customers* (with all their rows), because a customer's weekly rows are not
independent draws; both scorers are scored on the same resampled customers in each draw, so the
difference's interval is a paired one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

DAY_MS = 86_400_000
COUNT_DAYS = 28
TOP_PCT = 10.0


# ---- the raw log --------------------------------------------------------------------------------
def _ms(text: str) -> int:
    return int(round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000))


@dataclass
class RawLog:
    """The parts of an event log the baseline needs, as arrays (interactions sorted by time)."""

    customers: list[str]
    index: dict[str, int]
    first_ms: np.ndarray
    inter_ts: np.ndarray
    inter_cust: np.ndarray
    inter_type: np.ndarray
    type_names: list[str]
    churns: dict[int, list[int]] = field(default_factory=dict)
    renewals: dict[int, list[int]] = field(default_factory=dict)

    def top_types(self, k: int) -> list[str]:
        """The ``k`` most frequent interaction types (ties by name)."""
        volume = np.bincount(self.inter_type, minlength=len(self.type_names))
        ranked = sorted(range(len(self.type_names)), key=lambda i: (-int(volume[i]), self.type_names[i]))
        return [self.type_names[i] for i in ranked[:k]]

    def churned_by(self, c: int, t_ms: int, delay_ms: int = 0) -> bool:
        """Known gone at ``t_ms``: the latest churn known by then (dated at or before ``t_ms`` - delay) is
        not followed by a renewal at or before ``t_ms``."""
        last = max((x for x in self.churns.get(c, ()) if x + delay_ms <= t_ms), default=None)
        if last is None:
            return False
        back = max((x for x in self.renewals.get(c, ()) if x <= t_ms), default=None)
        return back is None or back <= last

    def churns_within(self, c: int, after_ms: int, until_ms: int) -> bool:
        return any(after_ms < x <= until_ms for x in self.churns.get(c, ()))

    def label(self, c: int, t_ms: int, h_ms: int, delay_ms: int = 0) -> int:
        """1 for a churn in (T - delay, T + h] with no renewal in (churn, T]."""
        back = [r for r in self.renewals.get(c, ()) if r <= t_ms]
        return int(any(t_ms - delay_ms < x <= t_ms + h_ms and not any(x < r for r in back)
                       for x in self.churns.get(c, ())))


def read_raw(path: Path | str) -> RawLog:
    """Every record with a customer id and a time counts as a sighting; interactions are counted by type;
    ``churned``/``renewed`` outcomes are the labels."""
    index: dict[str, int] = {}
    first: list[int] = []
    ts_l: list[int] = []
    cust_l: list[int] = []
    type_l: list[int] = []
    types: dict[str, int] = {}
    churns: dict[int, list[int]] = {}
    renewals: dict[int, list[int]] = {}
    with open(path, "rb") as fh:
        for line in fh:
            try:
                rec = orjson.loads(line)
                cid, ts = rec["customer_id"], _ms(rec["ts"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
            c = index.setdefault(cid, len(index))
            if c == len(first):
                first.append(ts)
            elif ts < first[c]:
                first[c] = ts
            source, typ = rec.get("source"), rec.get("type")
            if source == "interactions":
                ts_l.append(ts)
                cust_l.append(c)
                type_l.append(types.setdefault(str(typ), len(types)))
            elif source == "outcomes" and typ in ("churned", "renewed"):
                (churns if typ == "churned" else renewals).setdefault(c, []).append(ts)
    order = np.argsort(np.asarray(ts_l, dtype=np.int64), kind="stable")
    return RawLog(customers=list(index), index=index, first_ms=np.asarray(first, dtype=np.int64),
                  inter_ts=np.asarray(ts_l, dtype=np.int64)[order], inter_cust=np.asarray(cust_l, dtype=np.int64)[order],
                  inter_type=np.asarray(type_l, dtype=np.int64)[order], type_names=list(types),
                  churns={c: sorted(v) for c, v in churns.items()}, renewals={c: sorted(v) for c, v in renewals.items()})


# ---- rows and counts ----------------------------------------------------------------------------
@dataclass
class Rows:
    cust: np.ndarray
    obs_ms: np.ndarray
    y: np.ndarray

    def keys(self, raw: RawLog) -> list[tuple[str, int]]:
        return [(raw.customers[c], int(t)) for c, t in zip(self.cust, self.obs_ms)]


def observation_rows(raw: RawLog, dates: list[int], horizon_days: int, delay_days: int = 0) -> Rows:
    """At each T: customers with an event before T not known to have churned by T; label = churn in
    (T - delay, T + h] not ended by a renewal at or before T (no delay: a churn in (T, T + h])."""
    cust, obs, y = [], [], []
    h, d = horizon_days * DAY_MS, delay_days * DAY_MS
    for t in dates:
        for c in np.flatnonzero(raw.first_ms < t):
            c = int(c)
            if raw.churned_by(c, t, d):
                continue
            cust.append(c)
            obs.append(t)
            y.append(raw.label(c, t, h, d) if d else (1 if raw.churns_within(c, t, t + h) else 0))
    return Rows(np.asarray(cust, dtype=np.int64), np.asarray(obs, dtype=np.int64), np.asarray(y, dtype=np.int64))


def count_features(raw: RawLog, rows: Rows, types: list[str]) -> tuple[np.ndarray, list[str]]:
    """Per row: events of each of ``types``, then of all other types, in [T - 28 days, T); then tenure
    (days since the customer's first event of any kind)."""
    k = len(types)
    col = np.full(len(raw.type_names), k, dtype=np.int64)
    for j, name in enumerate(types):
        if name in raw.type_names:
            col[raw.type_names.index(name)] = j
    n_cust = len(raw.customers)
    X = np.zeros((rows.cust.size, k + 2), dtype=np.float64)
    for t in np.unique(rows.obs_ms):
        at = np.flatnonzero(rows.obs_ms == t)
        lo = np.searchsorted(raw.inter_ts, t - COUNT_DAYS * DAY_MS, side="left")
        hi = np.searchsorted(raw.inter_ts, t, side="left")  # ts < T only
        cells = raw.inter_cust[lo:hi] * (k + 1) + col[raw.inter_type[lo:hi]]
        counts = np.bincount(cells, minlength=n_cust * (k + 1)).reshape(n_cust, k + 1)
        X[at, :k + 1] = counts[rows.cust[at]]
        X[at, k + 1] = (t - raw.first_ms[rows.cust[at]]) / DAY_MS
    return X, [f"{t}_28d" for t in types] + ["other_types_28d", "tenure_days"]


def fit_logreg(X: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=5000)).fit(X, y)


# ---- metrics with customer weights --------------------------------------------------------------
def auc(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None, group: np.ndarray | None = None) -> float:
    """ROC-AUC with row weights (ties count half); ``group`` = ranks of the distinct scores, if known."""
    w = np.ones(y.size) if w is None else w
    if group is None:
        _, group = np.unique(p, return_inverse=True)
    pos = np.bincount(group, weights=w * y)
    neg = np.bincount(group, weights=w * (1 - y))
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos == 0 or total_neg == 0:
        return math.nan
    below = np.cumsum(neg) - neg
    return float((pos * (below + 0.5 * neg)).sum() / (total_pos * total_neg))


def lift(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None, pct: float = TOP_PCT,
         order: np.ndarray | None = None) -> float:
    """Churn rate among the top ``pct`` % of scores over the overall rate; the top holds ceil(pct % of the
    rows), ties broken by row order — churnwatch's definition, here with weights (a row drawn twice
    counts twice; the boundary row counts in part)."""
    w = np.ones(y.size) if w is None else w
    order = np.argsort(-p, kind="stable") if order is None else order
    total = w.sum()
    rate = (w * y).sum() / total if total else 0.0
    if rate == 0:
        return math.nan
    n = max(1.0, math.ceil(total * pct / 100.0 - 1e-9))
    ws = w[order]
    before = np.cumsum(ws) - ws
    take = np.clip(n - before, 0.0, ws)
    return float((take * y[order]).sum() / n / rate)


@dataclass
class Interval:
    value: float
    lo: float
    hi: float

    def fmt(self, digits: int = 3, sign: bool = False) -> str:
        f = f"{{:{'+' if sign else ''}.{digits}f}}"
        return f"{f.format(self.value)} [{f.format(self.lo)}, {f.format(self.hi)}]"


def bootstrap(cust: np.ndarray, y: np.ndarray, scores: dict[str, np.ndarray], draws: int = 1000,
              seed: int = 0) -> dict[str, dict[str, Interval]]:
    """Point estimates and 95 % percentile intervals of ROC-AUC and lift@10 % per scorer, and of the
    first scorer minus each other one (``"<a> - <b>"``), resampling customers."""
    ids, inverse = np.unique(cust, return_inverse=True)
    rng = np.random.default_rng(seed)
    names = list(scores)
    orders = {n: np.argsort(-p, kind="stable") for n, p in scores.items()}
    groups = {n: np.unique(p, return_inverse=True)[1] for n, p in scores.items()}
    point = {n: (auc(y, p, group=groups[n]), lift(y, p, order=orders[n])) for n, p in scores.items()}
    samples = {n: np.empty((draws, 2)) for n in names}
    for i in range(draws):
        per_customer = np.bincount(rng.integers(0, ids.size, ids.size), minlength=ids.size).astype(np.float64)
        w = per_customer[inverse]
        for n, p in scores.items():
            samples[n][i] = (auc(y, p, w, groups[n]), lift(y, p, w, order=orders[n]))

    def interval(value: float, series: np.ndarray) -> Interval:
        lo, hi = np.nanpercentile(series, [2.5, 97.5])
        return Interval(value, float(lo), float(hi))

    out: dict[str, dict[str, Interval]] = {}
    for n in names:
        out[n] = {"roc_auc": interval(point[n][0], samples[n][:, 0]), "lift_at_10": interval(point[n][1], samples[n][:, 1])}
    first = names[0]
    for n in names[1:]:
        diff = samples[first] - samples[n]
        out[f"{first} - {n}"] = {"roc_auc": interval(point[first][0] - point[n][0], diff[:, 0]),
                                 "lift_at_10": interval(point[first][1] - point[n][1], diff[:, 1])}
    return out


# ---- a trained version against the baseline ------------------------------------------------------
def _period_dates(period: dict[str, Any], cadence_days: int) -> list[int]:
    start, end = _ms(period["start"]), _ms(period["end"])
    dates = list(range(start, end + 1, cadence_days * DAY_MS))
    if len(dates) != int(period["dates"]) or dates[-1] != end:
        raise ValueError(f"period {period} is not every {cadence_days} days")
    return dates


@dataclass
class Comparison:
    """Model vs the independent baseline on one version's test rows."""

    rows: int
    positives: int
    customers: int
    train_rows: int
    train_positives: int
    types: list[str]
    spec_types: list[str]
    stats: dict[str, dict[str, Interval]]
    builtin: dict[str, Any]
    checks: list[str]

    @property
    def diff(self) -> dict[str, Interval]:
        return self.stats["model - baseline"]


def saved_test_rows(vdir: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """A version's counted test rows from its ``scores.npz``: customer ids, observation times, labels
    and the model's scores."""
    with np.load(vdir / "scores.npz", allow_pickle=False) as z:
        counted = z["test.counted"].astype(bool)
        return (z["test.customer_ids"][counted].tolist(), z["test.obs_ms"][counted].astype(np.int64),
                z["test.y"][counted].astype(np.int64), z["test.score.model"][counted].astype(np.float64))


def compare(log_path: Path | str, version_dir: Path | str, top_k: int = 16, draws: int = 1000,
            seed: int = 0) -> Comparison:
    """Refit the baseline on ``version_dir``'s training period of ``log_path`` and compare it with the
    version's saved test-period scores on the same rows (see :func:`compare_scores`)."""
    vdir = Path(version_dir)
    meta = orjson.loads((vdir / "meta.json").read_bytes())
    ids, obs, y, p = saved_test_rows(vdir)
    metrics = orjson.loads((vdir / "metrics.json").read_bytes()) if (vdir / "metrics.json").is_file() else {}
    out = compare_scores(log_path, meta["split"], int(meta["horizon_days"]), int(meta["cadence_days"]), ids, obs, y,
                         p, train_counts=meta.get("rows", {}).get("train"), top_k=top_k, draws=draws, seed=seed,
                         label_delay_days=int(meta.get("label_delay_days") or 0))
    out.spec_types = list((meta.get("feature_spec") or {}).get("types") or [])
    out.builtin = (metrics.get("evaluation") or {}).get("comparison") or meta.get("comparison") or {}
    return out


def compare_scores(log_path: Path | str, split: dict[str, Any], horizon_days: int, cadence_days: int,
                   customer_ids: list[str], obs_ms: np.ndarray, y: np.ndarray, model_scores: np.ndarray, *,
                   train_counts: dict[str, Any] | None = None, top_k: int = 16, draws: int = 1000,
                   seed: int = 0, label_delay_days: int = 0) -> Comparison:
    """The baseline fitted on ``split``'s training period of ``log_path``, against ``model_scores`` on the
    model's test rows (``customer_ids``/``obs_ms``, labels ``y``; ``split`` as in ``meta.json``).

    Raises ValueError when the rows rebuilt from the raw log differ from the model's test rows or labels
    (or from ``train_counts``, the model's ``{"rows", "positives"}`` in training): the comparison would not
    be like for like."""
    raw = read_raw(log_path)
    types = raw.top_types(top_k)
    train = observation_rows(raw, _period_dates(split["train"], cadence_days), horizon_days, label_delay_days)
    test = observation_rows(raw, _period_dates(split["test"], cadence_days), horizon_days, label_delay_days)
    position = {(str(c), int(t)): i for i, (c, t) in enumerate(zip(customer_ids, obs_ms))}
    keys = test.keys(raw)
    if len(position) != len(keys) or set(position) != set(keys):
        missing, extra = len(set(position) - set(keys)), len(set(keys) - set(position))
        raise ValueError(f"rebuilt test rows differ from the model's: {missing} only in the model's, {extra} only "
                         f"rebuilt (of {len(position)})")
    at = np.asarray([position[k] for k in keys], dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    if not np.array_equal(y[at], test.y):
        raise ValueError(f"rebuilt test labels differ from the model's on {int((y[at] != test.y).sum())} rows")
    checks = ["test rows and labels identical to the model's"]
    if train_counts:
        if (train_counts.get("rows"), train_counts.get("positives")) != (train.y.size, int(train.y.sum())):
            raise ValueError(f"rebuilt training rows ({train.y.size}, {int(train.y.sum())} positive) differ from "
                             f"the model's {train_counts}")
        checks.append("training rows identical in number and positives")
    X_train, _ = count_features(raw, train, types)
    X_test, _ = count_features(raw, test, types)
    p_base = fit_logreg(X_train, train.y).predict_proba(X_test)[:, 1]
    p_model = np.asarray(model_scores, dtype=np.float64)[at]
    stats = bootstrap(test.cust, test.y, {"model": p_model, "baseline": p_base}, draws, seed)
    return Comparison(rows=int(test.y.size), positives=int(test.y.sum()), customers=int(np.unique(test.cust).size),
                      train_rows=int(train.y.size), train_positives=int(train.y.sum()), types=types,
                      spec_types=[], stats=stats, builtin={}, checks=checks)
