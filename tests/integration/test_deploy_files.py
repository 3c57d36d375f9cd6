"""Checks of the operator-facing deployment files: Prometheus config and alert rules, the Grafana
dashboard and provisioning, docker-compose.yml and the Dockerfile.

Why these tests exist: those files are only exercised for real by `docker compose up`, which CI
cannot run (no Docker engine). A typo in a metric name, a PromQL syntax error or a rule that never
fires would otherwise only show up as an empty panel or a silent pager in production. So:

* ``promtool`` (Debian package ``prometheus``) validates the config and the rules, and runs the alert
  rules against synthetic series to prove each one fires in its scenario and stays quiet when
  healthy;
* every PromQL expression in the dashboard and the rules may name only the metrics the worker
  exports (the contract below), and the dashboard must cover all of them;
* a real Prometheus scrapes a loopback exporter, and every dashboard query is run against it.

Install the binaries with ``scripts/ensure-debian-packages.sh prometheus``; without them the tests
that need them are skipped with that hint.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

try:  # tests/integration may or may not become a package; support both import styles
    from .promserver import PROMETHEUS_BIN, run_prometheus
except ImportError:
    from promserver import PROMETHEUS_BIN, run_prometheus

REPO = Path(__file__).resolve().parents[2]
PROM_DIR = REPO / "deploy" / "prometheus"
PROM_CONFIG = PROM_DIR / "prometheus.yml"
ALERTS = PROM_DIR / "alerts.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "churnwatch.json"
GRAFANA_DATASOURCE = REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_PROVIDER = REPO / "deploy" / "grafana" / "provisioning" / "dashboards" / "churnwatch.yml"
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
INSTALL_HINT = "run: scripts/ensure-debian-packages.sh prometheus"

#: The worker's metric contract (name -> type). The dashboard and the rules may use nothing else.
METRICS: dict[str, str] = {
    "churnwatch_events_consumed_total": "counter",
    "churnwatch_deadletters_total": "counter",
    "churnwatch_duplicates_skipped_total": "counter",
    "churnwatch_scoring_latency_seconds": "histogram",
    "churnwatch_scored_total": "counter",
    "churnwatch_alerts_emitted_total": "counter",
    "churnwatch_model_info": "gauge",
    "churnwatch_model_loaded": "gauge",
    "churnwatch_model_reload_failures_total": "counter",
    "churnwatch_worker_ready": "gauge",
    "churnwatch_customers_tracked": "gauge",
    "churnwatch_event_time_lag_seconds": "gauge",
}

REQUIRED_ALERTS = {
    "ChurnwatchWorkerDown",
    "ChurnwatchNoEventsConsumed",
    "ChurnwatchDeadLetterRateHigh",
    "ChurnwatchScoringLatencyHigh",
    "ChurnwatchNoModelLoaded",
    "ChurnwatchModelReloadFailing",
    "ChurnwatchAlertVolumeSpike",
}


def _allowed_series_names() -> set[str]:
    names = set()
    for name, kind in METRICS.items():
        names.add(name)
        if kind == "histogram":
            names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
    return names


ALLOWED_SERIES = _allowed_series_names()

# ---- small PromQL / YAML helpers ------------------------------------------------------------------

_PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan", "atan2", "start", "end",
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects. Not a PromQL parser: it strips what cannot be a metric
    name (strings, label matchers, ranges, grouping clauses, numbers, Grafana variables) and keeps
    identifiers that are not followed by ``(`` (functions and aggregations are)."""
    s = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\$\{?\w+\}?", " ", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\boffset\s+-?[0-9a-z]+", " ", s)
    s = re.sub(r"(?<![\w:])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", " ", s)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        word = m.group(0)
        if word.lower() in _PROMQL_KEYWORDS:
            continue
        if re.match(r"\s*\(", s[m.end():]):
            continue  # a function or aggregation call
        names.add(word)
    return names


