"""The worker's events/s and latencies before and after a change: ``bench_worker.py`` run against an
older commit and against this tree, in alternation, each with a model trained by its own code.

Why paired and alternating: on a shared 2-core machine the same figure moves by up to 2x between runs an
hour apart, more than most changes do. Runs of the variants interleaved (A B C, B C A, C A B, ...) meet
the same neighbours' load, and the ratio of each round's runs to the round's baseline run is read, not
absolute figures from different hours.

What runs: the older commit as a ``git worktree`` under /tmp, and a snapshot of this working tree (its
tracked and untracked files, so edits made while the runs go on do not mix into them). Both get *this*
tree's copy of ``bench_worker.py`` and ``_common.py``, so the measurement is the same and only the code
under test differs; ``PYTHONPATH`` and the working directory make each run (and the worker subprocess it
starts) import that tree's ``pipeline`` and ``training``, which the driver checks before measuring.

Models: a model saved by the older code has no feature spec and an older worker cannot score a newer
model's features, so every tree is given a model trained by its own code (``bench_worker.py
--train-into``), once, and all runs of a variant share it. Variants:

* ``old``: the older commit, with its own model;
* ``new-legacy``: this tree, with a model it trained on the built-in features only (``--spec legacy``):
  the same features as ``old``, so the difference is the code's own cost (the wider state, the spec path);
* ``new``: this tree, with the model ``churnwatch train`` gives it (a learnt spec): what users run;
* ``new-oldmodel`` (not run by default): this tree scoring the older commit's model (no spec: the
  built-in features).

Run: ``.venv/bin/python bench/before_after.py [--commit 0b74179] [--runs 3] [--quick] [--rate 1000]
[--variants old,new-legacy,new]`` (full size: 1.5-3.5 minutes per run on 2 cores, depending on the load,
so 16-25 minutes for 3 rounds of 3 variants, training included; ``--no-latency`` about half). The worktree and every temp file are removed at
the end (``--keep`` keeps them); every process started is stopped by its pid, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import (REPO, BenchError, Figure, check_imports, fmt_num, git, load_note, main_guard,
                     remove_worktree, snapshot_working_tree, stop_child, tree_env)

import orjson

HERE = Path(__file__).resolve().parent
DEFAULT_COMMIT = "0b74179"
#: The measurement code both trees run: this tree's, so only the code under test differs.
HARNESS = ("bench/_common.py", "bench/bench_worker.py")
#: A file only trees with the layered package layout have; older trees keep their own harness.
LAYERED = "pipeline/worker/batch.py"
#: Modules the harness itself uses to make its input: if they differ, the trees see different events.
INPUT_MODULES = ("devtools/simulator.py", "devtools/simulator/")


@dataclass(frozen=True)
class Variant:
    name: str
    tree: str  # "old" or "new"
    model: str  # key of the model it scores with
    what: str


VARIANTS = {
    "old": Variant("old", "old", "old", "older commit, model trained by its code (no feature spec)"),
    "new-legacy": Variant("new-legacy", "new", "new-legacy", "this tree, model trained by it on the built-in features only"),
    "new": Variant("new", "new", "new", "this tree, model trained by it as `churnwatch train` does (learnt spec)"),
    "new-oldmodel": Variant("new-oldmodel", "new", "old", "this tree, scoring the older commit's model"),
}
#: model key -> (tree that trains it, bench_worker --spec)
MODELS = {"old": ("old", "default"), "new-legacy": ("new", "legacy"), "new": ("new", "default")}

#: (figure name in bench_worker's report, label here); the note of a CPU figure carries µs CPU/event.
ROWS = (
    ("worker: sustained, first to last event consumed", "worker events/s, first to last event"),
    ("worker: steady state, 10% -> 90% of events", "worker events/s, 10% -> 90%"),
    ("worker: slowest 1-second window", "worker events/s, slowest 1-s window"),
    ("worker: CPU while consuming", "worker CPU while consuming"),
    ("worker: CPU µs per event", "worker CPU per event"),
    ("worker: start-up, process start to first event", "worker start-up"),
    ("worker: RSS after the run (VmRSS)", "worker RSS after the backlog"),
    ("baseline: worker batch code in-process, no Kafka", "in-process batch code (no Kafka)"),
    ("baseline: raw aiokafka consume + orjson decode", "baseline: raw aiokafka consume"),
    ("latency produce -> score record timestamp, p50", "latency event -> score, p50"),
    ("latency produce -> score record timestamp, p95", "latency event -> score, p95"),
    ("latency produce -> score record timestamp, p99", "latency event -> score, p99"),
    ("latency produce -> score record timestamp, max", "latency event -> score, max"),
    ("latency event -> alert record timestamp, p50", "latency event -> alert, p50"),
    ("latency event -> alert record timestamp, p95", "latency event -> alert, p95"),
    ("latency event -> alert record timestamp, p99", "latency event -> alert, p99"),
    ("baseline: produce -> raw consumer, fetch_max_wait_ms=1500, p50", "baseline: raw consumer (1500 ms wait), p50"),
    ("worker: CPU at the paced rate (with score emission)", "worker CPU at the paced rate"),
    ("worker: RSS after the latency phase", "worker RSS after the latency phase"),
)


@dataclass
class Run:
    variant: str
    round: int
    code: int
    seconds: float
    figures: dict[str, Figure] = field(default_factory=dict)
    behind: bool = False


def run_child(cmd: list[str], tree: Path, log: Path, timeout: float) -> int:
    """One benchmark subprocess, its output to ``log``; stopped by its pid (SIGTERM: its own handlers stop
    the broker and workers it started) on a timeout, Ctrl-C or SIGTERM."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=tree, env=tree_env(tree), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_child(proc)
            return -1
        except BaseException:
            stop_child(proc)
            raise


