"""Where one partition's customer states live in a worker: a local SQLite file (the default) or memory.

The worker's state must not be bounded by its heap: a million customers at ~5 KB is 5 GB. So the states
of a partition are rows of a local SQLite database under the data directory, and the in-memory part is
SQLite's page cache, bounded by ``state_cache_mb`` (the OS page cache keeps more of the file warm
without counting against the process). The changelog stays the backup: the file is a copy of the
changelog's fold through a known offset (its :class:`Mark`), so a restarted worker on the same disk
reads only the changelog's tail after the mark, and a lost disk costs a full read, never a customer.

Why SQLite and not RocksDB (rocksdict): it is in the standard library, a transaction makes one flush's
states and the new mark change together (a kill -9 between flushes leaves the file at the older mark,
never between two), and a worker's write rate (one row per touched customer per micro-batch) is far
below what it sustains. Writes go to its write-ahead log with ``synchronous=NORMAL`` (no fsync per
commit; an OS crash can lose the newest commits, which the changelog tail brings back), and the log is
checkpointed, like every write, on a thread of its own, so neither a transaction nor a checkpoint's
fsync stalls the event loop.

:class:`MemoryMap` is the same interface over a dict: the batch code's unit tests and benchmarks, and
``CHURNWATCH_STATE_STORE=memory``.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Protocol

import orjson

log = logging.getLogger("churnwatch.state")

#: Rows per ``IN (...)`` lookup (SQLite's default limit of host parameters is 32,766).
_LOOKUP_CHUNK = 900


@dataclass(frozen=True)
class Mark:
    """The changelog offset through which a map equals the changelog's fold, the fingerprint of the
    record at that offset (to tell it is still the same changelog), and the position record in force."""

    offset: int
    fingerprint: int
    position: bytes | None

    def to_bytes(self) -> bytes:
        return orjson.dumps({"offset": self.offset, "fingerprint": self.fingerprint,
                             "position": self.position.decode() if self.position is not None else None})

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Mark":
        d = orjson.loads(raw)
        pos = d.get("position")
        return cls(int(d["offset"]), int(d["fingerprint"]), pos.encode() if pos is not None else None)


#: A state row to write: ``(value, last_ms, churned_ms)``; the two times are indexed for the sweep.
#: None in a write deletes the customer (a tombstone on the changelog).
Row = tuple[bytes, int, int]


class StateMap(Protocol):
    def get(self, key: bytes) -> bytes | None: ...
    def get_many(self, keys: Iterable[bytes]) -> dict[bytes, bytes]: ...
    def __len__(self) -> int: ...
    def items(self) -> Iterator[tuple[bytes, bytes]]: ...
    def idle(self, before_ms: int, after_key: bytes, limit: int) -> list[tuple[bytes, bytes]]: ...
    def max_last_ms(self) -> int: ...
    def write(self, rows: dict[bytes, Row | None], mark: Mark | None) -> None: ...
    async def write_async(self, rows: dict[bytes, Row | None], mark: Mark | None) -> None: ...
    def mark(self) -> Mark | None: ...
    def close(self) -> None: ...


class MemoryMap:
    """A partition's states in a dict: what a worker without a disk of its own keeps."""

    def __init__(self) -> None:
        self.rows: dict[bytes, Row] = {}
        self._mark: Mark | None = None

    def get(self, key: bytes) -> bytes | None:
        row = self.rows.get(key)
        return row[0] if row else None

    def get_many(self, keys: Iterable[bytes]) -> dict[bytes, bytes]:
        rows = self.rows
        return {k: rows[k][0] for k in keys if k in rows}

    def __len__(self) -> int:
        return len(self.rows)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for key, row in list(self.rows.items()):
            yield key, row[0]

    def idle(self, before_ms: int, after_key: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        keys = heapq.nsmallest(limit, (k for k, (_v, last, churned) in self.rows.items()
                                       if k > after_key and not churned and last <= before_ms))
        return [(k, self.rows[k][0]) for k in keys]

    def max_last_ms(self) -> int:
        return max((row[1] for row in self.rows.values()), default=0)

    def write(self, rows: dict[bytes, Row | None], mark: Mark | None) -> None:
        for key, row in rows.items():
            if row is None:
                self.rows.pop(key, None)
            else:
                self.rows[key] = row
        if mark is not None:
            self._mark = mark

    async def write_async(self, rows: dict[bytes, Row | None], mark: Mark | None) -> None:
        self.write(rows, mark)

    def mark(self) -> Mark | None:
        return self._mark

    def close(self) -> None:
        pass


class SqliteMap:
    """A partition's states in a SQLite file.

    Two connections: reads on the caller's thread (the event loop), writes on a thread of their own, so
    a flush's transaction and the log checkpoints (SQLite releases the GIL while it works) run beside
    the next batch's Python on the other core. Reads in WAL mode see the last committed write; what is
    not committed yet is still among the partition's pending flushes (:mod:`pipeline.worker.store`)."""

    CHECKPOINT_EVERY_S = 2.0

    def __init__(self, path: Path, cache_kib: int = 16_384) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = self._connect(cache_kib, create=True)
        self._count: int | None = None
        self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"state-{path.stem}")
        self._wdb: sqlite3.Connection | None = None
        self._cache_kib = cache_kib
        self._checkpointed = time.monotonic()

    def _connect(self, cache_kib: int, create: bool = False) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        if create:
            # a state is ~2-10 KB: larger pages hold one in a page or two instead of a chain of overflow
            # pages (only takes effect when the file is created)
            db.execute("PRAGMA page_size=16384")
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA wal_autocheckpoint=0")  # the writer thread checkpoints
        db.execute(f"PRAGMA cache_size=-{max(256, int(cache_kib))}")
        if create:
            # the times before the value: a column after a large blob is only read through its overflow pages
            db.execute("CREATE TABLE IF NOT EXISTS states (key BLOB PRIMARY KEY, last_ms INTEGER NOT NULL, "
                       "churned_ms INTEGER NOT NULL, value BLOB NOT NULL)")
            db.execute("CREATE INDEX IF NOT EXISTS states_by_last ON states (last_ms)")
            db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)")
        return db

    def get(self, key: bytes) -> bytes | None:
        row = self.db.execute("SELECT value FROM states WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def get_many(self, keys: Iterable[bytes]) -> dict[bytes, bytes]:
        keys = list(keys)
        out: dict[bytes, bytes] = {}
        for i in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[i:i + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            out.update(self.db.execute(f"SELECT key, value FROM states WHERE key IN ({marks})", chunk).fetchall())
        return out

    def __len__(self) -> int:
        if self._count is None:
            self._count = int(self.db.execute("SELECT count(*) FROM states").fetchone()[0])
        return self._count

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        # in key order, a page at a time: never the whole partition in memory
        after = b""
        while True:
            rows = self.db.execute("SELECT key, value FROM states WHERE key > ? ORDER BY key LIMIT 2000",
                                   (after,)).fetchall()
            if not rows:
                return
            yield from rows
            after = rows[-1][0]

    def idle(self, before_ms: int, after_key: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        return self.db.execute("SELECT key, value FROM states WHERE key > ? AND churned_ms = 0 AND last_ms <= ? "
                               "ORDER BY key LIMIT ?", (after_key, before_ms, limit)).fetchall()

    def max_last_ms(self) -> int:
        return int(self.db.execute("SELECT coalesce(max(last_ms), 0) FROM states").fetchone()[0])

    def write(self, rows: dict[bytes, Row | None], mark: Mark | None) -> None:
        self._writer.submit(self._write, rows, mark).result()

    async def write_async(self, rows: dict[bytes, Row | None], mark: Mark | None) -> None:
        await asyncio.wrap_future(self._writer.submit(self._write, rows, mark))

    def _write(self, rows: dict[bytes, Row | None], mark: Mark | None) -> None:
        if self._wdb is None:
            self._wdb = self._connect(self._cache_kib)
        db = self._wdb
        put = [(k, r[1], r[2], r[0]) for k, r in rows.items() if r is not None]
        gone = [(k,) for k, row in rows.items() if row is None]
        count = self._count
        db.execute("BEGIN")
        try:
            before = db.total_changes
            if gone:
                db.executemany("DELETE FROM states WHERE key = ?", gone)
                if count is not None:
                    count -= db.total_changes - before
                before = db.total_changes
            if put:
                db.executemany("INSERT OR IGNORE INTO states VALUES (?, ?, ?, ?)", put)
                if count is not None:
                    count += db.total_changes - before
                db.executemany("UPDATE states SET last_ms = ?, churned_ms = ?, value = ? WHERE key = ?",
                               [(last, churned, v, k) for k, last, churned, v in put])
            if mark is not None:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('mark', ?)", (mark.to_bytes(),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._count = None
            raise
        self._count = count
        if time.monotonic() - self._checkpointed >= self.CHECKPOINT_EVERY_S:
            self._checkpointed = time.monotonic()
            try:
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # never blocks the reader
            except sqlite3.Error:
                pass  # busy: the next round does it

    def mark(self) -> Mark | None:
        row = self.db.execute("SELECT value FROM meta WHERE name = 'mark'").fetchone()
        return Mark.from_bytes(row[0]) if row else None

    def close(self) -> None:
        def close_writer() -> None:
            if self._wdb is not None:
                self._wdb.close()
                self._wdb = None

        try:
            self._writer.submit(close_writer).result()
        finally:
            self._writer.shutdown(wait=True)
            self.db.close()


def open_sqlite(directory: Path, partition: int, cache_kib: int) -> SqliteMap:
    """The partition's file; one SQLite cannot read is removed and started afresh (the changelog has
    everything it held), never a crash."""
    path = directory / f"p{partition}.sqlite3"
    m: SqliteMap | None = None
    try:
        m = SqliteMap(path, cache_kib)
        m.mark()
        m.max_last_ms()
        return m
    except (sqlite3.DatabaseError, ValueError, KeyError) as exc:
        log.warning("local state file %s is unreadable (%s): rebuilding it from the changelog", path, exc)
        if m is not None:
            try:
                m.close()
            except Exception:
                pass
        remove_sqlite(path)
        return SqliteMap(path, cache_kib)


def remove_sqlite(path: Path) -> None:
    """Delete a database file and its write-ahead files."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
