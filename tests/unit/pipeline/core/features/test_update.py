"""Unit tests for pipeline.core.features.update: lateness, idempotence, and what each source's events change."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.contract import DAY_MS, HOUR_MS, Event
from pipeline.core.features import (CH, Applied, CustomerState, FeatureConfig, apply, day_of, states_from_events,
                                    vector)
from tests.unit.pipeline.core.features.events import (_INTERACTION_TYPES, T0, ev, feats, login, opened, same_vector,
                                                      state_of, survey, ticket)


# ---- lateness and pruning ----------------------------------------------------------------------------
def test_event_later_than_allowed_lateness_is_refused_as_too_late():
    """Beyond the lateness the id memory no longer reaches, so whether the event was applied before
    can't be told: it is refused (the worker dead-letters it) rather than risk a double count."""
    cfg = FeatureConfig(allowed_lateness_days=3)
    s = state_of(login(T0), cfg=cfg)
    before = s.to_bytes()
    assert apply(s, login(T0 - 5 * DAY_MS), None, cfg) is Applied.TOO_LATE
    assert apply(s, login(T0 - 3 * DAY_MS), None, cfg) is Applied.TOO_LATE  # exactly at the bound
    assert s.to_bytes() == before
    assert apply(s, login(T0 - 2 * DAY_MS), None, cfg)  # within lateness: its day bucket is updated
    assert s.days[day_of(T0 - 2 * DAY_MS)][CH["logins"]] == 1
    f = feats(s)
    assert (f["logins_7d"], f["active_days_7d"]) == (2.0, 2.0)
    assert s.lifetime[CH["logins"]] == 2


def test_late_event_beyond_ring_with_default_config_is_too_late():
    s = state_of(login(T0))
    assert apply(s, login(T0 - 100 * DAY_MS)) is Applied.TOO_LATE
    assert s.lifetime[CH["logins"]] == 1
    assert list(s.days) == [day_of(T0)]


def test_buckets_beyond_90_days_are_pruned():
    s = state_of(login(T0 - 100 * DAY_MS), login(T0 - 90 * DAY_MS), login(T0 - 89 * DAY_MS))
    assert len(s.days) == 3
    apply(s, login(T0))
    assert sorted(s.days) == [day_of(T0 - 89 * DAY_MS), day_of(T0)]
    assert s.lifetime[CH["logins"]] == 4
    assert feats(s)["logins_90d"] == 2.0


def test_ring_stays_bounded_over_a_long_history():
    s = CustomerState("c1")
    for d in range(400):
        apply(s, login(T0 + d * DAY_MS))
    assert len(s.days) == 90
    assert s.lifetime[CH["logins"]] == 400


# ---- idempotence -----------------------------------------------------------------------------------
def test_same_event_id_is_applied_once_whatever_its_offset():
    s = CustomerState("c1")
    first = login(T0)
    assert apply(s, first, offset=5, partition=0)
    before = s.to_bytes()
    assert apply(s, first, offset=5, partition=0) is Applied.DUPLICATE  # redelivered
    assert apply(s, first, offset=900, partition=0) is Applied.DUPLICATE  # re-sent: new offset, same id
    assert apply(s, first, offset=0, partition=1) is Applied.DUPLICATE  # landed on another partition
    assert s.to_bytes() == before
    assert apply(s, login(T0 + HOUR_MS), offset=6, partition=0)
    assert feats(s, T0 + HOUR_MS)["logins_7d"] == 2.0
    assert s.offsets == {"interactions:0": 6}
    assert s.applied == {"interactions": 2} and s.events == 2


def test_a_topic_that_starts_over_is_not_mistaken_for_redelivery():
    """Offsets restart at 0 when a topic is re-created: new events at low offsets must apply."""
    s = CustomerState("c1")
    for i in range(10):
        assert apply(s, login(T0 + i * HOUR_MS), offset=100 + i, partition=0)
    for i in range(10, 15):
        assert apply(s, login(T0 + i * HOUR_MS), offset=i - 10, partition=0)
    assert s.applied == {"interactions": 15}


def test_ids_are_per_source():
    s = CustomerState("c1")
    a, b = login(T0), opened("t1", T0)
    b.event_id = a.event_id  # the same id on another topic is another event
    assert apply(s, a) and apply(s, b)
    assert s.applied == {"interactions": 1, "tickets": 1}


def test_offline_logs_are_deduplicated_by_id_too():
    s = CustomerState("c1")
    e = login(T0)
    assert apply(s, e, None)
    assert apply(s, e, None) is Applied.DUPLICATE
    assert s.offsets == {}
    assert feats(s)["logins_7d"] == 1.0


