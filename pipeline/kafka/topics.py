"""Creating and checking churnwatch's topics: partitions, replication and co-partitioning.

All input topics and the state changelog must be co-partitioned (same partition count), so one worker
owns every event and the state of a customer. A broker that auto-creates topics on first produce would
pick its own default count and break that, so topics are always created explicitly first.

On a real cluster every topic must also survive a broker: the replication factor and
``min.insync.replicas`` come from ``CHURNWATCH_REPLICATION_FACTOR`` / ``CHURNWATCH_MIN_INSYNC_REPLICAS``,
and when those are unset from the cluster itself (:func:`replication`): min(3, brokers) replicas, and
rf − 1 in-sync replicas (at least 1, at most 2), so rf 3 tolerates one broker down for ``acks=all``
writes. That gives 1/1 on the embedded single broker and 3/2 on a cluster of three or more. The rule
covers every topic churnwatch creates, including the state changelog and Faust's leader-assignor
topic (created here so Faust finds it instead of creating it with its own defaults).

The core is pure: :func:`plan_topics` says what should exist and :func:`check_topics` compares what
the broker describes with it; the functions at the bottom do the Kafka I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from pipeline.config.settings import Settings
from pipeline.kafka.security import kafka_python_kwargs

if TYPE_CHECKING:
    from pipeline.kafka.connection import Cluster

MIN_ISR = "min.insync.replicas"
CLEANUP = "cleanup.policy"


class TopicError(RuntimeError):
    """Topics are missing, not co-partitioned or cannot be created; the message is one line for the user."""


# ---- the plan (pure) -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]
    #: "input", "changelog", "output" or "faust"; input and changelog topics must be co-partitioned
    role: str

    @property
    def copartitioned(self) -> bool:
        return self.role in ("input", "changelog")


@dataclass(frozen=True)
class TopicPlan:
    topics: tuple[TopicSpec, ...]
    replication_factor: int
    min_insync_replicas: int
    brokers: int
    partitions: int

    def __getitem__(self, name: str) -> TopicSpec:
        for spec in self.topics:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.topics]


def replication(settings: Settings, brokers: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) for a cluster of ``brokers`` brokers: the settings when
    given, else min(3, brokers) and max(1, min(2, rf - 1)). A factor above the broker count is refused
    here, whatever the broker would do with it (a single-broker test broker may accept it)."""
    if brokers < 1:
        raise TopicError("the cluster metadata lists no brokers")
    rf = settings.replication_factor or min(3, brokers)
    if rf > brokers:
        raise TopicError(f"CHURNWATCH_REPLICATION_FACTOR is {rf} but the cluster has {brokers} "
                         f"broker{'s' if brokers != 1 else ''}")
    isr = settings.min_insync_replicas or max(1, min(2, rf - 1))
    if isr > rf:
        raise TopicError(f"CHURNWATCH_MIN_INSYNC_REPLICAS is {isr} but the replication factor is {rf} "
                         "(acks=all writes would all fail)")
    return rf, isr


def plan_topics(settings: Settings, brokers: int) -> TopicPlan:
    """Every topic churnwatch uses, with partitions, replication and topic configs."""
    rf, isr = replication(settings, brokers)
    n = settings.partitions
    base = {MIN_ISR: str(isr)}
    specs = [TopicSpec(name, n, rf, dict(base), "input") for name in settings.input_topics.values()]
    specs += [TopicSpec(name, n, rf, dict(base), "output")
              for name in (settings.alerts_topic, settings.deadletter_topic, settings.scores_topic)]
    # the state changelog keeps only each key's newest record (every customer's state, one position
    # record per partition) once compacted: without compaction it would grow forever
    specs.append(TopicSpec(settings.changelog_topic, n, rf, {**base, CLEANUP: "compact"}, "changelog"))
    specs.append(TopicSpec(settings.assignor_topic, 1, rf, dict(base), "faust"))
    return TopicPlan(tuple(specs), rf, isr, brokers, n)


# ---- what the broker describes, and the check (pure) --------------------------------------------------
@dataclass(frozen=True)
class ObservedTopic:
    name: str
    partitions: int
    #: replicas per partition, counting distinct brokers, the smallest over the partitions
    replication_factor: int
    #: partitions whose in-sync replicas are fewer than their replicas
    under_replicated: int = 0
    #: topic configs as described by the broker; None when it reports none (unknown)
    configs: Mapping[str, str] | None = None


@dataclass(frozen=True)
class TopicCheck:
    spec: TopicSpec
    observed: ObservedTopic | None
    problems: tuple[str, ...]

    @property
    def min_isr(self) -> str:
        if self.observed is None:
            return "-"
        configs = self.observed.configs
        return configs.get(MIN_ISR, "unknown") if configs else "unknown"


