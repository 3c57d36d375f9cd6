"""The fault suite's own event generator and its independent oracle.

The fault tests judge the worker "as an outsider would": they do not trust any of the project's code to
say what the right answer is. So nothing here imports ``pipeline.core.features``, ``training.assess.shadow``,
``devtools.simulator`` or ``training``: events are made by a small seeded generator that only follows
the public event contract (README, "Topics and the event contract"), and the expected answer is the
simplest thing a customer-success manager would check — *how many distinct events of each source did
this customer send?* — counted by the test itself, by ``event_id``, from what it produced.

The worker's customer view reports the same numbers as ``applied`` (distinct events of the customer
applied to its state, per source), so a comparison per customer tells apart the two ways a streaming
pipeline goes wrong under faults: an event *lost* (count below the oracle) or *counted twice* (above).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Mapping

SOURCES = ("interactions", "tickets", "surveys", "customers", "outcomes")
DAY_MS = 86_400_000  # the suite's own constant: nothing is imported from the code under test
HOUR_MS = 3_600_000


def iso(ts_ms: int) -> str:
    """Epoch ms -> ``2026-11-20T10:00:00.000Z`` (the wire form of the contract)."""
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


@dataclass(frozen=True)
class Ev:
    """One event as produced: its logical source (topic suffix) and its JSON value."""

    source: str
    value: dict[str, Any]

    @property
    def event_id(self) -> str:
        return self.value["event_id"]

    @property
    def customer_id(self) -> str:
        return self.value["customer_id"]


INTERACTION_TYPES = ["login", "feature_use", "page_view", "help_view", "purchase",
                     "export_report", "api_call", "invite_sent"]  # the last three: "any other string"
INTERACTION_WEIGHTS = [30, 30, 22, 8, 2, 3, 3, 2]
FEATURES = ["dashboard", "reports", "billing", "integrations", "search", "alerts"]
SOURCE_WEIGHTS = {"interactions": 78, "tickets": 10, "surveys": 6, "customers": 4, "outcomes": 2}
SURVEYS = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
OUTCOMES = ["contacted", "renewed", "saved"]  # no 'churned': it stops scoring and is irrelevant here


class EventGenerator:
    """A seeded population of ``customers`` customers and their events in the last ``days`` days.

    Every choice comes from one ``random.Random(seed)``, so a test produces the same events on every
    run (only their absolute times move with the wall clock). Event ids are unique strings
    ``{tag}-{seq}``; pass a new ``tag`` per phase when a test needs to tell phases apart.
    """

    def __init__(self, seed: int, customers: int = 200, days: int = 20, prefix: str = "cust-",
                 now_ms: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.customer_ids = [f"{prefix}{i:04d}" for i in range(customers)]
        # a few busy customers and many quiet ones, as in real products
        self.activity = [self.rng.paretovariate(1.5) for _ in self.customer_ids]
        self.now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        self.start_ms = self.now_ms - days * DAY_MS
        self._seq = 0
        self._open_tickets: dict[str, list[str]] = {}
        self._ticket_seq = 0

    # ---- ids and times ---------------------------------------------------------------------------
    def next_id(self, tag: str) -> str:
        self._seq += 1
        return f"{tag}-{self._seq:06d}"

    def ts(self) -> str:
        # at least a minute in the past: never 'in the future' for a worker whose clock lags a little
        return iso(self.rng.randint(self.start_ms, self.now_ms - 60_000))

    def base(self, customer_id: str, typ: str, tag: str) -> dict[str, Any]:
        return {"event_id": self.next_id(tag), "customer_id": customer_id, "ts": self.ts(),
                "type": typ, "schema_version": 1}

    # ---- one event per source --------------------------------------------------------------------
    def interaction(self, cid: str, tag: str = "e") -> Ev:
        rng = self.rng
        typ = rng.choices(INTERACTION_TYPES, INTERACTION_WEIGHTS)[0]
        v = self.base(cid, typ, tag)
        if typ in ("feature_use", "help_view") or rng.random() < 0.3:
            v["feature"] = rng.choice(FEATURES)
        if rng.random() < 0.5:
            v["duration_s"] = round(rng.uniform(0, 900), 1)
        if typ == "help_view":
            v["success"] = rng.random() < 0.7
        return Ev("interactions", v)

    def ticket(self, cid: str, tag: str = "e") -> Ev:
        rng = self.rng
        open_ = self._open_tickets.setdefault(cid, [])
        if open_ and rng.random() < 0.6:
            tid = rng.choice(open_)
            typ = rng.choice(["agent_reply", "customer_reply", "escalated", "resolved", "closed", "reopened"])
            v = self.base(cid, typ, tag)
            v["ticket_id"] = tid
            if typ == "escalated" and rng.random() < 0.5:
                v["severity"] = rng.choice(["high", "critical"])
            if typ in ("resolved", "closed"):
                open_.remove(tid)
            return Ev("tickets", v)
        self._ticket_seq += 1
        tid = f"{cid}-t{self._ticket_seq}"
        open_.append(tid)
        v = self.base(cid, "opened", tag)
        v.update(ticket_id=tid, severity=rng.choice(["low", "medium", "high", "critical"]),
                 category=rng.choice(["billing", "bug", "how-to", "outage"]))
        if rng.random() < 0.5:
            v["sla_due"] = iso(self.rng.randint(self.now_ms - 10 * DAY_MS, self.now_ms + 3 * DAY_MS))
        return Ev("tickets", v)

    def survey(self, cid: str, tag: str = "e") -> Ev:
        typ = self.rng.choice(list(SURVEYS))
        lo, hi = SURVEYS[typ]
        v = self.base(cid, typ, tag)
        v["score"] = self.rng.randint(lo, hi)
        if self.rng.random() < 0.3:
            v["comment"] = self.rng.choice(["great", "slow exports", "pricing", "support took long"])
        return Ev("surveys", v)

    def profile(self, cid: str, tag: str = "e") -> Ev:
        rng = self.rng
        v = self.base(cid, "profile", tag)
        v.update(tier=rng.choice(["standard", "standard", "vip"]),
                 plan=rng.choice(["basic", "pro", "business", "enterprise"]),
                 mrr=round(rng.uniform(50, 5000), 2), csm=rng.choice(["alice", "bob", "chen", "dana"]),
                 signup_ts=iso(self.now_ms - rng.randint(30, 700) * DAY_MS),
                 renewal_ts=iso(self.now_ms + rng.randint(5, 360) * DAY_MS))
        return Ev("customers", v)

    def outcome(self, cid: str, tag: str = "e") -> Ev:
        v = self.base(cid, self.rng.choice(OUTCOMES), tag)
        if self.rng.random() < 0.5:
            v["note"] = "called the customer"
        return Ev("outcomes", v)

    def event(self, cid: str, source: str | None = None, tag: str = "e") -> Ev:
        if source is None:
            source = self.rng.choices(list(SOURCE_WEIGHTS), list(SOURCE_WEIGHTS.values()))[0]
        return {"interactions": self.interaction, "tickets": self.ticket, "surveys": self.survey,
                "customers": self.profile, "outcomes": self.outcome}[source](cid, tag)

    def stream(self, tag: str = "s") -> Iterator[Ev]:
        """Events without end, busy customers more often: for a producer that must not run dry
        before the test's faults are over (the oracle counts exactly what was sent)."""
        while True:
            cid = self.rng.choices(self.customer_ids, self.activity)[0]
            yield self.event(cid, tag=tag)

    # ---- a batch ---------------------------------------------------------------------------------
    def events(self, n: int, tag: str = "e", customers: list[str] | None = None) -> list[Ev]:
        """``n`` events over ``customers`` (default: all): every customer at least once (when n
        allows), the rest skewed toward busy customers; order shuffled (the seed decides)."""
        pool = customers if customers is not None else self.customer_ids
        activity = dict(zip(self.customer_ids, self.activity))
        weights = [activity.get(c, 1.0) for c in pool]
        chosen = list(pool[:n]) + self.rng.choices(pool, weights, k=max(0, n - len(pool)))
        out = [self.event(c, tag=tag) for c in chosen]
        self.rng.shuffle(out)
        return out


