"""Per-tier alert thresholds and what they imply.

Thresholds follow a CSM team's capacity: ``TrainConfig.alert_budget_per_1k_week`` new alerts per week
per 1,000 customers, measured on validation by replaying the stream's alert policy
(:func:`training.assess.alert_measures.propose_thresholds`), VIPs flagged at a higher rate (a lower threshold).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.core.alerting import tier_threshold
from pipeline.core.contract import DEFAULT_TIER, VIP_TIER
from training.assess.alert_measures import alert_rate, propose_thresholds
from training.assess.measures import json_safe, score_quantile_threshold
from training.fit.config import TrainConfig
from training.fit.split import Period, TimeSplit, period_rows
from training.rows.dataset import Dataset


def policy_rate(dataset: Dataset, period: Period, scores: np.ndarray, thresholds: dict[str, float]) -> dict[str, Any]:
    """:func:`training.assess.alert_measures.alert_rate` over one period, with the purge gap before it as warm-up."""
    rows, counted = period_rows(dataset.obs_ms, period, dataset.config.purge_days)
    return alert_rate(dataset.customer_ids[rows], dataset.obs_ms[rows], dataset.tiers[rows], dataset.y[rows],
                      scores[rows], thresholds, counted[rows], dataset.config.cadence_days)


def guide_thresholds(dataset: Dataset, split: TimeSplit, scores: np.ndarray,
                     cfg: TrainConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Per-tier thresholds for a scorer, chosen on validation (plus the purge gap before it as the alert
    policy's warm-up), and the record of how: the budget, the expected weekly volume and precision.
    ``scores`` is aligned with ``dataset`` (see :func:`training.fit.split.scores_for`)."""
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
    """:func:`training.assess.alert_measures.propose_thresholds` with this config's VIP ratio and threshold floor
    (``min_threshold_lift`` × the churn rate of the counted rows)."""
    counted = np.asarray(counted, dtype=bool)
    rate = float(y[counted].mean()) if counted.any() else 0.0
    guidance = propose_thresholds(ids, obs, tiers, y, p, counted, budget, cfg.vip_threshold_ratio, cadence_days,
                                  min_threshold=round(min(1.0, cfg.min_threshold_lift * rate), 6))
    guidance["chosen_on"] = chosen_on
    guidance["base_rate"] = rate
    return dict(guidance["thresholds"]), json_safe(guidance)



def choose_thresholds(p: np.ndarray, tiers: np.ndarray, top_pct: dict[str, float]) -> dict[str, float]:
    """Per-tier score thresholds that alert about ``top_pct[tier]`` % of that tier's customers.

    A tier absent from the data falls back to the whole population's quantile. VIPs must be alerted at
    least as early as standard customers, so their threshold is capped at the standard one.
    """
    out: dict[str, float] = {}
    for tier, pct in top_pct.items():
        scores = p[tiers == tier]
        out[tier] = score_quantile_threshold(scores if scores.size else p, pct)
    if VIP_TIER in out and DEFAULT_TIER in out:
        out[VIP_TIER] = min(out[VIP_TIER], out[DEFAULT_TIER])
    return {tier: round(float(v), 6) for tier, v in out.items()}



def alert_volume(part: Dataset, p: np.ndarray, thresholds: dict[str, float]) -> dict[str, Any]:
    """How many snapshots would cross their tier threshold, per observation (≈ per week at the default
    cadence), and how many of those churn — the CSM workload the thresholds imply."""
    cut = np.array([tier_threshold(thresholds, t) for t in part.tiers], dtype=np.float64)
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

