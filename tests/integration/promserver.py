"""Run a real Prometheus server (and Alertmanager) for integration tests.

Why a real server: the operator-facing promise is "Prometheus scrapes the workers and the rules and
dashboard queries work". A fake scraper would only test our reading of the exposition format, so
the tests start Debian's ``/usr/bin/prometheus`` (install it with
``scripts/ensure-debian-packages.sh prometheus``) against loopback targets and query it over its
HTTP API, exactly as Grafana does.

The server listens on 127.0.0.1 only, keeps its TSDB in a temporary directory, and is stopped by its
own pid on exit (never by name), so parallel test sessions and other Prometheus processes on the
machine are left alone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROMETHEUS_BIN = "/usr/bin/prometheus"

#: urllib honours http_proxy/HTTP_PROXY; a proxy must never see (or break) loopback test traffic.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class PrometheusStartError(RuntimeError):
    """Prometheus exited or did not become ready; the message carries its stderr tail."""


@dataclass
class PromServer:
    """A running Prometheus: its base URL plus small helpers over the HTTP query API."""

    url: str
    pid: int
    config_path: Path
    stderr_path: Path = field(repr=False)

    def query(self, expr: str, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Evaluate ``expr`` now (``/api/v1/query``) and return the result list.

        Vector results come back as Prometheus sends them (``[{"metric": {...}, "value": [ts, "v"]}]``);
        scalar and string results are wrapped in the same shape with an empty ``metric`` so callers
        can treat every result as a list.
        """
        qs = urllib.parse.urlencode({"query": expr})
        try:
            with _OPENER.open(f"{self.url}/api/v1/query?{qs}", timeout=timeout) as resp:
                body = json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:  # 400/422 carry a JSON error body worth showing
            detail = exc.read().decode("utf-8", "replace")
            raise RuntimeError(f"query {expr!r} failed: HTTP {exc.code}: {detail}") from None
        if body.get("status") != "success":
            raise RuntimeError(f"query {expr!r} failed: {body.get('errorType')}: {body.get('error')}")
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 15.0,
        interval: float = 0.25,
    ) -> list[dict[str, Any]]:
        """Poll ``expr`` until ``predicate(result)`` holds and return that result.

        Polling rather than sleeping keeps tests fast when the scrape lands early and still tolerant
        when the machine is slow. On timeout an ``AssertionError`` shows the last result (or the
        last query error), which is what one needs to see to debug a failing test.
        """
        deadline = time.monotonic() + timeout
        last: list[dict[str, Any]] | None = None
        last_error: Exception | None = None
        while True:
            try:
                last = self.query(expr)
                last_error = None
                if predicate(last):
                    return last
            except (RuntimeError, OSError) as exc:
                last_error = exc
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
        if last_error is not None:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {expr!r}; last error: {last_error}"
            )
        raise AssertionError(f"timed out after {timeout}s waiting for {expr!r}; last result: {last!r}")

    def stderr_tail(self, lines: int = 20) -> str:
        """The last lines Prometheus logged, for error messages."""
        return _tail(self.stderr_path, lines)


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no stderr captured)"
    return "\n".join(text.splitlines()[-lines:]) or "(stderr empty)"


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_config(path: Path, targets: list[str], scrape_interval: str, job: str = "test",
                  rule_files: Sequence[Path] = (), alertmanagers: Sequence[str] = ()) -> None:
    """Write a minimal prometheus.yml; JSON is valid YAML, so no YAML library is needed."""
    for target in [*targets, *alertmanagers]:
        host, sep, port = target.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"target must look like host:port, got {target!r}")
    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [
            {
                "job_name": job,
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "static_configs": [{"targets": list(targets)}],
            }
        ],
    }
    if rule_files:
        config["rule_files"] = [str(Path(p).resolve()) for p in rule_files]
    if alertmanagers:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _is_ready(url: str) -> bool:
    try:
        with _OPENER.open(f"{url}/-/ready", timeout=1.0) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM this pid, wait, then SIGKILL it if it did not exit (Prometheus flushes its head
    block on SIGTERM, which takes well under a second for a test-sized TSDB)."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def _start_once(
    binary: str, workdir: Path, config_path: Path, stderr_path: Path, ready_timeout: float
) -> tuple[subprocess.Popen[bytes], str]:
    data_dir = workdir / "data"
    data_dir.mkdir(exist_ok=True)
    return _start_server(
        "prometheus",
        lambda port: [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
        ],
        workdir, stderr_path, ready_timeout,
    )


