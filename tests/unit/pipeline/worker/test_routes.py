"""The worker web's routes: which class of request each path is, and its access rules (pipeline.web.webguard on
Faust's aiohttp app, without a broker; real workers: integration tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("faust")

from pipeline.config.settings import Settings  # noqa: E402
from pipeline.worker.app import WorkerApp  # noqa: E402
from pipeline.worker.routes import web_route_class  # noqa: E402


def _web(tmp_path: Path, **changes: Any) -> tuple[WorkerApp, Any]:
    settings = Settings.from_env(env={}).with_(broker="kafka://127.0.0.1:1", models_dir=tmp_path / "models",
                                               data_dir=tmp_path / "data", partitions=2, **changes)
    w = WorkerApp(settings)
    w.core.detach(lambda records: None)
    w.app.web.init_server()  # Faust's routes and blueprints, as its web service mounts them
    return w, w.app.web.web_app


def _get(web_app: Any, requests: list[tuple[str, dict[str, str]]]) -> list[int]:
    from aiohttp.test_utils import TestClient, TestServer

    async def main() -> list[int]:
        async with TestClient(TestServer(web_app)) as client:
            return [(await client.get(path, headers=headers)).status for path, headers in requests]

    return asyncio.run(main())


def test_route_classes():
    from pipeline.web import webguard

    classes = {p: web_route_class(p) for p in
               ("/health", "/ready", "/login", "/logout", "/customers/c1/", "/router/", "/table/", "/", "/graph/")}
    assert classes == {"/health": webguard.PROBE, "/ready": webguard.PROBE, "/login": webguard.LOGIN,
                       "/logout": webguard.LOGIN, "/customers/c1/": webguard.USER, "/router/": webguard.INTERNAL,
                       "/table/": webguard.INTERNAL, "/": webguard.INTERNAL, "/graph/": webguard.INTERNAL}


def test_faust_internal_routes_are_refused_to_outside_requests_without_a_token(tmp_path):
    _, web_app = _web(tmp_path)
    statuses = _get(web_app, [("/router/", {}), ("/table/", {}), ("/", {}), ("/health", {}),
                              ("/customers/c1/", {"Host": "rebind.attacker.example"})])
    assert statuses[:3] == [403, 403, 403]
    assert statuses[3] == 200
    assert statuses[4] == 421


def test_worker_web_with_a_token(tmp_path):
    token = "worker-unit-token-0123456789"
    w, web_app = _web(tmp_path, inbox_token=token)

    async def answer(request: Any, customer_id: str) -> tuple[int, dict[str, Any]]:  # no partition routing here
        return 200, {"customer_id": customer_id}

    w.routes.route_customer = answer  # type: ignore[method-assign]
    bearer = {"Authorization": f"Bearer {token}"}
    worker_key = {"X-Churnwatch-Worker": w.webauth.worker_key}
    statuses = _get(web_app, [("/customers/c1/", {}), ("/customers/c1/", bearer), ("/customers/c1/", worker_key),
                              ("/router/", bearer), ("/router/", worker_key), ("/table/", worker_key),
                              ("/login", {})])
    # no sign-in: 401; a bearer client or another worker: the view answers; Faust's routes for workers only
    assert statuses == [401, 200, 200, 403, 200, 200, 200]


def test_peers_reach_the_worker_web_by_its_advertised_address(tmp_path):
    token = "worker-unit-token-0123456789"
    w, web_app = _web(tmp_path, inbox_token=token, web_host="0.0.0.0", web_advertised_host="worker-7.churn",
                      web_port=6100)
    key = {"X-Churnwatch-Worker": w.webauth.worker_key}
    statuses = _get(web_app, [("/router/", {**key, "Host": "worker-7.churn:6100"}),
                              ("/router/", {**key, "Host": "worker-7.churn:6101"}),
                              ("/router/", {**key, "Host": "worker-8.churn:6100"})])
    assert statuses == [200, 421, 421]
