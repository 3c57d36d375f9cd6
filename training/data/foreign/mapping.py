"""How a team's tables map onto churnwatch events (column names, type map, as-of time, churn rule), and
the one error a caller catches for "fix your input"."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from pipeline.core.contract import DEFAULT_TIER
from training.data.readers import LogFormatError


class ForeignLogError(LogFormatError):
    """A usage or churn table cannot be converted as asked: one line naming the file and column."""


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
    default_tier: str = DEFAULT_TIER
    #: "Now" of the data: later usage rows are dropped and later subscription ends are not churns yet
    #: (default: the newest usage time). ISO-8601 or epoch.
    as_of: str | int | None = None
    #: Instead of a churn table: N days without usage is a churn (see :mod:`training.data.foreign.inactivity`).
    inactive_days: int | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ForeignMapping:
        """A mapping from option values named like the fields (the CLI passes ``vars(args)``): absent or
        None ones keep the defaults, other keys are ignored, and ``type_map`` is read by
        :func:`parse_type_map` (``FROM=TO`` strings, e.g. a repeated flag)."""
        values = {name: options[name] for name in cls.__dataclass_fields__ if options.get(name) is not None}
        values["type_map"] = parse_type_map(values.get("type_map"))
        return cls(**values)


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

