"""Kafka I/O of the state store: reading a changelog partition back to a fence, checking where the input
stands, and writing flushes. The rules these follow are in :mod:`pipeline.store`.

Plain aiokafka clients (no consumer group): a restore reads one changelog partition by manual
assignment, and the producer is the Faust app's own, so changelog writes and alerts share its
connection and ordering per partition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import orjson

from pipeline.settings import Settings
from pipeline.store import FENCE_KEY, PartitionState, fold, message_fingerprint

log = logging.getLogger("churnwatch.changelog")

Send = Callable[[str, bytes, bytes, int], Awaitable[Any]]


def aiokafka_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection and security keyword arguments for aiokafka clients."""
    kwargs: dict[str, Any] = {"bootstrap_servers": settings.bootstrap_servers,
                              "security_protocol": settings.security_protocol}
    if settings.sasl_mechanism:
        kwargs.update(sasl_mechanism=settings.sasl_mechanism, sasl_plain_username=settings.sasl_username,
                      sasl_plain_password=settings.sasl_password)
    if "SSL" in settings.security_protocol.upper():
        import ssl

        kwargs["ssl_context"] = ssl.create_default_context(cafile=settings.ssl_cafile or None)
    return kwargs


@dataclass
class Restored:
    state: PartitionState
    records: int
    seconds: float
    #: per input topic, where to resume: an offset, or None to read from the beginning
    resume: dict[str, int | None]


async def _consumer(settings: Settings) -> Any:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(enable_auto_commit=False, group_id=None, auto_offset_reset="earliest",
                                client_id=f"{settings.app_id}-restore", max_partition_fetch_bytes=8 * 1024 * 1024,
                                request_timeout_ms=int(max(30.0, settings.session_timeout_s * 3) * 1000),
                                **aiokafka_kwargs(settings))
    await consumer.start()
    return consumer


async def read_partition(settings: Settings, partition: int, fence_offset: int) -> tuple[PartitionState, int]:
    """Fold changelog ``partition`` from its beginning through ``fence_offset`` (inclusive).

    The fence is a record this worker appended just before, so reaching it means every earlier write
    was read, whatever end offset the broker reports."""
    from aiokafka import TopicPartition

    tp = TopicPartition(settings.changelog_topic, partition)
    consumer = await _consumer(settings)
    records: list[tuple[bytes | None, bytes | None]] = []
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        while True:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=50_000)
            for rec in batch.get(tp, ()):
                if rec.offset <= fence_offset:
                    records.append((rec.key, rec.value))
            if await consumer.position(tp) > fence_offset:
                break
    finally:
        await consumer.stop()
    return fold(partition, records), len(records)


async def check_positions(settings: Settings, partition: int, topics: dict[str, list[int]]) -> dict[str, int | None]:
    """Where to resume each input topic of ``partition``: after the restored offset if the message there
    is still the one folded in (same fingerprint), else from the beginning (the topic started over)."""
    from aiokafka import TopicPartition

    out: dict[str, int | None] = {}
    if not topics:
        return out
    consumer = await _consumer(settings)
    try:
        for topic, (offset, fp) in topics.items():
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, offset)
            found = None
            try:
                batch = await asyncio.wait_for(consumer.getmany(tp, timeout_ms=2000, max_records=1), 10)
                for rec in batch.get(tp, ()):
                    found = rec
            except asyncio.TimeoutError:
                found = None
            if found is not None and found.offset == offset and message_fingerprint(found.key, found.value) == fp:
                out[topic] = offset + 1
            else:
                log.warning("input %s[%d] no longer holds the message at offset %d that the state reflects "
                            "(topic re-created or truncated): reading it from the beginning", topic, partition, offset)
                out[topic] = None
    finally:
        await consumer.stop()
    return out


async def restore(settings: Settings, partition: int, writer: str, send: Send) -> Restored:
    """Append a fence, read the partition back to it, and work out where its input resumes."""
    started = time.monotonic()
    meta = await send(settings.changelog_topic, FENCE_KEY, orjson.dumps({"kind": "fence", "writer": writer}), partition)
    state, n = await read_partition(settings, partition, int(meta.offset))
    resume = await check_positions(settings, partition, state.position.topics)
    return Restored(state, n, time.monotonic() - started, resume)
