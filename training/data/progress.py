"""How far a long read has got, told to whoever asked: a callback, no drawing here.

Reading a large event log or usage table takes seconds to minutes before anything else happens, and
a command that shows nothing for that long looks hung. The readers (:mod:`training.data.eventlog`,
:mod:`training.data.readers`) are pluggable functions of a path, so rather than threading a callback through
every one of them, the caller that wants progress sets one for the duration of its read
(:func:`reporting`), and the readers open their files through :func:`open_binary`, which counts the
bytes the reader consumed (the compressed bytes of a ``.gz``), or call :func:`report` per batch of rows
(Parquet). With no callback set, files open exactly as before and nothing is counted.

A callback gets ``(label, done, total)``: what is being read (e.g. ``reading usage.csv``), and how
far, in bytes or rows; ``total`` is ``None`` when unknown. It is called at most every
:data:`INTERVAL_S` per file, and once more when the file is read to its end. The command line draws
these as progress bars (``apps.bars``); tests collect them in a list.
"""

from __future__ import annotations

import contextvars
import gzip
import io
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterator, Optional

#: ``(label, done, total)``; total None = unknown.
Report = Callable[[str, int, Optional[int]], None]

#: Least time between two calls for one file (the last call, at the end, is always made).
INTERVAL_S = 0.1
#: Read size from the disk while counting: large, so counting costs one call per MiB.
_CHUNK = 1 << 20

_CURRENT: contextvars.ContextVar[Report | None] = contextvars.ContextVar("churnwatch_read_progress", default=None)


@contextmanager
def reporting(callback: Report | None) -> Iterator[None]:
    """Reads within this block report to ``callback`` (None: they do not report)."""
    token = _CURRENT.set(callback)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def report(label: str, done: int, total: int | None) -> None:
    """Tell the current callback, if any."""
    callback = _CURRENT.get()
    if callback is not None:
        callback(label, done, total)


def active() -> bool:
    return _CURRENT.get() is not None


class _Counting(io.RawIOBase):
    """A raw file that reports how many of its bytes were read so far."""

    def __init__(self, path: Path, callback: Report) -> None:
        self._raw = io.FileIO(path, "rb")
        self._callback = callback
        self._label = f"reading {path.name}"
        self._total = os.fstat(self._raw.fileno()).st_size
        self._done = 0
        self._last = 0.0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "bytearray | memoryview") -> int:  # type: ignore[override]
        n = self._raw.readinto(buffer) or 0
        self._done += n
        now = time.monotonic()
        if n == 0 or now - self._last >= INTERVAL_S:
            self._last = now
            self._callback(self._label, self._done, self._total)
        return n

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = self._raw.seek(offset, whence)
        self._done = position
        return position

    def tell(self) -> int:
        return self._raw.tell()

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _OwningGzip(gzip.GzipFile):
    """A gzip reader over a counting file it closes with itself."""

    def __init__(self, inner: IO[bytes]) -> None:
        super().__init__(fileobj=inner, mode="rb")
        self._inner = inner

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._inner.close()


def open_binary(path: Path) -> IO[bytes]:
    """``path`` opened for reading, gunzipped when it ends in ``.gz``; counted while a callback is set."""
    callback = _CURRENT.get()
    gz = path.name.lower().endswith(".gz")
    if callback is None:
        return gzip.open(path, "rb") if gz else open(path, "rb")  # type: ignore[return-value]
    counted = io.BufferedReader(_Counting(path, callback), buffer_size=_CHUNK)
    return _OwningGzip(counted) if gz else counted  # type: ignore[return-value]


__all__ = ["INTERVAL_S", "Report", "active", "open_binary", "report", "reporting"]
