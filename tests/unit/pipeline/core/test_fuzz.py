"""Fuzzing the edge: whatever bytes arrive, the contract returns a validated Event or raises exactly one
InvalidEvent (with a reason from the fixed set), and whatever it accepts, the feature code and the state
serialisation can handle, alone and folded together with other accepted events.

Deterministic (``derandomize=True``, no example database) and a few seconds in total, so it runs in CI.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.contract import (
    DAY_MS,
    MAX_MRR,
    MAX_TS_MS,
    MIN_TS_MS,
    OUTCOME_TYPES,
    REASONS,
    SEVERITIES,
    SURVEY_RANGES,
    TICKET_TYPES,
    Event,
    InvalidEvent,
    Limits,
    format_ts,
    parse,
    to_json,
    validate,
)
from pipeline.core.features import FEATURES, CustomerState, apply, vector

NOW = 1_718_452_800_000  # 2024-06-15T12:00:00Z
LIMITS = Limits()
SOURCES = ("interactions", "tickets", "surveys", "customers", "outcomes")
DROP = object()  # a field left out


def fuzz_settings(n: int):
    return settings(derandomize=True, database=None, max_examples=n, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---- raw JSON literals orjson.dumps cannot write (spliced into the encoded bytes) ------------------
class Literal:
    """A value written verbatim into the JSON text."""

    def __init__(self, text: bytes) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Literal({self.text[:60]!r})"


LITERALS = [
    b"99999999999999999999", b"18446744073709551615", b"18446744073709551616", b"-9223372036854775809",
    b"1e30", b"-1e30", b"1E+308", b"1e400", b"-1e400", b"1e-400", b"-0", b"-0.0", b"1" * 40,
    b"NaN", b"Infinity", b"-Infinity", b"nan", b"undefined", b"0x10", b"01", b".5", b"1.",
    b'"\\ud800"', b'"\\udfff"', b'"a\\udc00b"', b'"\\ud83d\\ude00"', b'"\\u0000"', b'"\\u0000internal"',
    b'"\xed\xa0\x80"', b'"\xff\xfe"', b'"\xc0\x80"', b'"\x00"', b'"\n"', b'"\\n"',
    b"[" * 1000 + b"1" + b"]" * 1000,  # deep but within orjson's limit
    b"[" * 1100 + b"]" * 1100,  # deeper than the limit
    b'{"a":' * 600 + b"1" + b"}" * 600,
    b"", b",", b"}", b'"', b"true false",
]


def encode(obj: Any) -> bytes:
    """orjson.dumps, with :class:`Literal` values spliced in verbatim."""
    literals: list[bytes] = []

    def mark(value: Any) -> Any:
        if isinstance(value, Literal):
            literals.append(value.text)
            return f"@@LIT{len(literals) - 1}@@"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    out = orjson.dumps(mark(obj))
    for i, text in enumerate(literals):
        out = out.replace(f'"@@LIT{i}@@"'.encode(), text)
    return out


# ---- value strategies ----------------------------------------------------------------------------
WIDE_INTS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),  # what orjson reads as an int
    st.integers(min_value=MIN_TS_MS - 5, max_value=MIN_TS_MS + 5),
    st.integers(min_value=MAX_TS_MS - 5, max_value=MAX_TS_MS + 5),
    st.integers(min_value=-3, max_value=3),
)
FLOATS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e30, -1e30, 1e308, -1e308, 5e-324, -0.0, 0.5, MAX_MRR, MAX_MRR * (1 + 1e-15),
                     float(MAX_TS_MS), float(MAX_TS_MS) + 1.0, NOW + 0.5, 1.7e12 + 0.999]),
)


def iso_text(dt: datetime, sep: str, timespec: str) -> str:
    return dt.isoformat(sep=sep, timespec=timespec)


ISO_STRINGS = st.one_of(
    st.builds(
        iso_text,
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59),
                     timezones=st.one_of(st.none(), st.just(timezone.utc), st.builds(
                         lambda m: timezone(timedelta(minutes=m)), st.integers(-1439, 1439)))),
        st.sampled_from(["T", " "]),
        st.sampled_from(["auto", "milliseconds", "microseconds", "seconds", "minutes", "hours"]),
    ),
    st.sampled_from([
        "99999-01-01", "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59.999999+00:00", "0001-01-01T00:00:00+01:00",
        "0001-01-01", "1969-12-31T23:59:59.999Z", "1970-01-01T00:00:00Z", "2999-12-31T23:59:59.999Z",
        "3000-01-01T00:00:00Z", "2024-13-01", "2024-02-30", "2024-06-15T24:00:00", "2024-06-15T10:00:00+24:00",
        "2024-W24-6", "20240615T100000Z", "2024-06-15T10:00:00,5Z", "+2024-06-15", "2024-06-15T10:00:00Z\x00",
        "1718445600000", "", " ", "\t2024-06-15\n", "2024-06-15" + "0" * 80, "٢٠٢٤-06-15", "2024-06-15T10:00:00ZZ",
    ]),
)
CONTROL_TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x9F), max_size=8)
ODD_STRINGS = st.one_of(
    st.text(max_size=12),
    CONTROL_TEXT,
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "İ", "😀", "\u2028"]),
              st.sampled_from([1, 63, 64, 65, 127, 128, 129, 200, 255, 256, 257, 4096, 4097])),
    st.sampled_from(["", " ", "\x00", "\x00internal", "c1\n", "a\x7fb", "a\x85b", "\ufeff", "\u200b",
                     "login", "opened", "HIGH", "Critical", "nps", "profile", "alert_ack", "VIP", "Pro"]),
)
# Lone surrogates: only reachable through validate() (orjson.loads rejects them); see SURROGATE_LITERALS.
SURROGATE_STRINGS = st.builds(lambda a, s, b: a + s + b, st.text(max_size=3),
                              st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"]), st.text(max_size=3))
WRONG_TYPES = st.one_of(st.booleans(), st.none(), st.just([]), st.just({}), st.lists(st.integers(0, 9), max_size=2),
                        st.dictionaries(st.sampled_from(["ms", "ts", "$date"]), st.integers(0, 9), max_size=1))
LITERAL_VALUES = st.sampled_from(LITERALS).map(Literal)


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


_SCALARS = st.one_of(WIDE_INTS, FLOATS, ISO_STRINGS, ODD_STRINGS, WRONG_TYPES)
#: Odd values for any field, as a producer can put them on the wire (spliced literals included).
WIRE_VALUES = st.one_of(_SCALARS, LITERAL_VALUES)
#: ... plus what only a Python caller of validate() can pass: lone surrogates, ints beyond 64 bits,
#: NaN/inf and nesting deeper than orjson allows.
PYTHON_VALUES = st.one_of(_SCALARS, SURROGATE_STRINGS, st.sampled_from([
    10**30, -(10**30), 2**64, -(2**63) - 1, 10**5000, -(10**5000),
    float("nan"), float("inf"), float("-inf"), _nested(5000),
]))


ANY_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), WIDE_INTS, FLOATS, st.text(max_size=10), ISO_STRINGS),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.text(max_size=10), st.sampled_from(
                                ["schema_version", "event_id", "customer_id", "ts", "type", "ticket_id"])),
                                inner, max_size=6)),
    max_leaves=20,
)


# ---- structurally valid events with fuzzed values ------------------------------------------------
VALID_TS = st.one_of(
    st.integers(min_value=LIMITS.min_ts_ms, max_value=NOW + LIMITS.max_future_ms),
    st.integers(min_value=NOW - 120 * DAY_MS, max_value=NOW + LIMITS.max_future_ms),
    st.sampled_from([LIMITS.min_ts_ms, NOW + LIMITS.max_future_ms, NOW]),
)
ANY_VALID_INSTANT = st.one_of(
    st.integers(min_value=MIN_TS_MS, max_value=MAX_TS_MS),
    st.sampled_from([MIN_TS_MS, MIN_TS_MS + 1, MAX_TS_MS, MAX_TS_MS - 1, NOW]),
    VALID_TS,
)
TS_FORMS = st.sampled_from(["int", "float", "iso"])


def as_wire_ts(ms: int, form: str) -> Any:
    if form == "float":
        return float(ms) + 0.25
    if form == "iso":
        return format_ts(ms)
    return ms


_CACHE: dict[Any, st.SearchStrategy] = {}


def choice(*values: Any) -> st.SearchStrategy:
    """``st.sampled_from(values)``, built once (strategies built per draw make hypothesis slow)."""
    key = ("choice", values)
    if key not in _CACHE:
        _CACHE[key] = st.sampled_from(values)
    return _CACHE[key]


def ids(prefix: str) -> st.SearchStrategy[str]:
    key = ("ids", prefix)
    if key not in _CACHE:
        _CACHE[key] = st.one_of(st.sampled_from([f"{prefix}1", f"{prefix}2"]), st.text(
            alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x2FFF, exclude_categories=("Cs", "Cc")),
            min_size=1, max_size=8))
    return _CACHE[key]


OPT = st.booleans()
DURATIONS = st.one_of(st.floats(0, 7 * 86_400), st.sampled_from([0, 7 * 86_400]))
MRRS = st.one_of(st.floats(0, MAX_MRR), st.sampled_from([0, MAX_MRR, int(MAX_MRR)]))
SCORES = {typ: st.one_of(st.integers(lo, hi), st.floats(lo, hi), st.sampled_from([lo, hi]))
          for typ, (lo, hi) in SURVEY_RANGES.items()}


@st.composite
def valid_fields(draw, source: str) -> dict[str, Any]:
    """A valid event of ``source``, at the edges of what the contract accepts."""
    obj: dict[str, Any] = {
        "schema_version": 1,
        "event_id": draw(ids("e")),
        "customer_id": draw(ids("c")),
        "ts": as_wire_ts(draw(VALID_TS), draw(TS_FORMS)),
    }
    if source == "interactions":
        obj["type"] = draw(choice("login", "feature_use", "page_view", "help_view", "purchase", "api_call"))
        if draw(OPT):
            obj["feature"] = draw(choice("export", "", "x" * 256, "😀" * 256))
        if draw(OPT):
            obj["duration_s"] = draw(DURATIONS)
        if draw(OPT):
            obj["success"] = draw(OPT)
    elif source == "tickets":
        obj["type"] = draw(choice(*sorted(TICKET_TYPES)))
        obj["ticket_id"] = draw(choice("t1", "t2"))
        if obj["type"] == "opened" or draw(OPT):
            obj["severity"] = draw(choice(*SEVERITIES, "HIGH", "Critical"))
        if draw(OPT):
            obj["category"] = draw(choice("billing", "", "b" * 256))
        if draw(OPT):
            obj["sla_due"] = as_wire_ts(draw(ANY_VALID_INSTANT), draw(TS_FORMS))
    elif source == "surveys":
        obj["type"] = typ = draw(choice(*sorted(SURVEY_RANGES)))
        obj["score"] = draw(SCORES[typ])
        for name in ("comment", "touchpoint"):
            if draw(OPT):
                obj[name] = draw(choice("ok", "line\nbreak", "c" * 4096))
    elif source == "customers":
        obj["type"] = "profile"
        for name in ("tier", "plan", "csm"):
            if draw(OPT):
                obj[name] = draw(choice("vip", "Pro", "enterprise", "", "İ" * 128, "z" * 256))
        if draw(OPT):
            obj["mrr"] = draw(MRRS)
        for name in ("signup_ts", "renewal_ts"):
            if draw(OPT):
                obj[name] = as_wire_ts(draw(ANY_VALID_INSTANT), draw(TS_FORMS))
    else:
        obj["type"] = draw(choice(*sorted(OUTCOME_TYPES)))
        if obj["type"] == "alert_ack" or draw(OPT):
            obj["alert_id"] = draw(ids("a"))
        if draw(OPT):
            obj["note"] = draw(choice("called", "n" * 4096))
    return obj


FIELDS = ("schema_version", "event_id", "customer_id", "ts", "type", "feature", "duration_s", "success",
          "ticket_id", "severity", "category", "sla_due", "score", "comment", "touchpoint", "tier", "plan",
          "csm", "mrr", "signup_ts", "renewal_ts", "alert_id", "note", "extra")
VALID_FIELDS = {source: valid_fields(source) for source in SOURCES}
MUTATIONS = st.integers(0, 3)
WIRE_MUTANTS = st.one_of(st.just(DROP), WIRE_VALUES)
PYTHON_MUTANTS = st.one_of(st.just(DROP), PYTHON_VALUES)


@st.composite
def fuzzed_event(draw, source: str | None = None, *, python: bool = False) -> tuple[str, dict[str, Any]]:
    """A valid event with 0-3 fields replaced by odd values (or dropped)."""
    source = source or draw(choice(*SOURCES))
    obj = draw(VALID_FIELDS[source])
    for _ in range(draw(MUTATIONS)):
        name = draw(choice(*FIELDS))
        value = draw(PYTHON_MUTANTS if python else WIRE_MUTANTS)
        if value is DROP:
            obj.pop(name, None)
        else:
            obj[name] = value
    return source, obj


# ---- the properties ------------------------------------------------------------------------------
def outcome(source: str, raw: Any) -> Event | InvalidEvent:
    """parse(), asserting it gives an Event or exactly one InvalidEvent of a known reason."""
    try:
        ev = parse(source, raw, NOW, LIMITS)
    except InvalidEvent as exc:
        return check_rejection(exc)
    check_event(ev)
    return ev


def validated(source: str, obj: Any) -> Event | InvalidEvent:
    try:
        ev = validate(source, obj, NOW, LIMITS)
    except InvalidEvent as exc:
        return check_rejection(exc)
    check_event(ev)
    return ev


def check_rejection(exc: InvalidEvent) -> InvalidEvent:
    assert type(exc) is InvalidEvent
    assert exc.reason in REASONS
    assert exc.reason != "internal_error", exc.detail  # the safety net must never be needed
    assert exc.detail and len(exc.detail) <= 200 and len(exc.detail.splitlines()) == 1, exc.detail
    orjson.dumps({"reason": exc.reason, "detail": exc.detail})  # the dead-letter record can be written
    return exc


def check_event(ev: Event) -> None:
    assert isinstance(ev, Event)
    assert type(ev.ts_ms) is int and LIMITS.min_ts_ms <= ev.ts_ms <= NOW + LIMITS.max_future_ms
    assert MIN_TS_MS <= ev.ts_ms <= MAX_TS_MS
    for key, value in ev.data.items():
        if key.endswith("_ms"):
            assert type(value) is int and MIN_TS_MS <= value <= MAX_TS_MS, (key, value)
        elif isinstance(value, float):
            assert math.isfinite(value)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in ev.customer_id + ev.event_id)
    # the event log round trip: to_json is valid JSON that validates back to the same event
    wire = orjson.loads(orjson.dumps(to_json(ev)))
    assert validate(ev.source, wire, NOW, LIMITS) == ev


def fold(events: list[Event]) -> CustomerState:
    """Fold events into one state; serialisation and the feature vector must work after each one."""
    state = CustomerState(events[0].customer_id)
    for ev in events:
        apply(state, ev)
        check_state(state)
    return state


def check_state(state: CustomerState) -> None:
    raw = state.to_bytes()
    again = CustomerState.from_bytes(raw)
    assert again.to_bytes() == raw
    vec = vector(state, state.last_ms)
    assert len(vec) == len(FEATURES)
    assert orjson.dumps(vector(again, again.last_ms)) == orjson.dumps(vec)  # NaN -> null on both sides
    assert len(vector(state, NOW)) == len(FEATURES)


def fold_parsed(results: list[Event | InvalidEvent], customer_id: str = "c1") -> None:
    """Each accepted event alone (and again: a redelivery), then all of them as one customer's
    history, with distinct ids so the event-id dedup does not skip any."""
    events = [r for r in results if isinstance(r, Event)]
    for ev in events:
        fold([ev, ev])
    same = [Event(e.source, f"{i}:{e.event_id}", customer_id, e.ts_ms, e.type, e.data) for i, e in enumerate(events)]
    if same:
        fold(same)


# (a) arbitrary bytes, and valid events with bytes flipped, inserted or cut
@fuzz_settings(300)
@given(source=st.sampled_from((*SOURCES, "clicks")), raw=st.binary(max_size=300))
def test_arbitrary_bytes(source, raw):
    outcome(source, raw)


EDITS = st.integers(1, 4)


@st.composite
def mangled(draw) -> tuple[str, bytes]:
    source, obj = draw(fuzzed_event())
    raw = bytearray(encode(obj))
    for _ in range(draw(EDITS)):
        pos = draw(st.integers(0, len(raw)))
        op = draw(choice("flip", "insert", "delete", "truncate"))
        byte = draw(choice(0x00, 0x22, 0x5C, 0x7B, 0x7D, 0x80, 0xC3, 0xED, 0xFF, 0x30, 0x2D, 0x65))
        if op == "flip" and pos < len(raw):
            raw[pos] = byte
        elif op == "insert":
            raw[pos:pos] = bytes([byte])
        elif op == "delete":
            del raw[pos:pos + 1]
        else:
            del raw[pos:]
    return source, bytes(raw)


@fuzz_settings(200)
@given(case=mangled())
def test_mangled_event_bytes(case):
    source, raw = case
    fold_parsed([outcome(source, raw)])


# (b) arbitrary JSON values
@fuzz_settings(200)
@given(source=st.sampled_from(SOURCES), value=ANY_JSON)
def test_arbitrary_json(source, value):
    outcome(source, orjson.dumps(value))
    validated(source, value)


# (c) structurally valid events with fuzzed field values: on the wire (orjson) ...
@fuzz_settings(400)
@given(case=fuzzed_event())
def test_fuzzed_fields_on_the_wire(case):
    source, obj = case
    fold_parsed([outcome(source, encode(obj))])


# ... and through validate() directly, as the offline readers call it (surrogates, huge ints, NaN)
@fuzz_settings(300)
@given(case=fuzzed_event(python=True))
def test_fuzzed_fields_through_validate(case):
    source, obj = case
    fold_parsed([validated(source, obj)])


def test_surrogate_literals_never_reach_an_event():
    """orjson.loads rejects lone surrogates; validate() rejects them in every kept string."""
    for text in (b'"\\ud800"', b'"\\udfff"', b'"a\\udc00b"', b'"\xed\xa0\x80"'):
        for name in ("event_id", "customer_id", "type", "feature"):
            obj = {"schema_version": 1, "event_id": "e1", "customer_id": "c1", "ts": NOW, "type": "login",
                   name: Literal(text)}
            assert isinstance(outcome("interactions", encode(obj)), InvalidEvent)


# Sequences: several fuzzed events of one customer folded into one state (ticket opened/reopened/
# resolved with extreme SLAs, profiles with extreme renewal/signup, late and future events ...)
@fuzz_settings(150)
@given(cases=st.lists(fuzzed_event(), min_size=2, max_size=10))
def test_sequences_of_fuzzed_events(cases):
    fold_parsed([outcome(source, encode(obj)) for source, obj in cases])


STORY_LEN = st.integers(2, 8)
STORY_TS = st.one_of(st.integers(NOW - 30 * DAY_MS, NOW + DAY_MS), VALID_TS)  # mostly within the lateness
SLAS = st.one_of(st.sampled_from([MIN_TS_MS, MIN_TS_MS + 1, MAX_TS_MS]), ANY_VALID_INSTANT)


@st.composite
def ticket_story(draw) -> list[bytes]:
    """One ticket's life with extreme (but accepted) times: the reopen arithmetic moves the SLA."""
    out = []
    for i in range(draw(STORY_LEN)):
        typ = draw(choice("opened", "opened", "resolved", "reopened", "escalated", "closed"))
        obj = {"schema_version": 1, "event_id": f"e{i}", "customer_id": "c1", "type": typ,
               "ts": draw(STORY_TS), "ticket_id": draw(choice("t1", "t2")),
               "severity": draw(choice(*SEVERITIES))}
        if draw(OPT):
            obj["sla_due"] = draw(SLAS)
        out.append(encode(obj))
    return out


@fuzz_settings(150)
@given(story=ticket_story(), profile=st.lists(st.tuples(VALID_TS, ANY_VALID_INSTANT, ANY_VALID_INSTANT,
                                                         st.one_of(st.just(0), st.floats(0, MAX_MRR))), max_size=3))
def test_extreme_tickets_and_profiles_fold(story, profile):
    results = [outcome("tickets", raw) for raw in story]
    for i, (ts, signup, renewal, mrr) in enumerate(profile):
        results.append(outcome("customers", encode({
            "schema_version": 1, "event_id": f"p{i}", "customer_id": "c1", "type": "profile", "ts": ts,
            "signup_ts": signup, "renewal_ts": renewal, "mrr": mrr, "tier": "vip", "plan": "pro"})))
    events = [r for r in results if isinstance(r, Event)]
    assert len(events) == len(results), [r for r in results if not isinstance(r, Event)]
    state = fold(events)
    assert len(vector(state, MAX_TS_MS)) == len(FEATURES)  # scored far in the future
    assert len(vector(state, LIMITS.min_ts_ms)) == len(FEATURES)  # ... or in the past
