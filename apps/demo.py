"""``churnwatch demo``: the whole pipeline on one machine, from nothing, in one command.

Starts the embedded broker, trains a model on simulated history if the registry has none, starts a
worker process, streams a live simulated population at an accelerated clock, prints alerts as they
arrive and, on Ctrl-C or after ``DEMO_SECONDS``, stops everything it started (by pid) and prints a
summary read from the worker's own Prometheus metrics.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from apps.console import print_alert
from apps.inbox.server import InboxServer
from apps.inbox.server import create_app as create_inbox
from devtools.broker import EmbeddedBroker, free_port, stop_process
from devtools.producer import ProduceStats, produce
from devtools.simulator import SimConfig, simulate
from pipeline.config.settings import Settings
from pipeline.core.contract import DAY_MS
from pipeline.kafka.feed import follow
from pipeline.kafka.topics import ensure_topics
from pipeline.model.registry import Registry

HISTORY = SimConfig(customers=1000, days=240, seed=1001, id_prefix="h")
LIVE_CUSTOMERS = 300
LIVE_DAYS = 150
#: Simulated seconds per wall second: 1.5 simulated days pass every second.
LIVE_SPEED = 1.5 * 86_400


@dataclass
class DemoProcess:
    """A child process the demo owns; stopped by its pid."""

    name: str
    proc: subprocess.Popen
    log_path: Path

    def stop(self, timeout: float = 15.0) -> None:
        stop_process(self.proc, timeout)


def scrape(url: str, timeout: float = 2.0) -> dict[str, float]:
    """Sum Prometheus samples by metric name (labels folded) from a /metrics page."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2), float(m.group(3))
        if labels:
            out[name + labels] = value
            out[name] = out.get(name, 0.0) + value
        else:
            out[name] = value
    return out


def start_worker(settings: Settings, data_dir: Path, metrics_port: int) -> DemoProcess:
    env = {
        **os.environ,
        "CHURNWATCH_BROKER": settings.broker,
        "CHURNWATCH_METRICS_PORT": str(metrics_port),
        "CHURNWATCH_WEB_PORT": str(free_port()),
        "CHURNWATCH_MODELS_DIR": str(settings.models_dir.resolve()),
        "CHURNWATCH_DATA_DIR": str(data_dir / "worker"),
        "CHURNWATCH_PARTITIONS": str(settings.partitions),
    }
    log_path = data_dir / "worker.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "apps.cli", "worker"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    return DemoProcess("worker", proc, log_path)


def wait_ready(worker: DemoProcess, metrics_url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            tail = worker.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"worker exited with code {worker.proc.returncode}:\n{tail}")
        try:
            if scrape(metrics_url).get("churnwatch_worker_ready", 0) >= 1:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"worker not ready after {timeout:.0f}s (log: {worker.log_path})")


def train_if_needed(settings: Settings, data_dir: Path, console: Console) -> str:
    registry = Registry(settings.models_dir)
    current = registry.current()
    if current is not None:
        console.print(f"[dim]model registry {settings.models_dir}: using current model {current}[/]")
        return current
    from devtools.simulator import write_jsonl
    from training.runs.from_log import train_from_log

    log_path = data_dir / "history.jsonl"
    console.print(f"[bold]No model yet[/]: simulating {HISTORY.customers} customers x {HISTORY.days} days of history ...")
    t0 = time.monotonic()
    counts = write_jsonl(simulate(HISTORY), log_path)
    console.print(f"  {sum(counts.values()):,} events in {time.monotonic() - t0:.1f}s -> {log_path}")
    console.print("[bold]Training[/] LightGBM on point-in-time snapshots (same feature code as the stream) ...")
    result = train_from_log(log_path, registry, promote=True, progress=False)
    console.print(f"  {result.summary()}")
    return registry.current() or "?"


@dataclass
class Summary:
    started: float = field(default_factory=time.monotonic)
    first_alert_s: float | None = None
    alerts_seen: int = 0


