"""Helpers shared by the benchmarks: figures, timing, percentiles, failing in one line.

Benchmarks print figures instead of asserting on time (a 2-core machine is too noisy for timed tests),
and each one measures its own baseline in the same run, so a figure is read relative to something that
ran on the same machine a moment earlier. ``run_all.py`` runs every benchmark in its own subprocess and
collects the figures each writes to ``--json-out`` into one table.
"""

from __future__ import annotations

import argparse
import csv
import gc
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable as `.venv/bin/python bench/bench_x.py` from the repo root
    sys.path.insert(0, str(REPO))

import orjson  # noqa: E402


class BenchError(RuntimeError):
    """A benchmark could not produce its figures; the message is one line for the user."""


@dataclass
class Figure:
    """One measured number. ``baseline`` names the same-run reference it should be read against."""

    bench: str
    name: str
    value: float
    unit: str
    note: str = ""

    def fmt_value(self) -> str:
        return fmt_num(self.value)


def fmt_num(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    a = abs(v)
    if a >= 100_000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    if a == 0:
        return "0"
    return f"{v:.3g}"


class Report:
    """Collects the figures of one benchmark and prints each as it is measured."""

    def __init__(self, bench: str) -> None:
        self.bench = bench
        self.figures: list[Figure] = []

    def add(self, name: str, value: float, unit: str, note: str = "") -> Figure:
        f = Figure(self.bench, name, float(value), unit, note)
        self.figures.append(f)
        extra = f"   ({note})" if note else ""
        print(f"  {name:<58} {f.fmt_value():>12} {unit}{extra}", flush=True)
        return f

    def write_json(self, path: str | None) -> None:
        if path:
            Path(path).write_bytes(orjson.dumps([asdict(f) for f in self.figures]))


def section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank-interpolated percentile (q in 0..100) of an unsorted sequence."""
    if not values:
        return math.nan
    s = sorted(values)
    if len(s) == 1:
        return float(s[0])
    pos = (len(s) - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (pos - lo))


def best_of(repeats: int, fn: Callable[[], Any]) -> float:
    """Fastest wall time of ``repeats`` runs of ``fn`` (seconds), with the GC off while timing.

    The minimum is the least-disturbed run: on a shared 2-core box, slower runs measure the neighbours.
    """
    best = math.inf
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        finally:
            gc.enable()
    return best


def best_of_interleaved(repeats: int, fns: dict[str, Callable[[], Any]]) -> dict[str, float]:
    """:func:`best_of` for several functions run in alternation (a, b, c, a, b, c, ...).

    A neighbour's load that comes and goes then hits every contender alike instead of whichever ran
    during the busy second, so ratios between them (the point of a same-run baseline) stay honest.
    """
    best = {name: math.inf for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            best[name] = min(best[name], best_of(1, fn))
    return best


def load_note() -> str:
    """The 1-minute load average next to the core count: context for every figure of the run."""
    try:
        return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    except OSError:
        return f"{os.cpu_count()} cores"


def per_call_ns(fn: Callable[[], Any], calls: int) -> list[float]:
    """Wall time of each of ``calls`` calls of ``fn`` in nanoseconds (for p50/p99 per call)."""
    out: list[float] = []
    clock = time.perf_counter_ns
    gc.collect()
    for _ in range(calls):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def per_call_ns_interleaved(rounds: int, fns: dict[str, tuple[Callable[[], Any], int]]) -> dict[str, list[float]]:
    """:func:`per_call_ns` for several functions, ``rounds`` times in alternation: each entry of ``fns``
    is (function, calls per round). Returns every call's wall time in ns, per name.

    Like :func:`best_of_interleaved`: a neighbour's burst of load hits every contender alike, so the
    percentiles of single-row and batched calls stay comparable with each other.
    """
    out: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, (fn, calls) in fns.items():
            out[name] += per_call_ns(fn, calls)
    return out


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="smaller sizes (for a smoke run)")
    p.add_argument("--json-out", help="also write the figures as JSON here (used by run_all.py)")
    return p


def main_guard(run: Callable[[], int]) -> None:
    """Run a benchmark's main; any failure ends with a one-line message and a non-zero exit code.

    SIGTERM is turned into an exception so ``finally`` blocks still stop every process we started.
    """
    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = run()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        code = 1
    except Exception as exc:  # noqa: BLE001 - one line for the user, not a traceback
        msg = str(exc).splitlines()[0] if str(exc) else ""
        print(f"benchmark failed: {type(exc).__name__}: {msg[:300]}", file=sys.stderr)
        if os.environ.get("BENCH_TRACEBACK"):
            raise
        code = 1
    sys.stdout.flush()
    sys.exit(code)


def chunks(seq: Sequence[Any], n: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def dict_counters(events: list[Any]) -> dict[str, dict[str, int]]:
    """Baseline of the per-event benches: the cheapest stateful per-event loop in Python (per-customer counters by type)."""
    counters: dict[str, dict[str, int]] = {}
    for ev in events:
        c = counters.get(ev.customer_id)
        if c is None:
            c = counters[ev.customer_id] = {}
        c[ev.type] = c.get(ev.type, 0) + 1
    return counters


def stop_child(proc: subprocess.Popen) -> None:
    """Stop a child we started, by its pid: SIGTERM (its own handlers stop what it started), then kill."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- other trees (a commit checked out beside this one, for a same-run baseline) ----------------
def git(*args: str, cwd: Path = REPO) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise BenchError(f"git {' '.join(args)}: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else 'failed'}")
    return out.stdout.strip()


def bench_trees(tmp: Path, baseline: str | None) -> tuple[Path, Path | None]:
    """The trees a before/after bench runs: a snapshot copy of this one (edits made while the bench runs
    do not leak into it) and, when ``baseline`` is given, that commit as a ``git worktree`` (remove it
    with :func:`remove_worktree`). Both are checked to import before anything is timed."""
    old_tree = None
    if baseline is not None:
        old_tree = tmp / "baseline"
        git("worktree", "add", "--detach", str(old_tree), baseline)
        check_imports(old_tree)
    this_tree = tmp / "this-tree"
    snapshot_working_tree(this_tree)
    check_imports(this_tree)
    return this_tree, old_tree


def remove_worktree(path: Path | None) -> None:
    """Remove a baseline's ``git worktree`` (if it was added); a failure is said, not raised: the figures
    are already printed, and ``git worktree prune`` cleans up later."""
    if path is None or not path.exists():
        return
    try:
        git("worktree", "remove", "--force", str(path))
    except BenchError as exc:
        print(f"  could not remove the worktree {path}: {exc}", file=sys.stderr)


def snapshot_working_tree(dest: Path) -> int:
    """Copy this tree's tracked and untracked (not ignored) files as they are now; returns how many."""
    files = git("ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    n = 0
    for rel in filter(None, files):
        src = REPO / rel
        if not src.is_file():  # deleted in the working tree but still in the index
            continue
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, out)
        n += 1
    return n


def tree_env(tree: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNWATCH_")}
    env["PYTHONPATH"] = str(tree)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_imports(tree: Path) -> None:
    """The venv has this repo installed in editable mode: make sure the tree's own packages win."""
    code = "import pipeline, training; print(pipeline.__file__); print(training.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, env=tree_env(tree), capture_output=True,
                         text=True, stdin=subprocess.DEVNULL)
    paths = out.stdout.split()
    if out.returncode != 0 or len(paths) != 2 or not all(Path(p).resolve().is_relative_to(tree.resolve()) for p in paths):
        raise BenchError(f"{tree}: imports resolve to {paths or out.stderr.strip()[-200:]}, not the tree's own code")


# ---- the CDNOW purchase log (model_vs_counts.py, cdnow_vs_bgnbd.py) -----------------------------------
#: CDNOW ships inside the ``lifetimes`` wheel, the reference implementation of BG/NBD; only the data file is
#: read from the wheel here (``pip download``, opened as a zip): nothing is installed.
CDNOW_WHEEL = "lifetimes==0.11.3"
CDNOW_MEMBER = "lifetimes/datasets/CDNOW_master.txt"
#: CDNOW's dates are moved forward by 28 years (1997 -> 2025): the event contract refuses times before
#: 2000, and the Gregorian calendar repeats exactly after 28 years here (weekdays and leap years alike).
CDNOW_SHIFT_YEARS = 28
#: Where the benches keep downloads (the lifetimes wheel, the BG/NBD venv) between runs.
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "churnwatch-bench-cache"


def cdnow_rows(cache: Path) -> list[tuple[str, str, str]]:
    """CDNOW_master.txt as (customer id, YYYYMMDD moved by :data:`CDNOW_SHIFT_YEARS`, dollars) per line, in
    file order; the wheel is downloaded into ``cache`` the first time."""
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("[Ll]ifetimes-0.11.3-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", CDNOW_WHEEL, "--no-deps", "-d", str(cache), "-q"],
                       check=True)
        wheels = sorted(cache.glob("[Ll]ifetimes-0.11.3-*.whl"))
    with zipfile.ZipFile(wheels[0]) as z:
        text = z.read(CDNOW_MEMBER).decode()
    out = []
    for line in text.splitlines():
        parts = line.split()  # id, YYYYMMDD, CDs, dollars
        if len(parts) != 4 or not parts[1].isdigit():
            continue  # the header line
        out.append((parts[0], f"{int(parts[1][:4]) + CDNOW_SHIFT_YEARS}{parts[1][4:]}", parts[3]))
    return out


