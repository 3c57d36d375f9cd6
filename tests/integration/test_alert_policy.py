"""A scripted customer produces exactly the expected alerts; acknowledgement stops repeats."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipeline.config.settings import Settings
from pipeline.core.contract import DAY_MS, format_ts
from tests.integration.conftest import read_topic, wait_for
from tests.integration.scenarios import HOUR, event, healthy, interleave

pytestmark = pytest.mark.integration

POLICY = """
# every model score alerts (so the model part is deterministic), escalation off
[thresholds]
vip = 1e-9
standard = 1e-9

[alerts]
escalate_delta = 1.0
cooldown_days = 14
min_history_days = 28    # the script's timing: the model alert on the first scoring after day 28

[plays]
service = "Call them today: service recovery"
"""


def test_scripted_customer_gets_exactly_the_expected_alerts(settings: Settings, start_worker, sender,
                                                            tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    settings = settings.with_(policy_file=str(policy))
    worker = start_worker(settings)
    cid = "script-1"
    start = (int(time.time() * 1000) // DAY_MS - 40) * DAY_MS
    phase1 = [(src, {**v, "tier": "vip"} if src == "customers" else v) for src, v in healthy(cid, start, 30)]
    sender.send_all(phase1)

    def alerts() -> list[dict]:
        return [a for a in read_topic(settings, settings.alerts_topic) if a["customer_id"] == cid]

    first = wait_for(alerts, 60, what="the model alert")
    assert [(a["trigger"], a["kind"]) for a in first] == [("event", "new")]
    model_alert = first[0]
    assert model_alert["tier"] == "vip" and model_alert["threshold"] < 0.001
    day = lambda d: start + d * DAY_MS  # noqa: E731
    # the model alert fires on the first scoring with 28 days of history (scoring is per micro-batch)
    assert day(28) <= model_alert_ts(model_alert) < day(30)

    ack = event("outcomes", cid, day(29) + 20 * HOUR, "alert_ack", alert_id=model_alert["alert_id"])
    phase2 = [ack]
    for d in range(30, 37):
        phase2.append(event("interactions", cid, day(d) + 14 * HOUR, "login"))
    phase2 += [
        event("surveys", cid, day(30) + 10 * HOUR, "csat", score=1),
        event("surveys", cid, day(31) + 10 * HOUR, "csat", score=2),          # csat_low cooling down
        event("surveys", cid, day(32) + 10 * HOUR, "nps", score=3),
        *[event("interactions", cid, day(33) + (9 + k) * HOUR, "help_view", feature="export", success=False)
          for k in range(4)],                                                 # fires at the 3rd, not the 4th
        event("tickets", cid, day(34) + 9 * HOUR, "opened", ticket_id="T-1", severity="critical",
              sla_due=format_ts(day(34) + 13 * HOUR)),
    ]
    sender.send_all(interleave(phase2))
    wait_for(lambda: worker.metric("churnwatch_events_consumed_total") >= len(phase1) + len(phase2), 60,
             what="all events consumed")
    time.sleep(1.0)  # let the last batch's alerts reach the topic
    got = alerts()
    assert [a["trigger"] for a in got] == ["event", "csat_low", "nps_detractor", "repeated_failed_help",
                                           "vip_sla_breach"], [(a["trigger"], a["event_time"]) for a in got]
    by_trigger = {a["trigger"]: a for a in got}
    assert by_trigger["csat_low"]["reasons"][0]["text"] == "rated support 1/5 (CSAT)"
    assert by_trigger["csat_low"]["play"] == "Call them today: service recovery"
    assert by_trigger["repeated_failed_help"]["reasons"][0]["text"].startswith("3 unsuccessful help-article views on export")
    # event rules carry their event's time; situation rules the time of the scoring that saw them
    assert model_alert_ts(by_trigger["csat_low"]) == day(30) + 10 * HOUR
    assert model_alert_ts(by_trigger["repeated_failed_help"]) == day(33) + 11 * HOUR
    assert day(34) + 13 * HOUR < model_alert_ts(by_trigger["vip_sla_breach"]) <= day(36) + 14 * HOUR
    assert all(a["kind"] == "rule" for a in got[1:])
    assert worker.metric('churnwatch_outcomes_total{type="alert_ack"}') == 1
    assert worker.metric('churnwatch_alerted_outcomes_total{type="alert_ack"}') == 1


def model_alert_ts(alert: dict) -> int:
    from pipeline.core.contract import parse_ts

    return parse_ts(alert["event_time"])
