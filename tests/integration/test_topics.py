"""`churnwatch topics create|check` against the embedded broker (Tansu).

Tansu is a single broker: what it can show is exercised here (creation with replication factor 1, the
check's report, a co-partitioning mismatch, a factor above the broker count refused, a worker using
the topics it finds). Several brokers, replicas, under-replication and unreported configs are covered by
the pure planning and report functions in tests/unit/pipeline/kafka/test_topics.py.
"""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from devtools.broker import EmbeddedBroker
from pipeline.kafka.topics import check, plan_topics

try:  # tests/integration may or may not become a package; support both import styles
    from .conftest import churnwatch
except ImportError:
    from conftest import churnwatch

pytestmark = pytest.mark.integration


def names(env: dict[str, str]) -> list[str]:
    prefix, app = env["CHURNWATCH_TOPIC_PREFIX"], env["CHURNWATCH_APP_ID"]
    return ([f"{prefix}{s}" for s in ("customers", "interactions", "tickets", "surveys", "outcomes", "alerts",
                                      "deadletter", "scores")]
            + [f"{app}-customer_state-changelog", f"{app}-__assignor-__leader"])


def rows(out: str, env: dict[str, str]) -> dict[str, list[str]]:
    """``topics check`` table rows by topic name: [partitions, replicas, min.insync.replicas, status…]."""
    mine = set(names(env))
    return {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.split()[:1] and line.split()[0] in mine}


def existing_topics(broker: EmbeddedBroker) -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=broker.address, request_timeout_ms=10_000)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def test_create_then_check_on_the_embedded_broker(cli_env: dict[str, str], broker, capsys):
    env = cli_env
    code, out, err = churnwatch(["topics", "check"], capsys)
    assert code == 1 and err == ""
    assert all(r == ["-", "-", "-", "missing", "(run", "'churnwatch", "topics", "create')"] for r in rows(out, env).values())
    assert set(rows(out, env)) == set(names(env))

    code, out, err = churnwatch(["topics", "create"], capsys)
    assert code == 0 and err == ""
    created = [line for line in out.splitlines() if line.startswith("created ")]
    assert len(created) == 10
    assert f"created {env['CHURNWATCH_TOPIC_PREFIX']}interactions (2 partitions, replication factor 1, " \
           "min.insync.replicas 1)" in created
    assert f"created {env['CHURNWATCH_APP_ID']}-__assignor-__leader (1 partition, replication factor 1, " \
           "min.insync.replicas 1)" in created
    assert set(names(env)) <= existing_topics(broker)

    code, out, err = churnwatch(["topics", "check"], capsys)
    assert code == 0 and err == "", out
    lines = out.splitlines()
    assert lines[0] == "cluster: 1 broker; want replication factor 1, min.insync.replicas 1, 2 partitions"
    table = rows(out, env)
    assert table[f"{env['CHURNWATCH_TOPIC_PREFIX']}tickets"] == ["2", "1", "1", "ok"]
    assert table[f"{env['CHURNWATCH_APP_ID']}-customer_state-changelog"] == ["2", "1", "1", "ok"]
    assert table[f"{env['CHURNWATCH_APP_ID']}-__assignor-__leader"] == ["1", "1", "1", "ok"]
    assert "input topics and changelog co-partitioned: yes (2 partitions each)" in lines
    assert lines[-1] == "all topics ok"

    code, out, _ = churnwatch(["topics", "create"], capsys)
    assert code == 0 and not [line for line in out.splitlines() if line.startswith("created ")]
    assert f"exists  {env['CHURNWATCH_TOPIC_PREFIX']}surveys (2 partitions)" in out.splitlines()


def test_check_reports_topics_that_are_not_co_partitioned(cli_env: dict[str, str], broker, capsys):
    env = cli_env
    surveys = f"{env['CHURNWATCH_TOPIC_PREFIX']}surveys"
    admin = KafkaAdminClient(bootstrap_servers=broker.address, request_timeout_ms=10_000)
    try:
        admin.create_topics([NewTopic(surveys, 3, 1)])  # e.g. created by hand, or auto-created
    finally:
        admin.close()

    code, out, err = churnwatch(["topics", "create"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("churnwatch topics: error: input topics and changelog must have the same partition count: ")
    assert f"{surveys}=3" in err

    code, out, err = churnwatch(["topics", "check"], capsys)
    assert code == 1 and err == ""
    assert rows(out, env)[surveys][:2] == ["3", "1"]
    assert rows(out, env)[surveys][2] == "unknown"  # created without configs: Tansu reports none
    assert f"  {surveys}: 3 partitions, CHURNWATCH_PARTITIONS is 2" in out.splitlines()
    problem = next(line for line in out.splitlines() if "not co-partitioned" in line)
    assert f"{surveys}=3" in problem and f"{env['CHURNWATCH_TOPIC_PREFIX']}customers=2" in problem
    assert any(line.startswith("input topics and changelog co-partitioned: NO (") for line in out.splitlines())


def test_a_replication_factor_above_the_broker_count_is_refused_before_creating_anything(cli_env: dict[str, str],
                                                                                          broker, monkeypatch, capsys):
    env = cli_env
    monkeypatch.setenv("CHURNWATCH_REPLICATION_FACTOR", "3")
    code, out, err = churnwatch(["topics", "create"], capsys)
    assert (code, out) == (2, "")
    assert err == "churnwatch topics: error: CHURNWATCH_REPLICATION_FACTOR is 3 but the cluster has 1 broker\n"
    assert not set(names(env)) & existing_topics(broker)


# ---- a worker ----------------------------------------------------------------------------------------
def test_a_worker_creates_its_topics_for_the_cluster_and_faust_uses_them(settings, start_worker, broker):
    """A worker started on topics that do not exist yet creates them all with the factor resolved from
    the cluster (1 here), Faust's assignor topic included, and runs on them."""
    fresh = settings.with_(topic_prefix=f"w-{settings.topic_prefix}", app_id=f"w-{settings.app_id}")
    assert not set(plan_topics(fresh, 1).names) & existing_topics(broker)
    worker = start_worker(fresh)
    assert worker.metric("churnwatch_worker_ready") == 1
    report = check(fresh)
    assert report.ok, report.problems
    assert {t.observed.replication_factor for t in report.topics} == {1}
    assert report.copartitioned and set(report.copartition.values()) == {fresh.partitions}
