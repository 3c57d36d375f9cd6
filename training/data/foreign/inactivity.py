"""Churn from the usage log alone: ``inactive_days=N`` days without usage is a churn.


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
  N (``DatasetConfig.label_delay_days``, set by :func:`training.runs.from_foreign.train_foreign`, recorded in the model's
  ``meta.json``; rules in :mod:`training.rows.labels`). An account is left out of the rows at T only when a
  churn dated on or before T - N has not been followed by a return by T; an account silent since before
  T whose churn is not known yet is a row, labelled 1 (churn dated in (T - N, T + horizon], not ended by
  a return at or before T), like the stream, which scores everyone it has not seen leave. The time
  split's purge gap is horizon + N, since a label at T needs the data up to T + horizon + N.
"""

from __future__ import annotations

import tempfile
from array import array
from pathlib import Path
from typing import IO

from pipeline.core.contract import DAY_MS, Limits
from training.data.foreign.mapping import ForeignLogError, ForeignMapping
from training.data.foreign.outcomes import write_outcomes
from training.data.foreign.stats import ConvertStats
from training.data.foreign.times import TimeReader
from training.data.foreign.usage import usage_window, write_usage


def convert_inactivity(path: Path, m: ForeignMapping, reader: TimeReader, as_of: int | None,
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
        seen = write_usage(path, m, reader, as_of, attr_where, spool, stats, limits, times, written_ts)
        start_ms = usage_window(path, m, as_of, seen, stats)
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
    write_outcomes(included, signup, {}, outcomes, f"{m.inactive_days} days without usage", m, seen, start_ms,
                    cut, fh, stats)
    # A return is a win-back here, never usage after a churn (one after the cut only looks like it).
    stats.churned_accounts = stats.usage_after_churn = 0

