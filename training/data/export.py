"""Dump the input topics to an event-log file, so training can replay exactly what the stream saw.

``churnwatch export --out history.jsonl`` (or ``.parquet``) reads every input topic (customers,
interactions, tickets, surveys, outcomes) from the beginning up to each partition's end as the export
starts (see :func:`read_topics`) — a consistent cut that neither waits for nor includes traffic
arriving meanwhile — and writes one record per message: the producer's JSON object as it is, plus
``source`` (the logical topic) and ``_topic``, ``_partition``, ``_offset`` (where it came from, so any
row can be traced back to Kafka).

Records are *not* validated here: the reader (:func:`training.data.eventlog.read_events`) validates and
counts bad ones by the worker's own reasons, so an exported log is judged exactly like the topic.
Messages that are not a JSON object cannot be a row at all; they are counted by reason and left out.

The file is sorted by event time (ties: source, partition, offset) so it reads like history and
diffs cleanly; records whose time cannot be read go last. The dump is spooled to a temporary Parquet
file and sorted there by DuckDB's external sort (:mod:`training.data.spool`), so memory stays bounded
however long the topics are. Partitions are read with manual assignment, like
:mod:`pipeline.kafka.feed`: kafka-python group consumers get no assignment on the embedded Tansu broker.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from kafka.errors import KafkaError

from pipeline.config.settings import INPUT_SOURCES, Settings
from pipeline.core.contract import InvalidEvent, format_ts, parse_ts
from pipeline.kafka.security import kafka_python_kwargs
from training.data.progress import Report
from training.data.spool import BATCH_ROWS, Spool, SpoolError

#: Sort key for records whose ``ts`` is missing or unreadable: after every real time.
_NO_TIME = 1 << 62
#: Fields added to every exported record; the rest is the message value as produced.
TRACE_FIELDS = ("_topic", "_partition", "_offset")
_LEADING = ("source", "event_id", "customer_id", "ts", "type", "schema_version")
_PARQUET_ROWS = 50_000
#: Progress labels (``progress`` of :func:`export_topics`).
EXPORT_LABEL = "exporting messages"
SORT_LABEL = "sorting by event time"
MAX_EXAMPLES = 3


class ExportError(ValueError):
    """The export cannot be done as asked (bad output name, broker stalled): one line for the user."""


@dataclass
class ExportStats:
    """What an export wrote and what it left out (``skipped`` by contract reason)."""

    path: Path
    format: str
    written: int = 0
    by_source: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    missing_topics: list[str] = field(default_factory=list)
    unreadable_ts: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    end_offsets: dict[str, dict[int, int]] = field(default_factory=dict)
    seconds: float = 0.0

    def note_skipped(self, where: str, exc: InvalidEvent) -> None:
        self.skipped[exc.reason] += 1
        examples = self.examples.setdefault(exc.reason, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(f"{where}: {exc.detail}")

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "written": self.written,
            "by_source": dict(sorted(self.by_source.items())),
            "skipped": dict(sorted(self.skipped.items())),
            "examples": self.examples,
            "missing_topics": self.missing_topics,
            "unreadable_ts": self.unreadable_ts,
            "first": format_ts(self.first_ms) if self.first_ms is not None else None,
            "last": format_ts(self.last_ms) if self.last_ms is not None else None,
            "end_offsets": {t: {str(p): o for p, o in parts.items()} for t, parts in self.end_offsets.items()},
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        """One line for the CLI."""
        parts = ", ".join(f"{k}={v}" for k, v in sorted(self.by_source.items())) or "nothing"
        text = f"exported {self.written:,} records to {self.path} ({self.format}): {parts}"
        if self.first_ms is not None and self.last_ms is not None:
            text += f"; event time {format_ts(self.first_ms)[:10]} .. {format_ts(self.last_ms)[:10]}"
        if self.skipped:
            text += "; left out " + ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items()))
        if self.missing_topics:
            text += "; no such topic: " + ", ".join(self.missing_topics)
        return text + f" in {self.seconds:.1f}s"


# ---- output format ------------------------------------------------------------------------------
def output_format(path: Path, fmt: str | None) -> str:
    """``jsonl`` or ``parquet``: from ``fmt`` or else the suffix. The suffix must agree with the format,
    because readers pick the format by suffix — a Parquet file named ``.jsonl`` could never be read."""
    name = path.name.lower()
    by_suffix = "parquet" if name.endswith((".parquet", ".pq")) else \
        "jsonl" if name.endswith((".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz")) else None
    if fmt is None:
        if by_suffix is None:
            raise ExportError(f"{path}: cannot tell the format from the name; use .jsonl, .jsonl.gz or .parquet")
        return by_suffix
    fmt = fmt.lower()
    if fmt not in ("jsonl", "parquet"):
        raise ExportError(f"unknown export format {fmt!r} (jsonl or parquet)")
    if by_suffix != fmt:
        want = ".parquet" if fmt == "parquet" else ".jsonl or .jsonl.gz"
        raise ExportError(f"{path}: a {fmt} export must be named *{want} so readers recognise it")
    return fmt


# ---- reading the topics -------------------------------------------------------------------------
def _consumer(settings: Settings) -> Any:
    from kafka import KafkaConsumer

    return KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, client_id="churnwatch-export",
                         enable_auto_commit=False, group_id=None, **kafka_python_kwargs(settings))


def read_topics(settings: Settings, sources: Sequence[str], stats: ExportStats,
                stall_s: float = 30.0, progress: Report | None = None) -> Iterator[tuple[str, Any]]:
    """Yield ``(source, ConsumerRecord)`` for every message below each partition's cut offset.

    Finishing at a known cut (not "after a quiet second") makes the export complete and quick on an
    idle topic and bounded on a busy one. The cut is the partition's high watermark when the export
    first fetches from it. ``end_offsets`` (ListOffsets) alone is not enough: Tansu 0.6.0 answers it
    with the *last record batch's base offset + 1*, so a topic produced in one batch of 8 reports an
    end of 1 and the rest would be lost; the fetch response's high watermark is right on Tansu and on
    Kafka, and ListOffsets still serves as a lower bound and to spot empty partitions. ``stall_s``
    without progress on an unfinished partition fails the export instead of hanging. ``progress`` is
    told the messages read so far of the messages below the cut (as far as it is known yet)."""
    from kafka import TopicPartition

    consumer = _consumer(settings)
    try:
        existing = consumer.topics()
        by_topic: dict[str, str] = {}
        tps: list[Any] = []
        for source in sources:
            topic = settings.topic(source)
            if topic not in existing:
                stats.missing_topics.append(topic)
                continue
            by_topic[topic] = source
            parts = consumer.partitions_for_topic(topic) or set()
            tps.extend(TopicPartition(topic, p) for p in sorted(parts))
        if not tps:
            return
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        listed = consumer.end_offsets(tps)
        first = {tp: int(consumer.position(tp)) for tp in tps}
        cut: dict[Any, int] = {}
        pending = {tp for tp in tps if first[tp] < listed[tp]}
        for tp in set(tps) - pending:
            cut[tp] = int(listed[tp])
            consumer.pause(tp)
        read = 0

        def told() -> None:
            if progress is not None:
                total = sum(cut.get(tp, int(listed[tp])) - first[tp] for tp in tps)
                progress(EXPORT_LABEL, read, max(total, read))

        told()
        last_progress = time.monotonic()
        while pending:
            batch = consumer.poll(timeout_ms=500, max_records=10_000)
            for tp, records in batch.items():
                if tp not in cut:
                    cut[tp] = max(int(listed[tp]), int(consumer.highwater(tp) or 0))
                end = cut[tp]
                for rec in records:
                    if rec.offset < end:
                        read += 1
                        yield by_topic[tp.topic], rec
            if batch:
                last_progress = time.monotonic()
                told()
            for tp in list(pending):
                if tp in cut and consumer.position(tp) >= cut[tp]:
                    pending.discard(tp)
                    consumer.pause(tp)  # stop fetching what arrived after the cut
            if pending and time.monotonic() - last_progress > stall_s:
                left = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(pending)[:4])
                raise ExportError(f"export stalled: no records for {stall_s:.0f}s from {left} "
                                  f"before the end of the log")
        for tp in tps:
            stats.end_offsets.setdefault(tp.topic, {})[tp.partition] = cut[tp]
    finally:
        consumer.close()


def _entry(source: str, rec: Any, stats: ExportStats, seen: dict[str, set[str]]
           ) -> tuple[int, int, int, int, str] | None:
    """The message as an exported line with its sort key, or None (counted) if it cannot be a row.
    ``seen`` collects every field's value kinds, which decide the Parquet column types."""
    where = f"{rec.topic}[{rec.partition}]@{rec.offset}"
    try:
        if rec.value is None:
            raise InvalidEvent("not_json", "empty message value")
        try:
            obj = orjson.loads(rec.value)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent("not_json", str(exc)[:120]) from None
        if not isinstance(obj, dict):
            raise InvalidEvent("not_object", f"a JSON {type(obj).__name__}, not an object")
    except InvalidEvent as exc:
        stats.note_skipped(where, exc)
        return None
    obj["source"] = source  # the topic is the truth, whatever the producer wrote
    obj["_topic"], obj["_partition"], obj["_offset"] = rec.topic, rec.partition, rec.offset
    try:
        ts = parse_ts(obj.get("ts")) if obj.get("ts") is not None else _NO_TIME
    except (InvalidEvent, OverflowError, ValueError):
        ts = _NO_TIME
    if ts == _NO_TIME:
        stats.unreadable_ts += 1
    else:
        stats.first_ms = ts if stats.first_ms is None else min(stats.first_ms, ts)
        stats.last_ms = ts if stats.last_ms is None else max(stats.last_ms, ts)
    stats.by_source[source] += 1
    note_kinds(obj, seen)
    # str, not orjson's bytes: those keep a 4 KB buffer each (orjson >= 3.12) while they wait to be spooled
    return ts, INPUT_SOURCES.index(source) if source in INPUT_SOURCES else 99, rec.partition, rec.offset, \
        orjson.dumps(obj).decode()