# ---- the oracle ---------------------------------------------------------------------------------
class Oracle:
    """Distinct events per customer and source, counted from what the test produced.

    ``add`` is idempotent per ``event_id`` (a re-sent event is one event); events that must NOT be
    applied (dead-letter material) are simply never added. Thread-safe: background producers add
    events as they send them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[str, tuple[str, str]] = {}
        self._counts: dict[str, Counter] = {}

    def add(self, ev: Ev) -> bool:
        with self._lock:
            if ev.event_id in self._ids:
                if self._ids[ev.event_id] != (ev.customer_id, ev.source):
                    raise ValueError(f"generator bug: event id {ev.event_id} reused for another event")
                return False
            self._ids[ev.event_id] = (ev.customer_id, ev.source)
            self._counts.setdefault(ev.customer_id, Counter())[ev.source] += 1
            return True

    def add_all(self, evs: Iterable[Ev]) -> None:
        for ev in evs:
            self.add(ev)

    def expect_customer(self, customer_id: str) -> None:
        """Mark a customer that must be known to the worker even with no applied events."""
        with self._lock:
            self._counts.setdefault(customer_id, Counter())

    @property
    def total(self) -> int:
        with self._lock:
            return len(self._ids)

    @property
    def customers(self) -> list[str]:
        with self._lock:
            return sorted(self._counts)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Expected ``applied`` of every customer, zeros included."""
        with self._lock:
            return {c: {s: cnt.get(s, 0) for s in SOURCES} for c, cnt in sorted(self._counts.items())}