def read_alert_rules(path: Path = ALERTS) -> dict[str, str]:
    """``{alert name: expr}`` from the rules file, read line by line.

    Why not a YAML library: PyYAML is not a project dependency. The rules file keeps a simple shape
    (``- alert: Name`` followed by ``expr: |`` and an indented block, or a one-line ``expr:``), and
    ``test_alert_rules_are_valid`` checks that this reader found as many rules as promtool did.
    """
    rules: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    current: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^\s*-\s+alert:\s*(\S+)\s*$", line)
        if m:
            current = m.group(1)
            i += 1
            continue
        m = re.match(r"^(\s*)expr:\s*(.*?)\s*$", line)
        if m and current is not None:
            indent, value = len(m.group(1)), m.group(2)
            if value in ("|", "|-", ">", ">-"):
                block: list[str] = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
                    block.append(lines[i].strip())
                    i += 1
                rules[current] = "\n".join(b for b in block if b)
            else:
                rules[current] = value.strip("'\"")
                i += 1
            current = None
            continue
        i += 1
    return rules


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def top_level_keys(text: str, section: str) -> list[str]:
    """Keys directly under a top-level mapping ``section:`` of a block-style YAML document."""
    keys: list[str] = []
    inside = False
    child_indent: int | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith((" ", "\t")):
            inside = line.rstrip() == f"{section}:"
            child_indent = None
            continue
        if not inside:
            continue
        indent = _indent(line)
        if child_indent is None:
            child_indent = indent
        if indent == child_indent:
            m = re.match(r"^\s*([A-Za-z0-9._-]+):", line)
            if m:
                keys.append(m.group(1))
    return keys


def load_yaml(path: Path) -> Any | None:
    """Parse YAML with PyYAML if the venv has it, else with a system Python that has it, else None.

    PyYAML is deliberately not a dependency; the structural checks below work without it, and a full
    parse is an extra when one is available."""
    try:
        import yaml  # type: ignore[import-untyped]

        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except ImportError:
        pass
    for python in ("/usr/bin/python3",):
        if not Path(python).is_file() or Path(python).resolve() == Path(sys.executable).resolve():
            continue
        code = "import json,sys,yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)"
        proc = subprocess.run([python, "-c", code, str(path)], capture_output=True, text=True, timeout=30)
        if proc.returncode == 0:
            return json.loads(proc.stdout)
        if "No module named" not in proc.stderr:
            raise AssertionError(f"{path} is not valid YAML:\n{proc.stderr}")
    return None


# ---- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").is_file() else None)
    if path is None:
        pytest.skip(f"promtool not installed ({INSTALL_HINT})")
    return path


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # panels inside collapsed rows


def _dashboard_exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in _panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=cwd)


# ---- Prometheus config and rules ----------------------------------------------------------------


def test_prometheus_config_is_valid(promtool: str, tmp_path: Path) -> None:
    """The compose config refers to /etc/prometheus/alerts.yml (its mount point); point that at the
    repository copy so promtool also loads and checks the rule file."""
    text = PROM_CONFIG.read_text(encoding="utf-8")
    assert "/etc/prometheus/alerts.yml" in text
    config = tmp_path / "prometheus.yml"
    config.write_text(text.replace("/etc/prometheus/", f"{PROM_DIR}/"), encoding="utf-8")
    proc = _run([promtool, "check", "config", str(config)])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "SUCCESS: 1 rule files found" in out, out


def test_prometheus_discovers_workers_by_dns() -> None:
    """Scaling with `--scale worker=N` must need no config change: workers are found by DNS."""
    text = PROM_CONFIG.read_text(encoding="utf-8")
    assert re.search(r"dns_sd_configs:\s*\n\s*- names:\s*\n\s*- (tasks\.)?worker\b", text), text
    assert re.search(r"type:\s*A\b", text)
    assert re.search(r"port:\s*9108\b", text)
    assert "job_name: churnwatch" in text  # the rules select up{job="churnwatch"}


