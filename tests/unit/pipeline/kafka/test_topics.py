"""Unit tests for pipeline.kafka.topics' pure core: the replication rule, the topic plan, the check of what a
broker describes against it, and its report. Kafka I/O is covered against the embedded broker in
tests/integration/test_topics.py; what a single-broker test broker cannot show (several brokers,
replicas, under-replication, unreported configs) is covered here."""

from __future__ import annotations

import pytest

from pipeline.config.settings import Settings
from pipeline.kafka.topics import (
    CLEANUP,
    MIN_ISR,
    ObservedTopic,
    TopicError,
    _created,
    check_topics,
    format_report,
    observed_from_description,
    plan_topics,
    replication,
)

S = Settings(topic_prefix="t.", app_id="cw", partitions=4)


# ---- the replication rule ---------------------------------------------------------------------------
@pytest.mark.parametrize(("brokers", "expected"), [(1, (1, 1)), (2, (2, 1)), (3, (3, 2)), (5, (3, 2)), (12, (3, 2))])
def test_default_replication_follows_the_cluster(brokers, expected):
    assert replication(S, brokers) == expected


@pytest.mark.parametrize(("given", "brokers", "expected"), [
    ({"replication_factor": 2}, 5, (2, 1)),
    ({"replication_factor": 5}, 5, (5, 2)),
    ({"min_insync_replicas": 3}, 5, (3, 3)),
    ({"replication_factor": 1, "min_insync_replicas": 1}, 3, (1, 1)),
    ({"replication_factor": 4, "min_insync_replicas": 3}, 4, (4, 3)),
])
def test_configured_replication_wins(given, brokers, expected):
    assert replication(S.with_(**given), brokers) == expected


def test_more_replicas_than_brokers_is_refused_whatever_the_broker_would_accept():
    with pytest.raises(TopicError, match="^CHURNWATCH_REPLICATION_FACTOR is 3 but the cluster has 1 broker$"):
        replication(S.with_(replication_factor=3), 1)


def test_min_isr_above_the_resolved_factor_is_refused():
    # each is valid alone: the factor is resolved from the cluster (1 broker -> 1)
    with pytest.raises(TopicError, match="CHURNWATCH_MIN_INSYNC_REPLICAS is 2 but the replication factor is 1"):
        replication(S.with_(min_insync_replicas=2), 1)


# ---- the plan --------------------------------------------------------------------------------------
def test_plan_covers_every_topic_with_its_role_and_configs():
    plan = plan_topics(S, brokers=3)
    assert (plan.replication_factor, plan.min_insync_replicas, plan.brokers, plan.partitions) == (3, 2, 3, 4)
    roles = {t.name: t.role for t in plan.topics}
    assert roles == {
        **{f"t.{src}": "input" for src in ("customers", "interactions", "tickets", "surveys", "outcomes")},
        "t.alerts": "output", "t.deadletter": "output", "t.scores": "output",
        "cw-customer_state-changelog": "changelog", "cw-__assignor-__leader": "faust",
    }
    for t in plan.topics:
        assert t.replication_factor == 3 and t.configs[MIN_ISR] == "2"
        assert t.partitions == (1 if t.role == "faust" else 4)
    assert plan["cw-customer_state-changelog"].configs[CLEANUP] == "compact"
    assert CLEANUP not in plan["t.interactions"].configs
    assert [t.name for t in plan.topics if t.copartitioned] == [*S.input_topics.values(), S.changelog_topic]


def test_plan_on_a_single_broker():
    plan = plan_topics(S, brokers=1)
    assert {(t.replication_factor, t.configs[MIN_ISR]) for t in plan.topics} == {(1, "1")}


# ---- the check -------------------------------------------------------------------------------------
def healthy(plan, **changes) -> dict[str, ObservedTopic]:
    """What a broker would describe right after ``topics create`` (then ``changes`` per topic name)."""
    out = {t.name: ObservedTopic(t.name, t.partitions, t.replication_factor, 0, dict(t.configs)) for t in plan.topics}
    for name, seen in changes.items():
        if seen is None:
            out.pop(name)
        else:
            out[name] = seen
    return out


