"""How the CLI tests run ``churnwatch``: in-process (:func:`run`, exit code and output), on a terminal
(:func:`on_terminal`, a pty), and against a stubbed broker (:func:`stub_broker`).

No broker, worker or producer is ever started: the subcommands that would talk to Kafka are replaced
by recorders (the ``calls`` fixture) or their network helpers are made to fail the test if reached.
"""

from __future__ import annotations

import sys

import apps.cli as cli


def free_ports(monkeypatch) -> None:
    """A free web port and any metrics port for a worker started here (the defaults may be in use)."""
    from devtools.broker import free_port

    monkeypatch.setenv("CHURNWATCH_WEB_PORT", str(free_port()))
    monkeypatch.setenv("CHURNWATCH_METRICS_PORT", "0")


def run(argv, capsys) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, out: str, err: str) -> None:
    assert code == 2
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("churnwatch")
    assert "error" in err and "Traceback" not in err


def stub_broker(monkeypatch, observed=None, fail=None):
    """The connection check and the topic description, without a broker."""
    import pipeline.kafka.connection
    import pipeline.kafka.topics
    from pipeline.kafka.connection import Cluster

    def check(settings, timeout=None):
        if fail:
            raise pipeline.kafka.connection.ConnectError(fail)
        return Cluster(broker_ids=(1,), server="127.0.0.1:9092")

    monkeypatch.setattr(pipeline.kafka.connection, "check_connection", check)
    monkeypatch.setattr(pipeline.kafka.topics, "describe", lambda settings, names: observed(settings) if observed else {})


def on_terminal(argv: list[str], tmp_path) -> tuple[int, str, str]:
    """``churnwatch ARGV`` as a process whose stderr is a terminal (a pty) and stdout a pipe:
    (exit code, stdout, what the terminal showed)."""
    import os
    import pty
    import subprocess
    import threading

    master, slave = pty.openpty()
    shown = bytearray()

    def drain() -> None:  # the bars redraw ten times a second: keep the pty from filling up
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNWATCH_")}
    env.update(COLUMNS="120", TERM="xterm")
    try:
        proc = subprocess.run([sys.executable, "-m", "apps.cli", *argv], stdout=subprocess.PIPE, stderr=slave,
                              stdin=subprocess.DEVNULL, env=env, cwd=tmp_path, timeout=300)
    finally:
        os.close(slave)
        reader.join(10)
        os.close(master)
    return proc.returncode, proc.stdout.decode(), shown.decode(errors="replace")
