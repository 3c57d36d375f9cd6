"""A real Prometheus server scrapes a real worker: what operators will see on their dashboards.

Every panel of deploy/grafana/dashboards/churnwatch.json is evaluated through Prometheus's query API
against the worker's own metrics (not a hand-made exporter), and must return a series, zeros
included: a panel showing "No data" for a counter that simply never moved was the bug.
"""

from __future__ import annotations

import os
import re
import time
import urllib.request

import pytest

from pipeline.config.settings import Settings
from pipeline.core.contract import DAY_MS, OUTCOME_TYPES, REASONS
from pipeline.core.rules import RulesConfig
from pipeline.worker import metrics
from tests.integration.conftest import wait_for
from tests.integration.deployfiles import alert_rules, dashboard, dashboard_exprs, grafana_to_promql
from tests.integration.promserver import PROMETHEUS_BIN, run_prometheus
from tests.integration.scenarios import event, healthy

pytestmark = pytest.mark.integration

needs_prometheus = pytest.mark.skipif(not os.path.exists(PROMETHEUS_BIN),
                                      reason="Debian prometheus not installed (make test installs it)")

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def _value(result: list[dict]) -> float:
    return float(result[0]["value"][1]) if result else 0.0


def _page(url: str) -> dict[str, float]:
    """``{'name{labels}': value}`` of a /metrics page, labels exactly as the worker writes them."""
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def test_a_fresh_worker_exports_every_counter_at_zero(settings: Settings, start_worker) -> None:
    """Before any event, every labelled counter has a series for every known label value, at 0 (the
    partition takeovers at start are the one counter that has moved by then)."""
    worker = start_worker(settings)
    page = _page(worker.metrics_url)
    expected: dict[str, float | None] = {}
    for topic in settings.input_topics.values():
        expected[f'churnwatch_events_consumed_total{{topic="{topic}"}}'] = 0
        expected[f'churnwatch_duplicates_skipped_total{{topic="{topic}"}}'] = 0
    expected.update({f'churnwatch_deadletters_total{{reason="{r}"}}': 0 for r in REASONS})
    expected.update({f'churnwatch_internal_errors_total{{stage="{s}"}}': 0 for s in metrics.INTERNAL_ERROR_STAGES})
    expected.update({f'churnwatch_model_reload_failures_total{{reason="{r}"}}': 0 for r in metrics.RELOAD_FAILURE_REASONS})
    for kind in OUTCOME_TYPES:
        expected[f'churnwatch_outcomes_total{{type="{kind}"}}'] = 0
        expected[f'churnwatch_alerted_outcomes_total{{type="{kind}"}}'] = 0
    for tier in ("standard", "vip"):
        for trigger in ("event", "sweep", *RulesConfig().enabled):
            expected[f'churnwatch_alerts_emitted_total{{tier="{tier}",trigger="{trigger}"}}'] = 0
    expected.update({f'churnwatch_webhook_deliveries_total{{outcome="{o}"}}': 0 for o in metrics.WEBHOOK_OUTCOMES})
    expected.update({f'churnwatch_state_restores_total{{how="{h}"}}': None for h in metrics.RESTORE_KINDS})
    missing = sorted(name for name in expected if name not in page)
    assert not missing, f"no series at start for {missing}"
    moved = {name: page[name] for name, value in expected.items() if value is not None and page[name] != value}
    assert not moved, f"counters not at 0 before any event: {moved}"
    assert sum(page[f'churnwatch_state_restores_total{{how="{h}"}}'] for h in metrics.RESTORE_KINDS) == settings.partitions


@needs_prometheus
def test_every_dashboard_panel_has_data_from_a_real_worker(settings: Settings, start_worker, sender) -> None:
    worker = start_worker(settings)
    start = (int(time.time() * 1000) // DAY_MS - 10) * DAY_MS
    records = healthy("metrics-1", start, 5) + [(  # one malformed event, counted as consumed and dead-lettered
        event("surveys", "metrics-1", start, "csat", score=9))]
    sender.send_all(records)
    by_topic: dict[str, int] = {}
    for source, _ in records:
        by_topic[settings.topic(source)] = by_topic.get(settings.topic(source), 0) + 1
    wait_for(lambda: worker.metric("churnwatch_events_consumed_total") >= len(records), 60, what="events consumed")

    with run_prometheus([f"127.0.0.1:{settings.metrics_port}"], job="churnwatch") as prom:
        prom.wait_for("sum(churnwatch_events_consumed_total)", lambda r: _value(r) == len(records), timeout=30)
        per_topic = prom.query("churnwatch_events_consumed_total")
        assert {s["metric"]["topic"]: int(float(s["value"][1])) for s in per_topic if float(s["value"][1])} == by_topic
        assert {s["metric"]["topic"] for s in per_topic} == set(settings.input_topics.values())
        dead = prom.query('churnwatch_deadletters_total{reason="bad_value"}')
        assert _value(dead) == 1
        assert _value(prom.query("churnwatch_worker_ready")) == 1
        assert _value(prom.query("churnwatch_model_loaded")) == 1
        assert prom.query('churnwatch_model_info{version="v1"}')
        # scoring is once per touched customer per micro-batch, not once per event
        assert 1 <= _value(prom.query("sum(churnwatch_scored_total)")) <= len(records)
        assert _value(prom.query("churnwatch_scoring_latency_seconds_count")) >= 1

        # rate() and increase() need two samples inside the window that $__rate_interval becomes
        prom.wait_for("count_over_time(churnwatch_scored_total[1m])", lambda r: _value(r) >= 2, timeout=30)
        empty, failed = [], []
        for title, expr in dashboard_exprs(dashboard()):
            query = grafana_to_promql(expr)
            try:
                if not prom.query(query):
                    empty.append(f"{title}: {query}")
            except RuntimeError as exc:
                failed.append(f"{title}: {exc}")
        assert not failed, "dashboard queries Prometheus refused:\n" + "\n".join(failed)
        assert not empty, "dashboard panels without data from a real worker:\n" + "\n".join(empty)

        # a counter that never moved is a 0 on its panel, not "No data"
        duplicates = prom.query('sum by (topic) (rate(churnwatch_duplicates_skipped_total[1m]))')
        assert {s["metric"]["topic"]: float(s["value"][1]) for s in duplicates} == {
            t: 0.0 for t in settings.input_topics.values()}

        # every alert rule's expression is accepted against the real metrics (query() raises otherwise)
        for rule in alert_rules():
            prom.query(rule["expr"])