def test_id_memory_forgets_what_is_too_late_anyway_and_survives_serialisation():
    cfg = FeatureConfig(allowed_lateness_days=3)
    s = CustomerState("c1")
    old = login(T0)
    assert apply(s, old, None, cfg)
    assert apply(s, login(T0 + 2 * DAY_MS), None, cfg)
    s = CustomerState.from_bytes(s.to_bytes())
    assert apply(s, old, None, cfg) is Applied.DUPLICATE  # still remembered after a round trip
    assert apply(s, login(T0 + 5 * DAY_MS), None, cfg)
    assert s.seen_count == 1  # ids of days at or past the lateness bound are gone ...
    assert apply(s, old, None, cfg) is Applied.TOO_LATE  # ... and its event is refused, not re-counted


def test_id_memory_is_capped_and_the_cap_only_ever_refuses():
    from pipeline.core.features import seen as f

    s = CustomerState("c1")
    cap = 50
    old_max, f.SEEN_MAX = f.SEEN_MAX, cap
    try:
        for i in range(cap):
            assert apply(s, login(T0 + i * 60_000))  # one day
        assert apply(s, login(T0 + DAY_MS))  # over the cap: the oldest day is forgotten
        assert s.seen_count == 1 and s.seen_floor_day == day_of(T0) + 1
        assert apply(s, login(T0 + 5_000)) is Applied.TOO_LATE
    finally:
        f.SEEN_MAX = old_max


# ---- tickets ---------------------------------------------------------------------------------------
def test_ticket_counts_at_a_point_in_time():
    s = state_of(
        opened("t1", T0 - 3 * DAY_MS, "high", sla_due_ms=T0 - DAY_MS),
        opened("t2", T0 - 2 * DAY_MS, "low", sla_due_ms=T0 + 2 * DAY_MS),
        opened("t3", T0 - 2 * DAY_MS, "critical"),  # no SLA: never past it
    )
    f = feats(s, T0)
    assert (f["open_tickets"], f["open_high_sev_tickets"], f["open_past_sla"]) == (3, 2, 1)
    assert (f["tickets_30d"], f["high_sev_tickets_30d"]) == (3, 2)
    earlier = feats(s, T0 - 2.5 * DAY_MS)  # before t2/t3 were opened and before t1's SLA
    assert (earlier["open_tickets"], earlier["open_high_sev_tickets"], earlier["open_past_sla"]) == (1, 1, 0)
    assert feats(s, T0 + 3 * DAY_MS)["open_past_sla"] == 2


def test_resolve_after_sla_is_a_breach_and_feeds_mean_resolve_hours():
    s = state_of(
        opened("t1", T0 - 3 * DAY_MS, "high", sla_due_ms=T0 - DAY_MS),
        opened("t2", T0 - 2 * DAY_MS, "low", sla_due_ms=T0 + DAY_MS),
        opened("t3", T0 - 2 * DAY_MS, "low"),  # no SLA: never a breach
    )
    assert math.isnan(feats(s)["mean_resolve_hours"])
    apply(s, ticket("resolved", "t2", T0 - DAY_MS))  # 24 h, within the SLA
    assert feats(s)["sla_breaches_30d"] == 0.0
    apply(s, ticket("resolved", "t1", T0))  # 72 h, after the SLA
    assert feats(s)["sla_breaches_30d"] == 1.0
    apply(s, ticket("resolved", "t3", T0))  # 48 h
    f = feats(s)
    assert f["sla_breaches_30d"] == 1.0
    assert f["mean_resolve_hours"] == pytest.approx((24 + 72 + 48) / 3)
    assert (f["open_tickets"], f["open_past_sla"]) == (0.0, 0.0)


def test_reopen_restores_the_ticket_with_a_fresh_sla_clock():
    s = state_of(
        opened("t1", T0 - 10 * DAY_MS, "high", sla_due_ms=T0 - 8 * DAY_MS),  # 2-day allowance
        ticket("resolved", "t1", T0 - 9 * DAY_MS),
    )
    assert feats(s)["open_tickets"] == 0.0
    apply(s, ticket("reopened", "t1", T0 - DAY_MS))
    f = feats(s)
    assert (f["open_tickets"], f["open_high_sev_tickets"], f["reopens_90d"]) == (1.0, 1.0, 1.0)
    assert f["open_past_sla"] == 0.0  # new SLA: reopen + 2 days
    assert feats(s, T0 + DAY_MS + 1)["open_past_sla"] == 1.0
    apply(s, ticket("resolved", "t1", T0))
    assert feats(s)["mean_resolve_hours"] == pytest.approx((24 + 24) / 2)