_SPOOL_SCHEMA = pa.schema([("ts", pa.int64()), ("src", pa.int64()), ("part", pa.int64()), ("off", pa.int64()),
                           ("line", pa.string())])
_SORT_KEY = ("ts", "src", "part", "off")


def _spool_entries(entries: Iterable[tuple[int, int, int, int, str] | None], spool: Spool) -> None:
    batch: list[tuple[int, int, int, int, str]] = []

    def flush() -> None:
        if batch:
            spool.append({name: [e[i] for e in batch] for i, name in enumerate(_SPOOL_SCHEMA.names)})
            batch.clear()

    for entry in entries:
        if entry is not None:
            batch.append(entry)
            if len(batch) >= BATCH_ROWS:
                flush()
    flush()


def _sorted_lines(spool: Spool) -> Iterator[str]:
    for batch in spool.batches(["line"]):
        yield from batch.column(0).to_pylist()


def _counted(lines: Iterable[str], total: int, label: str, progress: Report | None) -> Iterator[str]:
    """``lines``, telling ``progress`` every 10,000 and at the end."""
    if progress is None:
        yield from lines
        return
    done = 0
    for line in lines:
        yield line
        done += 1
        if done % 10_000 == 0:
            progress(label, done, total)
    progress(label, done, total)


# ---- writing ------------------------------------------------------------------------------------
def _write_jsonl(lines: Iterable[str], tmp: Path, gz: bool) -> None:
    opener = gzip.open if gz else open
    with opener(tmp, "wb") as fh:  # type: ignore[operator]
        chunk: list[str] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) >= 8192:
                fh.write(("\n".join(chunk) + "\n").encode())
                chunk.clear()
        if chunk:
            fh.write(("\n".join(chunk) + "\n").encode())


