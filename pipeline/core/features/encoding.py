"""The compact binary form of a :class:`~pipeline.core.features.state.CustomerState`: what the worker's
local store and its changelog hold.

Why not JSON any more: a worker holding a million customers pays for every byte on disk and on the
changelog, and it decodes and encodes each touched state once per micro-batch. The JSON form spent most
of its time turning the event-id memory into base64 text, one id at a time (~150 µs of a ~250 µs
encode), and wrote every small counter as text.

The layout, little-endian::

    0xCB 0x01           magic and version
    int64 last_ms       newest event time           } a fixed header: the store indexes idle and
    int64 churned_ms    0 unless the customer churned } churned customers without decoding the body
    msgpack array       the fields of :data:`FIELDS`, in that order

* the event-id memory is two byte strings: the 8-byte fingerprints as they are held in memory, and
  their UTC days as int32s, zlib-compressed (days repeat in long runs; the fingerprints are random and
  are not compressed);
* day buckets are msgpack maps of day -> counters (decoded straight into the dicts the state holds,
  with no Python loop); msgpack writes a small counter in one byte;
* a version that adds fields appends them to :data:`FIELDS`: an older record decodes with the defaults
  for the fields it does not have.

JSON records (the form before this one) still decode, so an existing changelog loads; a state is
re-encoded in this form the next time an event touches it.
"""

from __future__ import annotations

import math
import struct
import zlib
from array import array
from typing import Any

import msgpack

from pipeline.core.alert_memory import AlertMemory
from pipeline.core.features.seen import SeenIds

MAGIC = b"\xcb\x01"
_HEADER = struct.Struct("<2sqq")
HEADER_SIZE = _HEADER.size

#: Field order of version 1. Never reorder or remove: append, and keep decoding the shorter arrays.
FIELDS = (
    "customer_id", "first_ms", "last_ms", "tier", "plan", "mrr", "signup_ms", "renewal_ms", "csm", "term",
    "profile_ms", "days", "lifetime", "last_login_ms", "last_activity_ms", "recent_failed_help", "tnames",
    "tdays", "tlast", "udays", "vdays", "open_tickets", "resolved_tickets", "ttr_sum_h", "ttr_count", "nps",
    "csat", "ces", "churned_ms", "renewed_ms", "seen", "seen_floor_day", "offsets", "applied", "alert",
    "events", "partition",
)
_SEEN, _ALERT = FIELDS.index("seen"), FIELDS.index("alert")


def is_binary(raw: bytes) -> bool:
    return raw[:2] == MAGIC


def encode(state: Any) -> bytes:
    """The binary record of ``state`` (a ``CustomerState``; not imported here, it imports this module)."""
    d = state.__dict__
    values = [d[name] for name in FIELDS]
    seen = state.seen
    values[_SEEN] = [bytes(seen.fps), zlib.compress(seen.days.tobytes(), 1)]
    values[_ALERT] = state.alert.to_json()
    return _HEADER.pack(MAGIC, state.last_ms, state.churned_ms) + msgpack.packb(values, use_bin_type=True)


def decode_fields(raw: bytes) -> dict[str, Any]:
    """The constructor arguments of the state in a binary record."""
    if not is_binary(raw):
        raise ValueError("not a binary customer state")
    values = msgpack.unpackb(memoryview(raw)[HEADER_SIZE:], raw=False, strict_map_key=False, use_list=True)
    if not isinstance(values, list) or len(values) > len(FIELDS):
        raise ValueError("malformed binary customer state")
    d = dict(zip(FIELDS, values))
    if "seen" in d:
        fps, days = d["seen"]
        seen = SeenIds()
        seen.fps = bytearray(fps)
        seen.days = array("i")
        seen.days.frombytes(zlib.decompress(days))
        if len(seen.fps) != 8 * len(seen.days):
            raise ValueError("malformed event-id memory")
        d["seen"] = seen
    if "alert" in d:
        d["alert"] = AlertMemory.from_json(d["alert"])
    if d.get("mrr") is None:
        d["mrr"] = math.nan
    return d


def header(raw: bytes) -> tuple[int, int]:
    """``(last_ms, churned_ms)`` of a binary record without decoding its body (0, 0 for a JSON one:
    the caller decodes those)."""
    if not is_binary(raw) or len(raw) < HEADER_SIZE:
        raise ValueError("not a binary customer state")
    _magic, last_ms, churned_ms = _HEADER.unpack_from(raw)
    return last_ms, churned_ms
