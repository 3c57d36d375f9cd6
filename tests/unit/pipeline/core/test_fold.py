"""pipeline.core.fold: one event into its customer's batch entry, as both the worker and the replay do it."""

from __future__ import annotations

import pytest

from pipeline.core import fold as fold_module
from pipeline.core.contract import DAY_MS, Event, parse_ts
from pipeline.core.decisions import Touched
from pipeline.core.features import Applied, CustomerState, FeatureConfig
from pipeline.core.fold import fold
from pipeline.core.rules import RulesConfig
from training.assess import shadow

T0 = parse_ts("2026-05-10T12:00:00Z")
H = 3_600_000
CFG = FeatureConfig()
RULES = RulesConfig()


def ev(source: str, typ: str, ts: int, event_id: str | None = None, **data) -> Event:
    return Event(source, event_id or f"{source}-{typ}-{ts}", "c1", ts, typ, data)


def failed_help(ts: int) -> Event:
    return ev("interactions", "help_view", ts, feature="export", success=False)


def entry(partition: int = 3) -> Touched:
    return Touched(CustomerState("c1"), partition)


def test_an_outcome_goes_to_the_alert_memory_and_does_not_mark_scoring():
    e = entry()
    e.state.alert.open = "A1"
    result = fold(e, ev("outcomes", "alert_ack", T0, alert_id="A1"), CFG, RULES)
    assert result is Applied.APPLIED
    assert e.state.alert.open is None and e.state.alert.acked_ms == T0
    assert e.score_needed is False and e.rule_hits == []
    assert e.state.applied == {"outcomes": 1} and e.state.partition == 3


def test_an_acknowledgement_of_another_alert_leaves_the_open_one_open():
    e = entry()
    e.state.alert.open = "A1"
    fold(e, ev("outcomes", "alert_ack", T0, alert_id="A0"), CFG, RULES)
    assert e.state.alert.open == "A1" and "acked_ms" not in e.state.alert.to_json() and not e.score_needed


def test_a_duplicate_changes_nothing_and_is_returned_as_such():
    e = entry()
    login = ev("interactions", "login", T0, duration_s=60.0)
    assert fold(e, login, CFG, RULES, offset=7, partition=3) is Applied.APPLIED
    again = Touched(e.state, 3)
    before = e.state.to_bytes()
    assert fold(again, login, CFG, RULES, offset=9, partition=3) is Applied.DUPLICATE
    assert e.state.to_bytes() == before  # not even the input position moves
    assert again.score_needed is False and again.rule_hits == []


def test_a_duplicate_outcome_does_not_touch_the_alert_memory_again():
    e = entry()
    e.state.alert.open = "A1"
    ack = ev("outcomes", "alert_ack", T0, alert_id="A1")
    fold(e, ack, CFG, RULES)
    e.state.alert.open = "A2"  # a later alert, opened after the acknowledgement
    assert fold(e, ack, CFG, RULES) is Applied.DUPLICATE
    assert e.state.alert.open == "A2" and e.state.alert.acked_ms == T0


def test_a_too_late_event_changes_nothing():
    e = entry()
    fold(e, ev("interactions", "login", T0), CFG, RULES)
    late = Touched(e.state, 3)
    before = e.state.to_bytes()
    old = ev("interactions", "login", T0 - (CFG.allowed_lateness_days + 1) * DAY_MS)
    assert fold(late, old, CFG, RULES) is Applied.TOO_LATE
    assert e.state.to_bytes() == before and not late.score_needed


def test_an_interaction_marks_scoring_and_runs_the_event_rules_on_the_state_after_it():
    e = entry()
    for k in range(2):
        assert fold(e, failed_help(T0 + k * H), CFG, RULES) is Applied.APPLIED
    assert e.score_needed is True and e.rule_hits == []  # two are not enough yet
    fold(e, failed_help(T0 + 2 * H), CFG, RULES)  # the third counts itself: the rule sees the state after it
    assert [h.rule for h in e.rule_hits] == ["repeated_failed_help"] and e.rule_hits[0].value == 3
    assert e.rule_hits[0].ts_ms == T0 + 2 * H


def test_event_rules_follow_the_rules_config_given():
    e = entry()
    off = RulesConfig(enabled=frozenset())
    for k in range(3):
        fold(e, failed_help(T0 + k * H), CFG, off)
    assert e.score_needed is True and e.rule_hits == []


def test_rule_hits_accumulate_over_a_batch():
    e = entry()
    fold(e, ev("surveys", "csat", T0, score=1.0), CFG, RULES)
    fold(e, ev("surveys", "nps", T0 + H, score=2.0), CFG, RULES)
    assert [h.rule for h in e.rule_hits] == ["csat_low", "nps_detractor"] and e.score_needed


def test_where_the_event_was_read_is_kept_only_when_given():
    read = entry(partition=1)
    fold(read, ev("interactions", "login", T0), CFG, RULES, offset=41, partition=2)
    assert read.state.offsets == {"interactions:2": 41} and read.state.partition == 2
    offline = entry(partition=1)
    fold(offline, ev("interactions", "login", T0), CFG, RULES)
    assert offline.state.offsets == {} and offline.state.partition == 1


def test_the_feature_config_given_is_the_one_applied():
    strict = FeatureConfig(allowed_lateness_days=1)
    e = entry()
    fold(e, ev("interactions", "login", T0 + 3 * DAY_MS), strict, RULES)
    assert fold(e, ev("interactions", "login", T0), strict, RULES) is Applied.TOO_LATE
    assert fold(e, ev("interactions", "login", T0), CFG, RULES) is Applied.APPLIED


def test_worker_and_replay_fold_with_this_very_function():
    assert shadow.fold is fold_module.fold
    batch = pytest.importorskip("pipeline.worker.batch")
    assert batch.fold is fold_module.fold
