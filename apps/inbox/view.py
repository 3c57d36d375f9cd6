"""The open-alert view of the CSM inbox: what is open, per customer, riskiest first (pure: no Kafka, no web).

The view mirrors the worker's alert policy (``pipeline/core/alerting.py``, ``docs/alerts.md``):

* one entry per customer: the newest alert. An ``escalation`` updates the risk of the entry it
  escalates but keeps that entry's ``alert_id``, because the worker only knows the original id as its
  open alert and an acknowledgement must carry it to close the loop;
* an entry closes when an ``alert_ack`` names its alert id (or one of its escalations), when a
  ``contacted``/``saved`` outcome arrives for the customer (with no alert id, or the entry's), when the
  customer ``churned``, or ``expire_days`` after it was raised, in *event time* as the worker expires
  it. The view's clock is the newest ``event_time`` on the alert topic: outcome times do not move it,
  because acknowledgements (this page's included) carry the wall-clock time of the CSM's click, which
  would expire at once every alert of a replayed or simulated history;
* sorted by risk (score) descending; alerts without a score (rule alerts raised when no model is
  loaded) come after the scored ones, newest first.

The two topics are read by one consumer whose order across topics is arbitrary, so the view is built
so that the order does not matter: acknowledged ids are remembered (an alert read after its
acknowledgement stays closed) and customer-level closes (contacted/saved/churned) compare *event
times*, not arrival order. At start the alert topic is read to its end before the outcome topic, so a
replay sees every acknowledged alert before its acknowledgement, as a live inbox does
(:class:`apps.inbox.topics.TopicFollower`).

Acknowledging writes an ordinary ``alert_ack`` outcome event (:func:`ack_event`), the same record a
CSM's own tooling would write, so the workers close their open alert (and count the outcome) exactly as
they do for any other acknowledgement, and every other inbox sees it too.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.alerting import CLOSING_OUTCOMES as ALERT_CLOSING_OUTCOMES, EXPIRE_DAYS
from pipeline.core.alerting import ESCALATION
from pipeline.core.contract import DAY_MS, InvalidEvent, Limits, format_ts, parse_ts, validate

#: Outcomes that close a customer's entry: those that close the worker's open alert, plus churn.
CLOSING_OUTCOMES = ALERT_CLOSING_OUTCOMES | {"churned"}
ACK_NOTE = "acknowledged in inbox"
#: How many closed alert ids are remembered (for acknowledgements read before their alert, and replays).
MAX_REMEMBERED_IDS = 200_000
#: Expired entries are forgotten at most this often (event time), not on every alert of a replay.
PRUNE_EVERY_MS = 3_600_000
#: ``?csm=`` value selecting alerts of customers without a CSM.
UNASSIGNED = "-"


@dataclass
class _Entry:
    """One customer's open alert as the inbox shows it."""

    record: dict[str, Any]  #: the newest alert record (display fields)
    alert_id: str  #: the id an acknowledgement carries (the escalated alert's id for escalations)
    opened_ms: int  #: event time the entry's alert was raised (expiry counts from here)
    event_ms: int  #: event time of the newest alert folded in (escalations included)
    escalated: bool = False
    aliases: set[str] = field(default_factory=set)  #: escalation ids standing for ``alert_id``
    #: older, still unacknowledged alerts of the customer that a newer one superseded: id -> event ms
    folded: dict[str, int] = field(default_factory=dict)

    def ids(self) -> list[str]:
        return [self.alert_id, *sorted(self.aliases), *self.folded]


@dataclass(frozen=True)
class AckPlan:
    """What acknowledging one alert id means: which ``alert_ack`` events to write for which customer."""

    customer_id: str
    alert_ids: tuple[str, ...]  #: ids to acknowledge, the requested entry's own id first
    already: bool = False  #: the alert was closed before (acknowledged, contacted, expired): write nothing


def as_score(value: Any) -> float | None:
    """A record's score as a float, or None (a rule alert's NaN, or anything not a finite number:
    the topic is written by others, and a bad value must sort as "no score", not crash the sort)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def as_text(value: Any, limit: int = 512) -> str:
    """A record's text field, cut to ``limit``; "" when it is not a string."""
    return value[:limit] if isinstance(value, str) else ""


