"""How a batch's effects leave the worker, in order: dead letters, states + positions on the changelog, then
alerts (and scores) while the local copy is written. Mixed into :class:`pipeline.worker.batch.BatchProcessor`, whose
state it uses; kept apart because it is the worker's one write path, and the part to read when the
question is "can this alert or dead letter be lost?" (no: see :meth:`Landing.commit`).
"""

from __future__ import annotations

import asyncio
from typing import Any, Sequence

import orjson

from pipeline.config.settings import Settings
from pipeline.worker import metrics
from pipeline.worker.deadletter import deadletter_record
from pipeline.worker.health import Health
from pipeline.worker.store import Flush, StateStore
from pipeline.worker.webhook import WebhookSink

Record = tuple[str, bytes | None, bytes | None, int | None]


class Landing:
    """The write path of a :class:`~pipeline.worker.batch.BatchProcessor`."""

    settings: Settings
    store: StateStore
    health: Health
    webhook: WebhookSink | None
    models: Any
    app: Any
    _landing: "asyncio.Future[None] | None"

    def changelog_records(self, flush: Flush) -> list[tuple[str, bytes, bytes | None, int | None]]:
        topic = self.settings.changelog_topic
        return [(topic, key, value, flush.partition) for key, value in flush.records()]

    async def durable(self, records: Sequence[tuple[str, bytes | None, bytes | None, int | None]]) -> list[Any]:
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

    async def _webhook_failed(self, record: dict[str, Any], detail: str) -> None:
        """An alert's chat copy was given up on: keep it on the dead-letter topic, keyed by customer.

        Not counted in churnwatch_deadletters_total, which measures bad *input*;
        churnwatch_webhook_deliveries_total{outcome="failed"} counts these.
        """
        customer = (record.get("alert") or {}).get("customer_id")
        await self.durable([(self.settings.deadletter_topic, str(customer).encode() if customer else None,
                             orjson.dumps(record), None)])

    async def commit(self, states: dict[int, dict[bytes, bytes]], results: list[Any],
                     dead: list[tuple[Any, str, str]], now_ms: int, wait: bool = True) -> None:
        """Make a batch durable, then tell the world: dead letters, then states + positions, then alerts.

        The states are staged at once (the next batch reads them from the partition's pending flushes);
        their *landing* (the broker's acks, the local copy, the alerts) runs as a task after the previous
        batch's landing. With ``wait=False`` the next batch is processed while this one lands, and at
        most one landing is in flight when the next batch commits: the broker's round trip no longer
        adds to every batch."""
        deadletters = []
        for it, reason, detail in dead:
            metrics.DEADLETTERS.labels(reason=reason).inc()
            deadletters.append((self.settings.deadletter_topic, it.key,
                                deadletter_record(it.raw, it.key, it.topic, it.partition, it.offset, reason, detail,
                                                  now_ms), None))
        outbox: dict[int, list[dict[str, Any]]] = {}
        for s in results:
            for alert in s.alerts:
                outbox.setdefault(s.entry.partition, []).append(alert.to_json())
        changelog: list[tuple[str, bytes | None, bytes | None, int | None]] = []
        flushes: list[tuple[int, int, int]] = []  # partition, flush seq, index of its position record
        for p, values in states.items():
            if p in self.store.parts:
                flush = self.store.flush(p, values, outbox.get(p, []))
                changelog += self.changelog_records(flush)
                flushes.append((p, flush.position.seq, len(changelog) - 1))
        await self.drain()
        self._landing = asyncio.ensure_future(self._land(deadletters, changelog, flushes, results, now_ms))
        if wait:
            await self.drain()

    async def _land(self, deadletters: list[Any], changelog: list[Any], flushes: list[tuple[int, int, int]],
                    results: list[Any], now_ms: int) -> None:
        await self.durable(deadletters)  # before the position that moves past their events
        metas = await self.durable(changelog)

        async def persist() -> None:
            for p, seq, index in flushes:
                # acknowledged: now the local copy may have it, with the mark of its position record
                await self.store.persist(p, seq, int(metas[index].offset))

        # the alerts need only the changelog's ack (the local copy is a cache of it): the copy is written
        # on its thread while they are sent
        await asyncio.gather(persist(), self._publish(results, now_ms))

    async def drain(self) -> None:
        """Wait until the batch in flight (if any) has landed."""
        task = self._landing
        if task is not None:
            try:
                await task
            finally:
                if self._landing is task:
                    self._landing = None

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
        await self.durable(records)
