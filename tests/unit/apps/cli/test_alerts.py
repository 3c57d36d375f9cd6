"""Unit tests for apps.cli.alerts (``churnwatch alerts``): the broker down, --json, --tier, --csm, no hard wrap."""

from __future__ import annotations

import sys

import pytest

from tests.unit.apps.cli.harness import assert_one_line_error, run, stub_broker


@pytest.mark.parametrize("broker", ["kafka://127.0.0.1:abc", "kafka://127.0.0.1:9092,kafka://h2:x1"])
def test_a_broker_port_that_is_not_a_number_is_one_line(broker, monkeypatch, no_network, capsys):
    code, out, err = run(["alerts", "--broker", broker], capsys)
    assert_one_line_error(code, out, err)
    assert "CHURNWATCH_BROKER (--broker): port" in err and "is not a number" in err
    monkeypatch.setenv("CHURNWATCH_BROKER", broker)
    code, out, err = run(["alerts"], capsys)
    assert_one_line_error(code, out, err)
    assert "CHURNWATCH_BROKER: port" in err and "is not a number" in err


def _silent_listener():
    """A loopback port that accepts connections and never answers (a broker that hangs)."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_alerts_with_the_broker_down_is_one_line_within_the_connection_timeout(kind):
    """A real ``churnwatch alerts`` process, nothing mocked: one line, exit 2, within the timeout."""
    import subprocess
    import time

    from devtools.broker import free_port

    holder = _silent_listener() if kind == "silent" else None
    port = holder.getsockname()[1] if holder else free_port()
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("CHURNWATCH_")}
    env.update(CHURNWATCH_BROKER=f"kafka://127.0.0.1:{port}", CHURNWATCH_CONNECT_TIMEOUT_S="2")
    t0 = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "apps.cli", "alerts"], env=env, capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)
    finally:
        if holder:
            holder.close()
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    expected = "connection refused" if kind == "refused" else "no Kafka answer within 2 s (CHURNWATCH_CONNECT_TIMEOUT_S)"
    assert proc.stderr.startswith(f"churnwatch alerts: error: cannot use broker kafka://127.0.0.1:{port}: ")
    assert expected in proc.stderr
    assert elapsed < 2 + 15, f"took {elapsed:.1f}s"  # the timeout plus the interpreter's start


def _alert(n: int, tier: str, csm: str | None, reason: str = "logins fell from 20 to 2 a week") -> dict:
    return {"alert_id": f"a{n}", "customer_id": f"cust-{n}", "tier": tier, "csm": csm, "band": "high",
            "score": 0.8, "threshold": 0.5, "trigger": "score", "model_version": "v1", "kind": "model",
            "event_time": "2026-05-01T00:00:00Z", "reasons": [{"text": reason}], "play": "call them"}


@pytest.fixture
def alert_topic(monkeypatch):
    """``churnwatch alerts`` reading these alerts (raw bytes as on the topic) instead of a broker."""
    import orjson

    import pipeline.kafka.feed

    alerts = [_alert(1, "vip", "Ana"), _alert(2, "standard", None), _alert(3, "VIP", "bob"),
              _alert(4, "smb", "ana", reason="x" * 150)]
    raw = [orjson.dumps(a) for a in alerts]
    raw[2] = raw[2].replace(b'"score":', b'"score" :')  # spacing as some producer wrote it: kept as is
    stub_broker(monkeypatch)

    def follow_raw(settings, topic, stop, from_beginning=True, poll_ms=200):
        assert topic == settings.alerts_topic
        for value in raw:
            yield value, orjson.loads(value)

    monkeypatch.setattr(pipeline.kafka.feed, "follow_raw", follow_raw)
    return raw


def test_alerts_json_prints_each_alert_as_on_the_topic(alert_topic, capsys):
    code, out, err = run(["alerts", "--json"], capsys)
    assert code == 0 and err == ""
    assert out.encode().splitlines() == alert_topic


@pytest.mark.parametrize(("flags", "ids"), [
    (["--tier", "vip"], ["a1", "a3"]),
    (["--tier", "vip,smb"], ["a1", "a3", "a4"]),
    (["--tier", "standard", "--tier", "SMB"], ["a2", "a4"]),
    (["--csm", "ana"], ["a1", "a4"]),
    (["--csm", "-"], ["a2"]),
    (["--csm", "ana,-", "--tier", "vip"], ["a1"]),
    (["--tier", "enterprise"], []),
])


def test_alerts_tier_and_csm_filters(flags, ids, alert_topic, capsys):
    import orjson

    code, out, _ = run(["alerts", "--json", *flags], capsys)
    assert code == 0
    assert [orjson.loads(line)["alert_id"] for line in out.splitlines()] == ids
    code, out, _ = run(["alerts", *flags], capsys)
    assert [line.split()[3] for line in out.splitlines() if " ALERT " in line] == [f"cust-{i[1:]}" for i in ids]


def test_alerts_are_not_hard_wrapped_when_stdout_is_not_a_terminal(alert_topic, capsys):
    code, out, _ = run(["alerts", "--tier", "smb"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("2026-05-01 ALERT HIGH") and "model v1)" in lines[0]
    assert lines[1] == "    - " + "x" * 150  # one line, far past 80 columns
    assert lines[2] == "    play: call them" and len(lines) == 3
    assert "\x1b[" not in out  # no colour codes in a pipe either
