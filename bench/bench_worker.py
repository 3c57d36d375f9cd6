"""End-to-end cost of a ``churnwatch worker`` on the embedded Tansu broker: sustained throughput and
produce-to-score latency, each next to a same-run baseline.

Why end to end: the per-event figures of ``bench_features``/``bench_scoring`` add up to a ceiling; the
worker pays for Faust, aiokafka, the changelog and the broker on top. Two baselines in the same run make
that visible:

* **transport**: a raw aiokafka consumer reading and ``orjson``-decoding the very same input topics (what
  any Python consumer pays before doing any work), and
* **core**: the worker's own batch code (``pipeline.worker.batch.BatchProcessor.process_batch``: parse, state load,
  ``apply``, ``vector``, batched predict, alert policy, state store) driven in-process on the same events in
  500-event batches, with Kafka sends stubbed out (what churnwatch's code costs without Faust and Kafka).

Phases, each with its own topics and consumer group on one broker started for this run and stopped by pid:

1. *throughput*: produce every simulated event up front (aiokafka, batched), then start one worker
   subprocess (``python -m apps.cli worker`` with ``CHURNWATCH_*`` variables, as the integration tests
   do), poll its ``/metrics`` for ``churnwatch_events_consumed_total`` and report events/s from the first to
   the last consumed event, plus RSS, CPU, customers tracked, scorings and alerts.
2. *latency*: a fresh worker with ``CHURNWATCH_EMIT_SCORES=1``. A simulated backlog (34 days of history
   ending at today's UTC midnight) is produced and consumed first, so customers are past the model's
   28-day history guard; then the simulation's last events are produced at a paced rate with their event
   time set to the wall clock at send, so for every event-triggered score record
   ``latency = record timestamp (set by the worker's producer) - ts_ms (the triggering event's time)``,
   and for every non-sweep alert ``latency = alert record timestamp - event_ms``. The time a score record
   reaches a consumer tailing the scores topic is reported as well. Once the worker has stopped, the
   same events are paced again at the same rate to topics of their own, read by raw aiokafka consumers:
   the transport's own latency (the floor), the same-run baseline. (Run beside the worker, those
   consumers' 5 ms polls took ~30% of a core of the broker's from it.)

Run: ``.venv/bin/python bench/bench_worker.py [--quick] [--rate 1000] [--models DIR | --spec legacy]``
(``bench/before_after.py`` runs it against an older commit and this tree in alternation.)
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import orjson

from _common import REPO, BenchError, Report, load_note, main_guard, parser, percentile, section

from apps.demo import scrape
from devtools.broker import EmbeddedBroker, free_port, stop_process
from devtools.simulator import SimConfig, SimRecord, encode_value, simulate, write_jsonl
from pipeline.config.settings import Settings
from pipeline.kafka.topics import ensure_topics
from pipeline.model.registry import Registry

CLK_TCK = os.sysconf("SC_CLK_TCK")
PARTITIONS = 4
#: Fixed simulation windows, so every run trains the same model and replays the same events.
TRAIN_START_MS = 1_735_689_600_000  # 2025-01-01 UTC
EVENTS_START_MS = 1_748_736_000_000  # 2025-06-01 UTC


# ---- processes -------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) from /proc."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status_kb(pid: int, key: str) -> int:
    """A memory line of /proc/<pid>/status (e.g. VmRSS, VmHWM) in kB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


@dataclass
class WorkerProc:
    """One ``churnwatch worker`` subprocess that this benchmark owns and stops by pid."""

    settings: Settings
    proc: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def metrics(self) -> dict[str, float]:
        return scrape(f"http://127.0.0.1:{self.settings.metrics_port}/metrics", timeout=2.0)

    def metric(self, name: str) -> float:
        try:
            return self.metrics().get(name, 0.0)
        except OSError:
            return 0.0

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"worker exited with code {self.proc.returncode}: {self.last_error()}")

    def last_error(self) -> str:
        """The most telling line of the worker's log: the last error-looking line, else the last line."""
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", self.log_path.read_text(errors="replace"))
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        errors = [ln for ln in lines if re.search(r"error|exception|refused|denied|address already in use", ln, re.I)]
        return ((errors or lines or ["(empty log)"])[-1])[:300]

    def stop(self, timeout: float = 20.0) -> None:
        stop_process(self.proc, timeout)


