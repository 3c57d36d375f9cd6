"""Bad promotions against a real worker process on a real embedded broker.

Why: LightGBM segfaults (rc -11, no log line), aborts or hangs on some model files whose checksum
matches, and a ``CURRENT`` pointer that cannot be read used to raise out of the worker's poll. A worker
must survive all of it: stay up, keep scoring with the model it has, count the failed reload by reason,
and still pick up the next good promotion.

Each test starts its own Tansu broker (free port), registry, data dir and ``python -m apps.cli
worker`` (own metrics and web ports), and stops every process by its pid. Models are small, seeded
and trained in a second; the corrupt ones are written through ``Registry.save``, which hashes what it
writes, so their sha256 always matches. Waits poll a condition against a deadline.

Fixtures are named ``model_*`` (this suite's namespace in tests/faults).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import lightgbm as lgb
import numpy as np
import orjson
import pytest
from kafka import KafkaProducer

from devtools.broker import EmbeddedBroker, free_port, stop_process
from pipeline.config.settings import Settings
from pipeline.core.contract import DAY_MS
from pipeline.core.features import FEATURES
from pipeline.kafka.topics import ensure_topics
from pipeline.model.registry import Registry
from tests.integration.conftest import WorkerProcess, _env, wait_for
from tests.integration.scenarios import event

pytestmark = [pytest.mark.integration, pytest.mark.faults]

REPO = Path(__file__).resolve().parents[2]
SEED = 4242
META = {"features": list(FEATURES), "calibration": {"x": [0.0, 1.0], "y": [0.0, 1.0]},
        "thresholds": {"vip": 0.5, "standard": 0.6}}
INFO_V = 'churnwatch_model_info{{version="{}"}}'
FAILURES = 'churnwatch_model_reload_failures_total{{reason="{}"}}'


def model_text_for(seed: int) -> str:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(600, len(FEATURES))) * 3
    y = (X[:, 0] + rng.normal(size=600) > 2.0).astype(int)
    params = {"objective": "binary", "num_leaves": 4, "min_data_in_leaf": 20, "verbose": -1,
              "num_threads": 1, "deterministic": True, "force_row_wise": True, "seed": seed}
    return lgb.train(params, lgb.Dataset(X, label=y, feature_name=list(FEATURES)),
                     num_boost_round=6).model_to_string()


def _fix_tree_sizes(text: str) -> str:
    starts = [m.start() for m in re.finditer(r"^Tree=", text, flags=re.M)]
    bounds = starts + [text.index("end of trees")]
    sizes = [len(text[a:b].encode()) for a, b in zip(bounds, bounds[1:])]
    return re.sub(r"^tree_sizes=.*$", "tree_sizes=" + " ".join(map(str, sizes)), text, count=1, flags=re.M)


def _first_tree_value(text: str, key: str, value: str) -> str:
    """Set the first value of tree 0's ``key=`` array (tree_sizes kept consistent: it still parses)."""
    start = text.index("Tree=0\n")
    m = re.compile(rf"^{key}=(\S+)", flags=re.M).search(text, start)
    assert m is not None
    return _fix_tree_sizes(text[:m.start(1)] + value + text[m.end(1):])


