"""Restart-to-ready of ``bench_scale.py``: what a worker holding N customers costs in memory and on disk,
and how long it takes to answer again after a graceful stop, a kill -9, and the loss of its local disk.

Why three restarts: a graceful stop may leave a clean local store behind, a kill -9 a store written up
to its last flush, and a lost disk leaves only the state changelog; a worker that keeps its state on
disk should be fast in the first two cases, and every worker has to be correct in all three. Each
restart is timed twice from process start: to ``GET /ready`` returning 200, and to a marker event
(produced right after the start) showing in the customer view, i.e. the worker doing work again.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from pathlib import Path

from _common import BenchError, Report, section
from _scale_data import backlog, changelog_size, customer_id, disk_bytes, http_get, marker, send_one, web_url
from bench_worker import WorkerProc, bench_settings, produce_all, proc_status_kb, start_worker, wait_for

from devtools.broker import EmbeddedBroker, free_port
from pipeline.config.settings import Settings

POLL_S = 0.05


@dataclass
class Restart:
    """One timed start: seconds from process start to ready and to the marker event seen applied."""

    ready_s: float
    marker_s: float
    events: int  # the marker customer's event count in its view, once the marker is applied


@dataclass
class Idle:
    """The same-run baseline: a worker with no customers."""

    rss_kb: int
    hwm_kb: int
    disk: int
    start: Restart
    restart: Restart


def fresh_ports(settings: Settings) -> Settings:
    """New ports for every start: a killed worker's sockets must not make the next start wait."""
    return settings.with_(metrics_port=free_port(), web_port=free_port())


def timed_start(settings: Settings, log: Path, cid: str, n_marker: int, timeout: float = 900.0) -> tuple[WorkerProc, Restart]:
    """Start a worker, produce a marker event for ``cid`` at once, and poll ``/ready`` and the customer
    view until both answer; every time is measured from just before the process was started."""
    t0 = time.monotonic()
    w = start_worker(settings, log)
    try:
        rec, marker_time = marker(cid, n_marker)
        send_one(settings, rec)
        base = web_url(settings)
        ready_s = marker_s = None
        events = 0
        deadline = t0 + timeout
        while ready_s is None or marker_s is None:
            w.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"restart: not ready and caught up within {timeout:.0f}s "
                                 f"(ready {'yes' if ready_s is not None else 'no'}, marker {'seen' if marker_s else 'not seen'})")
            if ready_s is None and http_get(base + "/ready", 1.0)[0] == 200:
                ready_s = time.monotonic() - t0
            if marker_s is None:
                status, body = http_get(f"{base}/customers/{cid}/", 2.0)
                if status == 200 and isinstance(body, dict) and body.get("last_event_time") == marker_time:
                    marker_s = time.monotonic() - t0
                    events = int(body.get("events") or 0)
            time.sleep(POLL_S)
        return w, Restart(ready_s, marker_s, events)
    except BaseException:
        w.stop()
        raise


def settle(w: WorkerProc, customers: int, timeout: float = 20.0) -> float:
    """Wait until the worker's customers gauge (refreshed on a timer) shows ``customers``; returns it."""
    try:
        wait_for(lambda: w.metric("churnwatch_customers_tracked") >= customers, timeout,
                 f"churnwatch_customers_tracked to reach {customers}", interval=0.5, alive=w.check_alive)
    except BenchError:
        pass  # said by the caller: the figure shows what the worker holds
    return w.metric("churnwatch_customers_tracked")


def idle_phase(report: Report, broker: EmbeddedBroker, root: Path, models: Path) -> Idle:
    """The baseline: a worker on empty topics; its RSS, data dir, start and graceful restart."""
    section("scale baseline: an idle worker with 0 customers (same broker, same model)")
    settings = bench_settings(broker, root, models, "idle")
    cid = "idle-marker"
    w, first = timed_start(fresh_ports(settings), root / "worker-idle-1.log", cid, 1)
    try:
        time.sleep(3.0)
        rss, hwm = proc_status_kb(w.pid, "VmRSS"), proc_status_kb(w.pid, "VmHWM")
        disk = disk_bytes(settings.data_dir)
    finally:
        w.stop(60)
    w, again = timed_start(fresh_ports(settings), root / "worker-idle-2.log", cid, 2)
    w.stop(60)
    report.add("baseline: idle worker RSS (VmRSS)", rss / 1024, "MiB", f"VmHWM {hwm / 1024:.0f} MiB; 0 customers")
    report.add("baseline: idle worker data dir (du)", disk / 1024, "KiB")
    report.add("baseline: idle worker, first start to ready", first.ready_s, "s",
               f"to the first event applied {first.marker_s:.2f} s")
    report.add("baseline: idle worker, graceful restart to ready", again.ready_s, "s",
               f"to the first new event applied {again.marker_s:.2f} s")
    return Idle(rss, hwm, disk, first, again)