def tail(log: Path, n: int = 3) -> str:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return " | ".join(lines[-n:])[-400:]


def load_figures(path: Path) -> dict[str, Figure]:
    figs = {d["name"]: Figure(**d) for d in orjson.loads(path.read_bytes())}
    cpu = figs.get("worker: CPU while consuming")
    m = re.search(r"([\d.]+) µs CPU/event", cpu.note) if cpu else None
    if m:
        figs["worker: CPU µs per event"] = Figure("worker", "worker: CPU µs per event", float(m.group(1)), "µs")
    return figs


def print_table(runs: list[Run], variants: list[str], commit: str) -> None:
    base = variants[0]
    by: dict[str, list[Run]] = {v: [r for r in runs if r.variant == v and r.figures] for v in variants}
    rounds = sorted({r.round for r in runs})
    cells: list[list[str]] = []
    for fig, label in ROWS:
        vals = {v: [r.figures[fig].value for r in by[v] if fig in r.figures] for v in variants}
        if not any(vals.values()):
            continue
        unit = next(r.figures[fig].unit for v in variants for r in by[v] if fig in r.figures)
        row = [label, unit]
        for v in variants:
            xs = vals[v]
            row.append(f"{fmt_num(statistics.median(xs))} [{fmt_num(min(xs))}-{fmt_num(max(xs))}]" if xs else "n/a")
        for v in variants[1:]:
            ratios = []
            for rd in rounds:
                a = next((r.figures[fig].value for r in by[v] if r.round == rd and fig in r.figures), None)
                b = next((r.figures[fig].value for r in by[base] if r.round == rd and fig in r.figures), None)
                if a is not None and b:
                    ratios.append(a / b)
            row.append(f"{statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]" if ratios else "n/a")
        cells.append(row)
    head = ["figure", "unit"] + [f"{v}: median [min-max]" for v in variants] + [f"{v}/{base} paired" for v in variants[1:]]
    widths = [max(len(str(r[i])) for r in cells + [head]) for i in range(len(head))]
    n = {v: len(by[v]) for v in variants}
    print(f"\n== before/after: {commit} vs this tree, {', '.join(f'{v} {n[v]} runs' for v in variants)} "
          f"({load_note()} at the end)")
    for v in variants:
        behind = sum(r.behind for r in by[v])
        print(f"  {v:<13} {VARIANTS[v].what}" + (f"; fell behind the paced rate in {behind} run(s)" if behind else ""))
    print("  ratios: each round's run of a variant / the same round's run of the baseline; median [min-max] over rounds")
    fmt = "  " + "  ".join(f"{{:<{widths[0]}}}" if i == 0 else (f"{{:<{w}}}" if i == 1 else f"{{:>{w}}}")
                           for i, w in enumerate(widths))
    print(fmt.format(*head))
    for row in cells:
        print(fmt.format(*row))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--commit", default=DEFAULT_COMMIT, help=f"the older commit (default {DEFAULT_COMMIT})")
    p.add_argument("--runs", type=int, default=3, help="runs per variant, in alternation (default 3)")
    p.add_argument("--variants", default="old,new-legacy,new",
                   help=f"comma-separated, the first is the baseline of the ratios; from {','.join(VARIANTS)}")
    p.add_argument("--quick", action="store_true", help="bench_worker --quick (smaller sizes)")
    p.add_argument("--rate", type=float, default=1000.0, help="events/s of the latency phase (default 1000)")
    p.add_argument("--no-latency", action="store_true", help="throughput phase only")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds one run may take (default 900)")
    p.add_argument("--keep", action="store_true", help="keep the worktree, snapshot, models and logs")
    args = p.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants or len(set(variants)) != len(variants):
        raise BenchError(f"--variants {args.variants!r}: choose distinct names from {', '.join(VARIANTS)}")
    if args.runs < 1:
        raise BenchError("--runs must be >= 1")
    commit = git("rev-parse", "--verify", f"{args.commit}^{{commit}}")
    short = commit[:7]
    head = git("rev-parse", "--short", "HEAD")
    dirty = len([ln for ln in git("status", "--porcelain", "--untracked-files=all").splitlines() if ln.strip()])
    changed = git("diff", "--name-only", commit, "--", *INPUT_MODULES)

    tmp = Path(tempfile.mkdtemp(prefix="churnwatch-before-after-", dir="/tmp"))
    trees = {"old": tmp / "old", "new": tmp / "new"}
    worktree_added = False
    t_all = time.monotonic()
    try:
        print(f"before/after: {short} vs this tree (HEAD {head}, {dirty} files changed or untracked), "
              f"{args.runs} runs per variant ({load_note()}); temp dir {tmp}", flush=True)
        if changed:
            print(f"  WARNING: {changed.replace(chr(10), ', ')} differ(s) between the trees: the simulated "
                  "events may not be the same")
        git("worktree", "add", "--detach", str(trees["old"]), commit)
        worktree_added = True
        n = snapshot_working_tree(trees["new"])
        print(f"  worktree of {short} at {trees['old']}; snapshot of this tree ({n} files) at {trees['new']}")
        if (trees["old"] / LAYERED).exists():
            for rel in HARNESS:
                shutil.copy2(REPO / rel, trees["old"] / rel)
        else:  # before the layered layout this tree's harness cannot import the old modules: keep the old one
            print(f"  {short} predates the layered layout ({LAYERED} missing): it runs its own copy of the harness")
        for name, tree in trees.items():
            if any(VARIANTS[v].tree == name for v in variants):
                check_imports(tree)
        logs = tmp / "logs"
        logs.mkdir()

        registries: dict[str, str] = {}
        for key in dict.fromkeys(VARIANTS[v].model for v in variants):
            tree_name, spec = MODELS[key]
            tree = trees[tree_name]
            log = logs / f"train-{key}.log"
            t0 = time.monotonic()
            code = run_child([sys.executable, str(tree / "bench/bench_worker.py"), "--train-into",
                              str(tmp / "models" / key), "--spec", spec], tree, log, args.timeout)
            if code != 0:
                raise BenchError(f"training the {key} model failed (exit {code}): {tail(log)}")
            lines = log.read_text().splitlines()
            registries[key] = lines[-1].strip()
            desc = next((ln.strip() for ln in lines if ln.strip().startswith("model:")), "")
            print(f"  model {key}: trained by the {tree_name} tree in {time.monotonic() - t0:.0f}s; {desc}", flush=True)

        runs: list[Run] = []
        for rd in range(args.runs):
            order = variants[rd % len(variants):] + variants[:rd % len(variants)]
            for v in order:
                var = VARIANTS[v]
                tree = trees[var.tree]
                out = tmp / f"{v}-{rd}.json"
                log = logs / f"{v}-{rd}.log"
                cmd = [sys.executable, str(tree / "bench/bench_worker.py"), "--models", registries[var.model],
                       "--json-out", str(out), "--rate", str(args.rate)]
                if args.quick:
                    cmd.append("--quick")
                if args.no_latency:
                    cmd.append("--no-latency")
                t0 = time.monotonic()
                code = run_child(cmd, tree, log, args.timeout)
                run = Run(v, rd, code, time.monotonic() - t0)
                if code == 0 and out.exists():
                    run.figures = load_figures(out)
                    run.behind = "WARNING: the worker fell behind" in log.read_text(errors="replace")
                    f = run.figures.get(ROWS[0][0])
                    lat = run.figures.get("latency produce -> score record timestamp, p50")
                    print(f"  round {rd + 1}/{args.runs} {v:<13} {run.seconds:4.0f}s  "
                          f"{fmt_num(f.value) if f else 'n/a'} events/s"
                          + (f", event -> score p50 {fmt_num(lat.value)} ms" if lat else "")
                          + (" (fell behind)" if run.behind else ""), flush=True)
                else:
                    print(f"  round {rd + 1}/{args.runs} {v:<13} FAILED (exit {code}): {tail(log)}", flush=True)
                runs.append(run)
        if not any(r.figures for r in runs):
            raise BenchError("every run failed")
        print_table(runs, variants, short)
        print(f"\ntotal {time.monotonic() - t_all:.0f}s")
        failed = [f"{r.variant} round {r.round + 1}" for r in runs if not r.figures]
        if failed:
            print(f"before_after: run(s) failed: {', '.join(failed)}", file=sys.stderr)
            return 1
        return 0
    finally:
        if args.keep:
            print(f"  kept {tmp} (remove with: git worktree remove --force {trees['old']}; rm -rf {tmp})")
        else:
            if worktree_added:
                remove_worktree(trees["old"])
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main_guard(main)
