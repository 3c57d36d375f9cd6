"""CSV and Parquet event logs, and the table access the foreign-log converter shares with them.

Data scientists keep history in whatever their warehouse exports: CSV (often gzipped) or Parquet, not
JSONL. An event-log table has one column per event field plus ``source``; nested or optional fields are
plain columns and an empty cell (or null) means "absent". Cells are coerced the way a person reading the
file would expect — scores and durations numeric, ``success`` from true/false/1/0, epoch-number times as
numbers, numeric ids as strings — and then validated by the same contract as JSONL, so a bad row is
counted by the worker's own reason and never stops a run. Only whole-file problems (no such format,
missing required columns, not a Parquet file) raise :class:`LogFormatError`, with one line naming the
file and, where it applies, the column.

pyarrow is imported only when a Parquet file is actually read, so CSV and JSONL work without it.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
import zlib
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

import orjson

from pipeline.core.contract import InvalidEvent, Limits
from training.data.progress import open_binary, report


class LogFormatError(ValueError):
    """A whole input file cannot be read as asked: one line naming the file (and column)."""


#: Columns an event-log table must have; everything else is optional per source.
REQUIRED_COLUMNS = ("source", "event_id", "customer_id", "ts", "type", "schema_version")
#: Field kinds used to coerce table cells (a CSV cell is always text; a Parquet cell may be anything).
NUMERIC_FIELDS = frozenset({"score", "duration_s", "mrr", "value", "schema_version", "_partition", "_offset"})
BOOL_FIELDS = frozenset({"success"})
TIME_FIELDS = frozenset({"ts", "signup_ts", "renewal_ts", "sla_due"})
STRING_FIELDS = frozenset({
    "source", "event_id", "customer_id", "type", "feature", "ticket_id", "severity", "category", "comment",
    "touchpoint", "tier", "plan", "csm", "term", "user_id", "alert_id", "note", "_topic",
})
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})
_NUMBER_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_INT_RE = re.compile(r"^[+-]?\d+$")
#: Tried in this order on the header line when the suffix does not say (``.tsv`` does).
_DELIMITERS = (",", ";", "\t", "|")
_PARQUET_BATCH = 16_384


# ---- file kinds ---------------------------------------------------------------------------------
def table_kind(path: Path) -> str:
    """``csv``, ``tsv``, ``parquet`` or ``jsonl`` from the file name (``.gz`` allowed for text kinds)."""
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for suffixes, kind in (((".csv",), "csv"), ((".tsv", ".tab"), "tsv"), ((".parquet", ".pq"), "parquet"),
                           ((".jsonl", ".ndjson", ".json"), "jsonl")):
        if name.endswith(suffixes):
            if kind == "parquet" and path.name.lower().endswith(".gz"):
                break  # Parquet compresses internally; a gzipped Parquet file is not readable as a table
            return kind
    raise LogFormatError(f"{path}: unknown table format (use .csv, .tsv, .parquet or .jsonl, optionally .gz "
                         f"for the text formats)")


def _open_binary(path: Path) -> IO[bytes]:
    """Opened (gunzipped for ``.gz``), counted for a progress callback if one is set (:mod:`training.data.progress`)."""
    return open_binary(path)


def _gzip_guard(path: Path, exc: Exception) -> LogFormatError:
    """A broken .gz is a whole-file problem (truncated copy, wrong suffix): say so in one line."""
    return LogFormatError(f"{path}: not a readable gzip file ({str(exc) or type(exc).__name__})")


# ---- CSV ----------------------------------------------------------------------------------------
def _delimiter(path: Path, header_line: str) -> str:
    if table_kind(path) == "tsv":
        return "\t"
    counts = {d: header_line.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])  # ties go to the earlier (comma first)
    return best if counts[best] else ","


def _csv_text(fh: io.BufferedIOBase) -> io.TextIOWrapper:
    # utf-8-sig drops the byte-order mark spreadsheet exports start with; undecodable bytes become U+FFFD
    # in that cell instead of aborting the whole file.
    return io.TextIOWrapper(fh, encoding="utf-8-sig", errors="replace", newline="")


def _csv_header(path: Path) -> tuple[list[str], str]:
    try:
        with _open_binary(path) as fh:
            text = _csv_text(fh)
            first = text.readline()
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise LogFormatError(f"{path}: file not found") from None
        raise _gzip_guard(path, exc) from None
    if not first.strip():
        raise LogFormatError(f"{path}: empty file or blank first line (a header row is required)")
    delim = _delimiter(path, first)
    header = [name.strip() for name in next(csv.reader([first], delimiter=delim))]
    if any(not name for name in header):
        raise LogFormatError(f"{path}: header row has an empty column name (column {header.index('') + 1})")
    dupes = sorted({n for n in header if header.count(n) > 1})
    if dupes:
        raise LogFormatError(f"{path}: header row repeats column {dupes[0]!r}")
    return header, delim


def _iter_csv(path: Path, limits: Limits, columns: set[str] | None) -> Iterator[dict[str, Any] | InvalidEvent]:
    header, delim = _csv_header(path)
    width = len(header)
    keep = [i for i, name in enumerate(header) if columns is None or name in columns]
    try:
        with _open_binary(path) as fh:
            reader = csv.reader(_csv_text(fh), delimiter=delim)
            next(reader, None)
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:  # e.g. a field over csv.field_size_limit(): one bad row, not a bad file
                    reason = "too_large" if "field larger" in str(exc) else "not_object"
                    yield InvalidEvent(reason, f"line {reader.line_num}: {exc}")
                    continue
                if not row or all(not cell.strip() for cell in row):
                    continue  # blank lines: editors and concatenation leave them
                if len(row) > width and any(cell.strip() for cell in row[width:]):
                    yield InvalidEvent("not_object", f"line {reader.line_num}: {len(row)} fields, header has {width}")
                    continue
                size = sum(len(cell) for cell in row)
                if size > limits.max_bytes:
                    yield InvalidEvent("too_large", f"line {reader.line_num}: {size} bytes > {limits.max_bytes}")
                    continue
                yield {header[i]: row[i] for i in keep if i < len(row) and row[i] != ""}
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise _gzip_guard(path, exc) from None


# ---- Parquet ------------------------------------------------------------------------------------
def _parquet_file(path: Path) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise LogFormatError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        return pq.ParquetFile(path)
    except FileNotFoundError:
        raise LogFormatError(f"{path}: file not found") from None
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError variants for non-Parquet input
        raise LogFormatError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0][:160]})") from None


def _iter_parquet(path: Path, limits: Limits, columns: set[str] | None) -> Iterator[dict[str, Any] | InvalidEvent]:
    pf = _parquet_file(path)
    names = [n for n in pf.schema_arrow.names if columns is None or n in columns]
    label, total, done = f"reading {path.name}", pf.metadata.num_rows, 0
    try:
        for batch in pf.iter_batches(batch_size=_PARQUET_BATCH, columns=names):
            for row in batch.to_pylist():
                yield {k: v for k, v in row.items() if not _is_missing(v)}
            done += batch.num_rows
            report(label, done, total)
    except LogFormatError:
        raise
    except Exception as exc:  # a corrupt page mid-file: the rest of the file is unreadable too
        raise LogFormatError(f"{path}: Parquet data is corrupt ({str(exc).splitlines()[0][:160]})") from None


def _is_missing(value: Any) -> bool:
    """Null, or a float NaN (pandas writes missing numbers as NaN)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


