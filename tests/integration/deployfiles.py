"""The operator-facing deployment files as data, for the tests that check them.

Shared by test_deploy_files.py (static checks, promtool, amtool), test_metrics.py (every dashboard
query against a real Prometheus scraping a real worker) and test_alertmanager.py. The metric contract
is not written down here: it is read from what the worker exports (``pipeline.worker.metrics``' registry,
plus any metric constructor found in ``pipeline/``), so a metric added to the code without a panel
fails the dashboard test, and a panel or rule naming a metric that no longer exists fails too.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
PROM_DIR = REPO / "deploy" / "prometheus"
PROM_CONFIG = PROM_DIR / "prometheus.yml"
ALERTS = PROM_DIR / "alerts.yml"
RULE_TESTS = PROM_DIR / "tests.yml"
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "churnwatch.json"
COMPOSE = REPO / "docker-compose.yml"
OPERATIONS_DOC = REPO / "docs" / "operations.md"
INSTALL_HINT = "run: scripts/ensure-debian-packages.sh prometheus prometheus-alertmanager"

#: Series every Prometheus has without the worker exporting them.
PROMETHEUS_SERIES = {"up"}


def find_binary(name: str) -> str | None:
    """A Debian-packaged binary (``/usr/bin``) or one on PATH."""
    return shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# ---- the worker's metrics -----------------------------------------------------------------------

_CONSTRUCTOR = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"(churnwatch_\w+)\"")


def exported_metrics() -> dict[str, str]:
    """``{metric name: type}`` of everything the worker exports (names as prometheus_client gives
    them: counters without ``_total``)."""
    import pipeline.worker.metrics  # noqa: F401  (registers the worker's metrics)
    from prometheus_client import REGISTRY

    found = {
        family.name: family.type
        for collector in list(REGISTRY._collector_to_names)  # noqa: SLF001
        for family in (collector.describe() if hasattr(collector, "describe") else collector.collect())
        if family.name.startswith("churnwatch_")
    }
    # a metric defined in a module that pipeline.worker.metrics does not import is still exported by the worker
    for path in sorted((REPO / "pipeline").glob("*.py")):
        for kind, name in _CONSTRUCTOR.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name[: -len("_total")] if name.endswith("_total") else name, kind.lower())
    return found


def series_names(metrics: dict[str, str]) -> dict[str, str]:
    """``{series name: metric name}``: what PromQL can select (``_total``, histogram/summary parts)."""
    out: dict[str, str] = {}
    for name, kind in metrics.items():
        if kind == "counter":
            out[f"{name}_total"] = name
        elif kind == "histogram":
            out.update({f"{name}_{part}": name for part in ("bucket", "sum", "count")})
        elif kind == "summary":
            out.update({name: name, f"{name}_sum": name, f"{name}_count": name})
        else:
            out[name] = name
    return out


# ---- PromQL -------------------------------------------------------------------------------------

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


def grafana_to_promql(expr: str, rate_interval: str = "1m") -> str:
    """A dashboard expression with Grafana's variables filled in as Grafana would (all workers)."""
    return expr.replace("$__rate_interval", rate_interval).replace("$instance", ".*")


# ---- alert rules --------------------------------------------------------------------------------


def alert_rules(path: Path = ALERTS) -> list[dict[str, Any]]:
    """Every alerting rule of the rules file (``alert``, ``expr``, ``labels``, ``annotations`` ...)."""
    doc = load_yaml(path)
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


# ---- Grafana ------------------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])  # panels inside collapsed rows


def dashboard_exprs(board: dict[str, Any]) -> list[tuple[str, str]]:
    """``(panel title, expression)`` of every query target of every panel."""
    return [
        (panel["title"], target["expr"])
        for panel in panels(board)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
