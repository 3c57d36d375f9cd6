"""The event contract: what an input event must look like, and why it is rejected when it does not.

Validation happens once, at the edge, so the feature code can trust every field it reads. A rejected
event raises :class:`InvalidEvent` with a short machine-readable ``reason`` (a Prometheus label, so the
set is small and fixed) and a human ``detail``; the worker forwards both to the dead-letter topic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import orjson

SCHEMA_VERSION = 1
DAY_MS = 86_400_000

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
)

TICKET_TYPES = frozenset(
    {"opened", "agent_reply", "customer_reply", "escalated", "resolved", "reopened", "closed"}
)
SEVERITIES = ("low", "medium", "high", "critical")
SURVEY_RANGES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
OUTCOME_TYPES = frozenset({"churned", "renewed", "contacted", "saved", "alert_ack"})
PROFILE_TYPES = frozenset({"profile"})


class InvalidEvent(ValueError):
    """The event breaks the contract. ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


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
def parse_ts(value: Any, name: str = "ts") -> int:
    """ISO-8601 (naive means UTC) or epoch milliseconds -> epoch milliseconds."""
    if isinstance(value, bool):
        raise InvalidEvent("wrong_type", f"{name} must be ISO-8601 or epoch ms, got a boolean")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidEvent("bad_timestamp", f"{name} is not finite")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidEvent("bad_timestamp", f"{name} {value[:40]!r} is not ISO-8601") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return int(round(dt.timestamp() * 1000))
    raise InvalidEvent("wrong_type", f"{name} must be ISO-8601 or epoch ms, got {type(value).__name__}")


def format_ts(ts_ms: int) -> str:
    """Epoch ms -> ISO-8601 UTC with milliseconds, the form every churnwatch output uses."""
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


# ---- field helpers ------------------------------------------------------------------------------
def _str(obj: dict, name: str, required: bool = True, max_len: int = 256) -> str | None:
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
    return value


def _num(obj: dict, name: str, required: bool = False, lo: float | None = None, hi: float | None = None) -> float | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise InvalidEvent("missing_field", f"{name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidEvent("wrong_type", f"{name} must be a number, got {value!r:.40}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise InvalidEvent("bad_value", f"{name}={value} outside [{lo}, {hi}]")
    return float(value)


def _bool(obj: dict, name: str) -> bool | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise InvalidEvent("wrong_type", f"{name} must be true/false, got {value!r:.40}")
    return value


def _opt_ts(obj: dict, name: str) -> int | None:
    return None if obj.get(name) is None else parse_ts(obj[name], name)


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
    return data


def _ticket(obj: dict, typ: str) -> dict[str, Any]:
    if typ not in TICKET_TYPES:
        raise InvalidEvent("unknown_type", f"ticket type {typ!r} is not one of {sorted(TICKET_TYPES)}")
    data: dict[str, Any] = {"ticket_id": _str(obj, "ticket_id")}
    severity = _str(obj, "severity", required=typ == "opened")
    if severity is not None:
        severity = severity.lower()
        if severity not in SEVERITIES:
            raise InvalidEvent("bad_value", f"severity {severity!r} is not one of {list(SEVERITIES)}")
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
        raise InvalidEvent("unknown_type", f"survey type {typ!r} is not one of {sorted(SURVEY_RANGES)}")
    lo, hi = SURVEY_RANGES[typ]
    data: dict[str, Any] = {"score": _num(obj, "score", required=True, lo=lo, hi=hi)}
    for name in ("comment", "touchpoint"):
        value = _str(obj, name, required=False, max_len=4096)
        if value is not None:
            data[name] = value
    return data


def _profile(obj: dict, typ: str) -> dict[str, Any]:
    if typ not in PROFILE_TYPES:
        raise InvalidEvent("unknown_type", f"customer event type {typ!r} is not 'profile'")
    data: dict[str, Any] = {}
    for name in ("tier", "plan", "csm"):
        value = _str(obj, name, required=False)
        if value is not None:
            data[name] = value.lower() if name != "csm" else value
    mrr = _num(obj, "mrr", lo=0)
    if mrr is not None:
        data["mrr"] = mrr
    for name in ("signup_ts", "renewal_ts"):
        value = _opt_ts(obj, name)
        if value is not None:
            data[name[:-3] + "_ms"] = value
    return data


def _outcome(obj: dict, typ: str) -> dict[str, Any]:
    if typ not in OUTCOME_TYPES:
        raise InvalidEvent("unknown_type", f"outcome type {typ!r} is not one of {sorted(OUTCOME_TYPES)}")
    data: dict[str, Any] = {}
    alert_id = _str(obj, "alert_id", required=typ == "alert_ack")
    if alert_id is not None:
        data["alert_id"] = alert_id
    note = _str(obj, "note", required=False, max_len=4096)
    if note is not None:
        data["note"] = note
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
        raise InvalidEvent("unsupported_schema", f"schema_version {version!r} (supported: {SCHEMA_VERSION})")
    event_id = _str(obj, "event_id")
    customer_id = _str(obj, "customer_id", max_len=128)
    typ = _str(obj, "type", max_len=64)
    if "ts" not in obj or obj["ts"] is None:
        raise InvalidEvent("missing_field", "ts is required")
    ts_ms = parse_ts(obj["ts"])
    if ts_ms < limits.min_ts_ms:
        raise InvalidEvent("ts_too_old", f"ts {format_ts(ts_ms) if ts_ms > -62e12 else ts_ms} is before {format_ts(limits.min_ts_ms)}")
    if ts_ms > now_ms + limits.max_future_ms:
        raise InvalidEvent("ts_in_future", f"ts {format_ts(ts_ms) if ts_ms < 253e12 else ts_ms} is more than {limits.max_future_ms // 1000} s ahead of now")
    data = validator(obj, typ)  # type: ignore[arg-type]
    return Event(source, event_id, customer_id, ts_ms, typ, data)  # type: ignore[arg-type]


def parse(source: str, raw: bytes, now_ms: int, limits: Limits = Limits()) -> Event:
    """Raw message bytes -> validated :class:`Event`, or :class:`InvalidEvent`."""
    if raw is None:
        raise InvalidEvent("not_json", "empty message value")
    if len(raw) > limits.max_bytes:
        raise InvalidEvent("too_large", f"{len(raw)} bytes > {limits.max_bytes}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("not_json", str(exc)[:120]) from None
    return validate(source, obj, now_ms, limits)


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
