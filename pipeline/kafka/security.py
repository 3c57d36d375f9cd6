"""The Kafka security block of :class:`~pipeline.config.settings.Settings`, mapped onto each client library.

churnwatch talks to Kafka through three client stacks: kafka-python (admin, simulator producer, feed,
inbox, export), aiokafka (the state changelog's restore consumer) and Faust (the worker, on aiokafka).
Each wants the same TLS and SASL settings in its own shape; one function per stack, all built on one
TLS context and one token provider, so the three cannot drift apart:

* :func:`kafka_python_kwargs` — keyword arguments of kafka-python clients;
* :func:`aiokafka_kwargs` — keyword arguments of aiokafka clients;
* :func:`faust_credentials` — Faust's ``broker_credentials`` (which Faust turns into aiokafka's).

OAUTHBEARER: both libraries ask a token provider object for a token at every authentication; the
provider here reads ``CHURNWATCH_SASL_OAUTH_TOKEN_FILE`` each time, so whatever renews the token (a
sidecar, a cron job) only has to rewrite the file.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config.fields import SaslMechanism, SettingsError

if TYPE_CHECKING:
    from pipeline.config.settings import Settings


class Masked(str):
    """A secret handed to a client library as the ``str`` it expects, but masked in any repr — kafka-python
    logs its whole configuration dict at DEBUG, and a dict shows its values' reprs."""

    def __repr__(self) -> str:
        return "'********'"


# ---- TLS ------------------------------------------------------------------------------------------
def ssl_context(settings: "Settings") -> ssl.SSLContext | None:
    """The TLS context of every client (None for PLAINTEXT / SASL_PLAINTEXT): the CA bundle (or the
    system's), an optional client certificate and key, host-name checking as configured. A file that
    cannot be read is a :class:`SettingsError` naming its variable."""
    if not settings.security_protocol.uses_tls:
        return None
    try:
        ctx = ssl.create_default_context(cafile=settings.ssl_cafile or None)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(f"CHURNWATCH_SSL_CAFILE: cannot use {settings.ssl_cafile}: {_reason(exc)}") from None
    ctx.check_hostname = settings.ssl_check_hostname
    if settings.ssl_certfile:
        password = settings.ssl_key_password.get_secret_value() or None
        try:
            ctx.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile or None, password=password)
        except (OSError, ssl.SSLError) as exc:
            which = "CHURNWATCH_SSL_CERTFILE/CHURNWATCH_SSL_KEYFILE" if settings.ssl_keyfile else "CHURNWATCH_SSL_CERTFILE"
            raise SettingsError(f"{which}: cannot load the client certificate and key: {_reason(exc)}") from None
    return ctx


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).replace("_", " ").lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


# ---- OAUTHBEARER ----------------------------------------------------------------------------------
def read_token(path: str) -> str:
    """The access token in ``path`` (surrounding whitespace removed); raises SettingsError if unusable."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SettingsError(f"CHURNWATCH_SASL_OAUTH_TOKEN_FILE: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"CHURNWATCH_SASL_OAUTH_TOKEN_FILE: {path} is not a text file") from None
    if not token:
        raise SettingsError(f"CHURNWATCH_SASL_OAUTH_TOKEN_FILE: {path} is empty")
    return token


def _kafka_python_token_base() -> type:
    """kafka-python's AbstractTokenProvider, wherever this version keeps it."""
    for module in ("kafka.net.sasl.oauth", "kafka.sasl.oauth", "kafka.oauth.abstract"):
        try:
            return __import__(module, fromlist=["AbstractTokenProvider"]).AbstractTokenProvider
        except (ImportError, AttributeError):
            continue
    raise SettingsError("CHURNWATCH_SASL_MECHANISM=OAUTHBEARER: this kafka-python has no token provider support")


def file_token_provider(path: str) -> Any:
    """A kafka-python token provider reading ``path`` at every authentication."""
    base = _kafka_python_token_base()

    class FileTokenProvider(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self.path = path

        def token(self) -> str:
            return read_token(self.path)

        def __repr__(self) -> str:
            return f"FileTokenProvider({self.path!r})"

    return FileTokenProvider()


def async_file_token_provider(path: str) -> Any:
    """An aiokafka token provider (its ``token`` is a coroutine) reading ``path`` at every authentication."""
    from aiokafka.abc import AbstractTokenProvider

    class AsyncFileTokenProvider(AbstractTokenProvider):
        def __init__(self) -> None:
            self.path = path

        async def token(self) -> str:
            return read_token(self.path)  # a few hundred bytes from a local file: no executor needed

        def __repr__(self) -> str:
            return f"AsyncFileTokenProvider({self.path!r})"

    return AsyncFileTokenProvider()


# ---- one mapping per client stack -------------------------------------------------------------------
def _sasl_password(settings: "Settings") -> Masked:
    return Masked(settings.sasl_password.get_secret_value())


def kafka_python_kwargs(settings: "Settings") -> dict[str, Any]:
    """Security keyword arguments of kafka-python clients (KafkaAdminClient, KafkaProducer, KafkaConsumer)."""
    protocol = settings.security_protocol
    kwargs: dict[str, Any] = {"security_protocol": str(protocol)}
    if protocol.uses_tls:
        kwargs["ssl_context"] = ssl_context(settings)
        kwargs["ssl_check_hostname"] = settings.ssl_check_hostname
    mechanism = settings.sasl_mechanism
    if protocol.uses_sasl and mechanism is not None:
        kwargs["sasl_mechanism"] = str(mechanism)
        if mechanism is SaslMechanism.OAUTHBEARER:
            kwargs["sasl_oauth_token_provider"] = file_token_provider(settings.sasl_oauth_token_file)
        else:
            kwargs["sasl_plain_username"] = settings.sasl_username
            kwargs["sasl_plain_password"] = _sasl_password(settings)
    return kwargs


def aiokafka_kwargs(settings: "Settings") -> dict[str, Any]:
    """Connection and security keyword arguments of aiokafka clients."""
    protocol = settings.security_protocol
    kwargs: dict[str, Any] = {"bootstrap_servers": settings.bootstrap_servers, "security_protocol": str(protocol)}
    if protocol.uses_tls:
        kwargs["ssl_context"] = ssl_context(settings)
    mechanism = settings.sasl_mechanism
    if protocol.uses_sasl and mechanism is not None:
        kwargs["sasl_mechanism"] = str(mechanism)
        if mechanism is SaslMechanism.OAUTHBEARER:
            kwargs["sasl_oauth_token_provider"] = async_file_token_provider(settings.sasl_oauth_token_file)
        else:
            kwargs["sasl_plain_username"] = settings.sasl_username
            kwargs["sasl_plain_password"] = _sasl_password(settings)
    return kwargs


def faust_credentials(settings: "Settings") -> Any:
    """Faust's ``broker_credentials`` (None for PLAINTEXT); Faust passes them on to aiokafka."""
    import faust

    protocol = settings.security_protocol
    ctx = ssl_context(settings)
    mechanism = settings.sasl_mechanism
    if protocol.uses_sasl and mechanism is not None:
        if mechanism is SaslMechanism.OAUTHBEARER:
            return faust.OAuthCredentials(oauth_cb=async_file_token_provider(settings.sasl_oauth_token_file),
                                          ssl_context=ctx)
        return faust.SASLCredentials(username=settings.sasl_username, password=_sasl_password(settings),
                                     mechanism=str(mechanism), ssl_context=ctx)
    if ctx is not None:
        return faust.SSLCredentials(ctx)
    return None
