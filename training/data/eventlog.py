"""Read an offline event log into validated :class:`~pipeline.core.contract.Event` objects.

The offline side must see exactly the events the stream would accept, so every record goes through the
same :func:`pipeline.core.contract.validate` the worker runs. A bad record is skipped and counted by the same
reason the worker would dead-letter it with; one broken line in a million must never stop a training run.

File formats are pluggable: a *record reader* turns a file into decoded records (dicts carrying a
``source`` field) or :class:`InvalidEvent` values for records it could not decode. JSONL is read here;
CSV/TSV (optionally gzipped) and Parquet readers live in :mod:`training.data.readers` and are registered
below. Another format is one function plus one :func:`register_reader` call.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import orjson
import pyarrow as pa

from pipeline.core.contract import REASONS, Event, InvalidEvent, Limits, format_ts, validate
from training.data.progress import Report, open_binary, reporting
from training.data.spool import BATCH_ROWS, Spool

if TYPE_CHECKING:
    from pipeline.core.spec import FeatureSpec

#: A decoded record (a dict with a ``source`` key), or the reason it could not be decoded.
Record = dict[str, Any] | InvalidEvent
RecordReader = Callable[[Path, Limits], Iterator[Record]]

#: Bad-record examples kept per reason, so a user can find and fix them without a flood of output.
MAX_EXAMPLES = 3
#: ``now`` for the first validation pass: the future check is done afterwards (see :func:`read_events`).
_FAR_FUTURE_MS = sys.maxsize // 2
#: The progress label of the external sort of a log out of time order.
_SORTING = "sorting events by time"


@dataclass
class ReadStats:
    """What reading a log found. ``invalid`` is keyed by contract reason (:data:`REASONS`)."""

    records: int = 0
    events: int = 0
    invalid: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    by_source: Counter = field(default_factory=Counter)
    out_of_order: int = 0
    duplicate_ids: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    now_ms: int = 0
    seconds: float = 0.0

    @property
    def skipped(self) -> int:
        return sum(self.invalid.values())

    def note_invalid(self, where: str, exc: InvalidEvent) -> None:
        self.invalid[exc.reason] += 1
        examples = self.examples.setdefault(exc.reason, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(f"{where}: {exc.detail}")

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "events": self.events,
            "skipped": self.skipped,
            "invalid": dict(sorted(self.invalid.items())),
            "examples": self.examples,
            "by_source": dict(sorted(self.by_source.items())),
            "out_of_order": self.out_of_order,
            "duplicate_ids": self.duplicate_ids,
            "first": format_ts(self.first_ms) if self.first_ms is not None else None,
            "last": format_ts(self.last_ms) if self.last_ms is not None else None,
            "seconds": round(self.seconds, 3),
        }


class EventStream:
    """The log's valid events in time order, streamed from its spool (:mod:`training.data.spool`) at every
    pass, so a log of any length costs one batch of memory. Iterate it as often as needed; ``len`` is
    the number of events. Building a list of it defeats the point on a large log."""

    def __init__(self, spool: Spool, first_ms: int | None, last_ms: int | None) -> None:
        self._spool = spool
        self.first_ms = first_ms
        self.last_ms = last_ms

    def __len__(self) -> int:
        return len(self._spool)

    def __bool__(self) -> bool:
        return len(self._spool) > 0

    def __iter__(self) -> Iterator[Event]:
        loads = orjson.loads
        for batch in self._spool.batches(_EVENT_COLUMNS):
            cols = [batch.column(i).to_pylist() for i in range(len(_EVENT_COLUMNS))]
            for source, event_id, customer_id, ts_ms, type_, data in zip(*cols):
                yield Event(source, event_id, customer_id, ts_ms, type_, loads(data))

    def close(self) -> None:
        self._spool.close()


@dataclass
class EventLog:
    """Validated events in event-time order, plus what was skipped on the way.

    ``events`` streams from a temporary spool; close the log (or use it as a context manager) to remove
    the spool at once rather than when the log is garbage-collected."""

    path: Path
    events: EventStream
    stats: ReadStats
    #: What :func:`pipeline.core.spec.learn` needs, counted while reading: interaction volume per type and
    #: whether any interaction carries ``user_id`` / ``value``. Saves a pass over a large log.
    type_volume: Counter = field(default_factory=Counter)
    has_users: bool = False
    has_values: bool = False
    #: The outcome events (few: about one per customer), kept so labels need no pass over the log.
    outcomes: list[Event] = field(default_factory=list)

    @property
    def start_ms(self) -> int | None:
        return self.stats.first_ms

    @property
    def end_ms(self) -> int | None:
        return self.stats.last_ms

    def learn_spec(self, top_k: int) -> "FeatureSpec":
        from pipeline.core.spec import learn_from_volume

        return learn_from_volume(self.type_volume, users=self.has_users, values=self.has_values, top_k=top_k)

    def until(self, t_ms: int) -> "EventLog":
        """The log as if exported at ``t_ms``: only its events at or before it, everything counted
        while reading recounted over those (a new spool; this log is left as it is)."""
        spool = self.events._spool.filtered(f"ts <= {int(t_ms)}", ["ts", "seq"])
        try:
            stats = replace(self.stats, by_source=Counter(), invalid=Counter(self.stats.invalid),
                            examples=dict(self.stats.examples))
            stats.events = len(spool)
            first = last = None
            volume: Counter = Counter()
            users = values = False
            if len(spool):
                first, last = spool.query("SELECT min(ts), max(ts) FROM rows")[0]
                stats.by_source.update(dict(spool.query("SELECT source, count(*) FROM rows GROUP BY source")))
                stats.duplicate_ids = int(spool.query("SELECT count(*) - count(DISTINCT event_id) FROM rows")[0][0])
                volume.update(dict(spool.query("SELECT type, count(*) FROM rows WHERE source = 'interactions' GROUP BY type")))
                users, values = spool.query("SELECT coalesce(bool_or(json_exists(data, '$.user_id')), false), "
                                            "coalesce(bool_or(json_exists(data, '$.value')), false) FROM rows "
                                            "WHERE source = 'interactions'")[0]
            stats.first_ms, stats.last_ms = first, last
        except BaseException:
            spool.close()
            raise
        return EventLog(self.path, EventStream(spool, first, last), stats, volume, bool(users), bool(values),
                        [ev for ev in self.outcomes if ev.ts_ms <= t_ms])

    def close(self) -> None:
        self.events.close()

    def __enter__(self) -> "EventLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- record readers -----------------------------------------------------------------------------
def _open_binary(path: Path) -> IO[bytes]:
    """Compressed logs are common for history dumps; gzip costs nothing to support. Counted for a
    progress callback when the caller set one (:mod:`training.data.progress`)."""
    return open_binary(path)


def read_jsonl_records(path: Path, limits: Limits = Limits()) -> Iterator[Record]:
    """One JSON object per line. Blank lines are ignored (editors and ``cat`` leave them)."""
    with _open_binary(path) as fh:
        for raw in fh:
            if not raw.strip():
                continue
            if len(raw) > limits.max_bytes:
                yield InvalidEvent("too_large", f"{len(raw)} bytes > {limits.max_bytes}")
                continue
            try:
                yield orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield InvalidEvent("not_json", str(exc)[:120])


_READERS: dict[str, RecordReader] = {}


def register_reader(suffix: str, reader: RecordReader) -> None:
    """Make files ending in ``suffix`` (e.g. ``.csv``) readable by :func:`read_events`."""
    _READERS[suffix.lower()] = reader


for _suffix in (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz"):
    register_reader(_suffix, read_jsonl_records)

# Tables (CSV/TSV, gzipped or not, and Parquet; pyarrow is imported only when a Parquet file is read).
from training.data.readers import READERS as _TABLE_READERS  # noqa: E402  (after register_reader exists)
from training.data.readers import LogFormatError  # noqa: E402

for _suffix, _reader in _TABLE_READERS.items():
    register_reader(_suffix, _reader)


def reader_for(path: Path) -> RecordReader:
    """Pick the reader by the longest matching suffix (``.jsonl.gz`` before ``.gz``)."""
    name = path.name.lower()
    for suffix in sorted(_READERS, key=len, reverse=True):
        if name.endswith(suffix):
            return _READERS[suffix]
    raise LogFormatError(f"{path}: unknown event-log format (known suffixes: {', '.join(sorted(_READERS))})")


# ---- validation ---------------------------------------------------------------------------------
def validate_records(records: Iterable[Record], now_ms: int, limits: Limits = Limits(),
                     stats: ReadStats | None = None) -> Iterator[Event]:
    """Validate decoded records in file order, counting the bad ones into ``stats``."""
    stats = stats if stats is not None else ReadStats()
    for number, record in enumerate(records, start=1):
        stats.records += 1
        try:
            if isinstance(record, InvalidEvent):
                raise record
            yield validate(_source_of(record), record, now_ms, limits)
        except InvalidEvent as exc:
            stats.note_invalid(f"record {number}", exc)


def _source_of(record: Any) -> str:
    if not isinstance(record, dict):
        raise InvalidEvent("not_object", f"record must be a JSON object, got {type(record).__name__}")
    source = record.get("source")
    if source is None:
        raise InvalidEvent("missing_field", "source is required in an event log")
    if not isinstance(source, str):
        raise InvalidEvent("wrong_type", f"source must be a string, got {type(source).__name__}")
    return source


def plausible_now(ts_ms: Sequence[int] | np.ndarray, wall_ms: int, limits: Limits = Limits()) -> int:
    """"Now" for an offline log: max(wall clock, newest event time), where the newest event time
    ignores absurd outliers.

    A log is history, possibly simulated past today's date, so the wall clock alone would reject a
    legitimate future-dated simulation. But taking the literal newest timestamp would let one event
    stamped 2100-01-01 (a broken clock) through, stretch the log's end by decades and silently turn
    off censoring. The newest event counts only if it lies within 5 % of the log's bulk span (1st to
    99th percentile) plus the contract's future allowance beyond the 99th percentile; with fewer than
    100 events the percentiles fall back to the second-newest/second-oldest, so one outlier is
    still caught.
    """
    ts = np.asarray(ts_ms, dtype=np.int64)
    if ts.size == 0:
        return wall_ms
    lo = int(np.quantile(ts, 0.01, method="higher"))
    hi = int(np.quantile(ts, 0.99, method="lower"))
    bound = hi + (hi - lo) // 20 + limits.max_future_ms
    newest = int(ts[ts <= bound].max())
    return max(wall_ms, newest)


_EVENT_COLUMNS = ("source", "event_id", "customer_id", "ts", "type", "data")
_SPOOL_SCHEMA = pa.schema([("seq", pa.int64()), ("ts", pa.int64()), ("source", pa.string()),
                           ("event_id", pa.string()), ("customer_id", pa.string()), ("type", pa.string()),
                           ("data", pa.string())])


class _Reading:
    """Pass one: validated events into the spool in file order, with what the summary needs."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.ts_chunks: list[np.ndarray] = []
        self.buf: list[Event] = []
        self.seq = 0
        self.type_volume: Counter = Counter()
        self.has_users = self.has_values = False
        self.outcomes: list[Event] = []

    def add(self, ev: Event) -> None:
        self.buf.append(ev)
        if ev.source == "interactions":
            self.type_volume[ev.type] += 1
            if not self.has_users and "user_id" in ev.data:
                self.has_users = True
            if not self.has_values and "value" in ev.data:
                self.has_values = True
        elif ev.source == "outcomes":
            self.outcomes.append(ev)
        if len(self.buf) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        buf, self.buf = self.buf, []
        if not buf:
            return
        ts = np.fromiter((ev.ts_ms for ev in buf), dtype=np.int64, count=len(buf))
        dumps = orjson.dumps
        self.spool.append({
            "seq": np.arange(self.seq, self.seq + len(buf), dtype=np.int64),
            "ts": ts,
            "source": [ev.source for ev in buf],
            "event_id": [ev.event_id for ev in buf],
            "customer_id": [ev.customer_id for ev in buf],
            "type": [ev.type for ev in buf],
            # str, not orjson's bytes: those keep a 4 KB buffer each (orjson >= 3.12) until the batch goes
            "data": [dumps(ev.data).decode() for ev in buf],
        })
        self.seq += len(buf)
        self.ts_chunks.append(ts)

    def times(self) -> np.ndarray:
        return np.concatenate(self.ts_chunks) if self.ts_chunks else np.zeros(0, dtype=np.int64)