def run_demo(settings: Settings, seconds: float | None = None) -> int:
    console = Console(highlight=False, soft_wrap=True)
    data_dir = settings.data_dir.resolve() / "demo"
    data_dir.mkdir(parents=True, exist_ok=True)
    summary = Summary()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    broker = EmbeddedBroker(log_path=data_dir / "broker.log")
    worker: DemoProcess | None = None
    inbox: InboxServer | None = None
    producer_thread: threading.Thread | None = None
    stats = ProduceStats()
    metrics_url = ""
    final: dict[str, float] = {}
    try:
        broker.start()
        settings = settings.with_(broker=broker.url)
        console.print(f"[bold green]Embedded broker[/] (Tansu) on {broker.url}, pid {broker.pid}")
        ensure_topics(settings)
        version = train_if_needed(settings, data_dir, console)
        metrics_port = free_port()
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        worker = start_worker(settings, data_dir, metrics_port)
        console.print(f"[bold green]Worker[/] pid {worker.proc.pid}, model {version}; "
                      f"Prometheus metrics at [underline]{metrics_url}[/]")
        wait_ready(worker, metrics_url)
        inbox = InboxServer(create_inbox(settings)).start()
        console.print(f"[bold green]Inbox[/] for CSMs at [underline]{inbox.url}/[/] (open alerts, acknowledge)")
        now = int(time.time() * 1000)
        live = SimConfig(customers=LIVE_CUSTOMERS, days=LIVE_DAYS, start_ms=(now // DAY_MS - LIVE_DAYS) * DAY_MS,
                         seed=2002, bad_rate=0.002, id_prefix="cust-")
        console.print(f"[bold green]Streaming[/] {LIVE_CUSTOMERS} live customers, {LIVE_SPEED / 86_400:.1f} simulated days "
                      f"per second (alerts need {28} days of history per customer) ... Ctrl-C to stop\n")
        producer_thread = threading.Thread(
            target=produce, args=(simulate(live), settings), kwargs={"speed": LIVE_SPEED, "stop": stop, "stats": stats},
            name="simulator", daemon=True)
        producer_thread.start()
        summary.started = time.monotonic()
        if seconds is not None:
            threading.Timer(seconds, stop.set).start()
        for alert in follow(settings, settings.alerts_topic, stop, from_beginning=True):
            if summary.first_alert_s is None:
                summary.first_alert_s = time.monotonic() - summary.started
            summary.alerts_seen += 1
            print_alert(console, alert)
            if worker.proc.poll() is not None:
                console.print("[red]worker exited unexpectedly[/]")
                break
    finally:
        stop.set()
        if producer_thread is not None:
            producer_thread.join(10)
        if worker is not None and metrics_url:
            _drain(worker, metrics_url, stats.sent)
            try:
                final = scrape(metrics_url)
            except OSError:
                final = {}
            worker.stop()
        if inbox is not None:
            inbox.stop()
        broker.stop()
    _print_summary(console, summary, stats, final, data_dir)
    return 0


def _drain(worker: DemoProcess, metrics_url: str, sent: int, timeout: float = 15.0) -> None:
    """Give the worker a moment to finish what was already produced, so the summary adds up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and worker.proc.poll() is None:
        try:
            if scrape(metrics_url).get("churnwatch_events_consumed_total", 0) >= sent:
                return
        except OSError:
            return
        time.sleep(0.25)


def _print_summary(console: Console, summary: Summary, stats: ProduceStats, m: dict[str, float], data_dir: Path) -> None:
    dead = {k.split('"')[1]: v for k, v in m.items() if k.startswith("churnwatch_deadletters_total{")}
    console.print("\n[bold]Summary[/]")
    console.print(f"  events sent        {stats.sent:,}")
    console.print(f"  events processed   {int(m.get('churnwatch_events_consumed_total', 0)):,}")
    console.print(f"  customers scored   {int(m.get('churnwatch_scored_total', 0)):,} scorings")
    console.print(f"  alerts emitted     {int(m.get('churnwatch_alerts_emitted_total', 0)):,} ({summary.alerts_seen} shown)")
    console.print(f"  dead letters       {int(m.get('churnwatch_deadletters_total', 0)):,} "
                  + " ".join(f"{k}={int(v)}" for k, v in sorted(dead.items())))
    if summary.first_alert_s is not None:
        console.print(f"  first alert after  {summary.first_alert_s:.1f}s of live stream")
    console.print(f"  logs               {data_dir}")
    console.print("  everything started by the demo has been stopped.")
