from __future__ import annotations

import pytest

from pipeline.core.alert_memory import AlertMemory
from pipeline.core.contract import DAY_MS, Event, parse_ts
from pipeline.core.features import FEATURE_INDEX, FEATURES, CustomerState, apply, vector
from pipeline.core.rules import RuleHit, RulesConfig, on_event, on_score

T0 = parse_ts("2026-05-10T12:00:00Z")
H = 3_600_000
CFG = RulesConfig()


def ev(source: str, typ: str, ts: int, **data) -> Event:
    return Event(source, f"e{ts}{typ}", "c1", ts, typ, data)


def state_after(*events: Event, tier: str = "standard") -> CustomerState:
    s = CustomerState("c1", tier=tier)
    for e in events:
        apply(s, e)
    return s


@pytest.mark.parametrize(("typ", "score", "rule"), [
    ("csat", 1, "csat_low"), ("csat", 2, "csat_low"), ("csat", 3, None),
    ("nps", 0, "nps_detractor"), ("nps", 6, "nps_detractor"), ("nps", 7, None), ("ces", 7, None),
])
def test_survey_rules(typ, score, rule):
    e = ev("surveys", typ, T0, score=float(score))
    hits = on_event(state_after(e), e, CFG)
    assert [h.rule for h in hits] == ([rule] if rule else [])
    if rule:
        assert hits[0].ts_ms == T0


def test_repeated_failed_help_needs_three_on_the_same_feature_within_24h():
    views = [ev("interactions", "help_view", T0 + k * H, feature="export", success=False) for k in range(3)]
    other = ev("interactions", "help_view", T0 + 30 * 60_000, feature="api", success=False)
    s = state_after(views[0], other, views[1])
    assert on_event(s, views[1], CFG) == []
    apply(s, views[2])
    hits = on_event(s, views[2], CFG)
    assert [h.rule for h in hits] == ["repeated_failed_help"] and hits[0].value == 3
    assert "on export" in hits[0].text
    old = ev("interactions", "help_view", T0 - 2 * DAY_MS, feature="export", success=False)
    s2 = state_after(old, views[1], views[2])
    assert on_event(s2, views[2], CFG) == []  # only two within 24 h
    ok = ev("interactions", "help_view", T0 + 3 * H, feature="export", success=True)
    assert on_event(state_after(*views, ok), ok, CFG) == []


def _vec(**values: float) -> list[float]:
    v = [0.0] * len(FEATURES)
    for k, x in values.items():
        v[FEATURE_INDEX[k]] = x
    return v


def test_renewal_at_risk_needs_elevated_score_and_near_renewal():
    s = CustomerState("c1")
    assert [h.rule for h in on_score(s, _vec(days_to_renewal=20), 0.4, 0.5, CFG)] == ["renewal_at_risk"]
    assert on_score(s, _vec(days_to_renewal=20), 0.39, 0.5, CFG) == []     # 0.39 < 0.8 * 0.5
    assert on_score(s, _vec(days_to_renewal=45), 0.9, 0.5, CFG) == []      # too far
    assert on_score(s, _vec(days_to_renewal=-1), 0.9, 0.5, CFG) == []      # passed
    assert on_score(s, _vec(days_to_renewal=20), None, 0.5, CFG) == []     # no model, no risk
    s.alert.open = "a-1"
    assert on_score(s, _vec(days_to_renewal=20), 0.9, 0.5, CFG) == []      # the model's open alert covers it


def test_vip_sla_breach_only_for_vips_with_a_ticket_past_sla():
    opened = ev("tickets", "opened", T0, ticket_id="t1", severity="high", sla_due_ms=T0 + 4 * H)
    vip = state_after(opened, tier="vip")
    assert on_score(vip, vector(vip, T0 + 3 * H), None, 0.5, CFG) == []
    hits = on_score(vip, vector(vip, T0 + 5 * H), None, 0.5, CFG)
    assert [h.rule for h in hits] == ["vip_sla_breach"] and hits[0].text == "VIP with 1 open ticket past SLA"
    std = state_after(opened)
    assert on_score(std, vector(std, T0 + 5 * H), None, 0.5, CFG) == []


def test_disabled_rule_does_not_fire():
    e = ev("surveys", "csat", T0, score=1.0)
    cfg = RulesConfig(enabled=frozenset({"nps_detractor"}))
    assert on_event(state_after(e), e, cfg) == []


def test_cooldown_per_rule_and_customer():
    memory = AlertMemory()
    hit = RuleHit("csat_low", "service", "min_csat_30d", 1.0, "x")
    other = RuleHit("nps_detractor", "value", "last_nps", 2.0, "y")

    def due(memory: AlertMemory, hit: RuleHit, now_ms: int, cfg: RulesConfig) -> bool:
        return memory.rule_due(hit.rule, now_ms, cfg.cooldown_ms(hit.rule))

    assert due(memory, hit, T0, CFG)
    assert not due(memory, hit, T0 + 6 * DAY_MS, CFG)
    assert due(memory, other, T0 + DAY_MS, CFG)
    assert due(memory, hit, T0 + 7 * DAY_MS, CFG)
    short = RulesConfig(cooldowns={"csat_low": 1.0})
    m2 = AlertMemory()
    assert due(m2, hit, T0, short) and due(m2, hit, T0 + DAY_MS, short)
