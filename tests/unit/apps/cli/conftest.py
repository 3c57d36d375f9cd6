"""Fixtures of the CLI tests: a clean environment, the commands that would reach the network replaced
by recorders, the network helpers made to fail the test if reached, a port someone else holds."""

from __future__ import annotations

import pytest

from apps.cli import alerts, broker, demo, simulate, topics, worker

NETWORK_COMMANDS = {"cmd_broker": broker, "cmd_topics": topics, "cmd_simulate": simulate, "cmd_worker": worker,
                    "cmd_alerts": alerts, "cmd_demo": demo}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("CHURNWATCH_") or name == "DEMO_SECONDS":
            monkeypatch.delenv(name)


@pytest.fixture
def calls(monkeypatch) -> list:
    """Replace every command that could touch the network with a recorder."""
    seen: list = []

    def recorder(name):
        def run(args):
            seen.append((name, args))
            return 0
        return run

    for name, module in NETWORK_COMMANDS.items():
        monkeypatch.setattr(module, name, recorder(name))
    return seen


@pytest.fixture
def no_network(monkeypatch):
    """For commands run for real: fail loudly instead of reaching for a broker."""
    import pipeline.kafka.connection
    import pipeline.kafka.topics

    def boom(*a, **k):
        raise AssertionError("the command tried to reach a broker")

    monkeypatch.setattr(pipeline.kafka.topics, "ensure_topics", boom)
    monkeypatch.setattr(pipeline.kafka.connection, "check_connection", boom)


@pytest.fixture
def listening():
    """A socket listening on a free loopback port (what another worker or program would hold)."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()
