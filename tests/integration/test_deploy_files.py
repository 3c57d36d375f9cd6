"""Checks of the operator-facing deployment files: Prometheus config, alert rules and their promtool
unit tests, the Alertmanager config, the Grafana dashboard and provisioning, docker-compose.yml and
the Dockerfile.

Why these tests exist: those files are only exercised for real by `docker compose up`, which CI
cannot run (no Docker engine). A typo in a metric name, a PromQL syntax error, a rule that never
fires or a route to nobody would otherwise only show up as an empty panel or a silent pager in
production. So:

* ``promtool`` (Debian package ``prometheus``) validates the config and the rules, and runs the
  committed unit tests (deploy/prometheus/tests.yml): each alert fires in its scenario and stays quiet
  when it should; every rule must have both kinds of case;
* ``amtool`` (Debian package ``prometheus-alertmanager``) validates the Alertmanager config and tells
  which receiver each severity is routed to;
* every PromQL expression in the dashboard and the rules may name only metrics the worker exports
  (read from ``pipeline.worker.metrics``, see deployfiles.py), and the dashboard must show every one of them.

A real Prometheus scraping a real worker runs every dashboard query in test_metrics.py; a real
Alertmanager delivering to a webhook is in test_alertmanager.py.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.deployfiles import (
    ALERTMANAGER_CONFIG,
    ALERTS,
    COMPOSE,
    DASHBOARD,
    INSTALL_HINT,
    OPERATIONS_DOC,
    PROM_CONFIG,
    PROM_DIR,
    PROMETHEUS_SERIES,
    REPO,
    RULE_TESTS,
    alert_rules,
    dashboard_exprs,
    exported_metrics,
    find_binary,
    load_yaml,
    panels,
    promql_metric_names,
    series_names,
)
from tests.integration.promserver import PROMETHEUS_BIN, run_prometheus

GRAFANA_DATASOURCE = REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_PROVIDER = REPO / "deploy" / "grafana" / "provisioning" / "dashboards" / "churnwatch.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"

REQUIRED_ALERTS = {
    "ChurnwatchWorkerDown",
    "ChurnwatchNoEventsConsumed",
    "ChurnwatchDeadLetterRateHigh",
    "ChurnwatchScoringLatencyHigh",
    "ChurnwatchNoModelLoaded",
    "ChurnwatchModelReloadFailing",
    "ChurnwatchAlertVolumeSpike",
    "ChurnwatchWebhookDeliveriesFailing",
    "ChurnwatchAlertDecisionsHeld",
    "ChurnwatchNoOutcomes",
    "ChurnwatchSaveRateLow",
}

#: What each severity means for routing (deploy/alertmanager/alertmanager.yml).
SEVERITY_RECEIVERS = {"critical": "oncall", "warning": "team"}

SERIES = series_names(exported_metrics())


def _tool(name: str) -> str:
    path = find_binary(name)
    if path is None:
        pytest.skip(f"{name} not installed ({INSTALL_HINT})")
    return path


@pytest.fixture(scope="module")
def promtool() -> str:
    return _tool("promtool")


@pytest.fixture(scope="module")
def amtool() -> str:
    return _tool("amtool")


@pytest.fixture(scope="module")
def board() -> dict[str, Any]:
    import json

    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _run(cmd: list[str], cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)


# ---- the checker itself ---------------------------------------------------------------------------


def test_metric_name_extraction() -> None:
    """The name extraction the coverage tests rely on finds selectors, and only selectors."""
    expr = ('sum by (le) (rate(churnwatch_a_bucket{instance=~"$instance", le!="x"}[$__rate_interval])) '
            '/ on (instance) churnwatch_b offset 1h and histogram_quantile(0.9, up) > 0.5')
    assert promql_metric_names(expr) == {"churnwatch_a_bucket", "churnwatch_b", "up"}


def test_the_metric_contract_is_read_from_the_code() -> None:
    assert SERIES["churnwatch_events_consumed_total"] == "churnwatch_events_consumed"
    assert SERIES["churnwatch_scoring_latency_seconds_bucket"] == "churnwatch_scoring_latency_seconds"
    assert SERIES["churnwatch_worker_ready"] == "churnwatch_worker_ready"
    assert "churnwatch_events_consumed" not in SERIES  # a counter is selected by its _total name


# ---- Prometheus config and rules ----------------------------------------------------------------


def test_prometheus_config_is_valid(promtool: str) -> None:
    """The committed file as it is: its rule path is relative, so promtool finds alerts.yml beside it."""
    config = load_yaml(PROM_CONFIG)
    assert config["rule_files"] == ["alerts.yml"], "rule files must be relative to prometheus.yml"
    proc = _run([promtool, "check", "config", str(PROM_CONFIG)])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "SUCCESS: 1 rule files found" in out, out


def test_prometheus_sends_alerts_to_the_compose_alertmanager() -> None:
    config = load_yaml(PROM_CONFIG)
    (am,) = config["alerting"]["alertmanagers"]
    assert [t for sc in am["static_configs"] for t in sc["targets"]] == ["alertmanager:9093"]
    service = load_yaml(COMPOSE)["services"]["alertmanager"]
    assert re.fullmatch(r"prom/alertmanager:v\d+\.\d+\.\d+", service["image"]), "pin the image version"
    assert "./deploy/alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in service["volumes"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in service["command"]
    assert any(p.endswith(":9093") and p.startswith("127.0.0.1:") for p in service["ports"])


def test_prometheus_discovers_workers_by_dns() -> None:
    """Scaling with `--scale worker=N` must need no config change: workers are found by DNS."""
    jobs = {job["job_name"]: job for job in load_yaml(PROM_CONFIG)["scrape_configs"]}
    (sd,) = jobs["churnwatch"]["dns_sd_configs"]  # the rules select up{job="churnwatch"}
    assert sd["names"] in (["worker"], ["tasks.worker"]) and sd["type"] == "A" and sd["port"] == 9108


def test_alert_rules_are_valid(promtool: str) -> None:
    proc = _run([promtool, "check", "rules", str(ALERTS)])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    m = re.search(r"SUCCESS: (\d+) rules found", out)
    assert m, out
    names = [r["alert"] for r in alert_rules()]
    assert int(m.group(1)) == len(names), f"promtool saw {m.group(1)} rules, YAML {names}"
    assert len(set(names)) == len(names), "duplicate alert names"
    assert REQUIRED_ALERTS <= set(names), REQUIRED_ALERTS - set(names)


def test_every_alert_rule_says_what_and_how_bad() -> None:
    for rule in alert_rules():
        assert rule.get("labels", {}).get("severity") in SEVERITY_RECEIVERS, rule["alert"]
        annotations = rule.get("annotations", {})
        assert annotations.get("summary", "").strip(), f"{rule['alert']} has no summary"
        assert len(annotations.get("description", "").split()) >= 10, f"{rule['alert']} has no real description"


def test_alert_rules_use_only_exported_metrics() -> None:
    for rule in alert_rules():
        names = promql_metric_names(rule["expr"])
        assert names, f"alert {rule['alert']}: no metric in {rule['expr']!r}"
        unknown = names - set(SERIES) - PROMETHEUS_SERIES
        assert not unknown, f"alert {rule['alert']} uses metrics the worker does not export: {unknown}"


def test_alert_rules_pass_their_unit_tests(promtool: str) -> None:
    """deploy/prometheus/tests.yml, run as an operator would (from its directory)."""
    proc = _run([promtool, "test", "rules", RULE_TESTS.name], cwd=PROM_DIR, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_rule_is_unit_tested_both_ways() -> None:
    """Each rule has a case where it must fire and one where it must stay quiet."""
    doc = load_yaml(RULE_TESTS)
    assert doc["rule_files"] == ["alerts.yml"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in doc["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert names - fires == set(), f"no case where these fire: {sorted(names - fires)}"
    assert names - quiet == set(), f"no case where these stay quiet: {sorted(names - quiet)}"
    assert (fires | quiet) <= names, f"tests of rules that do not exist: {sorted((fires | quiet) - names)}"


# ---- Alertmanager ---------------------------------------------------------------------------------


def test_alertmanager_config_is_valid(amtool: str) -> None:
    proc = _run([amtool, "check-config", str(ALERTMANAGER_CONFIG)])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "SUCCESS" in out and "2 receivers" in out, out


def test_alertmanager_routes_each_severity_to_its_receiver(amtool: str) -> None:
    """amtool evaluates the routing tree as Alertmanager does."""
    severities = {r["labels"]["severity"] for r in alert_rules()}
    assert severities <= set(SEVERITY_RECEIVERS)
    for severity, receiver in [*SEVERITY_RECEIVERS.items(), ("info", "team")]:
        proc = _run([amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}",
                     "alertname=ChurnwatchTest", f"severity={severity}", "instance=w1:9108"])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.split() == [receiver], f"severity={severity}: {proc.stdout!r}"


def test_alertmanager_receivers_are_documented_placeholders() -> None:
    """Every receiver is a webhook whose URL is a placeholder that can never reach anyone (.invalid),
    and docs/operations.md tells the operator to replace exactly those URLs."""
    config = load_yaml(ALERTMANAGER_CONFIG)
    docs = OPERATIONS_DOC.read_text(encoding="utf-8")
    names = {r["name"] for r in config["receivers"]}
    assert names == set(SEVERITY_RECEIVERS.values())

    def used(route: dict[str, Any]) -> Iterator[str]:
        yield route["receiver"]
        for child in route.get("routes", []):
            yield from used(child)

    assert set(used(config["route"])) == names
    for receiver in config["receivers"]:
        (hook,) = receiver["webhook_configs"]
        assert re.fullmatch(r"http://[a-z-]+\.invalid/\S+", hook["url"]), hook["url"]
        assert hook["url"] in docs, f"docs/operations.md does not mention {hook['url']}"
        assert hook.get("send_resolved") is True


# ---- Grafana ------------------------------------------------------------------------------------


def test_dashboard_queries_use_only_exported_metrics(board: dict[str, Any]) -> None:
    exprs = dashboard_exprs(board)
    assert len(exprs) >= 12
    for title, expr in exprs:
        names = promql_metric_names(expr)
        assert names, f"panel {title!r}: no metric in {expr!r}"
        unknown = names - set(SERIES)
        assert not unknown, f"panel {title!r} uses metrics the worker does not export: {unknown}: {expr}"
    for var in board.get("templating", {}).get("list", []):
        query = var.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        for metric in re.findall(r"label_values\(\s*([A-Za-z_:][\w:]*)", text):
            assert metric in SERIES, f"variable {var['name']} uses unknown metric {metric}"


def test_every_exported_metric_is_on_a_panel(board: dict[str, Any]) -> None:
    shown = {SERIES[name] for _, expr in dashboard_exprs(board) for name in promql_metric_names(expr) if name in SERIES}
    missing = set(exported_metrics()) - shown
    assert not missing, f"exported but on no dashboard panel: {sorted(missing)}"


def test_dashboard_has_the_operator_panels(board: dict[str, Any]) -> None:
    """The panels an operator needs, identified by what they query rather than by exact titles."""
    exprs = [expr for _, expr in dashboard_exprs(board)]

    def has(pattern: str) -> bool:
        return any(re.search(pattern, e) for e in exprs)

    assert has(r"sum by \(topic\) \(rate\(churnwatch_events_consumed_total")
    assert has(r"sum by \(reason\) \(rate\(churnwatch_deadletters_total")
    assert has(r"churnwatch_duplicates_skipped_total")
    for q in ("0.50", "0.95", "0.99"):
        assert has(rf"histogram_quantile\({q}, sum by \(le\) \(rate\(churnwatch_scoring_latency_seconds_bucket")
    assert has(r"rate\(churnwatch_scored_total")
    assert has(r"sum by \(tier, trigger\) \(rate\(churnwatch_alerts_emitted_total")
    assert has(r"churnwatch_model_info.*== 1")
    assert has(r"sum\(churnwatch_worker_ready")
    assert has(r"churnwatch_customers_tracked")
    assert has(r"churnwatch_event_time_lag_seconds")
    assert has(r"sum by \(outcome\) \(rate\(churnwatch_webhook_deliveries_total")
    assert has(r"rate\(churnwatch_alert_decisions_held_total")
    assert has(r"sum by \(type\) \(increase\(churnwatch_outcomes_total")
    assert has(r'churnwatch_alerted_outcomes_total\{[^}]*type="saved"')  # the fleet's save rate
    assert has(r"sum by \(stage\) \(rate\(churnwatch_internal_errors_total")


def test_dashboard_is_well_formed(board: dict[str, Any]) -> None:
    """Grafana accepts a dashboard with duplicate ids or a missing datasource, then shows a broken
    panel; catch that here. Every panel must use the provisioned datasource uid."""
    assert board["uid"] == "churnwatch" and board["title"]
    uid = load_yaml(GRAFANA_DATASOURCE)["datasources"][0]["uid"]
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    occupied: set[tuple[int, int]] = set()
    for panel in panels(board):
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        assert panel["datasource"]["uid"] == uid, panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, panel["title"]


def test_grafana_provisioning_matches_compose() -> None:
    """Provisioning paths are container paths: they must match the mounts in docker-compose.yml."""
    (datasource,) = load_yaml(GRAFANA_DATASOURCE)["datasources"]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    (provider,) = load_yaml(GRAFANA_PROVIDER)["providers"]
    services = load_yaml(COMPOSE)["services"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in services["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in services["grafana"]["volumes"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]


# ---- docker-compose.yml and Dockerfile ----------------------------------------------------------


def test_compose_has_the_services() -> None:
    svc = load_yaml(COMPOSE)["services"]
    assert {"kafka", "topics", "worker", "prometheus", "alertmanager", "grafana"} <= set(svc), sorted(svc)
    worker = svc["worker"]
    # Scalable with --scale: nothing that can exist only once per host.
    assert "container_name" not in worker and "ports" not in worker
    assert worker["command"] == ["worker"]
    assert svc["topics"]["command"] == ["topics", "create"]
    env = worker["environment"]
    assert env["CHURNWATCH_BROKER"] == "kafka://kafka:9092"
    assert str(env["CHURNWATCH_METRICS_PORT"]) == "9108"
    assert env["CHURNWATCH_MODELS_DIR"] == "/models"
    assert str(env["CHURNWATCH_PARTITIONS"]) == "4"
    assert any(str(v).startswith("./models:/models") for v in worker["volumes"])
    assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert "healthcheck" in svc["kafka"]
    assert svc["kafka"]["image"].startswith("apache/kafka:")
    assert "broker,controller" in svc["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert svc["prometheus"]["image"].startswith("prom/prometheus")
    assert svc["grafana"]["image"].startswith("grafana/grafana")


def test_dockerfile_basics() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    instructions = [line.split(None, 1) for line in text.splitlines() if line.strip() and not line.startswith(("#", " "))]
    froms = [arg for ins, *arg in instructions if ins == "FROM"]
    assert froms and re.match(r"python:3\.11\.\d+-slim", froms[-1][0])  # an exact release (test_compose_files.py)
    users = [arg[0] for ins, *arg in instructions if ins == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must not run as root"
    assert 'ENTRYPOINT ["churnwatch"]' in text
    assert 'CMD ["worker"]' in text
    assert re.search(r"^EXPOSE\s+9108\b", text, re.M)
    assert re.search(r"pip install[^\n]* \.", text)


# ---- a real Prometheus ---------------------------------------------------------------------------


def test_real_prometheus_scrapes_an_exporter() -> None:
    """The test harness itself (promserver.py): a loopback exporter is scraped and queryable."""
    if not Path(PROMETHEUS_BIN).is_file():
        pytest.skip(f"{PROMETHEUS_BIN} not installed ({INSTALL_HINT})")
    from prometheus_client import CollectorRegistry, Counter, start_http_server

    registry = CollectorRegistry()
    Counter("churnwatch_selftest_events", "Scrape self-test.", registry=registry).inc(3)
    server, _thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    port = int(server.server_address[1])
    try:
        with run_prometheus([f"127.0.0.1:{port}"]) as prom:
            assert prom.url.startswith("http://127.0.0.1:")
            result = prom.wait_for("churnwatch_selftest_events_total",
                                   lambda r: bool(r) and float(r[0]["value"][1]) == 3.0, timeout=20)
            assert result[0]["metric"]["instance"] == f"127.0.0.1:{port}"
            up = prom.query(f'up{{instance="127.0.0.1:{port}"}}')
            assert up and up[0]["value"][1] == "1"
    finally:
        server.shutdown()
        server.server_close()
