"""Producing event records to Kafka, optionally paced to an accelerated simulated clock.

Pacing lets the demo replay months of simulated behaviour in minutes while the worker sees a steady,
time-ordered stream, and the wall-clock cap keeps simulated events from ever being "in the future"
(which the contract rejects).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Iterable

import orjson
from kafka import KafkaProducer

from devtools.simulator import SimRecord
from pipeline.config.settings import Settings
from pipeline.kafka.security import kafka_python_kwargs


@dataclass
class ProduceStats:
    sent: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    sim_ms: int = 0  # simulated time of the last record sent


def make_producer(settings: Settings) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="churnwatch-producer",
        linger_ms=20,
        batch_size=256 * 1024,
        acks=1,
        **kafka_python_kwargs(settings),
    )


def encode(rec: SimRecord) -> bytes:
    return rec.value if isinstance(rec.value, bytes) else orjson.dumps(rec.value)


def produce(records: Iterable[SimRecord], settings: Settings, *, speed: float | None = None,
            stop: threading.Event | None = None, producer: KafkaProducer | None = None,
            stats: ProduceStats | None = None) -> ProduceStats:
    """Send records to their topics (keyed by customer).

    ``speed``: simulated seconds per wall second (86400 = a day per second), > 0; None sends as fast as
    possible (0 is refused rather than read as "no pacing"). Records are never sent before the wall
    clock reaches their event time.
    """
    if speed is not None and not 0 < speed < float("inf"):
        raise ValueError(f"speed must be > 0 simulated seconds per wall second (None: as fast as possible), got {speed!r}")
    own = producer is None
    producer = producer or make_producer(settings)
    stats = stats or ProduceStats()
    stop = stop or threading.Event()
    topics = {src: settings.topic(src) for src in ("customers", "interactions", "tickets", "surveys", "outcomes")}
    sim0: int | None = None
    wall0 = time.time()
    try:
        for rec in records:
            if stop.is_set():
                break
            if sim0 is None:
                sim0 = rec.ts_ms
            due = time.time()
            if speed is not None:
                due = wall0 + (rec.ts_ms - sim0) / 1000 / speed
            due = max(due, rec.ts_ms / 1000)  # never ahead of the real clock
            delay = due - time.time()
            if delay > 0:
                producer.flush()
                if stop.wait(delay):
                    break
            producer.send(topics[rec.source], key=rec.key.encode(), value=encode(rec))
            stats.sent += 1
            stats.by_source[rec.source] = stats.by_source.get(rec.source, 0) + 1
            stats.sim_ms = rec.ts_ms
        producer.flush()
    finally:
        if own:
            producer.close(timeout=5)
    return stats
