"""Unit tests for pipeline.settings: environment parsing, overrides and derived names."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, fields
from pathlib import Path

import pytest

from pipeline.settings import ENV_PREFIX, INPUT_SOURCES, Settings, SettingsError


def test_defaults_without_environment():
    s = Settings.from_env({})
    assert s == Settings()
    assert s.broker == "kafka://127.0.0.1:9092" and s.partitions == 4 and s.emit_scores is False


def test_environment_values_are_coerced_to_the_field_types():
    env = {
        "CHURNWATCH_BROKER": "kafka://k1:9093",
        "CHURNWATCH_PARTITIONS": "12",
        "CHURNWATCH_MODELS_DIR": "/srv/models",
        "CHURNWATCH_MAX_FUTURE_S": "60.5",
        "CHURNWATCH_EMIT_SCORES": "true",
        "CHURNWATCH_TOPIC_PREFIX": "acme.",
        "CHURNWATCH_METRICS_PORT": " 9200 ",
    }
    s = Settings.from_env(env)
    assert s.broker == "kafka://k1:9093"
    assert s.partitions == 12 and isinstance(s.partitions, int)
    assert s.models_dir == Path("/srv/models") and isinstance(s.models_dir, Path)
    assert s.max_future_s == 60.5 and isinstance(s.max_future_s, float)
    assert s.emit_scores is True
    assert s.topic_prefix == "acme."
    assert s.metrics_port == 9200


@pytest.mark.parametrize(("raw", "expected"), [
    ("1", True), ("true", True), ("TRUE", True), ("yes", True), ("on", True), (" On ", True),
    ("0", False), ("false", False), ("no", False), ("off", False),
])
def test_bool_parsing(raw, expected):
    assert Settings.from_env({"CHURNWATCH_EMIT_SCORES": raw}).emit_scores is expected


def test_unrecognised_bool_is_an_error():
    with pytest.raises(SettingsError, match="CHURNWATCH_EMIT_SCORES"):
        Settings.from_env({"CHURNWATCH_EMIT_SCORES": "ture"})


def test_empty_variable_means_default():
    assert Settings.from_env({"CHURNWATCH_PARTITIONS": "", "CHURNWATCH_BROKER": ""}) == Settings()


def test_unrelated_variables_are_ignored():
    assert Settings.from_env({"PARTITIONS": "9", "CHURNWATCH_NOT_A_SETTING": "x"}) == Settings()


def test_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("CHURNWATCH_PARTITIONS", "7")
    assert Settings.from_env().partitions == 7


@pytest.mark.parametrize(("name", "raw"), [
    ("PARTITIONS", "four"),
    ("PARTITIONS", "4.0"),
    ("METRICS_PORT", "91o8"),
    ("MAX_FUTURE_S", "a day"),
    ("ALLOWED_LATENESS_DAYS", "3d"),
])
def test_bad_number_names_the_variable(name, raw):
    with pytest.raises(SettingsError) as info:
        Settings.from_env({ENV_PREFIX + name: raw})
    message = str(info.value)
    assert ENV_PREFIX + name in message
    assert repr(raw) in message
    assert "\n" not in message


@pytest.mark.parametrize(("env", "fragment"), [
    ({"CHURNWATCH_PARTITIONS": "0"}, "partitions"),
    ({"CHURNWATCH_METRICS_PORT": "70000"}, "metrics_port"),
    ({"CHURNWATCH_METRICS_PORT": "-1"}, "metrics_port"),
    ({"CHURNWATCH_BROKER": "localhost:9092"}, "broker"),
])
def test_unusable_values_are_rejected(env, fragment):
    with pytest.raises(SettingsError, match=fragment):
        Settings.from_env(env)


def test_metrics_port_zero_means_any_free_port():
    assert Settings.from_env({"CHURNWATCH_METRICS_PORT": "0"}).metrics_port == 0


def test_overrides_win_over_environment():
    env = {"CHURNWATCH_BROKER": "kafka://env:1", "CHURNWATCH_PARTITIONS": "3", "CHURNWATCH_EMIT_SCORES": "1"}
    s = Settings.from_env(env, broker="kafka://flag:2", partitions=8, models_dir=Path("/m"))
    assert (s.broker, s.partitions, s.models_dir) == ("kafka://flag:2", 8, Path("/m"))
    assert s.emit_scores is True  # not overridden: the environment value stays


def test_none_overrides_are_ignored():
    s = Settings.from_env({"CHURNWATCH_PARTITIONS": "3"}, partitions=None, broker=None)
    assert s.partitions == 3 and s.broker == Settings().broker


def test_string_overrides_are_coerced_and_validated():
    s = Settings.from_env({}, partitions="6", models_dir="reg", emit_scores="yes")
    assert (s.partitions, s.models_dir, s.emit_scores) == (6, Path("reg"), True)
    with pytest.raises(SettingsError, match="CHURNWATCH_PARTITIONS"):
        Settings.from_env({}, partitions="six")
    with pytest.raises(SettingsError, match="partitions"):
        Settings.from_env({}, partitions=0)


def test_derived_topic_names():
    s = Settings.from_env({"CHURNWATCH_TOPIC_PREFIX": "acme.churn.", "CHURNWATCH_APP_ID": "cw-eu"})
    assert s.topic("interactions") == "acme.churn.interactions"
    assert s.input_topics == {src: f"acme.churn.{src}" for src in INPUT_SOURCES}
    assert list(s.input_topics) == ["customers", "interactions", "tickets", "surveys", "outcomes"]
    assert (s.alerts_topic, s.deadletter_topic, s.scores_topic) == ("acme.churn.alerts", "acme.churn.deadletter", "acme.churn.scores")
    assert s.changelog_topic == "cw-eu-customer_state-changelog"
    d = Settings()
    assert d.alerts_topic == "churn.alerts" and d.input_topics["tickets"] == "churn.tickets"


@pytest.mark.parametrize(("broker", "servers"), [
    ("kafka://a:1,kafka://b:2", "a:1,b:2"),
    ("kafka://a:1;kafka://b:2", "a:1,b:2"),
    ("kafka://a:1", "a:1"),
    ("kafka://a:1,", "a:1"),
    ("kafka://a:1,b:2", "a:1,b:2"),
])
def test_bootstrap_servers(broker, servers):
    assert Settings(broker=broker).bootstrap_servers == servers


def test_kafka_client_kwargs():
    assert Settings().kafka_client_kwargs() == {"security_protocol": "PLAINTEXT"}
    s = Settings.from_env({"CHURNWATCH_SECURITY_PROTOCOL": "SASL_SSL", "CHURNWATCH_SASL_MECHANISM": "PLAIN",
                           "CHURNWATCH_SASL_USERNAME": "u", "CHURNWATCH_SASL_PASSWORD": "p",
                           "CHURNWATCH_SSL_CAFILE": "/ca.pem"})
    assert s.kafka_client_kwargs() == {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN",
                                       "sasl_plain_username": "u", "sasl_plain_password": "p", "ssl_cafile": "/ca.pem"}


def test_password_is_not_in_repr():
    s = Settings.from_env({"CHURNWATCH_SASL_PASSWORD": "s3cret"})
    assert "s3cret" not in repr(s)


def test_documented_lists_every_field_once():
    doc = Settings.documented()
    assert [env for env, _ in doc] == [ENV_PREFIX + f.name.upper() for f in fields(Settings)]
    assert ("CHURNWATCH_PARTITIONS", "4") in doc and ("CHURNWATCH_BROKER", "kafka://127.0.0.1:9092") in doc


def test_every_documented_variable_is_read():
    """Each variable from ``documented()`` really reaches its field."""
    for env, default in Settings.documented():
        name = env[len(ENV_PREFIX):].lower()
        text = {"broker": "kafka://x:1", "webhook_url": "https://hooks.example/x"}.get(name, "x")
        value = {"str": text, "int": "7", "float": "7.5", "bool": "true"}.get(
            type(getattr(Settings(), name)).__name__, "somewhere")
        s = Settings.from_env({env: value})
        assert str(getattr(s, name)) in (value, "True"), env


def test_with_returns_a_modified_copy():
    s = Settings()
    t = s.with_(partitions=9)
    assert (s.partitions, t.partitions) == (4, 9)
    with pytest.raises(FrozenInstanceError):
        s.partitions = 3  # type: ignore[misc]
