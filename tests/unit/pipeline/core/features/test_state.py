"""Unit tests for pipeline.core.features.state: the state's bytes (the changelog's records)."""

from __future__ import annotations

import itertools
import random

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.alert_memory import AlertMemory
from pipeline.core.contract import DAY_MS, Event
from pipeline.core.features import CustomerState, FeatureConfig, apply, vector
from tests.unit.pipeline.core.features.events import T0, any_event, ev, login, same_vector


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(events=st.lists(any_event(), max_size=60), lateness=st.sampled_from([3, 30, 90]))
def test_serialisation_round_trip_gives_identical_vectors(events, lateness):
    cfg = FeatureConfig(allowed_lateness_days=lateness)
    s = CustomerState("c1")
    for i, e in enumerate(events):
        apply(s, e, offset=i, cfg=cfg)
    s.alert = AlertMemory.from_json({"open": "abc", "open_score": 0.61, "armed": False})
    raw = s.to_bytes()
    back = CustomerState.from_bytes(raw)
    assert back.to_bytes() == raw
    for now in (T0, T0 + 60 * DAY_MS, T0 + 130 * DAY_MS):
        assert same_vector(vector(back, now), vector(s, now))
    # the restored state keeps evolving exactly like the original
    nxt = login(T0 + 121 * DAY_MS)
    apply(s, nxt, offset=len(events), cfg=cfg)
    apply(back, nxt, offset=len(events), cfg=cfg)
    assert back.to_bytes() == s.to_bytes()


def _ninety_day_active_customer() -> CustomerState:
    rng = random.Random(11)
    s = CustomerState("cust-000123")
    apply(s, ev("customers", "profile", T0 - 400 * DAY_MS, cid=s.customer_id, tier="vip", plan="pro", mrr=1200.0,
                signup_ms=T0 - 400 * DAY_MS, renewal_ms=T0 + 30 * DAY_MS, csm="Ann Lee"), offset=0)
    offsets = {src: itertools.count(1) for src in ("interactions", "tickets", "surveys")}

    def put(e: Event) -> None:
        assert apply(s, e, offset=next(offsets[e.source]))

    for d in range(90, 0, -1):
        day0 = T0 - d * DAY_MS
        for typ in ("login", "feature_use", "feature_use", "page_view", "page_view", "help_view", "custom_event"):
            put(ev("interactions", typ, day0 + rng.randrange(DAY_MS), cid=s.customer_id, success=rng.random() > 0.2))
        if d % 10 == 0:
            put(ev("tickets", "opened", day0, cid=s.customer_id, ticket_id=f"T-{d}", severity="high", sla_due_ms=day0 + DAY_MS))
            put(ev("tickets", "resolved", day0 + 2 * DAY_MS, cid=s.customer_id, ticket_id=f"T-{d}"))
        if d % 30 == 0:
            for typ, score in (("nps", 7.0), ("csat", 4.0), ("ces", 3.0)):
                put(ev("surveys", typ, day0, cid=s.customer_id, score=score))
    s.alert = AlertMemory.from_json({"open": "0123456789abcdef", "open_ms": T0, "open_score": 0.7, "armed": False,
                                     "last_ms": T0})
    return s


def test_serialized_size_of_a_90_day_active_customer():
    # Measured: 8,893 bytes as JSON, 5,3xx in the binary form -- 90 active days, 9 resolved tickets kept
    # for 90 days, 2 NPS + 3 CSAT + 3 CES answers, profile, offsets and alert memory; the event-id
    # memory is 8 bytes an id in the binary form (about 11 in base64). Printed with `pytest -s`.
    s = _ninety_day_active_customer()
    raw = s.to_bytes()
    as_json = s.to_json()
    print(f"\nserialized CustomerState, 90-day active customer: {len(raw)} bytes ({len(as_json)} as JSON)")
    assert len(s.days) == 90
    assert len(s.resolved_tickets) == 9 and len(s.csat) == 3
    print(f"  of which the event-id memory: {len(orjson.dumps(orjson.loads(as_json)['seen']))} bytes as JSON "
          f"for {s.seen_count} events")
    assert len(raw) < 0.7 * len(as_json)
    assert len(raw) < 4_000 + 9 * s.seen_count
    assert same_vector(vector(CustomerState.from_bytes(raw), T0), vector(s, T0))
    assert same_vector(vector(CustomerState.from_bytes(as_json), T0), vector(s, T0))
