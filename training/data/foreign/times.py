"""Times as a team's tables write them -> epoch ms, with the day/month order read off the column.

ISO-8601 (``2026-03-01 14:03:00``), epoch seconds/ms/µs (told apart by magnitude), ``YYYYMMDD``,
``YYYY/MM/DD`` and day/month/year with ``/ . -`` (the day/month order is read off the column: a first
part above 12 means day-first, a second part above 12 month-first; a column that never says fails with a
request for ``--time-format``). Times without a zone are UTC, like the contract. ``time_format``
(strptime) overrides the guessing.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterable

from pipeline.core.contract import Limits
from training.data.foreign.mapping import ForeignLogError
from training.data.readers import iter_rows, time_to_ms

_TIME_PART = r"(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?\s*([AaPp][Mm])?)?"
_DMY_RE = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})" + _TIME_PART + r"$")
_YMD_RE = re.compile(r"^(\d{4})[/.](\d{1,2})[/.](\d{1,2})" + _TIME_PART + r"$")
_DIGITS_RE = re.compile(r"^[+-]?\d+(?:\.\d*)?$")
_UNDECIDED = "undecided"


def _epoch_ms(value: float) -> int:
    """Epoch seconds, ms, µs or ns -> ms, by magnitude (seconds reach 1e11 only in the year 5138)."""
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    size = abs(value)
    if size < 1e11:
        return int(round(value * 1000))
    if size < 1e14:
        return int(round(value))
    if size < 1e17:
        return int(round(value / 1000))
    return int(round(value / 1_000_000))


def _clock(m: re.Match, first: int) -> tuple[int, int, int, int]:
    """Hour, minute, second, microsecond from the optional time groups starting at group ``first``."""
    hh, mm, ss, frac, ampm = (m.group(first + i) for i in range(5))
    if hh is None:
        return 0, 0, 0, 0
    hour = int(hh)
    if ampm:
        if not 1 <= hour <= 12:
            raise ValueError(f"hour {hour} with {ampm}")
        hour = hour % 12 + (12 if ampm.lower() == "pm" else 0)
    return hour, int(mm), int(ss or 0), int((frac or "0").ljust(6, "0")[:6])


class TimeReader:
    """Reads one column's times to epoch ms (the formats are in the module docstring)."""

    def __init__(self, fmt: str | None = None, dayfirst: bool | None = None) -> None:
        self.fmt = fmt
        self.dayfirst = dayfirst

    def describe(self) -> str:
        if self.fmt:
            return f"strptime {self.fmt}"
        if self.dayfirst is None:
            return "auto"
        return "auto, day/month/year" if self.dayfirst else "auto, month/day/year"

    def __call__(self, value: Any) -> int:
        """Epoch ms, or ValueError with a short reason."""
        if isinstance(value, datetime | date):
            return time_to_ms(value)
        if isinstance(value, bool):
            raise ValueError("a boolean is not a time")
        if isinstance(value, int | float):
            return _epoch_ms(value)
        text = str(value).strip()
        if self.fmt:
            dt = datetime.strptime(text, self.fmt)
            return time_to_ms(dt)
        if _DIGITS_RE.match(text):
            if len(text) == 8 and text.isdigit() and 1900 <= int(text[:4]) <= 2200:
                return time_to_ms(date(int(text[:4]), int(text[4:6]), int(text[6:])))  # YYYYMMDD
            return _epoch_ms(float(text)) if "." in text else _epoch_ms(int(text))
        m = _DMY_RE.match(text)
        if m:
            a, b, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if self.dayfirst is None:
                raise ValueError(f"{text!r}: day/month order unknown (pass a time format)")
            day, month = (a, b) if self.dayfirst else (b, a)
            return time_to_ms(datetime(year, month, day, *_clock(m, 4)))
        m = _YMD_RE.match(text)
        if m:
            return time_to_ms(datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)), *_clock(m, 4)))
        try:
            return time_to_ms(datetime.fromisoformat(text))
        except ValueError:
            raise ValueError(f"{text[:40]!r} is not a time this reader understands") from None


def day_order(values: Iterable[Any]) -> bool | str | None:
    """Day-first (True), month-first (False), no d/m/y strings (None) or ``"undecided"`` (d/m/y strings
    whose parts are all <= 12). Stops at the first value that settles it, so a pre-scan of an ISO
    column reads one row and a d/m/y column usually a few hundred."""
    seen_dmy = False
    for value in values:
        if value is None:
            continue
        if not isinstance(value, str):  # native times or epoch numbers: no day/month question
            break
        text = value.strip()
        if not text:
            continue
        match = _DMY_RE.match(text)
        if match is None:
            if seen_dmy:
                continue  # a stray other format in a d/m/y column: the d/m/y values still decide
            break
        seen_dmy = True
        first, second = int(match.group(1)), int(match.group(2))
        if first > 12:
            return True
        if second > 12:
            return False
    return _UNDECIDED if seen_dmy else None


def column_time_reader(path: Path, columns: list[str], fmt: str | None, flag: str) -> TimeReader:
    if fmt:
        return TimeReader(fmt)
    values = (row.get(c) for row in iter_rows(path, Limits(max_bytes=1 << 30), columns)
              if isinstance(row, dict) for c in columns)
    order = day_order(values)
    if order == _UNDECIDED:
        raise ForeignLogError(f"{path}: column {columns[0]!r} has dates like 03/04/2026 whose day/month order "
                              f"cannot be told from the data; pass {flag} (e.g. %m/%d/%Y or %d/%m/%Y)")
    return TimeReader(None, order if isinstance(order, bool) else None)

