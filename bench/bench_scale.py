"""How churnwatch scales: memory, disk and restart time per customer held, paced latency at higher rates,
and one worker against two on the same backlog, each next to a same-run baseline.

Why: the other benches measure a worker holding a few hundred customers. An operator sizing a worker
for a customer base needs what a customer costs (RSS and disk bytes), how long a worker holding that
many takes to answer again after a restart, a crash or the loss of its disk, what latency it keeps at
a given event rate, and what a second worker buys. Phases, each on its own embedded Tansu broker
(stopped by pid; Tansu's memory storage only grows, so sizes do not colour each other):

1. *restart-to-ready*, per ``--customers`` size: a seeded backlog of ``--events-per-customer`` events per
   customer (a profile upsert, then interactions) is produced with batched aiokafka; one worker
   (``python -m apps.cli worker``, its own ``CHURNWATCH_DATA_DIR``) consumes all of it; then VmRSS,
   VmHWM and the data dir's ``du`` give bytes per customer over an idle worker (0 customers, same run:
   the **baseline**), and the worker is restarted three ways (graceful, kill -9, fresh data dir), each
   timed from process start to ``GET /ready`` = 200 and to a marker event produced after the start
   showing in the customer view (``/customers/<id>/``). Baseline: the idle worker's restart.
2. *paced latency*, per ``--rates``: ``bench_worker.latency_phase`` at each rate (event -> score and event
   -> alert percentiles, p50 of the first vs the last third of the run); its raw-consumer transport
   latency is the **baseline**.
3. *1 vs 2 workers*: backlog events/s of one worker, then of two workers in one consumer group, on the
   same backlog (one worker is the baseline; the figure is the ratio).

Run: ``.venv/bin/python bench/bench_scale.py [--quick] [--customers 20000,200000,1000000]
[--rates 1000,2000,5000] [--events-per-customer 3] [--group-customers 50000] [--only restart,latency,group]``
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from _common import Report, load_note, main_guard, parser, section
from _scale_data import backlog
from _scale_restart import Idle, broker_rss_mib, consume_backlog, fresh_ports, idle_phase, size_phase
from bench_worker import WorkerProc, bench_settings, latency_phase, model_registry, produce_all, start_worker

from devtools.broker import EmbeddedBroker
from pipeline.kafka.topics import ensure_topics

PHASES = ("restart", "latency", "group")
#: The score latency's p50 growing by more than this from the first to the last third of a paced run means
#: the worker fell behind: a queue that only grows. A ratio alone misses it when the queue is already
#: seconds long in the first third (bench_worker's own rule, >2x and >1 s, is applied as well).
GREW_MS = 1000.0


def group_phase(report: Report, broker: EmbeddedBroker, root: Path, models: Path, customers: int,
                per_customer: int, seed: int) -> None:
    """One worker, then two in one consumer group, each group on the same input topics from the start."""
    total = customers * per_customer
    section(f"scale: 1 vs 2 workers in one consumer group, the same backlog of {customers:,} customers x "
            f"{per_customer} events ({total:,} events)")
    base = bench_settings(broker, root, models, "group")
    t_prod = asyncio.run(produce_all(base, backlog(customers, per_customer, seed)))  # type: ignore[arg-type]
    print(f"  backlog produced in {t_prod:.1f}s")
    rates: dict[int, float] = {}
    for n in (1, 2):
        group = base.with_(app_id=f"churnwatch-group{n}")
        ensure_topics(group)
        workers: list[WorkerProc] = []
        try:
            for i in range(n):
                s = fresh_ports(group.with_(data_dir=root / f"data-group{n}-{i}"))
                workers.append(start_worker(s, root / f"worker-group{n}-{i}.log"))
            startup, rate, wall = consume_backlog(workers, total)
            shares = [w.metric("churnwatch_events_consumed_total") for w in workers]
        finally:
            for w in workers:
                w.stop(120)
        rates[n] = rate
        split = " / ".join(f"{x:,.0f}" for x in shares)
        if n == 1:
            report.add("baseline: 1 worker, backlog events/s", rate, "events/s",
                       f"first to last event; {wall:.1f} s from start to the last event, first after {startup:.1f} s")
        else:
            report.add("2 workers in one group, backlog events/s", rate, "events/s",
                       f"{rate / rates[1]:.2f}x one worker; {wall:.1f} s from start to the last event, first after "
                       f"{startup:.1f} s; consumed per worker {split} (rebalances replay some)")
    report.add("2 workers / 1 worker, backlog events/s", rates[2] / rates[1], "x",
               "2 cores shared by both workers and the broker")


def latency_rates(report: Report, root: Path, models: Path, quick: bool, rates: list[float]) -> None:
    summaries = []
    for rate in rates:
        summaries.append((rate, with_broker(root, f"lat{int(rate)}", lambda b: latency_phase(
            report, b, root, models, quick, rate, name=f"lat{int(rate)}", label=f"@{rate:,.0f}/s: ", grow=True))))
    section("paced latency, summary (ms; event time = wall clock at send)")
    print(f"  {'rate':>8} {'score p50':>10} {'p95':>8} {'p99':>8} {'alert p50':>10} {'p95':>8} {'p99':>8} "
          f"{'p50 1st third':>14} {'last third':>11}  lag")
    verdicts = []
    for rate, s in summaries:
        grew = bool(s["behind"]) or s["p50_last_third"] - s["p50_first_third"] > GREW_MS
        verdicts.append((rate, s, grew))
        print(f"  {rate:>8,.0f} {s['p50']:>10,.0f} {s['p95']:>8,.0f} {s['p99']:>8,.0f} {s['alert_p50']:>10,.0f} "
              f"{s['alert_p95']:>8,.0f} {s['alert_p99']:>8,.0f} {s['p50_first_third']:>14,.0f} "
              f"{s['p50_last_third']:>11,.0f}  {'GREW (fell behind)' if grew else 'steady'}")
    for rate, s, grew in verdicts:
        report.add(f"@{rate:,.0f}/s: score latency p50, last third / first third",
                   s["p50_last_third"] / max(s["p50_first_third"], 1e-9), "x",
                   f"{s['p50_first_third']:,.0f} -> {s['p50_last_third']:,.0f} ms: "
                   + ("GREW, the worker fell behind the rate" if grew else "steady, kept up"))


def with_broker(root: Path, name: str, phase: Callable[[EmbeddedBroker], object]) -> object:
    broker = EmbeddedBroker(log_path=root / f"broker-{name}.log")
    broker.start()
    try:
        print(f"  broker for {name}: {broker.address} (pid {broker.pid})")
        out = phase(broker)
        print(f"  broker RSS at the end: {broker_rss_mib(broker):,.0f} MiB")
        return out
    finally:
        broker.stop()


def int_list(text: str, what: str) -> list[int]:
    try:
        out = [int(float(x)) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if not out or any(x <= 0 for x in out):
        raise ValueError(f"{what} must be positive numbers, got {text!r}")
    return out


def bad_args(message: str) -> int:
    print(f"bench_scale: {message}", file=sys.stderr)
    return 2


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--customers", help="sizes of the restart phase (default 20000,200000,1000000; --quick 5000,20000)")
    p.add_argument("--events-per-customer", type=int, default=3, help="a profile + N-1 interactions each (default 3)")
    p.add_argument("--rates", help="paced rates in events/s (default 1000,2000,5000; --quick 1000,2000)")
    p.add_argument("--group-customers", type=int, help="backlog of the 1 vs 2 workers phase (default 50000; --quick 5000)")
    p.add_argument("--seed", type=int, default=1, help="seed of the backlog generator (default 1)")
    p.add_argument("--only", help=f"comma-separated subset of {','.join(PHASES)}")
    p.add_argument("--models", type=Path, metavar="DIR", help="use this registry's promoted model instead of training one")
    args = p.parse_args()
    try:
        sizes = int_list(args.customers or ("5000,20000" if args.quick else "20000,200000,1000000"), "--customers")
        rates = [float(r) for r in int_list(args.rates or ("1000,2000" if args.quick else "1000,2000,5000"), "--rates")]
        group_n = args.group_customers or (5000 if args.quick else 50000)
        phases = PHASES if not args.only else tuple(x.strip() for x in args.only.split(",") if x.strip())
    except ValueError as exc:
        return bad_args(str(exc))
    if args.events_per_customer < 1 or group_n < 1:
        return bad_args("--events-per-customer and --group-customers must be >= 1")
    unknown = [x for x in phases if x not in PHASES]
    if unknown:
        return bad_args(f"unknown phase(s) {', '.join(unknown)}; choose from {', '.join(PHASES)}")
    if args.models is not None and not args.models.is_dir():
        return bad_args(f"--models {args.models}: no such directory")

    report = Report("scale")
    root = Path(tempfile.mkdtemp(prefix="churnwatch-bench-scale-"))
    t_all = time.monotonic()
    try:
        section(f"scale: one embedded broker per phase and size ({load_note()})")
        models = model_registry(args.models, root)
        if "restart" in phases:
            idle: list[Idle] = []  # measured once, on the first size's broker before its backlog
            for n in sizes:
                t0 = time.monotonic()

                def phase(b: EmbeddedBroker, n: int = n) -> None:
                    if not idle:
                        idle.append(idle_phase(report, b, root, models))
                    size_phase(report, b, root, models, n, args.events_per_customer, args.seed, idle[0])
                with_broker(root, f"scale{n}", phase)
                print(f"  ({n:,} customers: {time.monotonic() - t0:.0f}s)")
        if "latency" in phases:
            t0 = time.monotonic()
            latency_rates(report, root, models, args.quick, rates)
            print(f"  (latency: {time.monotonic() - t0:.0f}s)")
        if "group" in phases:
            t0 = time.monotonic()
            with_broker(root, "group", lambda b: group_phase(report, b, root, models, group_n,
                                                             args.events_per_customer, args.seed))
            print(f"  (1 vs 2 workers: {time.monotonic() - t0:.0f}s)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\n  total {time.monotonic() - t_all:.0f}s")
    report.write_json(args.json_out)
    return 0


if __name__ == "__main__":
    main_guard(main)