def test_alert_rules_are_valid(promtool: str) -> None:
    proc = _run([promtool, "check", "rules", str(ALERTS)])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    m = re.search(r"SUCCESS: (\d+) rules found", out)
    assert m, out
    rules = read_alert_rules()
    assert int(m.group(1)) == len(rules), f"promtool saw {m.group(1)} rules, the reader {sorted(rules)}"
    assert REQUIRED_ALERTS <= set(rules), REQUIRED_ALERTS - set(rules)


def test_alert_rules_use_only_exported_metrics() -> None:
    for name, expr in read_alert_rules().items():
        unknown = promql_metric_names(expr) - ALLOWED_SERIES - {"up"}
        assert not unknown, f"alert {name} uses unknown metrics {unknown}: {expr}"


# Synthetic scenarios for `promtool test rules`. Each case: input series (1-minute steps unless
# `interval` says otherwise) and the number of *firing* alerts expected per alert name at eval_time
# (0 = must not fire; names not listed must not fire either). Checking the ALERTS series honours
# each rule's `for:` exactly as a running Prometheus would.
_W = 'job="churnwatch",instance="{i}:9108"'


def _buckets(instance: str, counts: dict[str, int], steps: int) -> list[dict[str, str]]:
    return [
        {
            "series": f'churnwatch_scoring_latency_seconds_bucket{{{_W.format(i=instance)},le="{le}"}}',
            "values": f"0+{n}x{steps}",
        }
        for le, n in counts.items()
    ]


def _healthy_worker(i: str, steps: int = 40) -> list[dict[str, str]]:
    w = _W.format(i=i)
    return [
        {"series": f"up{{{w}}}", "values": f"1x{steps}"},
        {"series": f'churnwatch_events_consumed_total{{{w},topic="churn.interactions"}}', "values": f"0+600x{steps}"},
        {"series": f'churnwatch_deadletters_total{{{w},reason="not_json"}}', "values": f"0+1x{steps}"},
        {"series": f"churnwatch_model_loaded{{{w}}}", "values": f"1x{steps}"},
        {"series": f"churnwatch_worker_ready{{{w}}}", "values": f"1x{steps}"},
        {"series": f'churnwatch_alerts_emitted_total{{{w},tier="standard",trigger="event"}}', "values": f"0+1x{steps}"},
        *_buckets(i, {"0.005": 90, "0.01": 100, "0.05": 100, "0.1": 100, "+Inf": 100}, steps),
    ]


