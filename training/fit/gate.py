"""The promotion gate: a newly trained model goes live only if the test period says it should.

Workers hot-load a promoted model within seconds, so ``train`` must not promote a model that is worse
than what runs today or than a baseline a data scientist could fit in ten lines. Both questions are
asked on the **same test rows**, and both are asked of the evidence, not of a lucky draw: with a few
dozen churners a point estimate moves by several hundredths of ROC-AUC between two equally good models.

* **Baselines** (fitted in the same run): the model fails against a baseline that beats it on *both*
  headline figures (ROC-AUC and top-decile lift), or that ranks significantly better (the 95 % paired
  bootstrap interval of the model's ROC-AUC lead lies below zero).
* **The current model**, re-scored on the new model's test rows with its *own* feature spec: the same
  two rules — better on both figures, or significantly better ranking — keep the current model.

A refused model is saved, not promoted, and the reasons are printed and kept in its ``meta.json``
(``gate``); ``--force-promote`` promotes it anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from training.assess.intervals import customer_weights, interval, weighted_metrics
from training.assess.measures import roc_auc, top_k


@dataclass
class Verdict:
    passed: bool = True
    reasons: list[str] = field(default_factory=list)
    #: the current model on the same rows, when there was one: version, its figures, the new one's lead
    current: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": list(self.reasons), "current": self.current}

    def fail(self, reason: str) -> None:
        self.passed = False
        self.reasons.append(reason)


def _f(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) else "n/a"


def judge_baselines(comparison: Mapping[str, Mapping[str, Any]], verdict: Verdict, model: str = "model") -> None:
    m = comparison.get(model) or {}
    auc, lift = m.get("roc_auc"), m.get("lift_at_10")
    for name, b in comparison.items():
        if name == model:
            continue
        b_auc, b_lift = b.get("roc_auc"), b.get("lift_at_10")
        lead = (b.get("ci_lead") or {}).get("roc_auc")
        both = all(isinstance(v, (int, float)) for v in (auc, lift, b_auc, b_lift)) and b_auc > auc and b_lift > lift
        significant = isinstance(lead, (list, tuple)) and lead[1] < 0
        if both or significant:
            why = "better on ROC-AUC and lift" if both else "ranks significantly better"
            verdict.fail(f"baseline {name} {why}: ROC-AUC {_f(b_auc)} vs {_f(auc)}, lift@10% {_f(b_lift)} vs {_f(lift)}"
                         + (f" (model's lead {_f(lead[0])}..{_f(lead[1])})" if isinstance(lead, (list, tuple)) else ""))


def judge_current(version: str, y: np.ndarray, new_p: np.ndarray, cur_p: np.ndarray, customer_ids: np.ndarray,
                  verdict: Verdict) -> None:
    """Compare the new model's scores with the current model's on the same rows (paired resamples)."""
    weights = customer_weights(customer_ids)
    new_d, cur_d = weighted_metrics(y, new_p, weights), weighted_metrics(y, cur_p, weights)
    lead = interval(new_d["roc_auc"] - cur_d["roc_auc"])
    figures = {"version": version, "roc_auc": roc_auc(y, cur_p), "lift_at_10": top_k(y, cur_p, 10).lift,
               "new_roc_auc": roc_auc(y, new_p), "new_lift_at_10": top_k(y, new_p, 10).lift, "ci_lead": lead}
    verdict.current = figures
    both = figures["roc_auc"] > figures["new_roc_auc"] and figures["lift_at_10"] > figures["new_lift_at_10"]
    significant = lead is not None and lead[1] < 0
    if both or significant:
        why = "is better on ROC-AUC and lift" if both else "ranks significantly better"
        verdict.fail(f"current model {version} {why} on the same test rows: ROC-AUC {_f(figures['roc_auc'])} vs "
                     f"{_f(figures['new_roc_auc'])}, lift@10% {_f(figures['lift_at_10'])} vs {_f(figures['new_lift_at_10'])}")
