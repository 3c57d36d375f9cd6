"""Unit tests for pipeline.contract: rejection reasons and normalisation of valid events."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.contract import (
    DAY_MS,
    REASONS,
    SCHEMA_VERSION,
    Event,
    InvalidEvent,
    Limits,
    format_ts,
    parse,
    parse_ts,
    to_json,
    validate,
)

NOW = 1_718_452_800_000  # 2024-06-15T12:00:00Z
TS = 1_718_445_600_000  # 2024-06-15T10:00:00Z
DROP = object()  # marks a field to remove from the base event

BASE = {"schema_version": 1, "event_id": "e1", "customer_id": "c1", "ts": "2024-06-15T10:00:00Z"}
VALID = {
    "interactions": {"type": "login"},
    "tickets": {"type": "opened", "ticket_id": "t1", "severity": "high"},
    "surveys": {"type": "nps", "score": 9},
    "customers": {"type": "profile", "tier": "vip"},
    "outcomes": {"type": "alert_ack", "alert_id": "a1"},
}


def make(source: str, **changes) -> dict:
    obj = {**BASE, **VALID[source], **changes}
    return {k: v for k, v in obj.items() if v is not DROP}


def raw(obj) -> bytes:
    return orjson.dumps(obj)


def reason(source: str, payload: bytes | None, limits: Limits = Limits()) -> str:
    with pytest.raises(InvalidEvent) as info:
        parse(source, payload, NOW, limits)
    assert info.value.reason in REASONS
    assert info.value.detail  # the dead-letter record carries a human explanation
    return info.value.reason


# ---- rejections -----------------------------------------------------------------------------------
# (reason, source, raw payload); every payload is what a producer could actually put on the topic.
REJECTIONS = [
    # not JSON
    ("not_json", "interactions", b"{not json"),
    ("not_json", "interactions", b""),
    ("not_json", "interactions", b"\xff\xfe\x00"),
    ("not_json", "interactions", b'{"a": NaN}'),
    ("not_json", "interactions", None),
    # JSON but not an object
    ("not_object", "interactions", b"[1, 2]"),
    ("not_object", "tickets", b'"opened"'),
    ("not_object", "surveys", b"42"),
    ("not_object", "outcomes", b"null"),
    # oversize (checked before decoding, so even garbage of that size is too_large)
    ("too_large", "interactions", raw(make("interactions", padding="y" * 70_000))),
    ("too_large", "interactions", b"x" * (Limits().max_bytes + 1)),
    # missing fields
    ("missing_field", "interactions", raw(make("interactions", event_id=DROP))),
    ("missing_field", "interactions", raw(make("interactions", customer_id=DROP))),
    ("missing_field", "interactions", raw(make("interactions", type=DROP))),
    ("missing_field", "interactions", raw(make("interactions", ts=DROP))),
    ("missing_field", "interactions", raw(make("interactions", ts=None))),
    ("missing_field", "interactions", raw(make("interactions", schema_version=DROP))),
    ("missing_field", "tickets", raw(make("tickets", ticket_id=DROP))),
    ("missing_field", "tickets", raw(make("tickets", severity=DROP))),  # required when opened
    ("missing_field", "surveys", raw(make("surveys", score=DROP))),
    ("missing_field", "outcomes", raw(make("outcomes", alert_id=DROP))),  # required for alert_ack
    # wrong types (booleans are not numbers, numbers are not strings)
    ("wrong_type", "interactions", raw(make("interactions", customer_id=123))),
    ("wrong_type", "interactions", raw(make("interactions", event_id=["e1"]))),
    ("wrong_type", "interactions", raw(make("interactions", type=5))),
    ("wrong_type", "interactions", raw(make("interactions", ts=True))),
    ("wrong_type", "interactions", raw(make("interactions", ts={"ms": TS}))),
    ("wrong_type", "interactions", raw(make("interactions", duration_s=True))),
    ("wrong_type", "interactions", raw(make("interactions", duration_s="12"))),
    ("wrong_type", "interactions", raw(make("interactions", success="yes"))),
    ("wrong_type", "interactions", raw(make("interactions", success=1))),
    ("wrong_type", "interactions", raw(make("interactions", feature=7))),
    ("wrong_type", "surveys", raw(make("surveys", score=True))),
    ("wrong_type", "surveys", raw(make("surveys", score="9"))),
    ("wrong_type", "customers", raw(make("customers", mrr=False))),
    ("wrong_type", "customers", raw(make("customers", signup_ts=False))),
    ("wrong_type", "tickets", raw(make("tickets", severity=3))),
    ("wrong_type", "tickets", raw(make("tickets", sla_due=True))),
    # timestamps
    ("bad_timestamp", "interactions", raw(make("interactions", ts="yesterday"))),
    ("bad_timestamp", "interactions", raw(make("interactions", ts="2024-13-01T00:00:00Z"))),
    ("bad_timestamp", "interactions", raw(make("interactions", ts="1718445600000"))),  # epoch ms must be a number
    ("bad_timestamp", "tickets", raw(make("tickets", sla_due="soon"))),
    ("bad_timestamp", "customers", raw(make("customers", renewal_ts="next year"))),
    ("ts_in_future", "interactions", raw(make("interactions", ts=NOW + DAY_MS + 1))),
    ("ts_in_future", "interactions", raw(make("interactions", ts="2024-06-20T00:00:00Z"))),
    ("ts_in_future", "interactions", raw(make("interactions", ts=10**15))),
    ("ts_too_old", "interactions", raw(make("interactions", ts="1999-12-31T23:59:59Z"))),
    ("ts_too_old", "interactions", raw(make("interactions", ts=0))),
    ("ts_too_old", "interactions", raw(make("interactions", ts=-1))),
    ("ts_too_old", "interactions", raw(make("interactions", ts=1_718_445_600))),  # epoch *seconds* by mistake
    # values out of range
    ("bad_value", "surveys", raw(make("surveys", type="nps", score=11))),
    ("bad_value", "surveys", raw(make("surveys", type="nps", score=-1))),
    ("bad_value", "surveys", raw(make("surveys", type="csat", score=0))),
    ("bad_value", "surveys", raw(make("surveys", type="csat", score=6))),
    ("bad_value", "surveys", raw(make("surveys", type="ces", score=0))),
    ("bad_value", "surveys", raw(make("surveys", type="ces", score=8))),
    ("bad_value", "tickets", raw(make("tickets", severity="urgent"))),
    ("bad_value", "tickets", raw(make("tickets", type="escalated", severity="blocker"))),
    ("bad_value", "interactions", raw(make("interactions", duration_s=-1))),
    ("bad_value", "customers", raw(make("customers", mrr=-5))),
    ("bad_value", "interactions", raw(make("interactions", customer_id=""))),
    ("bad_value", "interactions", raw(make("interactions", event_id=""))),
    ("bad_value", "interactions", raw(make("interactions", customer_id="c" * 129))),
    # unknown types (interactions accept any type, see below)
    ("unknown_type", "tickets", raw(make("tickets", type="deleted"))),
    ("unknown_type", "surveys", raw(make("surveys", type="rating"))),
    ("unknown_type", "outcomes", raw(make("outcomes", type="deleted"))),
    ("unknown_type", "customers", raw(make("customers", type="upsert"))),
    # schema
    ("unsupported_schema", "interactions", raw(make("interactions", schema_version=2))),
    ("unsupported_schema", "interactions", raw(make("interactions", schema_version="1"))),
    ("unsupported_schema", "interactions", raw(make("interactions", schema_version=True))),
    ("unsupported_schema", "interactions", raw(make("interactions", schema_version=0))),
]


@pytest.mark.parametrize(("expected", "source", "payload"), REJECTIONS,
                         ids=[f"{r}-{s}-{i}" for i, (r, s, _) in enumerate(REJECTIONS)])
def test_rejection_reason(expected, source, payload):
    assert reason(source, payload) == expected


def test_unknown_source_is_rejected():
    with pytest.raises(InvalidEvent) as info:
        validate("clicks", make("interactions"), NOW)
    assert info.value.reason == "unknown_source"


def test_rejections_cover_every_reason_the_contract_can_give():
    """key_mismatch needs the Kafka message key, so only the worker can raise it."""
    covered = {r for r, _, _ in REJECTIONS} | {"unknown_source"}
    assert covered == set(REASONS) - {"key_mismatch"}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_float_timestamp_is_bad_timestamp(bad):
    with pytest.raises(InvalidEvent) as info:
        validate("interactions", make("interactions", ts=bad), NOW)
    assert info.value.reason == "bad_timestamp"


def test_too_large_is_checked_before_decoding():
    limits = Limits(max_bytes=100)
    assert reason("interactions", b"x" * 101, limits) == "too_large"
    padded = raw(make("interactions"))
    padded += b" " * (100 - len(padded))
    assert len(padded) == 100
    assert parse("interactions", padded, NOW, limits).customer_id == "c1"  # exactly at the limit is fine
    assert reason("interactions", padded + b" ", limits) == "too_large"


def test_timestamp_bounds_are_inclusive():
    assert parse("interactions", raw(make("interactions", ts=NOW + DAY_MS)), NOW).ts_ms == NOW + DAY_MS
    limits = Limits()
    assert parse("interactions", raw(make("interactions", ts=limits.min_ts_ms)), NOW).ts_ms == limits.min_ts_ms
    assert reason("interactions", raw(make("interactions", ts=limits.min_ts_ms - 1))) == "ts_too_old"


def test_custom_future_limit():
    limits = Limits(max_future_ms=60_000)
    assert reason("interactions", raw(make("interactions", ts=NOW + 60_001)), limits) == "ts_in_future"
    assert parse("interactions", raw(make("interactions", ts=NOW + 60_000)), NOW, limits).ts_ms == NOW + 60_000


def test_survey_range_bounds_are_inclusive():
    for typ, lo, hi in (("nps", 0, 10), ("csat", 1, 5), ("ces", 1, 7)):
        for score in (lo, hi):
            assert parse("surveys", raw(make("surveys", type=typ, score=score)), NOW).data["score"] == float(score)


# ---- valid events -----------------------------------------------------------------------------------
@pytest.mark.parametrize("ts", [
    "2024-06-15T10:00:00Z",
    "2024-06-15T12:00:00+02:00",
    "2024-06-15T05:00:00-05:00",
    "2024-06-15T10:00:00",  # naive = UTC
    "2024-06-15T10:00:00.000Z",
    " 2024-06-15T10:00:00Z ",
    TS,
    float(TS),
])
def test_timestamp_forms_normalise_to_the_same_instant(ts):
    ev = parse("interactions", raw(make("interactions", ts=ts)), NOW)
    assert ev.ts_ms == TS
    assert isinstance(ev.ts_ms, int)


@pytest.fixture
def non_utc_local_time(monkeypatch):
    """A naive timestamp must not be read in the machine's local zone."""
    if not hasattr(time, "tzset"):
        pytest.skip("needs time.tzset (POSIX)")
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_naive_iso_is_utc_whatever_the_machine_timezone(non_utc_local_time):
    assert parse_ts("2024-06-15T10:00:00") == TS
    assert parse_ts("2024-06-15T10:00:00Z") == TS