def test_a_freshly_created_cluster_is_ok():
    plan = plan_topics(S, brokers=3)
    report = check_topics(plan, healthy(plan))
    assert report.ok and report.copartitioned and report.problems == ()
    assert set(report.copartition.values()) == {4}
    lines = format_report(report)
    assert lines[0] == "cluster: 3 brokers; want replication factor 3, min.insync.replicas 2, 4 partitions"
    assert lines[-1] == "all topics ok"
    assert "input topics and changelog co-partitioned: yes (4 partitions each)" in lines
    row = next(line for line in lines if line.startswith("t.interactions "))
    assert row.split() == ["t.interactions", "4", "3", "2", "ok"]


def test_missing_topics_are_problems():
    plan = plan_topics(S, brokers=1)
    report = check_topics(plan, healthy(plan, **{"t.tickets": None, "t.scores": None}))
    assert report.problems == ("t.tickets: missing (run 'churnwatch topics create')",
                               "t.scores: missing (run 'churnwatch topics create')")
    row = next(line for line in format_report(report) if line.startswith("t.tickets "))
    assert row.split()[:4] == ["t.tickets", "-", "-", "-"]


def test_copartitioning_mismatch_is_detected():
    plan = plan_topics(S, brokers=1)
    seen = ObservedTopic("t.surveys", 2, 1, 0, {MIN_ISR: "1"})
    report = check_topics(plan, healthy(plan, **{"t.surveys": seen}))
    assert not report.copartitioned and not report.ok
    assert "t.surveys: 2 partitions, CHURNWATCH_PARTITIONS is 4" in report.problems
    assert report.problems[-1].startswith("input topics and the changelog are not co-partitioned: ")
    assert "t.surveys=2" in report.problems[-1] and "t.customers=4" in report.problems[-1]
    assert any(line.startswith("input topics and changelog co-partitioned: NO (") for line in format_report(report))


def test_all_inputs_agreeing_on_another_count_are_co_partitioned_but_not_what_is_configured():
    plan = plan_topics(S, brokers=1)
    changes = {t.name: ObservedTopic(t.name, 8, 1, 0, {MIN_ISR: "1"}) for t in plan.topics if t.copartitioned}
    report = check_topics(plan, healthy(plan, **changes))
    assert report.copartitioned and not report.ok
    assert report.problems[0] == "t.customers: 8 partitions, CHURNWATCH_PARTITIONS is 4"


def test_output_topics_may_have_other_partition_counts():
    plan = plan_topics(S, brokers=1)
    report = check_topics(plan, healthy(plan, **{"t.alerts": ObservedTopic("t.alerts", 12, 1, 0, {MIN_ISR: "1"})}))
    assert report.ok


@pytest.mark.parametrize(("seen", "problem"), [
    (ObservedTopic("t.alerts", 4, 1, 0, None), "t.alerts: replication factor 1, want 3"),
    (ObservedTopic("t.alerts", 4, 3, 0, {MIN_ISR: "1"}), "t.alerts: min.insync.replicas 1, want 2"),
    (ObservedTopic("t.alerts", 4, 3, 2, {MIN_ISR: "2"}),
     "t.alerts: 2 of 4 partitions under-replicated (fewer in-sync replicas than replicas)"),
    (ObservedTopic("t.alerts", 4, 3, 0, {MIN_ISR: "4"}),
     "t.alerts: min.insync.replicas 4 > replication factor 3: acks=all writes fail"),
])
def test_replication_problems(seen, problem):
    plan = plan_topics(S, brokers=3)
    assert check_topics(plan, healthy(plan, **{"t.alerts": seen})).problems == (problem,)