def test_escalation_counts_and_raises_severity():
    s = state_of(opened("t1", T0 - DAY_MS, "low"), ticket("escalated", "t1", T0, severity="critical"))
    f = feats(s)
    assert (f["escalations_30d"], f["open_high_sev_tickets"]) == (1.0, 1.0)
    assert f["high_sev_tickets_30d"] == 0.0  # opened as low


def test_duplicate_open_is_not_a_new_ticket_and_close_removes():
    s = state_of(opened("t1", T0 - DAY_MS), opened("t1", T0))
    assert (feats(s)["open_tickets"], feats(s)["tickets_30d"]) == (1.0, 1.0)
    apply(s, ticket("closed", "t1", T0))
    assert feats(s)["open_tickets"] == 0.0


def test_replies_do_not_change_ticket_features():
    s = state_of(opened("t1", T0 - DAY_MS))
    before = vector(s, T0)
    apply(s, ticket("agent_reply", "t1", T0 - HOUR_MS))
    apply(s, ticket("customer_reply", "t1", T0 - HOUR_MS))
    assert same_vector(vector(s, T0), before)


# ---- surveys ---------------------------------------------------------------------------------------
def test_nps_last_category_and_change():
    s = state_of(survey("nps", 9, T0 - 40 * DAY_MS), survey("nps", 3, T0 - 2 * DAY_MS))
    f = feats(s)
    assert (f["last_nps"], f["nps_category"], f["nps_change"]) == (3.0, -1.0, -6.0)
    assert f["days_since_nps"] == pytest.approx(2.0)


def test_nps_late_answer_does_not_replace_the_latest():
    s = state_of(survey("nps", 9, T0 - DAY_MS), survey("nps", 3, T0 - 5 * DAY_MS))
    f = feats(s)
    assert (f["last_nps"], f["nps_change"]) == (9.0, 6.0)


@pytest.mark.parametrize(("score", "category"), [(0, -1), (6, -1), (7, 0), (8, 0), (9, 1), (10, 1)])
def test_nps_category(score, category):
    f = feats(state_of(survey("nps", score, T0)))
    assert f["nps_category"] == category
    assert math.isnan(f["nps_change"])  # only one answer


def test_survey_features_are_nan_without_answers():
    f = feats(state_of(login(T0)))
    for name in ("last_nps", "nps_category", "nps_change", "days_since_nps", "min_csat_30d", "mean_csat_90d", "mean_ces_90d"):
        assert math.isnan(f[name]), name


def test_csat_and_ces_windows():
    s = state_of(
        survey("ces", 7, T0 - 100 * DAY_MS),  # outside 90 days
        survey("csat", 2, T0 - 40 * DAY_MS),  # outside 30, inside 90
        survey("csat", 4, T0 - 10 * DAY_MS),
        survey("csat", 3, T0 - DAY_MS),
        survey("ces", 3, T0 - 50 * DAY_MS),
        survey("ces", 6, T0 - DAY_MS),
    )
    f = feats(s)
    assert f["min_csat_30d"] == 3.0
    assert f["mean_csat_90d"] == pytest.approx(3.0)
    assert f["mean_ces_90d"] == pytest.approx(4.5)
    later = feats(s, T0 + 30 * DAY_MS)
    assert math.isnan(later["min_csat_30d"])  # the newest CSAT is 31 days old by then


# ---- profile ---------------------------------------------------------------------------------------
def test_profile_features():
    s = state_of(ev("customers", "profile", T0 - 10 * DAY_MS, tier="vip", plan="pro", mrr=1200.0,
                    signup_ms=T0 - 400 * DAY_MS, renewal_ms=T0 + 20 * DAY_MS, csm="Ann"))
    f = feats(s)
    assert (f["is_vip"], f["plan_level"], f["mrr"]) == (1.0, 1.0, 1200.0)
    assert f["tenure_days"] == pytest.approx(400.0)
    assert f["days_to_renewal"] == pytest.approx(20.0)
    assert s.csm == "Ann"


def test_profile_unknown_values_are_nan():
    f = feats(state_of(login(T0)))
    assert f["is_vip"] == 0.0
    for name in ("plan_level", "mrr", "tenure_days", "days_to_renewal"):
        assert math.isnan(f[name]), name
    f = feats(state_of(ev("customers", "profile", T0, plan="galactic")))
    assert math.isnan(f["plan_level"])


