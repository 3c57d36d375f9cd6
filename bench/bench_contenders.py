"""Backlog throughput of the churnwatch worker against two contenders doing the same work, on one broker.

The question: what does churnwatch's design (micro-batches of 500, one LightGBM call per batch, its own
state store with one changelog record per customer and batch) buy over what a team would write first
with a streaming framework and churnwatch's own core? The contenders, each a subprocess:

* **churnwatch worker**: ``python -m apps.cli worker``, started and read exactly as ``bench_worker.py``
  does (``start_worker``, ``churnwatch_events_consumed_total`` on ``/metrics``);
* **faust Table** (``_contender_faust.py``, the project's ``.venv``): one agent, one Table with the default
  memory store and its changelog, per event parse -> state from the Table -> ``features.apply`` ->
  ``table[cid] = state.to_bytes()`` -> single-row predict -> an alert at the threshold; twice: Faust's
  defaults, and *tuned* with the worker's own fetch, poll, buffer and producer settings;
* **quixstreams** (``_contender_quix.py``, a venv of the bench's own under the cache; churnwatch does not
  depend on quixstreams): an ``Application`` with its defaults (RocksDB state, changelog topics), the
  same per-event work through ``state.get``/``state.set``; twice: *state only* (no model) and *state +
  scoring*.

One embedded Tansu broker for the whole run. The simulated backlog (``devtools.simulator``, seed 7) is
produced once, up front, into one set of input topics; every run of every contender reads those same
bytes from the beginning with a consumer group, changelog and state directory of its own. Runs are
interleaved (``--runs 2``: A B C D E, E D C B A), so a neighbour's load that comes and goes hits every
contender alike. Events/s are counted from the first to the last event consumed, sampled every 100 ms
(the worker's metric; a counter file the contenders bump after each event: ``_contender_common.Counter``),
with each process's CPU seconds over that window and its peak RSS (``VmHWM``). The ratio column is
churnwatch's median over the contender's median.

Run: ``.venv/bin/python bench/bench_contenders.py [--quick] [--runs N] [--events N] [--models DIR]
[--only worker,faust,quix]`` (about 35 min with the default 2 runs at a load average of 3-5 on 2 cores,
two thirds of it the Faust rows; ``--quick``, one run of 40,000 events, about 5 min; the first run also
builds the quixstreams venv).
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson

from _common import REPO, BenchError, Figure, Report, load_note, main_guard, parser, section
from _contender_common import CONFIG_ENV, Counter
from _contender_quix import default_cache, quix_python, quix_version
from bench_worker import (EVENTS_START_MS, Sample, bench_settings, cpu_seconds, model_registry, produce_all,
                          proc_status_kb, rate_between, start_worker)

from devtools.broker import EmbeddedBroker, free_port, stop_process
from devtools.simulator import SimConfig, simulate
from pipeline.config.settings import Settings
from pipeline.kafka.topics import ensure_topics

HERE = Path(__file__).resolve().parent
#: Simulated days; customers are chosen so the backlog has about the events asked for (~154 per customer).
DAYS = 40
FULL_EVENTS = 150_000
QUICK_EVENTS = 40_000
#: How long a run may take to read its first event (venv imports, Faust's recovery, Quix's topic checks),
#: and how long it may make no progress once started, before the bench gives up on it.
START_TIMEOUT_S = 180.0
STALL_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class Contender:
    """One row of the table: how to start it and how to read its progress."""

    name: str
    kind: str  # "worker", "faust" or "quix"
    options: dict[str, Any] = field(default_factory=dict)


CONTENDERS = (
    Contender("churnwatch worker", "worker"),
    Contender("faust Table, defaults", "faust", {"tuned": False}),
    Contender("faust Table, tuned", "faust", {"tuned": True}),
    Contender("quixstreams, state only", "quix", {"scoring": False}),
    Contender("quixstreams, state + scoring", "quix", {"scoring": True}),
)


@dataclass
class RunResult:
    events_s: float
    cpu_s: float
    peak_rss_mib: float
    alerts: int
    window_s: float


# ---- running one contender --------------------------------------------------------------------------
class Running:
    """A started contender process: its pid, its progress (consumed events, alerts) and how to stop it."""

    def __init__(self, proc: subprocess.Popen, log_path: Path, progress: Callable[[], tuple[float, float]],
                 stop: Callable[[], None], cleanup: Callable[[], None] = lambda: None) -> None:
        self.proc, self.log_path, self.progress, self._stop, self._cleanup = proc, log_path, progress, stop, cleanup

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()][-3:]
            raise BenchError(f"exited with code {self.proc.returncode}: {' | '.join(tail)[:400] or '(empty log)'}")

    def stop(self) -> None:
        try:
            self._stop()
        finally:
            self._cleanup()


def start_app(script: list[str], config: dict[str, Any], root: Path, tag: str) -> Running:
    """A contender app (Faust or Quix) with its JSON config and counter file under ``root``."""
    counter_path = root / f"{tag}.counter"
    counter = Counter(counter_path, create=True)
    config = {**config, "counter": str(counter_path)}
    cfg_path = root / f"{tag}.json"
    cfg_path.write_bytes(orjson.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNWATCH_")}
    env.update({CONFIG_ENV: str(cfg_path), "PYTHONPATH": f"{HERE}{os.pathsep}{REPO}", "PYTHONDONTWRITEBYTECODE": "1"})
    log_path = root / f"{tag}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(script, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)

    def progress() -> tuple[float, float]:
        processed, alerts, _invalid = counter.read()
        return float(processed), float(alerts)

    return Running(proc, log_path, progress, lambda: stop_process(proc, 30.0), counter.close)


class Bench:
    """The run's shared pieces: the broker, the backlog's topics, the model, the quix venv."""

    def __init__(self, broker: EmbeddedBroker, root: Path, models: Path, quix: Path | None, n: int) -> None:
        self.broker, self.root, self.models, self.quix, self.n = broker, root, models, quix, n
        self.settings: Settings = bench_settings(broker, root, models, "backlog")
        self.alerts_topic = self.settings.topic("contender-alerts")
        self._create_topic(self.alerts_topic)

    def _create_topic(self, name: str) -> None:
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=self.settings.bootstrap_servers)
        try:
            if name not in admin.list_topics():
                admin.create_topics([NewTopic(name, self.settings.partitions, 1)])
        finally:
            admin.close()

    def app_config(self, app_id: str, **options: Any) -> dict[str, Any]:
        s = self.settings
        limits = {"max_future_ms": int(s.max_future_s * 1000),
                  "min_ts_ms": int((s.min_event_year - 1970) * 365.2425 * 86_400_000), "max_bytes": s.max_event_bytes}
        cfg = s.feature_config()
        return {"app_id": app_id, "broker": s.broker, "bootstrap": s.bootstrap_servers,
                "inputs": list(s.input_topics.values()), "source_of": {t: src for src, t in s.input_topics.items()},
                "alerts": self.alerts_topic, "partitions": s.partitions, "models": str(self.models),
                "limits": limits, "feature_config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
                "datadir": str(self.root / f"data-{app_id}"), **options}

    def start(self, c: Contender, rep: int) -> Running:
        tag = f"{c.kind}-{'-'.join(f'{k}{int(v)}' for k, v in c.options.items()) or 'w'}-r{rep}"
        if c.kind == "worker":
            s = self.settings.with_(app_id=f"churnwatch-{tag}", metrics_port=free_port(), web_port=free_port(),
                                    data_dir=self.root / f"data-{tag}")
            ensure_topics(s)  # the run's own changelog and assignor topics
            w = start_worker(s, self.root / f"{tag}.log")

            def progress() -> tuple[float, float]:
                try:
                    m = w.metrics()
                except OSError:
                    return 0.0, 0.0
                return m.get("churnwatch_events_consumed_total", 0.0), m.get("churnwatch_alerts_emitted_total", 0.0)

            return Running(w.proc, w.log_path, progress, w.stop)
        config = self.app_config(tag, **c.options)
        if c.kind == "faust":
            return start_app([sys.executable, str(HERE / "_contender_faust.py")], config, self.root, tag)
        assert self.quix is not None
        return start_app([str(self.quix), str(HERE / "_contender_quix.py")], config, self.root, tag)

    def run(self, c: Contender, rep: int) -> RunResult:
        """Start ``c``, sample its progress every 100 ms until it has consumed the whole backlog, stop it."""
        r = self.start(c, rep)
        broker_pid = self.broker.pid or 0
        try:
            samples: list[Sample] = []
            t_start = time.monotonic()
            last, last_change = -1.0, t_start
            alerts = 0.0
            while True:
                r.check_alive()
                now = time.monotonic()
                consumed, alerts = r.progress()
                samples.append(Sample(now, consumed, cpu_seconds(r.pid), cpu_seconds(broker_pid)))
                if consumed != last:
                    last, last_change = consumed, now
                if consumed >= self.n:
                    break
                if consumed == 0 and now - t_start > START_TIMEOUT_S:
                    raise BenchError(f"{c.name}: consumed nothing within {START_TIMEOUT_S:.0f}s of starting")
                if consumed > 0 and now - last_change > STALL_TIMEOUT_S:
                    raise BenchError(f"{c.name}: stalled at {consumed:.0f} of {self.n} events for {STALL_TIMEOUT_S:.0f}s")
                time.sleep(0.1)
            rate, a, b = rate_between(samples, 1, self.n)
            peak = proc_status_kb(r.pid, "VmHWM") / 1024
            return RunResult(rate, b.worker_cpu - a.worker_cpu, peak, int(alerts), b.t - a.t)
        except BenchError as exc:
            raise BenchError(f"{c.name} (run {rep}): {exc}") from None
        finally:
            r.stop()


# ---- the run -------------------------------------------------------------------------------------------
def order(contenders: list[Contender], runs: int) -> list[tuple[int, Contender]]:
    """A B C, C B A, A B C, ...: each contender's mean position in the run is the same."""
    out = []
    for rep in range(1, runs + 1):
        seq = contenders if rep % 2 else list(reversed(contenders))
        out += [(rep, c) for c in seq]
    return out