def test_an_unreplicated_changelog_on_a_cluster_is_a_problem():
    """The defect: the Faust state changelog was created with replication factor 1 on any cluster."""
    plan = plan_topics(S, brokers=3)
    name = S.changelog_topic
    seen = ObservedTopic(name, 4, 1, 0, {MIN_ISR: "1", CLEANUP: "compact"})
    assert check_topics(plan, healthy(plan, **{name: seen})).problems == (
        f"{name}: replication factor 1, want 3", f"{name}: min.insync.replicas 1, want 2")


def test_a_changelog_that_is_not_compacted_is_a_problem():
    plan = plan_topics(S, brokers=1)
    name = S.changelog_topic
    seen = ObservedTopic(name, 4, 1, 0, {MIN_ISR: "1", CLEANUP: "delete"})
    assert check_topics(plan, healthy(plan, **{name: seen})).problems == (f"{name}: cleanup.policy delete, want compact",)
    both = ObservedTopic(name, 4, 1, 0, {MIN_ISR: "1", CLEANUP: "compact,delete"})
    assert check_topics(plan, healthy(plan, **{name: both})).ok


def test_configs_the_broker_does_not_report_are_unknown_not_wrong():
    plan = plan_topics(S, brokers=3)
    changes = {t.name: ObservedTopic(t.name, t.partitions, 3, 0, None) for t in plan.topics}
    report = check_topics(plan, healthy(plan, **changes))
    assert report.ok
    row = next(line for line in format_report(report) if line.startswith("t.interactions "))
    assert row.split() == ["t.interactions", "4", "3", "unknown", "ok"]


def test_problem_summary_counts_them():
    plan = plan_topics(S, brokers=1)
    lines = format_report(check_topics(plan, healthy(plan, **{"t.tickets": None})))
    assert lines[-2:] == ["1 problem:", "  t.tickets: missing (run 'churnwatch topics create')"]


# ---- what kafka-python describes -----------------------------------------------------------------
def _partition(i: int, replicas: list[int], isr: list[int]) -> dict:
    return {"error_code": 0, "partition_index": i, "leader_id": replicas[0], "replica_nodes": replicas, "isr_nodes": isr}


def test_observed_from_description_counts_distinct_replicas_and_under_replication():
    desc = {"error_code": 0, "name": "t.x", "partitions": [_partition(0, [1, 2, 3], [1, 2, 3]),
                                                            _partition(1, [2, 3, 1], [2]), _partition(2, [3, 1], [3, 1])]}
    configs = {MIN_ISR: {"value": "2", "config_source": "DYNAMIC_TOPIC_CONFIG"}, "retention.ms": {"value": None}}
    seen = observed_from_description(desc, configs)
    assert seen == ObservedTopic("t.x", 3, 2, 1, {MIN_ISR: "2"})


def test_a_broker_listing_one_broker_several_times_has_one_replica():
    """A single broker that accepts replication factor 3 lists itself three times: that is one copy."""
    desc = {"error_code": 0, "name": "t.x", "partitions": [_partition(0, [111, 111, 111], [111, 111, 111])]}
    assert observed_from_description(desc, {}).replication_factor == 1


def test_absent_topics_and_empty_configs():
    assert observed_from_description({"error_code": 3, "name": "t.x", "partitions": []}, None) is None
    desc = {"error_code": 0, "name": "t.x", "partitions": [_partition(0, [1], [1])]}
    assert observed_from_description(desc, {}).configs is None
    assert observed_from_description(desc, None).configs is None


def test_created_keeps_what_was_created_and_tolerates_a_concurrent_creator():
    class T:
        def __init__(self, name):
            self.name = name

    missing = [T("a"), T("b")]
    result = {"topics": [{"name": "a", "error_code": 0}, {"name": "b", "error_code": 36, "error_message": "exists"}]}
    assert _created(missing, result) == ["a"]
    assert _created(missing, None) == ["a", "b"]
    with pytest.raises(TopicError, match="^cannot create topic b: Replication factor: 3 larger than available brokers: 1.$"):
        _created(missing, {"topics": [{"name": "b", "error_code": 38,
                                       "error_message": "Replication factor: 3 larger than available brokers: 1."}]})
