"""Silence is a signal: a customer who stops sending events is re-scored by the event-time sweep."""

from __future__ import annotations

import time

import pytest
from kafka.partitioner.default import murmur2

from pipeline.config.settings import Settings
from pipeline.core.contract import DAY_MS, parse_ts
from tests.integration.conftest import read_topic, wait_for
from tests.integration.scenarios import healthy, interleave

pytestmark = pytest.mark.integration


def partition_of(key: str, partitions: int) -> int:
    """The default (murmur2) partitioner that kafka-python, aiokafka and Java clients share."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def same_partition_as(key: str, partitions: int, prefix: str) -> str:
    target = partition_of(key, partitions)
    return next(f"{prefix}{i}" for i in range(1000) if partition_of(f"{prefix}{i}", partitions) == target)


def test_silent_customer_is_alerted_by_the_sweep_with_a_recency_reason(settings: Settings, start_worker, sender) -> None:
    worker = start_worker(settings)
    start = (int(time.time() * 1000) // DAY_MS - 61) * DAY_MS
    quiet = "quiet-1"
    busy = same_partition_as(quiet, settings.partitions, "busy-")
    stream = interleave(healthy(quiet, start, 32), healthy(busy, start, 60))
    sender.send_all(stream)
    wait_for(lambda: worker.metric("churnwatch_events_consumed_total") >= len(stream), 60, what="all events consumed")

    def sweep_alert() -> list[dict]:
        return [a for a in read_topic(settings, settings.alerts_topic) if a["customer_id"] == quiet]

    alerts = wait_for(sweep_alert, 30, what="an alert for the silent customer")
    alert = alerts[0]
    assert alert["trigger"] == "sweep"
    # raised well after the customer's last event (day 31), while only the other customer was active
    assert parse_ts(alert["event_time"]) >= start + 35 * DAY_MS
    # the reasons say the customer went quiet: recency, or recent use against their own habit
    silence = {"days_since_login", "days_since_activity", "active_days_7d", "active_days_30d", "logins_7d",
               "activity_trend_7d", "logins_trend_7d", "logins_14d_vs_90d", "feature_uses_14d_vs_90d",
               "activity_14d_vs_90d", "active_days_14d_vs_90d", "logins_7d_vs_90d", "actions_per_login_14d"}
    quiet_words = ("no login for", "no activity for", "no logins in the last", "at 0% of their daily rate")
    said = [r for r in alert["reasons"] if r["feature"] in silence and any(w in r["text"] for w in quiet_words)]
    assert said, alert["reasons"]
    assert not [a for a in read_topic(settings, settings.alerts_topic) if a["customer_id"] == busy]