# ---- JSONL (for foreign tables; event logs use training.data.eventlog's own reader) ------------------
def _iter_jsonl(path: Path, limits: Limits, columns: set[str] | None) -> Iterator[dict[str, Any] | InvalidEvent]:
    try:
        with _open_binary(path) as fh:
            for number, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                if len(raw) > limits.max_bytes:
                    yield InvalidEvent("too_large", f"line {number}: {len(raw)} bytes > {limits.max_bytes}")
                    continue
                try:
                    obj = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    yield InvalidEvent("not_json", f"line {number}: {str(exc)[:100]}")
                    continue
                if not isinstance(obj, dict):
                    yield InvalidEvent("not_object", f"line {number}: a JSON {type(obj).__name__}, not an object")
                    continue
                yield {k: v for k, v in obj.items() if not _is_missing(v) and (columns is None or k in columns)}
    except FileNotFoundError:
        raise LogFormatError(f"{path}: file not found") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise _gzip_guard(path, exc) from None


def _jsonl_columns(path: Path, sample: int = 1000) -> list[str]:
    """JSONL has no header: the columns are the keys seen in the first ``sample`` objects."""
    seen: dict[str, None] = {}
    for n, row in enumerate(_iter_jsonl(path, Limits(max_bytes=1 << 30), None)):
        if isinstance(row, dict):
            seen.update(dict.fromkeys(row))
        if n >= sample:
            break
    return list(seen)