def _note_future(spool: Spool, cut: int, count: int, now_ms: int, limits: Limits, stats: ReadStats) -> None:
    """Count events after the log's own "now" (see :func:`plausible_now`) as the contract would."""
    examples = spool.query(f"SELECT event_id FROM rows WHERE ts > {cut} ORDER BY seq LIMIT {MAX_EXAMPLES}")
    detail = (f"is more than {limits.max_future_ms // 1000} s after the log's end {format_ts(now_ms)}")
    for (event_id,) in examples:
        stats.note_invalid(f"event {event_id[:60]!r}", InvalidEvent("ts_in_future", detail))
    stats.invalid["ts_in_future"] += count - len(examples)


def read_events(path: Path | str, *, limits: Limits = Limits(), now_ms: int | None = None,
                progress: Report | None = None) -> EventLog:
    """Read, validate and time-sort a whole event log, in bounded memory.

    Every record is validated in one pass and spooled to a temporary Parquet file (file order); the
    contract's "not in the future" check then runs against the log's own now (:func:`plausible_now`),
    since an offline log is judged as history, not against today's wall clock. Pass ``now_ms`` to read
    a dump "as of" a known time instead. A log out of time order is sorted once, stably (equal times
    keep file order, as a topic would), by an external sort. Memory is one batch plus 8 bytes an event.
    ``progress`` is told how far the read has got (:mod:`training.data.progress`), and when the sort runs.
    """
    path = Path(path)
    started = time.perf_counter()
    stats = ReadStats()
    reader = reader_for(path)
    spool = Spool(_SPOOL_SCHEMA, prefix="churnwatch-log-")
    try:
        reading = _Reading(spool)
        with reporting(progress):
            for ev in validate_records(reader(path, limits), _FAR_FUTURE_MS, limits, stats):
                reading.add(ev)
        reading.flush()
        spool.finish()
        ts = reading.times()
        del reading.ts_chunks
        if now_ms is None:
            now_ms = plausible_now(ts, int(time.time() * 1000), limits)
        cut = now_ms + limits.max_future_ms
        future = int((ts > cut).sum())
        outcomes = reading.outcomes
        if future:
            _note_future(spool, cut, future, now_ms, limits, stats)
            ts = ts[ts <= cut]
            outcomes = [ev for ev in outcomes if ev.ts_ms <= cut]
        stats.events = int(ts.size)
        if ts.size:
            stats.out_of_order = int((ts < np.maximum.accumulate(ts)).sum())
            stats.first_ms, stats.last_ms = int(ts.min()), int(ts.max())
            del ts
            if stats.out_of_order or future:
                if progress is not None:
                    progress(_SORTING, 0, 1)
                spool.sort(["ts", "seq"], where=f"ts <= {cut}")
                if progress is not None:
                    progress(_SORTING, 1, 1)
            stats.by_source.update(dict(spool.query("SELECT source, count(*) FROM rows GROUP BY source")))
            # Duplicates are kept: the stream keeps them too (it dedupes by offset, not by event id).
            stats.duplicate_ids = int(spool.query("SELECT count(*) - count(DISTINCT event_id) FROM rows")[0][0])
    except BaseException:
        spool.close()
        raise
    stats.now_ms = now_ms
    stats.seconds = time.perf_counter() - started
    return EventLog(path, EventStream(spool, stats.first_ms, stats.last_ms), stats, reading.type_volume,
                    reading.has_users, reading.has_values, outcomes)


__all__ = [
    "REASONS",
    "EventLog",
    "EventStream",
    "ReadStats",
    "Record",
    "RecordReader",
    "read_events",
    "plausible_now",
    "read_jsonl_records",
    "reader_for",
    "register_reader",
    "validate_records",
]