RULE_SCENARIOS: list[dict[str, Any]] = [
    {
        "name": "healthy pair of workers",
        "series": _healthy_worker("w1") + _healthy_worker("w2"),
        "eval_time": "30m",
        "expect": {},
    },
    {
        "name": "one worker down",
        "series": [
            {"series": f'up{{{_W.format(i="w1")}}}', "values": "1x3 0x20"},
            *_healthy_worker("w2", 25),
        ],
        "eval_time": "10m",
        "expect": {"ChurnwatchWorkerDown": 1},
    },
    {
        "name": "no worker at all",
        "series": [{"series": "prometheus_build_info", "values": "1x20"}],
        "eval_time": "10m",
        "expect": {"ChurnwatchNoWorkers": 1},
    },
    {
        "name": "stalled worker and a worker that never consumed",
        "series": [
            {"series": f'up{{{_W.format(i="w1")}}}', "values": "1x30"},
            {"series": f'churnwatch_events_consumed_total{{{_W.format(i="w1")},topic="churn.tickets"}}', "values": "500x30"},
            {"series": f'up{{{_W.format(i="w2")}}}', "values": "1x30"},
            {"series": f'up{{{_W.format(i="w3")}}}', "values": "1x30"},
            {"series": f'churnwatch_events_consumed_total{{{_W.format(i="w3")},topic="churn.tickets"}}', "values": "0+50x30"},
        ],
        "eval_time": "15m",
        "expect": {"ChurnwatchNoEventsConsumed": 2},
    },
    {
        "name": "freshly started idle worker is not flagged yet",
        "series": [{"series": f'up{{{_W.format(i="w1")}}}', "values": "1x30"}],
        "eval_time": "4m",
        "expect": {},
    },
    {
        "name": "5% dead letters",
        "series": [
            {"series": f'up{{{_W.format(i="w1")}}}', "values": "1x30"},
            {"series": f'churnwatch_events_consumed_total{{{_W.format(i="w1")},topic="churn.surveys"}}', "values": "0+100x30"},
            {"series": f'churnwatch_deadletters_total{{{_W.format(i="w1")},reason="missing_field"}}', "values": "0+5x30"},
        ],
        "eval_time": "15m",
        "expect": {"ChurnwatchDeadLetterRateHigh": 1},
    },
    {
        "name": "p99 scoring latency around 90 ms",
        "series": [
            {"series": f'up{{{_W.format(i="w1")}}}', "values": "1x30"},
            {"series": f'churnwatch_events_consumed_total{{{_W.format(i="w1")},topic="churn.interactions"}}', "values": "0+100x30"},
            *_buckets("w1", {"0.01": 90, "0.05": 95, "0.1": 100, "+Inf": 100}, 30),
        ],
        "eval_time": "20m",
        "expect": {"ChurnwatchScoringLatencyHigh": 1},
    },
    {
        "name": "no model, not ready, and a first reload failure on a new counter series",
        "series": [
            {"series": f'up{{{_W.format(i="w1")}}}', "values": "1x20"},
            {"series": f"churnwatch_worker_ready{{{_W.format(i='w1')}}}", "values": "0x20"},
            {"series": f'churnwatch_events_consumed_total{{{_W.format(i="w1")},topic="churn.interactions"}}', "values": "0+100x20"},
            {"series": f"churnwatch_model_loaded{{{_W.format(i='w1')}}}", "values": "0x20"},
            {"series": f'churnwatch_model_reload_failures_total{{{_W.format(i="w1")},reason="validation"}}', "values": "_x4 1x16"},
        ],
        "eval_time": "6m",
        "expect": {
            "ChurnwatchNoModelLoaded": 1,
            "ChurnwatchModelReloadFailing": 1,
            "ChurnwatchWorkerNotReady": 1,
        },
    },
    {
        "name": "alert volume spike after a normal day",
        "interval": "5m",
        "series": [
            {"series": f'up{{{_W.format(i="w1")}}}', "values": "1x300"},
            {"series": f'churnwatch_events_consumed_total{{{_W.format(i="w1")},topic="churn.interactions"}}', "values": "0+100x300"},
            {"series": f'churnwatch_alerts_emitted_total{{{_W.format(i="w1")},tier="vip",trigger="event"}}', "values": "0+1x288 308+20x11"},
        ],
        "eval_time": "25h",
        "expect": {"ChurnwatchAlertVolumeSpike": 1},
    },
    {
        "name": "steady alert volume over a day",
        "interval": "5m",
        "series": [
            {"series": f'up{{{_W.format(i="w1")}}}', "values": "1x300"},
            {"series": f'churnwatch_events_consumed_total{{{_W.format(i="w1")},topic="churn.interactions"}}', "values": "0+100x300"},
            {"series": f'churnwatch_alerts_emitted_total{{{_W.format(i="w1")},tier="vip",trigger="event"}}', "values": "0+3x300"},
        ],
        "eval_time": "25h",
        "expect": {},
    },
    {
        "name": "first hours of a deployment are not a spike",
        "interval": "5m",
        "series": [
            {"series": f'up{{{_W.format(i="w1")}}}', "values": "1x30"},
            {"series": f'churnwatch_events_consumed_total{{{_W.format(i="w1")},topic="churn.interactions"}}', "values": "0+100x30"},
            {"series": f'churnwatch_alerts_emitted_total{{{_W.format(i="w1")},tier="vip",trigger="event"}}', "values": "0+20x30"},
        ],
        "eval_time": "2h",
        "expect": {},
    },
]


