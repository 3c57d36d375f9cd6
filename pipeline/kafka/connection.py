"""A bounded check that the broker can be reached with the configured security, before a command uses it.

Kafka clients retry a broken connection for a long time and then fail with something generic: a TLS
client against a plaintext listener waits for a handshake answer that never comes (kafka-python hung
for minutes), a wrong port or a SASL failure ends in "no brokers available". Every command that talks
to the broker therefore first runs :func:`check_connection`, which gives up within
``CHURNWATCH_CONNECT_TIMEOUT_S`` with one line saying which step failed:

1. TCP: the bootstrap servers, in turn, until one accepts a connection (unknown host, refused, no answer);
2. TLS, with SSL/SASL_SSL: the handshake with the configured CA and client certificate (no answer —
   likely a plaintext listener —, untrusted certificate, host-name mismatch);
3. Kafka: an ``ApiVersions`` request on that connection must get a Kafka answer (a TLS alert here means
   the listener wants TLS; anything else means it is not Kafka);
4. the real client (kafka-python, with SASL when configured) describes the cluster: authentication
   errors surface here, and the broker count it returns sets the default replication factor.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from pipeline.config.fields import SettingsError
from pipeline.config.settings import Settings
from pipeline.kafka.security import kafka_python_kwargs, ssl_context

#: ApiVersions (key 18) v0, correlation id 0x6377 ("cw"), client id "churnwatch-check".
_CLIENT_ID = b"churnwatch-check"
_CORRELATION = 0x6377
_REQUEST = struct.pack(">hhih", 18, 0, _CORRELATION, len(_CLIENT_ID)) + _CLIENT_ID
_API_VERSIONS = struct.pack(">i", len(_REQUEST)) + _REQUEST


class ConnectError(RuntimeError):
    """The broker cannot be used with these settings; the message is one line for the user."""


@dataclass(frozen=True)
class Cluster:
    """What the check learnt about the cluster."""

    #: node ids of the brokers in the cluster metadata
    broker_ids: tuple[int, ...]
    #: the bootstrap server that answered (host:port)
    server: str

    @property
    def brokers(self) -> int:
        return len(self.broker_ids)


def bootstrap_addresses(settings: Settings) -> list[tuple[str, int]]:
    """(host, port) of every bootstrap server; the port defaults to 9092 as in Kafka clients."""
    out = []
    for part in settings.bootstrap_servers.split(","):
        part = part.strip()
        if part.startswith("["):  # [::1]:9092
            host, _, rest = part[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") else 9092
        elif part.count(":") == 1:
            host, port_text = part.split(":")
            port = int(port_text)
        else:
            host, port = part, 9092
        out.append((host, port))
    return out


class _StepError(Exception):
    """One bootstrap server failed one step; ``str()`` says how, in words."""


def probe(host: str, port: int, ctx: ssl.SSLContext | None, timeout: float,
          protocol: str = "PLAINTEXT", limit: str | None = None) -> None:
    """Steps 1-3 against one server, within ``timeout`` seconds in all; raises :class:`_StepError`
    (``limit`` is how the time limit is named in messages, e.g. ``10 s (CHURNWATCH_CONNECT_TIMEOUT_S)``)."""
    deadline = time.monotonic() + timeout
    limit = limit or f"{timeout:g} s"

    def left() -> float:
        return max(0.05, deadline - time.monotonic())

    try:
        sock = socket.create_connection((host, port), timeout=left())
    except socket.gaierror:
        raise _StepError("unknown host") from None
    except ConnectionRefusedError:
        raise _StepError("connection refused (nothing listens on that port)") from None
    except (socket.timeout, TimeoutError):
        raise _StepError(f"no answer to a TCP connection within {limit}") from None
    except OSError as exc:
        raise _StepError(exc.strerror or str(exc)) from None
    try:
        if ctx is not None:
            sock.settimeout(left())
            try:
                sock = ctx.wrap_socket(sock, server_hostname=host)
            except (socket.timeout, TimeoutError):
                raise _StepError(f"no TLS handshake answer within {limit} "
                                 f"(is it a plaintext listener? CHURNWATCH_SECURITY_PROTOCOL is {protocol})") from None
            except ssl.SSLCertVerificationError as exc:
                raise _StepError(f"TLS certificate not accepted: {exc.verify_message} "
                                 "(CHURNWATCH_SSL_CAFILE, CHURNWATCH_SSL_CHECK_HOSTNAME)") from None
            except ssl.SSLError as exc:
                reason = str(exc.reason or exc).replace("_", " ").lower()
                raise _StepError(f"TLS handshake failed: {reason} (is it a plaintext listener?)") from None
            except (ConnectionError, OSError):
                raise _StepError("the broker closed the connection during the TLS handshake "
                                 "(is it a plaintext listener?)") from None
        sock.settimeout(left())
        try:
            sock.sendall(_API_VERSIONS)
            head = _recv(sock, 8)
        except (socket.timeout, TimeoutError):
            raise _StepError(f"no Kafka answer within {limit}") from None
        except (ConnectionError, ssl.SSLError, OSError):
            head = b""
        if head[:1] == b"\x15" and head[1:2] == b"\x03":
            raise _StepError("the listener answered with TLS: set CHURNWATCH_SECURITY_PROTOCOL to SSL or SASL_SSL")
        if len(head) < 8:
            hint = "" if ctx is not None else " (does the listener want TLS? CHURNWATCH_SECURITY_PROTOCOL is " \
                                               f"{protocol})"
            raise _StepError(f"the connection closed without a Kafka answer{hint}")
        size, correlation = struct.unpack(">ii", head)
        if correlation != _CORRELATION or not 0 < size < 1 << 24:
            raise _StepError("the answer is not Kafka's (is that port a Kafka listener?)")
    finally:
        sock.close()


def _recv(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _describe(settings: Settings, timeout: float) -> dict[str, Any]:
    """Step 4: kafka-python's own connection (with SASL) describes the cluster."""
    from kafka import KafkaAdminClient

    ms = max(1000, int(timeout * 1000))
    config: dict[str, Any] = {"bootstrap_servers": settings.bootstrap_servers, "client_id": "churnwatch-check",
                              "request_timeout_ms": ms, "bootstrap_timeout_ms": ms,
                              "api_version_auto_timeout_ms": ms, **kafka_python_kwargs(settings)}
    known = getattr(KafkaAdminClient, "DEFAULT_CONFIG", config)
    admin = KafkaAdminClient(**{k: v for k, v in config.items() if k in known})
    try:
        return admin.describe_cluster()
    finally:
        admin.close()


