"""Unit tests for apps.inbox.view: the open-alert view and the acknowledgement event.

No broker: the view is fed alert/outcome dicts directly.
"""

from __future__ import annotations

import pytest

from apps.inbox.view import ACK_NOTE, InboxState, ack_event
from pipeline.core.contract import DAY_MS, format_ts, validate
from tests.unit.apps.inbox.records import HOUR, T0, alert, ids, outcome


# ---- the view ---------------------------------------------------------------------------------------
def test_sorted_by_risk_then_rule_alerts_without_score_newest_first():
    s = InboxState()
    s.add_alert(alert("low", 0.4))
    s.add_alert(alert("high", 0.9))
    s.add_alert(alert("rule-old", None, T0 - 2 * HOUR, kind="rule", trigger="csat_low"))
    s.add_alert(alert("mid", 0.6))
    s.add_alert(alert("rule-new", None, T0 - HOUR, kind="rule", trigger="nps_detractor"))
    assert ids(s) == ["high", "mid", "low", "rule-new", "rule-old"]
    assert s.open_alerts()[-1]["score"] is None


def test_one_entry_per_customer_the_newest_alert():
    s = InboxState()
    first = alert("c1", 0.7, T0)
    rule = alert("c1", 0.7, T0 + DAY_MS, kind="rule", trigger="csat_low", reasons=["rated support 1/5 (CSAT)"])
    s.add_alert(first)
    s.add_alert(rule)
    [entry] = s.open_alerts()
    assert entry["alert_id"] == rule["alert_id"] and entry["trigger"] == "csat_low"
    assert entry["alert_ids"] == [rule["alert_id"], first["alert_id"]]  # the model alert is still unacknowledged
    # an older alert read late (replay order) does not replace the newer one
    s.add_alert(alert("c1", 0.99, T0 - DAY_MS))
    assert s.open_alerts()[0]["alert_id"] == rule["alert_id"]


def test_escalation_updates_the_risk_and_keeps_the_id_the_worker_knows():
    s = InboxState()
    new = alert("c1", 0.5, T0, reasons=["logins down"])
    s.add_alert(new)
    s.add_alert(alert("other", 0.6))
    esc = alert("c1", 0.8, T0 + 2 * DAY_MS, kind="escalation", trigger="escalation", reasons=["tickets piling up"])
    s.add_alert(esc)
    entry = s.open_alerts()[0]
    assert entry["customer_id"] == "c1" and entry["score"] == 0.8  # re-sorted by the new risk
    assert entry["alert_id"] == new["alert_id"] and entry["escalated"] is True
    assert entry["trigger"] == "event" and entry["reasons"][0]["text"] == "tickets piling up"
    assert entry["opened_time"] == format_ts(T0)  # expiry still counts from the original alert
    # acknowledging the escalation's id closes the entry too
    s.add_outcome(outcome("c1", "alert_ack", alert_id=esc["alert_id"]))
    assert ids(s) == ["other"]


def test_ack_removes_only_the_named_alert():
    s = InboxState()
    a1, a2 = alert("c1", 0.7), alert("c2", 0.6)
    s.add_alert(a1)
    s.add_alert(a2)
    assert s.add_outcome(outcome("c1", "alert_ack", alert_id="unknown")) is False
    assert s.add_outcome(outcome("c1", "alert_ack", alert_id=a1["alert_id"])) is True
    assert ids(s) == ["c2"]
    # a replayed copy of the acknowledged alert stays closed
    assert s.add_alert(a1) is False and ids(s) == ["c2"]


def test_ack_read_before_its_alert_still_wins():
    s = InboxState()
    a = alert("c1", 0.7)
    s.add_outcome(outcome("c1", "alert_ack", alert_id=a["alert_id"]))
    s.add_alert(a)
    assert s.open_alerts() == []


def test_ack_of_an_older_alert_keeps_the_newer_one_open():
    s = InboxState()
    old, new = alert("c1", 0.7, T0), alert("c1", 0.7, T0 + DAY_MS, kind="rule", trigger="nps_detractor")
    s.add_alert(old)
    s.add_alert(new)
    s.add_outcome(outcome("c1", "alert_ack", alert_id=old["alert_id"]))
    [entry] = s.open_alerts()
    assert entry["alert_id"] == new["alert_id"] and entry["alert_ids"] == [new["alert_id"]]


@pytest.mark.parametrize("typ", ["contacted", "saved", "churned"])
def test_customer_level_outcomes_close_alerts_raised_before_them(typ):
    s = InboxState()
    s.add_alert(alert("c1", 0.7, T0))
    s.add_alert(alert("c2", 0.6, T0))
    s.add_outcome(outcome("c1", typ, T0 + HOUR))
    assert ids(s) == ["c2"]
    # an alert raised before the outcome but read after it (the topics' order is arbitrary) stays closed
    assert s.add_alert(alert("c1", 0.9, T0 + HOUR - 1)) is False
    assert ids(s) == ["c2"]


def test_contacted_does_not_close_a_later_alert():
    s = InboxState()
    s.add_alert(alert("c1", 0.7, T0 + 5 * DAY_MS))
    s.add_outcome(outcome("c1", "contacted", T0))
    assert ids(s) == ["c1"]


