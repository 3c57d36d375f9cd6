"""The evaluation report of a model: ``metrics.json``, ``report/report.html`` and its PNG plots.

Every number and every figure shows the model beside the two baselines fitted in the same run
(:mod:`training.fit.baselines`), on the same rows of a period the model never saw (the time split's test
period at training time; the later part of a log with ``churnwatch evaluate --events``). What is
measured, per scorer:

- ranking: ROC-AUC, PR-AUC (average precision), precision / recall / lift of the top 5, 10 and 20 %;
- probabilities: Brier score and a reliability table (mean predicted vs observed churn per score bin);
- workload: new alerts per week per 1,000 customers at the scorer's per-tier thresholds, counted by
  replaying the stream's alert policy (:func:`training.assess.alert_measures.alert_rate`), and their precision;
- timeliness: lead time between a churner's first flag and their churn
  (:func:`training.assess.alert_measures.lead_times`);
- threshold guidance: the per-tier thresholds that fit a weekly alert budget
  (:func:`training.assess.alert_measures.propose_thresholds`), with the volume and precision they imply.

The computation here (:func:`score_period`) works on plain arrays; :func:`training.report.page.render`
draws the HTML page and the plots (:mod:`training.report.plots`) from the JSON alone, so
``churnwatch evaluate VERSION`` can re-draw a saved report without data; :mod:`training.report.terminal`
prints the same figures as tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from training.assess.alert_measures import alert_rate, lead_times
from training.assess.intervals import CI_METRICS, customer_weights, interval, weighted_metrics
from training.assess.measures import curves, json_safe, reliability, scalar_metrics
from training.fit.baselines import BASELINE_LABELS

MODEL = "model"
#: Scorers in the order tables and legends show them.
LABELS: dict[str, str] = {MODEL: "LightGBM model", **BASELINE_LABELS}
PCTS = (5, 10, 20)


@dataclass
class Frame:
    """The rows a period is evaluated on: the period's own rows (``counted``) plus the purge gap before
    it (horizon + label delay), which only warms up the alert policy's memory and holds early flags of the period's churners.
    ``churn_ms``: the period's churners (a positive row in the period) and their churn instant."""

    customer_ids: np.ndarray
    obs_ms: np.ndarray
    tiers: np.ndarray
    y: np.ndarray
    counted: np.ndarray
    churn_ms: dict[str, int]
    cadence_days: int
    horizon_days: int

    def __len__(self) -> int:
        return int(self.y.shape[0])


def score_period(frame: Frame, p: np.ndarray, thresholds: Mapping[str, float]) -> dict[str, Any]:
    """Every figure of one scorer over one period (``p`` aligned with the frame's rows)."""
    p = np.asarray(p, dtype=np.float64)
    c = frame.counted
    thresholds = dict(thresholds)
    return json_safe({
        "thresholds": thresholds,
        "metrics": scalar_metrics(frame.y[c], p[c]),
        "calibration": reliability(frame.y[c], p[c]),
        "curves": curves(frame.y[c], p[c]),
        "alerts": alert_rate(frame.customer_ids, frame.obs_ms, frame.tiers, frame.y, p, thresholds, c,
                             frame.cadence_days),
        "lead_time": lead_times(frame.customer_ids, frame.obs_ms, frame.tiers, p, thresholds, frame.churn_ms,
                                frame.horizon_days),
    })


