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
* **The local store is a copy of the changelog through a mark.** Each partition's states live in a
  :mod:`pipeline.worker.statemap` (a SQLite file by default). A flush is written there only after the
  broker acknowledged it, in one transaction with its *mark*: the changelog offset of its position
  record and that record's fingerprint. A restore first checks that the record at the mark is still
  there and the same; if so it folds only the changelog's tail after the mark into the file (a restart
  on the same disk), otherwise the whole changelog into a fresh file (a lost or foreign disk, a
  re-created changelog). Folding records on top of a file is idempotent (each record is a whole state),
  so a restore cut short by a crash is simply done again.

This module holds the rules; :mod:`pipeline.worker.changelog` does the Kafka I/O and
:mod:`pipeline.worker.statemap` the local files.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol

import orjson

from pipeline.core.features import CustomerState
from pipeline.core.features.encoding import header, is_binary
from pipeline.worker.statemap import Mark, MemoryMap, Row, StateMap, open_sqlite, remove_sqlite

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


def state_row(value: bytes) -> Row:
    """A state's bytes with the two times the store indexes (read from the binary header; a JSON record
    written by an older worker is decoded)."""
    if is_binary(value):
        last_ms, churned_ms = header(value)
    else:
        st = CustomerState.from_bytes(value)
        last_ms, churned_ms = st.last_ms, st.churned_ms
    return value, last_ms, churned_ms


@dataclass
class PartitionState:
    """Everything one worker holds for one partition: the customers and the position they reflect."""

    partition: int
    customers: StateMap = field(default_factory=MemoryMap)
    position: Position = field(default_factory=Position)
    #: True once a position record was restored or written (False: nothing ever flushed here)
    has_position: bool = False
    #: flushes not yet in the local copy (on their way to the broker, or acknowledged and waiting for
    #: the copy's writer), oldest first: their states are read before ``customers`` (the newest flush
    #: first), so a batch can be processed while the previous one is still landing
    pending: list["Pending"] = field(default_factory=list)

    @classmethod
    def over(cls, partition: int, customers: StateMap) -> "PartitionState":
        """A partition on a map that may hold a copy already: its position is the map's mark's."""
        part = cls(partition, customers)
        mark = customers.mark()
        if mark is not None and mark.position is not None:
            part.position, part.has_position = Position.from_bytes(mark.position), True
        return part

    def get(self, key: bytes) -> bytes | None:
        for layer in reversed(self.pending):
            row = layer.rows.get(key)
            if row is not None:
                return row[0]
        return self.customers.get(key)

    def get_many(self, keys: Iterable[bytes]) -> dict[bytes, bytes]:
        if not self.pending:
            return self.customers.get_many(keys)
        out: dict[bytes, bytes] = {}
        rest = []
        for k in keys:
            for layer in reversed(self.pending):
                row = layer.rows.get(k)
                if row is not None:
                    out[k] = row[0]
                    break
            else:
                rest.append(k)
        out.update(self.customers.get_many(rest))
        return out

    def idle(self, before_ms: int, after_key: bytes, limit: int) -> list[tuple[bytes, bytes | None]]:
        """The local copy's page of idle customers (:meth:`StateMap.idle`), each with its newest state: the
        index is the copy's, and a newer state (None: deleted) may still be pending on its way to it."""
        rows = self.customers.idle(before_ms, after_key, limit)
        if not self.pending or not rows:
            return list(rows)
        newest = self.get_many([k for k, _ in rows])
        return [(k, newest.get(k, v)) for k, v in rows]

    def advance(self, topic: str, offset: int, fp: int) -> None:
        current = self.position.topics.get(topic)
        if current is None:
            self.position.topics[topic] = [offset, fp, offset, fp]
        elif offset >= current[0]:
            current[0], current[1] = offset, fp

    def position_bytes(self) -> bytes | None:
        return self.position.to_bytes() if self.has_position else None


#: Changelog records folded per write to the map during a restore (bounds the memory a restore holds).
FOLD_CHUNK = 5_000


def fold_into(part: PartitionState, records: Iterable[tuple[bytes | None, bytes | None]]) -> int:
    """Fold changelog records ``(key, value)``, in offset order, into ``part`` (its map and position).

    Written to the map in chunks without a mark: the caller sets the mark once the whole range is in."""
    rows: dict[bytes, Row | None] = {}
    n = 0
    for key, value in records:
        n += 1
        if key is None or key == FENCE_KEY:
            continue
        if key == POSITION_KEY:
            if value is not None:
                part.position = Position.from_bytes(value)
                part.has_position = True
            continue
        rows[key] = state_row(value) if value is not None else None  # None: a tombstone deletes

        if len(rows) >= FOLD_CHUNK:
            part.customers.write(rows, None)
            rows = {}
    if rows:
        part.customers.write(rows, None)
    return n


