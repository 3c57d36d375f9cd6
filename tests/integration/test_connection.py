"""The connection check against the embedded broker (Tansu): a TLS client against its plaintext
listener and an address nobody listens on fail within the deadline, with exit code 2 and one line.
The other steps (untrusted certificate, a TLS listener spoken to in plaintext, not Kafka, SASL) are
covered with loopback servers in tests/unit/pipeline/kafka/test_connection.py."""

from __future__ import annotations

import time

import pytest

from devtools.broker import EmbeddedBroker, free_port
from pipeline.config.settings import Settings
from pipeline.kafka.connection import ConnectError, check_connection

try:  # tests/integration may or may not become a package; support both import styles
    from .conftest import run_cli
except ImportError:
    from conftest import run_cli

pytestmark = pytest.mark.integration

CONNECT_TIMEOUT_S = 3.0
#: a whole CLI process (interpreter start, imports) on a loaded two-core machine: generous, and still
#: well below the minutes the unchecked client hung
PROCESS_LIMIT_S = 45.0


def test_the_check_passes_and_counts_the_brokers(broker: EmbeddedBroker):
    cluster = check_connection(Settings(broker=broker.url))
    assert cluster.brokers == 1 and cluster.server == broker.address


def test_the_check_of_ssl_against_the_plaintext_broker_gives_up_at_the_deadline(broker: EmbeddedBroker):
    """The defect: SSL against a plaintext listener hung for more than a minute."""
    s = Settings(broker=broker.url, security_protocol="SSL", connect_timeout_s=CONNECT_TIMEOUT_S)
    t0 = time.monotonic()
    with pytest.raises(ConnectError) as info:
        check_connection(s)
    seconds = time.monotonic() - t0
    assert CONNECT_TIMEOUT_S * 0.9 <= seconds < CONNECT_TIMEOUT_S + 2.0, seconds
    assert str(info.value) == (f"cannot use broker {broker.url}: {broker.address}: no TLS handshake answer within "
                               "3 s (CHURNWATCH_CONNECT_TIMEOUT_S) (is it a plaintext listener? "
                               "CHURNWATCH_SECURITY_PROTOCOL is SSL)")


@pytest.mark.parametrize("argv", [["topics", "check"], ["worker"], ["alerts"]])
def test_ssl_against_the_plaintext_broker_stops_the_command_with_exit_2_and_one_line(argv, cli_env, broker, tmp_path):
    extra = {**cli_env, "CHURNWATCH_SECURITY_PROTOCOL": "SSL", "CHURNWATCH_CONNECT_TIMEOUT_S": f"{CONNECT_TIMEOUT_S:g}",
             "CHURNWATCH_DATA_DIR": str(tmp_path / "data"), "CHURNWATCH_METRICS_PORT": str(free_port()),
             "CHURNWATCH_WEB_PORT": str(free_port())}
    code, out, err, seconds = run_cli(argv, extra)
    assert code == 2 and out == "", (code, out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err == (f"churnwatch {argv[0]}: error: cannot use broker {broker.url}: {broker.address}: no TLS handshake "
                   f"answer within 3 s (CHURNWATCH_CONNECT_TIMEOUT_S) (is it a plaintext listener? "
                   "CHURNWATCH_SECURITY_PROTOCOL is SSL)\n")
    assert seconds < PROCESS_LIMIT_S, seconds


def test_an_unreachable_broker_fails_at_once_in_one_line(cli_env):
    port = free_port()
    code, out, err, seconds = run_cli(["topics", "create"], {**cli_env, "CHURNWATCH_BROKER": f"kafka://127.0.0.1:{port}"})
    assert (code, out) == (2, "")
    assert err == (f"churnwatch topics: error: cannot use broker kafka://127.0.0.1:{port}: 127.0.0.1:{port}: "
                   "connection refused (nothing listens on that port)\n")
    assert seconds < PROCESS_LIMIT_S