def consume_backlog(workers: list[WorkerProc], total: int, stall_s: float = 90.0) -> tuple[float, float, float]:
    """Poll ``churnwatch_events_consumed_total`` (minus the duplicates skipped: events read twice after a
    rebalance) summed over ``workers`` until they have read all ``total`` events; returns (seconds from
    the call to the first event, events/s from the first to the last, seconds from the call to the last)."""
    t_start = time.monotonic()
    first_t = last_change = None
    last = -1.0

    def done_so_far() -> float:
        out = 0.0
        for w in workers:
            w.check_alive()
            try:
                m = w.metrics()
            except OSError:
                continue
            out += m.get("churnwatch_events_consumed_total", 0.0) - m.get("churnwatch_duplicates_skipped_total", 0.0)
        return out

    while True:
        now = time.monotonic()
        consumed = done_so_far()
        if consumed > 0 and first_t is None:
            first_t = now
        if consumed != last:
            last, last_change = consumed, now
        if consumed >= total:
            break
        if first_t is None and now - t_start > 300:
            raise BenchError("the worker consumed nothing within 300s of starting")
        if first_t is not None and last_change is not None and now - last_change > stall_s:
            raise BenchError(f"the worker(s) stalled at {consumed:.0f} of {total} events for {stall_s:.0f}s")
        time.sleep(0.2)
    assert first_t is not None
    return first_t - t_start, total / max(now - first_t, 1e-9), now - t_start


def add_restart(report: Report, label: str, how: str, r: Restart, idle: Idle, expect_events: int,
                customers_after: float, customers: int, rss_kb: int, extra: str = "") -> None:
    ok = r.events == expect_events and customers_after >= customers
    if not ok:
        print(f"  WARNING: after the {how} the marker customer shows {r.events} events (expected "
              f"{expect_events}) and the worker tracks {customers_after:.0f} of {customers} customers")
    report.add(f"{label}: {how} -> ready", r.ready_s, "s",
               f"baseline idle {idle.restart.ready_s:.2f} s ({r.ready_s / max(idle.restart.ready_s, 1e-9):.1f}x){extra}")
    report.add(f"{label}: {how} -> first new event applied", r.marker_s, "s",
               f"baseline idle {idle.restart.marker_s:.2f} s; {customers_after:.0f} customers tracked, "
               f"RSS {rss_kb / 1024:.0f} MiB{'' if ok else '; STATE NOT FULLY RESTORED'}")


