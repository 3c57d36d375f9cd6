"""Unit tests for pipeline.core.alert_memory: the alert policy's per-customer memory and its changelog form."""

from __future__ import annotations

import orjson

from pipeline.core import alerting
from pipeline.core.alert_memory import AlertMemory
from pipeline.core.contract import DAY_MS, Event
from pipeline.core.features import CustomerState, apply
from pipeline.core.rules import RulesConfig

T0 = 1_718_452_800_000  # 2024-06-15T12:00:00Z

#: A state written by the code before the memory was a record (the alert memory was a plain dict then): a rule
#: fired, then a model alert, a CSM's acknowledgement and a re-arm. Its keys are in the order they were first set.
OLD_STATE = (
    b'{"customer_id":"c-old","first_ms":1714996800000,"last_ms":1718452800000,"tier":"vip","plan":"","mrr":null,'
    b'"signup_ms":0,"renewal_ms":0,"csm":"Ann","term":"","profile_ms":{"tier":1714996800000,"csm":1714996800000},'
    b'"days":[[19850,1,0,0,0,0,0,0,0,0,0,0,0]],"lifetime":[1,0,0,0,0,0,0,0,0,0,0,0],"last_login_ms":1715083200000,'
    b'"last_activity_ms":1715083200000,"recent_failed_help":[],"tnames":["login"],"tdays":[[19850,1]],'
    b'"tlast":[1715083200000],"udays":[],"vdays":[],"open_tickets":{},"resolved_tickets":{},"ttr_sum_h":0.0,'
    b'"ttr_count":0,"nps":[],"csat":[[1718452800000,1.0]],"ces":[],"churned_ms":0,"renewed_ms":0,'
    b'"seen":[[19849,"AMLUlvF4v2U="],[19850,"0n5+o0eqDr0="],[19889,"hDND08x3Rck="]],"seen_floor_day":0,'
    b'"offsets":{"customers:1":0,"interactions:1":0,"surveys:1":3},'
    b'"applied":{"customers":1,"interactions":1,"surveys":1},'
    b'"alert":{"rules":{"csat_low":1718452800000},"history":[{"alert_id":"69c1af1ace084eef",'
    b'"event_ms":1718452800000,"trigger":"csat_low","kind":"rule","score":0.2},{"alert_id":"be838cb7ba7089b3",'
    b'"event_ms":1718539200000,"trigger":"event","kind":"new","score":0.6}],"open":null,"open_ms":1718539200000,'
    b'"open_score":0.6,"armed":true,"last_ms":1718539200000,"acked_ms":1718625600000},"events":3,"partition":-1}'
)


def test_an_old_state_decodes_and_re_encodes_byte_for_byte():
    state = CustomerState.from_bytes(OLD_STATE)
    assert isinstance(state.alert, AlertMemory)
    assert state.alert.open is None and state.alert.last_ms == T0 + DAY_MS and state.alert.armed
    assert state.alert.rules == {"csat_low": T0} and [h["kind"] for h in state.alert.history] == ["rule", "new"]
    assert state.to_json() == OLD_STATE


def test_the_same_steps_write_the_same_bytes_as_before():
    s = CustomerState("c-old", tier="vip")
    apply(s, Event("customers", "p1", "c-old", T0 - 40 * DAY_MS, "profile", {"tier": "vip", "csm": "Ann"}),
          offset=0, partition=1)
    apply(s, Event("interactions", "i1", "c-old", T0 - 39 * DAY_MS, "login", {}), offset=0, partition=1)
    apply(s, Event("surveys", "s1", "c-old", T0, "csat", {"score": 1.0}), offset=3, partition=1)
    m = s.alert
    assert m.rule_due("csat_low", T0, RulesConfig().cooldown_ms("csat_low"))
    rule = alerting.Decision("rule", "csat_low", 0.35, "watch")
    m.record(alerting.build("c-old", "vip", "Ann", 0.2, rule, [], "", "v1", T0, T0))
    cfg = alerting.AlertConfig()
    d = alerting.decide(m, score=0.6, tier="vip", now_ms=T0 + DAY_MS, history_days=41, churned=False, cfg=cfg)
    m.record(alerting.build("c-old", "vip", "Ann", 0.6, d, [], "", "v1", T0 + DAY_MS, T0 + DAY_MS))
    alerting.on_outcome(m, Event("outcomes", "o1", "c-old", T0 + 2 * DAY_MS, "alert_ack", {}))
    assert alerting.decide(m, score=0.1, tier="vip", now_ms=T0 + 3 * DAY_MS, history_days=43, churned=False,
                           cfg=cfg) is None
    assert s.to_json() == OLD_STATE


def test_an_untouched_memory_is_an_empty_object():
    assert AlertMemory().to_json() == {}
    assert orjson.loads(CustomerState("c1").to_json())["alert"] == {}
    assert AlertMemory.from_json({}) == AlertMemory()


def test_a_copy_tells_whether_a_decision_changed_the_memory():
    m = AlertMemory.from_json({"open": None, "armed": True, "rules": {"csat_low": T0}})
    before = m.copy()
    assert m == before
    assert not m.rule_due("csat_low", T0 + 1, 7 * DAY_MS)  # in cool-down: nothing changes
    assert m == before
    assert m.rule_due("nps_detractor", T0 + 1, 7 * DAY_MS)
    assert m != before and before.rules == {"csat_low": T0}


def test_a_field_assigned_directly_is_written_too():
    m = AlertMemory()
    m.open = "A1"
    assert m.to_json() == {"open": "A1"}
    assert AlertMemory.from_json(m.to_json()) == m


def test_history_keeps_the_newest_alerts():
    m = AlertMemory()
    for i in range(12):
        d = alerting.Decision("rule", "csat_low", 0.5, "high")
        m.record(alerting.build("c1", "standard", "", 0.5, d, [], "", None, T0 + i, T0 + i))
    assert len(m.history) == 10 and m.history[0]["event_ms"] == T0 + 2
    assert m.open is None  # a rule alert does not open a model alert


def test_an_outcome_closes_only_after_an_alert():
    m = AlertMemory()
    assert not m.alerted_before(T0)
    m.acknowledge(None, T0)
    assert m.to_json() == {}
