"""Unit tests for apps.cli.worker (``churnwatch worker``): its ports and web guard are checked before the
broker, the replication comes from the cluster, its addresses are announced (as JSON with JSON logs)."""

from __future__ import annotations

import pytest

from tests.unit.apps.cli.harness import assert_one_line_error, free_ports, run, stub_broker
from tests.unit.pipeline.config.test_logs import restore_logging  # noqa: F401 (a fixture: json logs change hooks)


def test_bad_metrics_port_stops_the_worker_before_it_starts(monkeypatch, no_network, capsys):
    import pipeline.worker.run

    monkeypatch.setattr(pipeline.worker.run, "run_worker", lambda s: pytest.fail("worker started"))
    code, out, err = run(["worker", "--metrics-port", "70000"], capsys)
    assert_one_line_error(code, out, err)
    assert "CHURNWATCH_METRICS_PORT (--metrics-port): must be 0..65535" in err and "got 70000" in err


def test_worker_web_on_a_public_address_needs_a_guard(monkeypatch, no_network, capsys):
    import pipeline.worker.run

    monkeypatch.setattr(pipeline.worker.run, "run_worker", lambda s: pytest.fail("worker started"))
    monkeypatch.setenv("CHURNWATCH_WEB_HOST", "0.0.0.0")  # no_network: refused before the connection check
    code, out, err = run(["worker"], capsys)
    assert_one_line_error(code, out, err)
    assert "refusing to serve the worker web server on '0.0.0.0'" in err


def test_worker_runs_with_the_replication_resolved_from_the_cluster(monkeypatch, capsys):
    import pipeline.worker.run
    import pipeline.kafka.topics
    from pipeline.kafka.topics import TopicReport, plan_topics

    stub_broker(monkeypatch)
    free_ports(monkeypatch)
    started = []
    monkeypatch.setattr(pipeline.kafka.topics, "ensure_topics",
                        lambda settings, cluster=None: TopicReport([], {}, plan_topics(settings, 5)))
    monkeypatch.setattr(pipeline.worker.run, "run_worker", lambda settings, announce=None: started.append(settings))
    assert run(["worker"], capsys)[0] == 0
    assert (started[0].replication_factor, started[0].min_insync_replicas) == (3, 2)


@pytest.mark.parametrize(("flag", "names"), [
    ("--web-port", "--web-port or CHURNWATCH_WEB_PORT"),
    ("--metrics-port", "--metrics-port or CHURNWATCH_METRICS_PORT (0: any free port)"),
])


def test_a_busy_worker_port_is_one_line_before_the_broker_is_reached(flag, names, listening, monkeypatch,
                                                                      no_network, capsys):
    import pipeline.worker.run

    free_ports(monkeypatch)
    monkeypatch.setattr(pipeline.worker.run, "run_worker", lambda *a, **k: pytest.fail("worker started"))
    code, out, err = run(["worker", flag, str(listening)], capsys)
    assert_one_line_error(code, out, err)
    assert err == (f"churnwatch worker: error: cannot listen on 127.0.0.1:{listening}: address already in use; "
                   f"choose another port with {names}\n")


def test_web_port_flag_and_metrics_port_0_reach_the_worker(monkeypatch, capsys):
    import pipeline.worker.run
    import pipeline.kafka.topics
    from devtools.broker import free_port
    from pipeline.kafka.topics import TopicReport, plan_topics

    stub_broker(monkeypatch)
    monkeypatch.setattr(pipeline.kafka.topics, "ensure_topics",
                        lambda settings, cluster=None: TopicReport([], {}, plan_topics(settings, 1)))
    started = []
    monkeypatch.setattr(pipeline.worker.run, "run_worker", lambda settings, announce=None: started.append((settings, announce)))
    port = free_port()
    assert run(["worker", "--web-port", str(port), "--metrics-port", "0"], capsys)[0] == 0
    settings, announce = started[0]
    assert (settings.web_port, settings.metrics_port) == (port, 0)
    announce("churnwatch worker: metrics on http://127.0.0.1:40001/metrics")
    assert capsys.readouterr().out == "churnwatch worker: metrics on http://127.0.0.1:40001/metrics\n"


def test_an_out_of_range_web_port_names_flag_and_variable(no_network, capsys):
    code, out, err = run(["worker", "--web-port", "70000"], capsys)
    assert_one_line_error(code, out, err)
    assert "CHURNWATCH_WEB_PORT (--web-port): must be 1..65535" in err


def test_the_worker_announces_its_addresses_as_a_json_line_with_json_logs(monkeypatch, capsys, restore_logging):
    import json

    import pipeline.worker.run
    import pipeline.kafka.topics
    from pipeline.kafka.topics import TopicReport, plan_topics

    stub_broker(monkeypatch)
    free_ports(monkeypatch)
    monkeypatch.setattr(pipeline.kafka.topics, "ensure_topics",
                        lambda settings, cluster=None: TopicReport([], {}, plan_topics(settings, 1)))
    monkeypatch.setattr(pipeline.worker.run, "run_worker",
                        lambda settings, announce=None: announce("churnwatch worker: metrics on http://h:1/metrics"))
    code, out, _ = run(["worker", "--log-format", "json"], capsys)
    assert code == 0
    record = json.loads(out)
    assert (record["level"], record["logger"], record["message"]) == (
        "INFO", "churnwatch.worker", "churnwatch worker: metrics on http://h:1/metrics")


def test_a_busy_worker_port_with_json_logs_is_one_json_line(listening, monkeypatch, no_network, capfd,
                                                           restore_logging):
    import json

    free_ports(monkeypatch)
    # the log handler writes to the process's stderr: captured at the file descriptor
    code, out, err = run(["worker", "--log-format", "json", "--web-port", str(listening)], capfd)
    assert code == 2 and out == ""
    record = json.loads(err.strip().splitlines()[-1])
    assert record["message"] == (f"churnwatch worker: error: cannot listen on 127.0.0.1:{listening}: address "
                                 f"already in use; choose another port with --web-port or CHURNWATCH_WEB_PORT")
