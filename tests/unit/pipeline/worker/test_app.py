"""The worker's batch code without a broker (``Worker.detach``): one bad event never costs the others,
and nothing is told to the world before the state it describes was written."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

pytest.importorskip("faust")

from pipeline.worker import app as app_module  # noqa: E402
from pipeline.core import fold as fold_module  # noqa: E402
from pipeline.core import decisions as decisions_module  # noqa: E402
from pipeline.worker.app import Worker  # noqa: E402
from pipeline.core.contract import format_ts  # noqa: E402
from pipeline.core.features import CustomerState  # noqa: E402
from pipeline.core.shadow import partitioner  # noqa: E402
from pipeline.config.settings import Settings  # noqa: E402
from pipeline.worker.store import POSITION_KEY  # noqa: E402

T0 = 1_764_000_000_000


@pytest.fixture
def worker(tmp_path: Path) -> tuple[Worker, list]:
    settings = Settings.from_env(env={}).with_(broker="kafka://127.0.0.1:1", models_dir=tmp_path / "models",
                                               data_dir=tmp_path / "data", partitions=2)
    w = Worker(settings)
    written: list = []
    w.detach(lambda records: written.append(list(records)))
    return w, written


_offsets = itertools.count()


def message(w: Worker, source: str, value: dict | bytes, key: Any = "default") -> SimpleNamespace:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    cid = value.get("customer_id") if isinstance(value, dict) else "x"
    k = cid.encode() if key == "default" else key
    part = partitioner(w.settings.partitions)(cid)
    return SimpleNamespace(message=SimpleNamespace(topic=w.settings.topic(source), partition=part,
                                                   offset=next(_offsets), key=k), value=raw)


def login(cid: str, i: int) -> dict:
    return {"event_id": f"{cid}-{i}", "customer_id": cid, "ts": format_ts(T0 + i * 60_000), "type": "login",
            "schema_version": 1}


def state(w: Worker, cid: str) -> CustomerState:
    raw = w.store.find(cid.encode())
    assert raw is not None, cid
    return CustomerState.from_bytes(raw)


def dead(written: list) -> list[dict]:
    return [orjson.loads(v) for batch in written for t, _k, v, _p in batch if t.endswith("deadletter")]


def test_an_exception_while_applying_one_event_dead_letters_only_that_event(worker, monkeypatch):
    w, written = worker
    real = fold_module.apply

    def apply(st, ev, *a, **k):
        if ev.event_id == "poison":
            raise OverflowError("int too large to convert")
        return real(st, ev, *a, **k)

    monkeypatch.setattr(fold_module, "apply", apply)
    batch = [message(w, "interactions", login(f"c{i % 30}", i)) for i in range(180)]
    batch.insert(77, message(w, "interactions", {**login("c7", 999), "event_id": "poison"}))
    asyncio.run(w.process_batch(batch))
    assert sum(state(w, f"c{i}").applied["interactions"] for i in range(30)) == 180
    (d,) = dead(written)
    assert d["reason"] == "internal_error" and "OverflowError" in d["detail"] and orjson.loads(d["original"])["event_id"] == "poison"


def test_a_state_that_cannot_be_stored_or_scored_is_rebuilt_without_the_event_that_broke_it(worker, monkeypatch):
    w, written = worker
    real = decisions_module.vector

    def vector(st, now_ms):
        if st.applied.get("surveys"):
            raise ValueError("poisoned survey state")
        return real(st, now_ms)

    monkeypatch.setattr(decisions_module, "vector", vector)  # what a worker without a model computes
    survey = {"event_id": "s1", "customer_id": "c1", "ts": format_ts(T0 + 5), "type": "nps", "score": 3,
              "schema_version": 1}
    batch = [message(w, "interactions", login("c1", 1)), message(w, "surveys", survey),
             message(w, "interactions", login("c1", 2)), message(w, "interactions", login("c2", 3))]
    asyncio.run(w.process_batch(batch))
    assert state(w, "c1").applied == {"interactions": 2} and state(w, "c2").applied == {"interactions": 1}
    assert [d["reason"] for d in dead(written)] == ["internal_error"]


def test_null_and_mismatched_keys_are_dead_lettered_and_do_not_block_the_customer(worker):
    w, written = worker
    batch = [message(w, "interactions", login("c1", 1), key=None),
             message(w, "interactions", login("c1", 2), key=b"someone-else"),
             message(w, "interactions", login("c1", 3))]
    asyncio.run(w.process_batch(batch))
    assert state(w, "c1").applied == {"interactions": 1}
    assert sorted(d["reason"] for d in dead(written)) == ["key_mismatch", "missing_key"]


def test_a_resent_event_is_counted_once(worker):
    w, written = worker
    events = [login("c1", i) for i in range(10)]
    asyncio.run(w.process_batch([message(w, "interactions", e) for e in events]))
    asyncio.run(w.process_batch([message(w, "interactions", e) for e in events[3:]]))
    assert state(w, "c1").applied == {"interactions": 10}


def test_writes_go_dead_letters_then_states_and_position_then_alerts(worker):
    w, written = worker
    batch = [message(w, "interactions", b"not json"), message(w, "interactions", login("c1", 1))]
    asyncio.run(w.process_batch(batch))
    kinds = [[t.rsplit(".", 1)[-1] if not t.endswith("changelog") else "changelog" for t, *_ in b] for b in written]
    assert kinds[0] == ["deadletter"]
    assert set(kinds[1]) == {"changelog"}
    keys = [k for _t, k, _v, _p in written[1]]
    assert keys[-1] == POSITION_KEY and b"c1" in keys


def test_too_large_dead_letters_keep_the_first_64_kib_as_base64(worker):
    import base64

    w, written = worker
    big = b'{"x": "' + b"a" * 70_000 + b'"}'
    asyncio.run(w.process_batch([message(w, "interactions", big, key=b"x")]))
    (d,) = dead(written)
    assert d["reason"] == "too_large" and d["original"] is None and d["original_bytes"] == len(big)
    assert base64.b64decode(d["original_b64"]) == big[:65_536]


# ---- the Faust app's cluster settings ---------------------------------------------------------------
def test_the_faust_app_takes_replication_address_and_credentials_from_the_settings(tmp_path):
    settings = Settings.from_env({
        "CHURNWATCH_BROKER": "kafka://127.0.0.1:1", "CHURNWATCH_MODELS_DIR": str(tmp_path / "m"),
        "CHURNWATCH_DATA_DIR": str(tmp_path / "d"), "CHURNWATCH_REPLICATION_FACTOR": "3",
        "CHURNWATCH_WEB_HOST": "0.0.0.0", "CHURNWATCH_WEB_ADVERTISED_HOST": "worker-7.churn", "CHURNWATCH_WEB_PORT": "6100",
        "CHURNWATCH_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "CHURNWATCH_SASL_MECHANISM": "SCRAM-SHA-256",
        "CHURNWATCH_SASL_USERNAME": "svc", "CHURNWATCH_SASL_PASSWORD": "pw"})
    conf = Worker(settings).app.conf
    # Faust creates its own topics (the leader-assignor topic, any table's changelog) with this factor
    assert conf.topic_replication_factor == 3
    assert str(conf.canonical_url) == "http://worker-7.churn:6100" and conf.web_bind == "0.0.0.0"
    creds = conf.broker_credentials
    assert (creds.mechanism.value, creds.username, creds.password, creds.protocol.value) == \
        ("SCRAM-SHA-256", "svc", "pw", "SASL_PLAINTEXT")


def test_an_unresolved_replication_factor_falls_back_to_one(worker):
    w, _ = worker
    assert w.settings.replication_factor is None and w.app.conf.topic_replication_factor == 1
    assert w.app.conf.broker_credentials is None


# ---- the web server's bind and advertised addresses ---------------------------------------------------
def _app_conf(tmp_path: Path, **changes: Any) -> Any:
    settings = Settings.from_env(env={}).with_(broker="kafka://127.0.0.1:1", models_dir=tmp_path / "models",
                                               data_dir=tmp_path / "data", **changes)
    return Worker(settings).app.conf


def test_a_worker_bound_to_all_interfaces_advertises_its_own_hostname(tmp_path, monkeypatch):
    """Scaled compose replicas all bind 0.0.0.0:6066; each must advertise its container hostname, or
    every replica claims every customer (and requests are never forwarded to the owner)."""
    urls = []
    for name in ("3f2a9c1d0b7e", "8e41d2c6a905"):  # two containers' hostnames
        monkeypatch.setattr("socket.gethostname", lambda name=name: name)
        conf = _app_conf(tmp_path, web_host="0.0.0.0", web_port=6066)
        assert conf.web_bind == "0.0.0.0" and conf.web_port == 6066
        assert conf.web_host == name
        assert str(conf.canonical_url) == f"http://{name}:6066"
        urls.append(str(conf.canonical_url))
    assert len(set(urls)) == 2


def test_a_worker_on_one_address_advertises_it_unless_told_another(tmp_path, monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "not-this-one")
    conf = _app_conf(tmp_path, web_host="127.0.0.2", web_port=7010)
    assert (conf.web_bind, conf.web_host, str(conf.canonical_url)) == ("127.0.0.2", "127.0.0.2", "http://127.0.0.2:7010")
    conf = _app_conf(tmp_path, web_host="0.0.0.0", web_port=7010, web_advertised_host="worker-2.churn.svc")
    assert (conf.web_bind, conf.web_host) == ("0.0.0.0", "worker-2.churn.svc")
    assert str(conf.canonical_url) == "http://worker-2.churn.svc:7010"


# ---- the web server's access rules (pipeline.web.webguard on Faust's aiohttp app; real workers: integration) ----
def _web(tmp_path: Path, **changes: Any) -> tuple[Worker, Any]:
    settings = Settings.from_env(env={}).with_(broker="kafka://127.0.0.1:1", models_dir=tmp_path / "models",
                                               data_dir=tmp_path / "data", partitions=2, **changes)
    w = Worker(settings)
    w.detach(lambda records: None)
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

    classes = {p: app_module.web_route_class(p) for p in
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

    w.route_customer = answer  # type: ignore[method-assign]
    bearer = {"Authorization": f"Bearer {token}"}
    worker_key = {"X-Churnwatch-Worker": w.webauth.worker_key}
    statuses = _get(web_app, [("/customers/c1/", {}), ("/customers/c1/", bearer), ("/customers/c1/", worker_key),
                              ("/router/", bearer), ("/router/", worker_key), ("/table/", worker_key),
                              ("/login", {})])
    # no sign-in: 401; a bearer client or another worker: the view answers; Faust's routes for workers only
    assert statuses == [401, 200, 200, 403, 200, 200, 200]


def test_worker_web_refuses_a_public_bind_without_a_guard(tmp_path):
    from pipeline.config.fields import SettingsError

    settings = Settings.from_env(env={}).with_(broker="kafka://127.0.0.1:1", models_dir=tmp_path / "models",
                                               data_dir=tmp_path / "data", web_host="0.0.0.0")
    with pytest.raises(SettingsError, match="refusing to serve the worker web server on '0.0.0.0'"):
        app_module.run_worker(settings)
    assert not (tmp_path / "data").exists()  # refused before anything was started or written


def test_peers_reach_the_worker_web_by_its_advertised_address(tmp_path):
    token = "worker-unit-token-0123456789"
    w, web_app = _web(tmp_path, inbox_token=token, web_host="0.0.0.0", web_advertised_host="worker-7.churn",
                      web_port=6100)
    key = {"X-Churnwatch-Worker": w.webauth.worker_key}
    statuses = _get(web_app, [("/router/", {**key, "Host": "worker-7.churn:6100"}),
                              ("/router/", {**key, "Host": "worker-7.churn:6101"}),
                              ("/router/", {**key, "Host": "worker-8.churn:6100"})])
    assert statuses == [200, 421, 421]