def start_worker(settings: Settings, log_path: Path, emit_scores: bool = False) -> WorkerProc:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNWATCH_")}
    env.update({
        "CHURNWATCH_BROKER": settings.broker,
        "CHURNWATCH_TOPIC_PREFIX": settings.topic_prefix,
        "CHURNWATCH_APP_ID": settings.app_id,
        "CHURNWATCH_PARTITIONS": str(settings.partitions),
        "CHURNWATCH_MODELS_DIR": str(settings.models_dir),
        "CHURNWATCH_DATA_DIR": str(settings.data_dir),
        "CHURNWATCH_METRICS_PORT": str(settings.metrics_port),
        # the worker's web server (when this version has one) must not collide with another worker's
        "CHURNWATCH_WEB_PORT": str(getattr(settings, "web_port", 0) or free_port()),
        "CHURNWATCH_MODEL_POLL_S": str(settings.model_poll_s),
        "CHURNWATCH_EMIT_SCORES": "1" if emit_scores else "0",
    })
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "apps.cli", "worker"], cwd=REPO, env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return WorkerProc(settings, proc, log_path)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1,
             alive: Callable[[], None] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")


# ---- data ------------------------------------------------------------------------------------------
def train_registry(root: Path, spec: str = "default") -> Path:
    """A small model in a throw-away registry, trained from a simulated log (~3 s).

    ``spec="default"`` trains as ``churnwatch train`` does in this code (a learnt feature spec where specs
    exist, the built-in features before); ``"legacy"`` asks for the built-in features only, so a tree with
    specs can be measured at the feature set of one without.
    """
    from training.runs.from_log import train_from_log

    kwargs: dict[str, Any] = {}
    if spec == "legacy":
        try:
            from pipeline.core.spec import FeatureSpec
        except ImportError:
            raise BenchError("--spec legacy needs a tree with feature specs (pipeline/core/spec.py)") from None
        kwargs["spec"] = FeatureSpec.legacy_spec()
    log = root / "history.jsonl"
    write_jsonl(simulate(SimConfig(customers=300, days=150, seed=11, start_ms=TRAIN_START_MS, id_prefix="hist-")), log)
    registry = Registry(root / "registry")
    train_from_log(log, registry, promote=True, progress=False, **kwargs)
    return registry.root


def model_registry(models: Path | None, root: Path, spec: str = "default") -> Path:
    """``models`` when given, else a registry trained under ``root`` for this run; says which model."""
    if models is None:
        t0 = time.perf_counter()
        models = train_registry(root, spec)
        print(f"  model trained in {time.perf_counter() - t0:.1f}s")
    print(f"  model: {describe_model(models)}")
    return models


def describe_model(models: Path) -> str:
    """What the promoted model computes: a before/after pairs runs by model, so say which one ran."""
    registry = Registry(models)
    version = registry.current()
    if version is None:
        raise BenchError(f"no promoted model in the registry at {models}")
    meta = registry.meta(version)
    spec = meta.get("feature_spec")
    what = "no feature spec (built-in features)" if spec is None else (
        "built-in features only" if spec.get("legacy") else f"learnt spec, {len(spec.get('types', ()))} types")
    return f"{version}, {len(meta.get('features', ()))} features, {what}"


def bench_settings(broker: EmbeddedBroker, root: Path, models: Path, name: str) -> Settings:
    ports = {"metrics_port": free_port()}
    if "web_port" in Settings.model_fields:
        ports["web_port"] = free_port()
    s = Settings.from_env(env={}).with_(
        broker=broker.url, topic_prefix=f"{name}.", app_id=f"churnwatch-{name}", partitions=PARTITIONS,
        models_dir=models, data_dir=root / f"data-{name}", model_poll_s=5.0, **ports,
    )
    ensure_topics(s)
    return s