def truncated(text: str) -> str:
    """LightGBM's parser aborts the process (SIGABRT: its error is thrown inside an OpenMP region)."""
    return text[: len(text) // 2]


def split_on_a_missing_feature(text: str) -> str:
    """Parses; LightGBM's predictor then reads far past the row: SIGSEGV in a worker."""
    return _first_tree_value(text, "split_feature", "2000000000")


def root_points_to_itself(text: str) -> str:
    """Parses; LightGBM's predictor loops forever: a worker's event loop would hang, deaf to SIGTERM."""
    return _first_tree_value(_first_tree_value(text, "left_child", "0"), "right_child", "0")


class ModelWorker(WorkerProcess):
    """The integration tests' worker process, plus what these tests ask of it."""

    def assert_alive(self, when: str) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"worker exited with {self.proc.returncode} {when}; log tail:\n{self.log()[-3000:]}")

    def stop_gracefully(self, timeout: float = 30.0) -> None:
        """SIGTERM, and it must exit by itself (a blocked event loop would ignore it)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_process(self.proc, 1)
            raise AssertionError(f"worker ignored SIGTERM for {timeout:.0f}s; log tail:\n{self.log()[-3000:]}") from None

    def wait_metric(self, name: str, at_least: float, timeout: float = 60.0) -> float:
        def reached() -> float:
            self.assert_alive(f"while waiting for {name} >= {at_least}")
            value = self.metric(name)
            return value if value >= at_least else 0.0
        return wait_for(reached, timeout, interval=0.2, what=f"{name} >= {at_least}")


@pytest.fixture(scope="module")
def model_good_texts() -> dict[str, str]:
    return {"first": model_text_for(SEED), "second": model_text_for(SEED + 1)}


@pytest.fixture
def model_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log").start()
    yield broker
    broker.stop()


@pytest.fixture
def model_registry(tmp_path: Path, model_good_texts: dict[str, str]) -> Registry:
    reg = Registry(tmp_path / "models")
    v1 = reg.save(model_good_texts["first"], META)
    reg.promote(v1)
    assert v1 == "v1"
    return reg


@pytest.fixture
def model_settings(model_broker: EmbeddedBroker, model_registry: Registry, tmp_path: Path) -> Settings:
    s = Settings.from_env(env={}).with_(
        broker=model_broker.url, topic_prefix="mf.", app_id="churnwatch-model-faults", partitions=2,
        models_dir=model_registry.root, data_dir=tmp_path / "data", metrics_port=free_port(),
        web_port=free_port(), model_poll_s=0.5,
    )
    ensure_topics(s)
    return s


@pytest.fixture
def model_worker(model_settings: Settings, tmp_path: Path) -> Iterator[ModelWorker]:
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "apps.cli", "worker"], cwd=REPO, env=_env(model_settings),
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    worker = ModelWorker(model_settings, proc, log_path)
    try:
        worker.wait_metric("churnwatch_worker_ready", 1, timeout=90)
        yield worker
    finally:
        stop_process(proc, 20)


@pytest.fixture
def model_producer(model_settings: Settings) -> Iterator[KafkaProducer]:
    producer = KafkaProducer(bootstrap_servers=model_settings.bootstrap_servers, linger_ms=5)
    yield producer
    producer.close(timeout=5)


class Traffic:
    """A few valid interaction events at a time; each batch must be consumed and scored."""

    def __init__(self, worker: ModelWorker, producer: KafkaProducer, tag: str) -> None:
        self.worker, self.producer, self.tag = worker, producer, tag
        self.sent = 0
        self.day = (int(time.time() * 1000) // DAY_MS - 1) * DAY_MS

    def batch_is_processed(self, n: int = 5) -> None:
        consumed = self.worker.metric("churnwatch_events_consumed_total")
        scored = self.worker.metric("churnwatch_scored_total")
        for i in range(n):
            source, value = event("interactions", f"{self.tag}-{i % 3}", self.day + (self.sent + i) * 1000, "login",
                                  duration_s=600)
            self.producer.send(self.worker.settings.topic(source), key=value["customer_id"].encode(),
                               value=orjson.dumps(value))
        self.producer.flush(30)
        self.sent += n
        self.worker.wait_metric("churnwatch_events_consumed_total", consumed + n)
        self.worker.wait_metric("churnwatch_scored_total", scored + 1)


def test_models_that_crash_or_hang_lightgbm_are_refused_and_scoring_goes_on(
        model_worker: ModelWorker, model_registry: Registry, model_producer: KafkaProducer,
        model_good_texts: dict[str, str]) -> None:
    reg, worker = model_registry, model_worker
    started = time.monotonic()
    assert worker.metric(INFO_V.format("v1")) == 1
    traffic = Traffic(worker, model_producer, f"mf-crash-{SEED}")
    traffic.batch_is_processed()

    good = model_good_texts["first"]
    # promoted without validation (as by hand, or by a tool that skips `churnwatch models promote`)
    v2 = reg.save(truncated(good), META)
    reg.promote(v2)
    worker.wait_metric(FAILURES.format("crashed"), 1)
    v3 = reg.save(split_on_a_missing_feature(good), META)
    reg.promote(v3)
    worker.wait_metric(FAILURES.format("corrupt"), 1)
    v4 = reg.save(root_points_to_itself(good), META)
    reg.promote(v4)
    worker.wait_metric(FAILURES.format("corrupt"), 2)

    worker.assert_alive("after the bad promotions")
    m = worker.metrics()
    assert m.get(INFO_V.format("v1")) == 1 and m.get("churnwatch_model_loaded") == 1
    assert all(INFO_V.format(v) not in m for v in (v2, v3, v4))
    traffic.batch_is_processed()  # still consuming and scoring, with v1

    # the next good promotion is picked up: the worker is not stuck on its rejections
    v5 = reg.save(model_good_texts["second"], META)
    reg.promote(v5)
    worker.wait_metric(INFO_V.format(v5), 1)
    traffic.batch_is_processed()
    assert worker.metric(FAILURES.format("crashed")) == 1  # v2 was never retried
    worker.stop_gracefully()  # the worker's log is block-buffered: read it once it has exited
    log = worker.log()
    for version, reason in ((v2, "crashed"), (v3, "corrupt"), (v4, "corrupt")):
        assert log.count(f"rejected model {version} ({reason})") == 1, log[-3000:]
    assert log.count("; keeping v1") == 3
    print(f"\nmodel faults (crash/segfault/hang files): {time.monotonic() - started:.1f}s after ready")


def test_an_unreadable_current_pointer_is_a_counted_failure_not_a_dead_worker(
        model_worker: ModelWorker, model_registry: Registry, model_producer: KafkaProducer,
        model_good_texts: dict[str, str]) -> None:
    reg, worker = model_registry, model_worker
    started = time.monotonic()
    traffic = Traffic(worker, model_producer, f"mf-pointer-{SEED}")
    traffic.batch_is_processed()
    current = reg.root / "CURRENT"

    current.unlink()
    current.mkdir()  # CURRENT is a directory
    failures = worker.wait_metric(FAILURES.format("registry_error"), 1)
    traffic.batch_is_processed()
    current.rmdir()

    current.write_bytes(b"\xff\xfe\x00v1\n")  # not text
    failures = worker.wait_metric(FAILURES.format("registry_error"), failures + 1)
    traffic.batch_is_processed()

    if os.geteuid() != 0:  # root reads a mode-000 file anyway
        current.write_text("v1\n")
        current.chmod(0)
        try:
            failures = worker.wait_metric(FAILURES.format("registry_error"), failures + 1)
            traffic.batch_is_processed()
        finally:
            current.chmod(0o644)

    current.write_text("v9\n")  # names a version that is not there
    failures = worker.wait_metric(FAILURES.format("registry_error"), failures + 1)

    worker.assert_alive("after the broken pointers")
    assert worker.metric(INFO_V.format("v1")) == 1
    traffic.batch_is_processed()

    v2 = reg.save(model_good_texts["second"], META)
    reg.promote(v2)
    worker.wait_metric(INFO_V.format(v2), 1)
    traffic.batch_is_processed()
    worker.stop_gracefully()
    log = worker.log()
    assert log.count("(registry_error)") == failures and log.count("; keeping v1") == failures, log[-3000:]
    print(f"\nmodel faults (broken CURRENT): {time.monotonic() - started:.1f}s after ready, "
          f"{failures:.0f} registry_error reloads counted")
