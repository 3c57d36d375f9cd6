"""The event contract: what an input event must look like, and why it is rejected when it does not.

Validation happens once, at the edge, so the feature code can trust every field it reads. A rejected
event raises :class:`InvalidEvent` with a short machine-readable ``reason`` (a Prometheus label, so the
set is small and fixed) and a human ``detail``; the worker forwards both to the dead-letter topic.

Every field that reaches the customer state is bounded here, so a single odd value can never make the
worker's state write (``orjson.dumps``, :func:`format_ts`) or the feature code raise later:

* every timestamp (``ts``, ``sla_due``, ``signup_ts``, ``renewal_ts``) must be an instant in
  [:data:`MIN_TS_MS`, :data:`MAX_TS_MS`] = [1970-01-01T00:00:00.000Z, 2999-12-31T23:59:59.999Z]
  (``bad_timestamp`` otherwise); ``ts`` is further checked against :class:`Limits` first
  (``ts_too_old`` / ``ts_in_future``);
* numbers are finite and bounded (``mrr`` in [0, :data:`MAX_MRR`], ``duration_s`` in [0, 7 days],
  survey scores in their scale); booleans are not numbers;
* strings have a maximum length and must be valid Unicode (no lone surrogates, which ``orjson.dumps``
  refuses); ``event_id`` and ``customer_id`` must also be free of control characters (the worker keeps
  internal records under keys starting with a NUL byte).

:func:`parse` turns *any* input into either an :class:`Event` or an :class:`InvalidEvent`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import orjson

SCHEMA_VERSION = 1
DAY_MS = 86_400_000
HOUR_MS = 3_600_000

#: Every reason the contract can give; the dead-letter metric is labelled with these.
REASONS = (
    "not_json",
    "not_object",
    "too_large",
    "missing_field",
    "wrong_type",
    "bad_timestamp",
    "ts_in_future",
    "ts_too_old",
    "bad_value",
    "unknown_type",
    "unsupported_schema",
    "unknown_source",
    "key_mismatch",
    # raised by the worker, not by this module:
    "missing_key",  # the Kafka message has no key
    "internal_error",  # an exception while applying or storing the event (or, defensively, parsing it)
    "too_late",  # older than the allowed lateness: it could no longer be deduplicated
)

#: Absolute bounds of every timestamp (epoch ms, inclusive): 1970-01-01T00:00:00.000Z ..
#: 2999-12-31T23:59:59.999Z. Anything inside is non-negative, fits in 64 bits with room for the
#: feature code's arithmetic, and :func:`format_ts` can print it as a four-digit year.
MIN_TS_MS = 0
MAX_TS_MS = 32_503_680_000_000 - 1
#: Upper bound of a profile's ``mrr`` (monthly recurring revenue).
MAX_MRR = 1e12
#: Largest magnitude of an interaction's ``value`` (an amount, a count, a duration: the product's own unit).
MAX_VALUE = 1e12
#: Billing terms a profile may name, and their length in days (subscription-cycle features).
TERM_DAYS = {"monthly": 30.4375, "month": 30.4375, "quarterly": 91.3125, "quarter": 91.3125,
             "annual": 365.25, "yearly": 365.25, "year": 365.25}
#: Longest ISO-8601 text considered (the longest legal form, microseconds and an offset with microseconds, is 42).
MAX_ISO_LEN = 64
#: Longest ``detail`` of an :class:`InvalidEvent`: a dead-letter record never echoes a big input.
MAX_DETAIL_LEN = 200

TICKET_TYPES = frozenset(
    {"opened", "agent_reply", "customer_reply", "escalated", "resolved", "reopened", "closed"}
)
SEVERITIES = ("low", "medium", "high", "critical")
SURVEY_RANGES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
OUTCOME_TYPES = frozenset({"churned", "renewed", "contacted", "saved", "alert_ack"})
PROFILE_TYPES = frozenset({"profile"})
#: A profile's ``tier`` is the account's own word; these two the pipeline knows: the tier of a customer whose
#: profile names none, and the tier with alert thresholds and rules of its own.
DEFAULT_TIER = "standard"
VIP_TIER = "vip"


class InvalidEvent(ValueError):
    """The event breaks the contract. ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        detail = one_line(detail)
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# C0 and C1 controls (Unicode category Cc); with the line/paragraph separators for one_line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_NOT_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: Any) -> str:
    """``text`` as a short single line that any JSON encoder accepts (lone surrogates escaped)."""
    text = str(text)
    if len(text) > MAX_DETAIL_LEN:
        text = text[: MAX_DETAIL_LEN - 3] + "..."
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _NOT_ONE_LINE.sub(" ", text)[:MAX_DETAIL_LEN]