def test_partial_profile_upsert_keeps_other_fields():
    s = state_of(ev("customers", "profile", T0 - DAY_MS, tier="vip", plan="enterprise", mrr=10.0),
                 ev("customers", "profile", T0, mrr=20.0))
    f = feats(s)
    assert (f["is_vip"], f["plan_level"], f["mrr"]) == (1.0, 2.0, 20.0)


def test_late_profile_upsert_does_not_overwrite_a_newer_one():
    newer = ev("customers", "profile", T0, tier="vip", plan="enterprise")
    older = ev("customers", "profile", T0 - 5 * DAY_MS, tier="standard", plan="basic")
    assert same_vector(vector(state_of(older, newer), T0), vector(state_of(newer, older), T0))


def test_outcomes_record_churn_and_renewal():
    s = state_of(ev("outcomes", "renewed", T0 - DAY_MS), ev("outcomes", "renewed", T0 - 9 * DAY_MS),
                 ev("outcomes", "churned", T0))
    assert (s.renewed_ms, s.churned_ms) == (T0 - DAY_MS, T0)


def test_replay_equals_applying_one_by_one():
    rng = random.Random(3)
    events = []
    for d in range(60):
        for cid in ("a", "b", "c"):
            if rng.random() < 0.6:
                events.append(ev("interactions", rng.choice(_INTERACTION_TYPES), T0 + d * DAY_MS + rng.randrange(DAY_MS), cid=cid))
    events.append(ev("tickets", "opened", T0 + 3 * DAY_MS, cid="b", ticket_id="t", severity="high"))
    events.append(ev("surveys", "nps", T0 + 5 * DAY_MS, cid="c", score=4.0))
    states = states_from_events(events)
    assert sorted(states) == ["a", "b", "c"]
    for cid, got in states.items():
        manual = CustomerState(cid)
        for e in events:
            if e.customer_id == cid:
                apply(manual, e)
        assert got.to_bytes() == manual.to_bytes()
        assert same_vector(vector(got, T0 + 60 * DAY_MS), vector(manual, T0 + 60 * DAY_MS))


@st.composite
def in_window_events(draw) -> list[Event]:
    """Events whose fold does not depend on order: interactions, surveys and distinct ticket opens,
    all within 60 days (inside the default lateness)."""
    out = []
    for i in range(draw(st.integers(min_value=1, max_value=25))):
        ts = T0 - draw(st.integers(min_value=0, max_value=60 * DAY_MS))
        kind = draw(st.sampled_from(["interactions", "interactions", "surveys", "open"]))
        if kind == "interactions":
            typ = draw(st.sampled_from(_INTERACTION_TYPES))
            out.append(ev(kind, typ, ts, success=False) if typ == "help_view" and draw(st.booleans()) else ev(kind, typ, ts))
        elif kind == "surveys":
            typ = draw(st.sampled_from(["nps", "csat", "ces"]))
            hi = {"nps": 10, "csat": 5, "ces": 7}[typ]
            out.append(survey(typ, draw(st.integers(min_value=1, max_value=hi)), ts + i))  # distinct times
        else:
            out.append(opened(f"t{i}", ts, draw(st.sampled_from(["low", "high"])), ts + DAY_MS))
    return out


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(events=in_window_events(), seed=st.integers(0, 2**32 - 1))
def test_order_independence_within_lateness(events, seed):
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    a, b = state_of(*events), state_of(*shuffled)
    for now in (T0, T0 + 3 * DAY_MS):
        assert same_vector(vector(a, now), vector(b, now))
    assert a.lifetime == b.lifetime and a.days == b.days
    # the whole state, remembered lists included, not only the vector (the crash test compares states)
    assert a.comparable() == b.comparable()


def test_remembered_failed_help_views_do_not_depend_on_arrival_order():
    """Found by the crash test: a failed help view arriving after a newer event of another topic was
    forgotten by the stream but kept by the time-ordered replay."""
    day = (T0 // DAY_MS) * DAY_MS
    help1 = ev("interactions", "help_view", day + 1 * 3_600_000, feature="export", success=False)
    help2 = ev("interactions", "help_view", day + DAY_MS + 1_800_000, feature="export", success=False)
    later = ev("tickets", "opened", day + DAY_MS + 23 * 3_600_000, ticket_id="t-x", severity="low")
    in_order = state_of(help1, help2, later)
    arrival = state_of(later, help2, help1)
    assert in_order.recent_failed_help == arrival.recent_failed_help
    assert in_order.comparable() == arrival.comparable()
