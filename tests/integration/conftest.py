"""Shared fixtures for tests against the real embedded broker (Tansu) and real worker processes.

One broker per test session (Tansu's memory storage only grows, so it is never shared across sessions);
each test gets its own topic prefix and consumer group, so tests cannot see each other's events.
Every process started here is stopped by its pid.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson
import pytest
from kafka import KafkaProducer

from apps.demo import scrape
from devtools.broker import EmbeddedBroker, free_port, stop_process
from devtools.simulator import SimConfig, simulate, write_jsonl
from pipeline.config.fields import ENV_PREFIX
from pipeline.config.settings import Settings
from pipeline.kafka.feed import read_all
from pipeline.kafka.topics import ensure_topics
from pipeline.model.registry import Registry

REPO = Path(__file__).resolve().parents[2]
_ids = itertools.count(1)


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.25, what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy; fail with ``what`` and the last value on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except OSError as exc:  # endpoint not up yet
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last value: {last!r}")


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker(log_path=tmp_path_factory.mktemp("broker") / "broker.log").start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry holding one model trained on simulated history (shared, read-only for tests)."""
    from training.runs.from_log import train_from_log

    root = tmp_path_factory.mktemp("models")
    log = root.parent / "history.jsonl"
    write_jsonl(simulate(SimConfig(customers=800, days=210, seed=11, id_prefix="hist-")), log)
    train_from_log(log, Registry(root / "registry"), promote=True, progress=False)
    return root / "registry"


@pytest.fixture(scope="session")
def foreign_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry holding one model trained on a foreign-vocabulary product (22 event types of its own,
    none of them churnwatch's), so its learnt feature spec differs from ``trained_models``'."""
    from training.runs.from_log import train_from_log

    root = tmp_path_factory.mktemp("foreign-models")
    log = root.parent / "foreign-history.jsonl"
    write_jsonl(simulate(SimConfig(customers=500, days=150, seed=13, vocabulary=22, id_prefix="fh-")), log)
    train_from_log(log, Registry(root / "registry"), promote=True, progress=False, top_k=20)
    return root / "registry"


@pytest.fixture
def settings(broker: EmbeddedBroker, tmp_path: Path, trained_models: Path) -> Settings:
    """Settings for one test: private topics and consumer group, a copy-free pointer to the model."""
    n = next(_ids)
    s = Settings.from_env(env={}).with_(
        broker=broker.url, topic_prefix=f"t{n}.", app_id=f"churnwatch-t{n}", partitions=2,
        models_dir=trained_models, data_dir=tmp_path / "data", metrics_port=free_port(), web_port=free_port(),
        model_poll_s=1.0,
    )
    ensure_topics(s)
    return s


@dataclass
class WorkerProcess:
    settings: Settings
    proc: subprocess.Popen
    log_path: Path

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.metrics_port}/metrics"

    def metrics(self) -> dict[str, float]:
        return scrape(self.metrics_url)

    def metric(self, name: str) -> float:
        try:
            return self.metrics().get(name, 0.0)
        except OSError:
            return 0.0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        stop_process(self.proc, timeout, sig)


def _env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The worker's environment: every setting of ``settings`` as its CHURNWATCH_* variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(settings.to_env())
    env.update(extra or {})
    return env


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``churnwatch worker`` processes; all are stopped (by pid) at the end of the test."""
    started: list[WorkerProcess] = []

    def _start(settings: Settings, wait_ready: bool = True, extra_env: dict[str, str] | None = None) -> WorkerProcess:
        log_path = tmp_path / f"worker-{len(started)}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "apps.cli", "worker"], cwd=REPO,
                                    env=_env(settings, extra_env), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        w = WorkerProcess(settings, proc, log_path)
        started.append(w)
        if wait_ready:
            def ready() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(f"worker exited with {proc.returncode}:\n{w.log()[-3000:]}")
                return w.metric("churnwatch_worker_ready") >= 1
            wait_for(ready, 90, what="worker ready")
        return w

    yield _start
    for w in started:
        w.stop()


class EventSender:
    """Produces event dicts (or raw bytes) to the test's topics, keyed by customer id."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=5)

    def send(self, source: str, value: dict[str, Any] | bytes, key: str | None = None) -> None:
        if key is None and isinstance(value, dict):
            key = value.get("customer_id")
        payload = value if isinstance(value, bytes) else orjson.dumps(value)
        self.producer.send(self.settings.topic(source), key=key.encode() if key else None, value=payload)

    def send_all(self, records: list[tuple[str, dict[str, Any] | bytes]]) -> None:
        for source, value in records:
            self.send(source, value)
        self.producer.flush()

    def close(self) -> None:
        self.producer.close(timeout=5)


@pytest.fixture
def sender(settings: Settings) -> Iterator[EventSender]:
    s = EventSender(settings)
    yield s
    s.close()


def read_topic(settings: Settings, topic: str, idle_s: float = 0.5) -> list[dict[str, Any]]:
    return read_all(settings, topic, idle_s=idle_s)


# ---- the command line, in this process and as a real process ----------------------------------------
@pytest.fixture
def cli_env(broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A private topic prefix and app id on the session broker as CHURNWATCH_* variables (set in this
    process, every other CHURNWATCH_* variable removed); no topic is created."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    n = next(_ids)
    values = {"CHURNWATCH_BROKER": broker.url, "CHURNWATCH_TOPIC_PREFIX": f"c{n}.",
              "CHURNWATCH_APP_ID": f"churnwatch-c{n}", "CHURNWATCH_PARTITIONS": "2"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def churnwatch(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``churnwatch ARGV`` in this process: (exit code, stdout, stderr)."""
    import apps.cli

    try:
        code = apps.cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def run_cli(argv: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, str, str, float]:
    """``churnwatch ARGV`` as a process with these CHURNWATCH_* variables: (code, stdout, stderr, seconds)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    full.update(env)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "apps.cli", *argv], cwd=REPO, env=full, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0
