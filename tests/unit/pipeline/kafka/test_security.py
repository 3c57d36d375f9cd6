"""Unit tests for pipeline.kafka.security: the Kafka security block mapped onto kafka-python, aiokafka and Faust.

The TLS files in ``tls/`` are a throw-away test CA, a server certificate for 127.0.0.1 (with its key) and
a client certificate whose key is encrypted with the password ``test-key-pw``; they secure nothing.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from pipeline.config.fields import SettingsError
from pipeline.config.settings import Settings
from pipeline.kafka import security

TLS = Path(__file__).parent / "tls"
CA, CLIENT_CERT, CLIENT_KEY = str(TLS / "ca.pem"), str(TLS / "client.pem"), str(TLS / "client.key")
KEY_PASSWORD = "test-key-pw"


def settings(**env: str) -> Settings:
    return Settings.from_env({f"CHURNWATCH_{k.upper()}": v for k, v in env.items()})


def ssl_settings(**extra: str) -> Settings:
    return settings(security_protocol="SSL", ssl_cafile=CA, **extra)


def scram(protocol: str = "SASL_SSL") -> Settings:
    extra = {"ssl_cafile": CA} if "SSL" in protocol.split("_")[-1] else {}
    return settings(security_protocol=protocol, sasl_mechanism="SCRAM-SHA-512", sasl_username="svc",
                    sasl_password="pw-123", **extra)


def oauth(token_file: Path, protocol: str = "SASL_SSL") -> Settings:
    return settings(security_protocol=protocol, sasl_mechanism="OAUTHBEARER", sasl_oauth_token_file=str(token_file))


# ---- TLS context ------------------------------------------------------------------------------------
def test_no_tls_context_without_tls():
    assert security.ssl_context(Settings()) is None
    assert security.ssl_context(scram("SASL_PLAINTEXT")) is None


def test_tls_context_trusts_the_given_ca_and_checks_host_names():
    ctx = security.ssl_context(ssl_settings())
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname is True
    assert any(c.get("subject") == ((("commonName", "churnwatch test CA"),),) for c in ctx.get_ca_certs())
    relaxed = security.ssl_context(ssl_settings(ssl_check_hostname="0"))
    assert relaxed.check_hostname is False and relaxed.verify_mode == ssl.CERT_REQUIRED  # still verifies the CA


def test_tls_context_loads_a_client_certificate_with_an_encrypted_key():
    ctx = security.ssl_context(ssl_settings(ssl_certfile=CLIENT_CERT, ssl_keyfile=CLIENT_KEY,
                                            ssl_key_password=KEY_PASSWORD))
    assert isinstance(ctx, ssl.SSLContext)


@pytest.mark.parametrize(("extra", "fragment"), [
    ({"ssl_cafile": "/nonexistent/ca.pem"}, "CHURNWATCH_SSL_CAFILE: cannot use /nonexistent/ca.pem: No such file"),
    ({"ssl_cafile": CLIENT_KEY}, "CHURNWATCH_SSL_CAFILE: cannot use"),
    ({"ssl_certfile": CLIENT_CERT, "ssl_keyfile": CLIENT_KEY, "ssl_key_password": "wrong"},
     "CHURNWATCH_SSL_CERTFILE/CHURNWATCH_SSL_KEYFILE: cannot load the client certificate and key"),
    ({"ssl_certfile": "/nonexistent/c.pem"}, "CHURNWATCH_SSL_CERTFILE: cannot load the client certificate and key"),
])
def test_unusable_tls_files_are_one_line_naming_the_variable(extra, fragment):
    s = settings(security_protocol="SSL", **{"ssl_cafile": CA, **extra})
    with pytest.raises(SettingsError) as info:
        security.ssl_context(s)
    assert str(info.value).startswith(fragment) and "\n" not in str(info.value)
    assert "wrong" not in str(info.value)  # a password is never quoted


# ---- kafka-python -------------------------------------------------------------------------------
def _kafka_python_clients():
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    return KafkaAdminClient, KafkaConsumer, KafkaProducer


def test_kafka_python_kwargs_per_protocol(tmp_path):
    assert security.kafka_python_kwargs(Settings()) == {"security_protocol": "PLAINTEXT"}
    tls = security.kafka_python_kwargs(ssl_settings(ssl_check_hostname="off"))
    assert tls["security_protocol"] == "SSL" and isinstance(tls["ssl_context"], ssl.SSLContext)
    assert tls["ssl_check_hostname"] is False and tls["ssl_context"].check_hostname is False
    sasl = security.kafka_python_kwargs(scram())
    assert {k: sasl[k] for k in ("security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password")} \
        == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "svc",
            "sasl_plain_password": "pw-123"}
    plain = security.kafka_python_kwargs(scram("SASL_PLAINTEXT"))
    assert "ssl_context" not in plain and plain["security_protocol"] == "SASL_PLAINTEXT"


def test_kafka_python_kwargs_for_sasl_plaintext_are_exactly_the_sasl_ones():
    s = settings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u", sasl_password="p")
    assert security.kafka_python_kwargs(s) == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                                               "sasl_plain_username": "u", "sasl_plain_password": "p"}


def test_kafka_python_kwargs_are_keywords_every_kafka_python_client_knows(tmp_path):
    token = tmp_path / "token"
    token.write_text("t")
    for s in (Settings(), ssl_settings(ssl_certfile=CLIENT_CERT, ssl_keyfile=CLIENT_KEY, ssl_key_password=KEY_PASSWORD),
              scram(), scram("SASL_PLAINTEXT"), oauth(token)):
        kwargs = security.kafka_python_kwargs(s)
        for client in _kafka_python_clients():
            assert set(kwargs) <= set(client.DEFAULT_CONFIG), (client.__name__, set(kwargs) - set(client.DEFAULT_CONFIG))


def test_the_sasl_password_is_masked_in_any_log_of_the_client_configuration():
    kwargs = security.kafka_python_kwargs(scram())
    assert kwargs["sasl_plain_password"] == "pw-123" and "pw-123".encode() == kwargs["sasl_plain_password"].encode()
    assert "pw-123" not in repr(kwargs) and "pw-123" not in "%s" % (kwargs,)
    assert "pw-123" not in repr(security.aiokafka_kwargs(scram()))


def test_oauth_token_provider_for_kafka_python_reads_the_file_at_every_authentication(tmp_path):
    from kafka.net.sasl.oauth import AbstractTokenProvider, SaslMechanismOAuth

    token = tmp_path / "token"
    token.write_text("first-token\n")
    kwargs = security.kafka_python_kwargs(oauth(token))
    provider = kwargs["sasl_oauth_token_provider"]
    assert kwargs["sasl_mechanism"] == "OAUTHBEARER" and isinstance(provider, AbstractTokenProvider)
    mechanism = SaslMechanismOAuth(sasl_oauth_token_provider=provider)  # what kafka-python does with it
    assert b"auth=Bearer first-token\x01" in mechanism.auth_bytes()
    token.write_text("renewed-token")
    assert provider.token() == "renewed-token"
    assert "first-token" not in repr(kwargs) and "renewed-token" not in repr(kwargs)


@pytest.mark.parametrize(("content", "fragment"), [(None, "cannot read"), ("  \n", "is empty"), (b"\xff\xfe", "not a text")])
def test_an_unusable_token_file_is_one_line(tmp_path, content, fragment):
    token = tmp_path / "token"
    if isinstance(content, bytes):
        token.write_bytes(content)
    elif content is not None:
        token.write_text(content)
    provider = security.kafka_python_kwargs(oauth(token))["sasl_oauth_token_provider"]
    with pytest.raises(SettingsError, match=f"^CHURNWATCH_SASL_OAUTH_TOKEN_FILE: .*{fragment}"):
        provider.token()


# ---- aiokafka and Faust -------------------------------------------------------------------------
def test_aiokafka_kwargs_are_accepted_by_aiokafka(tmp_path):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.abc import AbstractTokenProvider

    token = tmp_path / "token"
    token.write_text("aio-token")

    async def build(kwargs):  # the constructors validate the security settings; nothing connects
        for cls in (AIOKafkaConsumer, AIOKafkaProducer):
            await cls(**kwargs).stop()
        return True

    for s in (Settings(), ssl_settings(), scram(), scram("SASL_PLAINTEXT"), oauth(token)):
        kwargs = security.aiokafka_kwargs(s)
        assert kwargs["bootstrap_servers"] == "127.0.0.1:9092"
        assert asyncio.run(build(kwargs))
    provider = security.aiokafka_kwargs(oauth(token))["sasl_oauth_token_provider"]
    assert isinstance(provider, AbstractTokenProvider)
    assert asyncio.run(provider.token()) == "aio-token"


def _comparable(kwargs: dict) -> dict:
    out = {k: v for k, v in kwargs.items() if v is not None and k != "bootstrap_servers"}
    for key in ("ssl_context", "sasl_oauth_token_provider"):
        if key in out:
            out[key] = type(out[key]).__name__
    return out


def test_faust_credentials_give_faust_the_same_aiokafka_settings(tmp_path):
    """Faust turns broker_credentials into aiokafka keyword arguments itself: they must equal ours."""
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    token = tmp_path / "token"
    token.write_text("t")
    assert security.faust_credentials(Settings()) is None
    for s in (ssl_settings(), scram(), scram("SASL_PLAINTEXT"), oauth(token), oauth(token, "SASL_PLAINTEXT")):
        faust_side = credentials_to_aiokafka_auth(security.faust_credentials(s))
        assert _comparable(faust_side) == _comparable(security.aiokafka_kwargs(s)), s.security_protocol


def test_faust_credentials_do_not_show_the_password():
    creds = security.faust_credentials(scram())
    assert "pw-123" not in repr(creds) and creds.password == "pw-123"


def test_changelog_uses_the_same_aiokafka_mapping():
    from pipeline.worker.changelog import aiokafka_kwargs

    s = scram()
    assert _comparable(aiokafka_kwargs(s)) == _comparable(security.aiokafka_kwargs(s))
