"""Scoring a set of touched customers and deciding their alerts: the one decision loop of churnwatch.

The stream worker (:mod:`pipeline.worker.batch`) and the offline replay (:mod:`training.assess.shadow`) both call
:func:`score_and_decide`; the worker adds only I/O around it (the scores topic, metrics, the alert topic,
the webhook). Keeping a single copy is what makes offline alert-quality figures describe the alerts a
running worker actually sends.

Per call: every entry is scored in **one** model call as of its ``as_of_ms``; the alert policy
(:func:`pipeline.core.alerting.decide`) sees the score unless the customer's partition is ``held`` (its
interactions are read far behind its other topics, :meth:`pipeline.core.sweep.SweepClock.behind`); the
proactive-service rules that fired on events, plus the score-time rules, are checked against their
cool-downs; contributions (the reasons) are computed only for customers who get an alert; every alert
is recorded in the customer's alert memory in emission order (a model alert before the rules are checked,
so a rule can tell that the customer already has an open alert).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from pipeline.core import alerting
from pipeline.core import rules
from pipeline.core.alerting import Alert
from pipeline.core.contract import DAY_MS
from pipeline.core.features import FEATURES, CustomerState, vector
from pipeline.core.plays import suggest_play
from pipeline.core.policy import AlertPolicy
from pipeline.core.reasons import Reason, top_reasons


class ScoringModel(Protocol):
    """What a decision needs from a model (``pipeline.model.scoring.Model`` has it)."""

    version: str

    @property
    def thresholds(self) -> dict[str, float]: ...

    def predict(self, rows: Any) -> Any: ...

    def contributions(self, rows: Any) -> Any: ...


def vectorizer(model: Any) -> tuple[tuple[str, ...], Callable[[CustomerState, int], list[float]]]:
    """Feature names and the vector function a model scores on: its own compiled spec, or the built-in
    features when there is no model (or a stand-in without a spec)."""
    compiled = getattr(model, "compiled", None)
    if compiled is None:
        return FEATURES, vector
    return compiled.names, compiled.vector


@dataclass
class Touched:
    """A customer touched in a batch or sweep: its state, its partition, and the time to score at."""

    state: CustomerState
    partition: int
    score_needed: bool = False
    as_of_ms: int = 0
    rule_hits: list[rules.RuleHit] = field(default_factory=list)
    #: the feature vector as of ``as_of_ms`` if the caller has it already (None: computed here)
    row: list[float] | None = None
    #: the feature names ``row`` was computed for: a row of another model's spec is computed again
    row_names: tuple[str, ...] | None = None


@dataclass
class Scoring:
    """One scoring of one customer and the alerts it produced (model and rules, in emission order).
    ``held``: the score was not shown to risk-based decisions (partition read behind)."""

    entry: Touched
    row: list[float]
    score: float | None
    threshold: float
    trigger: str
    alerts: list[Alert]
    held: bool = False


def score_and_decide(entries: Sequence[Touched], model: ScoringModel | None, policy: AlertPolicy, trigger: str,
                     emit_ms: int | None = None, *, held: Callable[[int], bool] | None = None) -> list[Scoring]:
    """Score ``entries`` in one call and decide their alerts, updating each customer's alert memory.

    ``emit_ms`` is the wall clock stamped on alerts (``None``: each alert's event time, for replays).
    ``held(partition)`` says whether risk decisions must wait for that partition (model alerts and the
    risk-based rules see no score then; event rules still fire). The worker times the model call itself
    (:class:`pipeline.model.scoring.Timed`): the decision loop keeps no clock.
    """
    if not entries:
        return []
    names, vec = vectorizer(model)
    rows = [e.row if e.row is not None and e.row_names == names else vec(e.state, e.as_of_ms) for e in entries]
    scores: list[float | None] = [None] * len(entries)
    thresholds: dict[str, float] = {}
    if model is not None:
        scores = [float(x) for x in model.predict(rows)]
        thresholds = model.thresholds
    version = model.version if model else None
    out: list[Scoring] = []
    for entry, row, score in zip(entries, rows, scores):
        st, as_of = entry.state, entry.as_of_ms
        now_ms = as_of if emit_ms is None else emit_ms
        threshold = policy.alerts.threshold(st.tier, thresholds)
        is_held = score is not None and held is not None and held(st.partition)
        judged = None if is_held else score  # what risk-based decisions see
        history_days = (as_of - st.first_ms) / DAY_MS if st.first_ms else 0.0
        alerts: list[Alert] = []
        contrib = None
        if judged is not None:
            decision = alerting.decide(
                st.alert, score=judged, tier=st.tier, now_ms=as_of, history_days=history_days,
                churned=bool(st.churned_ms), cfg=policy.alerts, model_thresholds=thresholds, trigger=trigger,
            )
            if decision is not None:
                contrib = model.contributions([row])[0]  # type: ignore[union-attr]
                reasons = top_reasons(row, contrib, names=names)
                alerts.append(alerting.build(st.customer_id, st.tier, st.csm, judged, decision, reasons,
                                             suggest_play(reasons, policy.plays), version, as_of, now_ms))
                st.alert.record(alerts[-1])  # before the rules, which see it open
        if not st.churned_ms:
            # a score without the minimum history is no risk estimate, for the rules either
            risk = judged if history_days >= policy.alerts.min_history_days else None
            hits = entry.rule_hits + rules.on_score(st, row, risk, threshold, policy.rules)
            for hit in hits:
                # an event rule belongs to its event's moment, even when a micro-batch carried later events too
                at = hit.ts_ms if hit.ts_ms is not None else as_of
                if not st.alert.rule_due(hit.rule, at, policy.rules.cooldown_ms(hit.rule)):
                    continue
                if contrib is None and model is not None:
                    contrib = model.contributions([row])[0]
                reasons = [Reason(hit.feature, hit.value, 0.0, hit.category, hit.text)]
                if contrib is not None:
                    reasons += [r for r in top_reasons(row, contrib, names=names) if r.feature != hit.feature][:2]
                decision = alerting.Decision(alerting.RULE, hit.rule, threshold,
                                             alerting.band(score, threshold) if score is not None else "high")
                alerts.append(alerting.build(st.customer_id, st.tier, st.csm, score if score is not None else float("nan"),
                                             decision, reasons, policy.plays.get(hit.category, ""),
                                             version, at, now_ms))
                st.alert.record(alerts[-1])
        out.append(Scoring(entry, row, score, threshold, trigger, alerts, is_held))
    return out


__all__ = ["ScoringModel", "Scoring", "Touched", "score_and_decide"]
