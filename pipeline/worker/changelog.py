"""Kafka I/O of the state store: reading a changelog partition back to a fence, checking where the input
stands, and writing flushes. The rules these follow are in :mod:`pipeline.worker.store`.

Plain aiokafka clients (no consumer group): a restore reads one changelog partition by manual
assignment, and the producer is the Faust app's own, so changelog writes and alerts share its
connection and ordering per partition.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pipeline.config.settings import Settings
from pipeline.worker.store import FOLD_CHUNK, PartitionState, fold_into, message_fingerprint

log = logging.getLogger("churnwatch.changelog")


def aiokafka_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection and security keyword arguments for aiokafka clients (see :mod:`pipeline.kafka.security`)."""
    from pipeline.kafka.security import aiokafka_kwargs as kwargs

    return kwargs(settings)


async def _consumer(settings: Settings) -> Any:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(enable_auto_commit=False, group_id=None, auto_offset_reset="earliest",
                                client_id=f"{settings.app_id}-restore", max_partition_fetch_bytes=8 * 1024 * 1024,
                                request_timeout_ms=int(max(30.0, settings.session_timeout_s * 3) * 1000),
                                **aiokafka_kwargs(settings))
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()
        raise
    return consumer


async def read_into(settings: Settings, part: PartitionState, start: int, fence_offset: int) -> int:
    """Fold changelog partition ``part.partition`` from ``start`` through ``fence_offset`` (inclusive)
    into ``part``, a chunk at a time; returns the records read.

    The fence is a record this worker appended just before, so reaching it means every earlier write
    was read, whatever end offset the broker reports. An offset below the log's start is read from the
    start: folding older records first is harmless, the newer ones come after them."""
    from aiokafka import TopicPartition

    tp = TopicPartition(settings.changelog_topic, part.partition)
    consumer = await _consumer(settings)
    n = 0
    try:
        consumer.assign([tp])
        if start <= 0:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, start)
        while True:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=FOLD_CHUNK)
            n += fold_into(part, [(rec.key, rec.value) for rec in batch.get(tp, ()) if rec.offset <= fence_offset])
            if await consumer.position(tp) > fence_offset:
                break
    finally:
        await consumer.stop()
    return n


async def checking_consumer(settings: Settings) -> Any:
    """A consumer (no group) for many :func:`check_positions` calls: one connection, not one per partition."""
    return await _consumer(settings)


async def fingerprint_at(settings: Settings, partition: int, offset: int) -> int | None:
    """Fingerprint of the changelog record at ``offset``, None if it is not there (any more)."""
    from aiokafka import TopicPartition

    consumer = await _consumer(settings)
    try:
        rec = await _message_at(consumer, TopicPartition(settings.changelog_topic, partition), offset)
    finally:
        await consumer.stop()
    return message_fingerprint(rec.key, rec.value) if rec is not None else None


async def _fetch_one(consumer: Any, tp: Any, offset: int) -> Any:
    consumer.seek(tp, offset)
    try:
        batch = await asyncio.wait_for(consumer.getmany(tp, timeout_ms=2000, max_records=1), 10)
    except asyncio.TimeoutError:
        return None
    recs = batch.get(tp, ())
    return recs[0] if recs else None


async def _message_at(consumer: Any, tp: Any, offset: int) -> Any:
    """The message at ``offset`` of ``tp``, or None if it is not there (any more).

    Quick either way: the listed offsets rule out an empty partition and an offset below the log
    start; a fetch at the last listed offset (an existing message on any broker, even where the
    listed end is the last *batch's* first offset + 1, as on Tansu) brings the fetch response's high
    watermark, the true end, so an offset past it is not waited for."""
    consumer.assign([tp])
    begin = (await consumer.beginning_offsets([tp]))[tp]
    end = (await consumer.end_offsets([tp]))[tp]
    if end <= 0 or offset < begin:
        return None
    if offset >= end:
        rec = await _fetch_one(consumer, tp, end - 1)
        true_end = consumer.highwater(tp)
        if rec is None or true_end is None or offset >= true_end:
            return None
    rec = await _fetch_one(consumer, tp, offset)
    return rec if rec is not None and rec.offset == offset else None


async def check_positions(settings: Settings, partition: int, topics: dict[str, list[int]],
                          consumer: Any = None) -> dict[str, int | None]:
    """Where to resume each input topic of ``partition``: after the restored offset if the input is
    still the one the state was folded from, else (None) from the beginning.

    It is another input when the message at the restored offset is gone or different, or when the
    first message the state read there (the origin) is present but different: a topic re-created
    under a running worker may already hold more messages than the old one. An origin that is simply
    gone was removed by retention and says nothing."""
    from aiokafka import TopicPartition

    out: dict[str, int | None] = {}
    if not topics:
        return out
    own = consumer is None
    if own:
        consumer = await _consumer(settings)
    try:
        for topic, entry in topics.items():
            offset, fp = entry[0], entry[1]
            origin_offset, origin_fp = (entry[2], entry[3]) if len(entry) >= 4 else (offset, fp)
            tp = TopicPartition(topic, partition)
            last = await _message_at(consumer, tp, offset)
            same = last is not None and message_fingerprint(last.key, last.value) == fp
            if same and origin_offset != offset:
                origin = await _message_at(consumer, tp, origin_offset)
                same = origin is None or message_fingerprint(origin.key, origin.value) == origin_fp
            out[topic] = offset + 1 if same else None
    finally:
        if own:
            await consumer.stop()
    changed = sorted(t for t, off in out.items() if off is None)
    if changed:
        log.warning("partition %d of %s is not the input the state was folded from (topic re-created or "
                    "truncated): reading it from the beginning", partition, ", ".join(changed))
    return out
