"""What a real worker writes to its output: JSON lines with CHURNWATCH_LOG_FORMAT=json, and no
terminal escape codes in either format (Faust's spinner and colours used to put them in log files)."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from devtools.broker import stop_process
from pipeline.config.settings import Settings
from tests.integration.conftest import REPO, _env, wait_for

pytestmark = pytest.mark.integration


def test_json_format_makes_every_line_one_json_object(settings: Settings, start_worker, sender) -> None:
    worker = start_worker(settings, extra_env={"CHURNWATCH_LOG_FORMAT": "json", "CHURNWATCH_LOG_LEVEL": "INFO"})
    sender.send("interactions", b"{not json", key="log-1")
    sender.producer.flush()
    wait_for(lambda: worker.metric('churnwatch_deadletters_total{reason="not_json"}') >= 1, 60, what="dead letter")
    worker.stop()
    assert worker.proc.returncode == 0
    text = worker.log()  # stdout and stderr together: stdout must add nothing that is not JSON either
    assert "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) > 20, text
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"line {number} is not JSON: {line!r}") from None
        assert isinstance(record, dict) and {"ts", "level", "logger", "message"} <= set(record), line
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["ts"]), line
        records.append(record)
    loggers = {r["logger"].split(".")[0] for r in records}
    assert {"churnwatch", "faust", "aiokafka"} <= loggers, loggers
    assert {r["level"] for r in records} <= {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
    assert any(r["logger"] == "churnwatch.worker" and "restored" in r["message"] for r in records)
    assert any("Ready" in r["message"] for r in records)  # Faust's start-up line, logged instead of a spinner


def test_text_format_has_no_escape_codes_when_stderr_is_no_terminal(settings: Settings, tmp_path: Path) -> None:
    """stdout on a terminal (a pseudo-terminal here), stderr to a file, the default level: Faust
    coloured the lines by stdout and drew its spinner's cursor codes there."""
    master, slave = pty.openpty()
    terminal: list[bytes] = []

    def drain() -> None:  # read the terminal side, or a full pty buffer would block the worker
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            terminal.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    stderr_path = tmp_path / "worker.stderr"
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "apps.cli", "worker"], cwd=REPO,
                                env=_env(settings, {"CHURNWATCH_LOG_FORMAT": "text"}), stdin=subprocess.DEVNULL,
                                stdout=slave, stderr=err)
    os.close(slave)
    try:
        from apps.demo import scrape

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"worker exited with {proc.returncode}:\n{stderr_path.read_text()[-3000:]}")
            try:
                return scrape(f"http://127.0.0.1:{settings.metrics_port}/metrics").get("churnwatch_worker_ready", 0) >= 1
            except OSError:
                return False

        wait_for(ready, 90, what="worker ready")
    finally:
        stop_process(proc, 20)
        reader.join(10)
        os.close(master)
    assert proc.returncode == 0, stderr_path.read_text()
    on_terminal = b"".join(terminal)
    assert b"\x1b[" not in on_terminal, on_terminal[:300]
    text = stderr_path.read_text()
    assert "\x1b[" not in text, text[:1000]
    for line in text.splitlines():
        assert re.match(r"^\[\d{4}-\d\d-\d\d [\d:,]+\] \[\d+\] \[[A-Z]+\] [\w.]+: ", line), line


def test_a_worker_that_cannot_start_says_why_in_one_json_line(tmp_path: Path) -> None:
    """A fatal start-up error (no broker on that port) is a JSON line too, and the exit code is 2."""
    from devtools.broker import free_port
    from tests.integration.conftest import run_cli

    code, out, err, _ = run_cli(["worker"], {"CHURNWATCH_BROKER": f"kafka://127.0.0.1:{free_port()}",
                                             "CHURNWATCH_LOG_FORMAT": "json", "CHURNWATCH_CONNECT_TIMEOUT_S": "2",
                                             "CHURNWATCH_DATA_DIR": str(tmp_path / "data")}, timeout=60)
    assert code == 2, err
    assert out == ""
    records = [json.loads(line) for line in err.splitlines()]
    assert records and records[-1]["level"] == "ERROR" and records[-1]["logger"] == "churnwatch.worker"
    assert records[-1]["message"].startswith("churnwatch worker: error: ")
    assert "Traceback" not in err
