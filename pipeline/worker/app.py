"""The Faust app of a worker: its topics, the intake, the timers, the rebalance callbacks and the web server.

Faust provides the consumer group, its fetcher, timers and the web server; what they run is churnwatch's
own: the input loop in :mod:`pipeline.worker.intake` (not a Faust agent: that module says why), the batch
and sweep code in :mod:`pipeline.worker.batch`, the rebalance handling in
:mod:`pipeline.worker.rebalance`, the web pages in :mod:`pipeline.worker.routes`. The state is not a
Faust Table (:mod:`pipeline.worker.store` says why), so the app has no tables. Running it in a process
is :mod:`pipeline.worker.run`.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import faust

from pipeline.config.settings import Settings
from pipeline.kafka.security import faust_credentials
from pipeline.web import webguard
from pipeline.web.webauth import WebAuth, bind_rule
from pipeline.worker import metrics
from pipeline.worker.batch import BATCH_MAX, BatchProcessor
from pipeline.worker.changelog import aiokafka_kwargs
from pipeline.worker.intake import Intake
from pipeline.worker.rebalance import Rebalancer
from pipeline.worker.routes import CustomerRoutes, add_views, web_route_class

#: How often (wall seconds) the worker checks that each input partition still holds the message its
#: state's position names; a topic deleted and re-created under a running worker is read again from
#: its beginning (Faust itself would drop every message below the old offset).
POSITION_CHECK_S = 10.0
#: How often (wall seconds) the landed input positions are committed to the group, for lag tooling.
COMMIT_INTERVAL_S = 5.0


class _SeekingApp(faust.App):
    """Faust seeks input to the group's committed offsets after every rebalance; churnwatch's input
    position lives in its state (see :mod:`pipeline.worker.store`), so after Faust's seek the worker seeks to
    the restored position (``after_seek``), before any message is fetched.

    It also sets the consumer's fetch wait (``CHURNWATCH_FETCH_MAX_WAIT_MS``), which Faust fixes at 1.5 s:
    on a broker that holds fetches (Tansu) that wait was the floor of every event's latency."""

    after_seek: Any = None
    #: reads the consumer's fetches into the processor's batches (instead of Faust's per-message streams)
    intake: Intake | None = None
    #: replaces the ``fetch_max_wait_ms`` Faust's aiokafka driver hard-codes (1,500 ms)
    fetch_max_wait_ms: int | None = None

    def _new_consumer(self) -> Any:
        consumer = super()._new_consumer()
        thread = getattr(consumer, "_thread", None)
        make = getattr(thread, "_create_worker_consumer", None)
        if make is not None and self.fetch_max_wait_ms is not None:
            wait_ms = self.fetch_max_wait_ms

            def create_worker_consumer(transport: Any) -> Any:
                client = make(transport)
                client._fetch_max_wait_ms = wait_ms  # read when the client starts its fetcher
                return client

            thread._create_worker_consumer = create_worker_consumer
        original = consumer.perform_seek

        async def perform_seek() -> None:
            await original()
            if self.after_seek is not None:
                await self.after_seek(consumer)

        consumer.perform_seek = perform_seek  # type: ignore[method-assign]
        if self.intake is not None:
            self.intake.attach(consumer)
        return consumer


