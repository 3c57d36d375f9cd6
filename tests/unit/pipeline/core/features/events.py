"""Events and states for the feature tests: one customer ``c1`` around a fixed time ``T0``."""

from __future__ import annotations

import itertools
import math

from hypothesis import strategies as st

from pipeline.core.contract import DAY_MS, HOUR_MS, Event, parse_ts
from pipeline.core.features import FEATURES, CustomerState, FeatureConfig, apply, as_dict, vector

T0 = parse_ts("2024-06-15T12:00:00Z")
_ids = itertools.count()


def ev(source: str, typ: str, ts: int, cid: str = "c1", **data) -> Event:
    return Event(source, f"e{next(_ids)}", cid, ts, typ, data)


def login(ts: int, **kw) -> Event:
    return ev("interactions", "login", ts, **kw)


def opened(tid: str, ts: int, severity: str = "low", sla_due_ms: int | None = None) -> Event:
    data = {"ticket_id": tid, "severity": severity}
    if sla_due_ms is not None:
        data["sla_due_ms"] = sla_due_ms
    return ev("tickets", "opened", ts, **data)


def ticket(typ: str, tid: str, ts: int, **data) -> Event:
    return ev("tickets", typ, ts, ticket_id=tid, **data)


def survey(typ: str, score: float, ts: int) -> Event:
    return ev("surveys", typ, ts, score=float(score))


def state_of(*events: Event, cfg: FeatureConfig = FeatureConfig()) -> CustomerState:
    st_ = CustomerState("c1")
    for e in events:
        assert apply(st_, e, None, cfg)
    return st_


def feats(state: CustomerState, now_ms: int = T0) -> dict[str, float]:
    vec = vector(state, now_ms)
    assert len(vec) == len(FEATURES)
    return as_dict(vec)


def same_vector(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b))


_INTERACTION_TYPES = ["login", "feature_use", "page_view", "help_view", "purchase", "custom_event"]
_TICKET_TYPES = ["opened", "agent_reply", "customer_reply", "escalated", "resolved", "reopened", "closed"]


@st.composite
def any_event(draw, base_ms: int = T0, span_days: int = 120) -> Event:
    ts = base_ms + draw(st.integers(min_value=0, max_value=span_days * DAY_MS))
    kind = draw(st.sampled_from(["interactions", "interactions", "tickets", "surveys", "customers", "outcomes"]))
    if kind == "interactions":
        typ = draw(st.sampled_from(_INTERACTION_TYPES))
        data = {}
        if typ == "help_view":
            data["success"] = draw(st.booleans())
        return ev(kind, typ, ts, **data)
    if kind == "tickets":
        typ = draw(st.sampled_from(_TICKET_TYPES))
        data = {"ticket_id": draw(st.sampled_from(["t1", "t2", "t3"]))}
        if typ == "opened" or draw(st.booleans()):
            data["severity"] = draw(st.sampled_from(["low", "medium", "high", "critical"]))
        if draw(st.booleans()):
            data["sla_due_ms"] = ts + draw(st.integers(min_value=HOUR_MS, max_value=5 * DAY_MS))
        return ev(kind, typ, ts, **data)
    if kind == "surveys":
        typ = draw(st.sampled_from(["nps", "csat", "ces"]))
        lo, hi = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}[typ]
        return survey(typ, draw(st.integers(min_value=lo, max_value=hi)), ts)
    if kind == "customers":
        data = {}
        if draw(st.booleans()):
            data["tier"] = draw(st.sampled_from(["vip", "standard"]))
        if draw(st.booleans()):
            data["mrr"] = draw(st.floats(min_value=0, max_value=1e6, allow_nan=False))
        if draw(st.booleans()):
            data["signup_ms"] = ts - draw(st.integers(min_value=0, max_value=800)) * DAY_MS
        if draw(st.booleans()):
            data["plan"] = draw(st.sampled_from(["basic", "pro", "enterprise", "weird"]))
        return ev(kind, "profile", ts, **data)
    return ev(kind, draw(st.sampled_from(["churned", "renewed", "contacted", "alert_ack"])), ts)
