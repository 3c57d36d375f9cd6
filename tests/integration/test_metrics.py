"""A real Prometheus server scrapes a real worker: what operators will see on their dashboards."""

from __future__ import annotations

import os
import time

import pytest

from pipeline.contract import DAY_MS
from pipeline.settings import Settings
from tests.integration.conftest import wait_for
from tests.integration.promserver import PROMETHEUS_BIN, run_prometheus
from tests.integration.scenarios import event, healthy

pytestmark = pytest.mark.integration


def _value(result: list[dict]) -> float:
    return float(result[0]["value"][1]) if result else 0.0


@pytest.mark.skipif(not os.path.exists(PROMETHEUS_BIN),
                    reason="Debian prometheus not installed (make test installs it)")
def test_prometheus_scrapes_events_consumed_by_topic(settings: Settings, start_worker, sender) -> None:
    worker = start_worker(settings)
    start = (int(time.time() * 1000) // DAY_MS - 10) * DAY_MS
    records = healthy("metrics-1", start, 5) + [(  # one malformed event, counted as consumed and dead-lettered
        event("surveys", "metrics-1", start, "csat", score=9))]
    sender.send_all(records)
    by_topic: dict[str, int] = {}
    for source, _ in records:
        by_topic[settings.topic(source)] = by_topic.get(settings.topic(source), 0) + 1
    wait_for(lambda: worker.metric("churnwatch_events_consumed_total") >= len(records), 60, what="events consumed")

    with run_prometheus([f"127.0.0.1:{settings.metrics_port}"]) as prom:
        prom.wait_for("sum(churnwatch_events_consumed_total)", lambda r: _value(r) == len(records), timeout=30)
        per_topic = prom.query("churnwatch_events_consumed_total")
        assert {s["metric"]["topic"]: int(float(s["value"][1])) for s in per_topic} == by_topic
        dead = prom.query('churnwatch_deadletters_total{reason="bad_value"}')
        assert _value(dead) == 1
        assert _value(prom.query("churnwatch_worker_ready")) == 1
        assert _value(prom.query("churnwatch_model_loaded")) == 1
        assert prom.query('churnwatch_model_info{version="v1"}')
        # scoring is once per touched customer per micro-batch, not once per event
        assert 1 <= _value(prom.query("sum(churnwatch_scored_total)")) <= len(records)
        assert _value(prom.query("churnwatch_scoring_latency_seconds_count")) >= 1
