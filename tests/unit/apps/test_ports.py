"""Unit tests for apps.ports: a port another socket listens on is reported busy, a free one is not."""

from __future__ import annotations

import socket

from apps.ports import bind_problem, shown
from devtools.broker import free_port


def test_a_listening_port_is_busy_and_a_free_one_is_not():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert bind_problem("127.0.0.1", port) == "address already in use"
        assert bind_problem("0.0.0.0", port) == "address already in use"  # every interface includes loopback
    assert bind_problem("127.0.0.1", port) is None  # closed: free again (SO_REUSEADDR, as the servers bind)
    assert bind_problem("127.0.0.1", free_port()) is None


def test_port_0_is_always_possible_and_an_unknown_host_is_said():
    assert bind_problem("127.0.0.1", 0) is None
    assert bind_problem("no-such-host.invalid", 8088).startswith("cannot resolve 'no-such-host.invalid'")


def test_shown():
    assert (shown("127.0.0.1", 80), shown("::1", 80)) == ("127.0.0.1:80", "[::1]:80")
