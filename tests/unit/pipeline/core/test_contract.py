"""Unit tests for pipeline.core.contract: rejection reasons and normalisation of valid events."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.contract import (
    DAY_MS,
    MAX_MRR,
    MAX_TS_MS,
    MIN_TS_MS,
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
    assert_short_line(info.value.detail)
    return info.value.reason


def assert_short_line(detail: str) -> None:
    assert len(detail) <= 200
    assert len(detail.splitlines()) == 1
    orjson.dumps(detail)  # the dead-letter record can always be written


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
    # ---- every timestamp within 1970-01-01 .. 2999-12-31 (absolute), format_ts can print it ----
    ("bad_timestamp", "tickets", raw(make("tickets", sla_due=1e30))),
    ("bad_timestamp", "tickets", b'{"schema_version":1,"event_id":"e1","customer_id":"c1","ts":"2024-06-15T10:00:00Z",'
                                 b'"type":"opened","ticket_id":"t1","severity":"high","sla_due":99999999999999999999}'),
    ("bad_timestamp", "tickets", raw(make("tickets", sla_due=2**64 - 1))),  # orjson's largest integer
    ("bad_timestamp", "tickets", raw(make("tickets", sla_due=-1))),
    ("bad_timestamp", "tickets", raw(make("tickets", sla_due=MAX_TS_MS + 1))),
    ("bad_timestamp", "tickets", raw(make("tickets", sla_due="3000-01-01T00:00:00Z"))),
    ("bad_timestamp", "tickets", raw(make("tickets", sla_due="99999-01-01"))),
    ("bad_timestamp", "tickets", raw(make("tickets", sla_due="9999-12-31T23:59:59-01:00"))),  # past datetime.max in UTC
    ("bad_timestamp", "tickets", raw(make("tickets", sla_due="1969-12-31T23:59:59.999Z"))),
    ("bad_timestamp", "tickets", raw(make("tickets", sla_due="2024-06-16" + "0" * 100))),
    ("bad_timestamp", "customers", raw(make("customers", signup_ts=-1e30))),
    ("bad_timestamp", "customers", raw(make("customers", signup_ts="0001-01-01T00:00:00+01:00"))),
    ("bad_timestamp", "customers", raw(make("customers", renewal_ts=1e30))),
    ("bad_timestamp", "customers", raw(make("customers", renewal_ts=99_999_999_999_999))),  # year 5138
    ("bad_timestamp", "customers", raw(make("customers", renewal_ts="5000-01-01"))),
    ("wrong_type", "customers", raw(make("customers", renewal_ts=True))),
    ("wrong_type", "customers", raw(make("customers", renewal_ts=[TS]))),
    ("ts_in_future", "interactions", raw(make("interactions", ts=1e30))),
    ("ts_in_future", "interactions", raw(make("interactions", ts="9999-12-31T23:59:59-01:00"))),
    ("ts_too_old", "interactions", raw(make("interactions", ts=-1e30))),
    ("ts_too_old", "interactions", raw(make("interactions", ts=-(2**63)))),
    # ---- numbers finite and bounded; booleans are not numbers ----
    ("bad_value", "customers", raw(make("customers", mrr=MAX_MRR * 1.000001))),
    ("bad_value", "customers", raw(make("customers", mrr=2**64 - 1))),
    ("bad_value", "customers", raw(make("customers", mrr=1e300))),
    ("wrong_type", "customers", raw(make("customers", mrr=True))),
    ("wrong_type", "customers", raw(make("customers", mrr="100"))),
    ("bad_value", "interactions", raw(make("interactions", duration_s=1e30))),
    ("bad_value", "surveys", raw(make("surveys", score=1e30))),
    ("wrong_type", "surveys", raw(make("surveys", score=[9]))),
    # ---- customer_id and event_id: no control characters (the worker's internal keys start with NUL) ----
    ("bad_value", "interactions", raw(make("interactions", customer_id="\x00internal"))),
    ("bad_value", "interactions", raw(make("interactions", customer_id="c1\n"))),
    ("bad_value", "interactions", raw(make("interactions", customer_id="c\t1"))),
    ("bad_value", "interactions", raw(make("interactions", customer_id="c\x7f"))),
    ("bad_value", "interactions", raw(make("interactions", customer_id="c\x85"))),  # C1 control (NEL)
    ("bad_value", "interactions", raw(make("interactions", event_id="\x00"))),
    ("bad_value", "interactions", raw(make("interactions", event_id="e\x1f1"))),
    # ---- lone surrogates never get past orjson.loads (orjson.dumps would refuse them later) ----
    ("not_json", "interactions", raw(make("interactions", feature="SURROGATE")).replace(b"SURROGATE", b"\\ud800")),
    ("not_json", "interactions", raw(make("interactions", customer_id="SURROGATE")).replace(b"SURROGATE", b"\\udc00")),
    ("not_json", "outcomes", raw(make("outcomes", note="SURROGATE")).replace(b"SURROGATE", b"\xed\xa0\x80")),
    # ---- odd JSON ----
    ("not_json", "interactions", b"[" * 2000 + b"]" * 2000),  # deeper than orjson's limit of 1024
    ("not_json", "interactions", b'{"ts": Infinity}'),
    ("not_json", "interactions", b"1" * 400),  # overflows a double
    ("not_json", "interactions", b"\xef\xbb\xbf" + raw(make("interactions"))),  # a UTF-8 BOM
]


@pytest.mark.parametrize(("expected", "source", "payload"), REJECTIONS,
                         ids=[f"{r}-{s}-{i}" for i, (r, s, _) in enumerate(REJECTIONS)])
def test_rejection_reason(expected, source, payload):
    assert reason(source, payload) == expected


def test_unknown_source_is_rejected():
    with pytest.raises(InvalidEvent) as info:
        validate("clicks", make("interactions"), NOW)
    assert info.value.reason == "unknown_source"


#: Reasons only the worker gives: they need the Kafka message key or happen after validation.
WORKER_REASONS = {"key_mismatch", "missing_key", "internal_error", "too_late"}


def test_rejections_cover_every_reason_the_contract_can_give():
    covered = {r for r, _, _ in REJECTIONS} | {"unknown_source"}
    assert covered == set(REASONS) - WORKER_REASONS


def test_worker_reasons_are_in_the_fixed_set():
    assert WORKER_REASONS <= set(REASONS)
    assert len(set(REASONS)) == len(REASONS)
    assert all(r.isidentifier() and r.islower() for r in REASONS)  # usable as Prometheus label values


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


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
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


def test_an_acknowledgement_may_name_who_acknowledged():
    ev = parse("outcomes", raw(make("outcomes", acknowledged_by="Dana Scully", note="seen")), NOW)
    assert ev.data == {"alert_id": "a1", "note": "seen", "acknowledged_by": "Dana Scully"}
    assert parse("outcomes", raw(make("outcomes")), NOW).data == {"alert_id": "a1"}  # events without it: valid
    for bad, reason in ((5, "wrong_type"), ("x" * 257, "bad_value"), ("a\nb", "bad_value")):
        with pytest.raises(InvalidEvent) as exc:
            parse("outcomes", raw(make("outcomes", acknowledged_by=bad)), NOW)
        assert exc.value.reason == reason, bad


@pytest.mark.parametrize("source, extra", [
    ("interactions", {"type": "help_view", "feature": "export", "duration_s": 3.5, "success": False}),
    ("tickets", {"severity": "medium", "category": "bug", "sla_due": "2024-06-16T10:00:00Z"}),
    ("surveys", {"type": "ces", "score": 6, "comment": "hard"}),
    ("customers", {"plan": "pro", "mrr": 99.5, "signup_ts": "2023-02-03T04:05:06.789Z", "renewal_ts": "2025-01-01T00:00:00Z", "csm": "Bo"}),
    ("outcomes", {"type": "alert_ack", "alert_id": "abc", "note": "spoke to them", "acknowledged_by": "Ann Lee"}),
])
def test_to_json_round_trips_through_validate(source, extra):
    ev = validate(source, make(source, **extra), NOW)
    wire = to_json(ev)
    assert wire["schema_version"] == SCHEMA_VERSION
    assert not any(k.endswith("_ms") for k in wire)
    assert validate(source, orjson.loads(orjson.dumps(wire)), NOW) == ev


def test_format_ts():
    assert format_ts(TS + 7) == "2024-06-15T10:00:00.007Z"


# ---- range checks: every field that reaches the customer state is bounded ---------------------------
def test_absolute_timestamp_bounds():
    assert MIN_TS_MS == 0
    assert format_ts(MIN_TS_MS) == "1970-01-01T00:00:00.000Z"
    assert format_ts(MAX_TS_MS) == "2999-12-31T23:59:59.999Z"
    assert parse_ts("2999-12-31T23:59:59.999Z") == MAX_TS_MS
    assert parse_ts("1970-01-01T00:00:00Z") == MIN_TS_MS
    for bad in (MAX_TS_MS + 1, MIN_TS_MS - 1, "3000-01-01T00:00:00Z", "1969-12-31T23:59:59.999Z",
                10**5000, -10**5000, 1e308):
        with pytest.raises(InvalidEvent) as info:
            parse_ts(bad, "renewal_ts")
        assert info.value.reason == "bad_timestamp"
        assert "renewal_ts" in info.value.detail
        assert_short_line(info.value.detail)


@pytest.mark.parametrize("name, source, wire", [
    ("sla_due", "tickets", "sla_due_ms"),
    ("signup_ts", "customers", "signup_ms"),
    ("renewal_ts", "customers", "renewal_ms"),
])
def test_optional_timestamps_accept_the_whole_absolute_range(name, source, wire):
    for value, ms in ((MIN_TS_MS, MIN_TS_MS), (MAX_TS_MS, MAX_TS_MS), (float(MAX_TS_MS), MAX_TS_MS),
                      ("2999-12-31T23:59:59.999Z", MAX_TS_MS), (TS + 0.75, TS), ("1970-01-01", 0)):
        ev = parse(source, raw(make(source, **{name: value})), NOW)
        assert ev.data[wire] == ms and isinstance(ev.data[wire], int)
        assert validate(source, to_json(ev), NOW) == ev  # format_ts can print every accepted instant
    for value in (MAX_TS_MS + 1, -1, 1e30, -1e30, 2**64 - 1, "3000-01-01", "9999-12-31T23:59:59-01:00"):
        assert reason(source, raw(make(source, **{name: value}))) == "bad_timestamp"


def test_epoch_ms_with_a_fraction_is_truncated():
    assert parse_ts(TS + 0.999) == TS
    assert parse("interactions", raw(make("interactions", ts=TS + 0.5)), NOW).ts_ms == TS


def test_ts_relative_checks_come_before_the_absolute_range():
    """An epoch-seconds or absurd ts is still ts_too_old / ts_in_future (the Limits are the tighter bounds);
    bad_timestamp only when Limits reach beyond the absolute range."""
    assert reason("interactions", raw(make("interactions", ts=-1))) == "ts_too_old"
    assert reason("interactions", raw(make("interactions", ts=10**19))) == "ts_in_future"
    lax = Limits(min_ts_ms=-10**18, max_future_ms=10**18)
    assert reason("interactions", raw(make("interactions", ts=-1)), lax) == "bad_timestamp"
    assert reason("interactions", raw(make("interactions", ts=MAX_TS_MS + 1)), lax) == "bad_timestamp"
    assert parse("interactions", raw(make("interactions", ts=0)), NOW, lax).ts_ms == 0
    assert parse("interactions", raw(make("interactions", ts=MAX_TS_MS)), NOW, lax).ts_ms == MAX_TS_MS


def _safe_id(value):
    """pytest ids: str() of an int over 4300 digits raises."""
    return "huge_int" if isinstance(value, int) and abs(value) > 10**100 else None


@pytest.mark.parametrize("ts, expected", [
    (10**5000, "ts_in_future"), (-10**5000, "ts_too_old"), (float("1e308"), "ts_in_future"),
], ids=_safe_id)
def test_huge_python_ints_never_break_the_message(ts, expected):
    """validate() also serves the offline readers, whose values need not come from orjson."""
    with pytest.raises(InvalidEvent) as info:
        validate("interactions", make("interactions", ts=ts), NOW)
    assert info.value.reason == expected
    assert_short_line(info.value.detail)


@pytest.mark.parametrize("source, name, value, expected", [
    ("tickets", "sla_due", 10**5000, "bad_timestamp"),
    ("customers", "mrr", 10**5000, "bad_value"),
    ("customers", "mrr", -10**5000, "bad_value"),
    ("customers", "mrr", float("nan"), "wrong_type"),
    ("customers", "mrr", float("inf"), "wrong_type"),
    ("interactions", "duration_s", 10**5000, "bad_value"),
    ("interactions", "duration_s", float("-inf"), "wrong_type"),
    ("surveys", "score", float("nan"), "wrong_type"),
    ("surveys", "score", 10**400, "bad_value"),
    ("interactions", "success", 10**5000, "wrong_type"),
    ("interactions", "schema_version", 10**5000, "unsupported_schema"),
], ids=_safe_id)
def test_non_json_numbers_through_validate(source, name, value, expected):
    with pytest.raises(InvalidEvent) as info:
        validate(source, make(source, **{name: value}), NOW)
    assert info.value.reason == expected
    assert_short_line(info.value.detail)


def test_mrr_bounds_are_inclusive():
    assert parse("customers", raw(make("customers", mrr=0)), NOW).data["mrr"] == 0.0
    assert parse("customers", raw(make("customers", mrr=MAX_MRR)), NOW).data["mrr"] == MAX_MRR
    assert MAX_MRR == 1e12


def nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("source, name, expected", [
    ("interactions", "duration_s", "wrong_type"),
    ("interactions", "success", "wrong_type"),
    ("interactions", "feature", "wrong_type"),
    ("interactions", "ts", "wrong_type"),
    ("interactions", "schema_version", "unsupported_schema"),
    ("customers", "mrr", "wrong_type"),
])
def test_deeply_nested_values_are_rejected_without_recursing(source, name, expected):
    """orjson decodes up to 1024 levels; repr() of that would hit the recursion limit."""
    payload = raw(make(source, **{name: "NESTED"})).replace(b'"NESTED"', b"[" * 1000 + b"1" + b"]" * 1000)
    assert isinstance(orjson.loads(payload)[name], list)  # within orjson's depth limit
    assert reason(source, payload) == expected
    with pytest.raises(InvalidEvent) as info:
        validate(source, make(source, **{name: nested(5000)}), NOW)
    assert info.value.reason == expected


# (source, field, max length): every kept string is bounded
STRING_FIELDS = [
    ("interactions", "event_id", 256),
    ("interactions", "customer_id", 128),
    ("interactions", "type", 64),
    ("interactions", "feature", 256),
    ("tickets", "ticket_id", 256),
    ("tickets", "category", 256),
    ("tickets", "severity", 256),
    ("surveys", "comment", 4096),
    ("surveys", "touchpoint", 4096),
    ("customers", "tier", 256),
    ("customers", "plan", 256),
    ("customers", "csm", 256),
    ("outcomes", "alert_id", 256),
    ("outcomes", "note", 4096),
]


@pytest.mark.parametrize("source, name, max_len", STRING_FIELDS)
def test_every_kept_string_is_bounded(source, name, max_len):
    assert reason(source, raw(make(source, **{name: "x" * (max_len + 1)}))) == "bad_value"
    if name in ("severity",):
        return  # only the fixed names are valid anyway
    value = "x" * max_len
    ev = parse(source, raw(make(source, **{name: value})), NOW)
    kept = {"event_id": ev.event_id, "customer_id": ev.customer_id, "type": ev.type}.get(name, ev.data.get(name))
    assert kept == value


@pytest.mark.parametrize("source, name, max_len", STRING_FIELDS)
@pytest.mark.parametrize("surrogate", ["\ud800", "\udfff", "a\udc80b"])
def test_lone_surrogates_are_rejected_in_every_kept_string(source, name, max_len, surrogate):
    """orjson.loads never yields them, but validate() also takes values from CSV/Parquet readers, and
    orjson.dumps (state, event log, dead letters) refuses them."""
    with pytest.raises(InvalidEvent) as info:
        validate(source, make(source, **{name: surrogate}), NOW)
    assert info.value.reason == "bad_value"
    assert_short_line(info.value.detail)


@pytest.mark.parametrize("name", ["customer_id", "event_id"])
@pytest.mark.parametrize("char", [chr(c) for c in (*range(0x20), *range(0x7f, 0xa0))])
def test_ids_reject_every_control_character(name, char):
    with pytest.raises(InvalidEvent) as info:
        validate("interactions", make("interactions", **{name: f"a{char}b"}), NOW)
    assert info.value.reason == "bad_value"


@pytest.mark.parametrize("value", ["c 1", "Ä-1", "客户-1", "c\u200b1", "😀", "a/b:c@d"])
def test_ids_allow_other_unicode(value):
    ev = parse("interactions", raw(make("interactions", customer_id=value, event_id=value)), NOW)
    assert ev.customer_id == ev.event_id == value


def test_free_text_may_hold_control_characters():
    ev = parse("outcomes", raw(make("outcomes", note="line 1\nline 2\ttab")), NOW)
    assert ev.data["note"] == "line 1\nline 2\ttab"
    assert orjson.loads(orjson.dumps(ev.data))["note"] == ev.data["note"]


@pytest.mark.parametrize("value", [None, 123, 1.5, object(), ["x"]])
def test_non_bytes_message_values_are_not_json(value):
    assert reason("interactions", value) == "not_json"


def test_bytearray_memoryview_and_str_are_decoded():
    payload = raw(make("interactions"))
    for value in (bytearray(payload), memoryview(payload), payload.decode()):
        assert parse("interactions", value, NOW).customer_id == "c1"
    assert reason("interactions", memoryview(b" " * (Limits().max_bytes + 1))) == "too_large"


@pytest.mark.parametrize("source, changes", [
    ("tickets", {"type": "x" * 64 + "\n" * 10}),
    ("tickets", {"severity": "\u2028" * 200}),
    ("surveys", {"type": "\r\n" * 30}),
    ("interactions", {"schema_version": "\n" * 1000}),
    ("interactions", {"ts": "\n2024" * 10}),
])
def test_details_are_one_short_line(source, changes):
    reason(source, raw(make(source, **changes)))  # asserts the detail


def test_invalid_event_detail_is_sanitised():
    exc = InvalidEvent("bad_value", "a\nb\r\u2028" + "\ud800" + "x" * 1000)
    assert exc.reason == "bad_value"
    assert_short_line(exc.detail)
    assert exc.detail.startswith("a b  ")
    assert str(exc) == f"bad_value: {exc.detail}"
    assert InvalidEvent("not_json", "short").detail == "short"


def test_internal_errors_of_the_contract_are_invalid_events(monkeypatch):
    """A bug in a validator costs one event (dead-lettered as internal_error), never the batch."""
    import pipeline.core.contract as contract

    def broken(obj, typ):
        raise KeyError("boom")

    monkeypatch.setitem(contract.VALIDATORS, "interactions", broken)
    assert reason("interactions", raw(make("interactions"))) == "internal_error"
