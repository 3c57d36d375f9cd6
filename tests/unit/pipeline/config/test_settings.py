"""Unit tests for pipeline.config.settings: environment parsing, validation, overrides and derived names."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from pipeline.config.fields import ENV_PREFIX, LogFormat, LogLevel, SaslMechanism, SecurityProtocol, SettingsError
from pipeline.config.settings import INPUT_SOURCES, Settings

SASL_PLAIN = {"CHURNWATCH_SECURITY_PROTOCOL": "SASL_SSL", "CHURNWATCH_SASL_MECHANISM": "PLAIN",
              "CHURNWATCH_SASL_USERNAME": "u", "CHURNWATCH_SASL_PASSWORD": "p"}


def error_of(env=None, **overrides) -> str:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env or {}, **overrides)
    message = str(info.value)
    assert "\n" not in message and message == " ".join(message.split())
    return message


def test_defaults_without_environment():
    s = Settings.from_env({})
    assert s == Settings()
    assert s.broker == "kafka://127.0.0.1:9092" and s.partitions == 4 and s.emit_scores is False
    assert s.security_protocol is SecurityProtocol.PLAINTEXT and s.sasl_mechanism is None
    assert s.replication_factor is None and s.min_insync_replicas is None
    assert s.log_level is LogLevel.WARNING and s.log_format is LogFormat.TEXT
    assert s.connect_timeout_s == 10.0 and s.ssl_check_hostname is True


def test_environment_values_are_coerced_to_the_field_types():
    env = {
        "CHURNWATCH_BROKER": "kafka://k1:9093",
        "CHURNWATCH_PARTITIONS": "12",
        "CHURNWATCH_MODELS_DIR": "/srv/models",
        "CHURNWATCH_MAX_FUTURE_S": "60.5",
        "CHURNWATCH_EMIT_SCORES": "true",
        "CHURNWATCH_TOPIC_PREFIX": "acme.",
        "CHURNWATCH_METRICS_PORT": " 9200 ",
        "CHURNWATCH_REPLICATION_FACTOR": "3",
        "CHURNWATCH_MIN_INSYNC_REPLICAS": "2",
    }
    s = Settings.from_env(env)
    assert s.broker == "kafka://k1:9093"
    assert s.partitions == 12 and isinstance(s.partitions, int)
    assert s.models_dir == Path("/srv/models") and isinstance(s.models_dir, Path)
    assert s.max_future_s == 60.5 and isinstance(s.max_future_s, float)
    assert s.emit_scores is True
    assert s.topic_prefix == "acme."
    assert s.metrics_port == 9200
    assert (s.replication_factor, s.min_insync_replicas) == (3, 2)


@pytest.mark.parametrize(("raw", "expected"), [
    ("1", True), ("true", True), ("TRUE", True), ("yes", True), ("on", True), (" On ", True),
    ("0", False), ("false", False), ("no", False), ("off", False),
])
def test_bool_parsing(raw, expected):
    assert Settings.from_env({"CHURNWATCH_EMIT_SCORES": raw}).emit_scores is expected


def test_unrecognised_bool_is_an_error():
    assert error_of({"CHURNWATCH_EMIT_SCORES": "ture"}) == \
        "CHURNWATCH_EMIT_SCORES: must be 1/0, true/false, yes/no or on/off, got 'ture'"


def test_empty_variable_means_default():
    assert Settings.from_env({"CHURNWATCH_PARTITIONS": "", "CHURNWATCH_BROKER": "",
                              "CHURNWATCH_SASL_MECHANISM": "", "CHURNWATCH_REPLICATION_FACTOR": ""}) == Settings()


def test_unprefixed_variables_are_ignored():
    assert Settings.from_env({"PARTITIONS": "9", "KAFKA_BROKER": "x", "PATH": "/bin"}) == Settings()


def test_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("CHURNWATCH_PARTITIONS", "7")
    assert Settings.from_env().partitions == 7


def test_settings_constructed_directly_ignore_the_environment(monkeypatch):
    monkeypatch.setenv("CHURNWATCH_PARTITIONS", "7")
    assert Settings().partitions == 4 and Settings(partitions=5).partitions == 5


@pytest.mark.parametrize(("name", "raw"), [
    ("PARTITIONS", "four"),
    ("PARTITIONS", "4.0"),
    ("METRICS_PORT", "91o8"),
    ("MAX_FUTURE_S", "a day"),
    ("ALLOWED_LATENESS_DAYS", "3d"),
    ("REPLICATION_FACTOR", "three"),
])
def test_bad_number_names_the_variable(name, raw):
    message = error_of({ENV_PREFIX + name: raw})
    assert message.startswith(ENV_PREFIX + name + ": must be ")
    assert message.endswith(f"got {raw!r}")


# ---- defect: out-of-range and unknown values used to be accepted ----------------------------------
@pytest.mark.parametrize(("env", "message"), [
    ({"CHURNWATCH_METRICS_PORT": "99999"}, "CHURNWATCH_METRICS_PORT: must be 0..65535 (0: any free port), got 99999"),
    ({"CHURNWATCH_METRICS_PORT": "-1"}, "CHURNWATCH_METRICS_PORT: must be 0..65535 (0: any free port), got -1"),
    ({"CHURNWATCH_WEB_PORT": "99999"}, "CHURNWATCH_WEB_PORT: must be 1..65535, got 99999"),
    ({"CHURNWATCH_WEB_PORT": "0"}, "CHURNWATCH_WEB_PORT: must be 1..65535, got 0"),
    ({"CHURNWATCH_LOG_LEVEL": "LOUD"},
     "CHURNWATCH_LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'LOUD'"),
    ({"CHURNWATCH_LOG_FORMAT": "xml"}, "CHURNWATCH_LOG_FORMAT: must be one of text, json, got 'xml'"),
    ({"CHURNWATCH_MODEL_POLL_S": "-1"}, "CHURNWATCH_MODEL_POLL_S: must be > 0, got -1"),
    ({"CHURNWATCH_MODEL_POLL_S": "0"}, "CHURNWATCH_MODEL_POLL_S: must be > 0, got 0"),
    ({"CHURNWATCH_MODEL_POLL_S": "inf"}, "CHURNWATCH_MODEL_POLL_S: must be a finite number, got 'inf'"),
    ({"CHURNWATCH_CONNECT_TIMEOUT_S": "0"}, "CHURNWATCH_CONNECT_TIMEOUT_S: must be > 0, got 0"),
    ({"CHURNWATCH_WEBHOOK_BACKOFF_S": "-0.5"},
     "CHURNWATCH_WEBHOOK_BACKOFF_S: must be >= 0 (0: retry at once), got -0.5"),
    ({"CHURNWATCH_SECURITY_PROTOCOL": "TLS-PLEASE"},
     "CHURNWATCH_SECURITY_PROTOCOL: must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL, got 'TLS-PLEASE'"),
    ({"CHURNWATCH_SECURITY_PROTOCOL": "TLS"},
     "CHURNWATCH_SECURITY_PROTOCOL: must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL, got 'TLS'"),
    ({**SASL_PLAIN, "CHURNWATCH_SASL_MECHANISM": "GSSAPI"},
     "CHURNWATCH_SASL_MECHANISM: must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, got 'GSSAPI'"),
    ({"CHURNWATCH_PARTITIONS": "0"}, "CHURNWATCH_PARTITIONS: must be 1..10000, got 0"),
    ({"CHURNWATCH_REPLICATION_FACTOR": "0"}, "CHURNWATCH_REPLICATION_FACTOR: must be 1..32767, got 0"),
    ({"CHURNWATCH_MIN_INSYNC_REPLICAS": "0"}, "CHURNWATCH_MIN_INSYNC_REPLICAS: must be 1..32767, got 0"),
    ({"CHURNWATCH_ALLOWED_LATENESS_DAYS": "0"}, "CHURNWATCH_ALLOWED_LATENESS_DAYS: must be 1..3650, got 0"),
    ({"CHURNWATCH_BROKER": "localhost:9092"},
     "CHURNWATCH_BROKER: must look like kafka://host:port[,kafka://host:port], got 'localhost:9092'"),
    ({"CHURNWATCH_BROKER": "kafka://a:99999"}, "CHURNWATCH_BROKER: port of a:99999 must be 1..65535, got 'kafka://a:99999'"),
    ({"CHURNWATCH_BROKER": "kafka://127.0.0.1:abc"},
     "CHURNWATCH_BROKER: port of 127.0.0.1:abc is not a number (a port is 1..65535), got 'kafka://127.0.0.1:abc'"),
    ({"CHURNWATCH_BROKER": "kafka://[::1]:9o92"},
     "CHURNWATCH_BROKER: port of [::1]:9o92 is not a number (a port is 1..65535), got 'kafka://[::1]:9o92'"),
    ({"CHURNWATCH_BROKER": "http://a:1"},
     "CHURNWATCH_BROKER: must look like kafka://host:port[,kafka://host:port], got 'http://a:1'"),
    ({"CHURNWATCH_APP_ID": " "}, "CHURNWATCH_APP_ID: must not be empty"),
    ({"CHURNWATCH_TRUSTED_USER_HEADER": "X Forwarded User"},
     "CHURNWATCH_TRUSTED_USER_HEADER: must be an HTTP header name such as X-Forwarded-User, got 'X Forwarded User'"),
    ({"CHURNWATCH_TRUSTED_USER_HEADER": "Authorization"},  # a header the request needs for itself
     "CHURNWATCH_TRUSTED_USER_HEADER: must be an HTTP header name such as X-Forwarded-User, got 'Authorization'"),
    ({"CHURNWATCH_TRUSTED_USER_HEADER": "x-churnwatch-csrf"},
     "CHURNWATCH_TRUSTED_USER_HEADER: must be an HTTP header name such as X-Forwarded-User, got 'x-churnwatch-csrf'"),
    ({"CHURNWATCH_ALLOWED_HOSTS": "ok.example.com,https://bad.example.com"},
     "CHURNWATCH_ALLOWED_HOSTS: must be comma-separated host or host:port values, got 'https://bad.example.com'"),
    ({"CHURNWATCH_ALLOWED_HOSTS": "ok.example.com,-bad.example.com"},
     "CHURNWATCH_ALLOWED_HOSTS: must be comma-separated host or host:port values, got '-bad.example.com'"),
    ({"CHURNWATCH_ALLOWED_HOSTS": "ok.example.com:0"},
     "CHURNWATCH_ALLOWED_HOSTS: must be comma-separated host or host:port values, got 'ok.example.com:0'"),
    ({"CHURNWATCH_INBOX_TOKEN": "short-s3cret"}, "CHURNWATCH_INBOX_TOKEN: must be at least 16 printable ASCII "
     "characters without spaces (value not shown: it is a secret)"),
    ({"CHURNWATCH_INBOX_TOKEN": " s3cret-with-spaces-around "}, "CHURNWATCH_INBOX_TOKEN: must be at least 16 "
     "printable ASCII characters without spaces (value not shown: it is a secret)"),
    ({"CHURNWATCH_WEB_ADVERTISED_HOST": "0.0.0.0"},
     "CHURNWATCH_WEB_ADVERTISED_HOST: must be a host name or address other workers can connect to, got '0.0.0.0'"),
    ({"CHURNWATCH_WEB_ADVERTISED_HOST": "w1:6066"},
     "CHURNWATCH_WEB_ADVERTISED_HOST: must be a host name or address other workers can connect to, got 'w1:6066'"),
])
def test_unusable_values_are_rejected_with_one_line_naming_the_variable(env, message):
    assert error_of(env) == message


@pytest.mark.parametrize(("raw", "expected"), [
    ("SASL_SSL", SecurityProtocol.SASL_SSL), ("sasl_ssl", SecurityProtocol.SASL_SSL),
    (" Sasl_Ssl ", SecurityProtocol.SASL_SSL), ("ssl", SecurityProtocol.SSL), ("plaintext", SecurityProtocol.PLAINTEXT),
])
def test_security_protocol_is_case_insensitive_and_normalised(raw, expected):
    env = {"CHURNWATCH_SECURITY_PROTOCOL": raw}
    if expected.uses_sasl:
        env.update({k: v for k, v in SASL_PLAIN.items() if k != "CHURNWATCH_SECURITY_PROTOCOL"})
    s = Settings.from_env(env)
    assert s.security_protocol is expected and f"{s.security_protocol}" == expected.value


@pytest.mark.parametrize(("raw", "expected"), [
    ("scram-sha-256", SaslMechanism.SCRAM_SHA_256), ("SCRAM_SHA_512", SaslMechanism.SCRAM_SHA_512),
    ("plain", SaslMechanism.PLAIN),
])
def test_sasl_mechanism_is_case_insensitive(raw, expected):
    assert Settings.from_env({**SASL_PLAIN, "CHURNWATCH_SASL_MECHANISM": raw}).sasl_mechanism is expected


def test_log_level_and_format_are_case_insensitive():
    s = Settings.from_env({"CHURNWATCH_LOG_LEVEL": "info", "CHURNWATCH_LOG_FORMAT": "JSON"})
    assert s.log_level is LogLevel.INFO and s.log_format is LogFormat.JSON
    assert s.log_level.lower() == "info"  # run_worker maps it onto Faust's names this way


def test_zero_is_accepted_where_it_means_something():
    s = Settings.from_env({"CHURNWATCH_METRICS_PORT": "0", "CHURNWATCH_BEHAVIOUR_LAG_S": "0",
                           "CHURNWATCH_WEBHOOK_BACKOFF_S": "0"})
    assert (s.metrics_port, s.behaviour_lag_s, s.webhook_backoff_s) == (0, 0.0, 0.0)


# ---- combinations --------------------------------------------------------------------------------
@pytest.mark.parametrize(("env", "message"), [
    ({"CHURNWATCH_SECURITY_PROTOCOL": "SASL_SSL"},
     "CHURNWATCH_SASL_MECHANISM: CHURNWATCH_SECURITY_PROTOCOL=SASL_SSL needs one of PLAIN, SCRAM-SHA-256, "
     "SCRAM-SHA-512, OAUTHBEARER"),
    ({"CHURNWATCH_SASL_MECHANISM": "PLAIN"},
     "CHURNWATCH_SASL_MECHANISM: is set but CHURNWATCH_SECURITY_PROTOCOL=PLAINTEXT does not use SASL "
     "(SASL_PLAINTEXT or SASL_SSL)"),
    ({"CHURNWATCH_SASL_PASSWORD": "p"},
     "CHURNWATCH_SASL_PASSWORD: is set but CHURNWATCH_SECURITY_PROTOCOL=PLAINTEXT does not use SASL "
     "(SASL_PLAINTEXT or SASL_SSL)"),
    ({"CHURNWATCH_SSL_CAFILE": "/ca.pem"},
     "CHURNWATCH_SSL_CAFILE: is set but CHURNWATCH_SECURITY_PROTOCOL=PLAINTEXT does not use TLS (SSL or SASL_SSL)"),
    ({**SASL_PLAIN, "CHURNWATCH_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "CHURNWATCH_SSL_CERTFILE": "/c.pem"},
     "CHURNWATCH_SSL_CERTFILE: is set but CHURNWATCH_SECURITY_PROTOCOL=SASL_PLAINTEXT does not use TLS "
     "(SSL or SASL_SSL)"),
    ({"CHURNWATCH_SECURITY_PROTOCOL": "SSL", "CHURNWATCH_SSL_KEYFILE": "/k.pem"},
     "CHURNWATCH_SSL_KEYFILE: needs CHURNWATCH_SSL_CERTFILE (the client certificate)"),
    ({"CHURNWATCH_SECURITY_PROTOCOL": "SSL", "CHURNWATCH_SSL_KEY_PASSWORD": "pw"},
     "CHURNWATCH_SSL_KEY_PASSWORD: is set but there is no client key (CHURNWATCH_SSL_CERTFILE, CHURNWATCH_SSL_KEYFILE)"),
    ({**SASL_PLAIN, "CHURNWATCH_SASL_PASSWORD": ""},
     "CHURNWATCH_SASL_MECHANISM=PLAIN needs CHURNWATCH_SASL_USERNAME and CHURNWATCH_SASL_PASSWORD"),
    ({**SASL_PLAIN, "CHURNWATCH_SASL_MECHANISM": "SCRAM-SHA-512", "CHURNWATCH_SASL_USERNAME": ""},
     "CHURNWATCH_SASL_MECHANISM=SCRAM-SHA-512 needs CHURNWATCH_SASL_USERNAME and CHURNWATCH_SASL_PASSWORD"),
    ({"CHURNWATCH_SECURITY_PROTOCOL": "SASL_SSL", "CHURNWATCH_SASL_MECHANISM": "OAUTHBEARER"},
     "CHURNWATCH_SASL_MECHANISM=OAUTHBEARER needs CHURNWATCH_SASL_OAUTH_TOKEN_FILE"),
    ({**SASL_PLAIN, "CHURNWATCH_SASL_OAUTH_TOKEN_FILE": "/t"},
     "CHURNWATCH_SASL_OAUTH_TOKEN_FILE: is only used with CHURNWATCH_SASL_MECHANISM=OAUTHBEARER"),
    ({"CHURNWATCH_REPLICATION_FACTOR": "1", "CHURNWATCH_MIN_INSYNC_REPLICAS": "2"},
     "CHURNWATCH_MIN_INSYNC_REPLICAS: 2 is more than CHURNWATCH_REPLICATION_FACTOR 1 (acks=all writes would all fail)"),
    ({"CHURNWATCH_HEARTBEAT_S": "10"},
     "CHURNWATCH_HEARTBEAT_S: must be below CHURNWATCH_SESSION_TIMEOUT_S (10 >= 10)"),
])
def test_settings_that_do_not_work_together_are_rejected(env, message):
    assert error_of(env) == message


def test_complete_security_blocks_are_accepted():
    ssl = Settings.from_env({"CHURNWATCH_SECURITY_PROTOCOL": "SSL", "CHURNWATCH_SSL_CAFILE": "/ca.pem",
                             "CHURNWATCH_SSL_CERTFILE": "/c.pem", "CHURNWATCH_SSL_KEYFILE": "/k.pem",
                             "CHURNWATCH_SSL_KEY_PASSWORD": "kp", "CHURNWATCH_SSL_CHECK_HOSTNAME": "0"})
    assert ssl.ssl_check_hostname is False and ssl.ssl_key_password.get_secret_value() == "kp"
    oauth = Settings.from_env({"CHURNWATCH_SECURITY_PROTOCOL": "sasl_ssl", "CHURNWATCH_SASL_MECHANISM": "oauthbearer",
                               "CHURNWATCH_SASL_OAUTH_TOKEN_FILE": "/run/token"})
    assert oauth.sasl_mechanism is SaslMechanism.OAUTHBEARER and oauth.sasl_oauth_token_file == "/run/token"


# ---- secrets -------------------------------------------------------------------------------------
SECRETS = {**SASL_PLAIN, "CHURNWATCH_SASL_PASSWORD": "s3cret-sasl", "CHURNWATCH_SSL_CERTFILE": "/c.pem",
           "CHURNWATCH_SSL_KEY_PASSWORD": "s3cret-key", "CHURNWATCH_WEBHOOK_URL": "https://hooks.example/s3cret-hook",
           "CHURNWATCH_INBOX_TOKEN": "s3cret-inbox-token-16+"}


def test_secrets_are_secret_strings_masked_in_repr_and_str():
    s = Settings.from_env(SECRETS)
    for name in ("sasl_password", "ssl_key_password", "webhook_url", "inbox_token"):
        assert isinstance(getattr(s, name), SecretStr) and Settings.is_secret(name)
        assert s.shown(name) == "********"
    assert "s3cret" not in repr(s) and "s3cret" not in str(s)
    assert s.sasl_password.get_secret_value() == "s3cret-sasl"
    assert Settings().shown("sasl_password") == ""  # unset: nothing to mask


def test_an_invalid_secret_is_never_quoted():
    message = error_of({"CHURNWATCH_WEBHOOK_URL": "ftp://hooks.example/s3cret"})
    assert message == "CHURNWATCH_WEBHOOK_URL: must look like https://host/path (value not shown: it is a secret)"
    with pytest.raises(ValidationError) as info:  # even pydantic's own message, for direct construction
        Settings(webhook_url="ftp://hooks.example/s3cret")
    assert "s3cret" not in str(info.value)


def test_to_env_rebuilds_the_same_settings_secrets_included():
    s = Settings.from_env({**SECRETS, "CHURNWATCH_REPLICATION_FACTOR": "3", "CHURNWATCH_PARTITIONS": "6"})
    env = s.to_env()
    assert set(env) == {name for name, _ in Settings.documented()}
    assert env["CHURNWATCH_SASL_PASSWORD"] == "s3cret-sasl" and env["CHURNWATCH_MIN_INSYNC_REPLICAS"] == ""
    assert Settings.from_env(env) == s
    assert Settings.from_env(Settings().to_env()) == Settings()


# ---- overrides (CLI flags) -------------------------------------------------------------------------
def test_overrides_win_over_environment():
    env = {"CHURNWATCH_BROKER": "kafka://env:1", "CHURNWATCH_PARTITIONS": "3", "CHURNWATCH_EMIT_SCORES": "1"}
    s = Settings.from_env(env, broker="kafka://flag:2", partitions=8, models_dir=Path("/m"))
    assert (s.broker, s.partitions, s.models_dir) == ("kafka://flag:2", 8, Path("/m"))
    assert s.emit_scores is True  # not overridden: the environment value stays


def test_none_overrides_are_ignored():
    s = Settings.from_env({"CHURNWATCH_PARTITIONS": "3"}, partitions=None, broker=None)
    assert s.partitions == 3 and s.broker == Settings().broker


def test_string_overrides_are_coerced_and_validated():
    s = Settings.from_env({}, partitions="6", models_dir="reg", emit_scores="yes", log_level="debug")
    assert (s.partitions, s.models_dir, s.emit_scores, s.log_level) == (6, Path("reg"), True, LogLevel.DEBUG)
    assert error_of(partitions="six") == "CHURNWATCH_PARTITIONS (--partitions): must be an integer, got 'six'"
    assert error_of(partitions=0) == "CHURNWATCH_PARTITIONS (--partitions): must be 1..10000, got 0"
    assert error_of(metrics_port=99999) == \
        "CHURNWATCH_METRICS_PORT (--metrics-port): must be 0..65535 (0: any free port), got 99999"


def test_unknown_override_is_refused():
    assert error_of(partitons=3) == "unknown setting 'partitons'"


def test_with_returns_a_validated_modified_copy():
    s = Settings()
    t = s.with_(partitions=9)
    assert (s.partitions, t.partitions) == (4, 9)
    with pytest.raises(ValidationError):
        s.partitions = 3  # type: ignore[misc]  # frozen
    with pytest.raises(SettingsError, match=r"^CHURNWATCH_WEB_PORT: must be 1\.\.65535, got 70000$"):
        s.with_(web_port=70000)
    with pytest.raises(SettingsError, match="unknown setting"):
        s.with_(nope=1)
    env_made = Settings.from_env({"CHURNWATCH_PARTITIONS": "3", "CHURNWATCH_APP_ID": "x"})
    assert env_made.with_(topic_prefix="p.") == Settings(partitions=3, app_id="x", topic_prefix="p.")


# ---- derived values ------------------------------------------------------------------------------
def test_derived_topic_names():
    s = Settings.from_env({"CHURNWATCH_TOPIC_PREFIX": "acme.churn.", "CHURNWATCH_APP_ID": "cw-eu"})
    assert s.topic("interactions") == "acme.churn.interactions"
    assert s.input_topics == {src: f"acme.churn.{src}" for src in INPUT_SOURCES}
    assert list(s.input_topics) == ["customers", "interactions", "tickets", "surveys", "outcomes"]
    assert (s.alerts_topic, s.deadletter_topic, s.scores_topic) == ("acme.churn.alerts", "acme.churn.deadletter", "acme.churn.scores")
    assert s.changelog_topic == "cw-eu-customer_state-changelog"
    assert s.assignor_topic == "cw-eu-__assignor-__leader"
    d = Settings()
    assert d.alerts_topic == "churn.alerts" and d.input_topics["tickets"] == "churn.tickets"


@pytest.mark.parametrize(("broker", "servers"), [
    ("kafka://a:1,kafka://b:2", "a:1,b:2"),
    ("kafka://a:1;kafka://b:2", "a:1,b:2"),
    ("kafka://a:1", "a:1"),
    ("kafka://a:1,", "a:1"),
    ("kafka://a:1,b:2", "a:1,b:2"),
    ("kafka://a:1, kafka://b:2", "a:1,b:2"),
    ("kafka://[::1]:9092", "[::1]:9092"),
])
def test_bootstrap_servers(broker, servers):
    assert Settings(broker=broker).bootstrap_servers == servers


def test_web_advertised_url():
    assert Settings().web_advertised_url == "http://127.0.0.1:6066"
    assert Settings(web_host="10.1.2.3", web_port=7000).web_advertised_url == "http://10.1.2.3:7000"
    # bound to every interface: other workers reach it by this machine's (container's) name
    assert Settings(web_host="0.0.0.0").web_advertised_url == f"http://{socket.gethostname()}:6066"
    assert Settings(web_host="0.0.0.0", web_advertised_host="worker-2.churn").web_advertised_url == \
        "http://worker-2.churn:6066"


def test_allowed_hosts_are_parsed():
    assert Settings().allowed_host_list == ()
    s = Settings.from_env({"CHURNWATCH_ALLOWED_HOSTS": " Inbox.Example.com, localhost:8088,,[::1]:8088 "})
    assert s.allowed_host_list == ("inbox.example.com", "localhost:8088", "[::1]:8088")


def test_inbox_fields():
    s = Settings.from_env({"CHURNWATCH_TRUSTED_USER_HEADER": "X-Forwarded-User",
                           "CHURNWATCH_INBOX_TOKEN": "tok-0123456789abcdef"})
    assert s.trusted_user_header == "X-Forwarded-User"
    assert s.inbox_token.get_secret_value() == "tok-0123456789abcdef"
    assert Settings().inbox_token.get_secret_value() == ""
    # secrets are taken as given, never trimmed: a token with spaces around it is refused, not mended
    assert "CHURNWATCH_INBOX_TOKEN" in error_of({"CHURNWATCH_INBOX_TOKEN": " tok-0123456789abcdef "})


# ---- documentation -------------------------------------------------------------------------------
def test_documented_lists_every_field_once():
    doc = Settings.documented()
    assert [env for env, _ in doc] == [ENV_PREFIX + name.upper() for name in Settings.model_fields]
    assert ("CHURNWATCH_PARTITIONS", "4") in doc and ("CHURNWATCH_BROKER", "kafka://127.0.0.1:9092") in doc
    assert ("CHURNWATCH_REPLICATION_FACTOR", "") in doc and ("CHURNWATCH_SASL_PASSWORD", "") in doc


_SAMPLES = {"broker": "kafka://x:1", "webhook_url": "https://hooks.example/x", "web_port": "7", "metrics_port": "7",
            "security_protocol": "SSL", "log_level": "ERROR", "log_format": "json", "state_store": "memory", "min_event_year": "2007",
            "trusted_user_header": "X-User", "allowed_hosts": "x", "web_advertised_host": "x", "heartbeat_s": "0.5",
            "inbox_token": "x" * 16}


def test_every_documented_variable_is_read():
    """Each variable from ``documented()`` really reaches its field (on its own, or with the settings it
    needs beside it)."""
    needs = {"ssl_": {"CHURNWATCH_SECURITY_PROTOCOL": "SSL", "CHURNWATCH_SSL_CERTFILE": "c"},
             "sasl_": {**SASL_PLAIN}, "sasl_oauth": {"CHURNWATCH_SECURITY_PROTOCOL": "SASL_SSL",
                                                     "CHURNWATCH_SASL_MECHANISM": "OAUTHBEARER"}}
    for env, default in Settings.documented():
        name = env[len(ENV_PREFIX):].lower()
        kind = type(getattr(Settings(), name)).__name__
        value = _SAMPLES.get(name) or {"str": "x", "int": "7", "float": "7.5", "bool": "0" if default == "1" else "1",
                                       "PosixPath": "somewhere", "SecretStr": "x"}.get(kind, "7")
        context = next((v for k, v in sorted(needs.items(), key=lambda kv: -len(kv[0])) if name.startswith(k)), {})
        if name == "sasl_mechanism":
            value = "SCRAM-SHA-256"
        if name == "sasl_oauth_token_file":
            context = needs["sasl_oauth"]
        if name in ("sasl_username", "sasl_password"):
            context = {k: v for k, v in SASL_PLAIN.items() if k != env}
        if name == "min_insync_replicas":
            context = {"CHURNWATCH_REPLICATION_FACTOR": "7"}
        s = Settings.from_env({**context, env: value})
        assert s.to_env()[env] in (value, value.upper(), value.lower()), env


@pytest.mark.parametrize(("env", "url"), [
    ({}, "http://127.0.0.1:6066"),
    ({"CHURNWATCH_WEB_HOST": "127.0.0.3", "CHURNWATCH_WEB_PORT": "7001"}, "http://127.0.0.3:7001"),
    ({"CHURNWATCH_WEB_HOST": "0.0.0.0"}, "http://replica-7f3a:6066"),
    ({"CHURNWATCH_WEB_HOST": "::"}, "http://replica-7f3a:6066"),
    ({"CHURNWATCH_WEB_HOST": "0.0.0.0", "CHURNWATCH_WEB_ADVERTISED_HOST": "w1.internal"}, "http://w1.internal:6066"),
    ({"CHURNWATCH_WEB_ADVERTISED_HOST": "fd00::7"}, "http://[fd00::7]:6066"),
])
def test_the_advertised_web_url_is_the_bind_address_unless_that_is_a_wildcard(env, url, monkeypatch):
    """A wildcard bind advertises the machine's hostname (a container's own), so scaled replicas differ."""
    monkeypatch.setattr("socket.gethostname", lambda: "replica-7f3a")
    assert Settings.from_env(env).web_advertised_url == url


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", "worker:6066", "http://worker", "a b", "w/1"])
def test_an_advertised_host_others_cannot_reach_is_rejected(host):
    with pytest.raises(SettingsError, match="WEB_ADVERTISED_HOST") as info:
        Settings.from_env({"CHURNWATCH_WEB_ADVERTISED_HOST": host})
    assert "\n" not in str(info.value)