def note_kinds(obj: dict[str, Any], seen: dict[str, set[str]]) -> None:
    """Add a row's value kinds per field to ``seen`` (what :func:`write_parquet` types columns by)."""
    for key, value in obj.items():
        kinds_of_key = seen.setdefault(key, set())
        if value is not None:
            kinds_of_key.add(_kind(value))


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str"  # strings, and objects/lists (JSON-encoded into the cell)


def write_parquet(lines: Iterable[str], seen: dict[str, set[str]], tmp: Path) -> None:
    """Typed columns where a column's values agree (all ints, all numbers, all bools); otherwise text,
    with non-string values JSON-encoded. The table reader coerces text back by field, so a column that
    mixes ``"ts": 1699…`` and ``"ts": "2023-…"`` still reads back to the same events."""
    kinds = {k: _merge_kinds(v) for k, v in seen.items()}
    middle = sorted(c for c in kinds if c not in _LEADING and c not in TRACE_FIELDS)
    names = [c for c in _LEADING if c in kinds] + middle + [c for c in TRACE_FIELDS if c in kinds]
    arrow = {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(), "str": pa.string()}
    schema = pa.schema([(n, arrow[kinds[n]]) for n in names])
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        rows: list[dict[str, Any]] = []

        def flush() -> None:
            cols = [pa.array([_cell(r.get(n), kinds[n]) for r in rows], type=arrow[kinds[n]]) for n in names]
            writer.write_table(pa.Table.from_arrays(cols, schema=schema))
            rows.clear()

        for line in lines:  # batches in sorted order
            rows.append(orjson.loads(line))
            if len(rows) >= _PARQUET_ROWS:
                flush()
        if rows:
            flush()


