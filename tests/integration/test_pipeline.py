"""End to end on the real embedded broker: events in, state, scoring, alerts and dead letters out."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import orjson
import pytest

from pipeline.config.settings import Settings
from pipeline.core.contract import DAY_MS, parse_ts
from tests.integration.conftest import read_topic, wait_for
from tests.integration.scenarios import deteriorating, event, healthy, interleave

pytestmark = pytest.mark.integration


def _start_ms(days: int) -> int:
    return (int(time.time() * 1000) // DAY_MS - days - 1) * DAY_MS


def test_deteriorating_customer_is_alerted_and_healthy_one_is_not(settings: Settings, start_worker, sender) -> None:
    worker = start_worker(settings)
    start = _start_ms(60)
    stream = interleave(healthy("happy-1", start, 60), deteriorating("sliding-1", start, 60))
    sender.send_all(stream)

    wait_for(lambda: worker.metric("churnwatch_events_consumed_total") >= len(stream), 60, what="all events consumed")
    def model_alert(alerts: list[dict]) -> dict | None:  # rule alerts (NPS 1, CSAT 1 ...) may come first
        return next((a for a in alerts if a["customer_id"] == "sliding-1" and a["kind"] == "new"), None)

    alerts = wait_for(lambda: (got := read_topic(settings, settings.alerts_topic)) and model_alert(got) and got, 30,
                      what="a model alert")
    by_customer = {a["customer_id"] for a in alerts}
    assert "happy-1" not in by_customer, [(a["trigger"], a["score"], a["threshold"], a["reasons"]) for a in alerts if a["customer_id"] == "happy-1"]
    alert = model_alert(alerts)
    assert alert is not None
    assert alert["tier"] == "standard" and alert["csm"] == "alice"
    assert alert["score"] >= alert["threshold"]
    assert alert["model_version"] == "v1"
    assert 1 <= len(alert["reasons"]) <= 3
    assert all(r["contribution"] > 0 and r["text"] for r in alert["reasons"])
    assert alert["play"]
    # the alert is raised in event time after the decline began, not during the healthy weeks
    assert parse_ts(alert["event_time"]) >= start + 35 * DAY_MS
    assert alert["trigger"] in ("event", "sweep")  # by its own events or, gone quiet, by the sweep
    # one open alert per customer: the continuing decline does not produce a second 'new' alert
    assert sum(1 for a in alerts if a["customer_id"] == "sliding-1" and a["kind"] == "new") == 1

    # the CSM's customer view, served by the worker that owns the customer
    base = f"http://127.0.0.1:{settings.web_port}"
    view = orjson.loads(urllib.request.urlopen(f"{base}/customers/sliding-1/", timeout=10).read())
    assert view["tier"] == "standard" and view["csm"] == "alice" and view["model_version"] == "v1"
    assert view["features"]["last_nps"] == 1 and view["features"]["open_high_sev_tickets"] >= 1
    assert 0 <= view["score"] <= 1 and view["reasons"] and view["reasons"][0]["text"]
    assert alert["alert_id"] in [h["alert_id"] for h in view["alert_history"]]
    assert view["open_alert"] == alert["alert_id"]
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{base}/customers/nobody/", timeout=10)
    assert missing.value.code == 404


def test_malformed_event_goes_to_deadletter_and_next_event_is_processed(settings: Settings, start_worker, sender) -> None:
    settings = settings.with_(emit_scores=True)
    worker = start_worker(settings)
    start = _start_ms(3)
    good_before = event("interactions", "dl-1", start, "login")
    bad_json = b'{"customer_id": "dl-1", "ts": '
    bad_score = event("surveys", "dl-1", start + 1000, "nps", score=11)
    good_after = event("interactions", "dl-1", start + 2000, "feature_use", feature="reports")
    sender.send_all([good_before])
    sender.send("interactions", bad_json, key="dl-1")
    sender.send_all([bad_score, good_after])

    def two_dead_letters() -> list | None:
        records = read_topic(settings, settings.deadletter_topic)
        return records if len(records) >= 2 else None

    dead = wait_for(two_dead_letters, 60, what="two dead letters")
    reasons = sorted(d["reason"] for d in dead)
    assert reasons == ["bad_value", "not_json"]
    not_json = next(d for d in dead if d["reason"] == "not_json")
    assert not_json["original"] == bad_json.decode() and not_json["topic"] == settings.topic("interactions")
    assert not_json["key"] == "dl-1" and isinstance(not_json["offset"], int) and not_json["detail"]
    # the valid event after the bad ones was applied and scored
    scores = wait_for(lambda: [s for s in read_topic(settings, settings.scores_topic) if s["customer_id"] == "dl-1"
                               and s["ts_ms"] == start + 2000], 30, what="a scoring of the event after the bad ones")
    assert scores
    assert worker.metric('churnwatch_deadletters_total{reason="not_json"}') == 1
    assert worker.metric('churnwatch_deadletters_total{reason="bad_value"}') == 1
    assert worker.proc.poll() is None