def backlog(n: int) -> list[Any]:
    customers = max(10, n // 150 + 1)
    records = list(simulate(SimConfig(customers=customers, days=DAYS, seed=7, start_ms=EVENTS_START_MS)))
    if len(records) < n:
        raise BenchError(f"the simulation gave {len(records)} events, fewer than the {n} asked for")
    return records[:n]


def print_table(results: dict[str, list[RunResult]], n: int) -> list[tuple[str, float, float]]:
    """The final table; returns (contender, median events/s, ratio churnwatch / contender)."""
    base = results.get(CONTENDERS[0].name)
    base_med = statistics.median(r.events_s for r in base) if base else math.nan
    runs = max(len(v) for v in results.values())
    reps = "  ".join(f"{'run ' + str(i + 1):>8}" for i in range(runs))
    head = (f"  {'contender':<30} {reps}  {'median':>8}  {'cw/this':>7}  {'peak RSS':>9}  {'CPU s':>6}  "
            f"{'µs CPU/ev':>9}  {'alerts':>7}")
    print(head)
    print("  " + "-" * (len(head) - 2))
    out = []
    for name, rs in results.items():
        med = statistics.median(r.events_s for r in rs)
        ratio = base_med / med
        cpu = statistics.median(r.cpu_s for r in rs)
        cells = "  ".join(f"{r.events_s:>8,.0f}" for r in rs) + " " * 10 * (runs - len(rs))
        shown = f"{ratio:>6.2f}x" if not math.isnan(ratio) else f"{'-':>7}"
        print(f"  {name:<30} {cells}  {med:>8,.0f}  {shown}  {max(r.peak_rss_mib for r in rs):>5,.0f} MiB"
              f"  {cpu:>6.1f}  {cpu / n * 1e6:>9,.0f}  {rs[-1].alerts:>7,}")
        out.append((name, med, ratio))
    print(f"\n  events/s: first to last of the {n:,} backlog events consumed; cw/this: churnwatch's median over this "
          "row's (>1: churnwatch is faster); peak RSS: the highest VmHWM of the runs; CPU s: the process's CPU "
          "seconds over that window, median of the runs; alerts: alert records sent in the last run (the worker "
          "applies its alert policy, 28-day history guard and cool-downs; the contenders alert on every event "
          "scored at or above the threshold)")
    return out


def run(args: Any, report: Report) -> None:
    import pipeline

    wanted = {s.strip() for s in args.only.split(",")} if args.only else {"worker", "faust", "quix"}
    contenders = [c for c in CONTENDERS if c.kind in wanted]
    n = args.events or (QUICK_EVENTS if args.quick else FULL_EVENTS)
    with tempfile.TemporaryDirectory(prefix="churnwatch-bench-contenders-") as tmp:
        root = Path(tmp)
        section(f"contenders: {n:,} backlog events, {args.runs} interleaved run(s) each ({load_note()})")
        print(f"  code: {Path(pipeline.__file__).resolve().parents[1]}")
        quix = None
        if "quix" in wanted:
            quix = quix_python(args.cache, REPO)
            print(f"  {quix_version(quix)} in {quix.parents[1]}")
        import faust

        print(f"  faust-streaming {faust.__version__}, Python {sys.version.split()[0]}")
        models = model_registry(args.models, root)
        records = backlog(n)
        broker = EmbeddedBroker(log_path=root / "broker.log")
        broker.start()
        try:
            print(f"  broker: {broker.address} (pid {broker.pid})")
            bench = Bench(broker, root, models, quix, n)
            t_prod = asyncio.run(produce_all(bench.settings, records))
            print(f"  backlog: {n:,} events of {len({r.key for r in records})} customers over "
                  f"{DAYS} days, produced once in {t_prod:.1f}s into {', '.join(bench.settings.input_topics.values())}")
            results: dict[str, list[RunResult]] = {c.name: [] for c in contenders}
            for rep, c in order(contenders, args.runs):
                res = bench.run(c, rep)
                results[c.name].append(res)
                print(f"  run {rep}  {c.name:<30} {res.events_s:>9,.0f} events/s  ({res.window_s:.1f}s, "
                      f"CPU {res.cpu_s:.1f}s, peak RSS {res.peak_rss_mib:,.0f} MiB, {res.alerts:,} alerts; {load_note()})",
                      flush=True)
            broker_rss = proc_status_kb(broker.pid or 0, "VmRSS") / 1024
        finally:
            broker.stop()
    section("backlog throughput, churnwatch against its contenders")
    summary = print_table(results, n)
    print(f"  broker (Tansu): RSS {broker_rss:,.0f} MiB after the last run")
    # figures for run_all-style collection (--json-out); the table above already showed them
    for name, med, ratio in summary:
        rs = results[name]
        note = f"runs {', '.join(f'{r.events_s:,.0f}' for r in rs)}" + (
            f"; churnwatch/this {ratio:.2f}x" if not math.isnan(ratio) else "")
        report.figures += [Figure(report.bench, f"{name}: events/s, median", med, "events/s", note),
                           Figure(report.bench, f"{name}: peak RSS", max(r.peak_rss_mib for r in rs), "MiB"),
                           Figure(report.bench, f"{name}: CPU per event",
                                  statistics.median(r.cpu_s for r in rs) / n * 1e6, "µs")]
    report.figures.append(Figure(report.bench, "broker (Tansu): RSS after the last run", broker_rss, "MiB"))


def bad_args(message: str) -> int:
    print(f"bench_contenders: {message}", file=sys.stderr)
    return 2


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, help="interleaved repetitions of every contender (default 2; --quick 1)")
    p.add_argument("--events", type=int, help=f"backlog size (default {FULL_EVENTS:,}; --quick {QUICK_EVENTS:,})")
    p.add_argument("--models", type=Path, metavar="DIR", help="use the promoted model of this registry instead of training one")
    p.add_argument("--only", help="comma-separated subset of worker,faust,quix (default: all)")
    p.add_argument("--cache", type=Path, default=default_cache(),
                   help=f"where the quixstreams venv is kept (default {default_cache()})")
    args = p.parse_args()
    if args.runs is None:
        args.runs = 1 if args.quick else 2
    if args.runs < 1:
        return bad_args("--runs must be >= 1")
    if args.events is not None and args.events < 1000:
        return bad_args("--events must be >= 1000")
    if args.models is not None and not args.models.is_dir():
        return bad_args(f"--models {args.models}: no such directory")
    if args.only and not {s.strip() for s in args.only.split(",")} <= {"worker", "faust", "quix"}:
        return bad_args("--only takes a comma-separated subset of worker,faust,quix")
    report = Report("contenders")
    run(args, report)
    report.write_json(args.json_out)
    return 0


if __name__ == "__main__":
    main_guard(main)
