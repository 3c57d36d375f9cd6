"""Read an offline event log into validated :class:`~pipeline.contract.Event` objects.

The offline side must see exactly the events the stream would accept, so every record goes through the
same :func:`pipeline.contract.validate` the worker runs. A bad record is skipped and counted by the same
reason the worker would dead-letter it with; one broken line in a million must never stop a training run.

File formats are pluggable: a *record reader* turns a file into decoded records (dicts carrying a
``source`` field) or :class:`InvalidEvent` values for records it could not decode. JSONL is read here;
CSV/TSV (optionally gzipped) and Parquet readers live in :mod:`training.readers` and are registered
below. Another format is one function plus one :func:`register_reader` call.
"""

from __future__ import annotations

import gzip
import io
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import orjson

from pipeline.contract import REASONS, Event, InvalidEvent, Limits, format_ts, validate

#: A decoded record (a dict with a ``source`` key), or the reason it could not be decoded.
Record = dict[str, Any] | InvalidEvent
RecordReader = Callable[[Path, Limits], Iterator[Record]]

#: Bad-record examples kept per reason, so a user can find and fix them without a flood of output.
MAX_EXAMPLES = 3
#: ``now`` for the first validation pass: the future check is done afterwards (see :func:`read_events`).
_FAR_FUTURE_MS = sys.maxsize // 2


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


@dataclass
class EventLog:
    """Validated events in event-time order, plus what was skipped on the way."""

    path: Path
    events: list[Event]
    stats: ReadStats

    @property
    def start_ms(self) -> int | None:
        return self.stats.first_ms

    @property
    def end_ms(self) -> int | None:
        return self.stats.last_ms


# ---- record readers -----------------------------------------------------------------------------
def _open_binary(path: Path) -> io.BufferedIOBase:
    """Compressed logs are common for history dumps; gzip costs nothing to support."""
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


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
from training.readers import READERS as _TABLE_READERS  # noqa: E402  (after register_reader exists)
from training.readers import LogFormatError  # noqa: E402

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


def _drop_future(events: list[Event], now_ms: int, limits: Limits, stats: ReadStats) -> list[Event]:
    """Apply the contract's future check with the log's own "now" (see :func:`plausible_now`)."""
    cut = now_ms + limits.max_future_ms
    if all(ev.ts_ms <= cut for ev in events):
        return events
    kept = []
    for ev in events:
        if ev.ts_ms <= cut:
            kept.append(ev)
        else:
            stats.note_invalid(f"event {ev.event_id[:60]!r}", InvalidEvent(
                "ts_in_future", f"ts {format_ts(ev.ts_ms)} is more than {limits.max_future_ms // 1000} s "
                                f"after the log's end {format_ts(now_ms)}"))
    return kept


def _summarise(events: list[Event], stats: ReadStats) -> None:
    """Counts over the accepted events; out-of-order ones mean the log needs sorting."""
    stats.events = len(events)
    if not events:
        return
    stats.by_source.update(ev.source for ev in events)
    # Duplicates are kept: the stream keeps them too (it dedupes by offset, not by event id).
    stats.duplicate_ids = len(events) - len({ev.event_id for ev in events})
    ts = np.fromiter((ev.ts_ms for ev in events), dtype=np.int64, count=len(events))
    stats.out_of_order = int((ts < np.maximum.accumulate(ts)).sum())
    stats.first_ms = int(ts.min())
    stats.last_ms = int(ts.max())


def read_events(path: Path | str, *, limits: Limits = Limits(), now_ms: int | None = None) -> EventLog:
    """Read, validate and time-sort a whole event log.

    Every record is validated in one pass; the contract's "not in the future" check then runs against
    the log's own now (:func:`plausible_now`), since an offline log is judged as history, not against
    today's wall clock. Pass ``now_ms`` to read a dump "as of" a known time instead.
    """
    path = Path(path)
    started = time.perf_counter()
    stats = ReadStats()
    records = reader_for(path)(path, limits)
    events = list(validate_records(records, _FAR_FUTURE_MS, limits, stats))
    if now_ms is None:
        now_ms = plausible_now([ev.ts_ms for ev in events], int(time.time() * 1000), limits)
    events = _drop_future(events, now_ms, limits, stats)
    _summarise(events, stats)
    if stats.out_of_order:
        events.sort(key=attrgetter("ts_ms"))  # stable: equal times keep file order, as a topic would
    stats.now_ms = now_ms
    stats.seconds = time.perf_counter() - started
    return EventLog(path, events, stats)


__all__ = [
    "REASONS",
    "EventLog",
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
