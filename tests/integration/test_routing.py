"""Customer view requests reach the worker that owns the customer when the workers share one web port.

Why: scaled compose replicas all listen on port 6066 and differ only by host (each container's own name),
so a worker must advertise its own host, not one address every replica shares; a request to any replica
is forwarded to the owner by the URL the owner advertised. Two workers on one machine stand in for two
containers: one port, two loopback addresses (127.0.0.2 and 127.0.0.3), one of them advertising its
host by ``CHURNWATCH_WEB_ADVERTISED_HOST`` and the other by default (its bind address). The choice of
the container hostname for a wildcard bind is covered by tests/unit/pipeline/worker/test_app.py. The compose
file's worker healthcheck is run against both workers here too.
(tests/faults/test_group.py covers routing between workers on different ports through takeovers.)
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devtools.broker import free_port
from pipeline.config.settings import Settings
from pipeline.core.contract import format_ts
from pipeline.kafka.partitioner import partitioner
from tests.integration.conftest import wait_for
from tests.integration.test_compose_files import healthcheck_argv, load_compose, run_check

pytestmark = pytest.mark.integration

HOSTS = ("127.0.0.2", "127.0.0.3")
CUSTOMERS = 24


def _port_free_on_both() -> int:
    """A port free on both loopback addresses right now (the OS picks it on the first)."""
    for _ in range(50):
        port = free_port(HOSTS[0])
        try:
            with socket.socket() as s:
                s.bind((HOSTS[1], port))
        except OSError:
            continue
        return port
    raise AssertionError(f"no port free on both {HOSTS}")


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_two_workers_on_one_port_forward_each_customer_to_its_owner(settings: Settings, start_worker, sender,
                                                                  tmp_path: Path) -> None:
    port = _port_free_on_both()
    a = settings.with_(web_host=HOSTS[0], web_port=port, metrics_port=free_port(), data_dir=tmp_path / "a")
    b = settings.with_(web_host=HOSTS[1], web_advertised_host=HOSTS[1], web_port=port, metrics_port=free_port(),
                       data_dir=tmp_path / "b")
    assert a.web_advertised_url != b.web_advertised_url
    start_worker(a, wait_ready=False)
    start_worker(b, wait_ready=False)
    bases = [f"http://{host}:{port}" for host in HOSTS]

    def split() -> bool:  # both ready, one of the two partitions each
        answers = [_get(f"{base}/ready") for base in bases]
        return all(code == 200 and body["checks"]["partitions"]["detail"] == "1 assigned" for code, body in answers)

    wait_for(split, 120, what="both workers ready with one partition each")
    # the compose file's worker healthcheck passes against each of them (its /ready, on its own host)
    worker_service = load_compose()["services"]["worker"]
    for base in bases:
        assert run_check(healthcheck_argv(worker_service, f"{base}/ready")) == 0, base

    now = int(time.time() * 1000)
    customers = [f"route-{i}" for i in range(CUSTOMERS)]
    partitions = {partitioner(settings.partitions)(c) for c in customers}
    assert partitions == {0, 1}  # the customers live on both workers
    logins = {c: 1 + i % 3 for i, c in enumerate(customers)}
    sender.send_all([
        ("interactions", {"event_id": f"{c}-{n}", "customer_id": c, "ts": format_ts(now - (10 - n) * 60_000),
                          "type": "login", "schema_version": 1})
        for c, count in logins.items() for n in range(count)
    ])

    def every_customer_through_both() -> dict[str, list[dict[str, Any]]] | None:
        seen: dict[str, list[dict[str, Any]]] = {}
        for c in customers:
            views = [_get(f"{base}/customers/{c}/") for base in bases]
            if any(code != 200 or body["applied"].get("interactions") != logins[c] for code, body in views):
                return None
            seen[c] = [body for _, body in views]
        return seen

    seen = wait_for(every_customer_through_both, 90, what="every customer answered through both workers")
    for c, (via_a, via_b) in seen.items():
        assert via_a == via_b, c  # one owner answers, whichever worker was asked
    # each worker holds one partition, so the customers of the other one were forwarded to their owner
    assert {body[0]["partition"] for body in seen.values()} == {0, 1}