async def produce_all(settings: Settings, records: list[SimRecord]) -> float:
    """Produce every record as fast as aiokafka batches them; returns seconds taken."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=20,
                                max_batch_size=256 * 1024, acks=1)
    await producer.start()
    try:
        topics = {src: settings.topic(src) for src in settings.input_topics}
        t0 = time.perf_counter()
        pending = []
        for rec in records:
            pending.append(await producer.send(topics[rec.source], encode_value(rec), key=rec.key.encode()))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return time.perf_counter() - t0
    finally:
        await producer.stop()


async def raw_consume(settings: Settings, expected: int, timeout: float = 120.0) -> float:
    """Baseline: aiokafka reads every input partition from the start and decodes each value with orjson.

    Same fetch sizes as the worker's Faust settings. Returns seconds from the first fetch to the last record.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in settings.input_topics.values() for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        n = 0
        loads = orjson.loads
        t0 = time.perf_counter()
        deadline = time.monotonic() + timeout
        while n < expected:
            if time.monotonic() > deadline:
                raise BenchError(f"raw consumer read {n} of {expected} records within {timeout:.0f}s")
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for recs in batches.values():
                for rec in recs:
                    loads(rec.value)
                n += len(recs)
        return time.perf_counter() - t0
    finally:
        await consumer.stop()


# ---- core baseline ---------------------------------------------------------------------------------
async def core_baseline(settings: Settings, records: list[SimRecord], batch_size: int = 500) -> dict[str, float]:
    """The worker's own ``process_batch`` in-process, Kafka sends stubbed, on the same events.

    Messages get the partition Kafka's default partitioner gives their key and per-partition offsets, so
    idempotence, the sweep clock and changelog routing run exactly as in the worker.
    """
    from training.assess.shadow import partitioner

    from pipeline.worker import metrics
    from pipeline.worker.batch import BatchProcessor

    logging.getLogger("churnwatch.scoring").setLevel(logging.ERROR)  # "loaded model" is not a figure
    worker = BatchProcessor(settings.with_(broker="kafka://127.0.0.1:1"))  # never connects
    worker.refresh_model()
    if worker.models.model is None:
        raise BenchError("core baseline: no model in the registry")
    sends = {"changelog": 0, "alerts": 0}

    def sink(records: Any) -> None:
        for topic, *_ in records:
            if topic == settings.changelog_topic:
                sends["changelog"] += 1
            elif topic == settings.alerts_topic:
                sends["alerts"] += 1

    worker.detach(sink)
    offsets: dict[tuple[str, int], int] = {}
    fake = []
    partition_of = partitioner(settings.partitions)
    for rec in records:
        key = rec.key.encode()
        topic = settings.topic(rec.source)
        part = partition_of(rec.key)
        off = offsets.get((topic, part), 0)
        offsets[(topic, part)] = off + 1
        fake.append(SimpleNamespace(topic=topic, partition=part, offset=off, key=key, value=encode_value(rec)))
    batches = [fake[i:i + batch_size] for i in range(0, len(fake), batch_size)]
    scored0 = metrics.SCORED._value.get()
    t0 = time.perf_counter()
    for batch in batches:
        await worker.process_batch(batch)
    await worker.drain()
    elapsed = time.perf_counter() - t0
    return {"seconds": elapsed, "batches": len(batches), "scored": metrics.SCORED._value.get() - scored0,
            "alerts": sends["alerts"], "changelog": sends["changelog"], "customers": len(worker.store)}


# ---- phase 1: throughput ---------------------------------------------------------------------------
@dataclass
class Sample:
    t: float
    consumed: float
    worker_cpu: float
    broker_cpu: float


def rate_between(samples: list[Sample], lo: float, hi: float) -> tuple[float, Sample, Sample]:
    """events/s between the first samples at or above ``lo`` and ``hi`` consumed events."""
    a = next(s for s in samples if s.consumed >= lo)
    b = next(s for s in samples if s.consumed >= hi)
    return ((b.consumed - a.consumed) / (b.t - a.t) if b.t > a.t else float("nan")), a, b


def changelog_records(settings: Settings) -> int:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(settings.changelog_topic, p) for p in range(settings.partitions)]
        return int(sum(c.end_offsets(tps).values()))
    finally:
        c.close()


