"""Creating churnwatch's topics with the right partition counts before anything produces to them.

All input topics and the state changelog must be co-partitioned (same partition count), so one worker
owns every event and the state of a customer. A broker that auto-creates topics on first produce would
pick its own default count and break that, so topics are always created explicitly first.
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from pipeline.settings import Settings


@dataclass(frozen=True)
class TopicReport:
    created: list[str]
    existing: dict[str, int]  # name -> partitions of topics that were already there


class TopicError(RuntimeError):
    """Topics are missing or not co-partitioned; the message is one line for the user."""


def required_topics(settings: Settings) -> dict[str, int]:
    """Every topic churnwatch uses, with its partition count."""
    n = settings.partitions
    names = list(settings.input_topics.values()) + [
        settings.alerts_topic,
        settings.deadletter_topic,
        settings.scores_topic,
        settings.changelog_topic,
    ]
    return {name: n for name in names}


def _admin(settings: Settings) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="churnwatch-admin",
        request_timeout_ms=10_000,
        **settings.kafka_client_kwargs(),
    )


def partition_counts(settings: Settings, names: list[str]) -> dict[str, int]:
    if not names:
        return {}  # describe_topics([]) would describe every topic
    admin = _admin(settings)
    try:
        out: dict[str, int] = {}
        for desc in admin.describe_topics(names):
            if not desc.get("error_code") and desc.get("partitions"):
                out[desc.get("name") or desc.get("topic")] = len(desc["partitions"])
        return out
    finally:
        admin.close()


def ensure_topics(settings: Settings) -> TopicReport:
    """Create missing topics; refuse (TopicError) when existing input topics are not co-partitioned."""
    wanted = required_topics(settings)
    try:
        admin = _admin(settings)
    except KafkaError as exc:
        raise TopicError(f"cannot reach broker {settings.broker}: {exc}") from None
    try:
        present = set(admin.list_topics())
        # the state changelog keeps only each key's newest record (every customer's state, one
        # position record per partition) once compacted: without compaction it would grow forever
        compact = {settings.changelog_topic: {"cleanup.policy": "compact"}}
        missing = [NewTopic(name, parts, 1, topic_configs=compact.get(name, {}))
                   for name, parts in wanted.items() if name not in present]
        created: list[str] = []
        if missing:
            try:
                admin.create_topics(missing)
                created = [t.name for t in missing]
            except TopicAlreadyExistsError:
                created = []
    finally:
        admin.close()
    existing = {k: v for k, v in partition_counts(settings, [n for n in wanted if n not in created]).items()}
    inputs = list(settings.input_topics.values()) + [settings.changelog_topic]
    counts = {name: existing.get(name, settings.partitions) for name in inputs}
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in counts.items())
        raise TopicError(f"input topics and changelog must have the same partition count: {detail}")
    return TopicReport(created, existing)