@dataclass(frozen=True)
class CheckReport:
    plan: TopicPlan
    topics: tuple[TopicCheck, ...]
    #: partition count of each present input topic and the changelog
    copartition: dict[str, int] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def copartitioned(self) -> bool:
        return len(set(self.copartition.values())) <= 1

    @property
    def ok(self) -> bool:
        return not self.problems


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def check_topic(spec: TopicSpec, seen: ObservedTopic | None, plan: TopicPlan) -> tuple[str, ...]:
    """What is wrong with one topic, in words (empty: nothing)."""
    if seen is None:
        return ("missing (run 'churnwatch topics create')",)
    out: list[str] = []
    if spec.copartitioned and seen.partitions != plan.partitions:
        out.append(f"{seen.partitions} partitions, CHURNWATCH_PARTITIONS is {plan.partitions}")
    if seen.replication_factor < spec.replication_factor:
        out.append(f"replication factor {seen.replication_factor}, want {spec.replication_factor}")
    if seen.under_replicated:
        out.append(f"{seen.under_replicated} of {seen.partitions} partitions under-replicated "
                   "(fewer in-sync replicas than replicas)")
    configs = seen.configs or {}
    isr = _int(configs.get(MIN_ISR))
    if isr is not None:
        if isr > seen.replication_factor:
            out.append(f"{MIN_ISR} {isr} > replication factor {seen.replication_factor}: acks=all writes fail")
        elif isr < plan.min_insync_replicas:
            out.append(f"{MIN_ISR} {isr}, want {plan.min_insync_replicas}")
    wanted_cleanup = spec.configs.get(CLEANUP)
    if wanted_cleanup and configs.get(CLEANUP) is not None and wanted_cleanup not in configs[CLEANUP]:
        out.append(f"{CLEANUP} {configs[CLEANUP]}, want {wanted_cleanup}")
    return tuple(out)


def check_topics(plan: TopicPlan, observed: Mapping[str, ObservedTopic]) -> CheckReport:
    """Compare what the broker describes with the plan; every problem is one line naming its topic."""
    checks = tuple(TopicCheck(spec, observed.get(spec.name), check_topic(spec, observed.get(spec.name), plan))
                   for spec in plan.topics)
    problems = [f"{c.spec.name}: {p}" for c in checks for p in c.problems]
    copart = {c.spec.name: c.observed.partitions for c in checks if c.spec.copartitioned and c.observed is not None}
    if len(set(copart.values())) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in copart.items())
        problems.append(f"input topics and the changelog are not co-partitioned: {detail}")
    return CheckReport(plan, checks, copart, tuple(problems))


def format_report(report: CheckReport) -> list[str]:
    """The lines ``churnwatch topics check`` prints."""
    plan = report.plan
    width = max(len(t.spec.name) for t in report.topics)
    lines = [f"cluster: {plan.brokers} broker{'s' if plan.brokers != 1 else ''}; want replication factor "
             f"{plan.replication_factor}, {MIN_ISR} {plan.min_insync_replicas}, {plan.partitions} partitions",
             f"{'topic':{width}}  {'partitions':>10}  {'replicas':>8}  {MIN_ISR:>19}  status"]
    for t in report.topics:
        seen = t.observed
        parts = str(seen.partitions) if seen else "-"
        rf = str(seen.replication_factor) if seen else "-"
        status = "ok" if not t.problems else "; ".join(t.problems)
        lines.append(f"{t.spec.name:{width}}  {parts:>10}  {rf:>8}  {t.min_isr:>19}  {status}")
    if report.copartition:
        counts = sorted(set(report.copartition.values()))
        lines.append("input topics and changelog co-partitioned: "
                     + (f"yes ({counts[0]} partitions each)" if len(counts) == 1 else
                        "NO (" + ", ".join(f"{k}={v}" for k, v in report.copartition.items()) + ")"))
    if report.problems:
        lines.append(f"{len(report.problems)} problem{'s' if len(report.problems) != 1 else ''}:")
        lines += [f"  {p}" for p in report.problems]
    else:
        lines.append("all topics ok")
    return lines


def observed_from_description(desc: Mapping[str, Any], configs: Mapping[str, Any] | None) -> ObservedTopic | None:
    """An :class:`ObservedTopic` from kafka-python's describe_topics entry and describe_configs values."""
    if desc.get("error_code") or not desc.get("partitions"):
        return None
    partitions = desc["partitions"]
    rf = min(len(set(p.get("replica_nodes") or p.get("replicas") or ())) for p in partitions)
    under = sum(1 for p in partitions
                if len(set(p.get("isr_nodes") or p.get("isr") or ())) < len(set(p.get("replica_nodes") or p.get("replicas") or ())))
    values = None
    if configs:
        values = {k: (v.get("value") if isinstance(v, Mapping) else v) for k, v in configs.items()}
        values = {k: str(v) for k, v in values.items() if v is not None} or None
    return ObservedTopic(desc.get("name") or desc.get("topic"), len(partitions), rf, under, values)