def throughput_phase(report: Report, broker: EmbeddedBroker, root: Path, models: Path, quick: bool) -> None:
    customers, days = (250, 32) if quick else (800, 40)
    section(f"worker throughput: simulating {customers} customers x {days} days")
    records = list(simulate(SimConfig(customers=customers, days=days, seed=7, start_ms=EVENTS_START_MS)))
    n = len(records)
    print(f"  {n:,} events (the last {days - 28} days are past the 28-day history guard, so alerts can fire)")
    settings = bench_settings(broker, root, models, "tput")

    t_prod = asyncio.run(produce_all(settings, records))
    report.add("aiokafka produce, batched (up front)", n / t_prod, "msg/s", f"{n:,} events in {t_prod:.1f}s")
    t_raw = asyncio.run(raw_consume(settings, n))
    raw_rate = n / t_raw
    report.add("baseline: raw aiokafka consume + orjson decode", raw_rate, "events/s", "same topics, same run")

    core = asyncio.run(core_baseline(settings.with_(data_dir=root / "data-core"), records))
    core_rate = n / core["seconds"]
    report.add("baseline: worker batch code in-process, no Kafka", core_rate, "events/s",
               f"{core['batches']} batches of 500, {core['scored'] / max(core['batches'], 1):.0f} customers scored per batch, "
               f"{core['alerts']} alerts (no sweep)")

    w = start_worker(settings, root / "worker-tput.log")
    broker_pid = broker.pid or 0
    try:
        samples: list[Sample] = []
        rss_start_kb = 0
        t_start = time.monotonic()
        last_change = t_start
        last = -1.0
        while True:
            w.check_alive()
            now = time.monotonic()
            consumed = w.metric("churnwatch_events_consumed_total")
            samples.append(Sample(now, consumed, cpu_seconds(w.pid), cpu_seconds(broker_pid)))
            if consumed > 0 and not rss_start_kb:
                rss_start_kb = proc_status_kb(w.pid, "VmRSS")
            if consumed != last:
                last, last_change = consumed, now
            if consumed >= n:
                break
            if consumed == 0 and now - t_start > 120:
                raise BenchError("the worker consumed nothing within 120s of starting")
            if consumed > 0 and now - last_change > 60:
                raise BenchError(f"the worker stalled at {consumed:.0f} of {n} events for 60s")
            time.sleep(0.1)
        first = next(s for s in samples if s.consumed > 0)
        startup = first.t - t_start
        rate, a, b = rate_between(samples, 1, n)
        rate_mid, a2, b2 = rate_between(samples, 0.1 * n, 0.9 * n)
        wcpu = (b.worker_cpu - a.worker_cpu) / (b.t - a.t)
        bcpu = (b.broker_cpu - a.broker_cpu) / (b.t - a.t)
        per_s = []
        for s in samples:
            if a.t <= s.t and s.t + 1.0 <= b.t:
                e = next(x for x in samples if x.t >= s.t + 1.0)
                per_s.append((e.consumed - s.consumed) / (e.t - s.t))
        report.add("worker: sustained, first to last event consumed", rate, "events/s",
                   f"{rate / raw_rate * 100:.1f}% of raw consume, {rate / core_rate * 100:.0f}% of the in-process core; "
                   f"{b.t - a.t:.1f}s for {n:,} events")
        report.add("worker: steady state, 10% -> 90% of events", rate_mid, "events/s")
        if per_s:
            report.add("worker: slowest 1-second window", min(per_s), "events/s")
        report.add("worker: start-up, process start to first event", startup, "s")
        report.add("worker: CPU while consuming", wcpu * 100, "% of one core", f"{wcpu * (b.t - a.t) / n * 1e6:.0f} µs CPU/event")
        report.add("broker (Tansu): CPU while the worker consumes", bcpu * 100, "% of one core")

        # the customers gauge is refreshed every 5 s: wait for a refresh after the last event
        time.sleep(5.5)
        w.check_alive()
        m = w.metrics()
        rss_kb = proc_status_kb(w.pid, "VmRSS")
        report.add("worker: RSS after the run (VmRSS)", rss_kb / 1024, "MiB",
                   f"peak VmHWM {proc_status_kb(w.pid, 'VmHWM') / 1024:.0f} MiB, "
                   f"{rss_start_kb / 1024:.0f} MiB at the first event")
        report.add("worker: churnwatch_customers_tracked", m.get("churnwatch_customers_tracked", 0), "customers",
                   f"{customers} simulated")
        scored = m.get("churnwatch_scored_total", 0)
        calls = m.get("churnwatch_scoring_latency_seconds_count", 0)
        report.add("worker: scorings (churnwatch_scored_total)", scored, "scorings",
                   f"{scored / n:.2f} per event, {scored / calls if calls else 0:.0f} rows per predict call")
        if calls:
            report.add("worker: mean predict call (scoring latency histogram)",
                       m.get("churnwatch_scoring_latency_seconds_sum", 0) / calls * 1e3, "ms",
                       f"{calls:.0f} calls")
        by_trigger: dict[str, float] = {}
        for k, v in m.items():
            if k.startswith("churnwatch_alerts_emitted_total{") and 'trigger="' in k:
                trig = k.split('trigger="', 1)[1].split('"', 1)[0]
                by_trigger[trig] = by_trigger.get(trig, 0.0) + v
        report.add("worker: alerts emitted", m.get("churnwatch_alerts_emitted_total", 0), "alerts",
                   ", ".join(f"{t} {v:.0f}" for t, v in sorted(by_trigger.items())) or "")
        dead = m.get("churnwatch_deadletters_total", 0)
        if dead:
            report.add("worker: dead-lettered events", dead, "events")
        try:
            cl = changelog_records(settings)
            report.add("worker: changelog records written", cl, "records", f"{cl / n:.2f} per event")
        except Exception as exc:  # noqa: BLE001 - a side figure; the run is still valid without it
            print(f"  (changelog size unavailable: {exc})")
    finally:
        w.stop()


