"""Per-customer feature state and the feature vector computed from it.

This module is the one piece of code both the stream (Faust worker) and the offline side (training
dataset builder) run, so it must stay pure: no Faust, no Kafka, no wall clock. Every window is in event
time, kept as day buckets inside :class:`CustomerState` (a sparse map of day -> counters over the
longest window), because Faust's windowed tables have open expiry/recovery bugs upstream.

Updates are idempotent by event id: the state remembers a 64-bit fingerprint of every event it applied
within the allowed lateness (see :class:`SeenIds`), and the state and that memory change together, so a
redelivery (the same offset read again after a crash, the same event re-sent at a new offset, a topic
re-created with offsets starting over) is never counted twice and a new event is never skipped. An event
older than the memory reaches is refused (``too_late``) rather than guessed about.
"""

from __future__ import annotations

import binascii
import enum
import hashlib
import math
import zlib
from array import array
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import orjson

from pipeline.core.contract import DAY_MS, Event

HOUR_MS = 3_600_000
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
INTERACTION_CHANNEL = {
    "login": CH["logins"],
    "feature_use": CH["feature_uses"],
    "page_view": CH["page_views"],
    "help_view": CH["help_views"],
    "purchase": CH["purchases"],
}
PROFILE_FIELDS = ("tier", "plan", "mrr", "signup_ms", "renewal_ms", "csm", "term")
#: Most interaction types one customer gets a channel of its own for; later new types share
#: :data:`OTHER_TYPE`. A feature spec can name any type seen within the cap without a replay.
TYPE_CAP = 48
OTHER_TYPE = "~other"
#: Distinct users remembered per customer and day (a 32-bit hash each): distinct-user counts
#: of a bigger account saturate here instead of growing the state without bound.
USERS_PER_DAY = 64
VALUE_SCALE = 1000
VALUE_CLAMP = 2**62
HIGH_SEVERITIES = frozenset({"high", "critical"})
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
PLAN_LEVEL = {"free": -1.0, "basic": 0.0, "starter": 0.0, "pro": 1.0, "business": 1.5, "enterprise": 2.0}
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
    tier: str = "standard"
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
    # alert policy memory (owned by pipeline.core.alerting; opaque here)
    alert: dict[str, Any] = field(default_factory=dict)
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
        d = orjson.loads(self.to_bytes())
        d["seen"] = {day: sorted(fps) for day, fps in self.seen.by_day().items()}
        # type slots are numbered in arrival order, which a replay does not share: compare by name
        d["tdays"] = {name: {day: row[i] for day, row in self.tdays.items() if i < len(row) and row[i]}
                      for i, name in enumerate(self.tnames)}
        d["tlast"] = dict(zip(self.tnames, self.tlast))
        del d["tnames"]
        d["udays"] = {day: sorted(hs) for day, hs in self.udays.items()}
        return d

    def to_bytes(self) -> bytes:
        d = self.__dict__.copy()
        del d["_tindex"]
        d["days"] = [[day, *counts] for day, counts in sorted(self.days.items())]
        d["tdays"] = [[day, *counts] for day, counts in sorted(self.tdays.items())]
        d["udays"] = [[day, *hashes] for day, hashes in sorted(self.udays.items())]
        d["vdays"] = [[day, v] for day, v in sorted(self.vdays.items())]
        d["seen"] = self.seen.packed()
        if math.isnan(self.mrr):
            d["mrr"] = None
        return orjson.dumps(d)

    @classmethod
    def from_bytes(cls, raw: bytes) -> "CustomerState":
        d = orjson.loads(raw)
        d["days"] = {row[0]: row[1:] for row in d["days"]}
        for name in ("tdays", "udays"):
            d[name] = {row[0]: row[1:] for row in d.get(name, ())}
        d["vdays"] = {row[0]: row[1] for row in d.get("vdays", ())}
        d["seen"] = SeenIds.unpacked(d.get("seen", ()))
        if d.get("mrr") is None:
            d["mrr"] = NAN
        return cls(**d)

    @property
    def observed_days(self) -> float:
        return (self.last_ms - self.first_ms) / DAY_MS if self.first_ms else 0.0