def _merge_kinds(kinds: set[str]) -> str:
    """One Parquet type for a column: typed when its values agree, else text (all-null columns too)."""
    if not kinds:
        return "str"
    if kinds == {"bool"}:
        return "bool"
    if kinds == {"int"}:
        return "int"
    if kinds <= {"int", "float"}:
        return "float"
    return "str"


def _cell(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "float":
        return float(value)
    if kind == "str" and not isinstance(value, str):
        return orjson.dumps(value).decode()
    return value


def export_topics(settings: Settings, path: Path | str, fmt: str | None = None, *,
                  sources: Sequence[str] = INPUT_SOURCES, stall_s: float = 30.0,
                  progress: Report | None = None) -> ExportStats:
    """Dump the input topics to ``path`` (JSONL, ``.jsonl.gz``, or Parquet — ``fmt`` or the suffix).

    The file appears atomically (written under a temporary name, then renamed), so a failed export
    never leaves a half-written log that looks complete. ``progress`` is told how far the reading of
    the topics, the sort and the writing have got (``(label, done, total)``; the CLI draws bars).
    """
    path = Path(path)
    fmt = output_format(path, fmt)
    started = time.perf_counter()
    stats = ExportStats(path=path, format=fmt)
    if not path.parent.is_dir():
        raise ExportError(f"{path}: directory {path.parent} does not exist")
    seen: dict[str, set[str]] = {}
    spool = Spool(_SPOOL_SCHEMA, prefix="churnwatch-export-")
    try:
        try:
            _spool_entries((_entry(src, rec, stats, seen)
                            for src, rec in read_topics(settings, sources, stats, stall_s, progress)), spool)
        except KafkaError as exc:  # unreachable broker, bad credentials: one line, not a traceback
            raise ExportError(f"cannot read the input topics from {settings.broker}: {exc}") from None
        if len(stats.missing_topics) == len(sources):
            raise ExportError(f"none of the input topics exist on {settings.broker} (looked for "
                              f"{', '.join(stats.missing_topics)}); check --broker and CHURNWATCH_TOPIC_PREFIX")
        if progress is not None:
            progress(SORT_LABEL, 0, 1)
        try:
            spool.sort(_SORT_KEY)
        except SpoolError as exc:
            raise ExportError(str(exc)) from None
        if progress is not None:
            progress(SORT_LABEL, 1, 1)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            lines = _counted(_sorted_lines(spool), len(spool), f"writing {path.name}", progress)
            if fmt == "parquet":
                write_parquet(lines, seen, tmp)
            else:
                _write_jsonl(lines, tmp, gz=path.name.lower().endswith(".gz"))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        stats.written = len(spool)
    finally:
        spool.close()
    stats.seconds = time.perf_counter() - started
    return stats


__all__ = ["ExportError", "ExportStats", "TRACE_FIELDS", "export_topics", "note_kinds", "output_format", "read_topics",
           "write_parquet"]
