"""How the stream's alerts would fare under a scorer: the volume of new alerts a CSM team would get
(per week per 1,000 customers, counted by replaying the stream's alert policy), the per-tier thresholds
that fit a weekly alert budget, and the lead time between a churner's first flag and their churn."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pipeline.core.alerting import tier_threshold
from pipeline.core.contract import DEFAULT_TIER, VIP_TIER
from training.assess.measures import json_safe, score_quantile_threshold

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
    above = (p >= np.array([tier_threshold(thresholds, str(t)) for t in tiers], dtype=np.float64)) & counted
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
    out["tiers"] = {str(t): dict(block(tiers == t), threshold=tier_threshold(thresholds, str(t)))
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
    rest = p[tiers != VIP_TIER]
    if rest.size == 0:
        rest = p
    standard = score_quantile_threshold(rest, 100.0 * share) if share > 0 and rest.size else 1.0
    return {VIP_TIER: round(vip_ratio * standard, 6), DEFAULT_TIER: round(standard, 6)}


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
        if thr[DEFAULT_TIER] < min_threshold:
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

    n_standard = max(1, int((period_tiers != VIP_TIER).sum()))
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
        thr = {VIP_TIER: 1.0, DEFAULT_TIER: 1.0}
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
    horizon_ms = horizon_days * 86_400_000
    first_flag: dict[str, int] = {}
    for cid, t, tier, score in zip(customer_ids.tolist(), obs_ms.tolist(), tiers.tolist(), p.tolist()):
        churn = churn_ms.get(cid)
        if churn is None or not churn - horizon_ms <= t < churn:
            continue
        if score >= tier_threshold(thresholds, str(tier)) and t < first_flag.get(cid, churn):
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