def day_of(ts_ms: int) -> int:
    """UTC day index. Day buckets are UTC so every worker and the offline builder agree."""
    return ts_ms // DAY_MS


# ---- the event-id memory ------------------------------------------------------------------------
#: Most fingerprints one customer keeps. Past it the oldest day is forgotten and events of that day or
#: earlier are refused as too late: a bound on state size that never turns into a double count.
SEEN_MAX = 20_000


def fingerprint(source: str, event_id: str) -> bytes:
    """64 bits of BLAKE2b of source and id: a false "already applied" needs a collision among one
    customer's remembered ids (about n^2 / 2^65: 1e-11 for 20,000 ids)."""
    return hashlib.blake2b(f"{source}\x00{event_id}".encode("utf-8", "surrogatepass"), digest_size=8).digest()


class SeenIds:
    """The fingerprints of one customer's applied events, with the UTC day of each, in applied order.

    Packed: 8 bytes of fingerprint in one ``bytearray`` plus 4 bytes of day in an ``array`` — 12 bytes
    an id, where a ``set`` of Python ints and per-day lists of them took ~150. Membership is one C
    substring search over the buffer (a match must start on an 8-byte boundary); ids are forgotten
    by whole days, which rebuilds the buffer once a day at most. The serialised form is unchanged:
    ``[[day, base64(little-endian u64 fingerprints)], ...]``, 8 bytes per id before base64 (about 11
    after); a day's ids keep the order they were applied in, so compare states with
    :meth:`CustomerState.comparable`, not byte for byte.
    """

    __slots__ = ("fps", "days")

    def __init__(self) -> None:
        self.fps = bytearray()
        self.days = array("i")

    def __len__(self) -> int:
        return len(self.days)

    def __contains__(self, fp: bytes) -> bool:
        buf = self.fps
        i = buf.find(fp)
        while i > 0 and i % 8:
            i = buf.find(fp, i + 1)
        return i >= 0

    def __eq__(self, other: object) -> bool:
        # as the per-day lists it replaced: equal days with their ids in the same order, in any day order
        return isinstance(other, SeenIds) and (self.fps == other.fps and self.days == other.days
                                               or self.by_day() == other.by_day())

    def __repr__(self) -> str:
        return f"SeenIds({len(self)} ids)"

    def add(self, day: int, fp: bytes) -> None:
        self.fps += fp
        self.days.append(day)

    def oldest_day(self) -> int | None:
        return min(self.days) if self.days else None

    def forget(self, through_day: int | None = None, day: int | None = None) -> None:
        """Forget every id of days up to ``through_day``, or of exactly ``day``."""
        days = self.days
        if not days:
            return
        if through_day is not None:
            if min(days) > through_day:
                return
            keep = [k for k, d in enumerate(days) if d > through_day]
        else:
            keep = [k for k, d in enumerate(days) if d != day]
        fps = self.fps
        self.fps = bytearray(b"".join([fps[8 * k:8 * k + 8] for k in keep]))
        self.days = array("i", [days[k] for k in keep])

    def by_day(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        fps = self.fps
        for k, d in enumerate(self.days):
            out.setdefault(d, []).append(int.from_bytes(fps[8 * k:8 * k + 8], "little"))
        return out

    def packed(self) -> list[list[Any]]:
        grouped: dict[int, list[bytes]] = {}
        fps = self.fps
        for k, d in enumerate(self.days):
            grouped.setdefault(d, []).append(bytes(fps[8 * k:8 * k + 8]))
        return [[d, binascii.b2a_base64(b"".join(parts), newline=False).decode()] for d, parts in grouped.items()]

    @classmethod
    def unpacked(cls, rows: Iterable[Sequence[Any]]) -> "SeenIds":
        out = cls()
        for day, packed in rows:
            raw = binascii.a2b_base64(packed)
            n = len(raw) // 8
            out.fps += raw[:8 * n]
            out.days.extend([int(day)] * n)
        return out


class Applied(enum.Enum):
    """What :func:`apply` did with an event. Only ``APPLIED`` is truthy."""

    APPLIED = "applied"
    #: the same event (source + event_id) was applied before: a redelivery or a re-send
    DUPLICATE = "duplicate"
    #: older than the allowed lateness (or the id memory): whether it was applied can't be known
    TOO_LATE = "too_late"

    def __bool__(self) -> bool:
        return self is Applied.APPLIED


def _evict_oldest_day(state: CustomerState) -> None:
    oldest = state.seen.oldest_day()
    if oldest is not None:
        state.seen.forget(day=oldest)
        state.seen_floor_day = oldest + 1


# ---- update -------------------------------------------------------------------------------------
def apply(state: CustomerState, event: Event, offset: int | None = None, cfg: FeatureConfig = FeatureConfig(),
          *, partition: int | None = None) -> Applied:
    """Fold one validated event into ``state``, unless it was applied before (``DUPLICATE``) or is too
    late to tell (``TOO_LATE``): then nothing changes.

    The stream and the offline builder both deduplicate by event id, so an event log holding the same
    event twice gives the features the worker would have. ``offset``/``partition`` only record where
    the stream was (``state.offsets``).
    """
    ts = event.ts_ms
    day = ts // DAY_MS
    if day < state.seen_floor_day or (state.last_ms and day <= state.last_ms // DAY_MS - cfg.allowed_lateness_days):
        return Applied.TOO_LATE
    fp = fingerprint(event.source, event.event_id)
    seen = state.seen
    if fp in seen:
        return Applied.DUPLICATE
    if offset is not None:
        where = event.source if partition is None else f"{event.source}:{partition}"
        if offset > state.offsets.get(where, -1):
            state.offsets[where] = offset
    seen.add(day, fp)
    if len(seen) > SEEN_MAX:
        _evict_oldest_day(state)
    state.events += 1
    state.applied[event.source] = state.applied.get(event.source, 0) + 1
    if not state.first_ms or ts < state.first_ms:
        state.first_ms = ts
    if ts > state.last_ms:
        new_day = day_of(ts) != day_of(state.last_ms)
        state.last_ms = ts
        if new_day:  # windows are whole days: pruning more often only costs time
            _prune(state, cfg)
    in_window = day_of(ts) > day_of(state.last_ms) - cfg.allowed_lateness_days
    handler = _HANDLERS[event.source]
    handler(state, event, in_window, cfg)
    return Applied.APPLIED


def _count(state: CustomerState, ts: int, channel: int, in_window: bool, n: int = 1) -> None:
    state.lifetime[channel] += n
    if in_window:
        bucket = state.days.get(day_of(ts))
        if bucket is None:
            bucket = state.days[day_of(ts)] = [0] * N_CH
        bucket[channel] += n


def _keeps(state: CustomerState, ts_ms: int, memory_days: int) -> bool:
    """Whether a remembered item of time ``ts_ms`` is kept. Whole UTC days, relative to the newest
    event's day, and used both when inserting and when pruning: the kept set is then the same
    whatever order the events arrived in (stream) or were replayed in (offline)."""
    return day_of(ts_ms) >= day_of(state.last_ms) - memory_days


def _prune(state: CustomerState, cfg: FeatureConfig) -> None:
    horizon = day_of(state.last_ms) - max(RING_DAYS, cfg.allowed_lateness_days)
    for buckets in (state.days, state.tdays, state.udays, state.vdays):
        if buckets and min(buckets) <= horizon:
            for day in [d for d in buckets if d <= horizon]:
                del buckets[day]
    too_late = day_of(state.last_ms) - cfg.allowed_lateness_days  # days <= this are refused anyway
    state.seen.forget(through_day=too_late)
    for series in (state.csat, state.ces):
        while series and not _keeps(state, int(series[0][0]), cfg.survey_memory_days):
            series.pop(0)
    for tid in [t for t, v in state.resolved_tickets.items() if not _keeps(state, v[3], RING_DAYS)]:
        del state.resolved_tickets[tid]
    state.recent_failed_help = [x for x in state.recent_failed_help
                                if _keeps(state, x[0], cfg.help_fail_memory_days)]


def _on_interaction(state: CustomerState, ev: Event, in_window: bool, cfg: FeatureConfig) -> None:
    channel = INTERACTION_CHANNEL.get(ev.type, CH["other_events"])
    _count(state, ev.ts_ms, channel, in_window)
    _count_type(state, ev, in_window)
    if ev.ts_ms > state.last_activity_ms:
        state.last_activity_ms = ev.ts_ms
    if ev.type == "login" and ev.ts_ms > state.last_login_ms:
        state.last_login_ms = ev.ts_ms
    if ev.type == "help_view" and ev.data.get("success") is False:
        _count(state, ev.ts_ms, CH["failed_help"], in_window)
        if _keeps(state, ev.ts_ms, cfg.help_fail_memory_days):
            state.recent_failed_help.append([ev.ts_ms, ev.data.get("feature", "")])
            state.recent_failed_help.sort(key=lambda x: x[0])


def _type_slot(state: CustomerState, typ: str) -> int:
    index = state.type_index()
    slot = index.get(typ)
    if slot is None:
        if len(state.tnames) >= TYPE_CAP - 1 and typ != OTHER_TYPE:
            return _type_slot(state, OTHER_TYPE)
        slot = index[typ] = len(state.tnames)
        state.tnames.append(typ)
        state.tlast.append(0)
    return slot


def _count_type(state: CustomerState, ev: Event, in_window: bool) -> None:
    slot = _type_slot(state, ev.type)
    ts = ev.ts_ms
    if ts > state.tlast[slot]:
        state.tlast[slot] = ts
    if not in_window:
        return
    day = day_of(ts)
    row = state.tdays.get(day)
    if row is None:
        row = state.tdays[day] = [0] * (slot + 1)
    elif len(row) <= slot:
        row.extend([0] * (slot + 1 - len(row)))
    row[slot] += 1
    user = ev.data.get("user_id")
    if user is not None:
        h = zlib.crc32(user.encode("utf-8", "surrogatepass"))
        users = state.udays.get(day)
        if users is None:
            state.udays[day] = [h]
        elif h not in users and len(users) < USERS_PER_DAY:
            users.append(h)
    value = ev.data.get("value")
    if value is not None:
        # integer thousandths: a sum of integers does not depend on the order events arrived in, so a
        # stream and a replay agree to the last bit; clamped to stay a 64-bit JSON integer
        total = state.vdays.get(day, 0) + round(value * VALUE_SCALE)
        state.vdays[day] = max(-VALUE_CLAMP, min(VALUE_CLAMP, total))


def _on_ticket(state: CustomerState, ev: Event, in_window: bool, cfg: FeatureConfig) -> None:
    tid = ev.data["ticket_id"]
    typ, ts = ev.type, ev.ts_ms
    if typ == "opened":
        if tid in state.open_tickets or tid in state.resolved_tickets:
            return  # a second 'opened' for the same ticket is not a new ticket
        sev = ev.data["severity"]
        state.open_tickets[tid] = [ts, SEVERITY_RANK[sev], ev.data.get("sla_due_ms", 0)]
        _count(state, ts, CH["tickets"], in_window)
        if sev in HIGH_SEVERITIES:
            _count(state, ts, CH["high_sev_tickets"], in_window)
    elif typ == "escalated":
        _count(state, ts, CH["escalations"], in_window)
        ticket = state.open_tickets.get(tid)
        if ticket is not None and "severity" in ev.data:
            ticket[1] = max(ticket[1], SEVERITY_RANK[ev.data["severity"]])
    elif typ == "resolved":
        ticket = state.open_tickets.pop(tid, None)
        if ticket is not None:
            state.ttr_sum_h += max(0, ts - ticket[0]) / HOUR_MS
            state.ttr_count += 1
            if ticket[2] and ts > ticket[2]:
                _count(state, ts, CH["sla_breaches"], in_window)
            state.resolved_tickets[tid] = [ticket[0], ticket[1], ticket[2], ts]
    elif typ == "reopened":
        _count(state, ts, CH["reopens"], in_window)
        ticket = state.resolved_tickets.pop(tid, None)
        if ticket is not None:
            # SLA clock restarts from the reopen with the original allowance
            allowance = ticket[2] - ticket[0] if ticket[2] else 0
            state.open_tickets[tid] = [ts, ticket[1], ts + allowance if allowance else 0]
    elif typ == "closed":
        state.open_tickets.pop(tid, None)
        state.resolved_tickets.pop(tid, None)
    # agent_reply / customer_reply only count toward lifetime activity on the ticket topic


def _insert_series(series: list[list[float]], ts: int, score: float) -> None:
    series.append([ts, score])
    if len(series) > 1 and series[-2][0] > ts:
        series.sort(key=lambda x: x[0])


def _on_survey(state: CustomerState, ev: Event, in_window: bool, cfg: FeatureConfig) -> None:
    score = ev.data["score"]
    if ev.type == "nps":
        _insert_series(state.nps, ev.ts_ms, score)
        del state.nps[:-2]  # the latest and the one before it are all the features use
    elif _keeps(state, ev.ts_ms, cfg.survey_memory_days):
        _insert_series(state.csat if ev.type == "csat" else state.ces, ev.ts_ms, score)


def _on_profile(state: CustomerState, ev: Event, in_window: bool, cfg: FeatureConfig) -> None:
    for name in PROFILE_FIELDS:
        if name in ev.data and ev.ts_ms >= state.profile_ms.get(name, 0):
            setattr(state, name, ev.data[name])
            state.profile_ms[name] = ev.ts_ms


def _on_outcome(state: CustomerState, ev: Event, in_window: bool, cfg: FeatureConfig) -> None:
    if ev.type == "churned":
        state.churned_ms = ev.ts_ms
    elif ev.type == "renewed":
        state.renewed_ms = max(state.renewed_ms, ev.ts_ms)
    # alert_ack / contacted / saved are handled by the alert policy


_HANDLERS = {
    "interactions": _on_interaction,
    "tickets": _on_ticket,
    "surveys": _on_survey,
    "customers": _on_profile,
    "outcomes": _on_outcome,
}


# ---- feature vector -----------------------------------------------------------------------------
#: Usage against the customer's own baseline: a steady low-usage customer stays near 1, a collapsing one
#: falls towards 0, whatever their absolute level (see docs/features.md for the exact definitions).
BASELINE_FEATURES = (
    "logins_14d_vs_90d", "feature_uses_14d_vs_90d", "activity_14d_vs_90d", "active_days_14d_vs_90d",
    "logins_7d_vs_90d", "activity_30d_vs_prev60d", "active_days_30d_vs_prev60d",
)
#: Per-session figures: how much a customer does once logged in, and how often help fails them.
SESSION_FEATURES = (
    "actions_per_login_14d", "actions_per_login_90d", "help_views_per_login_30d",
    "failed_help_share_30d", "failed_help_share_90d",
)
#: Age bands (in days before ``now``'s day) that the windows are built from: [0,7) [7,14) [14,30) [30,90).
_BAND_ENDS = (7, 14, 30, RING_DAYS)


def _names() -> tuple[str, ...]:
    names = ["is_vip", "plan_level", "mrr", "tenure_days", "days_to_renewal"]
    for w in WINDOWS:
        names += [f"{ch}_{w}d" for ch in CHANNELS[:N_INTERACTION_CH]]
        names.append(f"active_days_{w}d")
    names += ["logins_trend_7d", "activity_trend_7d", "feature_uses_trend_7d"]
    names += list(BASELINE_FEATURES)
    names += list(SESSION_FEATURES)
    names += ["days_since_login", "days_since_activity"]
    names += [
        "open_tickets", "open_high_sev_tickets", "open_past_sla",
        "tickets_30d", "high_sev_tickets_30d", "escalations_30d", "sla_breaches_30d",
        "reopens_90d", "mean_resolve_hours",
    ]
    names += ["last_nps", "nps_category", "nps_change", "days_since_nps", "min_csat_30d", "mean_csat_90d", "mean_ces_90d"]
    return tuple(names)


#: Feature names in model-input order. Training stores this list with every model.
FEATURES: tuple[str, ...] = _names()
FEATURE_INDEX = {name: i for i, name in enumerate(FEATURES)}


def _band_sums(state: CustomerState, now_day: int) -> tuple[list[list[float]], list[int]]:
    """Channel sums and active days per age band (:data:`_BAND_ENDS`): each day bucket is added once,
    and every window is a sum of leading bands."""
    sums = [[0.0] * N_CH for _ in _BAND_ENDS]
    active = [0] * len(_BAND_ENDS)
    b0, b1, b2 = _BAND_ENDS[:3]
    for day, counts in state.days.items():
        age = now_day - day
        if age < 0 or age >= RING_DAYS:
            continue  # a bucket "after" now only exists when scoring in the past (never in the stream)
        bi = 0 if age < b0 else (1 if age < b1 else (2 if age < b2 else 3))
        row = sums[bi]
        for c in range(N_CH):
            row[c] += counts[c]
        if any(counts[:N_INTERACTION_CH]):
            active[bi] += 1
    return sums, active


def _add(a: list[float], b: list[float]) -> list[float]:
    return [x + y for x, y in zip(a, b)]


def _rate_ratio(recent: float, recent_days: int, total: float, total_days: int) -> float:
    """Per-day rate over the recent window / per-day rate over the whole (longer) window; NaN when the
    longer window is empty (no baseline to compare with)."""
    if total <= 0 or total_days <= 0:
        return NAN
    return (recent / recent_days) / (total / total_days)


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else NAN


def _trend(now: float, before: float) -> float:
    """Relative change of the last 7 days vs the 7 before; 0 when both are empty."""
    return (now - before) / max(before, 1.0)


def _days_since(now_ms: int, ts_ms: int) -> float:
    return (now_ms - ts_ms) / DAY_MS if ts_ms else NAN


def vector(state: CustomerState, now_ms: int) -> list[float]:
    """The feature vector of ``state`` as of event time ``now_ms``, in :data:`FEATURES` order.

    Missing information is NaN (LightGBM treats it as missing), never a made-up zero.
    """
    now_day = day_of(now_ms)
    bands, band_active = _band_sums(state, now_day)
    s7 = bands[0]
    s14 = _add(s7, bands[1])
    s30 = _add(s14, bands[2])
    s90 = _add(s30, bands[3])
    sums = (s7, s30, s90)
    a7 = band_active[0]
    a14 = a7 + band_active[1]
    a30 = a14 + band_active[2]
    a90 = a30 + band_active[3]
    active = (a7, a30, a90)
    prev7 = bands[1]
    out: list[float] = [
        1.0 if state.tier == "vip" else 0.0,
        PLAN_LEVEL.get(state.plan, NAN),
        state.mrr,
        _days_since(now_ms, state.signup_ms),
        (state.renewal_ms - now_ms) / DAY_MS if state.renewal_ms else NAN,
    ]
    for wi in range(len(WINDOWS)):
        out += sums[wi][:N_INTERACTION_CH]
        out.append(float(active[wi]))
    act7, act14 = sum(s7[c] for c in ACTIVITY_CH), sum(s14[c] for c in ACTIVITY_CH)
    act30, act90 = sum(s30[c] for c in ACTIVITY_CH), sum(s90[c] for c in ACTIVITY_CH)
    out.append(_trend(s7[CH["logins"]], prev7[CH["logins"]]))
    out.append(_trend(act7, act14 - act7))
    out.append(_trend(s7[CH["feature_uses"]], prev7[CH["feature_uses"]]))
    # own baseline: days the state covers (since the customer's first event), capped per window
    covered = now_day - day_of(state.first_ms) + 1 if state.first_ms else 0
    d7, d14, d30, d90 = (min(w, covered) for w in (7, 14, 30, RING_DAYS))
    logins, uses = CH["logins"], CH["feature_uses"]
    out += [
        _rate_ratio(s14[logins], d14, s90[logins], d90),
        _rate_ratio(s14[uses], d14, s90[uses], d90),
        _rate_ratio(act14, d14, act90, d90),
        _rate_ratio(a14, d14, a90, d90),
        _rate_ratio(s7[logins], d7, s90[logins], d90),
    ]
    if d90 - d30 >= 7:  # at least a week before the last 30 days to compare with
        out.append(_rate_ratio(act30, d30, act90 - act30, d90 - d30) if act90 > act30 else NAN)
        out.append(_rate_ratio(a30, d30, a90 - a30, d90 - d30) if a90 > a30 else NAN)
    else:
        out += [NAN, NAN]
    views, help_, failed = CH["page_views"], CH["help_views"], CH["failed_help"]
    out += [
        _ratio(s14[views] + s14[uses], s14[logins]),
        _ratio(s90[views] + s90[uses], s90[logins]),
        _ratio(s30[help_], s30[logins]),
        _ratio(s30[failed], s30[help_]),
        _ratio(s90[failed], s90[help_]),
    ]
    out.append(_days_since(now_ms, state.last_login_ms))
    out.append(_days_since(now_ms, state.last_activity_ms))
    open_t = [t for t in state.open_tickets.values() if t[0] <= now_ms]
    out += [
        float(len(open_t)),
        float(sum(1 for t in open_t if t[1] >= SEVERITY_RANK["high"])),
        float(sum(1 for t in open_t if t[2] and t[2] < now_ms)),
        s30[CH["tickets"]],
        s30[CH["high_sev_tickets"]],
        s30[CH["escalations"]],
        s30[CH["sla_breaches"]],
        s90[CH["reopens"]],
        state.ttr_sum_h / state.ttr_count if state.ttr_count else NAN,
    ]
    nps = [p for p in state.nps if p[0] <= now_ms]
    if nps:
        last = nps[-1][1]
        out += [
            last,
            -1.0 if last <= 6 else (0.0 if last <= 8 else 1.0),
            last - nps[-2][1] if len(nps) > 1 else NAN,
            (now_ms - nps[-1][0]) / DAY_MS,
        ]
    else:
        out += [NAN, NAN, NAN, NAN]
    csat30 = [s for t, s in state.csat if now_ms - 30 * DAY_MS <= t <= now_ms]
    csat90 = [s for t, s in state.csat if now_ms - 90 * DAY_MS <= t <= now_ms]
    ces90 = [s for t, s in state.ces if now_ms - 90 * DAY_MS <= t <= now_ms]
    out.append(min(csat30) if csat30 else NAN)
    out.append(sum(csat90) / len(csat90) if csat90 else NAN)
    out.append(sum(ces90) / len(ces90) if ces90 else NAN)
    return out


def replay(events: Iterable[Event], cfg: FeatureConfig = FeatureConfig()) -> dict[str, CustomerState]:
    """Fold a whole event sequence into fresh states (the offline twin of the worker's table)."""
    states: dict[str, CustomerState] = {}
    for ev in events:
        st = states.get(ev.customer_id)
        if st is None:
            st = states[ev.customer_id] = CustomerState(ev.customer_id)
        apply(st, ev, None, cfg)
    return states


def as_dict(vec: Sequence[float]) -> dict[str, float]:
    return dict(zip(FEATURES, vec))
