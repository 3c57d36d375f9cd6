"""Training on a large event log: wall time and peak RSS of `churnwatch train`, `dataset` and `score` at 1M and 10M events.

The offline commands read a log once into a temporary Parquet spool (sorted by DuckDB's external sort
when out of order) and replay it in bounded batches (``training/data/spool.py``), so their memory should
follow the customers and the rows, not the log. This measures it. The baseline, in the same run, is
the same `train` command at an earlier commit that held the whole log in memory as Python objects
(``--baseline``, default a220471, checked out as a ``git worktree`` under /tmp and removed afterwards),
at the sizes up to ``--baseline-max`` (default 1M events: at 10M it needs ~10 GB).

Logs are simulated (`churnwatch simulate`, 180 days, seed 7; ~718 events per customer) and written
**by source** — every customers record, then every interaction, then tickets, surveys, outcomes — the
way a dump of several tables is concatenated: the worst order for the reader, since every event must
be re-sorted. ``--order time`` keeps the simulator's time order. Logs are cached under
``--cache`` (default /tmp/cw-bench-cache) between runs: 10M events are ~1.7 GB of JSONL.

Each command runs as its own process; peak RSS is that process's ``ru_maxrss`` (``os.wait4``).

    .venv/bin/python bench/bench_training.py                    # 1M and 10M: ~35 min on 2 cores
    .venv/bin/python bench/bench_training.py --quick            # 200k events, with the baseline
    .venv/bin/python bench/bench_training.py --events 1000000 --no-baseline
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _common import (REPO, BenchError, Report, main_guard, parser, bench_trees, remove_worktree, section,
                     stop_child, tree_env)

from pipeline.core.contract import DAY_MS, format_ts, parse_ts  # noqa: E402  (after _common puts the repo on the path)

EVENTS_PER_CUSTOMER = 718  # `churnwatch simulate --days 180` (seed 7): 717,714 records for 1,000 customers
DAYS = 180
START = "2025-06-01T00:00:00Z"
SOURCES = (b'"customers"', b'"interactions"', b'"tickets"', b'"surveys"', b'"outcomes"')


@dataclass
class Run:
    size: str
    command: str
    tree: str
    seconds: float
    peak_mb: float
    ok: bool
    note: str = ""


def simulated_log(cache: Path, events: int, order: str) -> Path:
    customers = max(1, round(events / EVENTS_PER_CUSTOMER))
    cache.mkdir(parents=True, exist_ok=True)
    timed = cache / f"sim-{customers}c-{DAYS}d-s7.jsonl"
    if not timed.is_file():
        print(f"  simulating {customers:,} customers x {DAYS} days -> {timed}", flush=True)
        tmp = timed.with_suffix(".part.jsonl")  # simulate --out takes its format from the suffix
        out = subprocess.run([sys.executable, "-m", "apps.cli", "simulate", "--customers", str(customers),
                              "--days", str(DAYS), "--start", START, "--seed", "7", "--out", str(tmp)],
                             cwd=REPO, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if out.returncode != 0:
            raise BenchError(f"simulate failed: {(out.stderr or out.stdout).strip().splitlines()[-1:]}")
        tmp.rename(timed)
    if order == "time":
        return timed
    by_source = cache / f"sim-{customers}c-{DAYS}d-s7.by-source.jsonl"
    if not by_source.is_file():
        tmp = by_source.with_suffix(".part")
        with open(tmp, "wb") as out:
            for src in SOURCES:  # one pass per source: a concatenation of per-table dumps
                key = b'"source":' + src
                with open(timed, "rb") as fh:
                    for line in fh:
                        if key in line:
                            out.write(line)
        tmp.rename(by_source)
    return by_source


def measure(cmd: list[str], tree: Path, log: Path, timeout: float) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MB, exit code) of one command run in ``tree``."""
    started = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=tree, env=tree_env(tree), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        deadline = started + timeout
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    return time.perf_counter() - started, usage.ru_maxrss / 1024, proc.returncode
                if time.perf_counter() > deadline:
                    raise subprocess.TimeoutExpired(cmd, timeout)
                time.sleep(0.2)
        except BaseException:
            stop_child(proc)
            raise


