"""Writing an event log in the format its file name says, so that every churnwatch reader reads it back.

``churnwatch simulate --out FILE`` writes what the name promises: readers pick the format by suffix
(:func:`training.data.eventlog.reader_for`), so a JSONL file named ``.csv`` could never be read as one. The
formats written are the ones :mod:`training.data.readers` reads back to the same events:

- JSONL (``.jsonl``, ``.jsonl.gz``): one JSON object a line; the only format that can also hold
  malformed records (raw bytes, what ``--bad-rate`` mixes in);
- CSV (``.csv``, ``.csv.gz``): a header row, a column per field (the union over the records), empty
  cells for absent fields; booleans as ``true``/``false``;
- Parquet (``.parquet``): typed columns where a field's values agree
  (:func:`training.data.export.write_parquet`, the writer of ``churnwatch export``).

Any other name is refused before anything is generated, with the list above.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import orjson

from training.data.readers import LogFormatError

#: Suffix -> format, in the order the error message lists them.
WRITABLE = {".jsonl": "jsonl", ".jsonl.gz": "jsonl", ".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet"}
#: Columns first in a table, as in ``churnwatch export``; the others follow in name order.
LEADING = ("source", "event_id", "customer_id", "ts", "type", "schema_version")


def log_format(path: Path | str) -> str:
    """``jsonl``, ``csv`` or ``parquet`` from the name (longest suffix wins); otherwise
    :class:`LogFormatError` listing the names that can be written."""
    name = Path(path).name.lower()
    for suffix in sorted(WRITABLE, key=len, reverse=True):
        if name.endswith(suffix):
            return WRITABLE[suffix]
    raise LogFormatError(f"{path}: cannot tell the event-log format from the name; use one of "
                         f"{', '.join(WRITABLE)}")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


def _spooled(records: Iterable[dict[str, Any]], spool: io.BufferedRandom, counts: Counter,
             seen: dict[str, set[str]]) -> int:
    """Records as JSON lines into ``spool``, counting sources and every field's value kinds; the lines."""
    from training.data.export import note_kinds

    n = 0
    chunk: list[bytes] = []
    for record in records:
        counts[str(record.get("source"))] += 1
        note_kinds(record, seen)
        chunk.append(orjson.dumps(record) + b"\n")
        n += 1
        if len(chunk) >= 4096:
            spool.write(b"".join(chunk))
            chunk.clear()
    spool.write(b"".join(chunk))
    spool.seek(0)
    return n


def _lines(spool: io.BufferedRandom, total: int, label: str,
           progress: Callable[[str, int, int | None], None] | None) -> Iterator[str]:
    for i, line in enumerate(spool, start=1):
        yield line.decode().rstrip("\n")
        if progress is not None and (i % 10_000 == 0 or i == total):
            progress(label, i, total)


def _write_csv(lines: Iterable[str], columns: list[str], tmp: Path, gz: bool) -> None:
    opener: Any = gzip.open if gz else open
    with opener(tmp, "wt", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for line in lines:
            obj = orjson.loads(line)
            writer.writerow([_cell(obj.get(c)) for c in columns])


def write_table_log(records: Iterable[dict[str, Any]], path: Path | str,
                    progress: Callable[[str, int, int | None], None] | None = None) -> Counter:
    """Write event records (dicts with ``source``) as a CSV or Parquet event log at ``path``; returns
    the records per source. The columns are known only after the last record, so the records go to
    a temporary file beside ``path`` first; ``path`` appears at once, complete (rename)."""
    path = Path(path)
    fmt = log_format(path)
    if fmt == "jsonl":
        raise LogFormatError(f"{path}: write_table_log writes .csv, .csv.gz or .parquet")
    counts: Counter = Counter()
    seen: dict[str, set[str]] = {}
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with tempfile.TemporaryFile(prefix="churnwatch-log-", dir=path.parent) as spool:
            total = _spooled(records, spool, counts, seen)  # type: ignore[arg-type]
            lines = _lines(spool, total, f"writing {path.name}", progress)  # type: ignore[arg-type]
            if fmt == "parquet":
                from training.data.export import write_parquet

                write_parquet(lines, seen, tmp)
            else:
                columns = [c for c in LEADING if c in seen] + sorted(c for c in seen if c not in LEADING)
                _write_csv(lines, columns, tmp, gz=path.name.lower().endswith(".gz"))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return counts


__all__ = ["LEADING", "WRITABLE", "log_format", "write_table_log"]