# ---- generic table access -----------------------------------------------------------------------
def table_columns(path: Path | str) -> list[str]:
    """Column names of a table file, in file order."""
    path = Path(path)
    kind = table_kind(path)
    if kind in ("csv", "tsv"):
        return _csv_header(path)[0]
    if kind == "parquet":
        return list(_parquet_file(path).schema_arrow.names)
    return _jsonl_columns(path)


def iter_rows(path: Path | str, limits: Limits = Limits(), columns: Iterable[str] | None = None
              ) -> Iterator[dict[str, Any] | InvalidEvent]:
    """Rows as dicts (absent/empty cells left out), or :class:`InvalidEvent` for rows that cannot be
    split into cells. ``columns`` restricts which cells are returned (cheaper for a pre-scan)."""
    path = Path(path)
    wanted = set(columns) if columns is not None else None
    kind = table_kind(path)
    if kind in ("csv", "tsv"):
        return _iter_csv(path, limits, wanted)
    if kind == "parquet":
        return _iter_parquet(path, limits, wanted)
    return _iter_jsonl(path, limits, wanted)


def require_columns(path: Path, present: Iterable[str], needed: Iterable[str], what: str = "") -> None:
    """One-line error naming the file and the first missing column(s)."""
    have = list(present)
    missing = [c for c in needed if c not in have]
    if missing:
        label = f" ({what})" if what else ""
        shown = ", ".join(have[:12]) + (", …" if len(have) > 12 else "")
        raise LogFormatError(f"{path}: missing column{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(repr(c) for c in missing)}{label}; the file has: {shown or 'no columns'}")


# ---- cell coercion ------------------------------------------------------------------------------
def time_to_ms(value: datetime | date) -> int:
    """A native datetime/date (Parquet timestamp or date column) -> epoch ms; naive means UTC, as in
    the contract."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return int(round(value.timestamp() * 1000))
    return int(datetime(value.year, value.month, value.day, tzinfo=timezone.utc).timestamp() * 1000)


def _number(text: str) -> int | float | str:
    t = text.strip()
    if _INT_RE.match(t):
        return int(t)
    if _NUMBER_RE.match(t):
        return float(t)
    return text  # left as text: the contract reports it as wrong_type, counted like any bad record


def coerce_cell(name: str, value: Any) -> Any:
    """Give one table cell the JSON type the contract expects for field ``name``, when that is
    unambiguous; anything else is passed through for the contract to judge."""
    if isinstance(value, datetime | date):
        return time_to_ms(value)
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        if name in NUMERIC_FIELDS:
            return _number(value)
        if name in BOOL_FIELDS:
            word = value.strip().lower()
            return True if word in _TRUE else False if word in _FALSE else value
        if name in TIME_FIELDS:
            t = value.strip()
            return _number(t) if _NUMBER_RE.match(t) else t
        return value
    if name in BOOL_FIELDS and isinstance(value, int | float) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    if name in STRING_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # a numeric id column in Parquet: ids are strings in the contract
    if name in STRING_FIELDS and isinstance(value, float) and value.is_integer():
        return str(int(value))  # pandas stores an int column with gaps as float
    return value


def coerce_record(row: dict[str, Any]) -> dict[str, Any]:
    return {name: coerce_cell(name, value) for name, value in row.items()}


# ---- event-log readers (registered in training.data.eventlog) ----------------------------------------
def read_table_records(path: Path, limits: Limits = Limits()) -> Iterator[dict[str, Any] | InvalidEvent]:
    """An event-log table (CSV/TSV, gzipped or not, or Parquet): one event per row, ``source`` column
    included. Missing required columns fail the file at once (every row would be invalid otherwise)."""
    path = Path(path)
    columns = table_columns(path)
    hint = "an event-log table needs " + ", ".join(REQUIRED_COLUMNS)
    if "source" not in columns:  # most likely a product usage log, not churnwatch's own format
        hint += "; for your own usage log and churn table see docs/foreign-logs.md"
    require_columns(path, columns, REQUIRED_COLUMNS, hint)
    for row in iter_rows(path, limits):
        yield row if isinstance(row, InvalidEvent) else coerce_record(row)


#: Suffix -> reader, for :func:`training.data.eventlog.register_reader`.
READERS = {suffix: read_table_records for suffix in (
    ".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet", ".pq",
)}


__all__ = [
    "LogFormatError",
    "READERS",
    "REQUIRED_COLUMNS",
    "coerce_cell",
    "coerce_record",
    "iter_rows",
    "read_table_records",
    "require_columns",
    "table_columns",
    "table_kind",
    "time_to_ms",
]
