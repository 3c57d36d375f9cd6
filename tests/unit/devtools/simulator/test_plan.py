"""Customer plans: what is decided up front, before any event is drawn."""

from __future__ import annotations

from devtools.simulator import SimConfig
from devtools.simulator.plan import _renewals
from devtools.simulator.records import DAY_MS
from devtools.simulator.stream import _plans
from tests.unit.devtools.simulator.test_stream import START


def test_churn_clusters_near_renewals() -> None:
    cfg = SimConfig(customers=600, days=180, start_ms=START, seed=5)
    start, end = START, START + 180 * DAY_MS
    near = total = 0
    for p in _plans(cfg, start):
        if p.churn_ms is None:
            continue
        total += 1
        nxt = min(r for r in _renewals(p.signup_ms, p.period_ms, p.lo_ms, end + 2 * p.period_ms)
                  if r >= p.churn_ms)
        near += nxt - p.churn_ms <= 3 * DAY_MS + 60_000
    # Uniform churn times would be near a (monthly or annual) renewal ~10% of the time at most.
    assert near / total > 0.4
