"""Non-contractual churn on the real CDNOW purchase log: churnwatch vs BG/NBD and an RFM logistic regression.

CDNOW (23,570 customers who first bought in Q1 1997, 69,659 purchases until June 1998) records no churn,
so churn is inactivity: churnwatch is trained the documented way, ``churnwatch train --usage ...
--inactive-days N`` (N = 90 and 180, the trainer's defaults, nothing tuned), through
:func:`bench._common.train_cdnow` (the same conversion and training as ``bench/model_vs_counts.py``). Then,
on **exactly the version's test rows** (customer, observation time, label, read from its ``scores.npz``),
the model's saved scores are compared with:

* **BG/NBD** (``lifetimes``, the reference implementation of Fader, Hardie & Lee's model, used because it
  is what a CLV analyst fits on a purchase log without churn dates). For every test time T, a
  ``BetaGeoFitter`` is fitted on the calibration summary of the purchases strictly before T (every
  customer seen before T; no labels): point-in-time correct, it knows what was known at T. Three scores:
  *1 - P(alive at T)* (``conditional_probability_alive``, the score the issue names: the headline),
  *-(expected purchases in the horizon)*, and *P(drop out within the horizon | alive at T)*, which is
  BG/NBD's probability of an inactivity-churn label for a customer known only to be alive (see
  ``bench/_bgnbd.py``). The headline score is also given
  with the parameters of a single fit at the end of the training period. ``lifetimes`` runs in a venv of
  its own under the bench cache (``bench/_bgnbd.py``): it is not a churnwatch dependency.
* **RFM logistic regression**: recency (days since the last purchase), frequency (purchases before T),
  monetary (mean dollars per purchase before T) and tenure (days since the first purchase), computed here
  from the raw CDNOW file (no churnwatch feature code), standardised, class-balanced
  (``bench._independent.fit_logreg``), fitted on the version's training-period rows. Should some training
  labels need data from the test period (T + horizon + N > the first test date), a second fit uses only
  the others: see "label timing" below.

The rows: an inactivity churn is dated the day after the last purchase before the silence but is known
only N days later, so the rows at T are the customers not *known* at T to be gone (the label delay of
``training.rows.labels``); a customer already silent at T who never comes back is a row with label 1. The
bench prints how much of the population the rows are, how many are such not-yet-known churns, and the
ROC-AUC of recency and of frequency alone on them.

The rows and labels are **rebuilt here from the raw file** with the inactivity rule of
``docs/foreign-logs.md`` (churn dated the day after a purchase followed by N days without one; a return
after that is a win-back; the log ends N days before the last purchase; rows at T = customers first seen
before T and not in a churn dated on or before T - N that no return by T has ended; label = a churn dated
in (T - N, T + horizon] not ended by a return at or before T), and the bench refuses to compare unless
they equal the version's test rows and labels and its training rows' count and positives.

ROC-AUC, PR-AUC (average precision) and lift@10 % with 95 % bootstrap intervals over customers
(``training.assess.intervals.customer_weights``/``weighted_metrics``/``interval``; 1000 draws, seed 0, one set of
draws for every scorer, so the differences model - baseline are paired).

Label timing (printed per N): an inactivity churn at T is known only N days later, so a row's label
needs data until T + horizon + N; the time split purges horizon + N between periods (the version's
``split.purge_days``), and the bench prints when the last training and validation labels are decided.

    .venv/bin/python bench/cdnow_vs_bgnbd.py                 # N = 90 and 180, ~2.5 min on 2 cores
    .venv/bin/python bench/cdnow_vs_bgnbd.py --quick         # N = 180, 200 draws, ~1.3 min
    .venv/bin/python bench/cdnow_vs_bgnbd.py --json out.json

The first run also downloads the lifetimes wheel (for the data) and builds the lifetimes venv (~1 min).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import orjson  # noqa: E402

from bench._bgnbd import PINS, bgnbd_scores  # noqa: E402
from bench._common import DEFAULT_CACHE, cdnow_rows, cdnow_usage, load_note, train_cdnow, winback_share  # noqa: E402
from bench._independent import DAY_MS, _period_dates, fit_logreg, saved_test_rows  # noqa: E402

EPOCH = date(1970, 1, 1).toordinal()
METRICS = ("roc_auc", "pr_auc", "lift_at_10")
MODEL = "churnwatch model"
HEADLINE = "BG/NBD 1 - P(alive)"


# ---- the raw log and the inactivity rule, independently of training/data/foreign/ ----------------------------
@dataclass
class Purchases:
    """CDNOW, one entry per line: customer index, day number (days since 1970-01-01, dates moved +28 years)."""

    ids: list[str]
    index: dict[str, int]
    cust: np.ndarray
    day: np.ndarray
    dollars: np.ndarray

    @property
    def first(self) -> np.ndarray:
        out = np.full(len(self.ids), np.iinfo(np.int64).max)
        np.minimum.at(out, self.cust, self.day)
        return out


def read_purchases(cache: Path) -> Purchases:
    index: dict[str, int] = {}
    cust, day, dollars = [], [], []
    for cid, yyyymmdd, value in cdnow_rows(cache):
        cust.append(index.setdefault(cid, len(index)))
        day.append(date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:])).toordinal() - EPOCH)
        dollars.append(float(value))
    return Purchases(list(index), index, np.asarray(cust, dtype=np.int64), np.asarray(day, dtype=np.int64),
                     np.asarray(dollars, dtype=np.float64))


@dataclass
class Spells:
    """Each churn as a [start, end) interval of days in which the customer counts as churned (end = the
    win-back, or never); customers left out of the converted log (first seen after the cut) are marked."""

    cust: np.ndarray
    start: np.ndarray
    end: np.ndarray
    excluded: np.ndarray
    cut: int


def inactivity_spells(p: Purchases, n: int) -> Spells:
    """The rule of docs/foreign-logs.md: the log ends at the last purchase - N days (the cut); a purchase on
    or before the cut followed by N days or more without one (or by the end of the data) is a churn dated
    the next day; the purchase that ends the gap, if on or before the cut, is a win-back."""
    as_of = int(p.day.max())
    cut = as_of - n
    per: dict[int, list[int]] = {}
    for c, d in zip(p.cust.tolist(), p.day.tolist()):
        per.setdefault(c, []).append(d)
    cust, start, end = [], [], []
    excluded = np.zeros(len(p.ids), dtype=bool)
    never = np.iinfo(np.int64).max
    for c, days in per.items():
        days = sorted(set(days))
        if days[0] > cut:
            excluded[c] = True
            continue
        for last, nxt in zip(days, days[1:] + [None]):
            if last > cut:
                break
            if (as_of if nxt is None else nxt) - last >= n:
                cust.append(c)
                start.append(last + 1)
                end.append(nxt if nxt is not None and nxt <= cut else never)
    return Spells(np.asarray(cust, dtype=np.int64), np.asarray(start, dtype=np.int64),
                  np.asarray(end, dtype=np.int64), excluded, cut)


@dataclass
class Rows:
    cust: np.ndarray
    t: np.ndarray  # day number of the observation (UTC midnight)
    y: np.ndarray


def rows_at(p: Purchases, s: Spells, t_days: list[int], horizon: int, n: int) -> Rows:
    """At each T: customers first seen before T and not known at T to be in a churn spell (one that began
    N days or more before T and has not ended by T); label = a spell starting in (T - N, T + horizon] and
    not ended by T."""
    first = p.first
    cust, t, y = [], [], []
    for T in t_days:
        gone = np.zeros(len(p.ids), dtype=bool)
        gone[s.cust[(s.start + n <= T) & (T < s.end)]] = True
        soon = np.zeros(len(p.ids), dtype=bool)
        soon[s.cust[(T - n < s.start) & (s.start <= T + horizon) & (T < s.end)]] = True
        at = np.flatnonzero((first < T) & ~gone & ~s.excluded)
        cust.append(at)
        t.append(np.full(at.size, T, dtype=np.int64))
        y.append(soon[at].astype(np.int64))
    return Rows(np.concatenate(cust), np.concatenate(t), np.concatenate(y))


def rfm(p: Purchases, rows: Rows) -> np.ndarray:
    """Per row, from the purchases strictly before T: recency, frequency, monetary (mean), tenure, in days."""
    X = np.zeros((rows.cust.size, 4))
    n_cust = len(p.ids)
    for T in np.unique(rows.t):
        at = np.flatnonzero(rows.t == T)
        m = p.day < T
        count = np.bincount(p.cust[m], minlength=n_cust)
        spend = np.bincount(p.cust[m], weights=p.dollars[m], minlength=n_cust)
        last = np.full(n_cust, -1, dtype=np.int64)
        np.maximum.at(last, p.cust[m], p.day[m])
        first = np.full(n_cust, np.iinfo(np.int64).max)
        np.minimum.at(first, p.cust[m], p.day[m])
        c = rows.cust[at]
        X[at] = np.column_stack([T - last[c], count[c], spend[c] / count[c], T - first[c]])
    return X


# ---- metrics ------------------------------------------------------------------------------------------
def point(y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    from training.assess.measures import pr_auc, roc_auc, top_k

    return {"roc_auc": roc_auc(y, s), "pr_auc": pr_auc(y, s), "lift_at_10": top_k(y, s, 10).lift}


def compare(rows: Rows, scores: dict[str, np.ndarray], draws: int, seed: int) -> dict[str, Any]:
    """Point values and 95 % intervals per scorer, and paired intervals of the model minus each other one."""
    from training.assess.intervals import customer_weights, interval, weighted_metrics

    W = customer_weights(rows.cust, draws, seed)
    boot = {name: weighted_metrics(rows.y, s, W) for name, s in scores.items()}
    out: dict[str, Any] = {}
    for name, s in scores.items():
        pt = point(rows.y, s)
        out[name] = {m: {"value": pt[m], "ci": interval(boot[name][m])} for m in METRICS}
        if name != MODEL:
            out[name]["model_minus"] = {m: {"value": out[MODEL][m]["value"] - pt[m],
                                            "ci": interval(boot[MODEL][m] - boot[name][m])} for m in METRICS}
    return out


def fmt(v: dict[str, Any], digits: int = 3, sign: bool = False) -> str:
    f = f"{{:{'+' if sign else ''}.{digits}f}}"
    ci = v["ci"]
    return f.format(v["value"]) + (f" [{f.format(ci[0])}, {f.format(ci[1])}]" if ci else " [n/a]")


# ---- one churn definition ----------------------------------------------------------------------------
def iso(day: int) -> str:
    return date.fromordinal(int(day) + EPOCH).isoformat()


def run(n: int, p: Purchases, usage: Path, tmp: Path, cache: Path, top_k: int, draws: int, seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    trained, _log = train_cdnow(usage, n, tmp, top_k)
    train_s = time.perf_counter() - started
    vdir = Path(trained.train.path)
    meta = orjson.loads((vdir / "meta.json").read_bytes())
    horizon, cadence, split = int(meta["horizon_days"]), int(meta["cadence_days"]), meta["split"]
    v_ids, v_obs, v_y, v_p = saved_test_rows(vdir)

    # the rows: rebuilt from the raw file, and checked against the version's
    t0 = time.perf_counter()
    spells = inactivity_spells(p, n)
    days = {name: [t // DAY_MS for t in _period_dates(split[name], cadence)]
            for name in ("train", "validation", "test")}
    test = rows_at(p, spells, days["test"], horizon, n)
    train = rows_at(p, spells, days["train"], horizon, n)
    if any(t % DAY_MS for t in v_obs.tolist()):
        raise RuntimeError("the version's observation times are not UTC midnights")
    position = {(p.index[c], int(t) // DAY_MS): i for i, (c, t) in enumerate(zip(v_ids, v_obs))}
    keys = list(zip(test.cust.tolist(), test.t.tolist()))
    if len(position) != len(keys) or set(position) != set(keys):
        raise RuntimeError(f"rebuilt test rows differ from the version's: {len(set(position) - set(keys))} only in "
                           f"the version's, {len(set(keys) - set(position))} only rebuilt")
    at = np.asarray([position[k] for k in keys], dtype=np.int64)
    if not np.array_equal(v_y[at], test.y):
        raise RuntimeError(f"rebuilt test labels differ from the version's on {int((v_y[at] != test.y).sum())} rows")
    want = meta["rows"]["train"]
    if (want["rows"], want["positives"]) != (train.y.size, int(train.y.sum())):
        raise RuntimeError(f"rebuilt training rows ({train.y.size}, {int(train.y.sum())} positive) differ from {want}")
    checks = ["test rows and labels rebuilt from the raw file identical to the version's",
              "training rows identical in number and positives"]
    model = v_p[at]
    saved = meta["metrics"]["test"]["roc_auc"]
    if abs(point(test.y, model)["roc_auc"] - saved) > 1e-9:
        raise RuntimeError(f"the model's ROC-AUC on the rows differs from the version's reported {saved}")
    checks.append("the model's ROC-AUC on these rows equals the version's reported test ROC-AUC")

    # label timing: when is each period's information complete?
    test_from = days["test"][0]
    decided = days["train"][-1] + horizon + n  # the last training label needs data until here
    strict_days = [t for t in days["train"] if t + horizon + n <= test_from]
    timing = {
        "test_from": iso(test_from), "train_until": iso(days["train"][-1]),
        "validation_until": iso(days["validation"][-1]),
        "purge_days": int(split.get("purge_days", horizon)),
        "label_delay_days": int(meta.get("label_delay_days") or 0),
        "last_training_label_decided": iso(decided),
        "last_validation_label_decided": iso(days["validation"][-1] + horizon + n),
        "training_dates_decided_after_test_from": len(days["train"]) - len(strict_days),
        "training_dates": len(days["train"]),
    }
    seen = sum(int(((p.first < T) & ~spells.excluded).sum()) for T in days["test"])
    timing["test_rows_share_of_customers_seen"] = test.y.size / seen
    # rows already in a churn spell at T that is not known yet (began in (T - N, T], not ended by T)
    unknown = 0
    for T in days["test"]:
        inside = np.zeros(len(p.ids), dtype=bool)
        inside[spells.cust[(T - n < spells.start) & (spells.start <= T) & (T < spells.end)]] = True
        unknown += int(inside[test.cust[test.t == T]].sum())
    timing["test_rows_gone_not_yet_known"] = unknown / max(1, test.y.size)

    # RFM
    X_train, X_test = rfm(p, train), rfm(p, test)
    rfm_p = fit_logreg(X_train, train.y).predict_proba(X_test)[:, 1]
    partial = len(strict_days) < len(days["train"])  # some training labels need test-period data
    strict = rows_at(p, spells, strict_days, horizon, n) if strict_days and partial else None
    rfm_strict = (fit_logreg(rfm(p, strict), strict.y).predict_proba(X_test)[:, 1]
                  if strict is not None and 0 < strict.y.sum() < strict.y.size else None)

    # BG/NBD
    bg = bgnbd_scores(cache, p.cust, p.day, sorted(set(days["test"])), days["train"][-1], horizon, tmp)
    where = {(c, t): i for i, (c, t) in enumerate(zip(bg["cust"].tolist(), bg["t"].tolist()))}
    idx = np.asarray([where[k] for k in keys], dtype=np.int64)
    scores = {MODEL: model,
              HEADLINE: bg["p_dead"][idx],
              f"BG/NBD -E[purchases in {horizon} d]": -bg["expected"][idx],
              f"BG/NBD P(drop out within {horizon} d | alive)": bg["p_drop"][idx],
              "BG/NBD 1 - P(alive), one fit at the training cut": bg["p_dead_once"][idx],
              "RFM logistic regression": rfm_p}
    if rfm_strict is not None:
        scores["RFM LR, training labels decided before the test period"] = rfm_strict
    late = X_test[:, 0] > n - horizon  # silent for more than N - horizon days at T
    context = {"roc_auc_recency_alone": point(test.y, X_test[:, 0])["roc_auc"],
               "roc_auc_fewer_purchases_alone": point(test.y, -X_test[:, 1])["roc_auc"],
               "share_recency_over_n_minus_horizon": float(late.mean()),
               "churn_rate_recency_over_n_minus_horizon": float(test.y[late].mean()) if late.any() else None,
               "churn_rate": float(test.y.mean())}
    baseline_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    stats = compare(test, scores, draws, seed)
    c = trained.convert
    return {
        "inactive_days": n, "horizon_days": horizon, "version": str(vdir),
        "rows": int(test.y.size), "positives": int(test.y.sum()), "customers": int(np.unique(test.cust).size),
        "test_dates": [iso(days["test"][0]), iso(days["test"][-1]), len(days["test"])],
        "train_rows": int(train.y.size), "train_positives": int(train.y.sum()),
        "strict_train_rows": int(strict.y.size) if strict is not None else int(train.y.size) if not partial else 0,
        "churns": c.churned, "winback_share": winback_share(c), "labelled_until": iso(spells.cut),
        "checks": checks, "timing": timing, "context": context, "stats": stats,
        "bgnbd_params": {"per_T_first": bg["params"][0].tolist(), "per_T_last": bg["params"][-1].tolist(),
                         "once": bg["params_once"].tolist(), "order": ["r", "alpha", "a", "b"]},
        "seconds": {"train": train_s, "baselines": baseline_s, "bootstrap": time.perf_counter() - t1,
                    "total": time.perf_counter() - started},
    }


def print_result(r: dict[str, Any], draws: int) -> None:
    n, tm = r["inactive_days"], r["timing"]
    print(f"\nCDNOW, churn = {n} days without a purchase: {r['rows']:,} test rows ({r['positives']:,} churn labels, "
          f"{r['customers']:,} customers) at {r['test_dates'][2]} weekly dates {r['test_dates'][0]} .. "
          f"{r['test_dates'][1]}; {r['churns']:,} churns, {r['winback_share']:.0%} followed by a return\n")
    head = f"  {'scorer':<56} {'ROC-AUC':<22} {'PR-AUC':<22} {'lift@10%':<20}"
    print(head)
    print("  " + "-" * (len(head) - 2))
    for name, s in r["stats"].items():
        print(f"  {name:<56} {fmt(s['roc_auc']):<22} {fmt(s['pr_auc']):<22} {fmt(s['lift_at_10'], 2):<20}")
        if "model_minus" in s:
            d = s["model_minus"]
            print(f"  {'    model - it':<56} {fmt(d['roc_auc'], sign=True):<22} {fmt(d['pr_auc'], sign=True):<22} "
                  f"{fmt(d['lift_at_10'], 2, sign=True):<20}")
    pr = r["bgnbd_params"]
    print(f"\n  BG/NBD (r, alpha days, a, b): first test date {_p(pr['per_T_first'])}, last {_p(pr['per_T_last'])}, "
          f"one fit at the training cut {_p(pr['once'])}")
    print(f"  [lo, hi] = 95 % bootstrap interval over customers ({draws} draws, seed 0); model - it paired (same draws)")
    print("  checks: " + "; ".join(r["checks"]))
    print(f"  label timing: purge gap {tm['purge_days']} days; the last training label ({tm['train_until']}) needs data "
          f"until {tm['last_training_label_decided']}, the last validation label until "
          f"{tm['last_validation_label_decided']}; the test period starts {tm['test_from']}. "
          f"{tm['training_dates_decided_after_test_from']} of {tm['training_dates']} training dates have labels "
          f"decided after it: only {r['strict_train_rows']:,} of the {r['train_rows']:,} training rows have theirs "
          f"before.")
    cx = r["context"]
    print(f"  the test rows are {tm['test_rows_share_of_customers_seen']:.0%} of the customers seen before each test "
          f"date: the others are known at T to be gone (a churn dated on or before T - {n}, no return since); "
          f"{tm['test_rows_gone_not_yet_known']:.1%} are already gone at T but not known to be (label 1); "
          f"{cx['share_recency_over_n_minus_horizon']:.1%} of the rows have been silent for more than {n} - "
          f"{r['horizon_days']} days (churn rate "
          + (f"{cx['churn_rate_recency_over_n_minus_horizon']:.3f}" if cx['churn_rate_recency_over_n_minus_horizon']
             is not None else "n/a") + f" vs {cx['churn_rate']:.3f} overall)")
    print(f"  ROC-AUC of one RFM column alone on these rows: recency {cx['roc_auc_recency_alone']:.3f}, fewer "
          f"purchases {cx['roc_auc_fewer_purchases_alone']:.3f}")
    s = r["seconds"]
    print(f"  time: training {s['train']:.0f} s, rows + baselines {s['baselines']:.0f} s, bootstrap "
          f"{s['bootstrap']:.0f} s")


def _p(v: list[float]) -> str:
    return "(" + ", ".join(f"{x:.3g}" for x in v) + ")"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inactive-days", default="90,180")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    ap.add_argument("--top-k", type=int, default=16)
    ap.add_argument("--quick", action="store_true", help="N = 180 only and 200 draws")
    ap.add_argument("--json", type=Path, help="also write every figure as JSON here")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                    help="where the lifetimes wheel (CDNOW) and the lifetimes venv are kept between runs")
    args = ap.parse_args()
    inactive = [180] if args.quick else [int(v) for v in args.inactive_days.split(",")]
    draws = 200 if args.quick else args.draws
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="churnwatch-cdnow-") as tmp:
        usage = Path(tmp) / "cdnow_usage.csv"
        n_rows = cdnow_usage(args.cache, usage)
        p = read_purchases(args.cache)
        print(f"CDNOW: {n_rows:,} purchases, {len(p.ids):,} customers, {iso(p.day.min())} .. {iso(p.day.max())} "
              f"(dates +28 years); lifetimes venv pins: {' '.join(PINS)}", flush=True)
        from training.fit.config import TrainingError

        for n in inactive:
            try:
                results.append(run(n, p, usage, Path(tmp), args.cache, args.top_k, draws, args.seed))
            except TrainingError as exc:  # e.g. N = 180: the purge gaps (horizon + N) do not fit the log
                print(f"\nCDNOW, churn = {n} days without a purchase: not trainable: {exc}", flush=True)
                results.append({"inactive_days": n, "error": str(exc)})
                continue
            print_result(results[-1], draws)
    total = time.perf_counter() - started
    print(f"\ntotal {total:.0f} s ({load_note()})")
    if args.json:
        args.json.write_bytes(orjson.dumps({"results": results, "draws": draws, "seed": args.seed,
                                            "pins": list(PINS), "seconds": total},
                                           option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
