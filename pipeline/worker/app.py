"""The Faust worker: a thin I/O shell around the pure core (contract, features, scoring, alerting).

One agent consumes all input topics (they are co-partitioned, so one worker owns all of a customer's
events) in micro-batches. Per batch it validates, folds events into the customers' states, scores every
touched customer in one LightGBM call, asks the alert policy, makes the new states durable, and only
then sends the alerts. Faust provides the consumer group, the agent, timers and the web server; the
state is churnwatch's own (:mod:`pipeline.worker.store`, :mod:`pipeline.worker.changelog`): why not a Faust Table is
explained there.

A batch can never be lost to one bad event: an event that raises while it is applied or while its
customer's state is stored is dead-lettered (``internal_error``) and the customer's state is rebuilt
without it; the rest of the batch goes on.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

import faust
import orjson

from pipeline.core.reasons import top_reasons
from pipeline.worker import metrics
from pipeline.web import webguard
from pipeline.worker.changelog import aiokafka_kwargs, check_positions, read_partition
from pipeline.core.contract import Event, InvalidEvent, Limits, format_ts, one_line, parse
from pipeline.core.decisions import Touched, score_and_decide, vectorizer
from pipeline.core.features import Applied, CustomerState
from pipeline.core.fold import fold
from pipeline.worker.health import Health
from pipeline.config.logs import configure_logging, logging_config
from pipeline.core.policy import load_policy
from pipeline.model.registry import Registry
from pipeline.core.rules import RulesConfig
from pipeline.model.scoring import ModelHolder
from pipeline.kafka.security import faust_credentials
from pipeline.config.settings import Settings
from pipeline.worker.store import FENCE_KEY, Flush, PartitionState, StateStore, message_fingerprint
from pipeline.core.sweep import SweepClock
from pipeline.web.webauth import WebAuth, bind_rule, check_bind
from pipeline.worker.webhook import WebhookSink

log = logging.getLogger("churnwatch.worker")

BATCH_MAX = 500
BATCH_WITHIN_S = 0.05
#: How often (wall seconds) the worker checks that each input partition still holds the message its
#: state's position names; a topic deleted and re-created under a running worker is read again from
#: its beginning (Faust itself would drop every message below the old offset).
POSITION_CHECK_S = 10.0
#: Dead letters keep this much of the original message (``original`` as text, else ``original_b64``).
DEADLETTER_KEEP_BYTES = 65_536


def deadletter_record(raw: bytes | None, key: bytes | None, topic: str, partition: int, offset: int,
                      reason: str, detail: str, now_ms: int) -> bytes:
    """What lands on the dead-letter topic: enough to inspect, fix and replay the original message.

    A message that is not UTF-8, or longer than :data:`DEADLETTER_KEEP_BYTES`, keeps its first 64 KiB
    as ``original_b64`` (``original_bytes`` says how long it was)."""
    value = raw or b""
    try:
        text: str | None = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    keep_text = text is not None and len(value) <= DEADLETTER_KEEP_BYTES
    return orjson.dumps({
        "reason": reason,
        "detail": one_line(detail),  # an exception's text may hold newlines or lone surrogates
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": one_line(key.decode("utf-8", "replace")) if key else None,
        "original": text if keep_text else None,
        "original_b64": None if keep_text else base64.b64encode(value[:DEADLETTER_KEEP_BYTES]).decode(),
        "original_bytes": len(value),
        "rejected_ms": now_ms,
    })


@dataclass
class _Item:
    """One valid input message of a customer in the current batch."""

    event: Event
    topic: str
    partition: int
    offset: int
    raw: bytes
    key: bytes | None


class _SeekingApp(faust.App):
    """Faust seeks input to the group's committed offsets after every rebalance; churnwatch's input
    position lives in its state (see :mod:`pipeline.worker.store`), so after Faust's seek the worker seeks to
    the restored position (``after_seek``), before any message is fetched."""

    after_seek: Any = None

    def _new_consumer(self) -> Any:
        consumer = super()._new_consumer()
        original = consumer.perform_seek

        async def perform_seek() -> None:
            await original()
            if self.after_seek is not None:
                await self.after_seek(consumer)

        consumer.perform_seek = perform_seek  # type: ignore[method-assign]
        return consumer


class Worker:
    """Builds the Faust app and holds what its agents share (state, model, policy, config, health)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = Registry(settings.models_dir)
        self.feature_cfg = settings.feature_config()
        self.models = ModelHolder(self.registry, check_timeout_s=settings.model_check_timeout_s,
                                  feature_cfg=self.feature_cfg)
        self.policy = load_policy(settings.policy_file)
        alerts, rules = self.policy.alerts, self.policy.rules
        metrics.init_labels(settings.input_topics.values(),
                            tiers={"standard", *alerts.thresholds, *alerts.file_thresholds, *rules.vip_tiers},
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
        self.store = StateStore(self.writer)
        #: changelog offset of this worker's newest record per partition (restore fast path)
        self.last_written: dict[int, int] = {}
        self.health = Health()
        #: who may use the web server; its Host names include the advertised address peers forward to
        #: (run_worker refuses an unguarded non-loopback web_host before serving)
        advertised = urlsplit(settings.web_advertised_url)
        self.webauth = WebAuth.for_server(settings, settings.web_host, settings.web_port, "worker web server",
                                          extra=[bind_rule(advertised.hostname or "", advertised.port or 0)],
                                          enforce_bind=False)
        # The agent, the sweep and rebalances all read-modify-write the store; across their awaits a
        # lock keeps one from overwriting another's newer state.
        self.state_lock = asyncio.Lock()
        self._probe: Any = None
        # Optional chat copy of every alert; it must never hold up scoring (see pipeline.worker.webhook).
        self.webhook: WebhookSink | None = None
        if settings.webhook_url.get_secret_value():
            self.webhook = WebhookSink(
                settings.webhook_url.get_secret_value(), timeout_s=settings.webhook_timeout_s,
                max_attempts=settings.webhook_max_attempts, backoff_s=settings.webhook_backoff_s,
                queue_size=settings.webhook_queue_size, on_failure=self._webhook_failed,
            )
        self.app = self._build_app()

    # ---- Faust wiring ------------------------------------------------------------------------
    def _build_app(self) -> faust.App:
        s = self.settings
        app = _SeekingApp(
            s.app_id,
            broker=s.broker,
            store="memory://",
            topic_partitions=s.partitions,
            # the topics are created (with this factor) by pipeline.kafka.topics before the worker starts;
            # Faust's own leader topic among them. The CLI resolves an unset factor from the cluster.
            topic_replication_factor=s.replication_factor or 1,
            datadir=str(s.data_dir / "faust"),
            web_enabled=True,
            web_port=s.web_port,
            web_bind=s.web_host,
            # what the other workers are told to forward this worker's customers to: its own name, not
            # the bind address (every replica bound to 0.0.0.0 would advertise the same URL)
            web_host=urlsplit(s.web_advertised_url).hostname,
            canonical_url=s.web_advertised_url,
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=s.session_timeout_s,
            broker_heartbeat_interval=s.heartbeat_s,
            broker_rebalance_timeout=s.rebalance_timeout_s,
            broker_request_timeout=max(30.0, s.session_timeout_s * 3),
            # every batch awaits its own changelog write: the batch is the unit of batching, so a long
            # linger would only add latency
            producer_linger=0.005,
            producer_max_batch_size=256 * 1024,
            broker_max_poll_records=10_000,
            consumer_max_fetch_size=4 * 1024 * 1024,
            stream_buffer_maxsize=32_768,
            broker_credentials=faust_credentials(s),
            logging_config=None,
            # the CSM view behind the same sign-in as the inbox; Faust's own routes for workers only
            web_application_options={"middlewares": [webguard.middleware(self.webauth, web_route_class,
                                                                          worker_ok=True)]},
        )
        app.after_seek = self._seek_to_state
        self.input = app.topic(*s.input_topics.values(), key_serializer="raw", value_serializer="raw")
        #: requests for a customer go to the worker owning its partition of this (co-partitioned) topic
        self.route_topic = app.topic(s.input_topics["interactions"], key_serializer="raw", value_serializer="raw")
        app.agent(self.input, name="churnwatch.process")(self._process)
        app.timer(s.model_poll_s)(self._poll_model)
        app.timer(1.0)(self._gauges)
        app.timer(1.0)(self._sweep)
        app.timer(2.0)(self._probe_broker)
        app.timer(POSITION_CHECK_S)(self._verify_input)
        app.on_rebalance_complete.connect(self._on_rebalance_complete)
        app.on_before_shutdown.connect(self._stop_model_checks)
        app.on_partitions_revoked.connect(self._on_revoked)
        if self.webhook is not None:
            app.task(self._start_webhook)
            # After the consumer stopped (no new alerts) and before the producer is flushed and
            # stopped (give-ups can still be dead-lettered while draining).
            app.on_before_shutdown.connect(self._stop_webhook)
        self._add_views(app)
        return app

    def _add_views(self, app: faust.App) -> None:
        worker = self

        class CustomerView(faust.web.View):
            """``GET /customers/{id}/``, answered by the worker owning the customer's partition (keys
            are partitioned with the default murmur2 partitioner, as producers do)."""

            async def get(self, request: Any, customer_id: str) -> Any:
                status, body = await worker.route_customer(request, customer_id)
                return self.json(body, status=status)

        class HealthView(faust.web.View):
            """Liveness: the process serves requests and its agent has not died (a crashed agent never
            comes back, so a supervisor should restart the worker)."""

            async def get(self, request: Any) -> Any:
                if not worker.health.agent_alive:
                    return self.json({"status": "agent stopped", "writer": worker.writer}, status=503)
                return self.json({"status": "ok", "writer": worker.writer})

        class ReadyView(faust.web.View):
            async def get(self, request: Any) -> Any:
                ready, checks = worker.health.evaluate()
                return self.json({"ready": ready, "checks": checks}, status=200 if ready else 503)

        show_login, submit_login, logout = webguard.login_handlers(worker.webauth, "churnwatch worker")

        class LoginView(faust.web.View):
            """The sign-in form (token mode), as on the inbox: the session cookie is valid on both."""

            async def get(self, request: Any) -> Any:
                return await show_login(request)

            async def post(self, request: Any) -> Any:
                return await submit_login(request)

        class LogoutView(faust.web.View):
            async def post(self, request: Any) -> Any:
                return await logout(request)

        app.page("/customers/{customer_id}/")(CustomerView)
        app.page("/health")(HealthView)
        app.page("/ready")(ReadyView)
        app.page("/login")(LoginView)
        app.page("/logout")(LogoutView)

    async def route_customer(self, request: Any, customer_id: str) -> tuple[int, dict[str, Any]]:
        """(status, body) for the customer view: local, forwarded to the owner, or 503 while nobody can
        answer for the customer yet (takeover, recovery) — never a stack trace."""
        try:
            dest = self.app.router.external_topic_key_store(self.route_topic, customer_id)
        except Exception:
            return 503, {"error": "no worker owns this customer's partition yet (rebalancing)", "reason": "rebalancing"}
        router = self.app.router
        if router._urlident(dest) == router._urlident(self.app.conf.canonical_url):
            return self.local_customer(customer_id)
        try:
            import aiohttp

            url = request.url.with_host(dest.host).with_port(int(dest.port or 80))
            headers = self.webauth.forward_headers(request.get(webguard.IDENTITY))
            async with self.app.http_client.get(str(url), headers=headers,
                                                timeout=aiohttp.ClientTimeout(total=5)) as resp:
                body = await resp.json(content_type=None)
                return resp.status, body
        except Exception as exc:
            return 503, {"error": f"the worker owning this customer ({dest}) did not answer: {type(exc).__name__}",
                         "reason": "owner_unreachable"}

    def local_customer(self, customer_id: str) -> tuple[int, dict[str, Any]]:
        from pipeline.core.shadow import partitioner

        partition = partitioner(self.settings.partitions)(customer_id)
        if partition not in self.store.parts or self.health.recovering:
            return 503, {"error": f"partition {partition} is being restored on this worker", "reason": "recovering"}
        try:
            body = self.customer_view(customer_id)
        except Exception as exc:
            log.exception("customer view of %r failed", customer_id)
            return 503, {"error": f"customer view failed: {type(exc).__name__}", "reason": "internal_error"}
        if body is None:
            return 404, {"error": f"customer {customer_id} not found"}
        return 200, body

    def customer_view(self, customer_id: str) -> dict[str, Any] | None:
        """Current features, score, reasons and alert history of one customer, as of its newest event."""
        raw = self.store.find(customer_id.encode())
        if raw is None:
            return None
        st = CustomerState.from_bytes(raw)
        model = self.models.model
        names, vec = vectorizer(model)
        row = vec(st, st.last_ms)
        body: dict[str, Any] = {
            "customer_id": st.customer_id, "tier": st.tier, "plan": st.plan, "csm": st.csm,
            "mrr": None if st.mrr != st.mrr else st.mrr,
            "first_event_time": format_ts(st.first_ms) if st.first_ms else None,
            "last_event_time": format_ts(st.last_ms) if st.last_ms else None,
            "churned_time": format_ts(st.churned_ms) if st.churned_ms else None,
            "events": st.events, "applied": dict(st.applied), "partition": st.partition,
            "features": {k: (None if v != v else v) for k, v in zip(names, row)},
            "score": None, "threshold": None, "reasons": [], "model_version": None,
            "open_alert": st.alert.get("open"),
            "alert_history": [{**h, "event_time": format_ts(h["event_ms"])} for h in st.alert.get("history", [])],
            "rules_fired": {k: format_ts(v) for k, v in st.alert.get("rules", {}).items()},
        }
        if model is not None:
            score = float(model.predict([row])[0])
            contrib = model.contributions([row])[0]
            body.update(score=round(score, 4), threshold=self.policy.alerts.threshold(st.tier, model.thresholds),
                        model_version=model.version,
                        reasons=[r.to_json() for r in top_reasons(row, contrib, names=names)])
        return body

    # ---- rebalances: restore, then seek to the restored position ----------------------------------
    def _input_partitions(self, tps: Any) -> set[int]:
        inputs = set(self.source_of)
        return {tp.partition for tp in tps or () if tp.topic in inputs}

    def _assigned_partitions(self) -> set[int]:
        return self._input_partitions(self.app.consumer.assignment())

    async def _on_revoked(self, app: Any = None, revoked: Any = None, **_: Any) -> None:
        self.health.recovering = True
        parts = self._input_partitions(revoked)
        async with self.state_lock:
            self.store.revoke(parts)
        self.clock.forget(parts)

    async def _on_rebalance_complete(self, app: Any = None, **_: Any) -> None:
        """Restore every assigned partition (Faust sends this before it seeks and resumes fetching)."""
        self.health.recovering = True
        started = time.monotonic()
        async with self.state_lock:
            assigned = self._assigned_partitions()
            self.health.assigned = assigned
            for p in sorted(assigned):
                attempt = 0
                while True:
                    try:
                        await self._restore(p)
                        break
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # the broker went away mid-restore: try again, never skip
                        if self.app.should_stop:
                            raise
                        self.health.broker_failed(f"restore of partition {p} failed: {type(exc).__name__}: {exc}")
                        await asyncio.sleep(min(5.0, 0.5 * 2 ** attempt))
                        attempt += 1
            self.store.drop_stale()
        if assigned:
            metrics.RECOVERY_SECONDS.set(time.monotonic() - started)

    async def _restore(self, p: int) -> None:
        t0 = time.monotonic()
        fence = orjson.dumps({"kind": "fence", "writer": self.writer})
        (meta,) = await self._durable([(self.settings.changelog_topic, FENCE_KEY, fence, p)])
        fence_offset = int(meta.offset)
        mine = self.store.parts.get(p) or self.store.stale.get(p)
        last = self.last_written.get(p)
        if mine is not None and last is not None and fence_offset == last + 1:
            # nothing was written to the partition since our own last record: our copy is the newest
            self.store.stale.pop(p, None)
            self.store.parts[p] = part = mine
            how, records = "kept", 0
        else:
            restored, records = await read_partition(self.settings, p, fence_offset)
            part, how = self.store.adopt(restored)
            if how == "reseed":
                await self._durable(self._changelog_records(self.store.reseed(p)))
            elif how == "restored" and part.position.outbox and part.position.writer != self.writer:
                # alerts the previous owner decided and made durable but may not have sent
                await self._durable([(self.settings.alerts_topic, str(a.get("customer_id", "")).encode(),
                                      orjson.dumps(a), None) for a in part.position.outbox])
        resume = await check_positions(self.settings, p, part.position.topics)
        for topic, offset in resume.items():
            if offset is None:
                part.position.topics.pop(topic, None)  # read it from the beginning
        for key, raw in part.customers.items():
            try:
                st = CustomerState.from_bytes(raw)
            except Exception:
                continue
            if st.last_ms:
                self.clock.observe(p, st.last_ms, int(time.time() * 1000), "interactions")
        metrics.RESTORES.labels(how=how).inc()
        log.info("partition %d %s: %d customers, %d changelog records read in %.2f s", p, how,
                 len(part.customers), records, time.monotonic() - t0)

    async def _seek_to_state(self, consumer: Any) -> None:
        """Seek every assigned input partition to just after the last message its state reflects."""
        from faust.types import TP

        offsets: dict[Any, int] = {}
        for tp in consumer.assignment():
            if tp.topic not in self.source_of:
                continue
            part = self.store.parts.get(tp.partition)
            pos = part.position.topics.get(tp.topic) if part is not None else None
            offsets[TP(tp.topic, tp.partition)] = pos[0] + 1 if pos else 0
        if offsets:
            await consumer.seek_wait(offsets)
        self.health.recovering = False

    async def _verify_input(self) -> None:
        """Re-read from the beginning any input partition whose position message has changed."""
        from faust.types import TP

        if self.health.recovering or not self.store.parts:
            return
        snapshot = {p: {t: list(v) for t, v in part.position.topics.items()} for p, part in self.store.parts.items()}
        for p, topics in snapshot.items():
            try:
                resume = await check_positions(self.settings, p, topics)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker is away: the probe reports that
                log.debug("position check of partition %d failed: %s", p, exc)
                return
            started_over = [t for t, offset in resume.items() if offset is None]
            if not started_over:
                continue
            async with self.state_lock:
                part = self.store.parts.get(p)
                if part is None or self.health.recovering:
                    continue
                for topic in started_over:
                    part.position.topics.pop(topic, None)
                metrics.INPUT_RESETS.inc(len(started_over))
                await self.app.consumer.seek_wait({TP(t, p): 0 for t in started_over})

    def _changelog_records(self, flush: Flush) -> list[tuple[str, bytes, bytes | None, int | None]]:
        topic = self.settings.changelog_topic
        return [(topic, key, value, flush.partition) for key, value in flush.records()]

    def detach(self, sink: Any) -> None:
        """Run the batch and sweep code without a broker (unit tests, benchmarks): this worker owns
        every partition, and each durable write is handed to ``sink(records)`` and acknowledged."""
        from types import SimpleNamespace

        async def durable(records: Sequence[tuple[str, bytes | None, bytes | None, int | None]]) -> list[Any]:
            sink(records)
            return [SimpleNamespace(offset=0) for _ in records]

        self._durable = durable  # type: ignore[method-assign]
        self.store.parts = {p: PartitionState(p) for p in range(self.settings.partitions)}
        self.health.recovering = False
        self._assigned_partitions = lambda: set(range(self.settings.partitions))  # type: ignore[method-assign]

    # ---- durable writes ----------------------------------------------------------------------------
    async def _durable(self, records: Sequence[tuple[str, bytes | None, bytes | None, int | None]]) -> list[Any]:
        """Send ``records`` and wait until the broker has them all; retry (backing off) until it does.

        While the broker is away the worker stops here: nothing further is processed, nothing is
        lost, and readiness says why."""
        if not records:
            return []
        attempt = 0
        while True:
            try:
                futures = [await self.app.producer.send(topic, key, value, partition, None, None)
                           for topic, key, value, partition in records]
                metas = list(await asyncio.gather(*futures))
                self.health.broker_answered()
                for (topic, _k, _v, partition), meta in zip(records, metas):
                    if topic == self.settings.changelog_topic and partition is not None:
                        # in write order, so the last one is the newest (offsets restart on a broker
                        # that lost its data: no max)
                        self.last_written[partition] = int(meta.offset)
                return metas
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.app.should_stop:
                    raise
                self.health.broker_failed(f"write failed: {type(exc).__name__}: {exc}")
                metrics.WRITE_RETRIES.inc()
                await asyncio.sleep(min(5.0, 0.25 * 2 ** attempt))
                attempt += 1

    async def _probe_broker(self) -> None:
        """Ask the broker for metadata: what 'broker reachable' in readiness means."""
        from aiokafka.client import AIOKafkaClient

        kwargs = aiokafka_kwargs(self.settings)
        try:
            if self._probe is None:
                kwargs.pop("bootstrap_servers")
                self._probe = AIOKafkaClient(bootstrap_servers=self.settings.bootstrap_servers,
                                             client_id=f"{self.settings.app_id}-probe", request_timeout_ms=3000,
                                             **kwargs)
                await asyncio.wait_for(self._probe.bootstrap(), 4)
            ok = await asyncio.wait_for(self._probe.fetch_all_metadata(), 4)
            if ok is None or not getattr(ok, "brokers", lambda: True)():
                raise ConnectionError("no brokers in metadata")
            self.health.broker_answered()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.health.broker_failed(f"metadata request failed: {type(exc).__name__}")
            probe, self._probe = self._probe, None
            if probe is not None:
                try:
                    await asyncio.wait_for(probe.close(), 2)
                except Exception:
                    pass

    # ---- webhook -----------------------------------------------------------------------------------
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
        await self._durable([(self.settings.deadletter_topic, str(customer).encode() if customer else None,
                              orjson.dumps(record), None)])

    # ---- model and gauges --------------------------------------------------------------------------
    async def _poll_model(self) -> None:
        # validation runs a child process; the event loop must never wait for it
        await asyncio.to_thread(self.refresh_model)

    def refresh_model(self) -> None:
        previous = self.models.model.version if self.models.model else None
        status, detail = self.models.refresh()
        if status == "loaded":
            metrics.set_model(detail, previous)
        elif status not in ("unchanged", "none"):
            metrics.MODEL_RELOAD_FAILURES.labels(reason=status).inc()
        self.health.model_loaded = self.models.model is not None
        self.health.model_promoted = status != "none" or self.models.model is not None

    async def _stop_model_checks(self, app: Any = None, **_: Any) -> None:
        self.models.close()  # a check in progress would otherwise hold up the exit by its timeout

    async def _gauges(self) -> None:
        metrics.CUSTOMERS.set(len(self.store))
        self.health.assigned = self._assigned_partitions() if not self.health.recovering else self.health.assigned
        agent = self.app.agents.get("churnwatch.process")
        if agent is not None:
            actors = list(getattr(agent, "_actors", None) or [])

            def running(actor: Any) -> bool:
                return not any(getattr(actor, flag).is_set() for flag in ("_crashed", "_stopped")
                               if hasattr(actor, flag))

            self.health.agent_alive = not actors or any(running(a) for a in actors)
        ready, _ = self.health.evaluate()
        metrics.WORKER_READY.set(1 if ready else 0)

    # ---- the agent -------------------------------------------------------------------------------
    async def _process(self, stream: Any) -> Any:
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            await self.process_batch(batch)
            yield None

    async def process_batch(self, batch: list[Any]) -> None:
        self.health.batch_started()
        try:
            async with self.state_lock:
                await self._process_batch(batch)
        finally:
            self.health.batch_done()

    def _load(self, partition: int, key: bytes, customer_id: str) -> CustomerState:
        raw = self.store.get(partition, key)
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
        for fevent in batch:
            msg = fevent.message
            part = self.store.parts.get(msg.partition)
            if part is None:
                continue  # not ours (any more): its owner reads it from the position in the state
            partitions.add(msg.partition)
            part.advance(msg.topic, msg.offset, message_fingerprint(msg.key, fevent.value))
            metrics.EVENTS_CONSUMED.labels(topic=msg.topic).inc()
            item = _Item(None, msg.topic, msg.partition, msg.offset, fevent.value, msg.key)  # type: ignore[arg-type]
            try:
                item.event = self._validate(msg, fevent.value, now_ms)
            except InvalidEvent as exc:
                dead.append((item, exc.reason, exc.detail))
                continue
            except Exception as exc:  # the contract must not raise anything else; if it does, contain it
                dead.append((item, "internal_error", f"{type(exc).__name__}: {exc}"))
                metrics.INTERNAL_ERRORS.labels(stage="parse").inc()
                continue
            per_customer.setdefault(item.event.customer_id.encode(), []).append(item)
        touched: dict[bytes, tuple[Touched, bytes]] = {}
        newest = 0
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
        results = self._decide(scored, now_ms, "event")
        states: dict[int, dict[bytes, bytes]] = {p: {} for p in partitions}
        for key, (entry, value) in touched.items():
            if entry.score_needed:
                try:
                    value = entry.state.to_bytes()  # the decision updated the alert memory
                except Exception:
                    log.exception("customer %r: alert memory not storable; keeping the state without it", key)
            states.setdefault(entry.partition, {})[key] = value
        await self._commit(states, results, dead, now_ms)

    async def _commit(self, states: dict[int, dict[bytes, bytes]], results: list[Any],
                      dead: list[tuple[_Item, str, str]], now_ms: int) -> None:
        """Make a batch durable, then tell the world: dead letters, then states + positions, then alerts."""
        if dead:
            records = []
            for it, reason, detail in dead:
                metrics.DEADLETTERS.labels(reason=reason).inc()
                records.append((self.settings.deadletter_topic, it.key,
                                deadletter_record(it.raw, it.key, it.topic, it.partition, it.offset, reason, detail, now_ms),
                                None))
            await self._durable(records)
        outbox: dict[int, list[dict[str, Any]]] = {}
        for s in results:
            for alert in s.alerts:
                outbox.setdefault(s.entry.partition, []).append(alert.to_json())
        changelog: list[tuple[str, bytes | None, bytes | None, int | None]] = []
        for p, values in states.items():
            if p in self.store.parts:
                changelog += self._changelog_records(self.store.flush(p, values, outbox.get(p, [])))
        await self._durable(changelog)
        await self._publish(results, now_ms)

    def _decide(self, entries: list[Touched], now_ms: int, trigger: str) -> list[Any]:
        """:func:`pipeline.core.decisions.score_and_decide`, contained: a failure costs the alerts of this
        call (counted, logged), never the events or the states."""
        try:
            return score_and_decide(entries, self.models.model, self.policy, trigger, now_ms, held=self.clock.behind,
                                    on_predict=self._observe_latency)
        except Exception:
            metrics.INTERNAL_ERRORS.labels(stage="score").inc()
            log.exception("scoring %d customers failed; their states are kept, no alerts from this call", len(entries))
            return []

    async def _publish(self, results: list[Any], now_ms: int) -> None:
        """Alerts (and, optionally, scores) of states that are already durable."""
        model = self.models.model
        version = model.version if model else None
        records: list[tuple[str, bytes | None, bytes | None, int | None]] = []
        for s in results:
            st = s.entry.state
            if s.score is not None and self.settings.emit_scores:
                records.append((self.settings.scores_topic, st.customer_id.encode(), orjson.dumps({
                    "customer_id": st.customer_id, "ts_ms": s.entry.as_of_ms, "trigger": s.trigger, "score": s.score,
                    "model_version": version, "offsets": st.offsets, "features": s.row,
                }), None))
            if s.held:
                metrics.ALERTS_HELD.inc()
            for alert in s.alerts:
                metrics.ALERTS.labels(tier=st.tier, trigger=alert.trigger).inc()
                record = alert.to_json()
                records.append((self.settings.alerts_topic, st.customer_id.encode(), orjson.dumps(record), None))
                if self.webhook is not None:
                    self.webhook.enqueue(record)  # never waits; the sink's task posts it
        await self._durable(records)

    async def _sweep(self) -> None:
        """Re-score customers gone quiet, as of their partition's event-time clock."""
        if self.models.model is None or not self.clock.clocks or self.health.recovering:
            return
        now_ms = int(time.time() * 1000)
        due = self.clock.due(now_ms, set(self.store.parts))
        if not due:
            return
        async with self.state_lock:
            entries: dict[bytes, Touched] = {}
            for p, key, raw in self.store.items():
                as_of = due.get(p)
                if as_of is None:
                    continue
                try:
                    state = CustomerState.from_bytes(raw)
                except Exception:
                    continue
                if state.churned_ms or not self.clock.is_idle(state.last_ms, as_of):
                    continue
                entries[key] = Touched(state, p, True, as_of)
            if not entries:
                return
            before = {k: orjson.dumps(e.state.alert) for k, e in entries.items()}
            results = self._decide(list(entries.values()), now_ms, "sweep")
            states: dict[int, dict[bytes, bytes]] = {}
            for key, entry in entries.items():
                if orjson.dumps(entry.state.alert) != before[key]:
                    states.setdefault(entry.partition, {})[key] = entry.state.to_bytes()
            await self._commit(states, results, [], now_ms)

    def _count_outcome(self, state: CustomerState, ev: Event) -> None:
        """Closing the loop: outcomes overall, and outcomes of customers churnwatch had alerted."""
        metrics.OUTCOMES.labels(type=ev.type).inc()
        if state.alert.get("last_ms") is not None and ev.ts_ms >= state.alert["last_ms"]:
            metrics.ALERTED_OUTCOMES.labels(type=ev.type).inc()
            self.alerted_outcomes[ev.type] = self.alerted_outcomes.get(ev.type, 0) + 1
            saved, churned = self.alerted_outcomes.get("saved", 0), self.alerted_outcomes.get("churned", 0)
            if saved + churned:
                metrics.SAVE_RATE.set(saved / (saved + churned))

    @staticmethod
    def _observe_latency(seconds: float, rows: int) -> None:
        metrics.SCORING_LATENCY.observe(seconds)
        metrics.SCORED.inc(rows)


def web_route_class(path: str) -> str:
    """The worker web's request classes (:mod:`pipeline.web.webguard`): health probes open, the CSM view
    and sign-in as on the inbox, and everything else — Faust's ``/router/``, ``/table/`` and index —
    internal, for the other workers of the group only."""
    if path in ("/health", "/ready"):
        return webguard.PROBE
    if path in ("/login", "/logout"):
        return webguard.LOGIN
    if path.startswith("/customers/"):
        return webguard.USER
    return webguard.INTERNAL


class _OncePerMinute(logging.Filter):
    """Collapses repeats of the same library log line (aiokafka and Faust log every failed reconnect
    during a broker outage) to one per minute; churnwatch's own one-line WARNING says what happened."""

    def __init__(self, every_s: float = 60.0) -> None:
        super().__init__()
        self.every_s = every_s
        self.last: dict[tuple[str, Any], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("churnwatch"):
            return True
        key = (record.name, record.msg)
        now = time.monotonic()
        if now - self.last.get(key, -1e9) < self.every_s:
            return False
        self.last[key] = now
        return True


def run_worker(settings: Settings, announce: Callable[[str], None] | None = None) -> None:
    """Run a worker in this process until SIGINT/SIGTERM. ``announce`` gets one line with the metrics and
    web addresses once the metrics server listens: with ``CHURNWATCH_METRICS_PORT=0`` that line is
    the only place the chosen port is told (for Prometheus' scrape config)."""
    check_bind(settings, settings.web_host, "worker web server")  # an unguarded public web port: not started
    configure_logging(settings.log_format, settings.log_level)  # before anything logs (Faust applies it again)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    worker = Worker(settings)
    worker.refresh_model()
    port = metrics.serve(settings.metrics_port, settings.metrics_host)
    if announce is not None:
        host = f"[{settings.metrics_host}]" if ":" in settings.metrics_host else settings.metrics_host
        announce(f"churnwatch worker: metrics on http://{host}:{port}/metrics, web server on "
                 f"{settings.web_advertised_url} (bound to {settings.web_host}:{settings.web_port})")
    level = {"WARNING": "warn", "CRITICAL": "crit"}.get(settings.log_level.upper(), settings.log_level.lower())
    faust_worker = _QuietWorker(worker.app, loglevel=level, quiet=True,
                                logging_config=logging_config(settings.log_format, settings.log_level))
    faust_worker.execute_from_commandline()


class _QuietWorker(faust.Worker):
    """Faust's worker with churnwatch's log format (:mod:`pipeline.config.logs`, passed as ``logging_config``),
    no terminal spinner, and :class:`_OncePerMinute` on the root handlers it sets up."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The spinner writes cursor escape codes even when stdout is no terminal; without it Faust
        # logs "Ready" instead.
        self.spinner = None

    def _setup_logging(self) -> None:
        super()._setup_logging()
        quiet = _OncePerMinute()
        for handler in logging.getLogger().handlers:
            handler.addFilter(quiet)