# ---- phase 2: latency ------------------------------------------------------------------------------
#: Faust 0.15 hard-codes this for its consumer; Tansu holds a fetch for up to about half of it even when
#: data is waiting, so it sets the floor of the worker's latency on the embedded broker.
FAUST_FETCH_MAX_WAIT_MS = 1500
TRANSPORT_WAITS_MS = (FAUST_FETCH_MAX_WAIT_MS, 5)
#: The transport baseline is paced for at most this long (seconds), after the worker has stopped
TRANSPORT_SECONDS = 8.0


@dataclass
class LatencyResult:
    sent: int = 0
    send_seconds: float = 0.0
    ts_latency_ms: list[float] = field(default_factory=list)
    recv_latency_ms: list[float] = field(default_factory=list)
    #: transport baseline: produce -> a raw aiokafka consumer of the input topics, by fetch_max_wait_ms
    transport_ms: dict[int, list[float]] = field(default_factory=dict)
    sweep_scores: int = 0
    timestamp_types: set[int] = field(default_factory=set)
    #: event -> alert: alert record timestamp - the triggering event's time, for non-sweep alerts
    alert_latency_ms: list[float] = field(default_factory=list)
    alert_triggers: dict[str, int] = field(default_factory=dict)
    done_at: float = 0.0
    #: the tails stopped waiting for the worker to catch up (it fell far behind the paced rate)
    drain_cut: bool = False