class InboxState:
    """The open-alert view, fed with decoded JSON records from the alert and outcome topics.

    Thread-safe (the topic follower writes while web handlers read). Malformed records are counted in
    :attr:`skipped` and ignored: the topics are inputs this process does not control.
    """

    def __init__(self, expire_days: float = EXPIRE_DAYS) -> None:
        self.expire_ms = int(expire_days * DAY_MS)
        self.clock_ms = 0  #: newest alert event time seen (the expiry clock)
        self._pruned_ms = 0
        self.skipped = 0
        self.alerts_seen = 0
        self.outcomes_seen = 0
        self._open: dict[str, _Entry] = {}
        self._by_id: dict[str, str] = {}  # alert id (any id of an entry) -> customer id
        #: ids closed (acknowledged, or dropped with their entry): a replayed or late copy stays closed
        self._closed_ids: OrderedDict[str, None] = OrderedDict()
        self._closed_ms: dict[str, int] = {}  # customer -> newest contacted/saved/churned event time
        self._lock = threading.RLock()

    # -- feeding -----------------------------------------------------------------------------------
    def add_alert(self, alert: Any) -> bool:
        """Fold one alert record (``Alert.to_json``) into the view; True when the view changed."""
        with self._lock:
            self.alerts_seen += 1
            if not isinstance(alert, dict):
                self.skipped += 1
                return False
            aid, cid = alert.get("alert_id"), alert.get("customer_id")
            if not (isinstance(aid, str) and aid and isinstance(cid, str) and cid):
                self.skipped += 1
                return False
            try:
                event_ms = parse_ts(alert.get("event_time"), "event_time")
            except InvalidEvent:
                self.skipped += 1
                return False
            self._advance(event_ms)
            if aid in self._closed_ids or event_ms <= self._closed_ms.get(cid, -1) or aid in self._by_id:
                return False  # acknowledged, closed by an outcome, or a duplicate (replay)
            record = dict(alert)
            cur = self._open.get(cid)
            if alert.get("kind") == ESCALATION and cur is not None:
                # same alert, higher risk: new score/band/reasons, the escalated alert's id and trigger
                record.update(alert_id=cur.alert_id, trigger=cur.record.get("trigger"))
                cur.record, cur.event_ms, cur.escalated = record, max(cur.event_ms, event_ms), True
                cur.aliases.add(aid)
                self._by_id[aid] = cid
                return True
            if cur is not None and event_ms < cur.opened_ms:
                cur.folded[aid] = event_ms  # an older alert read late: the entry keeps the newer one
                self._by_id[aid] = cid
                return True
            entry = _Entry(record, aid, event_ms, event_ms, escalated=alert.get("kind") == ESCALATION)
            if cur is not None:  # the newer alert supersedes; the older ones stay unacknowledged under it
                entry.folded = {cur.alert_id: cur.opened_ms, **{a: cur.opened_ms for a in cur.aliases},
                                **cur.folded}
            self._open[cid] = entry
            self._by_id[aid] = cid
            if self.clock_ms - self._pruned_ms >= PRUNE_EVERY_MS:
                self._prune()
            return True

    def add_outcome(self, outcome: Any) -> bool:
        """Apply one outcome event; True when the view changed."""
        with self._lock:
            self.outcomes_seen += 1
            if not isinstance(outcome, dict) or not isinstance(outcome.get("customer_id"), str):
                self.skipped += 1
                return False
            cid, typ = outcome["customer_id"], outcome.get("type")
            try:
                ts_ms = parse_ts(outcome.get("ts"))
            except InvalidEvent:
                self.skipped += 1
                return False
            if typ not in CLOSING_OUTCOMES:
                return False
            aid = outcome.get("alert_id") if isinstance(outcome.get("alert_id"), str) else None
            if typ == "alert_ack":
                if aid is None:
                    self.skipped += 1
                    return False
                return self._ack(aid)
            if aid is not None and typ != "churned":
                return self._ack(aid)  # contacted/saved about one alert: as an acknowledgement of it
            # the customer as a whole: close what was raised up to the outcome's event time
            self._closed_ms[cid] = max(ts_ms, self._closed_ms.get(cid, ts_ms))
            entry = self._open.get(cid)
            if entry is None:
                return False
            if entry.opened_ms <= ts_ms:
                self._drop(cid)
                return True
            stale = [a for a, ms in entry.folded.items() if ms <= ts_ms]
            for a in stale:
                self._forget(a)
                del entry.folded[a]
            return bool(stale)

    def _forget(self, aid: str) -> None:
        """``aid`` is closed for good: remember that (bounded), and unlink it from its entry."""
        self._closed_ids[aid] = None
        self._closed_ids.move_to_end(aid)
        while len(self._closed_ids) > MAX_REMEMBERED_IDS:
            self._closed_ids.popitem(last=False)
        self._by_id.pop(aid, None)

    def _ack(self, aid: str) -> bool:
        cid = self._by_id.get(aid)
        self._forget(aid)
        entry = self._open.get(cid) if cid is not None else None
        if entry is None:
            return False
        if aid == entry.alert_id or aid in entry.aliases:
            self._drop(cid)  # the alert the CSM sees: the customer's row closes
            return True
        entry.folded.pop(aid, None)  # an older alert under a newer one: the newer one stays open
        return True

    def _drop(self, cid: str) -> None:
        entry = self._open.pop(cid, None)
        if entry is not None:
            for a in entry.ids():
                self._forget(a)

    def _advance(self, ts_ms: int) -> None:
        if ts_ms > self.clock_ms:
            self.clock_ms = ts_ms

    def _prune(self) -> None:
        """Forget entries expired at the current clock, so memory follows the open alerts only."""
        self._pruned_ms = self.clock_ms
        for cid in [c for c, e in self._open.items() if self.clock_ms - e.opened_ms > self.expire_ms]:
            self._drop(cid)

    # -- reading -----------------------------------------------------------------------------------
    def _visible(self, now_ms: int | None) -> list[_Entry]:
        now = self.clock_ms if now_ms is None else now_ms
        return [e for e in self._open.values() if now - e.opened_ms <= self.expire_ms]

    def open_alerts(self, tier: str | None = None, csm: str | None = None, now_ms: int | None = None) -> list[dict[str, Any]]:
        """The open alerts (copies), riskiest first, optionally of one tier and/or one CSM.

        ``now_ms`` is the event time to expire against (default: the newest alert event time seen);
        ``csm="-"`` selects customers without a CSM.
        """
        with self._lock:
            entries = self._visible(now_ms)
            if tier:
                entries = [e for e in entries if as_text(e.record.get("tier")).casefold() == tier.casefold()]
            if csm:
                want = "" if csm == UNASSIGNED else csm.casefold()
                entries = [e for e in entries if as_text(e.record.get("csm")).casefold() == want]

            def key(e: _Entry) -> tuple:
                s = as_score(e.record.get("score"))
                return (s is None, -(s or 0.0), -e.event_ms, as_text(e.record.get("customer_id")))

            out = []
            for e in sorted(entries, key=key):
                rec = dict(e.record)
                rec.update(alert_id=e.alert_id, score=as_score(rec.get("score")), escalated=e.escalated,
                           opened_time=format_ts(e.opened_ms), alert_ids=e.ids())
                out.append(rec)
            return out

    def facets(self, now_ms: int | None = None) -> tuple[list[str], list[str]]:
        """The tiers and CSMs among the open alerts (for the filter select boxes)."""
        with self._lock:
            entries = self._visible(now_ms)
            tiers = sorted({as_text(e.record.get("tier")) for e in entries} - {""})
            csms = sorted({as_text(e.record.get("csm")) for e in entries}, key=lambda c: (c.casefold(), c))
            return tiers, [c if c else UNASSIGNED for c in csms]

    def ack_plan(self, alert_id: str) -> AckPlan | None:
        """What acknowledging ``alert_id`` takes; None when no open alert has that id.

        Acknowledging the alert a row shows acknowledges the older alerts folded under it too: the
        CSM has seen the customer, and the worker keeps a *model* alert open until its own id is
        acknowledged, whatever newer rule alert was shown above it.
        """
        with self._lock:
            cid = self._by_id.get(alert_id)
            entry = self._open.get(cid) if cid is not None else None
            if entry is None or cid is None:
                return AckPlan("", (alert_id,), already=True) if alert_id in self._closed_ids else None
            if alert_id == entry.alert_id or alert_id in entry.aliases:
                return AckPlan(cid, (entry.alert_id, *entry.folded))
            return AckPlan(cid, (alert_id,))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"open": len(self._visible(None)), "alerts_seen": self.alerts_seen,
                    "outcomes_seen": self.outcomes_seen, "skipped": self.skipped,
                    "event_clock": format_ts(self.clock_ms) if self.clock_ms else None}


def ack_event(customer_id: str, alert_id: str, now_ms: int | None = None, note: str = ACK_NOTE,
              acknowledged_by: str = "") -> dict[str, Any]:
    """An ``alert_ack`` outcome event, valid under the event contract (checked before it is sent).

    ``acknowledged_by`` is who clicked (left out when unknown: an open inbox has no users)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    event = {"event_id": str(uuid.uuid4()), "customer_id": customer_id, "ts": format_ts(now), "type": "alert_ack",
             "schema_version": 1, "alert_id": alert_id, "note": note}
    if acknowledged_by:
        event["acknowledged_by"] = acknowledged_by
    validate("outcomes", event, now_ms=now, limits=Limits())  # raises InvalidEvent: a bug here, not input
    return event


__all__ = ["InboxState", "AckPlan", "ack_event", "as_score", "as_text", "ACK_NOTE", "UNASSIGNED", "CLOSING_OUTCOMES"]