def _start_server(
    name: str, argv: Callable[[int], list[str]], workdir: Path, stderr_path: Path, ready_timeout: float
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``argv(port)`` on a free loopback port and wait for its ``/-/ready`` (Prometheus and
    Alertmanager both have one)."""
    port = _free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    with stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            argv(port),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=workdir,
            # Own session: a Ctrl-C in the terminal reaches pytest, which then stops us cleanly.
            start_new_session=True,
        )
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PrometheusStartError(
                f"{name} exited with code {proc.returncode} before becoming ready; "
                f"stderr tail:\n{_tail(stderr_path, 20)}"
            )
        if _is_ready(url):
            return proc, url
        time.sleep(0.1)
    _stop(proc)
    raise PrometheusStartError(
        f"{name} was not ready at {url}/-/ready within {ready_timeout}s; "
        f"stderr tail:\n{_tail(stderr_path, 20)}"
    )


@contextmanager
def run_prometheus(
    targets: list[str],
    scrape_interval: str = "1s",
    *,
    job: str = "test",
    rule_files: Sequence[Path] = (),
    alertmanagers: Sequence[str] = (),
    binary: str = PROMETHEUS_BIN,
    ready_timeout: float = 30.0,
) -> Iterator[PromServer]:
    """Start Prometheus scraping ``targets`` (``host:port`` strings) and yield a :class:`PromServer`.

    ``job`` names the scrape job (``churnwatch`` makes the deploy rules' ``up{job="churnwatch"}``
    match); ``rule_files`` are loaded and evaluated every ``scrape_interval``; firing alerts go to
    ``alertmanagers`` (``host:port``).

    The config, TSDB and stderr log live in one temporary directory that is removed on exit, after
    the process has been stopped by its pid. The free port is picked just before starting, so if
    another process grabs it in between, the start is retried on a new port.
    """
    if not Path(binary).is_file():
        raise FileNotFoundError(
            f"{binary} not found; install it with: scripts/ensure-debian-packages.sh prometheus"
        )
    workdir = Path(tempfile.mkdtemp(prefix="churnwatch-prom-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        config_path = workdir / "prometheus.yml"
        stderr_path = workdir / "prometheus.stderr.log"
        _write_config(config_path, targets, scrape_interval, job, rule_files, alertmanagers)
        for attempt in range(3):
            try:
                proc, url = _start_once(binary, workdir, config_path, stderr_path, ready_timeout)
                break
            except PrometheusStartError as exc:
                if attempt < 2 and "address already in use" in str(exc):
                    continue
                raise
        assert proc is not None
        yield PromServer(url=url, pid=proc.pid, config_path=config_path, stderr_path=stderr_path)
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


# ---- Alertmanager --------------------------------------------------------------------------------

ALERTMANAGER_BIN = "/usr/bin/prometheus-alertmanager"  # Debian package prometheus-alertmanager


@dataclass
class AlertmanagerServer:
    """A running Alertmanager: its base URL plus its v2 API's alert endpoints."""

    url: str
    pid: int
    stderr_path: Path = field(repr=False)

    @property
    def address(self) -> str:
        """``host:port``, as a Prometheus ``alerting`` target."""
        return self.url.split("://", 1)[1]

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """What Prometheus does when rules fire: ``POST /api/v2/alerts``."""
        req = urllib.request.Request(f"{self.url}/api/v2/alerts", data=json.dumps(alerts).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with _OPENER.open(req, timeout=5) as resp:
            if resp.status != 200:
                raise RuntimeError(f"POST /api/v2/alerts: HTTP {resp.status}")

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert Alertmanager holds, with its ``status`` (active / suppressed, inhibitedBy)."""
        with _OPENER.open(f"{self.url}/api/v2/alerts", timeout=5) as resp:
            return list(json.loads(resp.read().decode("utf-8")))

    def stderr_tail(self, lines: int = 20) -> str:
        return _tail(self.stderr_path, lines)


@contextmanager
def run_alertmanager(
    config_path: Path, *, binary: str = ALERTMANAGER_BIN, ready_timeout: float = 30.0
) -> Iterator[AlertmanagerServer]:
    """Start Alertmanager with ``config_path`` on a free loopback port, without clustering (no gossip
    port), its data in a temporary directory; stopped by its pid on exit."""
    if not Path(binary).is_file():
        raise FileNotFoundError(
            f"{binary} not found; install it with: scripts/ensure-debian-packages.sh prometheus-alertmanager"
        )
    workdir = Path(tempfile.mkdtemp(prefix="churnwatch-am-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        stderr_path = workdir / "alertmanager.stderr.log"
        data_dir = workdir / "data"
        data_dir.mkdir()

        def argv(port: int) -> list[str]:
            return [binary, f"--config.file={config_path}", f"--storage.path={data_dir}",
                    f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="]

        for attempt in range(3):
            try:
                proc, url = _start_server("alertmanager", argv, workdir, stderr_path, ready_timeout)
                break
            except PrometheusStartError as exc:
                if attempt < 2 and "address already in use" in str(exc):
                    continue
                raise
        assert proc is not None
        yield AlertmanagerServer(url=url, pid=proc.pid, stderr_path=stderr_path)
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)