def cdnow_usage(cache: Path, out: Path) -> int:
    """CDNOW as a usage CSV (``customer_id,date,event,dollars``, one ``purchase`` per line); returns the
    rows written."""
    rows = cdnow_rows(cache)
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["customer_id", "date", "event", "dollars"])
        for cid, day, dollars in rows:
            w.writerow([cid, day, "purchase", dollars])
    return len(rows)


def train_cdnow(usage: Path, inactive_days: int, workdir: Path, top_k: int) -> tuple[Any, Path]:
    """Train churnwatch on the CDNOW usage CSV through the documented foreign-log path (``churnwatch train
    --usage ... --inactive-days N`` with the trainer's defaults, not promoted) into ``workdir``; returns the
    :class:`training.runs.from_foreign.ForeignTrainResult` and the converted event log."""
    from pipeline.model.registry import Registry
    from training.data.foreign.mapping import ForeignMapping
    from training.runs.from_foreign import train_foreign

    mapping = ForeignMapping(id_col="customer_id", time_col="date", type_col="event", value_col="dollars",
                             inactive_days=inactive_days)
    log = workdir / f"cdnow_{inactive_days}.jsonl"
    trained = train_foreign(usage, None, Registry(workdir / f"models_{inactive_days}"), mapping, log_out=log,
                            progress=False, top_k=top_k, promote=False)
    return trained, log


def winback_share(convert: Any) -> float:
    """Share of an inactivity conversion's churns followed by a return (also the ones after the log's cut)."""
    back = convert.renewed + convert.dropped.get("renewed_in_last_inactive_days", 0)
    return back / max(1, convert.churned)