@dataclass
class Pending:
    """One flush on its way to the changelog: its states and the position record that covers them."""

    seq: int
    rows: dict[bytes, Row]
    position: bytes


@dataclass
class Flush:
    """What one micro-batch or sweep writes to one changelog partition, in this order."""

    partition: int
    states: dict[bytes, bytes]
    position: Position

    def records(self) -> Iterator[tuple[bytes, bytes]]:
        yield from self.states.items()
        yield POSITION_KEY, self.position.to_bytes()


def can_read_tail(mark: Mark | None, fence_offset: int, fingerprint_at_mark: int | None) -> bool:
    """Whether a local copy is brought up to the fence by its changelog's tail: the record at its mark
    must still be there and the same (not a re-created changelog, not a broker that lost data)."""
    return mark is not None and mark.offset < fence_offset and fingerprint_at_mark == mark.fingerprint


def after_full_read(local: PartitionState, fresh: PartitionState) -> str:
    """``restored``: the whole changelog, read into ``fresh``, replaces the local copy; ``reseed``: the
    changelog holds no position while the local copy has one (the broker lost our writes), so the
    local copy stays and is written to the changelog again."""
    return "reseed" if local.has_position and not fresh.has_position else "restored"


class Maps(Protocol):
    """Opens the map of a partition: the worker's local files, or memory."""

    def open(self, partition: int) -> StateMap: ...
    def fresh(self, partition: int) -> StateMap: ...
    def replace(self, partition: int, live: StateMap, fresh: StateMap) -> StateMap: ...
    def discard(self, fresh: StateMap) -> None: ...
    def close(self) -> None: ...


class MemoryMaps:
    """Every partition in memory: nothing survives the process."""

    def open(self, partition: int) -> StateMap:
        return MemoryMap()

    def fresh(self, partition: int) -> StateMap:
        return MemoryMap()

    def replace(self, partition: int, live: StateMap, fresh: StateMap) -> StateMap:
        return fresh

    def discard(self, fresh: StateMap) -> None:
        pass

    def close(self) -> None:
        pass


class StateDirInUse(RuntimeError):
    """Every slot of the state directory is held by another process."""


#: Workers that may share one state directory (same settings on one host), each in a slot of its own.
MAX_SLOTS = 64


class DiskMaps:
    """One SQLite file per partition in a *slot* of ``root`` (``slot-0``, ``slot-1``, ...): the first slot
    no other process holds (a lock file), so several workers started with the same settings on one host
    each keep their own copies, and a restarted worker usually finds its own again. Whose copy a slot
    holds does not matter for correctness: a copy is used only as far as its mark is still in the
    changelog. A full restore builds a fresh file beside the live one and renames it into place, so a
    crash mid-restore leaves the old copy (or nothing) behind."""

    def __init__(self, root: Path, cache_mb: int, partitions: int) -> None:
        self.cache_kib = max(256, cache_mb * 1024 // max(1, partitions))
        holders = []
        for slot in range(MAX_SLOTS):
            directory = root / f"slot-{slot}"
            directory.mkdir(parents=True, exist_ok=True)
            lock = open(directory / "LOCK", "a+")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                holders.append(lock.read().strip() or "another process")
                lock.close()
                continue
            break
        else:
            raise StateDirInUse(f"state directory {root}: all {MAX_SLOTS} slots are in use "
                                f"(by {', '.join(holders[:3])}, ...)")
        self.directory, self._lock = directory, lock
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}\n")
        lock.flush()
        for stray in directory.glob("p*.restoring.sqlite3"):
            remove_sqlite(stray)  # a full restore a crash cut short

    def open(self, partition: int) -> StateMap:
        return open_sqlite(self.directory, partition, self.cache_kib)

    def fresh(self, partition: int) -> StateMap:
        path = self.directory / f"p{partition}.restoring.sqlite3"
        remove_sqlite(path)
        from pipeline.worker.statemap import SqliteMap

        return SqliteMap(path, self.cache_kib)

    def replace(self, partition: int, live: StateMap, fresh: StateMap) -> StateMap:
        live_path, fresh_path = getattr(live, "path"), getattr(fresh, "path")
        live.close()
        fresh.close()  # the last connection: its write-ahead log is folded into the file and removed
        remove_sqlite(live_path)
        os.replace(fresh_path, live_path)
        return self.open(partition)

    def discard(self, fresh: StateMap) -> None:
        fresh.close()
        remove_sqlite(getattr(fresh, "path"))

    def close(self) -> None:
        try:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
        finally:
            self._lock.close()


