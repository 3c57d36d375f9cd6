"""Evaluation maths for churn scores. Pure functions over label and score arrays.

Churn is rare and CSMs can only call so many customers, so the numbers that matter are about the top of
the ranking (precision, recall and lift in the top k%) as much as the global ones (ROC-AUC, PR-AUC).
Brier score and a reliability table say whether the calibrated probabilities can be read as
probabilities. Metrics that are undefined for the data (AUC with one class) are NaN, never an exception:
an evaluation report must always be producible.
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


def evaluate(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray,
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


# ---- alert volume under the stream's policy --------------------------------------------------------
# A CSM team's capacity is counted in *new alerts*, and the stream does not re-alert a customer who stays
# above the threshold: one open alert per customer, re-armed only after the score falls below a lower mark
# and a cool-down has passed (``pipeline.core.alerting``). "Rows above the threshold per week" would count the
# same at-risk customer every week and overstate the workload several times over, so the volume below
# replays the stream's own ``decide``/``record`` over each customer's snapshots in time order.

def policy_alerts(customer_ids: np.ndarray, obs_ms: np.ndarray, tiers: np.ndarray, p: np.ndarray,
                  thresholds: dict[str, float], policy: Any = None) -> np.ndarray:
    """Which rows would raise a *new* alert if the worker scored each customer at its snapshot times.

    Uses :func:`pipeline.core.alerting.decide` and :meth:`pipeline.core.alert_memory.AlertMemory.record` unchanged, so volume
    estimates follow the policy the worker runs. Offline there are no acknowledgements, which only
    matters for escalations (not counted here): a new alert needs re-arming and the cool-down either way.
    """
    from pipeline.core import alerting
    from pipeline.core.alert_memory import AlertMemory

    cfg = policy if policy is not None else alerting.AlertConfig()
    n = len(p)
    out = np.zeros(n, dtype=bool)
    if n == 0:
        return out
    order = np.lexsort((obs_ms, customer_ids.astype(str)))
    memory = AlertMemory()
    current = None
    for i in order:
        cid = customer_ids[i]
        if cid != current:
            current, memory = cid, AlertMemory()
        score, tier, now = float(p[i]), str(tiers[i]), int(obs_ms[i])
        decision = alerting.decide(memory, score=score, tier=tier, now_ms=now, history_days=math.inf,
                                   churned=False, cfg=cfg, model_thresholds=thresholds)
        if decision is not None and decision.kind == "new":
            alert = alerting.build(str(cid), tier, "", score, decision, [], "", None, now, now)
            memory.record(alert)
            out[i] = True
    return out


def alert_rate(customer_ids: np.ndarray, obs_ms: np.ndarray, tiers: np.ndarray, y: np.ndarray, p: np.ndarray,
               thresholds: dict[str, float], counted: np.ndarray, cadence_days: int = 7,
               policy: Any = None) -> dict[str, Any]:
    """Expected new alerts per week per 1,000 customers, and how many of them churn, per tier.

    ``counted`` marks the rows of the period being measured; the other rows given (the weeks just before
    it) only warm the policy's memory up, so customers already alerted before the period are not counted
    as a burst of new alerts on its first date. Rates are per week (``7 / cadence_days`` snapshots) and
    per 1,000 customers eligible on an average snapshot date. ``per_week_per_1k`` of a tier is relative
    to that tier's customers; ``share_per_1k_all`` is the tier's contribution to the all-customer rate
    (what a budget constrains).
    """
    customer_ids, obs_ms, tiers = np.asarray(customer_ids), np.asarray(obs_ms), np.asarray(tiers)
    y, p, counted = np.asarray(y), np.asarray(p, dtype=np.float64), np.asarray(counted, dtype=bool)
    new = policy_alerts(customer_ids, obs_ms, tiers, p, thresholds, policy) & counted
    default = thresholds.get("standard", 0.5)
    above = (p >= np.array([thresholds.get(str(t), default) for t in tiers], dtype=np.float64)) & counted
    dates = max(1, np.unique(obs_ms[counted]).size)
    weeks = dates * cadence_days / 7.0
    per_date_all = counted.sum() / dates

    def block(mask: np.ndarray) -> dict[str, Any]:
        rows = int((mask & counted).sum())
        alerts = int((new & mask).sum())
        customers = rows / dates
        return {
            "customers_per_week": customers,
            "alerts": alerts,
            "alerts_per_week": alerts / weeks,
            "per_week_per_1k": 1000.0 * alerts / weeks / customers if customers else math.nan,
            "share_per_1k_all": 1000.0 * alerts / weeks / per_date_all if per_date_all else math.nan,
            "flagged_per_week_per_1k": (1000.0 * int((above & mask).sum()) / weeks / customers
                                        if customers else math.nan),
            "precision": float(y[new & mask].mean()) if (new & mask).any() else math.nan,
            "flagged_precision": float(y[above & mask].mean()) if (above & mask).any() else math.nan,
        }

    out = block(np.ones(len(p), dtype=bool))
    out["weeks"] = weeks
    out["dates"] = int(np.unique(obs_ms[counted]).size)
    out["tiers"] = {str(t): dict(block(tiers == t), threshold=thresholds.get(str(t), default))
                    for t in sorted(set(tiers[counted].tolist()) | set(thresholds))}
    return json_safe(out)


def tier_thresholds(p: np.ndarray, tiers: np.ndarray, share: float, vip_ratio: float) -> dict[str, float]:
    """The standard threshold that flags ``share`` of the standard tier's rows, and the VIP threshold at
    ``vip_ratio`` times it.

    VIPs are alerted earlier by *risk*, not by a share of their tier: a VIP is called once their churn
    probability reaches ``vip_ratio`` of what triggers a standard alert (the stream's default policy
    uses 0.35 vs 0.5, i.e. 0.7). A share of the VIP tier would instead flag healthy VIPs whenever VIPs
    are rarely at risk. Rounded to 6 decimals, the precision stored in the metadata.
    """
    rest = p[tiers != "vip"]
    if rest.size == 0:
        rest = p
    standard = score_quantile_threshold(rest, 100.0 * share) if share > 0 and rest.size else 1.0
    return {"vip": round(vip_ratio * standard, 6), "standard": round(standard, 6)}


def propose_thresholds(customer_ids: np.ndarray, obs_ms: np.ndarray, tiers: np.ndarray, y: np.ndarray,
                       p: np.ndarray, counted: np.ndarray, budget_per_1k_week: float, vip_ratio: float = 0.7,
                       cadence_days: int = 7, policy: Any = None, min_threshold: float = 0.0) -> dict[str, Any]:
    """Per-tier thresholds that spend as much of a weekly alert budget as possible without exceeding it.

    The budget is what a CSM team can work: new alerts per week per 1,000 customers (all tiers). The
    search is over the share of standard customers flagged, the VIP threshold being ``vip_ratio`` times
    the standard one (VIPs are alerted earlier, see :func:`tier_thresholds`); the volume of each candidate is measured by replaying the stream's
    alert policy on the given rows (:func:`alert_rate`). The answer is the largest share before the
    volume first exceeds the budget, and the returned thresholds are always ones whose *measured*
    volume is within it (``within_budget`` is False only when even the top score alone is too many).

    ``min_threshold`` is a floor under the standard threshold: a budget larger than the customers at
    real risk is left partly unspent rather than filled with customers at ordinary risk
    (``floor_binding`` says it happened). The search is over the period's rows, so on little data a
    single share step can be a large threshold step; the floor keeps that from reaching healthy
    customers.
    """
    p = np.asarray(p, dtype=np.float64)
    tiers, counted = np.asarray(tiers), np.asarray(counted, dtype=bool)
    period_p, period_tiers = p[counted], tiers[counted]

    def measure(share: float) -> tuple[dict[str, float], dict[str, Any]]:
        thr = tier_thresholds(period_p, period_tiers, share, vip_ratio)
        return thr, alert_rate(customer_ids, obs_ms, tiers, y, p, thr, counted, cadence_days, policy)

    # Why the last candidate that did not fit failed: the last failure is the upper end of the final
    # bracket, so "floor" there means the floor, not the budget, decided the answer.
    last_failure = ""

    def fits(candidate: tuple[dict[str, float], dict[str, Any]]) -> bool:
        nonlocal last_failure
        thr, rate = candidate
        if thr["standard"] < min_threshold:
            last_failure = "floor"
            return False
        value = rate["share_per_1k_all"]
        if value is not None and value <= budget_per_1k_week:
            return True
        last_failure = "budget"
        return False

    # Walk up a geometric ladder of shares to the first one over budget, then bisect between it and the
    # last one within. Not a bisection over all of [0, 1]: the volume of *new* alerts falls again at
    # very low thresholds (nearly everyone is above, alerted once during the warm-up and never re-armed),
    # and that empty-looking end of the curve is no place to be. So the walk keeps the share with the
    # most new alerts so far (the higher threshold on a tie) and stops early once the volume has fallen
    # to half of that peak: a budget larger than the curve's peak (a small population) then gets the
    # peak, not the degenerate "everybody is above the threshold" end.
    def volume(candidate: tuple[dict[str, float], dict[str, Any]]) -> float:
        return candidate[1]["share_per_1k_all"] or 0.0

    n_standard = max(1, int((period_tiers != "vip").sum()))
    ladder = [min(1.0, (1.0 / n_standard) * 1.5 ** k) for k in range(64)]
    ladder = sorted(set(ladder))
    lo, hi = 0.0, None
    best = measure(0.0)
    feasible = fits(best)
    if feasible:
        for share in ladder:
            candidate = measure(share)
            if not fits(candidate):
                hi = share
                break
            if volume(candidate) > volume(best):
                lo, best = share, candidate
            elif volume(candidate) < 0.5 * volume(best):
                break
        while hi is not None and (hi - lo) * n_standard > 1.0:  # resolved to about one standard row
            mid = (lo + hi) / 2
            candidate = measure(mid)
            if fits(candidate):
                lo = mid
                if volume(candidate) >= volume(best):
                    best = candidate
            else:
                hi = mid
    else:  # even the single highest score is over budget: alert nobody, and say so
        thr = {"vip": 1.0, "standard": 1.0}
        best = (thr, alert_rate(customer_ids, obs_ms, tiers, y, p, thr, counted, cadence_days, policy))
    thresholds, rate = best
    return json_safe({
        "budget_per_1k_week": budget_per_1k_week,
        "vip_ratio": vip_ratio,
        "standard_share": lo,
        "within_budget": feasible,
        "min_threshold": min_threshold,
        "floor_binding": feasible and last_failure == "floor",
        "thresholds": thresholds,
        "expected": rate,
    })


# ---- lead time ----------------------------------------------------------------------------------------
def lead_times(customer_ids: np.ndarray, obs_ms: np.ndarray, tiers: np.ndarray, p: np.ndarray,
               thresholds: dict[str, float], churn_ms: dict[str, int], horizon_days: int,
               early_days: float = 14.0) -> dict[str, Any]:
    """How long before churning each churner was first above its tier threshold.

    ``churn_ms`` maps the churners to evaluate to their churn instant. A churner's candidate snapshots
    are its rows in ``[churn - horizon, churn)``: a score is a forecast of churn within the horizon, so
    a flag earlier than that was not yet a correct call (and the look-back must not reach into rows the
    model was calibrated on; the time split's purge gap is one horizon long). Lead time = churn − first
    flagged snapshot, in days. ``share_flagged_early`` is over *all* churners: an unflagged churner
    counts against it, so a scorer cannot look good by flagging only a few churners early.
    """
    customer_ids, obs_ms, tiers = np.asarray(customer_ids), np.asarray(obs_ms), np.asarray(tiers)
    p = np.asarray(p, dtype=np.float64)
    default = thresholds.get("standard", 0.5)
    horizon_ms = horizon_days * 86_400_000
    first_flag: dict[str, int] = {}
    for cid, t, tier, score in zip(customer_ids.tolist(), obs_ms.tolist(), tiers.tolist(), p.tolist()):
        churn = churn_ms.get(cid)
        if churn is None or not churn - horizon_ms <= t < churn:
            continue
        if score >= thresholds.get(str(tier), default) and t < first_flag.get(cid, churn):
            first_flag[cid] = t
    days = sorted((churn_ms[cid] - t) / 86_400_000 for cid, t in first_flag.items())
    arr = np.asarray(days, dtype=np.float64)
    n = len(churn_ms)
    q = (lambda v: float(np.quantile(arr, v))) if arr.size else (lambda v: math.nan)
    return json_safe({
        "churners": n,
        "flagged": len(days),
        "flagged_share": len(days) / n if n else math.nan,
        "median_days": q(0.5),
        "p25_days": q(0.25),
        "p75_days": q(0.75),
        "early_days": early_days,
        "share_flagged_early": float((arr >= early_days).sum()) / n if n else math.nan,
        "days": [round(d, 3) for d in days],
    })


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


# ---- confidence intervals ----------------------------------------------------------------------------
#: Bootstrap draws behind every interval: the 2.5/97.5 % quantiles move by ~0.005-0.01 AUC between seeds at
#: 500 draws on a few thousand rows, well under the intervals' own width, for ~0.5 s per scorer.
BOOTSTRAP_DRAWS = 500
CI_METRICS = ("roc_auc", "pr_auc", "lift_at_10")


def customer_weights(groups: np.ndarray, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> np.ndarray:
    """Row weights of ``draws`` bootstrap resamples **of customers** (a row counts as often as its customer
    was drawn): a customer's weekly rows are not independent, so resampling rows would understate the
    spread. One matrix for every scorer, so differences between scorers are paired."""
    _, cust = np.unique(np.asarray(groups), return_inverse=True)
    n_cust = int(cust.max()) + 1 if cust.size else 0
    if n_cust == 0:
        return np.zeros((draws, 0))
    rng = np.random.default_rng(seed)
    # float32 holds these small counts exactly, in half the memory (500 draws x 60,000 test rows: 120 MB)
    counts = rng.multinomial(n_cust, np.full(n_cust, 1.0 / n_cust), size=draws).astype(np.float32)
    return counts[:, cust]


#: Values (resamples x rows) of one block in :func:`weighted_metrics`: 2M float64, 16 MB a temporary.
_BLOCK_VALUES = 2_000_000


def weighted_metrics(y: np.ndarray, p: np.ndarray, weights: np.ndarray, top_pct: float = 10.0) -> dict[str, np.ndarray]:
    """ROC-AUC, average precision and top-``top_pct`` lift for each row of ``weights`` (one resample per
    row), vectorised over resamples: rows of equal score are one group, as in the point estimates.
    Resamples are taken a block at a time, so the ~10 temporaries the size of a block stay small
    however many rows there are."""
    step = max(1, _BLOCK_VALUES // max(1, weights.shape[1]))
    if weights.shape[0] > step:
        parts = [weighted_metrics(y, p, weights[i:i + step], top_pct) for i in range(0, weights.shape[0], step)]
        return {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
    weights = np.asarray(weights, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(p, kind="mergesort")
    ps, ys, W = p[order], y[order], weights[:, order]
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]]) if ps.size else np.zeros(0, dtype=int)
    if ps.size == 0:
        nan = np.full(weights.shape[0], np.nan)
        return {"roc_auc": nan, "pr_auc": nan, "lift_at_10": nan}
    P = np.add.reduceat(W * ys, starts, axis=1)  # positives' weight per score group, ascending
    N = np.add.reduceat(W * (1.0 - ys), starts, axis=1)
    p_tot, n_tot = P.sum(1), N.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (P * (np.cumsum(N, axis=1) - N + 0.5 * N)).sum(1) / (p_tot * n_tot)
        # descending for the top of the ranking
        Pd, Wd = P[:, ::-1], (P + N)[:, ::-1]
        cum_p, cum_w = np.cumsum(Pd, axis=1), np.cumsum(Wd, axis=1)
        ap = (Pd / p_tot[:, None] * (cum_p / np.where(cum_w > 0, cum_w, np.nan))).sum(1)
        total = cum_w[:, -1]
        cut = total * top_pct / 100.0
        k = np.argmax(cum_w >= cut[:, None], axis=1)
        rows = np.arange(W.shape[0])
        before_w = np.where(k > 0, cum_w[rows, k - 1], 0.0)
        before_p = np.where(k > 0, cum_p[rows, k - 1], 0.0)
        share = np.where(Wd[rows, k] > 0, (cut - before_w) / Wd[rows, k], 0.0)
        tp = before_p + share * Pd[rows, k]
        lift = (tp / cut) / (p_tot / total)
    bad = (p_tot == 0) | (n_tot == 0)
    auc[bad], ap[p_tot == 0], lift[p_tot == 0] = np.nan, np.nan, np.nan
    return {"roc_auc": auc, "pr_auc": ap, "lift_at_10": lift}


def interval(values: np.ndarray) -> list[float] | None:
    """The central 95 % of ``values`` (NaN draws, e.g. a resample without churners, left out)."""
    v = values[np.isfinite(values)]
    if v.size < 10:
        return None
    lo, hi = np.quantile(v, [0.025, 0.975])
    return [float(lo), float(hi)]
