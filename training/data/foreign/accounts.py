"""The churn table (churn dates or subscriptions) -> outcomes, and every account in the window -> a profile."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from pipeline.core.contract import DAY_MS, InvalidEvent, Limits, format_ts
from training.data.foreign.cells import optional_time, read_account, read_time
from training.data.foreign.mapping import ForeignLogError, ForeignMapping
from training.data.foreign.outcomes import write_outcomes
from training.data.foreign.stats import ConvertStats
from training.data.foreign.times import TimeReader
from training.data.readers import iter_rows, require_columns

#: Candidate account-id columns of a churn table when neither ``churn_id_col`` nor ``id_col`` is in it.
CHURN_ID_CANDIDATES = ("account", "account_id", "customer_id", "customer", "id")
#: Subscriptions closer than this are one continuous subscription (date-only tables end on the 31st
#: and restart on the 1st).
RENEWAL_GRACE_MS = DAY_MS


def churn_layout(path: Path, columns: list[str], m: ForeignMapping) -> tuple[str, str]:
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



def write_accounts(path: Path, id_col: str, m: ForeignMapping, reader: TimeReader,
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
            account = read_account(row.get(id_col), id_col)
            if subs:  # an empty start is unknown (first usage stands in); an empty end is an open subscription
                start = optional_time(reader, row.get(m.start_col), m.start_col)
                end = optional_time(reader, row.get(m.end_col), m.end_col)
                if start is not None and end is not None and end < start:
                    raise InvalidEvent("bad_value", f"{m.end_col} {format_ts(end)[:10]} is before "
                                                    f"{m.start_col} {format_ts(start)[:10]}")
                intervals.setdefault(account, []).append((start, end))
                rank = start if start is not None else -(1 << 62)
            else:
                dates.setdefault(account, set()).add(read_time(reader, row.get(m.churn_date_col), m.churn_date_col))
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
    write_outcomes(included, signup, attrs, outcomes, f"from {path.name}", m, seen, start_ms, as_of, fh, stats)

