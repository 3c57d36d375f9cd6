"""Cost of LightGBM scoring as the worker calls it: single-row vs micro-batched ``Model.predict``, and
``Model.contributions`` (the per-feature reasons computed only for customers about to be alerted).

Why: the worker scores every touched customer once per micro-batch, so the per-row cost at the batch sizes
it actually sees (tens to hundreds of customers) bounds its throughput, and the contributions cost bounds
how many alerts per second it can explain. Two models are measured, both through ``pipeline.model.scoring.Model``
with ``num_threads=1`` on rows built by ``features.vector`` from simulated customers:

* ``registry``: trained by ``training.runs.from_log.train_from_log`` on a small simulated log in a temp registry
  (its tree count is whatever that training run chose, printed);
* ``synthetic-200``: LightGBM trained directly on random data with the same feature count, exactly 200
  trees and the project's ``num_leaves``, so the figures compare with DESIGN.md's orientation table.

Single-row calls are the same-run baseline the batched figures are read against. Every contender is timed
call by call in interleaved rounds (single, batch 10, 100, 500, contributions, single, ...), so a neighbour's
burst of load lands on all of them alike; figures are p50/p95/p99 per call, µs per row, and rows/s.

Run: ``.venv/bin/python bench/bench_scoring.py [--quick]``
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import lightgbm as lgb
import numpy as np

from _common import BenchError, Report, load_note, main_guard, parser, per_call_ns_interleaved, percentile, section

from devtools.simulator import SimConfig, simulate, write_jsonl
from pipeline.core.features import FEATURES, states_from_events, vector
from pipeline.model.registry import Registry
from pipeline.model.scoring import Model, load_current
from training.data.eventlog import read_events
from training.fit.config import TrainConfig
from training.runs.from_log import train_from_log

START_MS = 1_735_689_600_000  # 2025-01-01 UTC: fixed, so runs are comparable
BATCH_SIZES = (10, 100, 500)


def registry_model(tmp: Path, customers: int, days: int) -> tuple[Model, Path]:
    """Train into a throw-away registry from a simulated log, then load it the way the worker does."""
    log = tmp / "history.jsonl"
    write_jsonl(simulate(SimConfig(customers=customers, days=days, seed=11, start_ms=START_MS, id_prefix="h-")), log)
    train_from_log(log, Registry(tmp / "registry"), promote=True, progress=False)
    model = load_current(Registry(tmp / "registry"))
    if model is None:
        raise BenchError("training did not promote a model")
    return model, log


def synthetic_model(trees: int = 200, rows: int = 20_000, seed: int = 3) -> Model:
    """200 trees of the project's shape on random data: a fixed-size model whatever the simulator does."""
    rng = np.random.default_rng(seed)
    n_feat = len(FEATURES)
    X = rng.normal(size=(rows, n_feat))
    X[rng.random(X.shape) < 0.1] = np.nan  # real vectors have missing values (NaN), so should the trees
    logit = np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1] * X[:, 2]) - 0.5 * np.nan_to_num(X[:, 3]) ** 2
    y = (logit + rng.normal(scale=1.0, size=rows) > 0).astype(np.float64)
    cfg = TrainConfig()
    params = {"objective": "binary", "num_leaves": cfg.num_leaves, "learning_rate": 0.05,
              "min_data_in_leaf": cfg.min_data_in_leaf, "num_threads": 1, "verbose": -1, "seed": seed}
    booster = lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=trees)
    if booster.num_trees() != trees:
        raise BenchError(f"synthetic model has {booster.num_trees()} trees, wanted {trees}")
    return Model("synthetic", booster, FEATURES, np.empty(0), np.empty(0), {})


def feature_rows(log: Path, n: int, vector_of: Callable[[Any, int], list[float]] = vector) -> list[list[float]]:
    """Feature vectors of simulated customers at several points in time, as the worker builds them
    (``vector_of``: the model's own vector, e.g. a registry model's learnt spec; built-in by default)."""
    events = list(read_events(log).events)  # a time-ordered stream read off disk: sliced below, so a list
    rows: list[list[float]] = []
    cut = len(events) // 4
    for k in (1, 2, 3, 4):  # snapshots a quarter, half, three quarters and all the way through
        for st in states_from_events(events[: k * cut]).values():
            rows.append(vector_of(st, st.last_ms))
    if not rows:
        raise BenchError("no feature rows from the simulated log")
    rng = np.random.default_rng(1)
    idx = rng.integers(0, len(rows), size=n)
    return [rows[i] for i in idx]


