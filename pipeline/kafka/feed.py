"""Reading an output topic (alerts, dead letters, scores) from outside the worker.

kafka-python *group* consumers get no partition assignment from the embedded Tansu broker, so readers
assign every partition explicitly; they are observers, not members of the worker's consumer group.
"""

from __future__ import annotations

import threading
from typing import Any, Iterator

import orjson
from kafka import KafkaConsumer, TopicPartition

from pipeline.config.settings import Settings
from pipeline.kafka.security import kafka_python_kwargs


def open_consumer(settings: Settings, topic: str, from_beginning: bool = True) -> KafkaConsumer:
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="churnwatch-reader",
        enable_auto_commit=False,
        group_id=None,
        **kafka_python_kwargs(settings),
    )
    parts = consumer.partitions_for_topic(topic) or set(range(settings.partitions))
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    consumer.assign(tps)
    if from_beginning:
        consumer.seek_to_beginning(*tps)
    else:
        consumer.seek_to_end(*tps)
    return consumer


def follow(settings: Settings, topic: str, stop: threading.Event, from_beginning: bool = True,
           poll_ms: int = 200) -> Iterator[dict[str, Any]]:
    """Yield decoded JSON records from ``topic`` until ``stop`` is set."""
    for _raw, record in follow_raw(settings, topic, stop, from_beginning, poll_ms):
        yield record


def follow_raw(settings: Settings, topic: str, stop: threading.Event, from_beginning: bool = True,
               poll_ms: int = 200) -> Iterator[tuple[bytes, Any]]:
    """Yield ``(message value, decoded JSON)`` from ``topic`` until ``stop`` is set (values that are not
    JSON are skipped): the bytes for a reader that passes records on exactly as they are on the topic."""
    consumer = open_consumer(settings, topic, from_beginning)
    try:
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=poll_ms).values():
                for rec in records:
                    try:
                        yield rec.value, orjson.loads(rec.value)
                    except (orjson.JSONDecodeError, TypeError):
                        continue
    finally:
        consumer.close()


def read_raw(settings: Settings, topic: str, idle_s: float = 1.0) -> list[Any]:
    """Every record currently on ``topic`` as kafka-python ConsumerRecords (with partition and
    offset); stops after ``idle_s`` with no new records."""
    consumer = open_consumer(settings, topic, True)
    out: list[Any] = []
    try:
        while True:
            batch = consumer.poll(timeout_ms=int(idle_s * 1000))
            if not batch:
                return out
            for records in batch.values():
                out.extend(records)
    finally:
        consumer.close()


def read_all(settings: Settings, topic: str, idle_s: float = 1.0) -> list[dict[str, Any]]:
    """Everything currently on ``topic``, decoded from JSON."""
    return [orjson.loads(r.value) for r in read_raw(settings, topic, idle_s)]
