"""The worker's Faust app without a broker: its cluster settings, and the web server's bind and advertised
addresses, all taken from the settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("faust")

from pipeline.config.settings import Settings  # noqa: E402
from pipeline.worker.app import WorkerApp  # noqa: E402


# ---- the Faust app's cluster settings ---------------------------------------------------------------
def test_the_consumer_waits_for_a_fetch_as_long_as_the_settings_say_not_faust_s_fixed_1500_ms(tmp_path):
    import asyncio

    settings = Settings.from_env({"CHURNWATCH_BROKER": "kafka://127.0.0.1:1", "CHURNWATCH_MODELS_DIR": str(tmp_path / "m"),
                                  "CHURNWATCH_DATA_DIR": str(tmp_path / "d"), "CHURNWATCH_FETCH_MAX_WAIT_MS": "37"})
    consumer = WorkerApp(settings).app.consumer

    async def client_wait() -> int:
        client = consumer._thread._create_worker_consumer(consumer.transport)
        return client._fetch_max_wait_ms

    assert asyncio.run(client_wait()) == 37


def test_the_faust_app_takes_replication_address_and_credentials_from_the_settings(tmp_path):
    settings = Settings.from_env({
        "CHURNWATCH_BROKER": "kafka://127.0.0.1:1", "CHURNWATCH_MODELS_DIR": str(tmp_path / "m"),
        "CHURNWATCH_DATA_DIR": str(tmp_path / "d"), "CHURNWATCH_REPLICATION_FACTOR": "3",
        "CHURNWATCH_WEB_HOST": "0.0.0.0", "CHURNWATCH_WEB_ADVERTISED_HOST": "worker-7.churn", "CHURNWATCH_WEB_PORT": "6100",
        "CHURNWATCH_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "CHURNWATCH_SASL_MECHANISM": "SCRAM-SHA-256",
        "CHURNWATCH_SASL_USERNAME": "svc", "CHURNWATCH_SASL_PASSWORD": "pw"})
    conf = WorkerApp(settings).app.conf
    # Faust creates its own topics (the leader-assignor topic, any table's changelog) with this factor
    assert conf.topic_replication_factor == 3
    assert str(conf.canonical_url) == "http://worker-7.churn:6100" and conf.web_bind == "0.0.0.0"
    creds = conf.broker_credentials
    assert (creds.mechanism.value, creds.username, creds.password, creds.protocol.value) == \
        ("SCRAM-SHA-256", "svc", "pw", "SASL_PLAINTEXT")


def test_an_unresolved_replication_factor_falls_back_to_one(tmp_path):
    settings = Settings.from_env(env={}).with_(broker="kafka://127.0.0.1:1", models_dir=tmp_path / "models",
                                               data_dir=tmp_path / "data", partitions=2)
    w = WorkerApp(settings)
    assert w.settings.replication_factor is None and w.app.conf.topic_replication_factor == 1
    assert w.app.conf.broker_credentials is None


# ---- the web server's bind and advertised addresses ---------------------------------------------------
def _app_conf(tmp_path: Path, **changes: Any) -> Any:
    settings = Settings.from_env(env={}).with_(broker="kafka://127.0.0.1:1", models_dir=tmp_path / "models",
                                               data_dir=tmp_path / "data", **changes)
    return WorkerApp(settings).app.conf


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