def test_alert_rules_fire_in_their_scenarios(promtool: str, tmp_path: Path) -> None:
    """Run the real rules file through `promtool test rules`: each alert fires when it should and
    no alert fires when it should not (JSON is valid YAML, so the test file is written as JSON)."""
    rule_names = sorted(read_alert_rules())
    tests = []
    for scenario in RULE_SCENARIOS:
        exprs = []
        for name in rule_names:
            expected = scenario["expect"].get(name, 0)
            exprs.append(
                {
                    "expr": f'count(ALERTS{{alertname="{name}",alertstate="firing"}})',
                    "eval_time": scenario["eval_time"],
                    "exp_samples": [{"labels": "{}", "value": expected}] if expected else [],
                }
            )
        tests.append(
            {
                "name": scenario["name"],
                "interval": scenario.get("interval", "1m"),
                "input_series": scenario["series"],
                "promql_expr_test": exprs,
            }
        )
    test_file = tmp_path / "alerts_test.yml"
    test_file.write_text(
        json.dumps({"rule_files": [str(ALERTS)], "evaluation_interval": "1m", "tests": tests}, indent=1),
        encoding="utf-8",
    )
    proc = _run([promtool, "test", "rules", str(test_file)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---- Grafana ------------------------------------------------------------------------------------


def test_dashboard_queries_use_only_exported_metrics(dashboard: dict[str, Any]) -> None:
    exprs = _dashboard_exprs(dashboard)
    assert len(exprs) >= 12
    used: set[str] = set()
    for title, expr in exprs:
        names = promql_metric_names(expr)
        assert names, f"panel {title!r}: no metric in {expr!r}"
        unknown = names - ALLOWED_SERIES
        assert not unknown, f"panel {title!r} uses unknown metrics {unknown}: {expr}"
        used |= names
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        for metric in re.findall(r"label_values\(\s*([A-Za-z_:][\w:]*)", text):
            assert metric in ALLOWED_SERIES, f"variable {var['name']} uses unknown metric {metric}"
    missing = {m for m in METRICS if not any(u == m or u.startswith(m + "_") for u in used)}
    assert not missing, f"the dashboard shows nothing for {sorted(missing)}"


def test_dashboard_has_the_operator_panels(dashboard: dict[str, Any]) -> None:
    """The panels an operator needs, identified by what they query rather than by exact titles."""
    exprs = [expr for _, expr in _dashboard_exprs(dashboard)]

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


def test_dashboard_is_well_formed(dashboard: dict[str, Any]) -> None:
    """Grafana accepts a dashboard with duplicate ids or a missing datasource, then shows a broken
    panel; catch that here. Every panel must use the provisioned datasource uid."""
    assert dashboard["uid"] == "churnwatch" and dashboard["title"]
    m = re.search(r"^\s*uid:\s*(\S+)\s*$", GRAFANA_DATASOURCE.read_text(encoding="utf-8"), re.M)
    assert m, "datasource provisioning has no uid"
    uid = m.group(1)
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in _panels(dashboard):
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
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
    datasource = GRAFANA_DATASOURCE.read_text(encoding="utf-8")
    assert re.search(r"type:\s*prometheus\b", datasource)
    assert re.search(r"url:\s*http://prometheus:9090\b", datasource)
    provider = GRAFANA_PROVIDER.read_text(encoding="utf-8")
    m = re.search(r"^\s*path:\s*(\S+)\s*$", provider, re.M)
    assert m, "dashboard provider has no path"
    compose = COMPOSE.read_text(encoding="utf-8")
    assert f"./deploy/grafana/dashboards:{m.group(1)}" in compose
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning" in compose
    assert "./deploy/prometheus:/etc/prometheus" in compose


# ---- docker-compose.yml and Dockerfile ----------------------------------------------------------


def test_compose_has_the_services() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    services = top_level_keys(text, "services")
    assert {"kafka", "topics", "worker", "prometheus", "grafana"} <= set(services), services
    parsed = load_yaml(COMPOSE)
    if parsed is None:
        return  # no YAML parser anywhere: the line-based check above is what we can do
    svc = parsed["services"]
    assert set(services) == set(svc)
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


def _require_prometheus() -> None:
    if not Path(PROMETHEUS_BIN).is_file():
        pytest.skip(f"{PROMETHEUS_BIN} not installed ({INSTALL_HINT})")


def _start_exporter(registry: Any) -> tuple[Any, int]:
    """prometheus_client's exporter on an OS-chosen loopback port (no race on a 'free' port)."""
    from prometheus_client import start_http_server

    started = start_http_server(0, addr="127.0.0.1", registry=registry)
    if not isinstance(started, tuple):  # prometheus_client < 0.20 returns nothing
        pytest.skip("prometheus_client too old to report its port")
    server = started[0]
    return server, int(server.server_address[1])


@pytest.fixture(scope="module")
def scraped() -> Iterator[tuple[Any, int]]:
    """One real Prometheus scraping two loopback exporters: a one-counter self-test exporter and
    one with exactly the worker's metric contract. Shared by the tests below because Prometheus
    applies its target list only every 5 s after start, so each start costs ~5 s."""
    _require_prometheus()
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    simple = CollectorRegistry()
    Counter("churnwatch_selftest_events", "Scrape self-test.", registry=simple).inc(3)

    reg = CollectorRegistry()
    Counter("churnwatch_events_consumed", "", ["topic"], registry=reg).labels("churn.interactions").inc(10)
    Counter("churnwatch_deadletters", "", ["reason"], registry=reg).labels("not_json").inc()
    Counter("churnwatch_duplicates_skipped", "", ["topic"], registry=reg).labels("churn.tickets").inc()
    Histogram(
        "churnwatch_scoring_latency_seconds", "", registry=reg,
        buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
    ).observe(0.002)
    Counter("churnwatch_scored", "", registry=reg).inc(5)
    Counter("churnwatch_alerts_emitted", "", ["tier", "trigger"], registry=reg).labels("vip", "event").inc()
    Gauge("churnwatch_model_info", "", ["version"], registry=reg).labels("v1").set(1)
    Gauge("churnwatch_model_loaded", "", registry=reg).set(1)
    Counter("churnwatch_model_reload_failures", "", ["reason"], registry=reg).labels("validation").inc()
    Gauge("churnwatch_worker_ready", "", registry=reg).set(1)
    Gauge("churnwatch_customers_tracked", "", registry=reg).set(42)
    Gauge("churnwatch_event_time_lag_seconds", "", registry=reg).set(1.5)

    servers = []
    try:
        simple_server, simple_port = _start_exporter(simple)
        servers.append(simple_server)
        contract_server, contract_port = _start_exporter(reg)
        servers.append(contract_server)
        with run_prometheus([f"127.0.0.1:{simple_port}", f"127.0.0.1:{contract_port}"]) as prom:
            yield prom, simple_port
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_real_prometheus_scrapes_an_exporter(scraped: tuple[Any, int]) -> None:
    prom, port = scraped
    assert prom.url.startswith("http://127.0.0.1:")
    result = prom.wait_for(
        "churnwatch_selftest_events_total",
        lambda r: bool(r) and float(r[0]["value"][1]) == 3.0,
        timeout=20,
    )
    assert result[0]["metric"]["instance"] == f"127.0.0.1:{port}"
    up = prom.query(f'up{{instance="127.0.0.1:{port}"}}')
    assert up and up[0]["value"][1] == "1"


def test_every_dashboard_query_returns_data_from_a_contract_exporter(
    scraped: tuple[Any, int], dashboard: dict[str, Any]
) -> None:
    """Every dashboard query, with Grafana's variables filled in, must parse and return series
    from an exporter that has exactly the worker's metric contract (an empty panel is the bug)."""
    prom, _ = scraped
    # rate() and increase() need two samples inside the window.
    prom.wait_for(
        "count_over_time(churnwatch_scored_total[1m])",
        lambda r: bool(r) and float(r[0]["value"][1]) >= 2,
        timeout=20,
    )
    empty = []
    for title, expr in _dashboard_exprs(dashboard):
        concrete = expr.replace("$__rate_interval", "1m").replace("$instance", ".*")
        if not prom.query(concrete):
            empty.append(f"{title}: {concrete}")
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
