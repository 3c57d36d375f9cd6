"""The inbox's two ends on Kafka: following the alert and outcome topics into the open-alert view
(:class:`TopicFollower`), and writing acknowledgements to the outcome topic (:class:`KafkaAckSink`).

The inbox reads the **alert topic**, not a worker, so it shows the alerts of every worker however many
run, and it needs no state of its own: on start it replays ``churn.alerts`` and ``churn.outcomes`` from
the beginning into an :class:`~apps.inbox.view.InboxState` and then follows both topics.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol, Sequence

import orjson

from apps.inbox.view import InboxState
from pipeline.config.settings import Settings
from pipeline.kafka.security import kafka_python_kwargs

log = logging.getLogger("churnwatch.inbox")


class AckSink(Protocol):
    """Where acknowledgement events go (the outcomes topic; a list in unit tests)."""

    def send(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None: ...

    def close(self) -> None: ...


class KafkaAckSink:
    """Produces acknowledgement events with kafka-python and waits until the broker has them, so the
    page only removes a row whose acknowledgement is really on the topic."""

    def __init__(self, settings: Settings, timeout_s: float = 10.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._producer: Any = None
        self._lock = threading.Lock()

    def send(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        from kafka import KafkaProducer

        with self._lock:  # created on first use: the page works (read-only) while the broker is away
            if self._producer is None:
                self._producer = KafkaProducer(bootstrap_servers=self.settings.bootstrap_servers,
                                               client_id="churnwatch-inbox", acks="all",
                                               **kafka_python_kwargs(self.settings))
        futures = [self._producer.send(topic, key=k, value=v) for k, v in records]
        self._producer.flush(timeout=self.timeout_s)
        for f in futures:
            f.get(timeout=self.timeout_s)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)


class TopicFollower(threading.Thread):
    """Replays the alert and outcome topics into an :class:`InboxState`, then follows them.

    Manual partition assignment (kafka-python group consumers get no assignment on the embedded broker,
    and the inbox is an observer, not a member of the workers' group). The alert topic is read to the
    end offsets seen at start before the outcome topic resumes, so at start no acknowledgement is
    applied before the alert it names. On an error the consumer is rebuilt and the topics replayed into
    the same state, which ignores records it has already seen.
    """

    def __init__(self, settings: Settings, state: InboxState, poll_ms: int = 200) -> None:
        super().__init__(name="churnwatch-inbox-follower", daemon=True)
        self.settings, self.state, self.poll_ms = settings, state, poll_ms
        self.stop_event = threading.Event()
        self.caught_up = threading.Event()
        self.error: str | None = None

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self._follow()
            except Exception as exc:  # broker away, topic deleted...: report, wait, start over
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("inbox: reading the topics failed (%s); retrying", self.error)
                self.stop_event.wait(2.0)

    def _partitions(self, consumer: Any, topic: str) -> list[Any]:
        from kafka import TopicPartition

        parts = consumer.partitions_for_topic(topic) or set(range(self.settings.partitions))
        return [TopicPartition(topic, p) for p in sorted(parts)]

    def _follow(self) -> None:
        from kafka import KafkaConsumer

        s = self.settings
        consumer = KafkaConsumer(bootstrap_servers=s.bootstrap_servers, client_id="churnwatch-inbox", group_id=None,
                                 enable_auto_commit=False, **kafka_python_kwargs(s))
        try:
            alerts, outcomes = self._partitions(consumer, s.alerts_topic), self._partitions(consumer, s.topic("outcomes"))
            consumer.assign(alerts + outcomes)
            consumer.seek_to_beginning(*alerts, *outcomes)
            outcomes_end = consumer.end_offsets(outcomes)  # outcomes first: their alerts are then all in alerts_end
            alerts_end = consumer.end_offsets(alerts)
            consumer.pause(*outcomes)
            replaying_alerts = True
            self.error = None
            while not self.stop_event.is_set():
                batch = consumer.poll(timeout_ms=self.poll_ms)
                self.error = None
                for tp, records in batch.items():
                    add = self.state.add_alert if tp.topic == s.alerts_topic else self.state.add_outcome
                    for rec in records:
                        try:
                            add(orjson.loads(rec.value))
                        except orjson.JSONDecodeError:
                            add(None)  # counted as skipped
                if replaying_alerts and all(consumer.position(tp) >= alerts_end[tp] for tp in alerts):
                    consumer.resume(*outcomes)
                    replaying_alerts = False
                if not replaying_alerts and not self.caught_up.is_set() and \
                        all(consumer.position(tp) >= outcomes_end[tp] for tp in outcomes):
                    self.caught_up.set()
        finally:
            consumer.close()


__all__ = ["AckSink", "KafkaAckSink", "TopicFollower"]