def test_contacted_about_one_alert_acts_as_its_acknowledgement():
    s = InboxState()
    a = alert("c1", 0.7)
    s.add_alert(a)
    s.add_outcome(outcome("c1", "saved", alert_id="someone-else"))
    assert ids(s) == ["c1"]
    s.add_outcome(outcome("c1", "saved", alert_id=a["alert_id"]))
    assert ids(s) == []


def test_renewed_and_other_outcomes_leave_alerts_open():
    s = InboxState()
    s.add_alert(alert("c1", 0.7))
    s.add_outcome(outcome("c1", "renewed"))
    assert ids(s) == ["c1"]


def test_alerts_expire_after_30_days_of_event_time():
    s = InboxState()
    s.add_alert(alert("old", 0.9, T0))
    s.add_alert(alert("new", 0.5, T0 + 20 * DAY_MS))
    assert ids(s) == ["old", "new"]
    assert ids(s, now_ms=T0 + 30 * DAY_MS) == ["old", "new"]
    assert ids(s, now_ms=T0 + 30 * DAY_MS + 1) == ["new"]
    # the view's own clock is the newest alert event time seen
    s.add_alert(alert("newer", 0.1, T0 + 31 * DAY_MS))
    assert ids(s) == ["new", "newer"]
    # outcome times do not move it: an acknowledgement carries the wall-clock time of the click
    s.add_outcome(outcome("x", "alert_ack", T0 + 400 * DAY_MS, alert_id="?"))
    assert ids(s) == ["new", "newer"]
    assert InboxState(expire_days=10).open_alerts() == []


def test_an_expired_entry_does_not_come_back_on_replay():
    s = InboxState()
    a = alert("c1", 0.9, T0)
    s.add_alert(a)
    s.add_alert(alert("c2", 0.5, T0 + 40 * DAY_MS))  # moves the clock on: c1 is pruned
    assert s.add_alert(a) is False
    assert ids(s) == ["c2"]


def test_filters_by_tier_and_csm():
    s = InboxState()
    s.add_alert(alert("v1", 0.9, tier="vip", csm="Alice"))
    s.add_alert(alert("v2", 0.8, tier="vip", csm="bob"))
    s.add_alert(alert("s1", 0.7, tier="standard", csm="alice"))
    s.add_alert(alert("s2", 0.6, tier="standard", csm=""))
    assert ids(s, tier="vip") == ["v1", "v2"]
    assert ids(s, csm="alice") == ["v1", "s1"]  # CSM names compare case-insensitively
    assert ids(s, tier="vip", csm="bob") == ["v2"]
    assert ids(s, csm="-") == ["s2"]
    assert ids(s, tier="gold") == []
    assert s.facets() == (["standard", "vip"], ["-", "Alice", "alice", "bob"])


def test_duplicates_and_malformed_records_are_ignored():
    s = InboxState()
    a = alert("c1", 0.7)
    assert s.add_alert(a) is True
    assert s.add_alert(dict(a)) is False
    for bad in (None, [], {"alert_id": 3, "customer_id": "c"}, {**a, "alert_id": "z", "event_time": "yesterday"},
                {**a, "alert_id": "y", "score": "high"}):
        s.add_alert(bad)
    for bad in ({"customer_id": "c1", "type": "alert_ack", "ts": format_ts(T0)}, {"type": "saved"}, "x"):
        s.add_outcome(bad)
    assert s.skipped == 7
    entries = s.open_alerts()
    assert {e["customer_id"] for e in entries} == {"c1"} and len(entries) == 1
    # a non-numeric score from the topic is shown as "no score", never crashes the sort
    s.add_alert({**a, "alert_id": "w", "customer_id": "c9", "score": float("inf")})
    assert s.open_alerts()[-1]["score"] is None


def test_ack_plan_names_the_row_and_what_it_folds():
    s = InboxState()
    model = alert("c1", 0.7, T0)
    esc = alert("c1", 0.9, T0 + HOUR, kind="escalation", trigger="escalation")
    rule = alert("c1", 0.9, T0 + DAY_MS, kind="rule", trigger="csat_low")
    for a in (model, esc, rule):
        s.add_alert(a)
    plan = s.ack_plan(rule["alert_id"])
    assert plan is not None and plan.customer_id == "c1"
    assert plan.alert_ids == (rule["alert_id"], model["alert_id"], esc["alert_id"])
    assert s.ack_plan("nope") is None
    s.add_outcome(outcome("c1", "alert_ack", alert_id=rule["alert_id"]))
    again = s.ack_plan(rule["alert_id"])
    assert again is not None and again.already


def test_ack_event_follows_the_event_contract():
    e = ack_event("c1", "abc123", now_ms=T0)
    assert e["type"] == "alert_ack" and e["alert_id"] == "abc123" and e["note"] == ACK_NOTE
    assert e["ts"] == format_ts(T0) and e["schema_version"] == 1 and len(e["event_id"]) == 36
    assert "acknowledged_by" not in e  # an open inbox knows no user
    ev = validate("outcomes", e, now_ms=T0)
    assert ev.customer_id == "c1" and ev.data["alert_id"] == "abc123" and "acknowledged_by" not in ev.data
    by = ack_event("c1", "abc123", now_ms=T0, acknowledged_by="Dana Scully")
    assert validate("outcomes", by, now_ms=T0).data["acknowledged_by"] == "Dana Scully"

