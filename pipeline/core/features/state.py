"""Per-customer feature state: the record both the stream and the offline side keep, and its bytes.

This package is the one piece of code both the stream (Faust worker) and the offline side (training
dataset builder) run, so it must stay pure: no Faust, no Kafka, no wall clock. Every window is in event
time, kept as day buckets inside :class:`CustomerState` (a sparse map of day -> counters over the
longest window), because Faust's windowed tables have open expiry/recovery bugs upstream.

:meth:`CustomerState.to_bytes` is what the worker writes to its local store and changelog: the binary
form of :mod:`pipeline.core.features.encoding`. :meth:`CustomerState.to_json` is the older JSON form,
a wire format too: records written in it still load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline.core.alert_memory import AlertMemory
from pipeline.core.contract import DAY_MS, DEFAULT_TIER
import pipeline.core.features.encoding as encoding
from pipeline.core.features.seen import SeenIds

#: Longest window; day buckets older than this (relative to the newest event) are dropped.
RING_DAYS = 90
WINDOWS = (7, 30, 90)

# Day-bucket channels. Interaction channels first: "active day" means any of them is non-zero.
CHANNELS = (
    "logins",
    "feature_uses",
    "page_views",
    "help_views",
    "failed_help",
    "purchases",
    "other_events",
    "tickets",
    "high_sev_tickets",
    "escalations",
    "sla_breaches",
    "reopens",
)
CH = {name: i for i, name in enumerate(CHANNELS)}
N_CH = len(CHANNELS)
N_INTERACTION_CH = CH["other_events"] + 1
#: Interaction channels that are distinct events (a failed help view is also counted as a help view).
ACTIVITY_CH = tuple(i for i in range(N_INTERACTION_CH) if i != CH["failed_help"])
#: Most interaction types one customer gets a channel of its own for; later new types share
#: :data:`OTHER_TYPE`. A feature spec can name any type seen within the cap without a replay.
TYPE_CAP = 48
OTHER_TYPE = "~other"
VALUE_SCALE = 1000
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
NAN = float("nan")


@dataclass(frozen=True)
class FeatureConfig:
    """Knobs that change feature values; the offline builder must use the same ones as the stream."""

    allowed_lateness_days: int = RING_DAYS
    survey_memory_days: int = 90
    #: failed help views are remembered for this many UTC days back from the newest event's day
    help_fail_memory_days: int = 1


@dataclass
class CustomerState:
    """Everything the pipeline remembers about one customer. Compact on purpose: it is written to the
    changelog on every micro-batch that touches the customer."""

    customer_id: str
    first_ms: int = 0
    last_ms: int = 0
    # profile
    tier: str = DEFAULT_TIER
    plan: str = ""
    mrr: float = NAN
    signup_ms: int = 0
    renewal_ms: int = 0
    csm: str = ""
    #: billing term (``monthly``, ``annual``, ...; see ``contract.TERM_DAYS``)
    term: str = ""
    #: event time of the upsert each profile field came from: an older (late) upsert never
    #: overwrites a newer one, so stream order and time-sorted replay agree
    profile_ms: dict[str, int] = field(default_factory=dict)
    # activity
    days: dict[int, list[int]] = field(default_factory=dict)
    lifetime: list[int] = field(default_factory=lambda: [0] * N_CH)
    last_login_ms: int = 0
    last_activity_ms: int = 0
    recent_failed_help: list[list[Any]] = field(default_factory=list)  # [ts_ms, feature]
    # the product's own vocabulary: every interaction type seen gets a slot (up to TYPE_CAP), so any
    # feature spec can be computed from the state without replaying the log
    tnames: list[str] = field(default_factory=list)
    #: UTC day -> events per type slot (a row may be shorter than ``tnames``: missing slots are 0)
    tdays: dict[int, list[int]] = field(default_factory=dict)
    #: newest event time per type slot
    tlast: list[int] = field(default_factory=list)
    #: UTC day -> 32-bit hashes of the distinct users active that day (events with a ``user_id``)
    udays: dict[int, list[int]] = field(default_factory=dict)
    #: UTC day -> sum of the events' ``value``, in thousandths (:data:`VALUE_SCALE`)
    vdays: dict[int, int] = field(default_factory=dict)
    # tickets: id -> [opened_ms, severity_rank, sla_due_ms]
    open_tickets: dict[str, list[int]] = field(default_factory=dict)
    resolved_tickets: dict[str, list[int]] = field(default_factory=dict)
    ttr_sum_h: float = 0.0
    ttr_count: int = 0
    # surveys: [ts_ms, score], newest last
    nps: list[list[float]] = field(default_factory=list)
    csat: list[list[float]] = field(default_factory=list)
    ces: list[list[float]] = field(default_factory=list)
    # outcomes
    churned_ms: int = 0
    renewed_ms: int = 0
    # idempotence: fingerprints of the events applied within the allowed lateness, with their UTC days
    seen: "SeenIds" = field(default_factory=lambda: SeenIds())
    #: events on days before this one are refused: their fingerprints were evicted (:data:`SEEN_MAX`)
    seen_floor_day: int = 0
    #: highest offset applied per ``source:partition`` (where the stream was; not used to decide)
    offsets: dict[str, int] = field(default_factory=dict)
    #: events applied per source (what an operator's own count of produced events is checked against)
    applied: dict[str, int] = field(default_factory=dict)
    # alert policy memory (pipeline.core.alert_memory; decided on by pipeline.core.alerting)
    alert: AlertMemory = field(default_factory=AlertMemory)
    events: int = 0
    #: Partition of the customer's events in the worker that owns it (-1 offline); lets the silence
    #: sweep write the state to the right changelog partition outside any event's context.
    partition: int = -1
    #: type name -> slot (derived, not serialised)
    _tindex: dict[str, int] | None = field(default=None, repr=False, compare=False)

    def type_index(self) -> dict[str, int]:
        if self._tindex is None or len(self._tindex) != len(self.tnames):
            self._tindex = {name: i for i, name in enumerate(self.tnames)}
        return self._tindex

    @property
    def seen_count(self) -> int:
        return len(self.seen)

    # ---- serialisation ---------------------------------------------------------------------------
    def comparable(self) -> dict[str, Any]:
        """The state as plain data that is equal for equal states: the id memory as a mapping (its
        serialised form keeps application order, which differs between a stream and a replay)."""
        d = orjson.loads(self.to_json())
        d["seen"] = {day: sorted(fps) for day, fps in self.seen.by_day().items()}
        # type slots are numbered in arrival order, which a replay does not share: compare by name
        d["tdays"] = {name: {day: row[i] for day, row in self.tdays.items() if i < len(row) and row[i]}
                      for i, name in enumerate(self.tnames)}
        d["tlast"] = dict(zip(self.tnames, self.tlast))
        del d["tnames"]
        d["udays"] = {day: sorted(hs) for day, hs in self.udays.items()}
        return d

    def to_bytes(self) -> bytes:
        """The binary record (:mod:`pipeline.core.features.encoding`)."""
        return encoding.encode(self)

    def to_json(self) -> bytes:
        """The JSON record: the changelog's form before the binary one, and plain data for a reader."""
        d = self.__dict__.copy()
        del d["_tindex"]
        d["days"] = [[day, *counts] for day, counts in sorted(self.days.items())]
        d["tdays"] = [[day, *counts] for day, counts in sorted(self.tdays.items())]
        d["udays"] = [[day, *hashes] for day, hashes in sorted(self.udays.items())]
        d["vdays"] = [[day, v] for day, v in sorted(self.vdays.items())]
        d["seen"] = self.seen.packed()
        d["alert"] = self.alert.to_json()
        if math.isnan(self.mrr):
            d["mrr"] = None
        return orjson.dumps(d)

    @classmethod
    def from_bytes(cls, raw: bytes) -> "CustomerState":
        """A state from either record form (binary, or JSON written before it)."""
        if encoding.is_binary(raw):
            return cls(**encoding.decode_fields(raw))
        d = orjson.loads(raw)
        d["days"] = {row[0]: row[1:] for row in d["days"]}
        for name in ("tdays", "udays"):
            d[name] = {row[0]: row[1:] for row in d.get(name, ())}
        d["vdays"] = {row[0]: row[1] for row in d.get("vdays", ())}
        d["seen"] = SeenIds.unpacked(d.get("seen", ()))
        d["alert"] = AlertMemory.from_json(d.get("alert", {}))
        if d.get("mrr") is None:
            d["mrr"] = NAN
        return cls(**d)

    @property
    def observed_days(self) -> float:
        return (self.last_ms - self.first_ms) / DAY_MS if self.first_ms else 0.0


def day_of(ts_ms: int) -> int:
    """UTC day index. Day buckets are UTC so every worker and the offline builder agree."""
    return ts_ms // DAY_MS