def measure(report: Report, label: str, model: Model, rows: list[list[float]], quick: bool) -> None:
    """Per-call wall times of single-row and batched predict and of contributions, sampled in interleaved
    rounds (so a neighbour's load spreads over every contender), then percentiles per call and per row."""
    rounds = 4 if quick else 10
    scale = 0.4 if quick else 1.0
    n_rows = len(rows)
    for _ in range(50):  # warm LightGBM's caches and numpy's paths before timing anything
        model.predict(rows[:100])

    def cycler(items: list) -> Callable[[], object]:
        it = iter(range(10**12))
        return lambda: items[next(it) % len(items)]

    nxt_row = cycler(rows)
    fns: dict[str, tuple[Callable[[], object], int]] = {
        "single": (lambda: model.predict(nxt_row()), int(300 * scale)),
    }
    for b in BATCH_SIZES:
        batches = [rows[(k * b) % n_rows:(k * b) % n_rows + b] for k in range(64)]
        nxt = cycler([x if len(x) == b else rows[:b] for x in batches])
        fns[f"batch{b}"] = ((lambda nxt=nxt: model.predict(nxt())), max(3, int({10: 200, 100: 40, 500: 10}[b] * scale)))
    arr = np.asarray(rows[:500], dtype=np.float64)
    fns["ndarray500"] = (lambda: model.raw(arr), max(3, int(10 * scale)))
    nxt_c = cycler(rows)
    fns["contrib1"] = (lambda: model.contributions([nxt_c()]), max(5, int(30 * scale)))
    fns["contrib100"] = (lambda: model.contributions(rows[:100]), max(1, int(2 * scale)))
    ns = per_call_ns_interleaved(rounds, fns)

    def pct(name: str, q: float, rows_per_call: int = 1) -> float:
        return percentile(ns[name], q) / 1e3 / rows_per_call  # µs

    s50, s95, s99 = pct("single", 50), pct("single", 95), pct("single", 99)
    single_rps = len(ns["single"]) / (sum(ns["single"]) / 1e9)
    report.add(f"{label}: single-row predict, per call p50", s50, "µs", "baseline for the batched figures")
    report.add(f"{label}: single-row predict, per call p95", s95, "µs")
    report.add(f"{label}: single-row predict, per call p99", s99, "µs")
    report.add(f"{label}: single-row predict, rows/s", single_rps, "rows/s", "calls back to back, mean")
    for b in BATCH_SIZES:
        name = f"batch{b}"
        p50, p95, p99 = pct(name, 50), pct(name, 95), pct(name, 99)
        report.add(f"{label}: batch {b:>3} predict, µs per row (p50)", p50 / b, "µs/row",
                   f"per call p50/p95/p99 {p50:,.0f}/{p95:,.0f}/{p99:,.0f} µs; {s50 / (p50 / b):.1f}x single-row")
    b500 = ns["batch500"]
    report.add(f"{label}: batch 500 predict, rows/s", 500 * len(b500) / (sum(b500) / 1e9), "rows/s",
               f"{500 * len(b500) / (sum(b500) / 1e9) / single_rps:.1f}x single-row rows/s")
    report.add(f"{label}: batch 500 from a ready ndarray, µs per row", pct("ndarray500", 50, 500), "µs/row",
               "booster.predict only: no list->ndarray conversion, no calibration")
    report.add(f"{label}: contributions per row (1-row call) p50", pct("contrib1", 50), "µs",
               f"p95 {pct('contrib1', 95):,.0f} µs, p99 {pct('contrib1', 99):,.0f} µs; "
               f"{pct('contrib1', 50) / s50:.0f}x a single-row predict")
    report.add(f"{label}: contributions per row (1-row call) p99", pct("contrib1", 99), "µs")
    report.add(f"{label}: contributions, batch 100, per row p50", pct("contrib100", 50, 100), "µs/row")


def run(quick: bool, report: Report) -> None:
    with tempfile.TemporaryDirectory(prefix="churnwatch-bench-scoring-") as tmp:
        section(f"scoring: training models ({load_note()})")
        t0 = time.perf_counter()
        model, log = registry_model(Path(tmp), 300, 150)
        print(f"  registry model {model.version}: {model.booster.num_trees()} trees, "
              f"{len(model.features)} features, trained from a simulated log in {time.perf_counter() - t0:.1f}s")
        t0 = time.perf_counter()
        synth = synthetic_model()
        print(f"  synthetic model: {synth.booster.num_trees()} trees, {len(synth.features)} features "
              f"(random data) in {time.perf_counter() - t0:.1f}s")
        section("scoring: Model.predict / Model.contributions, num_threads=1")
        report.add("registry model: trees", model.booster.num_trees(), "trees", "the training run decides")
        measure(report, "registry", model, feature_rows(log, 2000, model.vector), quick)
        measure(report, "synthetic-200", synth, feature_rows(log, 2000), quick)


def main() -> int:
    args = parser(__doc__.splitlines()[0]).parse_args()
    report = Report("scoring")
    run(args.quick, report)
    report.write_json(args.json_out)
    return 0


if __name__ == "__main__":
    main_guard(main)
