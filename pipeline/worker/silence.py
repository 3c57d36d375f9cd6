"""The silence sweep: customers who have gone quiet are re-scored as of their partition's event-time clock
(:class:`pipeline.core.sweep.SweepClock`), so their recency features decay and a customer who simply
stops using the product is alerted on without any event of theirs.

It walks the idle, not-churned customers the local store indexes (:meth:`PartitionState.idle`, newest states first), a chunk at
a time: each chunk holds the processor's state lock only while it is decided and made durable, so a
sweep over a million customers does not stop the stream for its whole length.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pipeline.core.alerting import SWEEP
from pipeline.core.decisions import Touched
from pipeline.core.features import CustomerState

#: Customers a sweep decides on per hold of the state lock: a sweep over a million customers must
#: not stop the stream for its whole length.
SWEEP_CHUNK = 500


async def sweep_silent(core: Any) -> None:
    """Sweep the partitions whose clock says it is time. ``core`` is the worker's
    :class:`~pipeline.worker.batch.BatchProcessor` (its store, clock, lock, decisions and commit)."""
    if core.models.model is None or not core.clock.clocks or core.health.recovering:
        return
    now_ms = int(time.time() * 1000)
    due = core.clock.due(now_ms, set(core.store.parts))
    for p, as_of in sorted(due.items()):
        after = b""
        while True:
            async with core.state_lock:
                part = core.store.parts.get(p)
                if part is None or core.health.recovering:
                    break
                rows = part.idle(as_of - core.clock.idle_ms, after, SWEEP_CHUNK)
                if not rows:
                    break
                after = rows[-1][0]
                await _sweep_chunk(core, p, rows, as_of, now_ms)
            await asyncio.sleep(0)  # let batches in between chunks


async def _sweep_chunk(core: Any, p: int, rows: list[tuple[bytes, bytes | None]], as_of: int, now_ms: int) -> None:
    entries: dict[bytes, Touched] = {}
    for key, raw in rows:
        if raw is None:
            continue  # deleted since the local copy's index was written
        try:
            state = CustomerState.from_bytes(raw)
        except Exception:
            continue
        if state.churned_ms or not core.clock.is_idle(state.last_ms, as_of):
            continue
        entries[key] = Touched(state, p, True, as_of)
    if not entries:
        return
    before = {k: e.state.alert.copy() for k, e in entries.items()}
    results = core.decide(list(entries.values()), now_ms, SWEEP)
    states: dict[int, dict[bytes, bytes]] = {}
    for key, entry in entries.items():
        if entry.state.alert != before[key]:
            states.setdefault(entry.partition, {})[key] = entry.state.to_bytes()
    await core.commit(states, results, [], now_ms)
