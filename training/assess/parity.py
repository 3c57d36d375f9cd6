"""Stream/offline parity: recompute, from the event log, the exact feature vectors the stream scored.

The worker can publish every scoring with its feature vector and the per-source offset watermarks of
the state it scored (``CHURNWATCH_EMIT_SCORES=1``). Given the same events with their offsets, the
offline side replays, for each scoring, exactly the events the stream had applied — in event-time
order, through the same feature code — and takes the vector at the same time. Any difference means
the model is served features it was not trained on.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from pipeline.core.contract import Event
from pipeline.core.features import CustomerState, FeatureConfig, apply
from pipeline.core.spec import CompiledSpec, FeatureSpec, compile_spec

LEGACY = compile_spec(FeatureSpec.legacy_spec())

SOURCE_ORDER = {"customers": 0, "interactions": 1, "tickets": 2, "surveys": 3, "outcomes": 4}


@dataclass
class Mismatch:
    customer_id: str
    ts_ms: int
    feature: str
    stream: float | None
    offline: float | None


@dataclass
class ParityReport:
    rows: int = 0
    values: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    max_abs_diff: float = 0.0

    @property
    def mismatched_rows(self) -> int:
        return len({(m.customer_id, m.ts_ms) for m in self.mismatches})


def _same(a: float | None, b: float | None, tol: float) -> bool:
    a = math.nan if a is None else a
    b = math.nan if b is None else b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol


def offline_vector(events: Sequence[tuple[Event, int]], offsets: dict[str, int], ts_ms: int,
                   cfg: FeatureConfig = FeatureConfig(), compiled: CompiledSpec = LEGACY) -> list[float]:
    """The vector of a customer whose applied events are those at or below ``offsets`` per source.

    The stream records offsets per ``source:partition``; all of a customer's events are on one
    partition (the contract dead-letters a message whose key is not its customer), so per source the
    highest recorded offset is the limit."""
    limit: dict[str, int] = {}
    for where, off in offsets.items():
        src = where.split(":", 1)[0]
        limit[src] = max(limit.get(src, -1), int(off))
    chosen = [ev for ev, off in events if off <= limit.get(ev.source, -1)]
    chosen.sort(key=lambda ev: (ev.ts_ms, SOURCE_ORDER.get(ev.source, 9)))
    state = CustomerState(events[0][0].customer_id if events else "")
    for ev in chosen:
        apply(state, ev, None, cfg)
    return compiled.vector(state, ts_ms)


def compare(scores: Iterable[dict[str, Any]], events: Iterable[tuple[Event, int]], tol: float = 1e-9,
            cfg: FeatureConfig = FeatureConfig(), compiled: CompiledSpec = LEGACY) -> ParityReport:
    """Compare streamed score records (``customer_id``, ``ts_ms``, ``offsets``, ``features``) with
    offline recomputation from ``(event, offset)`` pairs of the same topics, through the feature spec
    of the model that scored them (``compiled``). A record of another width is one mismatch."""
    by_customer: dict[str, list[tuple[Event, int]]] = defaultdict(list)
    for ev, off in events:
        by_customer[ev.customer_id].append((ev, off))
    report = ParityReport()
    for rec in scores:
        cid = rec["customer_id"]
        offline = offline_vector(by_customer.get(cid, []), rec.get("offsets", {}), rec["ts_ms"], cfg, compiled)
        report.rows += 1
        if len(rec["features"]) != len(offline):
            report.mismatches.append(Mismatch(cid, rec["ts_ms"], "(vector width)", len(rec["features"]), len(offline)))
            continue
        for name, s_val, o_val in zip(compiled.names, rec["features"], offline):
            report.values += 1
            if not _same(s_val, o_val, tol):
                report.mismatches.append(Mismatch(cid, rec["ts_ms"], name, s_val, o_val))
            elif s_val is not None and not math.isnan(s_val):
                report.max_abs_diff = max(report.max_abs_diff, abs(s_val - o_val))
    return report