class WorkerApp:
    """Builds the Faust app around a :class:`BatchProcessor` and holds what only the app needs (who may
    use the web server, the broker probe)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.core = BatchProcessor(settings)
        self.rebalancer = Rebalancer(self.core)
        self.intake = Intake(self.core, BATCH_MAX)
        #: who may use the web server; its Host names include the advertised address peers forward to
        #: (run_worker refuses an unguarded non-loopback web_host before serving)
        advertised = urlsplit(settings.web_advertised_url)
        self.webauth = WebAuth.for_server(settings, settings.web_host, settings.web_port, "worker web server",
                                          extra=[bind_rule(advertised.hostname or "", advertised.port or 0)],
                                          enforce_bind=False)
        self._probe: Any = None
        self.app = self._build_app()
        self.core.app = self.app

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
            broker_credentials=faust_credentials(s),
            logging_config=None,
            # the CSM view behind the same sign-in as the inbox; Faust's own routes for workers only
            web_application_options={"middlewares": [webguard.middleware(self.webauth, web_route_class,
                                                                          worker_ok=True)]},
        )
        app.after_seek = self.rebalancer.seek_to_state
        app.fetch_max_wait_ms = s.fetch_max_wait_ms
        self.input = app.topic(*s.input_topics.values(), key_serializer="raw", value_serializer="raw")
        route_topic = app.topic(s.input_topics["interactions"], key_serializer="raw", value_serializer="raw")
        self.routes = CustomerRoutes(self.core, app, self.webauth, route_topic)
        app.topics.add(self.input)  # subscribed; its messages go to the intake, not to a stream
        app.intake = self.intake
        app.timer(COMMIT_INTERVAL_S)(self._commit_landed)
        app.timer(s.model_poll_s)(self._poll_model)
        app.timer(1.0)(self._gauges)
        app.timer(1.0)(self.core.sweep)
        app.timer(2.0)(self._probe_broker)
        app.timer(POSITION_CHECK_S)(self.rebalancer.verify_input)
        app.on_rebalance_complete.connect(self.rebalancer.on_rebalance_complete)
        app.on_before_shutdown.connect(self._stop_model_checks)
        app.on_before_shutdown.connect(self._land_last_batch)
        app.on_partitions_revoked.connect(self.rebalancer.on_revoked)
        if self.core.webhook is not None:
            app.task(self._start_webhook)
            # After the consumer stopped (no new alerts) and before the producer is flushed and
            # stopped (give-ups can still be dead-lettered while draining).
            app.on_before_shutdown.connect(self._stop_webhook)
        add_views(app, self.routes)
        return app

    # ---- timers and the webhook's task ------------------------------------------------------
    async def _commit_landed(self) -> None:
        if not self.core.health.recovering:
            await self.intake.commit_landed(self.app.consumer)

    async def _poll_model(self) -> None:
        # validation runs a child process; the event loop must never wait for it
        await asyncio.to_thread(self.core.refresh_model)

    async def _land_last_batch(self, app: Any = None, **_: Any) -> None:
        # the consumer has stopped: let the batch in flight reach the broker and the local copy before
        # the producer goes (a restart would otherwise read it from the changelog's tail)
        try:
            await asyncio.wait_for(self.intake.finish(), self.settings.session_timeout_s)
            await asyncio.wait_for(self.core.drain(), self.settings.session_timeout_s)
        except Exception:
            pass

    async def _stop_model_checks(self, app: Any = None, **_: Any) -> None:
        self.core.models.close()  # a check in progress would otherwise hold up the exit by its timeout

    async def _gauges(self) -> None:
        metrics.CUSTOMERS.set(len(self.core.store))
        health = self.core.health
        health.assigned = self.core.assigned_partitions() if not health.recovering else health.assigned
        health.agent_alive = self.intake.crashed is None
        ready, _ = health.evaluate()
        metrics.WORKER_READY.set(1 if ready else 0)

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
            self.core.health.broker_answered()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.core.health.broker_failed(f"metadata request failed: {type(exc).__name__}")
            probe, self._probe = self._probe, None
            if probe is not None:
                try:
                    await asyncio.wait_for(probe.close(), 2)
                except Exception:
                    pass

    async def _start_webhook(self) -> None:
        assert self.core.webhook is not None
        await self.core.webhook.start()

    async def _stop_webhook(self, app: Any = None, **_: Any) -> None:
        assert self.core.webhook is not None
        await self.core.webhook.stop(drain_timeout_s=self.settings.webhook_timeout_s)
