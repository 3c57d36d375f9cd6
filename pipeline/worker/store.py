"""The worker's state store: customer states per partition, the input position they reflect, and how
both are written to and rebuilt from the state changelog.

Why not a Faust Table: Faust restores a table up to the end offset the broker *reports*, and commits
input offsets on its own schedule. On Tansu 0.6 the reported end is the last batch's first offset + 1,
so restores stopped short while the input offsets were already committed (customers lost events after
kill -9), and a persisted offset above the reported end crashed recovery (``ConsistencyError``). Here
correctness depends on neither:

* **The state carries its input position.** Every flush writes, after the customer states of a
  partition, one *position record* on the same changelog partition: per input topic the offset of the
  last message folded in, plus a fingerprint of that message. Records of one partition are read back in
  the order they were written, so a restored position never claims more than the restored states hold.
  The worker seeks its input to the restored position, not to the group's committed offset; what it
  reads twice is refused per customer by event id (:func:`pipeline.core.features.apply`).
* **Restores read to a fence, not to a reported end.** Before reading a partition back, the new owner
  appends a *fence* record with a token of its own and reads until it has seen that record's offset,
  which the broker returned on append. Everything written before the fence is then known to be read,
  on any Kafka-compatible broker.
* **Fingerprints detect a topic that started over.** If the message at the restored offset is missing
  or different, or the first message the state ever read from the partition is there but different
  (topics deleted and re-created, or truncated), the input is read from its beginning and event-id
  dedup sorts out what was applied. A running worker checks this every few seconds too.
* **Alerts are an outbox.** A position record also carries the alerts decided in that flush; they are
  sent only after the flush is acknowledged, and a new owner re-sends the outbox of the last position
  record it restores (at least once; ``alert_id`` identifies repeats).

This module is pure (records in, records out); :mod:`pipeline.worker.changelog` does the Kafka I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import orjson

#: Keys of the changelog's control records. Customer ids cannot start with a NUL (the contract refuses
#: control characters), so these never collide with a customer.
POSITION_KEY = b"\x00position"
FENCE_KEY = b"\x00fence"


def message_fingerprint(key: bytes | None, value: bytes | None) -> int:
    """64-bit fingerprint of one input message: how a restored position recognises its message."""
    h = hashlib.blake2b(digest_size=8)
    h.update(key or b"")
    h.update(b"\x00")
    h.update(value or b"")
    return int.from_bytes(h.digest(), "little")


@dataclass
class Position:
    """Per input topic of one partition: ``[offset, fingerprint]`` of the last message folded in, then
    ``[offset, fingerprint]`` of the first one (the *origin*): a topic re-created under a running
    worker may already have grown past the last offset, and only its origin message tells it apart."""

    topics: dict[str, list[int]] = field(default_factory=dict)
    writer: str = ""
    seq: int = 0
    #: alert records (JSON bytes, decoded to dicts here) decided in the flush that wrote this position
    outbox: list[dict[str, Any]] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        return orjson.dumps({"kind": "position", "topics": self.topics, "writer": self.writer,
                             "seq": self.seq, "outbox": self.outbox})

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Position":
        d = orjson.loads(raw)
        return cls({k: [int(x) for x in (v if len(v) >= 4 else [*v[:2], *v[:2]])] for k, v in d.get("topics", {}).items()},
                   str(d.get("writer", "")), int(d.get("seq", 0)), list(d.get("outbox", [])))


@dataclass
class PartitionState:
    """Everything one worker holds for one partition: the customers and the position they reflect."""

    partition: int
    customers: dict[bytes, bytes] = field(default_factory=dict)
    position: Position = field(default_factory=Position)
    #: True once a position record was restored or written (False: nothing ever flushed here)
    has_position: bool = False

    def advance(self, topic: str, offset: int, fp: int) -> None:
        current = self.position.topics.get(topic)
        if current is None:
            self.position.topics[topic] = [offset, fp, offset, fp]
        elif offset >= current[0]:
            current[0], current[1] = offset, fp


def fold(partition: int, records: Iterable[tuple[bytes | None, bytes | None]]) -> PartitionState:
    """Rebuild a partition from its changelog records ``(key, value)`` in offset order."""
    part = PartitionState(partition)
    for key, value in records:
        if key is None or key == FENCE_KEY:
            continue
        if key == POSITION_KEY:
            if value is not None:
                part.position = Position.from_bytes(value)
                part.has_position = True
            continue
        if value is None:
            part.customers.pop(key, None)  # a tombstone
        else:
            part.customers[key] = value
    return part


@dataclass
class Flush:
    """What one micro-batch or sweep writes to one changelog partition, in this order."""

    partition: int
    states: dict[bytes, bytes]
    position: Position

    def records(self) -> Iterator[tuple[bytes, bytes]]:
        yield from self.states.items()
        yield POSITION_KEY, self.position.to_bytes()


class StateStore:
    """The customer states of every partition this worker owns, as serialized bytes.

    Bytes, not objects: a state is decoded when an event touches it and encoded once per micro-batch,
    which keeps a worker's memory near the changelog's size. Partitions revoked from this worker are
    kept aside as *stale* until the next assignment: if the same partition comes back and nobody else
    wrote to it meanwhile (its last position record is still this writer's newest), no restore is needed.
    """

    def __init__(self, writer: str) -> None:
        self.writer = writer
        self.parts: dict[int, PartitionState] = {}
        self.stale: dict[int, PartitionState] = {}
        self._seq = 0

    # ---- reading ---------------------------------------------------------------------------------
    def get(self, partition: int, key: bytes) -> bytes | None:
        part = self.parts.get(partition)
        return part.customers.get(key) if part else None

    def find(self, key: bytes) -> bytes | None:
        """A customer's state in whichever owned partition holds it (the customer view)."""
        for part in self.parts.values():
            raw = part.customers.get(key)
            if raw is not None:
                return raw
        return None

    def __len__(self) -> int:
        return sum(len(p.customers) for p in self.parts.values())

    def items(self) -> Iterator[tuple[int, bytes, bytes]]:
        for p, part in list(self.parts.items()):
            for key, raw in list(part.customers.items()):
                yield p, key, raw

    # ---- ownership -------------------------------------------------------------------------------
    def revoke(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            part = self.parts.pop(p, None)
            if part is not None:
                self.stale[p] = part

    def adopt(self, restored: PartitionState) -> tuple[PartitionState, str]:
        """Take ownership of a partition given what its changelog holds; returns (state, how).

        ``how`` is ``restored`` (the changelog's copy), ``kept`` (our own copy is as new as the
        changelog's) or ``reseed`` (the changelog lost what we wrote: our copy must be written again).
        """
        p = restored.partition
        mine = self.parts.get(p) or self.stale.pop(p, None)
        how = "restored"
        chosen = restored
        if mine is not None and mine.has_position:
            theirs = restored.position
            if not restored.has_position:
                chosen, how = mine, "reseed"
            elif theirs.writer == self.writer and theirs.seq == mine.position.seq:
                chosen, how = mine, "kept"
        self.parts[p] = chosen
        return chosen, how

    def drop_stale(self) -> None:
        self.stale.clear()

    # ---- writing ---------------------------------------------------------------------------------
    def flush(self, partition: int, states: dict[bytes, bytes], outbox: list[dict[str, Any]]) -> Flush:
        """Apply ``states`` to the partition and describe the changelog write that makes them durable."""
        part = self.parts.setdefault(partition, PartitionState(partition))
        part.customers.update(states)
        self._seq += 1
        part.position = Position({t: list(v) for t, v in part.position.topics.items()}, self.writer, self._seq, outbox)
        part.has_position = True
        return Flush(partition, states, part.position)

    def reseed(self, partition: int) -> Flush:
        """Every state of a partition plus its position: re-write a changelog that lost our writes."""
        part = self.parts[partition]
        return self.flush(partition, dict(part.customers), [])