def last_line(path: Path) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:160] if lines else ""


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", help="log sizes, comma separated (default 1000000,10000000; --quick 200000)")
    p.add_argument("--order", choices=["source", "time"], default="source", help="record order in the log")
    p.add_argument("--baseline", default="a220471", help="commit whose in-memory reader is the baseline")
    p.add_argument("--baseline-max", type=int, default=1_000_000, help="largest log the baseline runs on")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--cache", default="/tmp/cw-bench-cache", help="where simulated logs are kept between runs")
    p.add_argument("--timeout", type=float, default=3600, help="per command, seconds")
    args = p.parse_args()
    try:
        sizes = [int(x) for x in (args.events or ("200000" if args.quick else "1000000,10000000")).split(",")]
    except ValueError:
        raise BenchError(f"--events {args.events!r}: comma-separated event counts, e.g. 1000000,10000000") from None
    if not sizes or min(sizes) < 10_000:
        raise BenchError("--events: every size must be at least 10000")
    report = Report("training")
    runs: list[Run] = []
    tmp = Path(tempfile.mkdtemp(prefix="cw-bench-training-"))
    old_tree: Path | None = None
    try:
        wants_baseline = not args.no_baseline and any(n <= args.baseline_max for n in sizes)
        this_tree, old_tree = bench_trees(tmp, args.baseline if wants_baseline else None)
        for n in sizes:
            label = f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n // 1000}k"
            section(f"{label} events ({args.order} order)")
            log = simulated_log(Path(args.cache), n, args.order)
            records = sum(1 for _ in open(log, "rb"))
            report.add(f"{label}: records in the log", records, "records", log.name)
            models = tmp / f"models-{label}"
            trees = [("this tree", this_tree)] + ([("baseline", old_tree)] if old_tree and n <= args.baseline_max else [])
            for tree_name, tree in trees:
                reg = tmp / f"models-{label}-{tree_name.replace(' ', '-')}"
                cmd = [sys.executable, "-m", "apps.cli", "train", "--events", str(log), "--models-dir", str(reg),
                       "--quiet", "--no-promote"]
                out = tmp / f"train-{label}-{tree_name.replace(' ', '-')}.log"
                secs, peak, code = measure(cmd, tree, out, args.timeout)
                runs.append(Run(label, "train", tree_name, secs, peak, code == 0, last_line(out)))
                report.add(f"{label}: train wall time ({tree_name})", secs, "s", "" if code == 0 else f"exit {code}")
                report.add(f"{label}: train peak RSS ({tree_name})", peak, "MB")
                if code != 0:
                    print(f"    {last_line(out)}", flush=True)
                if tree_name == "this tree":
                    report.add(f"{label}: train events/s ({tree_name})", records / secs, "events/s")
                    shutil.copytree(reg, models, dirs_exist_ok=True) if code == 0 else None
            at = ",".join(format_ts(parse_ts(START) + d * DAY_MS) for d in (120, 150, 177))
            for command, cmd in (
                ("dataset", [sys.executable, "-m", "apps.cli", "dataset", "--events", str(log),
                             "--out", str(tmp / f"ds-{label}.parquet")]),
                ("score", [sys.executable, "-m", "apps.cli", "score", "v1", "--events", str(log), "--at", at,
                           "--out", str(tmp / f"scores-{label}.parquet"), "--models-dir", str(models)]),
            ):
                if command == "score" and not (models / "v1").is_dir():
                    continue
                out = tmp / f"{command}-{label}.log"
                secs, peak, code = measure(cmd, this_tree, out, args.timeout)
                runs.append(Run(label, command, "this tree", secs, peak, code == 0, last_line(out)))
                report.add(f"{label}: {command} wall time", secs, "s", "" if code == 0 else f"exit {code}")
                report.add(f"{label}: {command} peak RSS", peak, "MB")
                if code != 0:
                    print(f"    {last_line(out)}", flush=True)
        section("summary")
        print(f"  {'log':<6} {'command':<8} {'tree':<10} {'wall s':>9} {'peak RSS MB':>12}  last line")
        for r in runs:
            print(f"  {r.size:<6} {r.command:<8} {r.tree:<10} {r.seconds:>9.1f} {r.peak_mb:>12,.0f}  {r.note[:90]}")
        report.write_json(args.json_out)
        return 0 if all(r.ok for r in runs) else 1
    finally:
        remove_worktree(old_tree)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main_guard(main)
