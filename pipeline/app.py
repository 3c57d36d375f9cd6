"""The Faust worker: a thin I/O shell around the pure core (contract, features, scoring, alerting).

One agent consumes all input topics (they are co-partitioned, so one worker owns all of a customer's
events) in micro-batches. Per batch it validates, folds events into the customers' states, scores every
touched customer in one LightGBM call, asks the alert policy, and writes each touched state back once.
State writes are routed to the changelog partition of the customer's own events explicitly, because
outside the per-event context Faust would pick the wrong one.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from typing import Any

import faust
import orjson

from pipeline import alerting, explain, metrics, rules
from pipeline.contract import Event, InvalidEvent, Limits, format_ts, parse
from pipeline.decisions import Touched, score_and_decide
from pipeline.features import CustomerState, FeatureConfig, apply, as_dict, vector
from pipeline.policy import load_policy
from pipeline.registry import Registry
from pipeline.scoring import ModelHolder
from pipeline.settings import Settings
from pipeline.sweep import SweepClock
from pipeline.webhook import WebhookSink

log = logging.getLogger("churnwatch.worker")

BATCH_MAX = 500
BATCH_WITHIN_S = 0.05


def deadletter_record(raw: bytes | None, key: bytes | None, topic: str, partition: int, offset: int,
                      reason: str, detail: str, now_ms: int) -> bytes:
    """What lands on the dead-letter topic: enough to inspect, fix and replay the original message."""
    value = raw or b""
    try:
        text: str | None = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return orjson.dumps({
        "reason": reason,
        "detail": detail,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": key.decode("utf-8", "replace") if key else None,
        "original": text if text is not None and len(text) <= 65_536 else None,
        "original_b64": None if text is not None else base64.b64encode(value[:65_536]).decode(),
        "original_bytes": len(value),
        "rejected_ms": now_ms,
    })


class Worker:
    """Builds the Faust app and holds what its agents share (model, policy, config)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = Registry(settings.models_dir)
        self.models = ModelHolder(self.registry)
        self.policy = load_policy(settings.policy_file)
        self.alerted_outcomes: dict[str, int] = {}
        self.feature_cfg = FeatureConfig(allowed_lateness_days=settings.allowed_lateness_days)
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
        # The agent and the sweep both read-modify-write customer states; across their awaits a
        # lock keeps one from overwriting the other's newer state.
        self.state_lock = asyncio.Lock()
        # Optional chat copy of every alert; it must never hold up scoring (see pipeline.webhook).
        self.webhook: WebhookSink | None = None
        if settings.webhook_url:
            self.webhook = WebhookSink(
                settings.webhook_url, timeout_s=settings.webhook_timeout_s,
                max_attempts=settings.webhook_max_attempts, backoff_s=settings.webhook_backoff_s,
                queue_size=settings.webhook_queue_size, on_failure=self._webhook_failed,
            )
        self.app = self._build_app()

    # ---- Faust wiring ------------------------------------------------------------------------
    def _build_app(self) -> faust.App:
        s = self.settings
        app = faust.App(
            s.app_id,
            broker=s.broker,
            store="memory://",
            topic_partitions=s.partitions,
            topic_replication_factor=1,
            datadir=str(s.data_dir / "faust"),
            web_enabled=True,
            web_port=s.web_port,
            web_bind=s.web_host,
            web_host=s.web_host,
            canonical_url=f"http://{s.web_host}:{s.web_port}",
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=s.session_timeout_s,
            broker_heartbeat_interval=s.heartbeat_s,
            broker_rebalance_timeout=s.rebalance_timeout_s,
            broker_request_timeout=max(30.0, s.session_timeout_s * 3),
            producer_linger=0.02,
            producer_max_batch_size=256 * 1024,
            broker_max_poll_records=10_000,
            consumer_max_fetch_size=4 * 1024 * 1024,
            stream_buffer_maxsize=32_768,
            broker_credentials=self._credentials(),
            logging_config=None,
        )
        self.input = app.topic(*s.input_topics.values(), key_serializer="raw", value_serializer="raw")
        self.alerts = app.topic(s.alerts_topic, key_serializer="raw", value_serializer="raw")
        self.deadletter = app.topic(s.deadletter_topic, key_serializer="raw", value_serializer="raw")
        self.scores = app.topic(s.scores_topic, key_serializer="raw", value_serializer="raw")
        self.table = app.Table(s.state_table, default=None, partitions=s.partitions,
                               key_type=bytes, value_type=bytes)
        app.agent(self.input, name="churnwatch.process")(self._process)
        app.timer(s.model_poll_s)(self._poll_model)
        app.timer(5.0)(self._gauges)
        app.timer(1.0)(self._sweep)
        app.on_rebalance_complete.connect(self._on_ready)
        app.on_partitions_revoked.connect(self._on_revoked)
        if self.webhook is not None:
            app.task(self._start_webhook)
            # After the consumer stopped (no new alerts) and before the producer is flushed and
            # stopped (give-ups can still be dead-lettered while draining).
            app.on_before_shutdown.connect(self._stop_webhook)
        self._add_views(app)
        return app

    def _add_views(self, app: faust.App) -> None:
        """``GET /customers/{id}/``: routed by Faust to the worker that owns the customer's partition
        (keys are partitioned with the default murmur2 partitioner, as producers do)."""
        worker = self

        class CustomerView(faust.web.View):
            @app.table_route(table=self.table, match_info="customer_id")
            async def get(self, request: Any, customer_id: str) -> Any:
                body = worker.customer_view(customer_id)
                if body is None:
                    return self.json({"error": f"customer {customer_id} not found"}, status=404)
                return self.json(body)

        app.page("/customers/{customer_id}/")(CustomerView)

    def customer_view(self, customer_id: str) -> dict[str, Any] | None:
        """Current features, score, reasons and alert history of one customer, as of its newest event."""
        raw = self.table.data.get(customer_id.encode())
        if raw is None:
            return None
        st = CustomerState.from_bytes(raw)
        row = vector(st, st.last_ms)
        body: dict[str, Any] = {
            "customer_id": st.customer_id, "tier": st.tier, "plan": st.plan, "csm": st.csm,
            "mrr": None if st.mrr != st.mrr else st.mrr,
            "first_event_time": format_ts(st.first_ms) if st.first_ms else None,
            "last_event_time": format_ts(st.last_ms) if st.last_ms else None,
            "churned_time": format_ts(st.churned_ms) if st.churned_ms else None,
            "features": {k: (None if v != v else v) for k, v in as_dict(row).items()},
            "score": None, "threshold": None, "reasons": [], "model_version": None,
            "open_alert": st.alert.get("open"),
            "alert_history": [{**h, "event_time": format_ts(h["event_ms"])} for h in st.alert.get("history", [])],
            "rules_fired": {k: format_ts(v) for k, v in st.alert.get("rules", {}).items()},
        }
        model = self.models.model
        if model is not None:
            score = float(model.predict([row])[0])
            contrib = model.contributions([row])[0]
            body.update(score=round(score, 4), threshold=self.policy.alerts.threshold(st.tier, model.thresholds),
                        model_version=model.version,
                        reasons=[r.to_json() for r in explain.top_reasons(row, contrib)])
        return body

    def _credentials(self) -> Any:
        s = self.settings
        if s.sasl_mechanism:
            return faust.SASLCredentials(username=s.sasl_username, password=s.sasl_password,
                                         mechanism=s.sasl_mechanism,
                                         ssl_context=self._ssl_context() if "SSL" in s.security_protocol else None)
        if s.security_protocol.upper() == "SSL":
            return faust.SSLCredentials(self._ssl_context())
        return None

    def _ssl_context(self) -> Any:
        import ssl

        return ssl.create_default_context(cafile=self.settings.ssl_cafile or None)

    async def _on_ready(self, app: Any = None, **_: Any) -> None:
        metrics.WORKER_READY.set(1)

    async def _on_revoked(self, app: Any = None, revoked: Any = None, **_: Any) -> None:
        metrics.WORKER_READY.set(0)
        self.clock.forget({tp.partition for tp in revoked or ()})

    async def _start_webhook(self) -> None:
        assert self.webhook is not None
        await self.webhook.start()

    async def _stop_webhook(self, app: Any = None, **_: Any) -> None:
        assert self.webhook is not None
        await self.webhook.stop(drain_timeout_s=self.settings.webhook_timeout_s)

    async def _webhook_failed(self, record: dict[str, Any], detail: str) -> None:
        """An alert's chat copy was given up on: keep it on the dead-letter topic, keyed by customer.

        Not counted in churnwatch_deadletters_total, which measures bad *input*;
        churnwatch_webhook_deliveries_total{outcome="failed"} counts these.
        """
        customer = (record.get("alert") or {}).get("customer_id")
        await self.deadletter.send(key=str(customer).encode() if customer else None, value=orjson.dumps(record))

    def _assigned_partitions(self) -> set[int]:
        inputs = set(self.source_of)
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic in inputs}

    async def _poll_model(self) -> None:
        self.refresh_model()

    def refresh_model(self) -> None:
        previous = self.models.model.version if self.models.model else None
        status, detail = self.models.refresh()
        if status == "loaded":
            metrics.set_model(detail, previous)
        elif status not in ("unchanged", "none"):
            metrics.MODEL_RELOAD_FAILURES.labels(reason=status).inc()

    async def _gauges(self) -> None:
        metrics.CUSTOMERS.set(len(self.table.data))

    # ---- the agent -------------------------------------------------------------------------------
    async def _process(self, stream: Any) -> Any:
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            await self.process_batch(batch)
            yield None

    async def process_batch(self, batch: list[Any]) -> None:
        async with self.state_lock:
            await self._process_batch(batch)

    def _load(self, key: bytes, customer_id: str) -> CustomerState:
        raw = self.table.data.get(key)
        return CustomerState.from_bytes(raw) if raw else CustomerState(customer_id)

    def _store(self, key: bytes, entry: Touched) -> None:
        """Write a state back: to the local store and to the changelog partition of its customer."""
        value = entry.state.to_bytes()
        self.table.data[key] = value
        self.table.send_changelog(entry.partition, key, value)

    async def _process_batch(self, batch: list[Any]) -> None:
        now_ms = int(time.time() * 1000)
        touched: dict[bytes, Touched] = {}
        newest = 0
        for fevent in batch:
            msg = fevent.message
            metrics.EVENTS_CONSUMED.labels(topic=msg.topic).inc()
            source = self.source_of.get(msg.topic)
            try:
                if source is None:
                    raise InvalidEvent("unknown_source", f"topic {msg.topic} is not an input topic")
                ev = parse(source, fevent.value, now_ms, self.limits)
                key = ev.customer_id.encode()
                if msg.key is not None and msg.key != key:
                    raise InvalidEvent("key_mismatch", "message key differs from customer_id (topics must be keyed by customer)")
            except InvalidEvent as exc:
                metrics.DEADLETTERS.labels(reason=exc.reason).inc()
                await self.deadletter.send(
                    key=msg.key,
                    value=deadletter_record(fevent.value, msg.key, msg.topic, msg.partition, msg.offset,
                                            exc.reason, exc.detail, now_ms),
                )
                continue
            entry = touched.get(key)
            if entry is None:
                entry = touched[key] = Touched(self._load(key, ev.customer_id), msg.partition)
            if not apply(entry.state, ev, msg.offset, self.feature_cfg):
                metrics.DUPLICATES.labels(topic=msg.topic).inc()
                continue
            entry.partition = entry.state.partition = msg.partition
            self.clock.observe(msg.partition, ev.ts_ms, now_ms, ev.source)
            if ev.source == "outcomes":
                self._count_outcome(entry.state, ev)
                alerting.on_outcome(entry.state.alert, ev)
            else:
                entry.score_needed = True
                entry.rule_hits += rules.on_event(entry.state, ev, self.policy.rules)
            newest = max(newest, ev.ts_ms)
        if newest:
            metrics.EVENT_LAG.set(max(0.0, (now_ms - newest) / 1000))
        scored = [t for t in touched.values() if t.score_needed]
        for entry in scored:
            entry.as_of_ms = entry.state.last_ms
        await self.score_and_alert(scored, now_ms, trigger="event")
        for key, entry in touched.items():
            self._store(key, entry)

    async def _sweep(self) -> None:
        """Re-score customers gone quiet, as of their partition's event-time clock."""
        if self.models.model is None or not self.clock.clocks:
            return
        now_ms = int(time.time() * 1000)
        due = self.clock.due(now_ms, self._assigned_partitions())
        if not due:
            return
        async with self.state_lock:
            entries: dict[bytes, Touched] = {}
            for key, raw in list(self.table.data.items()):
                state = CustomerState.from_bytes(raw)
                as_of = due.get(state.partition)
                if as_of is None or state.churned_ms or not self.clock.is_idle(state.last_ms, as_of):
                    continue
                entries[key] = Touched(state, state.partition, True, as_of)
            if not entries:
                return
            before = {k: orjson.dumps(e.state.alert) for k, e in entries.items()}
            await self.score_and_alert(list(entries.values()), now_ms, trigger="sweep")
            for key, entry in entries.items():
                if orjson.dumps(entry.state.alert) != before[key]:
                    self._store(key, entry)

    def _count_outcome(self, state: CustomerState, ev: Event) -> None:
        """Closing the loop: outcomes overall, and outcomes of customers churnwatch had alerted."""
        metrics.OUTCOMES.labels(type=ev.type).inc()
        if state.alert.get("last_ms") is not None and ev.ts_ms >= state.alert["last_ms"]:
            metrics.ALERTED_OUTCOMES.labels(type=ev.type).inc()
            self.alerted_outcomes[ev.type] = self.alerted_outcomes.get(ev.type, 0) + 1
            saved, churned = self.alerted_outcomes.get("saved", 0), self.alerted_outcomes.get("churned", 0)
            if saved + churned:
                metrics.SAVE_RATE.set(saved / (saved + churned))

    async def score_and_alert(self, entries: list[Touched], now_ms: int, trigger: str) -> None:
        """:func:`pipeline.decisions.score_and_decide` plus the I/O: scores topic, metrics, alerts, webhook."""
        model = self.models.model
        results = score_and_decide(entries, model, self.policy, trigger, now_ms, held=self.clock.behind,
                                   on_predict=self._observe_latency)
        version = model.version if model else None
        for s in results:
            st = s.entry.state
            if s.score is not None and self.settings.emit_scores:
                await self.scores.send(key=st.customer_id.encode(), value=orjson.dumps({
                    "customer_id": st.customer_id, "ts_ms": s.entry.as_of_ms, "trigger": trigger, "score": s.score,
                    "model_version": version, "offsets": st.offsets, "features": s.row,
                }))
            if s.held:
                metrics.ALERTS_HELD.inc()
            for alert in s.alerts:
                metrics.ALERTS.labels(tier=st.tier, trigger=alert.trigger).inc()
                record = alert.to_json()
                await self.alerts.send(key=st.customer_id.encode(), value=orjson.dumps(record))
                if self.webhook is not None:
                    self.webhook.enqueue(record)  # never waits; the sink's task posts it

    @staticmethod
    def _observe_latency(seconds: float, rows: int) -> None:
        metrics.SCORING_LATENCY.observe(seconds)
        metrics.SCORED.inc(rows)


def run_worker(settings: Settings) -> None:
    """Run a worker in this process until SIGINT/SIGTERM."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    worker = Worker(settings)
    worker.refresh_model()
    metrics.serve(settings.metrics_port, settings.metrics_host)
    level = {"WARNING": "warn", "CRITICAL": "crit"}.get(settings.log_level.upper(), settings.log_level.lower())
    faust.Worker(worker.app, loglevel=level, quiet=True).execute_from_commandline()
