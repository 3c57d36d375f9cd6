"""Offline replay of the stream worker's per-customer logic: events in, the alerts the worker would send out.

Used to measure alert quality (``bench/alert_quality.py``: alerts per week, precision, lead time) without a
broker. :class:`Replayer` folds time-ordered events through the *same pure functions*
:class:`pipeline.worker.batch.BatchProcessor` calls, in the same order:

* **micro-batches** of up to :data:`BATCH_MAX` events (the worker's ``BATCH_MAX``, :mod:`pipeline.worker.intake`): each event is
  folded into its customer's entry by :func:`pipeline.core.fold.fold`, the function ``BatchProcessor._fold`` calls (an
  outcome feeds the alert memory, any other event runs the event rules and marks its customer for scoring);
* every customer touched in the batch is scored **once**, as of its newest event (``state.last_ms``), all in
  one ``model.predict`` call; then :func:`pipeline.core.decisions.score_and_decide` — the very function
  ``BatchProcessor._decide`` wraps with its I/O — applies :func:`pipeline.core.alerting.decide`, the model's reasons
  and play, the score-time rules (:func:`pipeline.core.rules.on_score`, their cool-downs
  :meth:`pipeline.core.alert_memory.AlertMemory.rule_due`) and
  :meth:`pipeline.core.alert_memory.AlertMemory.record`;
* the **silence sweep**: a :class:`pipeline.core.sweep.SweepClock` per partition (customers are spread over
  ``partitions`` with Kafka's default murmur2 partitioner, as the producers do); whenever a partition's event
  time has advanced by a day, its customers quiet for a day are re-scored as of that time (trigger
  ``sweep``), exactly as ``BatchProcessor.sweep`` does.

``tests/unit/training/assess/test_shadow.py`` runs the real ``BatchProcessor.process_batch`` and ``BatchProcessor.sweep`` (Kafka
stubbed) on the same events and requires identical alerts, so a change to the worker's batching or sweep
that this module does not follow fails a test.

Where the replay differs from a running worker, and why:

* **No Kafka.** Events arrive as :class:`~pipeline.core.contract.Event` objects, already validated (see
  :func:`events_from_records`, which validates simulator records with :func:`pipeline.core.contract.validate`,
  i.e. ``contract.parse`` minus the JSON decoding). Invalid records are counted, not dead-lettered.
* **No offsets.** ``fold(..., offset=None)``: events are deduplicated by event id, as in the worker,
  but there are no input positions to keep. States stay Python objects (the worker round-trips them through ``to_bytes``).
* **The wall clock is event time.** An alert's ``emit_ms`` is its event time, and the sweep clocks never
  switch to the wall clock (``realtime_idle_ms`` does not apply). The sweep is checked after every batch;
  the worker checks every wall-clock second, which in real time is the same thing (a day of event time
  between sweeps). A worker *catching up* a backlog sweeps less often, since days of event time pass
  per wall second.
* **Batches.** Batches hold ``batch_max`` consecutive events in time order (a worker under load or catching
  up). A live worker at real-time rates mostly sees one event per batch; ``batch_max=1`` replays that
  (customers are then scored after every event instead of once per ~30 min of a 5,000-customer stream).
* **No acknowledgements.** Nobody acts on the alerts offline, so an open alert closes only by expiring
  (30 days), and no customer is saved by a CSM. With real CSMs acknowledging, escalations stop earlier.
* One model for the whole replay (no hot reload); no metrics, no ``churn.scores``, no webhook: callers get
  every scoring through ``observers`` instead.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Iterator, Sequence

from pipeline.core import alerting
from pipeline.core.alert_memory import AlertMemory
from pipeline.core.alerting import Alert, AlertConfig
from pipeline.core.contract import DAY_MS, DEFAULT_TIER, Event, InvalidEvent, Limits, parse, validate
from pipeline.core.decisions import Scoring, ScoringModel, Touched, score_and_decide
from pipeline.core.features import CustomerState, FeatureConfig
from pipeline.core.fold import fold
from pipeline.core.policy import AlertPolicy
from pipeline.core.sweep import SweepClock
from pipeline.kafka.partitioner import partitioner

#: Events per micro-batch: the worker's ``pipeline.worker.batch.BATCH_MAX`` (a unit test keeps the two equal).
BATCH_MAX = 500
#: The worker's default partition count (``CHURNWATCH_PARTITIONS``); partitions only matter to the sweep.
PARTITIONS = 4


def events_from_records(records: Iterable[Any], limits: Limits = Limits(), stats: Counter | None = None) -> Iterator[Event]:
    """Simulator records (``source``, ``ts_ms``, ``value``) -> validated events, with the record's own time
    as the wall clock (a worker reading the stream live). Invalid records are counted in ``stats['invalid']``."""
    for rec in records:
        try:
            if isinstance(rec.value, (bytes, bytearray)):
                yield parse(rec.source, bytes(rec.value), rec.ts_ms, limits)
            else:
                yield validate(rec.source, rec.value, rec.ts_ms, limits)
        except InvalidEvent:
            if stats is not None:
                stats["invalid"] += 1


Observer = Callable[[Scoring], None]


class Replayer:
    """The worker's per-customer state, scoring, alert policy, rules and silence sweep, without Kafka.

    Feed events in event-time order with :meth:`run` (or :meth:`process_batch` per micro-batch). Every alert
    ends up in :attr:`alerts`; every scoring (event or sweep) is passed to each observer.
    """

    def __init__(self, model: ScoringModel | None, policy: AlertPolicy | None = None, *,
                 feature_cfg: FeatureConfig = FeatureConfig(), batch_max: int = BATCH_MAX,
                 partitions: int = PARTITIONS, sweep: SweepClock | None = None, use_sweep: bool = True,
                 observers: Sequence[Observer] = ()) -> None:
        if batch_max < 1:
            raise ValueError("batch_max must be >= 1")
        self.model = model
        self.policy = policy or AlertPolicy()
        self.feature_cfg = feature_cfg
        self.batch_max = batch_max
        self.partition_of = partitioner(partitions)
        self.clock: SweepClock | None = (sweep or SweepClock(interval_ms=DAY_MS, idle_ms=DAY_MS)) if use_sweep else None
        self.observers = list(observers)
        self.states: dict[str, CustomerState] = {}
        self._partitions: dict[str, int] = {}
        self.alerts: list[Alert] = []
        self.counts: Counter = Counter()
        #: seconds spent in batch processing and sweeps (the replay's own cost, without the event source)
        self.busy_s = 0.0

    # ---- the event path (BatchProcessor._process_batch) ---------------------------------------------
    def run(self, events: Iterable[Event]) -> None:
        """Process ``events`` (time-ordered) in micro-batches of ``batch_max``, sweeping between batches."""
        batch: list[Event] = []
        for ev in events:
            batch.append(ev)
            if len(batch) >= self.batch_max:
                self.process_batch(batch)
                batch = []
        if batch:
            self.process_batch(batch)

    def process_batch(self, batch: Sequence[Event]) -> list[Alert]:
        """One micro-batch, then the sweep if it is due; returns the alerts emitted."""
        t0 = time.perf_counter()
        n0 = len(self.alerts)
        touched: dict[str, Touched] = {}
        for ev in batch:
            cid = ev.customer_id
            entry = touched.get(cid)
            if entry is None:
                part = self._partitions.get(cid)
                if part is None:
                    part = self._partitions[cid] = self.partition_of(cid)
                state = self.states.get(cid)
                if state is None:
                    state = self.states[cid] = CustomerState(cid)
                entry = touched[cid] = Touched(state, part)
            if not fold(entry, ev, self.feature_cfg, self.policy.rules):
                continue  # a duplicate or too late: the worker dead-letters or skips it, nothing else
            if self.clock is not None:
                self.clock.observe(entry.partition, ev.ts_ms, 0, ev.source)
        self.counts["events"] += len(batch)
        self.counts["batches"] += 1
        scored = [t for t in touched.values() if t.score_needed]
        for entry in scored:
            entry.as_of_ms = entry.state.last_ms
        self._score(scored, alerting.EVENT)
        self.busy_s += time.perf_counter() - t0
        self.sweep()
        return self.alerts[n0:]

    # ---- the silence sweep (BatchProcessor.sweep) ---------------------------------------------------
    def sweep(self) -> list[Alert]:
        """Re-score customers gone quiet on every partition whose event clock moved a day (if any)."""
        if self.clock is None or self.model is None or not self.clock.clocks:
            return []
        due = self.clock.due(0)
        if not due:
            return []
        t0 = time.perf_counter()
        n0 = len(self.alerts)
        entries = [Touched(st, st.partition, True, due[st.partition]) for st in self.states.values()
                   if st.partition in due and not st.churned_ms and self.clock.is_idle(st.last_ms, due[st.partition])]
        self.counts["sweeps"] += 1
        self._score(entries, alerting.SWEEP)
        self.busy_s += time.perf_counter() - t0
        return self.alerts[n0:]

    def _score(self, entries: list[Touched], trigger: str) -> None:
        if not entries:
            return
        results = score_and_decide(entries, self.model, self.policy, trigger,
                                   held=self.clock.behind if self.clock is not None else None)
        self.counts[f"scorings_{trigger}"] += len(entries)
        for s in results:
            self.alerts += s.alerts
            for observe in self.observers:
                observe(s)


@dataclass
class ShadowAlert:
    customer_id: str
    tier: str
    event_ms: int
    trigger: str


class ShadowSignal:
    """A what-if signal under the *same* alert policy, fed the replay's scorings (an observer).

    ``signal(row)`` is a yes/no rule on the feature vector (e.g. "logins halved week over week"). It is run
    through :func:`pipeline.core.alerting.decide` as a score of 1 or 0 against a threshold of 0.5, with its own
    per-customer memory: the same minimum history, one open alert until expiry, cool-down, and re-arming
    once the signal clears (escalations cannot happen). So a baseline and the model differ only in signal.
    """

    def __init__(self, name: str, signal: Callable[[Sequence[float]], bool], cfg: AlertConfig = AlertConfig()) -> None:
        self.name = name
        self.signal = signal
        self.cfg = replace(cfg, thresholds={DEFAULT_TIER: 0.5}, file_thresholds={})
        self.memory: dict[str, AlertMemory] = {}
        self.alerts: list[ShadowAlert] = []

    def __call__(self, s: Scoring) -> None:
        st, as_of = s.entry.state, s.entry.as_of_ms
        memory = self.memory.get(st.customer_id)
        if memory is None:
            memory = self.memory[st.customer_id] = AlertMemory()
        score = 1.0 if self.signal(s.row) else 0.0
        decision = alerting.decide(memory, score=score, tier=st.tier, now_ms=as_of,
                                   history_days=(as_of - st.first_ms) / DAY_MS if st.first_ms else 0.0,
                                   churned=bool(st.churned_ms), cfg=self.cfg, trigger=self.name)
        if decision is not None and decision.kind == alerting.NEW:
            memory.record(alerting.build(st.customer_id, st.tier, st.csm, score, decision, [], "", None, as_of, as_of))
            self.alerts.append(ShadowAlert(st.customer_id, st.tier, as_of, self.name))
