"""The silence sweep reads idle customers from the local copy's index, but a newer state of a customer may
still be pending on its way to that copy: the sweep must judge (and write back) the newer one."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from pipeline.core.features import CustomerState
from pipeline.worker.silence import sweep_silent
from pipeline.worker.store import PartitionState, StateStore

DAY_MS = 86_400_000
AS_OF = 1_764_000_000_000
IDLE_MS = 21 * DAY_MS


def state_bytes(cid: str, last_ms: int) -> bytes:
    st = CustomerState(cid)
    st.last_ms = last_ms
    return st.to_bytes()


class FakeCore:
    """What :func:`sweep_silent` uses of the processor: its store, clock, lock, decisions and commit."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.models = SimpleNamespace(model=object())
        self.health = SimpleNamespace(recovering=False)
        self.state_lock = asyncio.Lock()
        self.clock = SimpleNamespace(clocks={0: AS_OF}, idle_ms=IDLE_MS,
                                     due=lambda now_ms, parts: {0: AS_OF},
                                     is_idle=lambda last_ms, as_of: as_of - last_ms >= IDLE_MS)
        self.decided: list[tuple[str, int]] = []

    def decide(self, entries: list[Any], now_ms: int, trigger: str) -> list[Any]:
        self.decided += [(e.state.customer_id, e.state.last_ms) for e in entries]
        return []

    async def commit(self, states: Any, results: Any, dead: Any, now_ms: int) -> None:
        pass


def test_the_sweep_judges_a_pending_newer_state_not_the_local_copys_older_one() -> None:
    store = StateStore("w")
    store.parts = {0: PartitionState(0)}
    long_ago = AS_OF - 30 * DAY_MS
    flush = store.flush(0, {b"busy": state_bytes("busy", long_ago), b"quiet": state_bytes("quiet", long_ago)}, [])
    asyncio.run(store.persist(0, flush.position.seq, 7))  # both in the local copy, both idle there
    store.flush(0, {b"busy": state_bytes("busy", AS_OF - 3_600_000)}, [])  # not yet in the copy
    assert store.parts[0].pending

    core = FakeCore(store)
    asyncio.run(sweep_silent(core))
    assert core.decided == [("quiet", long_ago)]  # "busy" had an event an hour ago: not silent
