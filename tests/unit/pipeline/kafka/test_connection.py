"""Unit tests for pipeline.kafka.connection: each step of the connection check against small loopback servers
(a fake Kafka listener, a silent one, a TLS one with the test CA in ``tls/``), and the fourth step's
error reporting with the Kafka client replaced. The check against the real embedded broker is in
tests/integration/test_topics.py."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from devtools.broker import free_port
from pipeline.config.settings import Settings
from pipeline.kafka import connection
from pipeline.kafka.connection import Cluster, ConnectError, bootstrap_addresses, check_connection, probe

TLS = Path(__file__).parent / "tls"
CA = str(TLS / "ca.pem")


class Listener:
    """A loopback TCP server handling each connection on a thread with ``handle(sock)``."""

    def __init__(self, handle: Callable[[socket.socket], None], tls: bool = False) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.handle = handle
        self.ctx = None
        if tls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(str(TLS / "server.pem"))
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.ctx is not None:
                conn.settimeout(5)
                conn = self.ctx.wrap_socket(conn, server_side=True)
            self.handle(conn)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()


def kafka_answer(conn: socket.socket) -> None:
    """Read an ApiVersions request and answer with its correlation id, as a Kafka broker does."""
    head = conn.recv(4)
    size = struct.unpack(">i", head)[0]
    body = b""
    while len(body) < size:
        body += conn.recv(size - len(body))
    correlation = struct.unpack(">i", body[4:8])[0]
    payload = struct.pack(">ih", correlation, 0) + b"\0" * 6
    conn.sendall(struct.pack(">i", len(payload)) + payload)


def silent(conn: socket.socket) -> None:
    """Accept and read, never answer (a plaintext Kafka listener reading a TLS hello as a frame)."""
    conn.settimeout(10)
    try:
        while conn.recv(1024):
            pass
    except OSError:
        pass


def http_answer(conn: socket.socket) -> None:
    conn.recv(1024)
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture
def listen() -> Iterator[Callable[..., Listener]]:
    made: list[Listener] = []

    def make(handle: Callable[[socket.socket], None], tls: bool = False) -> Listener:
        made.append(Listener(handle, tls))
        return made[-1]

    yield make
    for listener in made:
        listener.close()


def tls_client(cafile: str | None = CA) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)


# ---- bootstrap addresses ----------------------------------------------------------------------------
@pytest.mark.parametrize(("broker", "expected"), [
    ("kafka://a:1", [("a", 1)]),
    ("kafka://a:1,kafka://b:2", [("a", 1), ("b", 2)]),
    ("kafka://a", [("a", 9092)]),
    ("kafka://[::1]:9093", [("::1", 9093)]),
    ("kafka://[::1]", [("::1", 9092)]),
])
def test_bootstrap_addresses(broker, expected):
    assert bootstrap_addresses(Settings(broker=broker)) == expected


# ---- steps 1-3 -------------------------------------------------------------------------------------
def test_a_kafka_listener_passes(listen):
    server = listen(kafka_answer)
    probe("127.0.0.1", server.port, None, 5)


def test_refused_port():
    with pytest.raises(connection._StepError, match="connection refused"):
        probe("127.0.0.1", free_port(), None, 5)


def test_unknown_host(monkeypatch):
    def no_such_host(*a, **k):  # what the resolver says; the test itself resolves nothing
        raise socket.gaierror(-2, "Name or service not known")
    monkeypatch.setattr(connection.socket, "create_connection", no_such_host)
    with pytest.raises(connection._StepError, match="unknown host"):
        probe("no-such-host.invalid", 9092, None, 5)


def test_tls_against_a_listener_that_never_answers_the_handshake_gives_up_in_time(listen):
    server = listen(silent)
    t0 = time.monotonic()
    with pytest.raises(connection._StepError, match=r"no TLS handshake answer within 1\.5 s \(is it a plaintext "
                                                    r"listener\? CHURNWATCH_SECURITY_PROTOCOL is SSL\)"):
        probe("127.0.0.1", server.port, tls_client(), 1.5, "SSL")
    assert time.monotonic() - t0 < 4


def test_plaintext_kafka_request_that_gets_no_answer_in_time(listen):
    server = listen(silent)
    with pytest.raises(connection._StepError, match=r"no Kafka answer within 1 s"):
        probe("127.0.0.1", server.port, None, 1.0)


def test_tls_with_the_right_ca_passes_and_reaches_kafka(listen):
    server = listen(kafka_answer, tls=True)
    probe("127.0.0.1", server.port, tls_client(), 5, "SSL")


def test_tls_with_an_untrusted_certificate(listen):
    server = listen(kafka_answer, tls=True)
    with pytest.raises(connection._StepError, match="TLS certificate not accepted: .*CHURNWATCH_SSL_CAFILE"):
        probe("127.0.0.1", server.port, tls_client(cafile=None), 5, "SSL")


def test_plaintext_against_a_tls_listener(listen):
    server = listen(kafka_answer, tls=True)
    with pytest.raises(connection._StepError, match=r"closed without a Kafka answer \(does the listener want TLS\? "
                                                    r"CHURNWATCH_SECURITY_PROTOCOL is PLAINTEXT\)"):
        probe("127.0.0.1", server.port, None, 5, "PLAINTEXT")


def test_plaintext_against_a_listener_answering_with_a_tls_alert(listen):
    def alert(conn: socket.socket) -> None:
        conn.recv(1024)
        conn.sendall(b"\x15\x03\x03\x00\x02\x02\x46")  # fatal protocol_version alert
    server = listen(alert)
    with pytest.raises(connection._StepError, match="answered with TLS: set CHURNWATCH_SECURITY_PROTOCOL to SSL"):
        probe("127.0.0.1", server.port, None, 5)


def test_a_listener_that_is_not_kafka(listen):
    server = listen(http_answer)
    with pytest.raises(connection._StepError, match="not Kafka's"):
        probe("127.0.0.1", server.port, None, 5)


# ---- the whole check -------------------------------------------------------------------------------
def _settings(port: int, **env: str) -> Settings:
    return Settings.from_env({"CHURNWATCH_BROKER": f"kafka://127.0.0.1:{port}", **env})


def test_check_names_every_bootstrap_server_that_failed(listen):
    a, b = free_port(), free_port()
    s = Settings(broker=f"kafka://127.0.0.1:{a},kafka://127.0.0.1:{b}", connect_timeout_s=2)
    with pytest.raises(ConnectError) as info:
        check_connection(s)
    message = str(info.value)
    assert message.startswith(f"cannot use broker {s.broker}: ")
    assert f"127.0.0.1:{a}: connection refused" in message and f"127.0.0.1:{b}: connection refused" in message
    assert "\n" not in message


def test_check_moves_on_to_the_next_server_and_counts_the_brokers(listen, monkeypatch):
    server = listen(kafka_answer)
    monkeypatch.setattr(connection, "_describe", lambda s, t: {"brokers": [{"broker_id": 3}, {"broker_id": 1}]})
    s = Settings(broker=f"kafka://127.0.0.1:{free_port()},kafka://127.0.0.1:{server.port}")
    assert check_connection(s) == Cluster(broker_ids=(1, 3), server=f"127.0.0.1:{server.port}")
    assert check_connection(s).brokers == 2


def test_check_gives_up_on_a_silent_tls_handshake_within_the_deadline(listen):
    server = listen(silent)
    s = _settings(server.port, CHURNWATCH_SECURITY_PROTOCOL="SSL", CHURNWATCH_SSL_CAFILE=CA,
                  CHURNWATCH_CONNECT_TIMEOUT_S="1.5")
    t0 = time.monotonic()
    with pytest.raises(ConnectError, match=r"no TLS handshake answer within 1\.5 s \(CHURNWATCH_CONNECT_TIMEOUT_S\)"):
        check_connection(s)
    assert time.monotonic() - t0 < 4


def test_a_kafka_client_that_hangs_is_abandoned_at_the_deadline(listen, monkeypatch):
    server = listen(kafka_answer)
    release = threading.Event()
    monkeypatch.setattr(connection, "_describe", lambda s, t: release.wait(30))
    s = _settings(server.port, CHURNWATCH_CONNECT_TIMEOUT_S="1")
    t0 = time.monotonic()
    try:
        with pytest.raises(ConnectError, match="accepted the connection but the Kafka client got no cluster description "
                                               r"within 1 s"):
            check_connection(s)
        assert time.monotonic() - t0 < 4
    finally:
        release.set()


def _failing_client(monkeypatch, exc: BaseException) -> None:
    def describe(s, t):
        raise exc
    monkeypatch.setattr(connection, "_describe", describe)


SASL = {"CHURNWATCH_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "CHURNWATCH_SASL_MECHANISM": "SCRAM-SHA-256",
        "CHURNWATCH_SASL_USERNAME": "svc", "CHURNWATCH_SASL_PASSWORD": "pw-secret"}


def test_sasl_authentication_failure_is_one_line(listen, monkeypatch):
    from kafka.errors import SaslAuthenticationFailedError

    server = listen(kafka_answer)
    _failing_client(monkeypatch, SaslAuthenticationFailedError("Authentication failed: invalid credentials"))
    with pytest.raises(ConnectError) as info:
        check_connection(_settings(server.port, **SASL))
    message = str(info.value)
    assert f"127.0.0.1:{server.port}: SASL SCRAM-SHA-256 authentication as 'svc' failed: " in message
    assert "invalid credentials" in message and "pw-secret" not in message and "\n" not in message


def test_a_sasl_client_that_gives_up_is_reported_as_sasl(listen, monkeypatch):
    from kafka.errors import KafkaTimeoutError

    server = listen(kafka_answer)
    _failing_client(monkeypatch, KafkaTimeoutError("Unable to bootstrap from 127.0.0.1"))
    with pytest.raises(ConnectError, match=r"SASL SCRAM-SHA-256 authentication as 'svc' did not succeed "
                                           r"\(KafkaTimeoutError: Unable to bootstrap from 127\.0\.0\.1\); check "
                                           "CHURNWATCH_SASL_MECHANISM and the credentials"):
        check_connection(_settings(server.port, **SASL))


def test_other_client_failures_name_the_error(listen, monkeypatch):
    from kafka.errors import KafkaTimeoutError

    server = listen(kafka_answer)
    _failing_client(monkeypatch, KafkaTimeoutError("Unable to bootstrap"))
    with pytest.raises(ConnectError, match=r": the Kafka client failed: KafkaTimeoutError: Unable to bootstrap$"):
        check_connection(_settings(server.port))


def test_unreadable_tls_files_stop_the_check_before_any_network(monkeypatch):
    from pipeline.config.fields import SettingsError

    monkeypatch.setattr(connection, "probe", lambda *a, **k: pytest.fail("probed despite a missing CA file"))
    s = _settings(1, CHURNWATCH_SECURITY_PROTOCOL="SSL", CHURNWATCH_SSL_CAFILE="/nonexistent/ca.pem")
    with pytest.raises(SettingsError, match="^CHURNWATCH_SSL_CAFILE: cannot use /nonexistent/ca.pem"):
        check_connection(s)
