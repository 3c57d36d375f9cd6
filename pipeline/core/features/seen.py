"""The event-id memory that makes a state's updates idempotent.

Updates are idempotent by event id: the state remembers a 64-bit fingerprint of every event it applied
within the allowed lateness (see :class:`SeenIds`), and the state and that memory change together, so a
redelivery (the same offset read again after a crash, the same event re-sent at a new offset, a topic
re-created with offsets starting over) is never counted twice and a new event is never skipped. An event
older than the memory reaches is refused (``too_late``) rather than guessed about.
"""

from __future__ import annotations

import binascii
import hashlib
from array import array
from typing import Any, Iterable, Sequence


#: Most fingerprints one customer keeps. Past it the oldest day is forgotten and events of that day or
#: earlier are refused as too late: a bound on state size that never turns into a double count.
SEEN_MAX = 20_000


def fingerprint(source: str, event_id: str) -> bytes:
    """64 bits of BLAKE2b of source and id: a false "already applied" needs a collision among one
    customer's remembered ids (about n^2 / 2^65: 1e-11 for 20,000 ids)."""
    return hashlib.blake2b(f"{source}\x00{event_id}".encode("utf-8", "surrogatepass"), digest_size=8).digest()


class SeenIds:
    """The fingerprints of one customer's applied events, with the UTC day of each, in applied order.

    Packed: 8 bytes of fingerprint in one ``bytearray`` plus 4 bytes of day in an ``array`` — 12 bytes
    an id, where a ``set`` of Python ints and per-day lists of them took ~150. Membership is one C
    substring search over the buffer (a match must start on an 8-byte boundary); ids are forgotten
    by whole days, which rebuilds the buffer once a day at most. The serialised form is unchanged:
    ``[[day, base64(little-endian u64 fingerprints)], ...]``, 8 bytes per id before base64 (about 11
    after); a day's ids keep the order they were applied in, so compare states with
    :meth:`CustomerState.comparable`, not byte for byte.
    """

    __slots__ = ("fps", "days")

    def __init__(self) -> None:
        self.fps = bytearray()
        self.days = array("i")

    def __len__(self) -> int:
        return len(self.days)

    def __contains__(self, fp: bytes) -> bool:
        buf = self.fps
        i = buf.find(fp)
        while i > 0 and i % 8:
            i = buf.find(fp, i + 1)
        return i >= 0

    def __eq__(self, other: object) -> bool:
        # as the per-day lists it replaced: equal days with their ids in the same order, in any day order
        return isinstance(other, SeenIds) and (self.fps == other.fps and self.days == other.days
                                               or self.by_day() == other.by_day())

    def __repr__(self) -> str:
        return f"SeenIds({len(self)} ids)"

    def add(self, day: int, fp: bytes) -> None:
        self.fps += fp
        self.days.append(day)

    def oldest_day(self) -> int | None:
        return min(self.days) if self.days else None

    def forget(self, through_day: int | None = None, day: int | None = None) -> None:
        """Forget every id of days up to ``through_day``, or of exactly ``day``."""
        days = self.days
        if not days:
            return
        if through_day is not None:
            if min(days) > through_day:
                return
            keep = [k for k, d in enumerate(days) if d > through_day]
        else:
            keep = [k for k, d in enumerate(days) if d != day]
        fps = self.fps
        self.fps = bytearray(b"".join([fps[8 * k:8 * k + 8] for k in keep]))
        self.days = array("i", [days[k] for k in keep])

    def by_day(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        fps = self.fps
        for k, d in enumerate(self.days):
            out.setdefault(d, []).append(int.from_bytes(fps[8 * k:8 * k + 8], "little"))
        return out

    def packed(self) -> list[list[Any]]:
        grouped: dict[int, list[bytes]] = {}
        fps = self.fps
        for k, d in enumerate(self.days):
            grouped.setdefault(d, []).append(bytes(fps[8 * k:8 * k + 8]))
        return [[d, binascii.b2a_base64(b"".join(parts), newline=False).decode()] for d, parts in grouped.items()]

    @classmethod
    def unpacked(cls, rows: Iterable[Sequence[Any]]) -> "SeenIds":
        out = cls()
        for day, packed in rows:
            raw = binascii.a2b_base64(packed)
            n = len(raw) // 8
            out.fps += raw[:8 * n]
            out.days.extend([int(day)] * n)
        return out