# ---- comparing what the worker says with the oracle ---------------------------------------------
@dataclass(frozen=True)
class Unavailable:
    """The worker could not answer for this customer right now (HTTP 503, timeout, connection error,
    another 5xx). ``status`` is the HTTP status, or 0 for a transport error."""

    status: int
    detail: str = ""


Observed = Mapping[str, int] | None | Unavailable  # applied counts, None = 404 unknown customer


@dataclass
class Comparison:
    expected: dict[str, dict[str, int]]
    observed: dict[str, Observed]
    exact: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)       # some source below the oracle, or 404
    double: list[str] = field(default_factory=list)     # some source above the oracle
    unavailable: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, expected: dict[str, dict[str, int]], observed: dict[str, Observed]) -> "Comparison":
        cmp = cls(expected, observed)
        for cid, exp in expected.items():
            got = observed.get(cid, Unavailable(0, "not asked"))
            if isinstance(got, Unavailable):
                cmp.unavailable.append(cid)
                continue
            counts = {s: int((got or {}).get(s, 0)) for s in SOURCES}
            under = any(counts[s] < exp[s] for s in SOURCES) or (got is None and any(exp.values()))
            over = any(counts[s] > exp[s] for s in SOURCES)
            if under:
                cmp.lost.append(cid)
            if over:
                cmp.double.append(cid)
            if not under and not over:
                cmp.exact.append(cid)
        return cmp

    @property
    def ok(self) -> bool:
        return len(self.exact) == len(self.expected)

    def events_missing(self) -> int:
        return sum(max(0, e - self._got(c, s)) for c, exp in self.expected.items() for s, e in exp.items()
                   if not isinstance(self.observed.get(c), Unavailable))

    def events_extra(self) -> int:
        return sum(max(0, self._got(c, s) - e) for c, exp in self.expected.items() for s, e in exp.items()
                   if not isinstance(self.observed.get(c), Unavailable))

    def _got(self, cid: str, source: str) -> int:
        got = self.observed.get(cid)
        return 0 if got is None or isinstance(got, Unavailable) else int(got.get(source, 0))

    def numbers(self) -> str:
        return (f"customers={len(self.expected)} exact={len(self.exact)} lost={len(self.lost)} "
                f"double={len(self.double)} unavailable={len(self.unavailable)} "
                f"events_missing={self.events_missing()} events_extra={self.events_extra()}")

    def describe(self, examples: int = 3) -> str:
        lines = [self.numbers()]
        for label, ids in (("lost", self.lost), ("double", self.double), ("unavailable", self.unavailable)):
            for cid in ids[:examples]:
                got = self.observed.get(cid)
                lines.append(f"  {label} {cid}: expected {self.expected[cid]} got {got}")
        return "\n".join(lines)
