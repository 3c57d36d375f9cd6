"""Input from the consumer's fetches straight to the batch processor, a micro-batch at a time.

Why not a Faust agent: profiled at 5,000 events/s paced, about a third of the worker's CPU went to Faust
delivering each message on its own: ``wait_first`` (two tasks per message), an Event, a channel queue,
the stream's iterator, an ack. None of it is needed here. churnwatch keeps its input position in its own
state, not in the group's committed offsets (:mod:`pipeline.worker.store`), and after every rebalance it
seeks to that position (:class:`pipeline.worker.app._SeekingApp`), so a fetched record that was not
processed before a rebalance is simply read again. :class:`Intake` replaces the consumer's
``_drain_messages`` loop (run by Faust's Fetcher service): what one ``getmany`` returned goes to
:meth:`BatchProcessor.process_batch` in batches of at most ``batch_max``. A backlog therefore arrives
in full batches and paced traffic in whatever one fetch brought, with no wait added to fill a batch.

The group's committed offsets are still kept (:meth:`Intake.commit_landed`), from the positions the
changelog has acknowledged, so that the usual consumer-lag tooling sees how far behind the worker is;
nothing in churnwatch reads them back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.worker.batch import BatchProcessor

log = logging.getLogger("churnwatch.worker")


class Intake:
    """The fetch loop of one consumer, feeding one processor."""

    def __init__(self, core: "BatchProcessor", batch_max: int) -> None:
        self.core = core
        self.batch_max = batch_max
        #: the batch being processed, if any: shutdown lets it finish before the last batch lands
        self.inflight: "asyncio.Future[None] | None" = None
        self._committed: dict[tuple[str, int], int] = {}
        #: what stopped the loop, if anything but a shutdown did (liveness reports it)
        self.crashed: BaseException | None = None

    def attach(self, consumer: Any) -> None:
        """Take over the consumer's message loop (Faust's Fetcher calls ``_drain_messages``)."""
        async def drain_messages(fetcher: Any) -> None:
            await self.run(consumer, fetcher)

        consumer._drain_messages = drain_messages

    async def run(self, consumer: Any, fetcher: Any) -> None:
        app = consumer.app
        stopped = (consumer._stopped.is_set, fetcher._stopped.is_set)
        try:
            while not any(s() for s in stopped):
                generation: int | None = None
                batch: list[Any] = []
                # getmany waits for the next fetch (or its 1 s timeout), stops yielding when the consumer
                # generation changes, and waits while the flow is suspended
                async for _tp, message in consumer.getmany(timeout=1.0):
                    if generation is None:
                        # the generation the fetch belongs to: getmany reads it once the records are
                        # there, with no await before the first one is yielded. Read before the call, it
                        # could be the one before a rebalance that ended during the wait, and a fetch
                        # made after that rebalance's seek would be dropped and never read again.
                        generation = app.consumer_generation_id
                    batch.append(message)
                    if len(batch) >= self.batch_max:
                        await self._deliver(app, generation, batch)
                        batch = []
                if batch and generation is not None:
                    await self._deliver(app, generation, batch)
                else:
                    await asyncio.sleep(0)
        except consumer.consumer_stopped_errors as exc:
            if not app.should_stop:
                self.crashed = exc
                raise
        except asyncio.CancelledError:
            raise  # a shutdown, or Faust restarting its fetcher on a rebalance
        except Exception as exc:
            self.crashed = exc
            log.exception("reading input failed; the worker reports itself not alive")
            raise

    async def _deliver(self, app: Any, generation: int, batch: list[Any]) -> None:
        if app.consumer_generation_id != generation:
            return  # fetched before a rebalance: read again from the restored position after it
        task = asyncio.ensure_future(self.core.process_batch(batch))
        self.inflight = task
        # shielded: a cancelled fetcher (shutdown) must not stop a batch half-way; the shutdown hook
        # waits for it instead
        try:
            await asyncio.shield(task)
        finally:
            if task.done():
                self.inflight = None

    async def finish(self) -> None:
        """Let the batch being processed (if any) end."""
        task = self.inflight
        if task is not None:
            try:
                await task
            except Exception:
                log.exception("the last batch failed while the worker stopped")

    async def commit_landed(self, consumer: Any) -> None:
        """Commit to the group, for each assigned input partition, the position the changelog holds."""
        from faust.types import TP

        offsets = {}
        assigned = consumer.assignment()
        for (topic, partition), offset in self.core.landed_offsets.items():
            tp = TP(topic, partition)
            if tp in assigned and self._committed.get((topic, partition)) != offset:
                offsets[tp] = offset
        if not offsets:
            return
        try:
            if await consumer._commit(offsets):
                self._committed.update(((tp.topic, tp.partition), off) for tp, off in offsets.items())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # for the lag tooling only: never worth stopping for
            log.debug("offset commit failed: %s", exc)