def test_milliseconds_are_kept():
    assert parse_ts("2024-06-15T10:00:00.123Z") == TS + 123
    assert parse_ts("2024-06-15T10:00:00.123+00:00") == TS + 123


@settings(max_examples=200, deadline=None)
@given(
    instant=st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2100, 1, 1)),
    offset_min=st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_iso_with_any_offset_equals_the_utc_instant(instant, offset_min):
    instant = instant.replace(microsecond=instant.microsecond // 1000 * 1000, tzinfo=timezone.utc)
    expected = (instant - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1)
    local = instant.astimezone(timezone(timedelta(minutes=offset_min)))
    assert parse_ts(local.isoformat()) == expected
    assert parse_ts(instant.replace(tzinfo=None).isoformat()) == expected  # naive = UTC
    assert parse_ts(format_ts(expected)) == expected


@pytest.mark.parametrize("source", sorted(VALID))
def test_valid_event_of_every_source(source):
    ev = parse(source, raw(make(source)), NOW)
    assert isinstance(ev, Event)
    assert (ev.source, ev.event_id, ev.customer_id, ev.ts_ms, ev.type) == (source, "e1", "c1", TS, VALID[source]["type"])


def test_interaction_fields_normalised():
    ev = parse("interactions", raw(make("interactions", type="help_view", feature="export", duration_s=12, success=False)), NOW)
    assert ev.data == {"feature": "export", "duration_s": 12.0, "success": False}
    assert isinstance(ev.data["duration_s"], float)


@pytest.mark.parametrize("typ", ["export_report", "api_call", "x"])
def test_unknown_interaction_types_are_accepted(typ):
    ev = parse("interactions", raw(make("interactions", type=typ)), NOW)
    assert ev.type == typ
    assert ev.data == {}


def test_extra_fields_are_ignored():
    obj = make("interactions", type="feature_use", feature="reports", utm={"src": "x"}, score="nonsense")
    ev = parse("interactions", raw(obj), NOW)
    assert ev.data == {"feature": "reports"}


def test_ticket_normalisation():
    obj = make("tickets", severity="CRITICAL", category="billing", sla_due="2024-06-16T12:00:00+02:00")
    ev = parse("tickets", raw(obj), NOW)
    assert ev.data == {"ticket_id": "t1", "severity": "critical", "category": "billing",
                       "sla_due_ms": parse_ts("2024-06-16T10:00:00Z")}


@pytest.mark.parametrize("typ", ["agent_reply", "customer_reply", "escalated", "resolved", "reopened", "closed"])
def test_ticket_types_other_than_opened_need_no_severity(typ):
    ev = parse("tickets", raw(make("tickets", type=typ, severity=DROP)), NOW)
    assert ev.data == {"ticket_id": "t1"}


def test_survey_normalisation():
    ev = parse("surveys", raw(make("surveys", type="csat", score=4, comment="ok", touchpoint="support")), NOW)
    assert ev.data == {"score": 4.0, "comment": "ok", "touchpoint": "support"}
    assert isinstance(ev.data["score"], float)


def test_profile_normalisation():
    obj = make("customers", tier="VIP", plan="Pro", csm="Ann Lee", mrr=1200,
               signup_ts="2023-01-01T00:00:00Z", renewal_ts=1_735_689_600_000)
    ev = parse("customers", raw(obj), NOW)
    assert ev.data == {"tier": "vip", "plan": "pro", "csm": "Ann Lee", "mrr": 1200.0,
                       "signup_ms": parse_ts("2023-01-01T00:00:00Z"), "renewal_ms": 1_735_689_600_000}


@pytest.mark.parametrize("typ", ["churned", "renewed", "contacted", "saved"])
def test_outcomes_other_than_ack_need_no_alert_id(typ):
    ev = parse("outcomes", raw(make("outcomes", type=typ, alert_id=DROP, note="called")), NOW)
    assert ev.data == {"note": "called"}


@pytest.mark.parametrize("source, extra", [
    ("interactions", {"type": "help_view", "feature": "export", "duration_s": 3.5, "success": False}),
    ("tickets", {"severity": "medium", "category": "bug", "sla_due": "2024-06-16T10:00:00Z"}),
    ("surveys", {"type": "ces", "score": 6, "comment": "hard"}),
    ("customers", {"plan": "pro", "mrr": 99.5, "signup_ts": "2023-02-03T04:05:06.789Z", "renewal_ts": "2025-01-01T00:00:00Z", "csm": "Bo"}),
    ("outcomes", {"type": "alert_ack", "alert_id": "abc", "note": "spoke to them"}),
])
def test_to_json_round_trips_through_validate(source, extra):
    ev = validate(source, make(source, **extra), NOW)
    wire = to_json(ev)
    assert wire["schema_version"] == SCHEMA_VERSION
    assert not any(k.endswith("_ms") for k in wire)
    assert validate(source, orjson.loads(orjson.dumps(wire)), NOW) == ev


def test_format_ts():
    assert format_ts(TS + 7) == "2024-06-15T10:00:00.007Z"