async def paced_run(settings: Settings, records: list[SimRecord], rate: float, warmup_s: float,
                    drain_s: float = 3.0, max_drain_s: float = 30.0, transport: bool = False) -> LatencyResult:
    """Send ``records`` at ``rate`` events/s with ``ts`` = wall clock at send, while tailing the worker's
    scores and alerts topics; with ``transport``, the input topics themselves instead, with raw aiokafka
    consumers (the transport baseline, run on its own: its consumers polling every 5 ms took ~30% of a
    core of the broker's, which the worker beside them then lacked)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    res = LatencyResult()
    warm_ms = time.time() * 1000 + warmup_s * 1000
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=0, acks=1)
    #: (consumer, what it tails: "scores", "alerts", or the fetch wait in ms of a transport tail)
    consumers: list[tuple[Any, str | int]] = []

    async def open_tail(topics: list[str], wait_ms: int) -> Any:
        c = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None,
                             enable_auto_commit=False, fetch_max_wait_ms=wait_ms)
        await c.start()
        tps = [TopicPartition(t, p) for t in topics for p in range(settings.partitions)]
        c.assign(tps)
        await c.seek_to_end(*tps)
        for tp in tps:  # resolve the end offsets now, before anything is produced
            await c.position(tp)
        return c

    await producer.start()
    try:
        if transport:
            for wait in TRANSPORT_WAITS_MS:
                consumers.append((await open_tail(list(settings.input_topics.values()), wait), wait))
                res.transport_ms[wait] = []
        else:
            # 50 ms, not 5: tails polling every 5 ms kept the broker at ~70% of a core, competing with the worker
            consumers.append((await open_tail([settings.scores_topic], 50), "scores"))
            consumers.append((await open_tail([settings.alerts_topic], 50), "alerts"))
        topics = {src: settings.topic(src) for src in settings.input_topics}
        done = asyncio.Event()

        async def send() -> None:
            t0 = time.perf_counter()
            i = 0
            while i < len(records):
                due = min(len(records), int((time.perf_counter() - t0) * rate) + 1)
                while i < due:
                    rec = records[i]
                    value = dict(rec.value)  # type: ignore[arg-type]
                    value["ts"] = int(time.time() * 1000)
                    await producer.send(topics[rec.source], orjson.dumps(value), key=rec.key.encode())
                    i += 1
                await asyncio.sleep(0.002)
            await producer.flush()
            res.sent = i
            res.send_seconds = time.perf_counter() - t0
            res.done_at = time.monotonic()
            done.set()

        def on_score(rec: Any, now_ms: float) -> None:
            obj = orjson.loads(rec.value)
            if obj.get("trigger") != "event":
                res.sweep_scores += 1
                return
            ts = obj["ts_ms"]
            if ts >= warm_ms:
                res.timestamp_types.add(rec.timestamp_type)
                res.ts_latency_ms.append(rec.timestamp - ts)
                res.recv_latency_ms.append(now_ms - ts)

        def on_alert(rec: Any) -> None:
            obj = orjson.loads(rec.value)
            trigger = str(obj.get("trigger"))
            if trigger == "sweep" or obj.get("event_ms", 0) < warm_ms:
                return
            res.alert_triggers[trigger] = res.alert_triggers.get(trigger, 0) + 1
            res.alert_latency_ms.append(rec.timestamp - obj["event_ms"])

        async def tail(consumer: Any, kind: str | int) -> None:
            quiet_since: float | None = None
            out = res.transport_ms.get(kind) if isinstance(kind, int) else None
            while True:
                batches = await consumer.getmany(timeout_ms=100, max_records=5000)
                now_ms = time.time() * 1000
                got = False
                for recs in batches.values():
                    for rec in recs:
                        got = True
                        if kind == "scores":
                            on_score(rec, now_ms)
                        elif kind == "alerts":
                            on_alert(rec)
                        else:
                            ts = orjson.loads(rec.value).get("ts")
                            # backlog events (ISO-8601 strings, older) are not part of the paced run
                            if isinstance(ts, (int, float)) and ts >= warm_ms:
                                out.append(now_ms - ts)
                if done.is_set():
                    if got:
                        quiet_since = None
                    elif quiet_since is None:
                        quiet_since = time.monotonic()
                    elif time.monotonic() - quiet_since > drain_s:
                        return
                    if time.monotonic() - res.done_at > max_drain_s:
                        res.drain_cut = True
                        return

        await asyncio.gather(send(), *(tail(c, k) for c, k in consumers))
        return res
    finally:
        for c, _ in consumers:
            await c.stop()
        await producer.stop()


def latency_phase(report: Report, broker: EmbeddedBroker, root: Path, models: Path, quick: bool,
                  rate: float, name: str = "lat", label: str = "", grow: bool = False) -> dict[str, float]:
    """One paced run at ``rate``; returns its summary (percentiles, and p50 of the first and the last
    third of the run: growth means the worker fell behind). ``name`` keeps the topics, data dir and log
    of each run apart and ``label`` prefixes the figure names, so several rates fit one report
    (``bench_scale.py``); with ``grow`` a rate whose events outnumber the simulation gets more customers."""
    seconds = 8.0 if quick else 20.0
    warmup = 2.0
    section(f"worker latency: {rate:,.0f} events/s for {seconds:.0f}s, event time = wall clock at send, "
            "CHURNWATCH_EMIT_SCORES=1")
    want = int(rate * seconds)
    # History first, so customers are past the model's 28-day history guard and live events can raise
    # model alerts (not only rule alerts): a simulation ending at today's UTC midnight, whose last `want`
    # events are replayed live (event time = wall clock at send) and everything before is a backlog
    # produced up front with its own event times and consumed before the paced run starts.
    customers, days = (300, 34) if quick else (500, 34)
    records = [r for r in simulate(SimConfig(customers=customers, days=days, seed=9, id_prefix="lat-"))
               if isinstance(r.value, dict)]
    if len(records) < want + 1000 and grow:  # more customers, same story per customer
        customers = int(customers * (want + 1000) / max(len(records), 1) * 1.5) + 1
        records = [r for r in simulate(SimConfig(customers=customers, days=days, seed=9, id_prefix="lat-"))
                   if isinstance(r.value, dict)]
    if len(records) < want + 1000:
        raise BenchError(f"the latency simulation has {len(records)} events, fewer than {want + 1000}")
    backlog, records = records[:-want], records[-want:]
    settings = bench_settings(broker, root, models, name)
    t_backlog = asyncio.run(produce_all(settings, backlog))
    print(f"  backlog: {len(backlog):,} events of {customers} customers over {days} days, produced in "
          f"{t_backlog:.1f}s; then {want:,} live events")
    w = start_worker(settings, root / f"worker-{name}.log", emit_scores=True)
    try:
        wait_for(lambda: w.metric("churnwatch_worker_ready") >= 1, 120, "the latency worker to be ready",
                 alive=w.check_alive)
        wait_for(lambda: w.metric("churnwatch_model_loaded") >= 1, 30, "the model to load", alive=w.check_alive)
        t_b = time.monotonic()
        wait_for(lambda: w.metric("churnwatch_events_consumed_total") >= len(backlog), 180,
                 "the latency worker to consume the backlog", interval=0.25, alive=w.check_alive)
        print(f"  backlog consumed {time.monotonic() - t_b:.1f}s after the worker was ready")
        time.sleep(1.0)
        cpu0, bcpu0, t0 = cpu_seconds(w.pid), cpu_seconds(broker.pid or 0), time.monotonic()
        res = asyncio.run(paced_run(settings, records, rate, warmup))
        w.check_alive()
        cpu = (cpu_seconds(w.pid) - cpu0) / (time.monotonic() - t0)
        bcpu = (cpu_seconds(broker.pid or 0) - bcpu0) / (time.monotonic() - t0)
        if not res.ts_latency_ms:
            raise BenchError("no event-triggered score records arrived on the scores topic")
        lat = res.ts_latency_ms
        recv = res.recv_latency_ms
        report.add(label + "latency phase: achieved produce rate", res.sent / res.send_seconds, "events/s",
                   f"{res.sent:,} events, {len(lat):,} score records after {warmup:.0f}s warm-up")
        kind = {0: "CreateTime", 1: "LogAppendTime"}
        types = ", ".join(kind.get(t, str(t)) for t in sorted(res.timestamp_types))
        half, third = len(lat) // 2, len(lat) // 3
        p50_a, p50_b = percentile(lat[:half], 50), percentile(lat[half:], 50)
        summary = {"p50": percentile(lat, 50), "p95": percentile(lat, 95), "p99": percentile(lat, 99),
                   "p50_first_third": percentile(lat[:third], 50), "p50_last_third": percentile(lat[-third:], 50),
                   "alert_p50": percentile(res.alert_latency_ms, 50), "alert_p95": percentile(res.alert_latency_ms, 95),
                   "alert_p99": percentile(res.alert_latency_ms, 99), "alerts": len(res.alert_latency_ms),
                   "sent_rate": res.sent / res.send_seconds, "drain_cut": float(res.drain_cut)}
        behind = res.drain_cut or (p50_b > 2 * p50_a and p50_b > 1000)
        summary["behind"] = float(behind)
        if behind:
            print(f"  WARNING: the worker fell behind the paced {rate:,.0f} events/s (latency grew from "
                  f"{p50_a:.0f} to {p50_b:.0f} ms); the latency figures measure queueing. Lower --rate, or "
                  "check the load average: neighbours may be taking the CPU.")
        for q in (50, 95, 99):
            note = ""
            if q == 50:
                note = f"timestamp type {types}" + ("; the worker FELL BEHIND at this rate" if behind else "")
            report.add(label + f"latency produce -> score record timestamp, p{q}", percentile(lat, q), "ms", note)
        report.add(label + "latency produce -> score record timestamp, max", max(lat), "ms",
                   f"p50 of the first half {p50_a:.0f} ms, second half {p50_b:.0f} ms "
                   "(growth = the worker falls behind)")
        for q in (50, 99):
            report.add(label + f"latency produce -> score seen by a tailing consumer, p{q}", percentile(recv, q), "ms")
        alat = res.alert_latency_ms
        if alat:
            trig = ", ".join(f"{t} {c}" for t, c in sorted(res.alert_triggers.items()))
            for q in (50, 95, 99):
                report.add(label + f"latency event -> alert record timestamp, p{q}", percentile(alat, q), "ms",
                           f"{len(alat)} alerts after warm-up: {trig}" if q == 50 else "")
        else:
            print("  no event- or rule-triggered alerts after the warm-up: no event -> alert latency this run")
        report.add(label + "broker (Tansu): CPU at the paced rate", bcpu * 100, "% of one core", "includes the drain")
        report.add(label + "worker: CPU at the paced rate (with score emission)", cpu * 100, "% of one core",
                   "includes the drain; headroom = what is left of one core")
        report.add(label + "worker: RSS after the latency phase", proc_status_kb(w.pid, "VmRSS") / 1024, "MiB")
        if min(lat) < 0:
            print("  note: negative latencies mean the worker's and the sender's clocks disagree")
    finally:
        w.stop()
    transport_baseline(report, broker, root, models, name, label, records, rate, warmup)
    return summary


def transport_baseline(report: Report, broker: EmbeddedBroker, root: Path, models: Path, name: str, label: str,
                       records: list[SimRecord], rate: float, warmup: float) -> None:
    """The same-run floor of the latency figures: the same events, paced at the same rate on the same
    broker (the worker stopped), to topics of their own, read by raw aiokafka consumers."""
    settings = bench_settings(broker, root, models, f"{name}-transport")
    n = min(len(records), int(rate * TRANSPORT_SECONDS))
    res = asyncio.run(paced_run(settings, records[:n], rate, warmup, transport=True))
    for wait, vals in res.transport_ms.items():
        if not vals:
            continue
        why = " (Faust's hard-coded value)" if wait == FAUST_FETCH_MAX_WAIT_MS else ""
        report.add(label + f"baseline: produce -> raw consumer, fetch_max_wait_ms={wait}, p50", percentile(vals, 50), "ms",
                   f"p99 {percentile(vals, 99):.0f} ms{why}; {n:,} events paced on their own, worker stopped")


def run(quick: bool, rate: float, report: Report, skip_latency: bool = False, skip_throughput: bool = False,
        models: Path | None = None, spec: str = "default") -> None:
    """Each phase gets a fresh broker: Tansu's memory storage only grows, and a broker still holding the
    throughput phase's topics made the latency phase's figures swing by an order of magnitude."""
    import pipeline

    with tempfile.TemporaryDirectory(prefix="churnwatch-bench-worker-") as tmp:
        root = Path(tmp)
        where = "the given registry" if models else "a temp registry"
        section(f"worker: a model in {where}, one embedded broker per phase ({load_note()})")
        print(f"  code: {Path(pipeline.__file__).resolve().parents[1]}")
        models = model_registry(models, root, spec)
        phases = []
        if not skip_throughput:
            phases.append(("throughput", lambda b: throughput_phase(report, b, root, models, quick)))
        if not skip_latency:
            phases.append(("latency", lambda b: latency_phase(report, b, root, models, quick, rate)))
        for name, phase in phases:
            broker = EmbeddedBroker(log_path=root / f"broker-{name}.log")
            broker.start()
            try:
                print(f"  broker for the {name} phase: {broker.address} (pid {broker.pid})")
                phase(broker)
                report.add(f"broker (Tansu): RSS at the end of the {name} phase",
                           proc_status_kb(broker.pid or 0, "VmRSS") / 1024, "MiB")
            finally:
                broker.stop()


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=1000.0, help="events/s in the latency phase (default 1000)")
    p.add_argument("--no-latency", action="store_true", help="throughput phase only")
    p.add_argument("--no-throughput", action="store_true", help="latency phase only")
    p.add_argument("--models", type=Path, metavar="DIR",
                   help="use the promoted model of this registry instead of training one (paired runs share a model)")
    p.add_argument("--spec", choices=("default", "legacy"), default="default",
                   help="the model trained for the run: as `churnwatch train` trains it (default), or the "
                        "built-in features only (legacy)")
    p.add_argument("--train-into", type=Path, metavar="DIR",
                   help="only train the model (as --spec says) into a registry under DIR, print its path, exit")
    args = p.parse_args()
    if args.rate <= 0:
        raise BenchError("--rate must be > 0")
    if args.train_into:
        args.train_into.mkdir(parents=True, exist_ok=True)
        models = train_registry(args.train_into, args.spec)
        print(f"  model: {describe_model(models)}")
        print(models)
        return 0
    if args.models is not None and not args.models.is_dir():
        raise BenchError(f"--models {args.models}: no such directory")
    report = Report("worker")
    run(args.quick, args.rate, report, args.no_latency, args.no_throughput, args.models, args.spec)
    report.write_json(args.json_out)
    return 0


if __name__ == "__main__":
    main_guard(main)