def _within(func: Callable[[], Any], timeout: float) -> tuple[bool, Any, BaseException | None]:
    """Run ``func`` on a daemon thread, waiting at most ``timeout``: (finished, result, error). A client
    stuck past the deadline is left behind; the command is about to stop anyway."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = func()
        except BaseException as exc:  # reported to the caller
            box["error"] = exc

    thread = threading.Thread(target=run, name="churnwatch-connect-check", daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive(), box.get("result"), box.get("error")


def _client_error(exc: BaseException, settings: Settings) -> str:
    """Step 4's failure in words. The connection itself worked (steps 1-3), so with SASL a client that
    gives up is most likely refused authentication, whatever exception the library chose for it."""
    name = type(exc).__name__
    text = " ".join(str(exc).split())
    text = text.removeprefix(f"{name}: ").removeprefix(f"[Error {getattr(exc, 'errno', '')}] {name}: ")[:300]
    who = f" as {settings.sasl_username!r}" if settings.sasl_username else ""
    sasl = f"SASL {settings.sasl_mechanism} authentication{who}"
    if "Sasl" in name or "Authentication" in name or "authentication" in text.lower():
        return f"{sasl} failed: {text or name}"
    if "Authorization" in name:
        return f"not authorized to describe the cluster: {text or name}"
    detail = f"{name}: {text}" if text else name
    if settings.security_protocol.uses_sasl:
        return f"{sasl} did not succeed ({detail}); check CHURNWATCH_SASL_MECHANISM and the credentials"
    return f"the Kafka client failed: {detail}"


def check_connection(settings: Settings, timeout: float | None = None) -> Cluster:
    """Steps 1-4 within ``timeout`` (default ``settings.connect_timeout_s``); raises :class:`ConnectError`."""
    timeout = settings.connect_timeout_s if timeout is None else timeout
    deadline = time.monotonic() + timeout
    ctx = ssl_context(settings)  # unreadable CA / certificate files: SettingsError, before any network
    addresses = bootstrap_addresses(settings)
    failures: list[str] = []
    answered = None
    for i, (host, port) in enumerate(addresses):
        share = max(0.2, (deadline - time.monotonic()) / (len(addresses) - i))
        try:
            probe(host, port, ctx, share, str(settings.security_protocol),
                  limit=f"{timeout:g} s (CHURNWATCH_CONNECT_TIMEOUT_S)" if len(addresses) == 1 else
                  f"{share:.1f} s (its share of CHURNWATCH_CONNECT_TIMEOUT_S={timeout:g})")
        except _StepError as exc:
            failures.append(f"{_address(host, port)}: {exc}")
            continue
        answered = _address(host, port)
        break
    if answered is None:
        raise ConnectError(f"cannot use broker {settings.broker}: " + "; ".join(failures))
    left = max(0.5, deadline - time.monotonic())
    quiet = logging.NullHandler()
    kafka_log = logging.getLogger("kafka")
    kafka_log.addHandler(quiet)  # kafka-python logs its failures at ERROR: churnwatch says it in one line
    try:
        finished, result, error = _within(lambda: _describe(settings, left), left + 1.0)
    finally:
        kafka_log.removeHandler(quiet)
    if not finished:
        raise ConnectError(f"cannot use broker {settings.broker}: {answered} accepted the connection but the Kafka "
                           f"client got no cluster description within {timeout:g} s (CHURNWATCH_CONNECT_TIMEOUT_S)"
                           + (" (SASL authentication?)" if settings.security_protocol.uses_sasl else ""))
    if error is not None:
        if isinstance(error, SettingsError):  # e.g. an unreadable OAUTHBEARER token file
            raise error
        raise ConnectError(f"cannot use broker {settings.broker}: {answered}: {_client_error(error, settings)}")
    ids = tuple(sorted(int(b.get("broker_id", b.get("node_id", -1))) for b in (result or {}).get("brokers", ())))
    if not ids:
        raise ConnectError(f"cannot use broker {settings.broker}: {answered} describes a cluster without brokers")
    return Cluster(broker_ids=ids, server=answered)


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
