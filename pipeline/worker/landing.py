"""How a batch's effects leave the worker, in order: dead letters, states + positions on the changelog, then
alerts (and scores); the local copy is written behind them, in order, on its own thread. Mixed into :class:`pipeline.worker.batch.BatchProcessor`, whose
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

#: Landed flushes a partition may hold in memory while its local copy is being written, before a
#: batch waits for the copy (each holds one batch's states of the partition).
MAX_PENDING_FLUSHES = 8
#: Batches whose alerts may be on their way at once before a batch waits for them.
MAX_UNSENT_BATCHES = 8


class Landing:
    """The write path of a :class:`~pipeline.worker.batch.BatchProcessor`."""

    settings: Settings
    store: StateStore
    health: Health
    webhook: WebhookSink | None
    models: Any
    app: Any
    #: the previous batch's landing, while it is in flight (see :meth:`commit`)
    _landing: "asyncio.Future[None] | None" = None
    _persisting: "asyncio.Future[None] | None" = None
    _publishing: "asyncio.Future[None] | None" = None
    #: batches whose alerts (and scores) are queued behind the previous ones but not yet acknowledged
    _unsent: int = 0
    #: per (input topic, partition): the offset after the last message whose effects the changelog has
    #: acknowledged (what :meth:`pipeline.worker.intake.Intake.commit_landed` commits to the group)
    landed_offsets: dict[tuple[str, int], int]

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
        their *landing* (the changelog's ack) runs as a task after the previous batch's landing, and
        behind it, each in a chain of its own and in order, the local copy's write and the alerts. With
        ``wait=False`` the next batch is processed while this one lands, and at most one landing is in
        flight when the next batch commits: the broker's round trips no longer add to every batch.
        ``wait=True`` (the sweep) returns once all of it is done."""
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
        landed: dict[tuple[str, int], int] = {}
        for p, values in states.items():
            if p in self.store.parts:
                flush = self.store.flush(p, values, outbox.get(p, []))
                changelog += self.changelog_records(flush)
                flushes.append((p, flush.position.seq, len(changelog) - 1))
                landed.update(((topic, p), pos[0] + 1) for topic, pos in flush.position.topics.items())
        await self._landed()  # changelog writes follow one another (a retried one must not overtake)
        self._landing = asyncio.ensure_future(self._land(deadletters, changelog, flushes, landed, results, now_ms))
        if wait:
            await self.drain()

    async def _land(self, deadletters: list[Any], changelog: list[Any], flushes: list[tuple[int, int, int]],
                    landed: dict[tuple[str, int], int], results: list[Any], now_ms: int) -> None:
        await self.durable(deadletters)  # before the position that moves past their events
        metas = await self.durable(changelog)
        self.landed_offsets.update(landed)
        # acknowledged: now the local copy may have it, with the mark of its position record. The copy is
        # a cache of the changelog, so neither the alerts nor the next batch wait for it: it is written
        # on its own thread, in order, while the flush is still read from the pending ones
        self._persisting = asyncio.ensure_future(self._after(
            self._persisting, self._persist, [(p, seq, int(metas[index].offset)) for p, seq, index in flushes]))
        # the alerts go out in order behind the acks of their states; the next batch need not wait for
        # their own acks (its changelog write only has to follow this one's)
        self._unsent += 1
        self._publishing = asyncio.ensure_future(self._after(self._publishing, self._publish_one, results, now_ms))
        if self._pending_flushes() > MAX_PENDING_FLUSHES:
            await self._persisting  # the copy fell behind: let it catch up before the next batch
        if self._unsent > MAX_UNSENT_BATCHES:
            await self._publishing  # the broker is slow to take alerts: do not run ahead of it

    @staticmethod
    async def _after(previous: "asyncio.Future[None] | None", step: Any, *args: Any) -> None:
        if previous is not None:
            await previous
        await step(*args)

    async def _persist(self, flushes: list[tuple[int, int, int]]) -> None:
        for p, seq, offset in flushes:
            await self.store.persist(p, seq, offset)

    async def _publish_one(self, results: list[Any], now_ms: int) -> None:
        try:
            await self._publish(results, now_ms)
        finally:
            self._unsent -= 1

    def _pending_flushes(self) -> int:
        return max((len(part.pending) for part in self.store.parts.values()), default=0)

    async def _landed(self) -> None:
        task = self._landing
        if task is not None:
            try:
                await task
            finally:
                if self._landing is task:
                    self._landing = None

    async def drain(self) -> None:
        """Wait until the batch in flight (if any) has landed, the local copy has every landed flush and every
        alert decided so far has been acknowledged."""
        await self._landed()
        for name in ("_persisting", "_publishing"):
            chain = getattr(self, name)
            if chain is not None:
                try:
                    await chain
                finally:
                    if getattr(self, name) is chain:
                        setattr(self, name, None)

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
