"""Progress bars of the command line: rich bars on stderr, fed by the progress callbacks of the pure
modules (``(label, done, total)``, see :mod:`training.data.progress`).

The bars are drawn only for a person watching: when stderr is a terminal and ``--quiet`` is not given.
In a pipe, a log file or CI they would be noise (rich prints a non-terminal's bars once, at the end),
so there :class:`Bars` draws nothing and its callback costs a call. stdout stays for the results.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO


def wanted(quiet: bool, stream: TextIO | None = None) -> bool:
    """Bars for this run: not ``--quiet`` and stderr (or ``stream``) is a terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return not quiet and stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


class Bars:
    """One bar per label, created at its first report. Use as a context manager; :meth:`stop` ends the
    display early (before another display starts, e.g. training's own bars)."""

    def __init__(self, enabled: bool) -> None:
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        if enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                      TextColumn("{task.fields[amount]}"), TimeElapsedColumn(),
                                      TimeRemainingColumn(), console=Console(stderr=True), transient=False)

    @property
    def enabled(self) -> bool:
        return self._progress is not None

    def __enter__(self) -> "Bars":
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()

    def report(self, label: str, done: int, total: int | None) -> None:
        """The progress callback: ``done`` of ``total`` (None: unknown) for ``label``."""
        if self._progress is None:
            return
        amount = _amount(label, done, total)
        task = self._tasks.get(label)
        if task is None:
            self._tasks[label] = self._progress.add_task(label, total=total, completed=done, amount=amount)
        else:
            self._progress.update(task, completed=done, total=total, amount=amount)


def _amount(label: str, done: int, total: int | None) -> str:
    """``1,234/5,000`` for counted things (days, records); nothing for a file being read, whose
    counts are bytes or rows, whichever its reader could tell: the percentage says it."""
    if label.startswith("reading "):
        return ""
    return f"{done:,}/{total:,}" if total else f"{done:,}"


__all__ = ["Bars", "wanted"]
