"""The usage log -> ``interactions`` events, streamed; the data window it spans, and the type map checked
against the types the log really has."""

from __future__ import annotations

import difflib
from array import array
from pathlib import Path
from typing import IO, Any

from pipeline.core.contract import SCHEMA_VERSION, InvalidEvent, Limits, format_ts
from training.data.foreign.cells import (TypeMapper, json_line, parse_number, parse_user_id, parse_value, read_account,
                                         read_time, stable_event_id)
from training.data.foreign.mapping import ForeignLogError, ForeignMapping
from training.data.foreign.stats import ConvertStats
from training.data.foreign.times import TimeReader
from training.data.readers import iter_rows

#: Interaction types the feature code has channels for; anything else is counted as "other events".
KNOWN_TYPES = ("login", "feature_use", "page_view", "help_view", "purchase")
#: How many of the log's own types a bad-target error lists (a log may have hundreds).
MAX_LISTED_TYPES = 10


def usage_window(path: Path, m: ForeignMapping, as_of: int | None, seen: dict[str, list[Any]],
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


def write_usage(path: Path, m: ForeignMapping, reader: TimeReader, as_of: int | None,
                 attr_where: dict[str, tuple[str, str]], fh: IO[bytes], stats: ConvertStats,
                 limits: Limits, times: dict[str, array] | None = None,
                 written_ts: array | None = None) -> dict[str, list[Any]]:
    """Usage rows -> interactions, streamed. Returns per account [first_ms, last_ms, attrs, attr_ms].
    ``times`` collects every account's usage times and ``written_ts`` the time of each line in write
    order (inactivity churn needs the gaps, and the cut at as-of - N without re-reading the lines)."""
    mapper = TypeMapper(m.type_map)
    usage_attrs = {fld: col for fld, (table, col) in attr_where.items() if table == "usage"}
    columns = {m.id_col, m.time_col, m.type_col, *(c for c in optional_usage_cols(m) if c), *usage_attrs.values()}
    seen: dict[str, list[Any]] = {}
    chunk: list[bytes] = []
    for number, row in enumerate(iter_rows(path, limits, columns), start=1):
        stats.usage_rows += 1
        try:
            if isinstance(row, InvalidEvent):
                raise row
            account = read_account(row.get(m.id_col), m.id_col)
            ts = read_time(reader, row.get(m.time_col), m.time_col)
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
        event_id = stable_event_id("u", f"{account}\x1f{ts}\x1f{raw_type}\x1f{number}")
        record: dict[str, Any] = {"source": "interactions", "event_id": event_id, "customer_id": account,
                                  "ts": format_ts(ts), "type": typ, "schema_version": SCHEMA_VERSION}
        if m.feature_col and row.get(m.feature_col) is not None:
            record["feature"] = str(row[m.feature_col]).strip()
        if m.duration_col and row.get(m.duration_col) is not None:
            duration = parse_number(row[m.duration_col])
            if duration is not None and duration >= 0:
                record["duration_s"] = duration
            else:
                stats.dropped["bad_duration_value"] += 1  # the event is kept without it
        if m.user_col and row.get(m.user_col) is not None:
            user, problem = parse_user_id(row[m.user_col])
            if user is not None:
                record["user_id"] = user
            elif problem is not None:
                stats.drop_cell("bad_user_id", f"{path.name} row {number}", f"{m.user_col}: {problem}")
        if m.value_col and row.get(m.value_col) is not None:
            value, reason = parse_value(row[m.value_col])
            if value is not None:
                record["value"] = value
            elif reason is not None:
                stats.drop_cell(reason, f"{path.name} row {number}",
                                f"{m.value_col}: {str(row[m.value_col])[:40]!r}")
        chunk.append(json_line(record))
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


def optional_usage_cols(m: ForeignMapping) -> tuple[str | None, ...]:
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

