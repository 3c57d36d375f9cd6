"""Rebalances: restore every assigned partition's state, then seek its input to the restored position.

On a rebalance the worker first forgets what it lost, then, for each partition it now holds, writes a
fence to the state changelog and reads the partition back up to it (:mod:`pipeline.worker.changelog`):
after the fence no older owner's write can be mistaken for the newest. A local copy whose mark is still
in the changelog (:mod:`pipeline.worker.store`) is brought up to the fence by reading only the tail
after its mark; otherwise the whole partition is read into a fresh copy. Alerts a previous owner
decided but may not have sent are sent again; input is then read from just after the last message the state reflects, not
from the group's committed offsets (:class:`pipeline.worker.app._SeekingApp`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.worker import metrics
from pipeline.worker.changelog import check_positions, checking_consumer, fingerprint_at, read_into
from pipeline.worker.store import FENCE_KEY, after_full_read, can_read_tail, message_fingerprint

if TYPE_CHECKING:
    from pipeline.worker.batch import BatchProcessor

log = logging.getLogger("churnwatch.worker")


class Rebalancer:
    """The Faust app's rebalance callbacks and the periodic input-position check, on the processor's state."""

    def __init__(self, core: "BatchProcessor") -> None:
        self.core = core

    async def on_revoked(self, app: Any = None, revoked: Any = None, **_: Any) -> None:
        self.core.health.recovering = True
        parts = self.core.input_partitions(revoked)
        async with self.core.state_lock:
            await self.core.drain()
            self.core.store.revoke(parts)
            for key in [k for k in self.core.landed_offsets if k[1] in parts]:
                del self.core.landed_offsets[key]  # its next owner commits from here on
        self.core.clock.forget(parts)

    async def on_rebalance_complete(self, app: Any = None, **_: Any) -> None:
        """Restore every assigned partition (Faust sends this before it seeks and resumes fetching)."""
        self.core.health.recovering = True
        started = time.monotonic()
        async with self.core.state_lock:
            await self.core.drain()
            assigned = self.core.assigned_partitions()
            self.core.health.assigned = assigned
            for p in sorted(assigned):
                attempt = 0
                while True:
                    try:
                        await self.restore(p)
                        break
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # the broker went away mid-restore: try again, never skip
                        if self.core.app.should_stop:
                            raise
                        self.core.health.broker_failed(f"restore of partition {p} failed: {type(exc).__name__}: {exc}")
                        await asyncio.sleep(min(5.0, 0.5 * 2 ** attempt))
                        attempt += 1
            self.core.store.drop_stale()
        if assigned:
            metrics.RECOVERY_SECONDS.set(time.monotonic() - started)
        # what exists now (modules, the model, Faust's machinery) lives as long as the process: out of the
        # collector's way, so a full collection walks only what batches allocate (shorter pauses)
        gc.freeze()

    async def restore(self, p: int) -> None:
        """Make partition ``p``'s local copy equal to its changelog, reading as little as it can.

        * the record at the copy's mark is still there and the same: fold only the tail after it
          (``kept`` when there is none: a restart, or a partition that came back unchanged);
        * otherwise fold the whole changelog into a fresh copy (``restored``), unless the changelog
          has no position at all while the copy has one: the broker lost our writes, so the copy is
          written to it again (``reseed``)."""
        core, settings = self.core, self.core.settings
        t0 = time.monotonic()
        fence = orjson.dumps({"kind": "fence", "writer": core.writer})
        (meta,) = await core.durable([(settings.changelog_topic, FENCE_KEY, fence, p)])
        fence_offset, fence_fp = int(meta.offset), message_fingerprint(FENCE_KEY, fence)
        store = core.store
        part = store.local(p)
        store.adopt(part)  # the copy in use while restoring: also what a failed restore retries from
        mark = part.customers.mark()
        how, records = "", 0
        at_mark = None
        if mark is not None and mark.offset < fence_offset:
            at_mark = await fingerprint_at(settings, p, mark.offset)
        if can_read_tail(mark, fence_offset, at_mark):
            assert mark is not None
            records = await read_into(settings, part, mark.offset + 1, fence_offset)
            how = "tail"
            if records <= 1:  # the one record read is our own fence
                how = "kept"
        if not how:
            fresh = store.fresh(p)
            try:
                records = await read_into(settings, fresh, 0, fence_offset)
            except BaseException:
                store.discard(fresh)
                raise
            how = after_full_read(part, fresh)
            if how == "reseed":
                store.discard(fresh)
            else:
                part = store.replace(part, fresh)
                store.adopt(part)
        if how == "reseed":
            for chunk in store.reseed_chunks(p):
                await core.durable([(settings.changelog_topic, k, v, p) for k, v in chunk.items()])
            flush = store.flush(p, {}, [])
            metas = await core.durable(core.changelog_records(flush))
            await store.persist(p, flush.position.seq, int(metas[-1].offset))
        else:
            store.set_mark(part, fence_offset, fence_fp)
            if part.position.outbox and part.position.writer != core.writer:
                # alerts the previous owner (or this worker before a restart) made durable but may not have sent
                await core.durable([(settings.alerts_topic, str(a.get("customer_id", "")).encode(),
                                     orjson.dumps(a), None) for a in part.position.outbox])
        resume = await check_positions(settings, p, part.position.topics)
        for topic, offset in resume.items():
            if offset is None:
                part.position.topics.pop(topic, None)  # read it from the beginning
        newest = part.customers.max_last_ms()
        if newest:
            core.clock.observe(p, newest, int(time.time() * 1000), "interactions")
        metrics.RESTORES.labels(how=how).inc()
        log.info("partition %d %s: %d customers, %d changelog records read in %.2f s", p, how,
                 len(part.customers), records, time.monotonic() - t0)

    async def seek_to_state(self, consumer: Any) -> None:
        """Seek every assigned input partition to just after the last message its state reflects."""
        from faust.types import TP

        offsets: dict[Any, int] = {}
        for tp in consumer.assignment():
            if tp.topic not in self.core.source_of:
                continue
            part = self.core.store.parts.get(tp.partition)
            pos = part.position.topics.get(tp.topic) if part is not None else None
            offsets[TP(tp.topic, tp.partition)] = pos[0] + 1 if pos else 0
        if offsets:
            await consumer.seek_wait(offsets)
        self.core.health.recovering = False

    async def verify_input(self) -> None:
        """Re-read from the beginning any input partition whose position message has changed."""
        if self.core.health.recovering or not self.core.store.parts:
            return
        snapshot = {p: {t: list(v) for t, v in part.position.topics.items()}
                    for p, part in self.core.store.parts.items()}
        try:
            consumer = await checking_consumer(self.core.settings)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the broker is away: the probe reports that
            log.debug("position check failed: %s", exc)
            return
        try:
            await self._verify(snapshot, consumer)
        finally:
            await consumer.stop()

    async def _verify(self, snapshot: dict[int, dict[str, list[int]]], consumer: Any) -> None:
        from faust.types import TP

        for p, topics in snapshot.items():
            try:
                resume = await check_positions(self.core.settings, p, topics, consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker is away: the probe reports that
                log.debug("position check of partition %d failed: %s", p, exc)
                return
            started_over = [t for t, offset in resume.items() if offset is None]
            if not started_over:
                continue
            async with self.core.state_lock:
                part = self.core.store.parts.get(p)
                if part is None or self.core.health.recovering:
                    continue
                for topic in started_over:
                    part.position.topics.pop(topic, None)
                metrics.INPUT_RESETS.inc(len(started_over))
                await self.core.app.consumer.seek_wait({TP(t, p): 0 for t in started_over})
