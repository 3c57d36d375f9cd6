"""A `churnwatch score` backtest held against what happened: scores at chosen dates vs churn in the next 30 days.

The recipe a data scientist follows before trusting a model: train with a chosen split, score every
customer at dates in the test period (which the model never saw) with ``churnwatch score``, and compare
with the churns the log records afterwards. Everything runs through the CLI, and the outcome side is
computed here from the raw JSONL (the ``outcomes`` records, the customers seen before each date) — not
from churnwatch's label or dataset code — so the backtest's rows and the figures are checked by an
independent reading of the same log.

Figures per scoring date: customers scored, churners in the next 30 days, ROC-AUC, precision and
recall of the alert bands (``high`` + ``critical``: what the alert policy would flag), and lift of the
top 10 %. The same-run baseline is "days since the customer's last event" (longest silence first).

    .venv/bin/python bench/backtest_vs_labels.py            # ~3 min on 2 cores
    .venv/bin/python bench/backtest_vs_labels.py --seed 8
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from _common import REPO, BenchError, Report, main_guard, parser, section

import numpy as np  # noqa: E402
import orjson  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from pipeline.core.contract import DAY_MS, format_ts, parse_ts  # noqa: E402

HORIZON_MS = 30 * DAY_MS


def cli(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "apps.cli", *args], cwd=REPO, capture_output=True, text=True,
                         stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise BenchError(f"churnwatch {args[0]} failed: {(out.stderr or out.stdout).strip().splitlines()[-1:]}")
    return out.stdout


def raw_history(log: Path) -> tuple[dict[str, int], dict[str, list[int]], dict[str, list[int]]]:
    """First event time, event times and churn times per customer, read straight from the JSONL."""
    first: dict[str, int] = {}
    times: dict[str, list[int]] = defaultdict(list)
    churns: dict[str, list[int]] = defaultdict(list)
    with open(log, "rb") as fh:
        for line in fh:
            rec = orjson.loads(line)
            cid, ts = rec.get("customer_id"), rec.get("ts")
            if not isinstance(cid, str) or ts is None:
                continue
            ts = parse_ts(ts)
            first[cid] = min(ts, first.get(cid, ts))
            times[cid].append(ts)
            if rec.get("source") == "outcomes" and rec.get("type") == "churned":
                churns[cid].append(ts)
    return first, times, churns


def lift_at(scores: np.ndarray, y: np.ndarray, frac: float = 0.1) -> float:
    k = max(1, int(round(frac * len(y))))
    top = np.argsort(-scores, kind="stable")[:k]
    return float(y[top].mean() / y.mean()) if y.mean() > 0 else float("nan")


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--days", type=int, default=240)
    args = p.parse_args()
    report = Report("backtest")
    with tempfile.TemporaryDirectory(prefix="cw-bench-backtest-") as tmp_name:
        tmp = Path(tmp_name)
        log, models, scores = tmp / "log.jsonl", tmp / "models", tmp / "scores.csv"
        section(f"simulated log: {args.customers} customers x {args.days} days, seed {args.seed}")
        start = "2025-01-06T00:00:00Z"
        cli("simulate", "--customers", str(args.customers), "--days", str(args.days), "--seed", str(args.seed),
            "--start", start, "--out", str(log))
        t0 = parse_ts(start)
        train_until, test_from = format_ts(t0 + 100 * DAY_MS)[:10], format_ts(t0 + 170 * DAY_MS)[:10]
        cli("train", "--events", str(log), "--models-dir", str(models), "--quiet",
            "--train-until", train_until, "--test-from", test_from)
        at = [t0 + d * DAY_MS for d in (175, 189, 203)]  # test period, label windows inside the log
        cli("score", "--events", str(log), "--at", ",".join(format_ts(t) for t in at), "--out", str(scores),
            "--models-dir", str(models))
        print(f"  trained until {train_until}, test period from {test_from}; scored at "
              f"{', '.join(format_ts(t)[:10] for t in at)}")
        first, times, churns = raw_history(log)
        with open(scores, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        for t in at:
            section(f"scores at {format_ts(t)[:10]}")
            mine = [r for r in rows if parse_ts(r["observed_at"]) == t]
            ids = [r["customer_id"] for r in mine]
            # who should be there: seen before T, and no churn at or before T (the simulator has no win-backs)
            expected = {c for c, f in first.items() if f < t and not any(x <= t for x in churns.get(c, ()))}
            if set(ids) != expected:
                raise BenchError(f"{format_ts(t)}: scored {len(ids)} customers, the raw log says {len(expected)} were active")
            y = np.array([any(t < x <= t + HORIZON_MS for x in churns.get(c, ())) for c in ids], dtype=float)
            s = np.array([float(r["score"]) for r in mine])
            flagged = np.array([r["band"] in ("high", "critical") for r in mine])
            silence = np.array([t - max(x for x in times[c] if x < t) for c in ids], dtype=float)
            report.add(f"{format_ts(t)[:10]}: customers scored", len(ids), "customers")
            report.add(f"{format_ts(t)[:10]}: churners in the next 30 days", y.sum(), "churners")
            report.add(f"{format_ts(t)[:10]}: ROC-AUC, model", roc_auc_score(y, s), "")
            report.add(f"{format_ts(t)[:10]}: ROC-AUC, days since last event (baseline)", roc_auc_score(y, silence), "")
            report.add(f"{format_ts(t)[:10]}: lift@10 %, model", lift_at(s, y), "x")
            report.add(f"{format_ts(t)[:10]}: lift@10 %, days since last event", lift_at(silence, y), "x")
            report.add(f"{format_ts(t)[:10]}: flagged (high + critical)", flagged.sum(), "customers")
            report.add(f"{format_ts(t)[:10]}: precision of the flagged", y[flagged].mean() if flagged.any() else float("nan"), "")
            report.add(f"{format_ts(t)[:10]}: churners flagged (recall)", flagged[y == 1].mean() if y.any() else float("nan"), "")
    report.write_json(args.json_out)
    return 0


if __name__ == "__main__":
    main_guard(main)
