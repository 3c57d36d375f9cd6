"""Folding one validated event into a customer's state: :func:`apply` and its handler per source.

Idempotent by event id (:mod:`pipeline.core.features.seen`): a duplicate or an event too late to tell
changes nothing. Everything kept depends only on the events, not on the order they arrived in (within
the allowed lateness), so the stream and a time-sorted offline pass build the same states.
"""

from __future__ import annotations

import enum
import zlib
from typing import Iterable

from pipeline.core.contract import DAY_MS, HOUR_MS, Event
from pipeline.core.features import seen as seen_ids
from pipeline.core.features.seen import fingerprint
from pipeline.core.features.state import (CH, N_CH, OTHER_TYPE, RING_DAYS, SEVERITY_RANK, TYPE_CAP, VALUE_SCALE,
                                          CustomerState, FeatureConfig, day_of)

INTERACTION_CHANNEL = {
    "login": CH["logins"],
    "feature_use": CH["feature_uses"],
    "page_view": CH["page_views"],
    "help_view": CH["help_views"],
    "purchase": CH["purchases"],
}
PROFILE_FIELDS = ("tier", "plan", "mrr", "signup_ms", "renewal_ms", "csm", "term")
#: Distinct users remembered per customer and day (a 32-bit hash each): distinct-user counts
#: of a bigger account saturate here instead of growing the state without bound.
USERS_PER_DAY = 64
VALUE_CLAMP = 2**62
HIGH_SEVERITIES = frozenset({"high", "critical"})


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
    if len(seen) > seen_ids.SEEN_MAX:
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


def states_from_events(events: Iterable[Event], cfg: FeatureConfig = FeatureConfig()) -> dict[str, CustomerState]:
    """Fold a whole event sequence into fresh states (the offline twin of the worker's table)."""
    states: dict[str, CustomerState] = {}
    for ev in events:
        st = states.get(ev.customer_id)
        if st is None:
            st = states[ev.customer_id] = CustomerState(ev.customer_id)
        apply(st, ev, None, cfg)
    return states
