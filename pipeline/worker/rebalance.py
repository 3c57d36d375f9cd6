"""Rebalances: restore every assigned partition's state, then seek its input to the restored position.

On a rebalance the worker first forgets what it lost, then, for each partition it now holds, writes a
fence to the state changelog and reads the partition back up to it (:mod:`pipeline.worker.changelog`):
after the fence no older owner's write can be mistaken for the newest. A worker that kept the partition
and wrote nothing since its own last record keeps its copy. Alerts a previous owner decided but may not
have sent are sent again; input is then read from just after the last message the state reflects, not
from the group's committed offsets (:class:`pipeline.worker.app._SeekingApp`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.core.features import CustomerState
from pipeline.worker import metrics
from pipeline.worker.changelog import check_positions, read_partition
from pipeline.worker.store import FENCE_KEY

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
            self.core.store.revoke(parts)
        self.core.clock.forget(parts)

    async def on_rebalance_complete(self, app: Any = None, **_: Any) -> None:
        """Restore every assigned partition (Faust sends this before it seeks and resumes fetching)."""
        self.core.health.recovering = True
        started = time.monotonic()
        async with self.core.state_lock:
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

    async def restore(self, p: int) -> None:
        t0 = time.monotonic()
        fence = orjson.dumps({"kind": "fence", "writer": self.core.writer})
        (meta,) = await self.core.durable([(self.core.settings.changelog_topic, FENCE_KEY, fence, p)])
        fence_offset = int(meta.offset)
        mine = self.core.store.parts.get(p) or self.core.store.stale.get(p)
        last = self.core.last_written.get(p)
        if mine is not None and last is not None and fence_offset == last + 1:
            # nothing was written to the partition since our own last record: our copy is the newest
            self.core.store.stale.pop(p, None)
            self.core.store.parts[p] = part = mine
            how, records = "kept", 0
        else:
            restored, records = await read_partition(self.core.settings, p, fence_offset)
            part, how = self.core.store.adopt(restored)
            if how == "reseed":
                await self.core.durable(self.core.changelog_records(self.core.store.reseed(p)))
            elif how == "restored" and part.position.outbox and part.position.writer != self.core.writer:
                # alerts the previous owner decided and made durable but may not have sent
                await self.core.durable([(self.core.settings.alerts_topic, str(a.get("customer_id", "")).encode(),
                                          orjson.dumps(a), None) for a in part.position.outbox])
        resume = await check_positions(self.core.settings, p, part.position.topics)
        for topic, offset in resume.items():
            if offset is None:
                part.position.topics.pop(topic, None)  # read it from the beginning
        for key, raw in part.customers.items():
            try:
                st = CustomerState.from_bytes(raw)
            except Exception:
                continue
            if st.last_ms:
                self.core.clock.observe(p, st.last_ms, int(time.time() * 1000), "interactions")
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
        from faust.types import TP

        if self.core.health.recovering or not self.core.store.parts:
            return
        snapshot = {p: {t: list(v) for t, v in part.position.topics.items()}
                    for p, part in self.core.store.parts.items()}
        for p, topics in snapshot.items():
            try:
                resume = await check_positions(self.core.settings, p, topics)
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
