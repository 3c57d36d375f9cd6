"""The simulation's config checks, its window start and the timestamp format of its records."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from devtools.simulator import SimConfig, ground_truth, iso_ms, resolve_start_ms, simulate
from devtools.simulator.records import DAY_MS
from tests.unit.devtools.simulator.test_stream import START, parse_iso


def test_iso_ms_and_start_alignment() -> None:
    for t in (0, START + 123_456_789, START - 3 * 365 * DAY_MS + 5, 4_102_444_799_999):
        want = dt.datetime.fromtimestamp(t / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        assert iso_ms(t) == want
        assert parse_iso(iso_ms(t)) == t
    s = resolve_start_ms(SimConfig(days=10))
    assert s % DAY_MS == 0
    assert math.isclose(s + 10 * DAY_MS, dt.datetime.now(dt.timezone.utc).timestamp() * 1000, abs_tol=DAY_MS)


def test_config_validation() -> None:
    for bad in (dict(days=0), dict(customers=-1), dict(churn_rate=1.5), dict(bad_rate=1.0),
                dict(vocabulary=5), dict(vocabulary=26), dict(vocabulary=-1), dict(vocabulary=12.0),
                dict(vocabulary=True), dict(annual_share=1.2), dict(annual_share=-0.1),
                dict(vocabulary=10, users_per_account=0.5), dict(vocabulary=10, users_per_account=51),
                dict(users_per_account=2.0)):  # users need the foreign-vocabulary mode
        with pytest.raises(ValueError):
            SimConfig(**bad)
    SimConfig(vocabulary=8, users_per_account=1.0, annual_share=0.3)
    SimConfig(vocabulary=25, annual_share=1)
    assert list(simulate(SimConfig(customers=0, days=5, start_ms=START))) == []
    none = SimConfig(customers=50, days=60, start_ms=START, churn_rate=0.0)
    assert all(v is None for v in ground_truth(none).values())
