"""Unit tests for apps.cli.topics (``churnwatch topics check``)."""

from __future__ import annotations

from tests.unit.apps.cli.harness import run, stub_broker


def test_topics_check_exits_1_and_says_what_is_wrong(monkeypatch, capsys):
    stub_broker(monkeypatch)
    code, out, err = run(["topics", "check"], capsys)
    assert code == 1 and err == ""
    assert "churn.interactions: missing (run 'churnwatch topics create')" in out
    assert out.splitlines()[0] == "cluster: 1 broker; want replication factor 1, min.insync.replicas 1, 4 partitions"


def test_topics_check_exits_0_when_all_is_well(monkeypatch, capsys):
    from pipeline.kafka.topics import ObservedTopic, plan_topics

    def healthy(settings):
        return {t.name: ObservedTopic(t.name, t.partitions, 1, 0, dict(t.configs)) for t in plan_topics(settings, 1).topics}

    stub_broker(monkeypatch, observed=healthy)
    code, out, err = run(["topics", "check"], capsys)
    assert code == 0 and err == "" and out.splitlines()[-1] == "all topics ok"