def headline(block: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of a scorer that go in summary tables and the CLI."""
    m, alerts, lead = block["metrics"], block["alerts"], block["lead_time"]
    out = {k: m.get(k) for k in ("roc_auc", "pr_auc", "brier")}
    for pct in PCTS:
        out[f"lift_at_{pct}"] = m.get(f"lift_at_{pct}")
        out[f"precision_at_{pct}"] = m.get(f"precision_at_{pct}")
        out[f"recall_at_{pct}"] = m.get(f"recall_at_{pct}")
    out["alerts_per_week_per_1k"] = alerts.get("share_per_1k_all")
    out["alert_precision"] = alerts.get("precision")
    out["lead_median_days"] = lead.get("median_days")
    out["flagged_share"] = lead.get("flagged_share")
    out["flagged_early_share"] = lead.get("share_flagged_early")
    return json_safe(out)


#: Fewer churners than this in the test period and every figure is mostly noise: said loudly.
MIN_TEST_CHURNERS = 30


def with_ci(value: Any, ci: Any, fmt: str) -> str:
    """``0.801 (0.762-0.840)``: a figure with its 95 % bootstrap interval, when it has one."""
    text = format_value(value, fmt)
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(x, (int, float)) for x in ci):
        text += f" ({format_value(ci[0], fmt)}–{format_value(ci[1], fmt)})"
    return text


def evaluation_section(frame: Frame, period: Mapping[str, Any],
                       scorers: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``evaluation`` section of ``metrics.json``.

    ``scorers`` maps a scorer name (``model``, then the baselines) to ``p`` (scores aligned with the
    frame), ``thresholds``, and optionally ``guidance`` and ``importance``.
    """
    c = frame.counted
    out: dict[str, Any] = {
        "period": dict(period, rows=int(c.sum()), positives=int(frame.y[c].sum()), churners=len(frame.churn_ms),
                       customers=int(np.unique(frame.customer_ids[c]).size)),
        "scorers": {},
        "comparison": {},
    }
    # one set of customer resamples for every scorer: intervals of differences are paired
    weights = customer_weights(frame.customer_ids[c])
    draws: dict[str, dict[str, np.ndarray]] = {}
    for name, s in scorers.items():
        block = score_period(frame, s["p"], s["thresholds"])
        block["label"] = LABELS.get(name, name)
        block["guidance"] = s.get("guidance") or {}
        block["importance"] = s.get("importance") or {}
        draws[name] = weighted_metrics(frame.y[c], np.asarray(s["p"])[c], weights)
        block["ci"] = {k: interval(draws[name][k]) for k in CI_METRICS}
        out["scorers"][name] = block
        out["comparison"][name] = dict(headline(block), ci=block["ci"])
    first = next(iter(draws), None)
    for name in list(draws)[1:]:
        # the leading scorer (the model) minus this one, per resample
        out["comparison"][name]["ci_lead"] = {k: interval(draws[first][k] - draws[name][k]) for k in CI_METRICS}
    out["period"]["few_churners"] = out["period"]["churners"] < MIN_TEST_CHURNERS
    return json_safe(out)



def format_value(value: Any, fmt: str = ".3f") -> str:
    return format(value, fmt) if isinstance(value, (int, float)) and not isinstance(value, bool) else "n/a"



#: (key, label, format, higher is better?) rows of the headline table
HEADLINE_ROWS = [
    ("roc_auc", "ROC-AUC", ".3f", True),
    ("pr_auc", "PR-AUC (average precision)", ".3f", True),
    ("brier", "Brier score", ".4f", False),
    *[(f"lift_at_{k}", f"lift, top {k} %", ".2f", True) for k in PCTS],
    *[(f"precision_at_{k}", f"precision, top {k} %", ".3f", True) for k in PCTS],
    *[(f"recall_at_{k}", f"recall, top {k} %", ".3f", True) for k in PCTS],
    ("alerts_per_week_per_1k", "new alerts / week / 1,000 customers (at its thresholds)", ".1f", None),
    ("alert_precision", "precision of those alerts", ".3f", True),
    ("flagged_share", "churners flagged within the horizon", ".3f", True),
    ("lead_median_days", "median lead time (days)", ".1f", True),
    ("flagged_early_share", "churners flagged ≥ 14 days ahead", ".3f", True),
]


def guidance_rows(guidance: Mapping[str, Any], tested: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Per-tier rows of threshold guidance: threshold, expected alerts / week / 1k (of the tier and as a
    share of all customers), precision on the period it was chosen on, and, when given, what the test
    period then showed at the same thresholds."""
    expected = (guidance.get("expected") or {}).get("tiers") or {}
    tested_tiers = ((tested or {}).get("tiers") or {})
    out = []
    for tier, thr in sorted((guidance.get("thresholds") or {}).items()):
        e, t = expected.get(tier) or {}, tested_tiers.get(tier) or {}
        out.append({"tier": tier, "threshold": thr, "per_week_per_1k": e.get("per_week_per_1k"),
                    "share_per_1k_all": e.get("share_per_1k_all"), "precision": e.get("precision"),
                    "test_share_per_1k_all": t.get("share_per_1k_all") if tested else None,
                    "test_precision": t.get("precision") if tested else None})
    return out



def cv_line(cv: Mapping[str, Any]) -> str:
    """One line on how the rounds (and settings) were chosen, for the printed summary and the report."""
    if not cv.get("folds"):
        return (f"rounds: {cv.get('rounds')} by early stopping on the validation period "
                f"(no cross-validation: {cv.get('fallback')})")
    folds = cv["folds"]
    text = (f"rounds: {cv.get('rounds')} from {len(folds)} rolling-origin folds (best iterations "
            f"{', '.join(str(f['best_iteration']) for f in folds)}; mean fold ROC-AUC {cv.get('mean_roc_auc', 0):.3f})")
    search = cv.get("search")
    if search:
        chosen = search.get("chosen") or {}
        which = ("kept the configured settings" if not search.get("changed") else
                 "chose " + ", ".join(f"{k}={v:g}" for k, v in chosen.items()))
        text += f"; search over {len(search.get('candidates') or [])} settings {which}"
        if search.get("stopped"):
            text += f" ({search['stopped']})"
    if cv.get("note"):
        text += f" [{cv['note']}]"
    return text

