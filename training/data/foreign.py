"""Turn a team's own product history into a churnwatch event log, and train on it in one step.

Most teams that want churn warnings already have two tables, in their own shapes: a **usage log**
(account id, event time, event type — CSV, Parquet or JSONL, with their own column names and date
formats) and either **churn dates** (``account,churn_date``) or **subscriptions** (``account,start,end``:
an end on or before the data's "as of" time is a churn, an open end is an active account). Purchase logs
have neither: for them churn is *inactivity* (``inactive_days``, see below). This module
maps those onto the event contract so they run through the *same* feature code and trainer as native
churnwatch data (see ``docs/foreign-logs.md``):

* every usage row -> an ``interactions`` event; its type goes through an optional type map
  (``signin -> login``) and unknown types are kept as they are: the pipeline counts them generically.
  A type-map target must be a built-in type or one of the log's own types (merging two of them is
  fine); anything else is a typo that would silently create a type nobody sends, so it is refused;
* every account -> one ``customers`` ``profile``: signup = subscription start, or the first usage row
  when only churn dates are known; tier ``standard`` unless a tier column is named;
* every churn -> a ``churned`` outcome at its date (the label); a subscription that starts again after a
  gap -> ``renewed`` (a win-back), which the labels already understand.
* without a churn table, ``inactive_days=N``: a gap of N days or more after a usage row -> ``churned`` at
  that row + 1 day, and the row that ends the gap, if any -> ``renewed`` (see "Inactivity churn" below).

Decisions that matter for a sound model, and why:

* The data window is the usage log's span. Outcomes outside it are left out (and counted): a churn
  before the first usage row says nothing the features can see, and one after the last row would
  stretch the log's end so every account looks silent in the final weeks.
* A profile is stamped no earlier than the first usage row (its ``signup_ts`` keeps the true signup),
  otherwise a subscription from years ago would start the observation grid years before any usage.
* Event ids are deterministic (a hash of the account, time, type and row number), so converting the
  same files twice gives the same log, and appending rows keeps the ids of the old ones.
* Times: ISO-8601 (``2026-03-01 14:03:00``), epoch seconds/ms/µs (told apart by magnitude),
  ``YYYYMMDD``, ``YYYY/MM/DD`` and day/month/year with ``/ . -`` (the day/month order is read off the
  column: a first part above 12 means day-first, a second part above 12 month-first; a column that
  never says fails with a request for ``--time-format``). Times without a zone are UTC, like the
  contract. ``time_format`` (strptime) overrides the guessing.

Inactivity churn (``inactive_days=N``), and why it is built the way it is:

* *Dated at the last row + 1 day*, not when the silence reaches N days. The account was lost when it
  stopped using the product; a churn dated at the end of the gap would make the label a countdown of a
  silence the features already show (days since the last event), and the model would learn to report
  silence rather than warn before it. The day after the last row, not the row itself, so an observation
  on the day of the last activity still sees an active account with that activity in its features.
* *A gap of N days or more followed by new activity* is a churn and then a win-back (``renewed`` at the
  row that ends it). Letting a later return cancel the churn would make a gap's label depend on how long
  the data runs after it: early gaps have had longer to be "cancelled" than late ones, so the churn rate
  would drift upwards towards the end of the log — exactly where the test period is.
* *Censoring*: an account whose last row is within N days of the as-of time has not churned (yet); no
  outcome. And a label window can only be decided where N days of data follow it, so the written log
  ends at as-of - N days: the rows after that only decide who churned (and are counted as left out).
  Without the cut, the last weeks' churners would be labelled stayers — in the test period.
* *Known N days late*: a churn dated c is only known at c + N, so training runs with a label delay of
  N (``DatasetConfig.label_delay_days``, set by :func:`train_foreign`, recorded in the model's
  ``meta.json``; rules in :mod:`training.rows.labels`). An account is left out of the rows at T only when a
  churn dated on or before T - N has not been followed by a return by T; an account silent since before
  T whose churn is not known yet is a row, labelled 1 (churn dated in (T - N, T + horizon], not ended by
  a return at or before T), like the stream, which scores everyone it has not seen leave. The time
  split's purge gap is horizon + N, since a label at T needs the data up to T + horizon + N.

Bad rows are counted by reason like the event-log readers do; only whole-file problems (missing
columns, unreadable files, undecidable date order, a type-map target that exists nowhere) raise
:class:`ForeignLogError`, in one line. A bad *optional* cell (duration, user id, value) never costs the
row: the usage row still says the account was active, so it is kept without that field and the cell is
counted under ``dropped``.
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import math
import os
import re
import tempfile
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Mapping

import orjson

from pipeline.core.contract import DAY_MS, MAX_VALUE, SCHEMA_VERSION, InvalidEvent, Limits, format_ts
from training.data.progress import Report, reporting
from training.data.readers import LogFormatError, iter_rows, require_columns, table_columns, time_to_ms

#: Interaction types the feature code has channels for; anything else is counted as "other events".
KNOWN_TYPES = ("login", "feature_use", "page_view", "help_view", "purchase")
#: Candidate account-id columns of a churn table when neither ``churn_id_col`` nor ``id_col`` is in it.
CHURN_ID_CANDIDATES = ("account", "account_id", "customer_id", "customer", "id")
#: Subscriptions closer than this are one continuous subscription (date-only tables end on the 31st
#: and restart on the 1st).
RENEWAL_GRACE_MS = DAY_MS
MAX_EXAMPLES = 3
#: The contract's bounds on an interaction's ``user_id`` (checked here so a bad cell costs only the field).
MAX_USER_ID_LEN = 256
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
#: How many of the log's own types a bad-target error lists (a log may have hundreds).
MAX_LISTED_TYPES = 10
#: ``ConvertStats.churn_table`` when churn is inactivity rather than a table.
INACTIVITY = "inactivity"


class ForeignLogError(LogFormatError):
    """A usage or churn table cannot be converted as asked: one line naming the file and column."""


# ---- mapping ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ForeignMapping:
    """How a team's tables map onto churnwatch events. Column names are the team's own."""

    id_col: str = "account_id"
    time_col: str = "ts"
    type_col: str = "event"
    #: Usage event type -> churnwatch interaction type (``{"signin": "login"}``); case-insensitive.
    type_map: Mapping[str, str] = field(default_factory=dict)
    #: Optional usage columns copied into the interaction (``feature``, ``duration_s``).
    feature_col: str | None = None
    duration_col: str | None = None
    #: Optional usage column naming who in the account did it (``user_id``: distinct-user features).
    user_col: str | None = None
    #: Optional numeric usage column with what the event was worth (``value``, e.g. an order amount).
    value_col: str | None = None
    #: strptime format of the usage times (default: recognised automatically).
    time_format: str | None = None
    #: Account column of the churn table (default: ``id_col`` if present, else account/account_id/…).
    churn_id_col: str | None = None
    #: A churn-date table has this column; otherwise a subscriptions table has ``start_col``/``end_col``.
    churn_date_col: str = "churn_date"
    start_col: str = "start"
    end_col: str = "end"
    churn_time_format: str | None = None
    #: Optional account attributes, looked up in the churn table first, then in the usage log.
    tier_col: str | None = None
    plan_col: str | None = None
    mrr_col: str | None = None
    default_tier: str = "standard"
    #: "Now" of the data: later usage rows are dropped and later subscription ends are not churns yet
    #: (default: the newest usage time). ISO-8601 or epoch.
    as_of: str | int | None = None
    #: Instead of a churn table: N days without usage is a churn (see the module docstring).
    inactive_days: int | None = None


def parse_type_map(spec: str | Iterable[str] | None) -> dict[str, str]:
    """``"signin=login,view=page_view"`` (or several such strings, e.g. a repeated CLI flag) -> dict."""
    if spec is None:
        return {}
    parts: list[str] = []
    for chunk in ([spec] if isinstance(spec, str) else spec):
        parts += [p for p in chunk.split(",") if p.strip()]
    out: dict[str, str] = {}
    for part in parts:
        src, sep, dst = part.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise ForeignLogError(f"type map entry {part.strip()!r} is not FROM=TO (e.g. signin=login)")
        out[src.strip()] = dst.strip()
    return out


def mapping_from_args(args: Any) -> ForeignMapping:
    """Build a mapping from CLI arguments (attributes named like the fields; absent ones keep defaults)."""
    values: dict[str, Any] = {}
    for name in ForeignMapping.__dataclass_fields__:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    values["type_map"] = parse_type_map(values.get("type_map"))
    return ForeignMapping(**values)


# ---- times --------------------------------------------------------------------------------------
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
    """Reads one column's times to epoch ms (see the module docstring for the formats)."""

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


