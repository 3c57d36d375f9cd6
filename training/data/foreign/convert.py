"""The conversion: check the columns, pick the time readers, then write the usage, outcomes and profiles
into a temporary file that replaces the output only when everything went through."""

from __future__ import annotations

import gzip
import os
import tempfile
import time
from pathlib import Path
from typing import IO

from pipeline.core.contract import Limits
from training.data.foreign.accounts import churn_layout, write_accounts
from training.data.foreign.inactivity import convert_inactivity
from training.data.foreign.mapping import ForeignLogError, ForeignMapping
from training.data.foreign.stats import INACTIVITY, ConvertStats
from training.data.foreign.times import TimeReader, column_time_reader
from training.data.foreign.usage import optional_usage_cols, usage_window, write_usage
from training.data.progress import Report, reporting
from training.data.readers import LogFormatError, require_columns, table_columns


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
    needed = [m.id_col, m.time_col, m.type_col] + [c for c in optional_usage_cols(m) if c]
    require_columns(usage_path, ucols, needed, "usage log: set --id-col, --time-col, --type-col")
    ccols = table_columns(churn_path) if churn_path is not None else []
    if churn_path is not None:
        stats.churn_table, cid_col = churn_layout(churn_path, ccols, m)
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

    u_time = column_time_reader(usage_path, [m.time_col], m.time_format, "--time-format")
    c_time_cols = [] if churn_path is None else [m.churn_date_col] if stats.churn_table == "churn_dates" else \
        [c for c in (m.end_col, m.start_col) if c in ccols]
    c_time = column_time_reader(churn_path, c_time_cols, m.churn_time_format, "--churn-time-format") \
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
                convert_inactivity(usage_path, m, u_time, as_of, attr_where, fh, stats, limits)
            else:
                seen = write_usage(usage_path, m, u_time, as_of, attr_where, fh, stats, limits)
                start_ms = usage_window(usage_path, m, as_of, seen, stats)
                write_accounts(churn_path, cid_col, m, c_time, attr_where, seen, start_ms, fh, stats, limits)
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    _warn(stats)
    stats.seconds = time.perf_counter() - started
    return stats



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

