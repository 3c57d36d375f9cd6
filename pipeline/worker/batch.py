"""The batch processor: what the worker does with each micro-batch of input, and with the silence sweep.

One input loop (:mod:`pipeline.worker.intake`) consumes all input topics (they are co-partitioned, so
one worker owns all of a customer's events) in micro-batches. Per batch it validates, folds events into
the customers' states, scores every touched customer in one LightGBM call, asks the alert policy, makes
the new states durable, and only then sends the alerts (that write path is
:mod:`pipeline.worker.landing`). The state is churnwatch's own (:mod:`pipeline.worker.store`,
:mod:`pipeline.worker.changelog`): why not a Faust Table is explained there. The Faust app around this
(topics, intake, timers, rebalances, web server) is :mod:`pipeline.worker.app`; without it
(:meth:`BatchProcessor.detach`) the same code runs in unit tests, the replay parity test and benchmarks.

A batch can never be lost to one bad event: an event that raises while it is applied or while its
customer's state is stored is dead-lettered (``internal_error``) and the customer's state is rebuilt
without it; the rest of the batch goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

from pipeline.config.fields import StateStoreKind
from pipeline.config.policy_file import load_policy
from pipeline.config.settings import Settings
from pipeline.core.alerting import EVENT
from pipeline.core.contract import Event, InvalidEvent, Limits, parse
from pipeline.core.contract import DEFAULT_TIER
from pipeline.core.decisions import Touched, score_and_decide, vectorizer
from pipeline.core.features import Applied, CustomerState
from pipeline.core.fold import fold
from pipeline.core.rules import RulesConfig
from pipeline.core.sweep import SweepClock
from pipeline.model.registry import Registry
from pipeline.model.scoring import ModelHolder, Timed
from pipeline.worker import metrics
from pipeline.worker.health import Health
from pipeline.worker.landing import Landing
from pipeline.worker.silence import sweep_silent
from pipeline.worker.store import DiskMaps, PartitionState, StateStore, message_fingerprint
from pipeline.worker.webhook import WebhookSink

log = logging.getLogger("churnwatch.worker")

#: Events per micro-batch at most (a backlog is read in batches this big; paced traffic in what one fetch
#: brings, see :mod:`pipeline.worker.intake`).
BATCH_MAX = 500


@dataclass
class _Item:
    """One valid input message of a customer in the current batch."""

    event: Event
    topic: str
    partition: int
    offset: int
    raw: bytes
    key: bytes | None


class BatchProcessor(Landing):
    """What the worker's input loop, sweep and rebalances share (state, model, policy, config, health), and
    the batch and sweep code that runs on it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = Registry(settings.models_dir)
        self.feature_cfg = settings.feature_config()
        self.models = ModelHolder(self.registry, check_timeout_s=settings.model_check_timeout_s,
                                  feature_cfg=self.feature_cfg)
        self.policy = load_policy(settings.policy_file)
        alerts, rules = self.policy.alerts, self.policy.rules
        metrics.init_labels(settings.input_topics.values(),
                            tiers={DEFAULT_TIER, *alerts.thresholds, *alerts.file_thresholds, *rules.vip_tiers},
                            rules=RulesConfig().enabled | rules.enabled)
        self.alerted_outcomes: dict[str, int] = {}
        self.limits = Limits(
            max_future_ms=int(settings.max_future_s * 1000),
            min_ts_ms=int((settings.min_event_year - 1970) * 365.2425 * 86_400_000),
            max_bytes=settings.max_event_bytes,
        )
        self.source_of = {topic: src for src, topic in settings.input_topics.items()}
        self.clock = SweepClock(
            interval_ms=int(settings.sweep_interval_days * 86_400_000),
            idle_ms=int(settings.sweep_idle_days * 86_400_000),
            realtime_idle_ms=int(settings.realtime_idle_s * 1000),
            behaviour_lag_ms=int(settings.behaviour_lag_s * 1000),
        )
        self.writer = uuid.uuid4().hex
        self.landed_offsets = {}
        self.store = StateStore(self.writer)  # in memory until open_store (detach keeps it there)
        #: the current batch's stored states, read in one lookup per partition (None: not stored yet)
        self._prefetched: dict[bytes, bytes | None] = {}
        self.health = Health()
        # The input loop, the sweep and rebalances all read-modify-write the store; across their awaits a
        # lock keeps one from overwriting another's newer state.
        self.state_lock = asyncio.Lock()
        # Optional chat copy of every alert; it must never hold up scoring (see pipeline.worker.webhook).
        self.webhook: WebhookSink | None = None
        if settings.webhook_url.get_secret_value():
            self.webhook = WebhookSink(
                settings.webhook_url.get_secret_value(), timeout_s=settings.webhook_timeout_s,
                max_attempts=settings.webhook_max_attempts, backoff_s=settings.webhook_backoff_s,
                queue_size=settings.webhook_queue_size, on_failure=self._webhook_failed,
            )
        #: the Faust app carrying this processor (set by :class:`pipeline.worker.app.WorkerApp`): its
        #: producer makes writes durable, its consumer says which partitions are assigned
        self.app: Any = None

    def open_store(self) -> None:
        """Keep states in the local store the settings ask for (a worker process; not the unit tests)."""
        s = self.settings
        if s.state_store == StateStoreKind.DISK:
            self.store = StateStore(self.writer, DiskMaps(s.data_dir / "state" / s.changelog_topic,
                                                          s.state_cache_mb, s.partitions))

    # ---- partitions and durable writes --------------------------------------------------------------
    def input_partitions(self, tps: Any) -> set[int]:
        inputs = set(self.source_of)
        return {tp.partition for tp in tps or () if tp.topic in inputs}

    def assigned_partitions(self) -> set[int]:
        return self.input_partitions(self.app.consumer.assignment())

    def detach(self, sink: Any) -> None:
        """Run the batch and sweep code without a broker (unit tests, benchmarks): this worker owns
        every partition, and each durable write is handed to ``sink(records)`` and acknowledged."""
        from types import SimpleNamespace

        async def durable(records: Sequence[tuple[str, bytes | None, bytes | None, int | None]]) -> list[Any]:
            sink(records)
            return [SimpleNamespace(offset=0) for _ in records]

        self.durable = durable  # type: ignore[method-assign]
        self.store.parts = {p: PartitionState(p) for p in range(self.settings.partitions)}
        self.health.recovering = False
        self.assigned_partitions = lambda: set(range(self.settings.partitions))  # type: ignore[method-assign]

    def refresh_model(self) -> None:
        previous = self.models.model.version if self.models.model else None
        status, detail = self.models.refresh()
        if status == "loaded":
            metrics.set_model(detail, previous)
        elif status not in ("unchanged", "none"):
            metrics.MODEL_RELOAD_FAILURES.labels(reason=status).inc()
        self.health.model_loaded = self.models.model is not None
        self.health.model_promoted = status != "none" or self.models.model is not None

    # ---- the input's batches -------------------------------------------------------------------------
    async def process_batch(self, batch: list[Any]) -> None:
        """``batch``: input messages as the consumer fetched them (``topic``, ``partition``, ``offset``,
        ``key`` and ``value``, the raw bytes), see :mod:`pipeline.worker.intake`."""
        self.health.batch_started()
        try:
            async with self.state_lock:
                await self._process_batch(batch)
        finally:
            self.health.batch_done()

    def _load(self, partition: int, key: bytes, customer_id: str) -> CustomerState:
        raw = self._prefetched.get(key) if key in self._prefetched else self.store.get(partition, key)
        return CustomerState.from_bytes(raw) if raw else CustomerState(customer_id)

    def _validate(self, msg: Any, value: bytes | None, now_ms: int) -> Event:
        source = self.source_of.get(msg.topic)
        if source is None:
            raise InvalidEvent("unknown_source", f"topic {msg.topic} is not an input topic")
        ev = parse(source, value, now_ms, self.limits)
        if msg.key is None:
            raise InvalidEvent("missing_key", "message has no key (topics must be keyed by customer_id)")
        if msg.key != ev.customer_id.encode():
            raise InvalidEvent("key_mismatch", "message key differs from customer_id (topics must be keyed by customer)")
        return ev

    def _fold(self, entry: Touched, item: _Item) -> Applied:
        """:func:`pipeline.core.fold.fold`, the replay's fold too, with where the message was read."""
        return fold(entry, item.event, self.feature_cfg, self.policy.rules, offset=item.offset, partition=item.partition)

    def _check(self, entry: Touched) -> bytes:
        """What storing and scoring a state needs; raises if a poisoned value got in. The vector as of
        the newest event, in the current model's spec, is kept on the entry: it is the one the event
        scoring uses (unless the model changes before it, see :func:`decisions.vectorizer`)."""
        entry.as_of_ms = entry.state.last_ms
        entry.row_names, vec = vectorizer(self.models.model)
        entry.row = vec(entry.state, entry.as_of_ms)
        return entry.state.to_bytes()

    def _customer(self, p: int, key: bytes, cid: str, items: list[_Item],
                  dead: list[tuple[_Item, str, str]]) -> tuple[Touched, list[_Item], bytes] | None:
        """Fold one customer's events of this batch. Fast path: all at once, checked once. If anything
        raises, again one event at a time, checking after each, dead-lettering what breaks it."""
        try:
            entry = Touched(self._load(p, key, cid), p)
            results = [self._fold(entry, it) for it in items]
            return entry, self._sorted(items, results, dead), self._check(entry)
        except Exception:
            pass
        try:
            entry = Touched(self._load(p, key, cid), p)
            good = self._check(entry)
        except Exception as exc:
            for it in items:
                dead.append((it, "internal_error", f"stored state unreadable: {type(exc).__name__}: {exc}"))
            log.error("state of customer %r is unreadable; its events are dead-lettered", cid)
            return None
        kept: list[_Item] = []
        for it in items:
            before = (list(entry.rule_hits), entry.score_needed, entry.row, entry.as_of_ms)
            try:
                result = self._fold(entry, it)
                good_next = self._check(entry)
            except Exception as exc:
                entry.state = CustomerState.from_bytes(good)
                entry.rule_hits, entry.score_needed, entry.row, entry.as_of_ms = before
                dead.append((it, "internal_error", f"{type(exc).__name__}: {exc}"))
                metrics.INTERNAL_ERRORS.labels(stage="apply").inc()
                continue
            good = good_next
            kept += self._sorted([it], [result], dead)
        return entry, kept, good

    @staticmethod
    def _sorted(items: list[_Item], results: list[Applied], dead: list[tuple[_Item, str, str]]) -> list[_Item]:
        applied: list[_Item] = []
        for it, result in zip(items, results):
            if result is Applied.APPLIED:
                applied.append(it)
            elif result is Applied.DUPLICATE:
                metrics.DUPLICATES.labels(topic=it.topic).inc()
            else:
                dead.append((it, "too_late", "older than the allowed lateness before the customer's newest "
                                             "event: whether it was applied can no longer be told"))
        return applied

    async def _process_batch(self, batch: list[Any]) -> None:
        now_ms = int(time.time() * 1000)
        per_customer: dict[bytes, list[_Item]] = {}
        partitions: set[int] = set()
        dead: list[tuple[_Item, str, str]] = []
        #: per (partition, topic): the first and the last message of the batch (positions need no more)
        ends: dict[tuple[int, str], list[Any]] = {}
        for msg in batch:
            part = self.store.parts.get(msg.partition)
            if part is None:
                continue  # not ours (any more): its owner reads it from the position in the state
            partitions.add(msg.partition)
            end = ends.get((msg.partition, msg.topic))
            if end is None:
                ends[(msg.partition, msg.topic)] = [msg, msg, 1]
            else:
                end[1] = msg
                end[2] += 1
            item = _Item(None, msg.topic, msg.partition, msg.offset, msg.value, msg.key)  # type: ignore[arg-type]
            try:
                item.event = self._validate(msg, msg.value, now_ms)
            except InvalidEvent as exc:
                dead.append((item, exc.reason, exc.detail))
                continue
            except Exception as exc:  # the contract must not raise anything else; if it does, contain it
                dead.append((item, "internal_error", f"{type(exc).__name__}: {exc}"))
                metrics.INTERNAL_ERRORS.labels(stage="parse").inc()
                continue
            per_customer.setdefault(item.event.customer_id.encode(), []).append(item)
        self._advance(ends)
        touched: dict[bytes, tuple[Touched, bytes]] = {}
        newest = 0
        self._prefetch(per_customer)
        for key, items in per_customer.items():
            folded = self._customer(items[0].partition, key, items[0].event.customer_id, items, dead)
            if folded is None:
                continue
            entry, applied, value = folded
            touched[key] = (entry, value)
            for it in applied:
                ev = it.event
                self.clock.observe(it.partition, ev.ts_ms, now_ms, ev.source)
                if ev.source == "outcomes":
                    self._count_outcome(entry.state, ev)
                newest = max(newest, ev.ts_ms)
        if newest:
            metrics.EVENT_LAG.set(max(0.0, (now_ms - newest) / 1000))
        scored = [entry for entry, _ in touched.values() if entry.score_needed]  # rows kept by _check
        results = self.decide(scored, now_ms, EVENT)
        states: dict[int, dict[bytes, bytes]] = {p: {} for p in partitions}
        for key, (entry, value) in touched.items():
            if entry.score_needed:
                try:
                    value = entry.state.to_bytes()  # the decision updated the alert memory
                except Exception:
                    log.exception("customer %r: alert memory not storable; keeping the state without it", key)
            states.setdefault(entry.partition, {})[key] = value
        await self.commit(states, results, dead, now_ms, wait=False)

    def _advance(self, ends: dict[tuple[int, str], list[Any]]) -> None:
        """Move each partition's input position to the batch's last message (fingerprinting two messages
        per partition and topic, not every one)."""
        for (p, topic), (first, last, n) in ends.items():
            part = self.store.parts[p]
            if topic not in part.position.topics:  # the first message ever read here is the origin
                part.advance(topic, first.offset, message_fingerprint(first.key, first.value))
            part.advance(topic, last.offset, message_fingerprint(last.key, last.value))
            metrics.EVENTS_CONSUMED.labels(topic=topic).inc(n)

    def _prefetch(self, per_customer: dict[bytes, list[_Item]]) -> None:
        """Read the batch's stored states in one lookup per partition, not one per customer."""
        keys: dict[int, list[bytes]] = {}
        for key, items in per_customer.items():
            keys.setdefault(items[0].partition, []).append(key)
        self._prefetched = {}
        for p, ks in keys.items():
            part = self.store.parts.get(p)
            if part is not None:
                found = part.get_many(ks)
                self._prefetched.update((k, found.get(k)) for k in ks)

    def decide(self, entries: list[Touched], now_ms: int, trigger: str) -> list[Any]:
        """:func:`pipeline.core.decisions.score_and_decide`, contained: a failure costs the alerts of this
        call (counted, logged), never the events or the states."""
        try:
            model = self.models.model
            timed = Timed(model, self._observe_latency) if model is not None else None
            return score_and_decide(entries, timed, self.policy, trigger, now_ms, held=self.clock.behind)
        except Exception:
            metrics.INTERNAL_ERRORS.labels(stage="score").inc()
            log.exception("scoring %d customers failed; their states are kept, no alerts from this call", len(entries))
            return []

    # ---- the silence sweep and the outcome counts ----------------------------------------------------
    async def sweep(self) -> None:
        """Re-score customers gone quiet (:mod:`pipeline.worker.silence`)."""
        await sweep_silent(self)

    def _count_outcome(self, state: CustomerState, ev: Event) -> None:
        """Closing the loop: outcomes overall, and outcomes of customers churnwatch had alerted."""
        metrics.OUTCOMES.labels(type=ev.type).inc()
        if state.alert.alerted_before(ev.ts_ms):
            metrics.ALERTED_OUTCOMES.labels(type=ev.type).inc()
            self.alerted_outcomes[ev.type] = self.alerted_outcomes.get(ev.type, 0) + 1
            saved, churned = self.alerted_outcomes.get("saved", 0), self.alerted_outcomes.get("churned", 0)
            if saved + churned:
                metrics.SAVE_RATE.set(saved / (saved + churned))

    @staticmethod
    def _observe_latency(seconds: float, rows: int) -> None:
        metrics.SCORING_LATENCY.observe(seconds)
        metrics.SCORED.inc(rows)
