"""The intake: what one fetch returned reaches the processor in batches, in order, and nothing fetched
before a rebalance is processed after it; the group commit carries only acknowledged positions."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from pipeline.worker.intake import Intake


class Stopped(Exception):
    pass


class FakeCore:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.landed_offsets: dict[tuple[str, int], int] = {}
        self.fail_on: int | None = None

    async def process_batch(self, batch: list[Any]) -> None:
        if self.fail_on is not None and self.fail_on in [m.offset for m in batch]:
            raise RuntimeError("boom")
        await asyncio.sleep(0)
        self.batches.append([m.offset for m in batch])


class FakeConsumer:
    """Faust's consumer as the intake sees it: ``getmany`` yields one fetch's messages per call."""

    consumer_stopped_errors = (Stopped,)

    def __init__(self, fetches: list[list[int]], on_fetch: Any = None) -> None:
        self.fetches = list(fetches)
        self.app = SimpleNamespace(consumer_generation_id=1, should_stop=False)
        self._stopped = asyncio.Event()
        self.on_fetch = on_fetch
        self.committed: list[dict[TP, int]] = []
        self.assigned = {TP("in", 0), TP("in", 1)}

    async def getmany(self, timeout: float) -> Any:
        if not self.fetches:
            self._stopped.set()
            return
        fetch = self.fetches.pop(0)
        for i, off in enumerate(fetch):
            if self.on_fetch is not None:
                self.on_fetch(self, i)
            yield TP("in", 0), SimpleNamespace(topic="in", partition=0, offset=off)

    def assignment(self) -> set[TP]:
        return self.assigned

    async def _commit(self, offsets: dict[TP, int]) -> bool:
        self.committed.append(dict(offsets))
        return True


def run(core: FakeCore, consumer: FakeConsumer, batch_max: int = 3) -> Intake:
    intake = Intake(core, batch_max)  # type: ignore[arg-type]
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    asyncio.run(intake.run(consumer, fetcher))
    return intake


def test_each_fetch_is_cut_into_batches_of_at_most_batch_max_in_order() -> None:
    core = FakeCore()
    run(core, FakeConsumer([[0, 1, 2, 3, 4, 5, 6], [7], [], [8, 9]]))
    assert core.batches == [[0, 1, 2], [3, 4, 5], [6], [7], [8, 9]]


def test_messages_fetched_before_a_rebalance_are_not_processed_after_it() -> None:
    def rebalance_mid_fetch(consumer: FakeConsumer, i: int) -> None:
        if i == 4:  # the generation changes while the fetch is being read
            consumer.app.consumer_generation_id += 1

    core = FakeCore()
    run(core, FakeConsumer([[0, 1, 2, 3, 4, 5], [3, 4, 5]], on_fetch=rebalance_mid_fetch))
    # 0-2 went before the rebalance; 3 (and 4, 5, read under the new generation but from the old fetch)
    # are dropped and read again from the restored position by the next fetch
    assert core.batches == [[0, 1, 2], [3, 4, 5]]


def test_a_rebalance_that_ends_while_the_fetch_waits_does_not_drop_the_fetch() -> None:
    class LateFetch(FakeConsumer):
        async def getmany(self, timeout: float) -> Any:
            if self.fetches and self.fetches[0] == [5, 6]:
                self.app.consumer_generation_id += 1  # a rebalance (and its seek) during the wait
            async for item in super().getmany(timeout):
                yield item

    core = FakeCore()
    run(core, LateFetch([[0, 1], [5, 6]]))
    assert core.batches == [[0, 1], [5, 6]]  # read after the seek: nothing reads it again


def test_a_failing_batch_stops_the_loop_and_marks_it_crashed() -> None:
    core = FakeCore()
    core.fail_on = 4
    intake = Intake(core, 3)  # type: ignore[arg-type]
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    with pytest.raises(RuntimeError):
        asyncio.run(intake.run(FakeConsumer([[0, 1, 2, 3, 4, 5], [6]]), fetcher))
    assert isinstance(intake.crashed, RuntimeError)
    assert core.batches == [[0, 1, 2]]


def test_a_stopped_consumer_during_shutdown_is_a_clean_end() -> None:
    class StoppingConsumer(FakeConsumer):
        async def getmany(self, timeout: float) -> Any:
            self.app.should_stop = True
            raise Stopped()
            yield  # pragma: no cover

    intake = run(FakeCore(), StoppingConsumer([]))
    assert intake.crashed is None


def test_commit_landed_commits_assigned_partitions_once_per_new_position() -> None:
    core = FakeCore()
    consumer = FakeConsumer([])
    intake = Intake(core, 3)  # type: ignore[arg-type]
    core.landed_offsets.update({("in", 0): 10, ("in", 1): 4, ("in", 7): 99})  # partition 7: not ours
    asyncio.run(intake.commit_landed(consumer))
    asyncio.run(intake.commit_landed(consumer))  # nothing new
    core.landed_offsets[("in", 0)] = 12
    asyncio.run(intake.commit_landed(consumer))
    assert consumer.committed == [{TP("in", 0): 10, TP("in", 1): 4}, {TP("in", 0): 12}]
