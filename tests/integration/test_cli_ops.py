"""The command line as an operator runs it, against the real embedded broker: several workers on one
host with the same settings, a busy port, ``churnwatch alerts`` in a pipe (``--json``, filters), and the
progress an export reports. Every process started here is stopped by its pid."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from apps.demo import scrape
from devtools.broker import free_port, stop_process
from pipeline.config.fields import ENV_PREFIX
from pipeline.config.settings import Settings
from tests.integration.conftest import REPO, run_cli, wait_for

pytestmark = pytest.mark.integration

ANNOUNCE = re.compile(r"churnwatch worker: metrics on (http://127\.0\.0\.1:(\d+)/metrics), web server on "
                      r"http://127\.0\.0\.1:(\d+) ")


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(settings.to_env())
    env.update(extra)
    return env


class _Lines:
    """A process's stdout, read line by line on a thread (so a test can wait for lines with a deadline)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))


def test_more_workers_with_the_same_settings_on_one_host(settings: Settings, tmp_path: Path) -> None:
    """Same environment for both (CHURNWATCH_METRICS_PORT=0: any free port), only --web-port differs:
    each prints the metrics port it took, and both serve metrics and share the partitions."""
    env = _env(settings, CHURNWATCH_METRICS_PORT="0")
    procs: list[tuple[subprocess.Popen, Path]] = []
    try:
        for i in range(2):
            log = tmp_path / f"worker-{i}.log"
            with open(log, "wb") as fh:
                procs.append((subprocess.Popen([sys.executable, "-m", "apps.cli", "worker", "--web-port",
                                                str(free_port())], cwd=REPO, env=env, stdout=fh,
                                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), log))

        def announced(proc: subprocess.Popen, log: Path) -> Any:
            if proc.poll() is not None:
                raise AssertionError(f"worker exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            return ANNOUNCE.search(log.read_text(errors="replace"))

        found = [wait_for(lambda p=p, log=log: announced(p, log), 60, what="the worker's metrics line")
                 for p, log in procs]
        urls = [m.group(1) for m in found]
        assert len({m.group(2) for m in found}) == 2 and "0" not in {m.group(2) for m in found}
        assert len({m.group(3) for m in found}) == 2

        def both_ready() -> bool:
            for proc, log in procs:
                if proc.poll() is not None:
                    raise AssertionError(f"worker exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            return all(scrape(url).get("churnwatch_worker_ready", 0) >= 1 for url in urls)

        wait_for(both_ready, 120, what="both workers ready")
        # the two partitions are shared: each worker owns one (its readiness report says so)

        def partitions(web_port: str) -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/ready", timeout=10) as response:
                return orjson.loads(response.read())["checks"]["partitions"]["detail"]

        assert [partitions(m.group(3)) for m in found] == ["1 assigned", "1 assigned"]
    finally:
        for proc, _ in procs:
            stop_process(proc, 30, signal.SIGTERM)


def test_a_busy_web_port_stops_the_worker_in_one_line(settings: Settings) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code, out, err, seconds = run_cli(["worker", "--web-port", str(port)], _env(settings), timeout=60)
    assert code == 2 and out == ""
    assert err == (f"churnwatch worker: error: cannot listen on 127.0.0.1:{port}: address already in use; "
                   f"choose another port with --web-port or CHURNWATCH_WEB_PORT\n")


def _alert(n: int, tier: str, csm: str | None) -> dict[str, Any]:
    return {"alert_id": f"al-{n}", "customer_id": f"cust-{n}", "tier": tier, "csm": csm, "band": "critical",
            "score": 0.91, "threshold": 0.4, "trigger": "score", "model_version": "v7", "kind": "model",
            "event_time": "2026-05-01T00:00:00Z", "play": "book a call",
            "reasons": [{"text": f"logins fell from 31 to 2 a week over the last 28 days, customer {n} " * 3}]}


def _follow(argv: list[str], env: dict[str, str], want: int) -> list[str]:
    """``churnwatch ARGV`` with stdout a pipe until ``want`` lines came, then Ctrl-C (by pid): the lines."""
    proc = subprocess.Popen([sys.executable, "-m", "apps.cli", *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        lines = _Lines(proc)
        wait_for(lambda: len(lines.lines) >= want or proc.poll() is not None, 60, what=f"{want} lines")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
        lines._thread.join(10)
        return lines.lines
    finally:
        stop_process(proc, 10, signal.SIGKILL)


def test_alerts_in_a_pipe_json_and_filters(settings: Settings) -> None:
    alerts = [_alert(1, "vip", "ana"), _alert(2, "standard", None), _alert(3, "vip", "bob"), _alert(4, "smb", "Ana")]
    raw = [orjson.dumps(a) for a in alerts]
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    for a, value in zip(alerts, raw):
        producer.send(settings.alerts_topic, key=a["customer_id"].encode(), value=value)
    producer.flush()
    producer.close()
    env = _env(settings)

    lines = _follow(["alerts", "--json", "--tier", "vip"], env, 2)
    assert sorted(line.encode() for line in lines) == sorted([raw[0], raw[2]])  # exactly as on the topic

    lines = _follow(["alerts", "--csm", "ana,-"], env, 3 * 3)  # three alerts, three lines each
    heads = [line for line in lines if " ALERT " in line]
    assert sorted(h.split()[3] for h in heads) == ["cust-1", "cust-2", "cust-4"]
    reasons = [line for line in lines if line.startswith("    - ")]
    assert len(reasons) == 3 and all(len(r) > 200 for r in reasons)  # no hard wrap at 80 columns in a pipe


def test_export_reports_its_progress(settings: Settings, tmp_path: Path) -> None:
    from training.data.export import EXPORT_LABEL, SORT_LABEL, export_topics

    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    for i in range(300):
        producer.send(settings.topic("interactions"), key=f"c{i % 9}".encode(), value=orjson.dumps(
            {"event_id": f"e{i}", "customer_id": f"c{i % 9}", "ts": 1_767_225_600_000 + i * 60_000, "type": "login",
             "schema_version": 1}))
    producer.flush()
    producer.close()
    calls: list[tuple[str, int, int | None]] = []
    stats = export_topics(settings, tmp_path / "out.parquet", progress=lambda *a: calls.append(a))
    assert stats.written == 300
    labels = list(dict.fromkeys(label for label, _, _ in calls))
    assert labels == [EXPORT_LABEL, SORT_LABEL, "writing out.parquet"]
    read = [(d, t) for label, d, t in calls if label == EXPORT_LABEL]
    assert [d for d, _ in read] == sorted(d for d, _ in read) and read[-1] == (300, 300)
    assert calls[-1] == ("writing out.parquet", 300, 300)