def _time_reader(path: Path, columns: list[str], fmt: str | None, flag: str) -> TimeReader:
    if fmt:
        return TimeReader(fmt)
    values = (row.get(c) for row in iter_rows(path, Limits(max_bytes=1 << 30), columns)
              if isinstance(row, dict) for c in columns)
    order = day_order(values)
    if order == _UNDECIDED:
        raise ForeignLogError(f"{path}: column {columns[0]!r} has dates like 03/04/2026 whose day/month order "
                              f"cannot be told from the data; pass {flag} (e.g. %m/%d/%Y or %d/%m/%Y)")
    return TimeReader(None, order if isinstance(order, bool) else None)


# ---- stats --------------------------------------------------------------------------------------
@dataclass
class ConvertStats:
    """What a conversion read, wrote and left out, and what looked suspicious."""

    usage_path: Path
    #: None when churn is inactivity (``ForeignMapping.inactive_days``).
    churn_path: Path | None
    out_path: Path
    churn_table: str = ""
    usage_rows: int = 0
    churn_rows: int = 0
    interactions: int = 0
    accounts: int = 0
    profiles: int = 0
    churned: int = 0
    renewed: int = 0
    usage_invalid: Counter = field(default_factory=Counter)
    churn_invalid: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    dropped: Counter = field(default_factory=Counter)
    types: Counter = field(default_factory=Counter)
    unmapped_types: Counter = field(default_factory=Counter)
    #: Usage types as the log spells them, before the type map (what a map entry can refer to).
    source_types: Counter = field(default_factory=Counter)
    #: Accounts whose latest outcome is a churn, and how many of them still show usage a day after it.
    churned_accounts: int = 0
    usage_after_churn: int = 0
    time_formats: dict[str, str] = field(default_factory=dict)
    first_ms: int | None = None
    last_ms: int | None = None
    as_of_ms: int | None = None
    #: Inactivity churn: N, and where the written log ends (as-of - N days; later rows only decide churns).
    inactive_days: int | None = None
    labelled_until_ms: int | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: The log was written to a temporary file (by :func:`train_foreign`) and is gone after training.
    temporary: bool = False

    def note(self, table: str, where: str, exc: InvalidEvent) -> None:
        (self.usage_invalid if table == "usage" else self.churn_invalid)[exc.reason] += 1
        examples = self.examples.setdefault(f"{table}:{exc.reason}", [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(f"{where}: {exc.detail}")

    def drop_cell(self, reason: str, where: str, detail: str) -> None:
        """A bad optional cell: counted with the rows left out (and an example kept), so a column full of
        junk shows in the summary, while the row itself is still written."""
        self.dropped[reason] += 1
        examples = self.examples.setdefault(f"usage:{reason}", [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(f"{where}: {detail}")

    def to_json(self) -> dict[str, Any]:
        return {
            "usage": str(self.usage_path), "churn": str(self.churn_path) if self.churn_path else None,
            "out": str(self.out_path),
            "churn_table": self.churn_table, "usage_rows": self.usage_rows, "churn_rows": self.churn_rows,
            "interactions": self.interactions, "accounts": self.accounts, "profiles": self.profiles,
            "churned": self.churned, "renewed": self.renewed,
            "usage_invalid": dict(sorted(self.usage_invalid.items())),
            "churn_invalid": dict(sorted(self.churn_invalid.items())),
            "examples": self.examples, "dropped": dict(sorted(self.dropped.items())),
            "types": dict(self.types.most_common()), "unmapped_types": dict(self.unmapped_types.most_common(20)),
            "churned_accounts": self.churned_accounts, "usage_after_churn": self.usage_after_churn,
            "time_formats": self.time_formats,
            "first": format_ts(self.first_ms) if self.first_ms is not None else None,
            "last": format_ts(self.last_ms) if self.last_ms is not None else None,
            "as_of": format_ts(self.as_of_ms) if self.as_of_ms is not None else None,
            "inactive_days": self.inactive_days,
            "labelled_until": format_ts(self.labelled_until_ms) if self.labelled_until_ms is not None else None,
            "warnings": self.warnings, "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        """A few lines for the CLI: what was made, what was left out, what to check."""
        kind = "churn-date" if self.churn_table == "churn_dates" else "subscription"
        source = (f", churn = {self.inactive_days} days without usage," if self.churn_table == INACTIVITY
                  else f" and {self.churn_rows:,} {kind} rows")
        lines = [f"converted {self.usage_rows:,} usage rows ({self.accounts:,} accounts){source} "
                 f"into {'a temporary event log' if self.temporary else self.out_path}: "
                 f"{self.interactions:,} interactions, "
                 f"{self.profiles:,} profiles, {self.churned:,} churned, {self.renewed:,} renewed"]
        if self.first_ms is not None and self.last_ms is not None:
            lines[0] += f"; usage {format_ts(self.first_ms)[:10]} .. {format_ts(self.last_ms)[:10]}"
        if self.labelled_until_ms is not None:
            lines[0] += (f"; log written up to {format_ts(self.labelled_until_ms)[:10]} (the last "
                         f"{self.inactive_days} days only decide who churned)")
        bad = [f"{t} {k}={v}" for t, c in (("usage", self.usage_invalid), ("churn", self.churn_invalid))
               for k, v in sorted(c.items())] + [f"{k}={v}" for k, v in sorted(self.dropped.items())]
        if bad:
            lines.append("left out: " + ", ".join(bad))
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


# ---- helpers ------------------------------------------------------------------------------------
def _event_id(kind: str, key: str) -> str:
    """``f<kind>-<hash>``: short, stable for the same input, and never colliding with native ids."""
    return f"f{kind}-{hashlib.blake2b(key.encode(), digest_size=10).hexdigest()}"


def _ident(value: Any, column: str) -> str:
    """An account id as the contract's string: numeric ids (Parquet ints, pandas floats) as digits."""
    if value is None:
        raise InvalidEvent("missing_field", f"{column} is empty")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if not text:
        raise InvalidEvent("missing_field", f"{column} is empty")
    return text


def _read_time(reader: TimeReader, value: Any, column: str) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidEvent("missing_field", f"{column} is empty")
    try:
        return reader(value)
    except (ValueError, OverflowError, OSError) as exc:
        raise InvalidEvent("bad_timestamp", f"{column}: {exc}") from None


def _optional_time(reader: TimeReader, value: Any, column: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _read_time(reader, value, column)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    try:
        out = float(str(value).strip().replace(",", "")) if value is not None else None
    except ValueError:
        return None
    return out if out is not None and math.isfinite(out) else None


def _user_id(value: Any) -> tuple[str | None, str | None]:
    """(user id, None), (None, None) for an empty cell, or (None, reason) for one the contract would
    refuse — so the caller can keep the row and drop only the field."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None, f"a {type(value).__name__}, not an id"
    if isinstance(value, float):
        if not value.is_integer():
            return None, f"{value!r} is not an id"
        value = int(value)  # pandas reads integer ids of a column with gaps as floats
    text = str(value).strip()
    if not text:
        return None, None
    if len(text) > MAX_USER_ID_LEN:
        return None, f"{len(text)} characters (at most {MAX_USER_ID_LEN})"
    if _CONTROL.search(text):
        return None, "contains control characters"
    return text, None


def _value(value: Any) -> tuple[float | None, str | None]:
    """(number, None), or (None, ``value_not_a_number`` | ``value_out_of_range``)."""
    try:
        number = _number(value)
    except OverflowError:  # an integer too large for a float is still a number, just far out of range
        return None, "value_out_of_range"
    if number is None:
        return None, "value_not_a_number"
    if abs(number) > MAX_VALUE:
        return None, "value_out_of_range"
    return number, None


class _TypeMapper:
    def __init__(self, type_map: Mapping[str, str]) -> None:
        self.exact = dict(type_map)
        self.folded = {k.lower(): v for k, v in type_map.items()}

    def __call__(self, raw: str) -> tuple[str, bool]:
        """(churnwatch type, mapped?)"""
        if raw in self.exact:
            return self.exact[raw], True
        hit = self.folded.get(raw.lower())
        return (hit, True) if hit is not None else (raw, False)


def _line(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record) + b"\n"


def _open_out(path: Path) -> tuple[IO[bytes], Path]:
    name = path.name.lower()
    if not name.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")):
        raise ForeignLogError(f"{path}: the converted log is JSONL; name it *.jsonl or *.jsonl.gz")
    if not path.parent.is_dir():
        raise ForeignLogError(f"{path}: directory {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    fh = gzip.open(tmp, "wb") if name.endswith(".gz") else open(tmp, "wb")
    return fh, Path(tmp)  # type: ignore[return-value]


def _churn_layout(path: Path, columns: list[str], m: ForeignMapping) -> tuple[str, str]:
    """("churn_dates" | "subscriptions", account column) of the churn table."""
    if m.churn_id_col:
        require_columns(path, columns, [m.churn_id_col], "--churn-id-col")
        id_col = m.churn_id_col
    else:
        found = [c for c in (m.id_col, *CHURN_ID_CANDIDATES) if c in columns]
        if not found:
            raise ForeignLogError(f"{path}: no account column (looked for {m.id_col!r} and "
                                  f"{', '.join(CHURN_ID_CANDIDATES)}); name it with --churn-id-col")
        id_col = found[0]
    if m.churn_date_col in columns:
        return "churn_dates", id_col
    if m.end_col in columns:
        return "subscriptions", id_col
    raise ForeignLogError(f"{path}: neither a churn-date column {m.churn_date_col!r} nor a subscription end column "
                          f"{m.end_col!r}; the file has: {', '.join(columns[:12])}")


def _merge(intervals: list[tuple[int | None, int | None]]) -> list[list[int | None]]:
    """Subscriptions of one account -> continuous spells [start, end|None]; a gap longer than
    :data:`RENEWAL_GRACE_MS` separates two spells (a churn and a win-back)."""
    spells: list[list[int | None]] = []
    for start, end in sorted(intervals, key=lambda iv: (iv[0] if iv[0] is not None else -(1 << 62))):
        if spells:
            last = spells[-1]
            if last[1] is None or start is None or start <= last[1] + RENEWAL_GRACE_MS:
                last[1] = None if last[1] is None or end is None else max(last[1], end)
                continue
        spells.append([start, end])
    return spells


# ---- conversion ---------------------------------------------------------------------------------
def convert(usage_path: Path | str, churn_path: Path | str | None, out_path: Path | str,
            mapping: ForeignMapping = ForeignMapping(), *, limits: Limits = Limits(),
            progress: Report | None = None) -> ConvertStats:
    """Write a churnwatch JSONL event log from a usage log and a churn-date or subscriptions table, or
    from the usage log alone with ``mapping.inactive_days`` (``churn_path`` None).

    Every whole-file problem surfaces as :class:`ForeignLogError` (also those found by the shared table
    readers), so a caller has one exception type to catch for "fix your input". ``progress`` is told
    how far each read of the two files has got (:mod:`training.data.progress`)."""
    n = mapping.inactive_days
    if (churn_path is None) == (n is None):
        raise ForeignLogError("give either a churn table (--churn FILE) or --inactive-days N, not "
                              + ("both" if n is not None else "neither"))
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ForeignLogError(f"inactive days must be a whole number of days >= 1, not {n!r}")
    try:
        with reporting(progress):
            return _convert(Path(usage_path), Path(churn_path) if churn_path is not None else None, Path(out_path),
                            mapping, limits)
    except ForeignLogError:
        raise
    except LogFormatError as exc:
        raise ForeignLogError(str(exc)) from None


def _convert(usage_path: Path, churn_path: Path | None, out_path: Path, mapping: ForeignMapping,
             limits: Limits) -> ConvertStats:
    m = mapping
    started = time.perf_counter()
    stats = ConvertStats(usage_path, churn_path, out_path)
    for p in (usage_path, churn_path):
        if p is not None and not p.is_file():
            raise ForeignLogError(f"{p}: file not found")

    # Columns first: a wrong name fails in a second, not after reading a large file.
    ucols = table_columns(usage_path)
    needed = [m.id_col, m.time_col, m.type_col] + [c for c in _optional_usage_cols(m) if c]
    require_columns(usage_path, ucols, needed, "usage log: set --id-col, --time-col, --type-col")
    ccols = table_columns(churn_path) if churn_path is not None else []
    if churn_path is not None:
        stats.churn_table, cid_col = _churn_layout(churn_path, ccols, m)
    else:
        stats.churn_table, cid_col, stats.inactive_days = INACTIVITY, "", m.inactive_days
    attr_where: dict[str, tuple[str, str]] = {}  # field -> (table, column)
    for fld, col in (("tier", m.tier_col), ("plan", m.plan_col), ("mrr", m.mrr_col)):
        if col:
            if col in ccols:
                attr_where[fld] = ("churn", col)
            elif col in ucols:
                attr_where[fld] = ("usage", col)
            else:
                raise ForeignLogError(f"{churn_path or usage_path}: no column {col!r} for {fld}"
                                      + (f" (nor in {usage_path})" if churn_path is not None else ""))

    u_time = _time_reader(usage_path, [m.time_col], m.time_format, "--time-format")
    c_time_cols = [] if churn_path is None else [m.churn_date_col] if stats.churn_table == "churn_dates" else \
        [c for c in (m.end_col, m.start_col) if c in ccols]
    c_time = _time_reader(churn_path, c_time_cols, m.churn_time_format, "--churn-time-format") \
        if churn_path is not None else TimeReader()
    stats.time_formats = {f"usage.{m.time_col}": u_time.describe(),
                          **{f"churn.{c}": c_time.describe() for c in c_time_cols}}
    as_of = None
    if m.as_of is not None:
        try:
            as_of = TimeReader()(m.as_of)
        except ValueError as exc:
            raise ForeignLogError(f"as-of time {m.as_of!r}: {exc}") from None

    fh, tmp = _open_out(out_path)
    try:
        with fh:
            if churn_path is None:
                _convert_inactivity(usage_path, m, u_time, as_of, attr_where, fh, stats, limits)
            else:
                seen = _write_usage(usage_path, m, u_time, as_of, attr_where, fh, stats, limits)
                start_ms = _usage_window(usage_path, m, as_of, seen, stats)
                _write_accounts(churn_path, cid_col, m, c_time, attr_where, seen, start_ms, fh, stats, limits)
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    _warn(stats)
    stats.seconds = time.perf_counter() - started
    return stats


def _usage_window(path: Path, m: ForeignMapping, as_of: int | None, seen: dict[str, list[Any]],
                  stats: ConvertStats) -> int:
    """Check what the usage rows gave and set the window in ``stats``; the window's first ms."""
    if not seen:
        invalid, dropped = dict(stats.usage_invalid) or "none", dict(stats.dropped) or "none"
        raise ForeignLogError(f"{path}: no usable usage rows (invalid: {invalid}; dropped: {dropped})")
    _check_type_map(path, m, stats)  # before the churn table: the output is still a temp file
    start_ms = min(v[0] for v in seen.values())
    stats.first_ms, stats.last_ms = start_ms, max(v[1] for v in seen.values())
    stats.as_of_ms = as_of if as_of is not None else stats.last_ms
    return start_ms


def _write_usage(path: Path, m: ForeignMapping, reader: TimeReader, as_of: int | None,
                 attr_where: dict[str, tuple[str, str]], fh: IO[bytes], stats: ConvertStats,
                 limits: Limits, times: dict[str, array] | None = None,
                 written_ts: array | None = None) -> dict[str, list[Any]]:
    """Usage rows -> interactions, streamed. Returns per account [first_ms, last_ms, attrs, attr_ms].
    ``times`` collects every account's usage times and ``written_ts`` the time of each line in write
    order (inactivity churn needs the gaps, and the cut at as-of - N without re-reading the lines)."""
    mapper = _TypeMapper(m.type_map)
    usage_attrs = {fld: col for fld, (table, col) in attr_where.items() if table == "usage"}
    columns = {m.id_col, m.time_col, m.type_col, *(c for c in _optional_usage_cols(m) if c), *usage_attrs.values()}
    seen: dict[str, list[Any]] = {}
    chunk: list[bytes] = []
    for number, row in enumerate(iter_rows(path, limits, columns), start=1):
        stats.usage_rows += 1
        try:
            if isinstance(row, InvalidEvent):
                raise row
            account = _ident(row.get(m.id_col), m.id_col)
            ts = _read_time(reader, row.get(m.time_col), m.time_col)
            if ts < limits.min_ts_ms:  # the contract refuses it: a log of such rows would be refused whole
                raise InvalidEvent("bad_timestamp", f"{m.time_col}: {format_ts(ts)[:10]} is before "
                                                    f"{format_ts(limits.min_ts_ms)[:10]}, the contract's earliest time")
            raw_type = str(row.get(m.type_col) if row.get(m.type_col) is not None else "").strip()
            if not raw_type:
                raise InvalidEvent("missing_field", f"{m.type_col} is empty")
        except InvalidEvent as exc:
            stats.note("usage", f"{path.name} row {number}", exc)
            continue
        stats.source_types[raw_type] += 1  # before the as-of cut: a map entry for later rows is not a typo
        if as_of is not None and ts > as_of:
            stats.dropped["usage_after_as_of"] += 1
            continue
        typ, mapped = mapper(raw_type)
        if not mapped and typ not in KNOWN_TYPES:
            stats.unmapped_types[typ] += 1
        stats.types[typ] += 1
        event_id = _event_id("u", f"{account}\x1f{ts}\x1f{raw_type}\x1f{number}")
        record: dict[str, Any] = {"source": "interactions", "event_id": event_id, "customer_id": account,
                                  "ts": format_ts(ts), "type": typ, "schema_version": SCHEMA_VERSION}
        if m.feature_col and row.get(m.feature_col) is not None:
            record["feature"] = str(row[m.feature_col]).strip()
        if m.duration_col and row.get(m.duration_col) is not None:
            duration = _number(row[m.duration_col])
            if duration is not None and duration >= 0:
                record["duration_s"] = duration
            else:
                stats.dropped["bad_duration_value"] += 1  # the event is kept without it
        if m.user_col and row.get(m.user_col) is not None:
            user, problem = _user_id(row[m.user_col])
            if user is not None:
                record["user_id"] = user
            elif problem is not None:
                stats.drop_cell("bad_user_id", f"{path.name} row {number}", f"{m.user_col}: {problem}")
        if m.value_col and row.get(m.value_col) is not None:
            value, reason = _value(row[m.value_col])
            if value is not None:
                record["value"] = value
            elif reason is not None:
                stats.drop_cell(reason, f"{path.name} row {number}",
                                f"{m.value_col}: {str(row[m.value_col])[:40]!r}")
        chunk.append(_line(record))
        if len(chunk) >= 8192:
            fh.write(b"".join(chunk))
            chunk.clear()
        stats.interactions += 1
        if times is not None and written_ts is not None:
            times.setdefault(account, array("q")).append(ts)
            written_ts.append(ts)
        entry = seen.get(account)
        if entry is None:
            entry = seen[account] = [ts, ts, {}, {}]
        entry[0], entry[1] = min(entry[0], ts), max(entry[1], ts)
        for fld, col in usage_attrs.items():  # the value on the newest row wins
            if row.get(col) is not None and ts >= entry[3].get(fld, -(1 << 62)):
                entry[2][fld], entry[3][fld] = row[col], ts
    fh.write(b"".join(chunk))
    return seen


def _optional_usage_cols(m: ForeignMapping) -> tuple[str | None, ...]:
    return m.feature_col, m.duration_col, m.user_col, m.value_col


def _check_type_map(path: Path, m: ForeignMapping, stats: ConvertStats) -> None:
    """Refuse a target that is neither built in nor one of the log's own types (a typo like ``logn``
    would otherwise become a type of its own and the login features would stay empty without a word),
    and warn about sources the log never has (a misspelt source maps nothing, equally silently)."""
    own = set(stats.source_types)
    bad = [(src, dst) for src, dst in m.type_map.items() if dst not in KNOWN_TYPES and dst not in own]
    if bad:
        listed = [t for t, _ in stats.source_types.most_common() if t not in KNOWN_TYPES]
        shown = ", ".join(repr(t[:40]) for t in listed[:MAX_LISTED_TYPES]) + (
            f" and {len(listed) - MAX_LISTED_TYPES} more" if len(listed) > MAX_LISTED_TYPES else "")
        entries = []
        for src, dst in bad:
            close = difflib.get_close_matches(dst, [*KNOWN_TYPES, *listed], n=1)
            entries.append(f"{src[:40]!r}={dst[:40]!r}" + (f" (did you mean {close[0][:40]!r}?)" if close else ""))
        raise ForeignLogError(f"{path}: type map target neither built in nor a type in the log's {m.type_col!r} "
                              f"column: {', '.join(entries)}; valid targets: {', '.join(KNOWN_TYPES)}"
                              + (f", or the log's own types: {shown}" if shown else ""))
    folded = {t.lower() for t in own}
    unused = [src for src in m.type_map if src not in own and src.lower() not in folded]
    if unused:
        many = len(unused) > 1
        stats.warnings.append(f"type map source{'s' if many else ''} {', '.join(repr(u[:40]) for u in unused)} "
                              f"never occur{'' if many else 's'} in the usage log's {m.type_col!r} column "
                              f"(matched ignoring case), so {'they map' if many else 'it maps'} nothing; "
                              f"check the spelling")


def _write_accounts(path: Path, id_col: str, m: ForeignMapping, reader: TimeReader,
                    attr_where: dict[str, tuple[str, str]], seen: dict[str, list[Any]], start_ms: int,
                    fh: IO[bytes], stats: ConvertStats, limits: Limits) -> None:
    """Churn table -> outcomes; every account in the window -> one profile."""
    as_of = stats.as_of_ms
    assert as_of is not None
    churn_attrs = {fld: col for fld, (table, col) in attr_where.items() if table == "churn"}
    subs = stats.churn_table == "subscriptions"
    time_cols = (m.start_col, m.end_col) if subs else (m.churn_date_col,)
    columns = {id_col, *time_cols, *churn_attrs.values()}
    dates: dict[str, set[int]] = {}
    intervals: dict[str, list[tuple[int | None, int | None]]] = {}
    attrs: dict[str, dict[str, Any]] = {}
    attr_rank: dict[str, int] = {}
    for number, row in enumerate(iter_rows(path, limits, columns), start=1):
        stats.churn_rows += 1
        try:
            if isinstance(row, InvalidEvent):
                raise row
            account = _ident(row.get(id_col), id_col)
            if subs:  # an empty start is unknown (first usage stands in); an empty end is an open subscription
                start = _optional_time(reader, row.get(m.start_col), m.start_col)
                end = _optional_time(reader, row.get(m.end_col), m.end_col)
                if start is not None and end is not None and end < start:
                    raise InvalidEvent("bad_value", f"{m.end_col} {format_ts(end)[:10]} is before "
                                                    f"{m.start_col} {format_ts(start)[:10]}")
                intervals.setdefault(account, []).append((start, end))
                rank = start if start is not None else -(1 << 62)
            else:
                dates.setdefault(account, set()).add(_read_time(reader, row.get(m.churn_date_col), m.churn_date_col))
                rank = number
        except InvalidEvent as exc:
            stats.note("churn", f"{path.name} row {number}", exc)
            continue
        if churn_attrs and rank >= attr_rank.get(account, -(1 << 62)):  # newest subscription / last row wins
            attr_rank[account] = rank
            attrs[account] = {fld: row[col] for fld, col in churn_attrs.items() if row.get(col) is not None}

    outcomes: list[tuple[str, int, str]] = []
    signup: dict[str, int] = {acc: v[0] for acc, v in seen.items()}
    included = set(seen)

    def outcome(account: str, ts: int, typ: str) -> None:
        if ts < start_ms:
            stats.dropped[f"{typ}_before_usage_window"] += 1
        elif ts > as_of:
            stats.dropped[f"{typ}_after_as_of"] += 1
        else:
            outcomes.append((account, ts, typ))

    if not subs:
        for account, when in dates.items():
            if account not in seen:
                stats.dropped["churn_of_account_without_usage"] += len(when)
                continue
            for ts in sorted(when):
                outcome(account, ts, "churned")
    else:
        for account, ivs in intervals.items():
            spells = _merge(ivs)
            first_start, last_end = spells[0][0], spells[-1][1]
            if account not in seen:
                # A paying account with no usage at all is a real (and telling) customer — if it was one
                # during the window.
                if (first_start is None or first_start > as_of) or (last_end is not None and last_end < start_ms):
                    stats.dropped["subscription_outside_usage_window"] += 1
                    continue
                included.add(account)
            if first_start is not None:
                signup[account] = min(first_start, signup.get(account, first_start))
            for i, (start, end) in enumerate(spells):
                if i > 0 and start is not None:
                    outcome(account, start, "renewed")
                if end is not None and end <= as_of:
                    outcome(account, end, "churned")
        no_sub = len(set(seen) - set(intervals))
        if no_sub:
            stats.warnings.append(f"{no_sub} accounts in the usage log have no subscription row; they are "
                                  f"treated as active customers since they were first seen")
    _write_outcomes(included, signup, attrs, outcomes, f"from {path.name}", m, seen, start_ms, as_of, fh, stats)


def _write_outcomes(included: Iterable[str], signup: Mapping[str, int], attrs: Mapping[str, dict[str, Any]],
                    outcomes: list[tuple[str, int, str]], note: str, m: ForeignMapping,
                    seen: Mapping[str, list[Any]], start_ms: int, as_of: int, fh: IO[bytes],
                    stats: ConvertStats) -> None:
    """One profile per included account, then the outcomes in time order, and the churn bookkeeping
    the warnings read."""
    included = sorted(included)
    chunk: list[bytes] = []
    for account in included:
        record = _profile(account, signup[account], start_ms, as_of, m, seen.get(account), attrs.get(account), stats)
        chunk.append(_line(record))
    for account, ts, typ in sorted(outcomes, key=lambda o: (o[1], o[0])):
        event_id = _event_id("c" if typ == "churned" else "r", f"{account}\x1f{ts}")
        chunk.append(_line({"source": "outcomes", "event_id": event_id, "customer_id": account,
                            "ts": format_ts(ts), "type": typ,
                            "schema_version": SCHEMA_VERSION, "note": note}))
        if typ == "churned":
            stats.churned += 1
        else:
            stats.renewed += 1
    fh.write(b"".join(chunk))
    stats.accounts = len(included)
    stats.profiles = len(included)
    last_churn: dict[str, int] = {}
    for account, ts, typ in sorted(outcomes, key=lambda o: o[1]):
        if typ == "churned":
            last_churn[account] = ts
        else:
            last_churn.pop(account, None)
    stats.churned_accounts = len(last_churn)
    stats.usage_after_churn = sum(1 for acc, ts in last_churn.items()
                                  if acc in seen and seen[acc][1] > ts + DAY_MS)


def _convert_inactivity(path: Path, m: ForeignMapping, reader: TimeReader, as_of: int | None,
                        attr_where: dict[str, tuple[str, str]], fh: IO[bytes], stats: ConvertStats,
                        limits: Limits) -> None:
    """Usage log alone -> interactions up to as-of - N days, profiles, and churns/win-backs from the
    gaps (the rules and their reasons are in the module docstring).

    The interactions go to a spool file first: where the log has to end (as-of - N) is known only once
    every row is read, as-of being the newest row by default."""
    n_ms = int(m.inactive_days or 0) * DAY_MS
    times: dict[str, array] = {}
    written_ts = array("q")
    with tempfile.TemporaryFile(prefix="churnwatch-usage-") as spool:
        seen = _write_usage(path, m, reader, as_of, attr_where, spool, stats, limits, times, written_ts)
        start_ms = _usage_window(path, m, as_of, seen, stats)
        end = stats.as_of_ms
        assert end is not None
        cut = end - n_ms
        if cut < start_ms:
            days = (end - start_ms) / DAY_MS
            raise ForeignLogError(f"{path}: the usage log spans {days:.0f} days, so --inactive-days "
                                  f"{m.inactive_days} leaves no days whose churn can be decided; use fewer days")
        stats.labelled_until_ms = cut
        spool.seek(0)
        chunk: list[bytes] = []
        late = 0
        for line, ts in zip(spool, written_ts):
            if ts > cut:  # the rows of the last N days only decide whether earlier rows were the last
                late += 1
                continue
            chunk.append(line)
            if len(chunk) >= 8192:
                fh.write(b"".join(chunk))
                chunk.clear()
        fh.write(b"".join(chunk))
    if late:
        stats.dropped["usage_in_last_inactive_days"] += late
        stats.interactions -= late
    outcomes: list[tuple[str, int, str]] = []
    included: list[str] = []
    for account, ts_list in times.items():
        ts = sorted(ts_list)
        if ts[0] > cut:
            stats.dropped["account_first_seen_in_last_inactive_days"] += 1
            continue
        included.append(account)
        for last, nxt in zip(ts, ts[1:] + [None]):
            if last > cut:
                break
            if nxt is None:
                if end - last >= n_ms:
                    outcomes.append((account, last + DAY_MS, "churned"))
            elif nxt - last >= n_ms:
                outcomes.append((account, last + DAY_MS, "churned"))
                if nxt <= cut:
                    outcomes.append((account, nxt, "renewed"))
                else:
                    stats.dropped["renewed_in_last_inactive_days"] += 1
    signup = {acc: seen[acc][0] for acc in included}
    _write_outcomes(included, signup, {}, outcomes, f"{m.inactive_days} days without usage", m, seen, start_ms,
                    cut, fh, stats)
    # A return is a win-back here, never usage after a churn (one after the cut only looks like it).
    stats.churned_accounts = stats.usage_after_churn = 0


def _profile(account: str, signup_ms: int, start_ms: int, as_of: int, m: ForeignMapping,
             usage: list[Any] | None, churn_attrs: dict[str, Any] | None, stats: ConvertStats) -> dict[str, Any]:
    """The account's profile, stamped no earlier than the usage window (see the module docstring)."""
    values: dict[str, Any] = dict(usage[2]) if usage else {}
    values.update(churn_attrs or {})
    record: dict[str, Any] = {"source": "customers", "event_id": _event_id("p", account), "customer_id": account,
                              "ts": format_ts(min(max(signup_ms, start_ms), as_of)), "type": "profile",
                              "schema_version": SCHEMA_VERSION, "signup_ts": format_ts(signup_ms),
                              "tier": str(values.get("tier", "")).strip().lower() or m.default_tier}
    if values.get("plan") is not None and str(values["plan"]).strip():
        record["plan"] = str(values["plan"]).strip().lower()
    if values.get("mrr") is not None:
        mrr = _number(values["mrr"])
        if mrr is not None and mrr >= 0:
            record["mrr"] = mrr
        else:
            stats.dropped["bad_mrr_value"] += 1
    return record


def _warn(stats: ConvertStats) -> None:
    """Things that convert fine but would make a poor or empty model: said plainly, once."""
    if stats.churned == 0 and stats.churn_table == INACTIVITY:
        stats.warnings.append(f"no account goes {stats.inactive_days} days without usage, so there is nothing to "
                              f"learn from; use fewer --inactive-days")
    elif stats.churned == 0:
        stats.warnings.append("no churn falls inside the usage window, so there is nothing to learn from; check the "
                              "churn table's account ids and dates against the usage log")
    if "login" not in stats.types:
        top = ", ".join(t for t, _ in stats.types.most_common(5))
        stats.warnings.append(f"no usage type maps to 'login' (most common: {top}); login features stay empty — "
                              f"map your sign-in event, e.g. --type-map signin=login")
    if stats.usage_after_churn > max(3, 0.2 * stats.churned_accounts):
        stats.warnings.append(f"{stats.usage_after_churn} churned accounts keep using the product more than a day "
                              f"after their churn date; check the date order (--churn-time-format) or whether "
                              f"the dates are contract ends rather than churns")


# ---- one-step training --------------------------------------------------------------------------
@dataclass
class ForeignTrainResult:
    """The conversion and the training run it fed."""

    convert: ConvertStats
    train: Any  # training.fit.train.TrainResult (imported lazily: LightGBM is heavy)

    def summary(self) -> str:
        return self.convert.summary() + "\n" + self.train.summary()


def _counting_conversion(stats: ConvertStats, result: Any) -> Any:
    """The printed total is the user's wait: conversion included (on a big usage log it is minutes)."""
    result.timings["convert_s"] = round(stats.seconds, 3)
    result.timings["total_s"] = round(result.timings.get("total_s", 0.0) + stats.seconds, 3)
    return result


def train_foreign(usage: Path | str, churn: Path | str | None, registry: Any, mapping: ForeignMapping = ForeignMapping(),
                  *, log_out: Path | str | None = None, on_converted: Callable[[ConvertStats], None] | None = None,
                  convert_progress: Report | None = None, **train_kwargs: Any) -> ForeignTrainResult:
    """Convert ``usage`` + ``churn`` and train on the result (:func:`training.fit.train.train_from_log`);
    ``churn`` is None when ``mapping.inactive_days`` defines churn; training then runs with a label
    delay of ``inactive_days`` (:mod:`training.rows.labels`).

    ``registry`` is a :class:`pipeline.model.registry.Registry` or its directory. The converted log goes to a
    temporary file unless ``log_out`` names one to keep — worth keeping: the registry's metadata records
    the training log's path and checksum, which only helps an audit if the file still exists.
    ``on_converted`` gets the conversion's stats before training starts: when training then fails (too
    few churns, say), the rows left out and the warnings are usually the explanation, and a raised error
    would otherwise take them with it. ``convert_progress`` is the conversion's progress callback
    (:func:`convert`); training draws its own bars (``train_kwargs['progress']``).
    """
    from pipeline.model.registry import Registry
    from training.fit.train import train_from_log

    reg = registry if isinstance(registry, Registry) else Registry(registry)
    if mapping.inactive_days:  # an inactivity churn is known only N days after its date
        train_kwargs["label_delay_days"] = int(mapping.inactive_days)
    if log_out is not None:
        stats = convert(usage, churn, log_out, mapping, progress=convert_progress)
        if on_converted is not None:
            on_converted(stats)
        return ForeignTrainResult(stats, _counting_conversion(stats, train_from_log(log_out, reg, **train_kwargs)))
    with tempfile.TemporaryDirectory(prefix="churnwatch-foreign-") as tmp:
        log = Path(tmp) / "converted.jsonl"
        stats = convert(usage, churn, log, mapping, progress=convert_progress)
        stats.temporary = True
        if on_converted is not None:
            on_converted(stats)
        return ForeignTrainResult(stats, _counting_conversion(stats, train_from_log(log, reg, **train_kwargs)))


__all__ = [
    "ConvertStats",
    "ForeignLogError",
    "ForeignMapping",
    "ForeignTrainResult",
    "TimeReader",
    "convert",
    "day_order",
    "mapping_from_args",
    "parse_type_map",
    "train_foreign",
]
