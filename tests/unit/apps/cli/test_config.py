"""Unit tests for apps.cli.config (``churnwatch config``)."""

from __future__ import annotations

from pipeline.config.settings import Settings
from tests.unit.apps.cli.harness import run


def test_config_prints_every_variable_with_effective_value(monkeypatch, capsys):
    monkeypatch.setenv("CHURNWATCH_PARTITIONS", "7")
    code, out, err = run(["config", "--broker", "kafka://flag:1"], capsys)
    assert code == 0 and err == ""
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert list(lines) == [env for env, _ in Settings.documented()]
    assert lines["CHURNWATCH_PARTITIONS"].split()[2] == "7"
    assert "(default 4)" in lines["CHURNWATCH_PARTITIONS"]
    assert lines["CHURNWATCH_BROKER"].split()[2] == "kafka://flag:1"
    assert lines["CHURNWATCH_TOPIC_PREFIX"].split()[2] == "churn."


def test_config_does_not_print_secrets(monkeypatch, capsys):
    for name, value in {"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "PLAIN", "SASL_USERNAME": "svc",
                        "SASL_PASSWORD": "s3cret-pw", "SSL_CERTFILE": "/c.pem", "SSL_KEY_PASSWORD": "s3cret-key",
                        "WEBHOOK_URL": "https://hooks.example/s3cret-hook", "INBOX_TOKEN": "s3cret-inbox-token-16+"}.items():
        monkeypatch.setenv(f"CHURNWATCH_{name}", value)
    code, out, _ = run(["config"], capsys)
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()}
    for name in ("SASL_PASSWORD", "SSL_KEY_PASSWORD", "WEBHOOK_URL", "INBOX_TOKEN"):
        assert lines[f"CHURNWATCH_{name}"].split()[2] == "********"
    assert "s3cret" not in out
    assert lines["CHURNWATCH_SASL_USERNAME"].split()[2] == "svc"
    assert lines["CHURNWATCH_SECURITY_PROTOCOL"].split()[2] == "SASL_SSL"
