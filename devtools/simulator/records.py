"""The simulation's knobs (:class:`SimConfig`), what it emits (:class:`SimRecord`), the time units it counts
in and the timestamp format its records carry."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass


SOURCES: tuple[str, ...] = ("customers", "interactions", "tickets", "surveys", "outcomes")

SEC_MS = 1_000
MIN_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
YEAR_MS = 365 * DAY_MS

SCHEMA_VERSION = 1

#: How many event types a foreign product may have (``SimConfig.vocabulary``; 0 is the fixed story).
VOCAB_MIN, VOCAB_MAX = 8, 25
#: Mean users per account of the foreign-vocabulary mode.
_DEFAULT_USERS = 3.5


@dataclass(frozen=True)
class SimRecord:
    """One simulated record, ready to be produced to ``churn.<source>`` keyed by ``key``.

    ``value`` is bytes only for deliberately malformed records, so consumers can tell at a glance which
    records are meant to end in the dead-letter topic.
    """

    source: str
    key: str
    ts_ms: int
    value: dict | bytes


@dataclass(frozen=True)
class SimConfig:
    """Knobs of a simulation run; two runs with equal configs yield identical records.

    ``start_ms=None`` anchors the window so that it ends at today's UTC midnight, which makes the live demo
    look current; pass an explicit value whenever reproducibility across days matters.
    """

    customers: int = 1000
    days: int = 180
    start_ms: int | None = None
    seed: int = 7
    churn_rate: float = 0.25
    bad_rate: float = 0.0
    id_prefix: str = "c"
    #: 0: the fixed login/feature_use/page_view/help_view/purchase story. 8..25: *foreign-vocabulary mode*,
    #: a product with that many event types of its own (see :func:`product_vocabulary`).
    vocabulary: int = 0
    #: Share of annual contracts; ``None`` keeps the per-plan mix (about 45% annual overall).
    annual_share: float | None = None
    #: Mean users per account (foreign-vocabulary mode only); 1.0 makes every account single-user.
    users_per_account: float = _DEFAULT_USERS

    def __post_init__(self) -> None:
        if self.customers < 0:
            raise ValueError("customers must be >= 0")
        if self.days <= 0:
            raise ValueError("days must be > 0")
        if not 0.0 <= self.churn_rate <= 1.0:
            raise ValueError("churn_rate must be within [0, 1]")
        if not 0.0 <= self.bad_rate < 1.0:
            raise ValueError("bad_rate must be within [0, 1)")
        if self.seed < 0:
            raise ValueError("seed must be >= 0")
        v = self.vocabulary
        if isinstance(v, bool) or not isinstance(v, int) or not (v == 0 or VOCAB_MIN <= v <= VOCAB_MAX):
            raise ValueError(f"vocabulary must be 0 (the fixed vocabulary) or an int within "
                             f"[{VOCAB_MIN}, {VOCAB_MAX}], got {v!r}")
        a = self.annual_share
        if a is not None and (isinstance(a, bool) or not isinstance(a, (int, float)) or not 0.0 <= a <= 1.0):
            raise ValueError(f"annual_share must be None or within [0, 1], got {a!r}")
        u = self.users_per_account
        if isinstance(u, bool) or not isinstance(u, (int, float)) or not 1.0 <= u <= 50.0:
            raise ValueError(f"users_per_account must be within [1, 50], got {u!r}")
        if v == 0 and u != _DEFAULT_USERS:
            raise ValueError("users_per_account needs the foreign-vocabulary mode (vocabulary > 0): "
                             "the fixed vocabulary has no users")


def resolve_start_ms(cfg: SimConfig) -> int:
    """Window start in epoch ms: explicit, or ``days`` days before today's UTC midnight.

    Both :func:`simulate` and :func:`ground_truth` go through here, so they agree as long as they are not
    called on different UTC dates with ``start_ms=None``.
    """
    if cfg.start_ms is not None:
        return int(cfg.start_ms)
    now_ms = int(_dt.datetime.now(_dt.timezone.utc).timestamp() * 1000)
    return (now_ms // DAY_MS) * DAY_MS - cfg.days * DAY_MS


_EPOCH = _dt.datetime(1970, 1, 1)
_DATE_PREFIX: dict[int, str] = {}
# Lookup tables for the time of day: "HH:MM:" per minute of the day and "SS.mmmZ" per millisecond of the
# minute (~4 MB, built once at import in ~15 ms). Formatting is the single largest per-event cost otherwise.
_HHMM: tuple[str, ...] = tuple(f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440))
_SSMS: tuple[str, ...] = tuple(f"{x // 1000:02d}.{x % 1000:03d}Z" for x in range(60_000))


def iso_ms(ts_ms: int) -> str:
    """ISO-8601 UTC with milliseconds and ``Z`` (e.g. ``2026-03-01T14:03:22.120Z``), table-driven for speed."""
    day, r = divmod(ts_ms, DAY_MS)
    prefix = _DATE_PREFIX.get(day)
    if prefix is None:
        prefix = (_EPOCH + _dt.timedelta(days=day)).strftime("%Y-%m-%dT")
        _DATE_PREFIX[day] = prefix
    m, x = divmod(r, MIN_MS)
    return prefix + _HHMM[m] + _SSMS[x]