# ---- Kafka I/O --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TopicReport:
    created: list[str]
    existing: dict[str, int]  # name -> partitions of topics that were already there
    plan: TopicPlan | None = None


def _admin(settings: Settings) -> Any:
    from kafka import KafkaAdminClient

    ms = int(max(10.0, settings.connect_timeout_s) * 1000)
    return KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id="churnwatch-admin",
                            request_timeout_ms=ms, **kafka_python_kwargs(settings))


def _cluster(settings: Settings, cluster: "Cluster | None") -> "Cluster":
    if cluster is not None:
        return cluster
    from pipeline.kafka.connection import check_connection

    return check_connection(settings)


def describe(settings: Settings, names: list[str]) -> dict[str, ObservedTopic]:
    """What the broker says about ``names`` (absent topics are left out). Topic configs the broker does
    not describe (an error, an empty answer) stay unknown rather than failing the check."""
    from kafka.errors import KafkaError

    if not names:
        return {}  # describe_topics([]) would describe every topic
    admin = _admin(settings)
    try:
        try:
            described = list(admin.describe_topics(names))
        except KafkaError:  # a client that raises for an absent topic: one at a time, skipping those
            described = []
            for name in names:
                try:
                    described += list(admin.describe_topics([name]))
                except KafkaError:
                    continue
        found = [d for d in described if not d.get("error_code") and d.get("partitions")]
        configs: dict[str, Any] = {}
        if found:
            try:
                from kafka.admin import ConfigResource, ConfigResourceType

                resources = [ConfigResource(ConfigResourceType.TOPIC, d.get("name") or d.get("topic")) for d in found]
                answer = admin.describe_configs(resources, config_filter="all")
                configs = answer.get("topic", {}) if isinstance(answer, Mapping) else {}
            except (KafkaError, TypeError, ValueError, AttributeError):
                configs = {}
    finally:
        admin.close()
    out = {}
    for desc in found:
        seen = observed_from_description(desc, configs.get(desc.get("name") or desc.get("topic")))
        if seen is not None:
            out[seen.name] = seen
    return out


def partition_counts(settings: Settings, names: list[str]) -> dict[str, int]:
    return {name: seen.partitions for name, seen in describe(settings, names).items()}


def check(settings: Settings, cluster: "Cluster | None" = None) -> CheckReport:
    """``churnwatch topics check``: the plan for this cluster against what the broker describes."""
    plan = plan_topics(settings, _cluster(settings, cluster).brokers)
    return check_topics(plan, describe(settings, plan.names))


def ensure_topics(settings: Settings, cluster: "Cluster | None" = None) -> TopicReport:
    """Create missing topics; refuse (TopicError) when existing input topics are not co-partitioned.

    ``cluster`` is the result of :func:`pipeline.kafka.connection.check_connection`; without it the
    connection is checked here first (so a wrong address or protocol fails fast and in one line)."""
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    plan = plan_topics(settings, _cluster(settings, cluster).brokers)
    try:
        admin = _admin(settings)
    except KafkaError as exc:
        raise TopicError(f"cannot reach broker {settings.broker}: {exc}") from None
    try:
        present = set(admin.list_topics())
        missing = [NewTopic(t.name, t.partitions, t.replication_factor, topic_configs=t.configs)
                   for t in plan.topics if t.name not in present]
        created: list[str] = []
        if missing:
            try:
                result = admin.create_topics(missing, raise_errors=False)
            except TypeError:  # a kafka-python without raise_errors
                try:
                    admin.create_topics(missing)
                    result = None
                except TopicAlreadyExistsError:
                    result = {"topics": []}
            except KafkaError as exc:
                raise TopicError(f"cannot create topics on {settings.broker}: {exc}") from None
            created = _created(missing, result)
    finally:
        admin.close()
    existing = partition_counts(settings, [n for n in plan.names if n not in created])
    copart = [t.name for t in plan.topics if t.copartitioned]
    counts = {name: existing.get(name, settings.partitions) for name in copart}
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in counts.items())
        raise TopicError(f"input topics and changelog must have the same partition count: {detail}")
    return TopicReport(created, existing, plan)


def _created(missing: list[Any], result: Any) -> list[str]:
    """Names created by a create_topics call; an error other than "already exists" is a TopicError."""
    if result is None:
        return [t.name for t in missing]
    rows = result.get("topics", []) if isinstance(result, Mapping) else getattr(result, "topic_errors", [])
    created = {t.name for t in missing}
    for row in rows:
        if isinstance(row, Mapping):
            name, code, message = row.get("name"), row.get("error_code", 0), row.get("error_message")
        else:
            name, code, message = row[0], row[1], row[2] if len(row) > 2 else None
        if code:
            created.discard(name)
            if code != 36:  # TOPIC_ALREADY_EXISTS: created meanwhile by another worker
                raise TopicError(f"cannot create topic {name}: {message or f'error code {code}'}")
    return [t.name for t in missing if t.name in created]
