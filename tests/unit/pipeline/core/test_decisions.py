"""The one decision loop: which alerts one scoring produces, with a model whose score we choose."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.core.contract import DAY_MS, Event, parse_ts
from pipeline.core.decisions import Touched, score_and_decide
from pipeline.core.features import FEATURES, CustomerState, apply
from pipeline.core.policy import AlertPolicy
from pipeline.core.rules import RulesConfig, on_event

T0 = parse_ts("2025-03-03T00:00:00Z")
H = 3_600_000


class FixedModel:
    version = "fixed"

    def __init__(self, score: float) -> None:
        self.score = score

    @property
    def thresholds(self) -> dict[str, float]:
        return {"standard": 0.5, "vip": 0.5}

    def predict(self, rows: Any) -> np.ndarray:
        return np.full(len(rows), self.score)

    def contributions(self, rows: Any) -> np.ndarray:
        return np.full((len(rows), len(FEATURES) + 1), 0.01)


def customer(history_days: int) -> tuple[CustomerState, int]:
    """A customer seen for ``history_days``, renewing 20 days after the last day: (state, as-of time)."""
    now = T0 + history_days * DAY_MS
    st = CustomerState("c1")
    apply(st, Event("customers", "p", "c1", T0, "profile",
                    {"tier": "standard", "plan": "pro", "renewal_ms": now + 20 * DAY_MS}))
    for d in range(history_days + 1):
        apply(st, Event("interactions", f"l{d}", "c1", T0 + d * DAY_MS + 9 * H, "login", {}))
    return st, st.last_ms


def triggers(st: CustomerState, as_of: int, score: float, **kw: Any) -> list[str]:
    [s] = score_and_decide([Touched(st, 0, True, as_of, kw.pop("hits", []))], FixedModel(score), AlertPolicy(), "event", **kw)
    return [a.trigger for a in s.alerts]


def test_renewal_at_risk_fires_for_elevated_risk_below_the_threshold() -> None:
    st, as_of = customer(40)
    assert st.renewal_ms and 0 < (st.renewal_ms - as_of) / DAY_MS <= 30
    assert triggers(st, as_of, 0.45) == ["renewal_at_risk"]  # 0.45 >= 0.8 x 0.5, below 0.5
    assert triggers(st, as_of + DAY_MS, 0.45) == []  # once per renewal window


def test_no_renewal_task_beside_an_open_model_alert() -> None:
    st, as_of = customer(40)
    assert triggers(st, as_of, 0.7) == ["event"]  # the model alert covers the renewal too


def test_no_risk_based_alert_without_the_minimum_history() -> None:
    st, as_of = customer(5)  # the policy's default minimum is 7 days
    assert triggers(st, as_of, 0.7) == []  # neither the model alert nor the renewal rule


def test_a_held_partition_gets_event_rules_but_no_risk_decisions() -> None:
    st, as_of = customer(40)
    csat = Event("surveys", "s1", "c1", as_of, "csat", {"score": 1.0})
    apply(st, csat)
    hits = on_event(st, csat, RulesConfig())
    assert triggers(st, as_of, 0.9, hits=hits, held=lambda partition: True) == ["csat_low"]
    assert st.alert.open is None
