"""Unit tests for pipeline.core.alerting: when a score becomes an alert, and the alert record."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core import alerting
from pipeline.core.alert_memory import AlertMemory
from pipeline.core.alerting import Alert, Decision, AlertConfig, alert_id, band, build, decide, on_outcome
from pipeline.core.contract import DAY_MS, Event, format_ts
from pipeline.core.reasons import Reason

T0 = 1_718_452_800_000  # 2024-06-15T12:00:00Z
HOUR = 3_600_000
CFG = AlertConfig()  # vip 0.35, standard 0.5, rearm 0.8, cool-down 14 d, expiry 30 d, escalate +0.15


def step(memory: AlertMemory, score: float, now_ms: int, *, tier: str = "standard", history_days: float = 60.0,
         churned: bool = False, cfg: AlertConfig = CFG, model_thresholds=None, trigger: str = "event",
         emit: bool = True) -> Decision | None:
    """One scoring, as the worker does it: decide, then build and record the alert when one is due."""
    decision = decide(memory, score=score, tier=tier, now_ms=now_ms, history_days=history_days, churned=churned,
                      cfg=cfg, model_thresholds=model_thresholds, trigger=trigger)
    if decision is not None and emit:
        alert = build("c1", tier, "ann", score, decision, [], "play", "v1", now_ms, now_ms + 5)
        memory.record(alert)
    return decision


def ack(memory: AlertMemory, ts_ms: int, typ: str = "alert_ack", alert_id_: str | None = None) -> None:
    data = {} if alert_id_ is None else {"alert_id": alert_id_}
    on_outcome(memory, Event("outcomes", "o1", "c1", ts_ms, typ, data))


# ---- thresholds ------------------------------------------------------------------------------------
def test_vip_is_alerted_at_a_score_where_standard_is_not():
    assert step(AlertMemory(), 0.4, T0, tier="vip") is not None
    assert step(AlertMemory(), 0.4, T0, tier="standard") is None


@pytest.mark.parametrize(("tier", "score", "alerted"), [
    ("vip", 0.349, False), ("vip", 0.35, True),
    ("standard", 0.499, False), ("standard", 0.5, True),
    ("smb", 0.499, False), ("smb", 0.5, True),  # unknown tiers use the standard threshold
])
def test_default_thresholds(tier, score, alerted):
    d = step(AlertMemory(), score, T0, tier=tier)
    assert (d is not None) == alerted
    if d is not None:
        assert d.threshold == CFG.thresholds.get(tier, 0.5)


def test_model_thresholds_override_defaults():
    model = {"standard": 0.3, "vip": 0.2}
    d = step(AlertMemory(), 0.31, T0, model_thresholds=model)
    assert d is not None and d.threshold == 0.3
    assert step(AlertMemory(), 0.45, T0, tier="vip", model_thresholds={"vip": 0.6}) is None
    # a model that only proposes a vip threshold keeps the default for standard
    assert CFG.threshold("standard", {"vip": 0.1}) == 0.5
    assert CFG.threshold("gold", {"standard": 0.42}) == 0.42


def test_min_history_guard():
    assert step(AlertMemory(), 0.99, T0, history_days=alerting.MIN_HISTORY_DAYS - 0.1) is None
    assert step(AlertMemory(), 0.99, T0, history_days=alerting.MIN_HISTORY_DAYS) is not None


@pytest.mark.parametrize(("min_history", "history", "alerted"), [
    (0.0, 0.0, True), (7.0, 6.9, False), (7.0, 7.0, True), (14.0, 13.0, False), (28.0, 27.9, False), (28.0, 28.0, True),
])
def test_min_history_is_the_policys(min_history, history, alerted):
    cfg = AlertConfig(min_history_days=min_history)
    memory = AlertMemory()
    assert (step(memory, 0.99, T0, history_days=history, cfg=cfg) is not None) == alerted
    assert bool(memory.to_json()) == alerted  # a guarded score leaves no trace: the first one after the guard alerts


def test_churned_customers_are_never_alerted():
    memory = AlertMemory()
    assert step(memory, 0.99, T0, churned=True) is None
    assert memory.to_json() == {}
    assert step(memory, 0.99, T0 + 40 * DAY_MS, churned=True, tier="vip") is None


def test_band():
    assert band(0.5, 0.5) == "high"
    assert band(0.75, 0.5) == "critical"
    assert band(0.74, 0.5) == "high"
    assert band(0.49, 0.5) == "watch"  # a rule alert below the model's threshold
    assert step(AlertMemory(), 0.9, T0).band == "critical"


# ---- hysteresis, cool-down, one open alert -------------------------------------------------------------
def test_one_open_alert_per_customer():
    memory = AlertMemory()
    first = step(memory, 0.6, T0)
    assert first is not None and first.kind == "new" and first.trigger == "event"
    for i in range(1, 20):  # still high, still open: silence (and no escalation below +0.15)
        assert step(memory, 0.74, T0 + i * DAY_MS) is None
    assert memory.open == alert_id("c1", T0, "event")


def test_escalation_when_score_keeps_rising():
    memory = AlertMemory()
    step(memory, 0.6, T0)
    d = step(memory, 0.75, T0 + DAY_MS)
    assert d is not None and d.kind == "escalation" and d.trigger == "escalation"
    assert memory.open == alert_id("c1", T0, "event")  # the escalation does not replace the open alert
    assert step(memory, 0.8, T0 + 2 * DAY_MS) is None  # next escalation needs +0.15 over 0.75
    assert step(memory, 0.9, T0 + 3 * DAY_MS).kind == "escalation"


def test_open_alert_expires():
    cfg = AlertConfig(rearm_ratio=1.0)  # keep hysteresis out of the way: only expiry is tested
    memory = AlertMemory()
    step(memory, 0.6, T0, cfg=cfg)
    step(memory, 0.1, T0 + DAY_MS, cfg=cfg)  # re-armed, but the alert is still open
    assert step(memory, 0.6, T0 + 30 * DAY_MS, cfg=cfg) is None  # exactly at expiry: still open
    d = step(memory, 0.6, T0 + 30 * DAY_MS + 1, cfg=cfg)
    assert d is not None and d.kind == "new"
    assert memory.open == alert_id("c1", T0 + 30 * DAY_MS + 1, "event")


def test_hysteresis_needs_a_drop_below_the_lower_mark():
    memory = AlertMemory()
    step(memory, 0.6, T0)
    ack(memory, T0 + HOUR)
    later = T0 + 20 * DAY_MS  # after the cool-down
    assert step(memory, 0.6, later) is None  # never dropped: not re-armed
    assert step(memory, 0.41, later + 1) is None  # below threshold, above 0.5 * 0.8
    assert step(memory, 0.6, later + 2) is None
    assert step(memory, 0.4, later + 3) is None
    assert step(memory, 0.6, later + 4) is None  # 0.4 is not *below* 0.5 * 0.8: still not re-armed
    assert step(memory, 0.39, later + 5) is None  # re-armed now, but below threshold
    d = step(memory, 0.55, later + 6)
    assert d is not None and d.kind == "new"


def test_cool_down_after_an_alert():
    memory = AlertMemory()
    step(memory, 0.6, T0)
    ack(memory, T0 + HOUR)
    step(memory, 0.1, T0 + DAY_MS)  # re-armed
    assert step(memory, 0.9, T0 + 14 * DAY_MS - 1) is None
    assert step(memory, 0.9, T0 + 14 * DAY_MS) is not None


def test_cool_down_is_configurable():
    cfg = AlertConfig(cooldown_days=1.0)
    memory = AlertMemory()
    step(memory, 0.6, T0, cfg=cfg)
    ack(memory, T0 + 1)
    step(memory, 0.1, T0 + 2, cfg=cfg)
    assert step(memory, 0.9, T0 + DAY_MS - 1, cfg=cfg) is None
    assert step(memory, 0.9, T0 + DAY_MS, cfg=cfg) is not None


def test_undelivered_decision_does_not_start_cool_down():
    memory = AlertMemory()
    assert step(memory, 0.6, T0, emit=False) is not None
    assert step(memory, 0.6, T0 + 1) is not None


# ---- outcomes --------------------------------------------------------------------------------------

@pytest.mark.parametrize("typ", ["alert_ack", "contacted", "saved"])
def test_outcome_without_id_closes_open_alert(typ):
    memory = AlertMemory()
    step(memory, 0.6, T0)
    ack(memory, T0 + HOUR, typ)
    assert memory.open is None and memory.acked_ms == T0 + HOUR


def test_ack_with_matching_id_closes_and_other_id_does_not():
    memory = AlertMemory()
    step(memory, 0.6, T0)
    ack(memory, T0 + HOUR, alert_id_="0000000000000000")  # an old alert's ack
    assert memory.open == alert_id("c1", T0, "event")
    ack(memory, T0 + 2 * HOUR, alert_id_=alert_id("c1", T0, "event"))
    assert memory.open is None


@pytest.mark.parametrize("typ", ["churned", "renewed"])
def test_other_outcomes_do_not_close(typ):
    memory = AlertMemory()
    step(memory, 0.6, T0)
    ack(memory, T0 + HOUR, typ)
    assert memory.open == alert_id("c1", T0, "event")


def test_ack_without_open_alert_is_a_no_op():
    memory = AlertMemory()
    ack(memory, T0)
    assert memory.to_json() == {}


def test_ack_stops_escalations_of_the_closed_alert():
    memory = AlertMemory()
    step(memory, 0.6, T0)
    ack(memory, T0 + HOUR)
    assert step(memory, 0.95, T0 + DAY_MS) is None  # closed, not re-armed, in cool-down


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(scores=st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=60),
       gap_h=st.integers(min_value=1, max_value=96))
def test_never_two_new_alerts_within_the_cool_down(scores, gap_h):
    memory = AlertMemory()
    news = []
    for i, score in enumerate(scores):
        now = T0 + i * gap_h * HOUR
        d = step(memory, score, now)
        if d is not None and d.kind == "new":
            assert score >= 0.5
            news.append(now)
    assert all(b - a >= CFG.cooldown_days * DAY_MS for a, b in zip(news, news[1:]))


# ---- ids and records -------------------------------------------------------------------------------
def test_alert_id_is_deterministic():
    a = alert_id("c1", T0, "event")
    assert a == alert_id("c1", T0, "event")
    assert len(a) == 16 and int(a, 16) >= 0
    assert len({a, alert_id("c2", T0, "event"), alert_id("c1", T0 + 1, "event"), alert_id("c1", T0, "sweep")}) == 4


def test_build_uses_decision_and_deterministic_id():
    d = Decision("new", "sweep", 0.35, "high")
    alert = build("c9", "vip", "ann", 0.4, d, [], "play", "v3", T0, T0 + 10)
    assert alert.alert_id == alert_id("c9", T0, "sweep")
    assert (alert.trigger, alert.threshold, alert.band, alert.kind, alert.tier) == ("sweep", 0.35, "high", "new", "vip")


def test_alert_to_json_fields():
    reasons = [Reason("logins_trend_7d", -0.8, 0.123456, "adoption", "logins down 80% vs the previous week"),
               Reason("last_nps", float("nan"), 0.05, "value", "no NPS answer yet")]
    alert = Alert(alert_id="abc", customer_id="c1", tier="vip", csm="ann", score=0.612345678, threshold=0.35,
                  band="high", trigger="event", reasons=reasons, play="Guided training", model_version="v2",
                  event_ms=T0, emit_ms=T0 + 1234)
    d = alert.to_json()
    assert set(d) >= {"alert_id", "customer_id", "tier", "csm", "score", "threshold", "band", "trigger", "reasons",
                      "play", "model_version", "event_ms", "emit_ms", "event_time", "emit_time", "kind"}
    assert d["score"] == 0.6123 and d["threshold"] == 0.35
    assert d["event_time"] == format_ts(T0) == "2024-06-15T12:00:00.000Z"
    assert d["emit_time"] == "2024-06-15T12:00:01.234Z"
    assert d["kind"] == "new"
    assert d["reasons"][0] == {"feature": "logins_trend_7d", "value": -0.8, "contribution": 0.1235,
                               "category": "adoption", "text": "logins down 80% vs the previous week"}
    assert d["reasons"][1]["value"] is None  # NaN is not valid JSON
    back = orjson.loads(orjson.dumps(d))
    assert back == d
    assert not any(isinstance(v, float) and math.isnan(v) for v in back.values())
