"""Run every churnwatch benchmark in sequence and print one table of figures.

Each benchmark runs in its own subprocess (so one's memory, GC state or leftover threads cannot colour the
next one's figures, and a failure in one still lets the others report), writes its figures as JSON, and
cleans up everything it started. The final table puts DESIGN.md's orientation figures beside the ones
measured here, where the two describe the same thing.

Run: ``.venv/bin/python bench/run_all.py [--quick] [--only features,state,scoring,worker,scale]`` (``scale`` runs
only when named: it takes ~45 minutes, ``--quick`` ~4).
(``make bench`` runs the full set: about 5.5-7 minutes on 2 cores, depending on the load; ``--quick`` about 2 min.)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from _common import Figure, fmt_num, load_note, main_guard, stop_child

import orjson

HERE = Path(__file__).resolve().parent
BENCHES = ("features", "state", "scoring", "worker")
#: Run only when named in ``--only``: longer than the default set (bench_scale: ~45 min, ``--quick`` ~4 min).
OPT_IN = ("scale",)

#: DESIGN.md "Measured on this machine class", for the figures that measure the same thing.
ORIENTATION: dict[tuple[str, str], str] = {
    ("worker", "aiokafka produce, batched (up front)"): "~130k msg/s",
    ("worker", "baseline: raw aiokafka consume + orjson decode"): "~390k msg/s",
    ("worker", "worker: sustained, first to last event consumed"): "~7k ev/s (Table + take(500) + LightGBM)",
    ("scoring", "synthetic-200: single-row predict, per call p50"): "21 µs",
    ("scoring", "synthetic-200: batch 500 predict, µs per row (p50)"): "4 µs/row",
    ("scoring", "synthetic-200: contributions per row (1-row call) p50"): "~1 ms",
    ("scoring", "registry: single-row predict, per call p50"): "21 µs (200 trees)",
    ("scoring", "registry: batch 500 predict, µs per row (p50)"): "4 µs/row (200 trees)",
    ("features", "state bytes per customer, mean"): "json ~1.8-2.6 KB",
    ("worker", "worker: steady state, 10% -> 90% of events"): "~7k ev/s",
}


def run_one(name: str, quick: bool, out: Path) -> tuple[int, float]:
    cmd = [sys.executable, str(HERE / f"bench_{name}.py"), "--json-out", str(out)]
    if quick:
        cmd.append("--quick")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    try:
        code = proc.wait()
    except BaseException:
        # Ctrl-C reaches the child too; SIGTERM (or anything else) is forwarded to our child by pid,
        # and the child's own handlers stop the broker and workers it started.
        stop_child(proc)
        raise
    return code, time.monotonic() - t0


def print_table(figures: list[Figure], notes: bool = True) -> None:
    w_name = max(len(f.name) for f in figures)
    w_val = max(len(fmt_num(f.value)) for f in figures)
    w_unit = max(len(f.unit) for f in figures)
    w_orient = max([len("DESIGN.md orientation")] + [len(ORIENTATION.get((f.bench, f.name), "")) for f in figures])
    print(f"\n{'':=<{w_name + w_val + w_unit + w_orient + 8}}")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"churnwatch benchmarks, {stamp}, Python {sys.version.split()[0]}, {load_note()} at the end")
    print("(a shared machine: figures are noisy; read each against its same-run baseline)")
    current = ""
    for f in figures:
        if f.bench != current:
            current = f.bench
            print(f"\n[{current}]")
            head = f"  {'figure':<{w_name}}  {'value':>{w_val}} {'unit':<{w_unit}}  {'DESIGN.md orientation':<{w_orient}}"
            print((head + "  note") if notes else head.rstrip())
        orient = ORIENTATION.get((f.bench, f.name), "")
        line = f"  {f.name:<{w_name}}  {fmt_num(f.value):>{w_val}} {f.unit:<{w_unit}}  {orient:<{w_orient}}"
        if notes and f.note:
            line += f"  {f.note}"
        print(line.rstrip())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes: a smoke run in about a minute")
    p.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHES)}, or the opt-in {','.join(OPT_IN)}")
    p.add_argument("--no-notes", action="store_true", help="leave the notes column out of the final table")
    args = p.parse_args()
    names = BENCHES if not args.only else tuple(n.strip() for n in args.only.split(",") if n.strip())
    unknown = [n for n in names if n not in BENCHES + OPT_IN]
    if unknown:
        print(f"run_all: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHES + OPT_IN)}", file=sys.stderr)
        return 2
    figures: list[Figure] = []
    failed: list[str] = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="churnwatch-bench-") as tmp:
        for name in names:
            out = Path(tmp) / f"{name}.json"
            code, secs = run_one(name, args.quick, out)
            print(f"  ({name}: {secs:.0f}s)", flush=True)
            if code != 0 or not out.exists():
                failed.append(f"{name} (exit {code})")
                continue
            figures += [Figure(**d) for d in orjson.loads(out.read_bytes())]
    if figures:
        print_table(figures, notes=not args.no_notes)
    print(f"\ntotal {time.monotonic() - t0:.0f}s{' (--quick)' if args.quick else ''}")
    if failed:
        print(f"run_all: benchmark(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    main_guard(main)
