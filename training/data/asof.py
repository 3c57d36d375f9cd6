"""``--as-of T``: read an event log as if it had been exported at T.

Events after T are dropped before anything sees them (features, labels, the feature spec learnt from
the log), and the dataset treats T as the log's end, so a label whose horizon runs past T is censored
exactly as at the end of a real export. A log ending before T is left as it is (nothing is known
about the time between its newest event and T, so its own end stays the censoring point).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.core.contract import format_ts
from training.data.eventlog import EventLog


class AsOfError(ValueError):
    """T lies before every event of the log (one line)."""


@dataclass
class Cut:
    """An event log as of a time: the kept events, where the dataset censors, and the record."""

    log: EventLog
    #: For :class:`training.rows.dataset.DatasetConfig` ``log_end_ms``: T, or the log's own end when it
    #: ends earlier; None without ``--as-of`` (the dataset's default, the newest event).
    end_ms: int | None
    #: For the metadata: ``{"as_of": ..., "events_after": n}``; None without ``--as-of``.
    record: dict[str, Any] | None


def cut(log: EventLog, as_of_ms: int | None) -> Cut:
    """``log`` without its events after ``as_of_ms`` (kept: ``ts <= as_of_ms``), still out of core."""
    if as_of_ms is None or not log.events:
        return Cut(log, None, None)
    newest = int(log.events.last_ms)
    if as_of_ms < int(log.events.first_ms):
        raise AsOfError(f"--as-of {format_ts(as_of_ms)} is before the log's first event "
                        f"({format_ts(int(log.events.first_ms))})")
    kept = log.until(as_of_ms) if as_of_ms < newest else log
    record = {"as_of": format_ts(as_of_ms), "events_after": len(log.events) - len(kept.events)}
    return Cut(kept, min(int(as_of_ms), newest), record)