class StateStore:
    """The customer states of every partition this worker owns, as serialized bytes in a map per
    partition (:mod:`pipeline.worker.statemap`).

    Bytes, not objects: a state is decoded when an event touches it and encoded once per micro-batch.
    Partitions revoked from this worker are kept aside as *stale* until the next assignment: if the
    same partition comes back, its restore starts from the copy kept (usually reading nothing).
    """

    def __init__(self, writer: str, maps: Maps | None = None) -> None:
        self.writer = writer
        self.maps: Maps = maps or MemoryMaps()
        self.parts: dict[int, PartitionState] = {}
        self.stale: dict[int, PartitionState] = {}
        self._seq = 0

    # ---- reading ---------------------------------------------------------------------------------
    def get(self, partition: int, key: bytes) -> bytes | None:
        part = self.parts.get(partition)
        return part.get(key) if part else None

    def find(self, key: bytes) -> bytes | None:
        """A customer's state in whichever owned partition holds it (the customer view)."""
        for part in list(self.parts.values()):
            raw = part.get(key)
            if raw is not None:
                return raw
        return None

    def __len__(self) -> int:
        return sum(len(p.customers) for p in list(self.parts.values()))

    # ---- ownership -------------------------------------------------------------------------------
    def local(self, partition: int) -> PartitionState:
        """The copy this worker has of a partition: owned, kept aside, or opened from the local store."""
        part = self.parts.pop(partition, None) or self.stale.pop(partition, None)
        if part is None:
            part = PartitionState.over(partition, self.maps.open(partition))
        part.pending.clear()  # a flush whose write was never acknowledged did not happen
        return part

    def fresh(self, partition: int) -> PartitionState:
        return PartitionState(partition, self.maps.fresh(partition))

    def adopt(self, part: PartitionState) -> None:
        self.parts[part.partition] = part

    def replace(self, live: PartitionState, fresh: PartitionState) -> PartitionState:
        """``fresh`` (a whole changelog folded) takes the place of the local copy."""
        part = PartitionState(live.partition, self.maps.replace(live.partition, live.customers, fresh.customers),
                              fresh.position, fresh.has_position)
        return part

    def discard(self, fresh: PartitionState) -> None:
        self.maps.discard(fresh.customers)

    def revoke(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            part = self.parts.pop(p, None)
            if part is not None:
                part.pending.clear()
                self.stale[p] = part

    def drop_stale(self) -> None:
        for part in self.stale.values():
            part.customers.close()
        self.stale.clear()

    def close(self) -> None:
        for part in [*self.parts.values(), *self.stale.values()]:
            part.customers.close()
        self.parts.clear()
        self.stale.clear()
        self.maps.close()

    # ---- writing ---------------------------------------------------------------------------------
    def flush(self, partition: int, states: dict[bytes, bytes], outbox: list[dict[str, Any]]) -> Flush:
        """Describe the changelog write that makes ``states`` durable; until :meth:`persist` they are
        read from the partition's pending states."""
        part = self.parts.setdefault(partition, PartitionState(partition))
        self._seq += 1
        part.position = Position({t: list(v) for t, v in part.position.topics.items()}, self.writer, self._seq, outbox)
        part.has_position = True
        part.pending.append(Pending(self._seq, {k: state_row(v) for k, v in states.items()}, part.position.to_bytes()))
        return Flush(partition, states, part.position)

    async def persist(self, partition: int, seq: int, offset: int) -> None:
        """The changelog acknowledged flush ``seq``, whose position record is at ``offset``: write its
        states and the new mark to the local copy, in one transaction (on the map's writer thread), and
        only then stop reading them from the pending flushes. Flushes land in order."""
        part = self.parts.get(partition)
        if part is None:
            return  # revoked meanwhile: the next owner reads it from the changelog
        layer = next((x for x in part.pending if x.seq == seq), None)
        if layer is None:
            return
        mark = Mark(offset, message_fingerprint(POSITION_KEY, layer.position), layer.position)
        await part.customers.write_async(layer.rows, mark)
        part.pending = [x for x in part.pending if x.seq > seq]

    def set_mark(self, part: PartitionState, offset: int, fingerprint: int) -> None:
        part.customers.write({}, Mark(offset, fingerprint, part.position_bytes()))

    def reseed_chunks(self, partition: int, size: int = 2_000) -> Iterator[dict[bytes, bytes]]:
        """Every state of a partition, a chunk at a time: re-writing a changelog that lost our writes."""
        chunk: dict[bytes, bytes] = {}
        for key, raw in self.parts[partition].customers.items():
            chunk[key] = raw
            if len(chunk) >= size:
                yield chunk
                chunk = {}
        if chunk:
            yield chunk


def disk_maps(directory: Path, cache_mb: int, partitions: int) -> DiskMaps:
    return DiskMaps(directory, cache_mb, partitions)
