"""The worker web behind the shared token, on two real worker processes sharing the partitions: the CSM
view needs a sign-in (bearer or the session cookie), a worker forwards the view to the customer's owner
with the worker key, Faust's internal ``/router/`` and ``/table/`` refuse everyone but the workers of the
group, and a foreign ``Host`` is refused."""

from __future__ import annotations

import time

import pytest

from devtools.broker import free_port
from pipeline.config.settings import Settings
from pipeline.core.contract import DAY_MS
from pipeline.kafka.partitioner import partitioner
from pipeline.web.webauth import WORKER_HEADER, WebAuth
from tests.integration.conftest import wait_for
from tests.integration.scenarios import profile
from tests.integration.webclient import WebClient

pytestmark = pytest.mark.integration

TOKEN = "integration-worker-token-41c2e8"
CUSTOMERS = [f"web-{i}" for i in range(8)]


def _one_partition_each(*clients: WebClient) -> bool:
    for c in clients:
        r = c.get("/ready")
        if r.status != 200 or r.json()["checks"]["partitions"]["detail"] != "1 assigned":
            return False
    return True


def test_worker_web_behind_the_token(settings: Settings, start_worker, sender, tmp_path) -> None:
    settings = settings.with_(inbox_token=TOKEN)
    first = start_worker(settings)
    second = start_worker(settings.with_(web_port=free_port(), metrics_port=free_port(), data_dir=tmp_path / "data-b"))
    a = WebClient(f"http://127.0.0.1:{first.settings.web_port}")
    b = WebClient(f"http://127.0.0.1:{second.settings.web_port}")
    wait_for(lambda: _one_partition_each(a, b), 90, what="each worker to own one of the two partitions")
    part = partitioner(settings.partitions)
    assert {part(c) for c in CUSTOMERS} == {0, 1}  # so some views are answered by the other worker
    start = (int(time.time() * 1000) // DAY_MS - 3) * DAY_MS
    sender.send_all([profile(c, start, tier="vip") for c in CUSTOMERS])

    bearer = {"Authorization": f"Bearer {TOKEN}"}

    def every_view() -> dict[str, dict] | None:
        views = {}
        for c in CUSTOMERS:
            r = a.get(f"/customers/{c}/", headers=bearer)
            if r.status != 200:
                return None
            views[c] = r.json()
        return views

    # asked of the first worker, every customer answers: half of them forwarded to the second, which
    # takes the forward only with the worker key (a forward without it would come back 401)
    views = wait_for(every_view, 60, what="every customer view through the first worker")
    assert {v["partition"] for v in views.values()} == {0, 1}
    assert all(v["tier"] == "vip" for v in views.values())

    # no sign-in, a wrong token, the worker key presented as a bearer token: refused
    assert a.get("/customers/web-0/").status == 401
    assert a.get("/customers/web-0/", headers={"Accept": "text/html"}).headers["Location"] == \
        "/login?next=/customers/web-0/"
    assert a.get("/customers/web-0/", headers={"Authorization": "Bearer wrong-wrong-wrong"}).status == 401
    key = WebAuth(TOKEN).worker_key
    assert a.get("/customers/web-0/", headers={"Authorization": f"Bearer {key}"}).status == 401
    # a foreign Host (DNS rebinding) is refused even with the token
    r = a.get("/customers/web-0/", headers={**bearer, "Host": f"rebind.attacker.example:{first.settings.web_port}"})
    assert r.status == 421

    # Faust's internal routes: 403 from outside, signed in or not; answered for a worker of the group
    for path in ("/router/", "/table/", "/router/topics", "/"):
        for headers in ({}, bearer, {WORKER_HEADER: "guessed"}):
            r = a.get(path, headers=headers)
            assert r.status == 403, (path, headers, r.status, r.text[:200])
    r = a.get("/router/", headers={WORKER_HEADER: key})
    assert r.status == 200 and isinstance(r.json(), dict)

    # a browser: sign in on the worker's own page, then the cookie works here and on the other worker
    r = a.login("Walter Skinner", TOKEN, "/customers/web-1/")
    assert r.status == 303 and r.headers["Location"] == "/customers/web-1/" and a.cookie
    r = a.get("/customers/web-1/")
    assert r.status == 200 and r.json()["customer_id"] == "web-1"
    b.cookie = a.cookie
    assert b.get("/customers/web-2/").status == 200
    assert a.login("Walter Skinner", "not-the-token-at-all").status == 401

    # probes need nothing
    assert a.get("/health", headers={"Host": "10.0.0.7:6066"}).status == 200
    assert b.get("/ready").status == 200
