"""The committed Alertmanager config, run by a real Alertmanager: alerts reach the right receiver.

The two placeholder receiver URLs of deploy/alertmanager/alertmanager.yml are pointed at a small HTTP
server in this test (what an operator does with their real URLs); grouping waits are shortened to
1 s so the test does not wait 30 s. Everything else (routes, matchers, inhibition, receivers) is the
committed file. One path goes through a real Prometheus loading the committed alerts.yml.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import wait_for
from tests.integration.deployfiles import ALERTMANAGER_CONFIG, ALERTS, INSTALL_HINT, load_yaml
from tests.integration.promserver import (
    ALERTMANAGER_BIN,
    PROMETHEUS_BIN,
    AlertmanagerServer,
    run_alertmanager,
    run_prometheus,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (Path(ALERTMANAGER_BIN).is_file() and Path(PROMETHEUS_BIN).is_file()),
                       reason=f"Debian prometheus / prometheus-alertmanager not installed ({INSTALL_HINT})"),
]


@dataclass
class Receiver:
    """A webhook endpoint on loopback that keeps every notification it is sent, by path."""

    server: ThreadingHTTPServer
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def alerts(self, path: str) -> list[dict[str, Any]]:
        """The alerts of every notification to ``path``, each with the notification's receiver/status."""
        return [{**a, "receiver": body["receiver"], "notification_status": body["status"]}
                for p, body in list(self.received) if p == path for a in body["alerts"]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box: list[tuple[str, dict[str, Any]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            box.append((self.path, json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:  # keep pytest's output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Receiver(server, box)
    server.shutdown()
    server.server_close()


@pytest.fixture
def alertmanager(receiver: Receiver, tmp_path: Path) -> Iterator[AlertmanagerServer]:
    config = load_yaml(ALERTMANAGER_CONFIG)
    for r in config["receivers"]:
        for hook in r["webhook_configs"]:
            hook["url"] = f"{receiver.base}/{r['name']}"

    def quick(route: dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = "1s"
        for child in route.get("routes", []):
            quick(child)

    quick(config["route"])
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with run_alertmanager(path) as am:
        yield am


def test_a_firing_rule_reaches_the_team_receiver(receiver: Receiver, alertmanager: AlertmanagerServer) -> None:
    """A real Prometheus with the committed rules scrapes an exporter whose model was refused before
    the first scrape: ChurnwatchModelReloadFailing (warning, no `for:`) fires at the first evaluation
    and Alertmanager delivers it to the `team` webhook."""
    from prometheus_client import CollectorRegistry, Counter, start_http_server

    registry = CollectorRegistry()
    Counter("churnwatch_model_reload_failures", "", ["reason"], registry=registry).labels("corrupt").inc()
    server, _thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    target = f"127.0.0.1:{server.server_address[1]}"
    try:
        with run_prometheus([target], job="churnwatch", rule_files=[ALERTS], alertmanagers=[alertmanager.address]):
            got = wait_for(lambda: receiver.alerts("/team"), 60, what="a notification to the team receiver")
    finally:
        server.shutdown()
        server.server_close()
    alert = got[0]
    assert alert["receiver"] == "team" and alert["status"] == "firing"
    assert alert["labels"] == {"alertname": "ChurnwatchModelReloadFailing", "severity": "warning",
                               "instance": target, "reason": "corrupt"}
    assert alert["annotations"]["summary"] == f"churnwatch worker {target} failed to reload the model (corrupt)"
    assert "keeps scoring with the last good model" in alert["annotations"]["description"]
    assert receiver.alerts("/oncall") == []


def test_a_critical_alert_pages_and_holds_back_that_workers_warnings(
    receiver: Receiver, alertmanager: AlertmanagerServer
) -> None:
    instance = "w9:9108"
    alertmanager.post_alerts([
        {"labels": {"alertname": "ChurnwatchWorkerDown", "severity": "critical", "job": "churnwatch",
                    "instance": instance},
         "annotations": {"summary": f"churnwatch worker {instance} is down"}},
        {"labels": {"alertname": "ChurnwatchWorkerNotReady", "severity": "warning", "job": "churnwatch",
                    "instance": instance},
         "annotations": {"summary": f"churnwatch worker {instance} not ready for 5 minutes"}},
    ])
    paged = wait_for(lambda: receiver.alerts("/oncall"), 30, what="a notification to the oncall receiver")
    assert [(a["receiver"], a["labels"]["alertname"], a["labels"]["instance"]) for a in paged] == [
        ("oncall", "ChurnwatchWorkerDown", instance)]

    def held_back() -> list[dict[str, Any]]:
        return [a for a in alertmanager.alerts()
                if a["labels"]["alertname"] == "ChurnwatchWorkerNotReady"
                and a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]]

    wait_for(held_back, 30, what="the warning of the paged worker to be inhibited")
    assert all(a["labels"]["alertname"] != "ChurnwatchWorkerNotReady" for a in receiver.alerts("/team"))
