"""Rows too many to hold in memory: written once to a temporary Parquet file, read back in bounded batches.

An offline event log can be far larger than memory (ten million events are ~10 GB as Python objects),
but everything training does with it is a pass in time order. So a log is read once into a spool —
columnar, compressed, about 30 bytes an event on disk — and every later pass streams it back in batches
of :data:`BATCH_ROWS`. When the log is not in time order the spool is sorted once by DuckDB, whose
external sort spills to disk under a memory cap (:data:`SORT_MEMORY`) instead of needing the whole log
in memory, as a Python ``list.sort`` would.

The spool lives in its own temporary directory under ``$TMPDIR`` (Python's :mod:`tempfile` rules: point
it at a disk with room, ~30 bytes an event) and is removed when closed or garbage-collected, so an
interrupted run leaves nothing behind but what the OS clears.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

#: Rows per written row group and per batch read back: bounds the memory of a pass (a batch of events
#: as Python objects is ~50 MB), large enough that per-batch overhead does not show.
BATCH_ROWS = 50_000
#: DuckDB's memory cap while sorting; beyond it the sort spills to the spool's directory.
SORT_MEMORY = "384MB"


class SpoolError(RuntimeError):
    """The spool could not be written or sorted (disk full, unwritable temporary directory)."""


class Spool:
    """Append record batches of one schema; then read them back in file order or sorted by columns.

    Writing and reading are separate phases: :meth:`finish` ends writing. :meth:`sort` replaces the
    file with a sorted copy (optionally keeping only rows matching a SQL condition), so any number of
    later passes read it sequentially.
    """

    def __init__(self, schema: pa.Schema, *, prefix: str = "churnwatch-spool-") -> None:
        self.schema = schema
        try:
            self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        except OSError as exc:
            raise SpoolError(f"cannot create a temporary directory for the spool: {exc}") from exc
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.dir, ignore_errors=True)
        self.path = self.dir / "rows.parquet"
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(self.path, schema, compression="zstd",
                                                                 compression_level=1)
        self.rows = 0

    def append(self, columns: dict[str, Any]) -> None:
        """One batch: column name -> list or array, in the schema's columns."""
        if self._writer is None:
            raise SpoolError("the spool is finished: no more rows can be appended")
        batch = pa.record_batch([pa.array(columns[f.name], f.type) for f in self.schema], schema=self.schema)
        if batch.num_rows:
            try:
                self._writer.write_batch(batch)
            except OSError as exc:
                raise SpoolError(f"cannot write the spool in {self.dir}: {exc}") from exc
            self.rows += batch.num_rows

    def finish(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """A DuckDB query over the spool, which is the table ``rows`` (small answers only)."""
        self.finish()
        con = self._duckdb()
        try:
            con.execute(f"CREATE VIEW rows AS SELECT * FROM read_parquet('{self._quoted()}')")
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def sort(self, by: Sequence[str], where: str | None = None) -> int:
        """Sort the spool by ``by`` (ascending) keeping rows where ``where`` holds; return rows kept."""
        self.finish()
        out = self.dir / "sorted.parquet"
        cond = f"WHERE {where}" if where else ""
        con = self._duckdb()
        try:
            con.execute(f"COPY (SELECT * FROM read_parquet('{self._quoted()}') {cond} ORDER BY {', '.join(by)}) "
                        f"TO '{str(out).replace(chr(39), chr(39) * 2)}' "
                        f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {BATCH_ROWS})")
        except Exception as exc:  # duckdb.Error has no stable subclasses for "disk full"
            out.unlink(missing_ok=True)
            raise SpoolError(f"sorting the spool in {self.dir} failed: {exc}") from exc
        finally:
            con.close()
        os.replace(out, self.path)
        self.rows = pq.ParquetFile(self.path).metadata.num_rows
        return self.rows

    def filtered(self, where: str, by: Sequence[str]) -> "Spool":
        """A new spool of the rows where ``where`` holds, sorted by ``by``; this one is left as it is."""
        self.finish()
        out = Spool(self.schema, prefix=self.dir.name.rsplit("-", 1)[0] + "-")
        out.finish()
        con = self._duckdb()
        try:
            con.execute(f"COPY (SELECT * FROM read_parquet('{self._quoted()}') WHERE {where} ORDER BY {', '.join(by)}) "
                        f"TO '{str(out.path).replace(chr(39), chr(39) * 2)}' "
                        f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {BATCH_ROWS})")
        except Exception as exc:  # noqa: BLE001 - see sort()
            out.close()
            raise SpoolError(f"filtering the spool in {self.dir} failed: {exc}") from exc
        finally:
            con.close()
        out.rows = pq.ParquetFile(out.path).metadata.num_rows
        return out

    def batches(self, columns: Sequence[str] | None = None, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        self.finish()
        if not self.rows:
            return
        with pq.ParquetFile(self.path) as pf:
            yield from pf.iter_batches(batch_size=batch_rows, columns=list(columns) if columns else None)

    def close(self) -> None:
        self.finish()
        self._cleanup()

    def _quoted(self) -> str:
        return str(self.path).replace("'", "''")

    def _duckdb(self) -> Any:
        import duckdb  # only when a spool is queried or sorted: most logs are already in time order

        con = duckdb.connect(config={"memory_limit": SORT_MEMORY, "threads": min(4, os.cpu_count() or 1),
                                     "temp_directory": str(self.dir / "duckdb-tmp"),
                                     "preserve_insertion_order": True})
        return con

    def __len__(self) -> int:
        return self.rows
