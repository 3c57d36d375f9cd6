"""Deliberately malformed records (``SimConfig.bad_rate``), shaped like the valid record they follow."""

from __future__ import annotations

from typing import Any

import orjson

from devtools.simulator.draw import _Draw, _cum
from devtools.simulator.records import SimRecord


_BAD_KINDS = ("not_json", "truncated", "missing_customer_id", "wrong_type", "absurd_ts",
              "score_out_of_range", "unknown_ticket_type", "huge")
_BAD_CUM = _cum((0.18, 0.14, 0.16, 0.16, 0.16, 0.10, 0.08, 0.02))


def _malformed(near: SimRecord, d: _Draw, n: int) -> SimRecord:
    """A realistic failure shaped like ``near`` (same key, time, usually same source)."""
    kind = _BAD_KINDS[d.pick(_BAD_CUM)]
    source = near.source
    base: dict[str, Any] = dict(near.value) if isinstance(near.value, dict) else {}
    base["event_id"] = f"{near.key}-bad{n}"
    if kind == "not_json":
        raw = b"\x00garbage" + bytes(int(d.u() * 200) + 33 for _ in range(1 + int(d.u() * 20)))
        return SimRecord(source, near.key, near.ts_ms, raw)
    if kind == "truncated":
        full = orjson.dumps(base)
        return SimRecord(source, near.key, near.ts_ms, full[: max(1, int(len(full) * d.between(0.2, 0.9)))])
    if kind == "missing_customer_id":
        base.pop("customer_id", None)
    elif kind == "wrong_type":
        if source == "surveys" or d.u() < 0.5:
            source = "surveys"
            base.update({"type": "nps", "score": "ten"})
        else:
            base["ts"] = [base.get("ts")]
            base["schema_version"] = "one"
    elif kind == "absurd_ts":
        base["ts"] = "1970-01-01T00:00:00.000Z" if d.u() < 0.5 else "2100-01-01T00:00:00.000Z"
    elif kind == "score_out_of_range":
        source = "surveys"
        typ = ("nps", "csat", "ces")[int(d.u() * 3)]
        base.update({"type": typ, "score": (11, 42, -1)[int(d.u() * 3)] if typ == "nps" else
                     (0, 9, 99)[int(d.u() * 3)], "touchpoint": "support"})
    elif kind == "unknown_ticket_type":
        source = "tickets"
        base.pop("ticket_id", None)
        base.pop("severity", None)
        base["type"] = "merged"
    else:  # huge
        base["comment"] = "x" * (70 * 1024)
    return SimRecord(source, near.key, near.ts_ms, orjson.dumps(base))