def _show(value: Any) -> str:
    """A short, safe rendering of an input value for a ``detail`` (never a huge or deep repr)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if -10**24 < value < 10**24 else ("a huge negative integer" if value < 0 else "a huge integer")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(value[:40]) + ("..." if len(value) > 40 else "")
    return f"a {type(value).__name__}"


def _show_ms(ts_ms: int) -> str:
    return format_ts(ts_ms) if MIN_TS_MS <= ts_ms <= MAX_TS_MS else _show(ts_ms)


@dataclass(frozen=True)
class Limits:
    """Plausibility bounds for event time and size, relative to the wall clock ``now_ms``."""

    max_future_ms: int = DAY_MS
    min_ts_ms: int = 946_684_800_000  # 2000-01-01T00:00:00Z
    max_bytes: int = 65_536


@dataclass(slots=True)
class Event:
    """A validated input event. ``data`` holds the source-specific fields, already normalised
    (timestamps in epoch ms, scores as numbers, severities lower-case)."""

    source: str
    event_id: str
    customer_id: str
    ts_ms: int
    type: str
    data: dict[str, Any] = field(default_factory=dict)


# ---- timestamps ---------------------------------------------------------------------------------
def _to_ms(value: Any, name: str) -> int:
    """ISO-8601 or epoch ms -> epoch ms, without range checks (any int, possibly huge or negative)."""
    if isinstance(value, bool):
        raise InvalidEvent("wrong_type", f"{name} must be ISO-8601 or epoch ms, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidEvent("bad_timestamp", f"{name} is not finite")
        return int(value)  # epoch ms with a fraction: the fraction is dropped
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) > MAX_ISO_LEN:
                raise ValueError("too long")
            dt = datetime.fromisoformat(text)
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=timezone.utc)
            return int(round(dt.timestamp() * 1000))
        except (ValueError, OverflowError, TypeError):
            raise InvalidEvent("bad_timestamp", f"{name} {_show(value)} is not ISO-8601") from None
    raise InvalidEvent("wrong_type", f"{name} must be ISO-8601 or epoch ms, got {type(value).__name__}")


def _check_range(ts_ms: int, name: str) -> int:
    if not MIN_TS_MS <= ts_ms <= MAX_TS_MS:
        raise InvalidEvent("bad_timestamp", f"{name} {_show(ts_ms)} is outside 1970-01-01 .. 2999-12-31")
    return ts_ms


def parse_ts(value: Any, name: str = "ts") -> int:
    """ISO-8601 (naive means UTC) or epoch milliseconds -> epoch milliseconds in
    [:data:`MIN_TS_MS`, :data:`MAX_TS_MS`] (else ``bad_timestamp``), so :func:`format_ts` can print it."""
    return _check_range(_to_ms(value, name), name)


def format_ts(ts_ms: int) -> str:
    """Epoch ms -> ISO-8601 UTC with milliseconds, the form every churnwatch output uses."""
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


# ---- field helpers ------------------------------------------------------------------------------
def _str(obj: dict, name: str, required: bool = True, max_len: int = 256, ident: bool = False) -> str | None:
    """A string field: at most ``max_len`` characters, valid Unicode; ``ident`` ones (keys) also
    without control characters."""
    value = obj.get(name)
    if value is None:
        if required:
            raise InvalidEvent("missing_field", f"{name} is required")
        return None
    if not isinstance(value, str):
        raise InvalidEvent("wrong_type", f"{name} must be a string, got {type(value).__name__}")
    if required and not value:
        raise InvalidEvent("bad_value", f"{name} must not be empty")
    if len(value) > max_len:
        raise InvalidEvent("bad_value", f"{name} longer than {max_len} characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidEvent("bad_value", f"{name} is not valid Unicode (lone surrogate)") from None
    if ident and not value.isprintable() and _CONTROL.search(value):  # isprintable: the fast common case
        raise InvalidEvent("bad_value", f"{name} must not contain control characters")
    return value


def _num(obj: dict, name: str, required: bool = False, lo: float | None = None, hi: float | None = None) -> float | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise InvalidEvent("missing_field", f"{name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not math.isfinite(value)):
        raise InvalidEvent("wrong_type", f"{name} must be a finite number, got {_show(value)}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):  # exact, even for huge ints
        raise InvalidEvent("bad_value", f"{name}={_show(value)} outside [{lo}, {hi}]")
    return float(value)


def _bool(obj: dict, name: str) -> bool | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise InvalidEvent("wrong_type", f"{name} must be true/false, got {_show(value)}")
    return value


def _opt_ts(obj: dict, name: str) -> int | None:
    value = obj.get(name)
    return None if value is None else parse_ts(value, name)


# ---- per-source validators ----------------------------------------------------------------------
def _interaction(obj: dict, typ: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    feature = _str(obj, "feature", required=False)
    if feature is not None:
        data["feature"] = feature
    duration = _num(obj, "duration_s", lo=0, hi=7 * 86_400)
    if duration is not None:
        data["duration_s"] = duration
    success = _bool(obj, "success")
    if success is not None:
        data["success"] = success
    user = _str(obj, "user_id", required=False, ident=True)
    if user is not None:
        data["user_id"] = user  # who in a multi-user account did it (distinct-user features)
    value = _num(obj, "value", lo=-MAX_VALUE, hi=MAX_VALUE)
    if value is not None:
        data["value"] = value  # what the event was worth to the product (summed per window)
    return data


def _ticket(obj: dict, typ: str) -> dict[str, Any]:
    if typ not in TICKET_TYPES:
        raise InvalidEvent("unknown_type", f"ticket type {_show(typ)} is not one of {sorted(TICKET_TYPES)}")
    data: dict[str, Any] = {"ticket_id": _str(obj, "ticket_id")}
    severity = _str(obj, "severity", required=typ == "opened")
    if severity is not None:
        severity = severity.lower()
        if severity not in SEVERITIES:
            raise InvalidEvent("bad_value", f"severity {_show(severity)} is not one of {list(SEVERITIES)}")
        data["severity"] = severity
    category = _str(obj, "category", required=False)
    if category is not None:
        data["category"] = category
    sla_due = _opt_ts(obj, "sla_due")
    if sla_due is not None:
        data["sla_due_ms"] = sla_due
    return data


def _survey(obj: dict, typ: str) -> dict[str, Any]:
    if typ not in SURVEY_RANGES:
        raise InvalidEvent("unknown_type", f"survey type {_show(typ)} is not one of {sorted(SURVEY_RANGES)}")
    lo, hi = SURVEY_RANGES[typ]
    data: dict[str, Any] = {"score": _num(obj, "score", required=True, lo=lo, hi=hi)}
    for name in ("comment", "touchpoint"):
        value = _str(obj, name, required=False, max_len=4096)
        if value is not None:
            data[name] = value
    return data


def _profile(obj: dict, typ: str) -> dict[str, Any]:
    if typ not in PROFILE_TYPES:
        raise InvalidEvent("unknown_type", f"customer event type {_show(typ)} is not 'profile'")
    data: dict[str, Any] = {}
    for name in ("tier", "plan", "csm"):
        value = _str(obj, name, required=False)
        if value is not None:
            if name != "csm":
                value = value.lower()  # may lengthen it ("İ" -> "i̇"): checked again so to_json round-trips
                if len(value) > 256:
                    raise InvalidEvent("bad_value", f"{name} longer than 256 characters")
            data[name] = value
    mrr = _num(obj, "mrr", lo=0, hi=MAX_MRR)
    if mrr is not None:
        data["mrr"] = mrr
    term = _str(obj, "term", required=False, max_len=32)
    if term is not None:
        term = term.lower()
        if term not in TERM_DAYS:
            raise InvalidEvent("bad_value", f"term {_show(term)} is not one of {sorted(TERM_DAYS)}")
        data["term"] = term
    for name in ("signup_ts", "renewal_ts"):
        value = _opt_ts(obj, name)
        if value is not None:
            data[name[:-3] + "_ms"] = value
    return data


def _outcome(obj: dict, typ: str) -> dict[str, Any]:
    if typ not in OUTCOME_TYPES:
        raise InvalidEvent("unknown_type", f"outcome type {_show(typ)} is not one of {sorted(OUTCOME_TYPES)}")
    data: dict[str, Any] = {}
    alert_id = _str(obj, "alert_id", required=typ == "alert_ack")
    if alert_id is not None:
        data["alert_id"] = alert_id
    note = _str(obj, "note", required=False, max_len=4096)
    if note is not None:
        data["note"] = note
    # who acknowledged (the inbox writes the signed-in user); optional, so events without it stay valid
    by = _str(obj, "acknowledged_by", required=False, max_len=256, ident=True)
    if by is not None:
        data["acknowledged_by"] = by
    return data


VALIDATORS: dict[str, Callable[[dict, str], dict[str, Any]]] = {
    "interactions": _interaction,
    "tickets": _ticket,
    "surveys": _survey,
    "customers": _profile,
    "outcomes": _outcome,
}


def validate(source: str, obj: Any, now_ms: int, limits: Limits = Limits()) -> Event:
    """Check a decoded JSON value against the contract of ``source`` and normalise it."""
    validator = VALIDATORS.get(source)
    if validator is None:
        raise InvalidEvent("unknown_source", f"no contract for source {source!r}")
    if not isinstance(obj, dict):
        raise InvalidEvent("not_object", f"event must be a JSON object, got {type(obj).__name__}")
    version = obj.get("schema_version", None)
    if version is None:
        raise InvalidEvent("missing_field", "schema_version is required")
    if isinstance(version, bool) or version != SCHEMA_VERSION:
        raise InvalidEvent("unsupported_schema", f"schema_version {_show(version)} (supported: {SCHEMA_VERSION})")
    event_id = _str(obj, "event_id", ident=True)
    customer_id = _str(obj, "customer_id", max_len=128, ident=True)
    typ = _str(obj, "type", max_len=64)
    if obj.get("ts") is None:
        raise InvalidEvent("missing_field", "ts is required")
    # the relative checks first, so an epoch-seconds ts is still called too old, not a bad timestamp
    ts_ms = _to_ms(obj["ts"], "ts")
    if ts_ms < limits.min_ts_ms:
        raise InvalidEvent("ts_too_old", f"ts {_show_ms(ts_ms)} is before {_show_ms(limits.min_ts_ms)}")
    if ts_ms > now_ms + limits.max_future_ms:
        raise InvalidEvent("ts_in_future", f"ts {_show_ms(ts_ms)} is more than {limits.max_future_ms // 1000} s ahead of now")
    _check_range(ts_ms, "ts")  # only reachable with Limits beyond the absolute bounds
    data = validator(obj, typ)  # type: ignore[arg-type]
    return Event(source, event_id, customer_id, ts_ms, typ, data)  # type: ignore[arg-type]


def parse(source: str, raw: bytes, now_ms: int, limits: Limits = Limits()) -> Event:
    """Raw message bytes -> validated :class:`Event`, or :class:`InvalidEvent`; never any other exception.

    orjson rejects invalid UTF-8, lone surrogate escapes, NaN/Infinity, numbers that overflow a double
    and nesting deeper than 1024 (all ``not_json``); integers beyond 64 bits decode as floats.
    """
    if type(raw) is bytes:
        size = len(raw)
    elif raw is None:
        raise InvalidEvent("not_json", "empty message value")
    elif isinstance(raw, (bytes, bytearray, memoryview, str)):
        size = raw.nbytes if isinstance(raw, memoryview) else len(raw)
    else:
        raise InvalidEvent("not_json", f"message value is a {type(raw).__name__}, not bytes")
    if size > limits.max_bytes:
        raise InvalidEvent("too_large", f"{size} bytes > {limits.max_bytes}")
    try:
        obj = orjson.loads(raw)
    except (orjson.JSONDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise InvalidEvent("not_json", str(exc)[:120]) from None
    try:
        return validate(source, obj, now_ms, limits)
    except InvalidEvent:
        raise
    except Exception as exc:  # a bug here must cost one event, not the worker's batch
        raise InvalidEvent("internal_error", f"contract: {type(exc).__name__}: {exc}") from exc


def to_json(event: Event) -> dict[str, Any]:
    """An :class:`Event` back to its wire form (used by producers and the event-log writer)."""
    out: dict[str, Any] = {
        "event_id": event.event_id,
        "customer_id": event.customer_id,
        "ts": format_ts(event.ts_ms),
        "type": event.type,
        "schema_version": SCHEMA_VERSION,
    }
    for key, value in event.data.items():
        if key.endswith("_ms") and key != "duration_ms":
            out[key[:-3] + ("" if key == "sla_due_ms" else "_ts")] = format_ts(int(value))
        else:
            out[key] = value
    return out