def size_phase(report: Report, broker: EmbeddedBroker, root: Path, models: Path, customers: int,
               per_customer: int, seed: int, idle: Idle) -> None:
    label = f"{customers:,} customers"
    total = customers * per_customer
    section(f"scale: {label} x {per_customer} events ({total:,} events), one worker, then three restarts")
    name = f"scale{customers}"
    settings = bench_settings(broker, root, models, name)
    t = time.monotonic()
    t_prod = asyncio.run(produce_all(settings, backlog(customers, per_customer, seed)))  # type: ignore[arg-type]
    print(f"  backlog produced in {t_prod:.1f}s ({total / t_prod:,.0f} events/s)  [step {time.monotonic() - t:.0f}s]")
    cid = customer_id(customers // 2)
    markers = 0
    logs = {what: root / f"worker-{name}-{what}.log" for what in ("load", "graceful", "killed", "fresh")}

    t = time.monotonic()
    w = start_worker(settings, logs["load"])
    try:
        startup, rate, _ = consume_backlog([w], total)
        tracked = settle(w, customers)
        time.sleep(2.0)  # the last flush's changelog write and data-dir files settle
        rss, hwm = proc_status_kb(w.pid, "VmRSS"), proc_status_kb(w.pid, "VmHWM")
        disk = disk_bytes(settings.data_dir)
        print(f"  backlog consumed  [step {time.monotonic() - t:.0f}s]")
        report.add(f"{label}: backlog consume rate", rate, "events/s",
                   f"first to last event; first event {startup:.1f} s after start; {tracked:.0f} customers tracked")
        report.add(f"{label}: RSS bytes per customer", (rss - idle.rss_kb) * 1024 / customers, "B/customer",
                   f"VmRSS {rss / 1024:.0f} MiB - idle baseline {idle.rss_kb / 1024:.0f} MiB")
        report.add(f"{label}: peak RSS bytes per customer (VmHWM)", (hwm - idle.hwm_kb) * 1024 / customers,
                   "B/customer", f"VmHWM {hwm / 1024:.0f} MiB - idle baseline {idle.hwm_kb / 1024:.0f} MiB")
        report.add(f"{label}: disk bytes per customer (du of the data dir)", (disk - idle.disk) / customers,
                   "B/customer", f"{disk / 2**20:.1f} MiB - idle baseline {idle.disk / 1024:.0f} KiB")
        try:
            records, cl_bytes = changelog_size(settings)
            report.add(f"{label}: changelog bytes per customer (estimate)", cl_bytes / customers, "B/customer",
                       f"{records:,} records, ~{cl_bytes / 2**20:.0f} MiB (mean size of a sample x records)")
        except Exception as exc:  # noqa: BLE001 - a side figure; the run is still valid without it
            print(f"  (changelog size unavailable: {exc})")

        # (a) graceful stop, same data dir
        t = time.monotonic()
        t_stop = time.monotonic()
        w.stop(300)
        stop_s = time.monotonic() - t_stop
        markers += 1
        w, r = timed_start(fresh_ports(settings), logs["graceful"], cid, markers)
        after = settle(w, customers)
        add_restart(report, label, "graceful restart", r, idle, per_customer + markers,
                    after, customers, proc_status_kb(w.pid, "VmRSS"), f"; the stop took {stop_s:.1f} s")
        print(f"  [step {time.monotonic() - t:.0f}s]")

        # (b) kill -9, same data dir
        t = time.monotonic()
        w.proc.kill()
        w.proc.wait(30)
        markers += 1
        w, r = timed_start(fresh_ports(settings), logs["killed"], cid, markers)
        after = settle(w, customers)
        add_restart(report, label, "kill -9 restart", r, idle, per_customer + markers,
                    after, customers, proc_status_kb(w.pid, "VmRSS"))
        print(f"  [step {time.monotonic() - t:.0f}s]")

        # (c) lost local disk: a fresh, empty data dir; the state comes back from the changelog
        t = time.monotonic()
        w.stop(300)
        markers += 1
        fresh = settings.with_(data_dir=root / f"data-{name}-fresh")
        w, r = timed_start(fresh_ports(fresh), logs["fresh"], cid, markers)
        after = settle(w, customers)
        rss_fresh = proc_status_kb(w.pid, "VmRSS")
        add_restart(report, label, "fresh data dir", r, idle, per_customer + markers, after, customers, rss_fresh)
        report.add(f"{label}: RSS bytes per customer after the rebuild", (rss_fresh - idle.rss_kb) * 1024 / customers,
                   "B/customer", "the state alone: no backlog batches behind it")
        print(f"  [step {time.monotonic() - t:.0f}s]")
    finally:
        w.stop(120)
    report_sweeps(report, label, logs)


#: mode's warning when a timer's callback outlasts its interval; the sweep holds the state lock while it
#: scans every customer, so no event is processed for that long
_OVERLAP = re.compile(r"Timer (\S+) is overlapping \(interval=[0-9.]+ runtime=([0-9.]+)\)")


def sweep_runs(log: Path) -> list[float]:
    """Runtimes (s) of the sweep timer's runs that outlasted its interval, from a worker's log."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return []
    return [float(m.group(2)) for m in _OVERLAP.finditer(text) if m.group(1).endswith(".sweep")]


def report_sweeps(report: Report, label: str, logs: dict[str, Path]) -> None:
    """The longest sweep per worker run of a size: a full scan of the state that blocks events."""
    longest = {what: max(sweep_runs(log), default=0.0) for what, log in logs.items()}
    what, worst = max(longest.items(), key=lambda kv: kv[1])
    if worst > 0:
        report.add(f"{label}: longest sweep timer run (worker logs)", worst, "s",
                   ", ".join(f"{k} {v:.1f} s" for k, v in longest.items()) + "; the state lock is held meanwhile")


def broker_rss_mib(broker: EmbeddedBroker) -> float:
    return proc_status_kb(broker.pid or 0, "VmRSS") / 1024

