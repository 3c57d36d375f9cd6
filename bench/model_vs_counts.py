"""Does churnwatch's model beat the first model a data scientist would fit on their own product's log?

For each data set a model is trained the way ``churnwatch train`` does (the feature spec learnt from the
log), and compared on its own test rows with an independent baseline: a standardised, class-balanced
logistic regression on 28-day counts of each of the top-K event types (plus all other types) and tenure,
computed from the raw events by ``bench/_independent.py`` — no churnwatch feature code — and fitted on the
version's training period. ROC-AUC and lift@10 % come with 95 % bootstrap intervals over customers
(1000 draws, seeded) and the paired difference's interval.

Data sets:

1. the foreign-vocabulary simulator (``SimConfig(vocabulary=N)``: a product with N event types of its
   own) at several seeds and vocabularies;
2. the CDNOW purchase log (23,570 customers, 1997-01 .. 1998-06; shipped in the ``lifetimes`` wheel),
   converted to a usage log with one ``purchase`` row per line (value = dollars; dates moved 28 years
   forward, see :data:`CDNOW_SHIFT_YEARS`) and trained through the
   foreign-log path with churn = N days without a purchase (``inactive_days``), for N = 90 and 180.

Nothing is tuned per data set: every run uses the trainer's defaults.

    .venv/bin/python bench/model_vs_counts.py                   # ~14 min on 2 cores
    .venv/bin/python bench/model_vs_counts.py --seeds 7 --vocab 12 --no-cdnow
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench._common import CDNOW_SHIFT_YEARS, DEFAULT_CACHE, cdnow_usage, train_cdnow, winback_share  # noqa: E402,F401
from bench._independent import Comparison, compare  # noqa: E402

START_MS = 1_700_006_400_000  # 2023-11-15, a fixed start so every run simulates the same history
#: The churn definition is chosen on what it means, before any model is looked at: the one whose churns
#: are final more often (fewer followed by a return), provided its test period keeps enough churn labels
#: for the intervals to say something.
MIN_TEST_POSITIVES = 100


@dataclass
class Result:
    name: str
    comparison: Comparison | None
    seconds: float
    note: str = ""
    error: str = ""
    #: CDNOW: share of the churns followed by a return (what the churn definition is chosen on)
    winback: float | None = None


def run_sim(seed: int, vocab: int, customers: int, days: int, top_k: int, draws: int) -> Result:
    from devtools.simulator import SimConfig, simulate, write_jsonl
    from pipeline.model.registry import Registry
    from training.runs.from_log import train_from_log

    name = f"simulator seed {seed}, vocabulary {vocab}"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="churnwatch-mvc-") as tmp:
        log = Path(tmp) / "sim.jsonl"
        write_jsonl(simulate(SimConfig(customers=customers, days=days, start_ms=START_MS, seed=seed,
                                       vocabulary=vocab)), log)
        registry = Registry(Path(tmp) / "models")
        result = train_from_log(log, registry, progress=False, top_k=top_k, promote=False)
        comparison = compare(log, registry.path(result.version), top_k=top_k, draws=draws)
    return Result(name, comparison, time.perf_counter() - started, f"{customers} customers x {days} days")


def run_cdnow(cache: Path, inactive: list[int], top_k: int, draws: int) -> list[Result]:
    out: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="churnwatch-mvc-") as tmp:
        t0 = time.perf_counter()
        usage = Path(tmp) / "cdnow_usage.csv"
        rows = cdnow_usage(cache, usage)
        prep = time.perf_counter() - t0
        for n in inactive:
            started = time.perf_counter()
            name = f"CDNOW, churn = {n} days without a purchase"
            try:
                trained, log = train_cdnow(usage, n, Path(tmp), top_k)
                comparison = compare(log, trained.train.path, top_k=top_k, draws=draws)
            except Exception as exc:  # a definition that cannot train is a finding, not a crash
                out.append(Result(name, None, time.perf_counter() - started + prep, error=str(exc).splitlines()[0]))
                continue
            c = trained.convert
            share = winback_share(c)
            out.append(Result(name, comparison, time.perf_counter() - started + prep,
                              f"{rows:,} purchases; {c.churned:,} churns, {share:.0%} of them followed by a return; "
                              f"labelled up to {str(c.to_json()['labelled_until'])[:10]}", winback=share))
    return out


def verdict(c: Comparison) -> str:
    d = c.diff
    auc, lift = d["roc_auc"], d["lift_at_10"]
    if auc.hi < 0 or lift.hi < 0:
        return "MODEL LOSES"
    if auc.lo > 0 and lift.lo > 0:
        return "model wins"
    if auc.lo > 0:
        return "model wins on AUC, lift tied"
    if lift.lo > 0:
        return "model wins on lift, AUC tied"
    if auc.value < 0 or lift.value < 0:
        return "model behind, not significant"
    return "no clear difference"


def print_table(results: list[Result], draws: int) -> None:
    head = (f"{'data set':<44} {'test rows':>9} {'churn':>5} {'cust':>6}  {'model ROC-AUC':<22} "
            f"{'baseline ROC-AUC':<22} {'difference':<25} {'model lift@10%':<20} {'baseline lift@10%':<20} "
            f"{'difference':<23} {'verdict':<30} {'time':>6}")
    print(head)
    print("-" * len(head))
    for r in results:
        if r.comparison is None:
            print(f"{r.name:<44} could not train: {r.error}  ({r.seconds:.0f} s)")
            continue
        c, s = r.comparison, r.comparison.stats
        print(f"{r.name:<44} {c.rows:>9,} {c.positives:>5,} {c.customers:>6,}  {s['model']['roc_auc'].fmt():<22} "
              f"{s['baseline']['roc_auc'].fmt():<22} {c.diff['roc_auc'].fmt(sign=True):<25} "
              f"{s['model']['lift_at_10'].fmt(2):<20} {s['baseline']['lift_at_10'].fmt(2):<20} "
              f"{c.diff['lift_at_10'].fmt(2, sign=True):<23} {verdict(c):<30} {r.seconds:>5.0f}s")
    print(f"\n[lo, hi] = 95 % bootstrap interval over customers ({draws} draws, seed 0); difference = model - baseline, "
          f"paired (same draws).")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="7,8,9")
    ap.add_argument("--vocab", default="12,18,24")
    ap.add_argument("--customers", type=int, default=1000)
    ap.add_argument("--days", type=int, default=240)
    ap.add_argument("--inactive-days", default="90,180")
    ap.add_argument("--top-k", type=int, default=16)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                    help="where the lifetimes wheel (CDNOW) is kept between runs")
    ap.add_argument("--no-sim", action="store_true")
    ap.add_argument("--no-cdnow", action="store_true")
    args = ap.parse_args()
    started = time.perf_counter()
    results: list[Result] = []
    if not args.no_sim:
        for seed in (int(s) for s in args.seeds.split(",")):
            for vocab in (int(v) for v in args.vocab.split(",")):
                results.append(run_sim(seed, vocab, args.customers, args.days, args.top_k, args.draws))
                print(f"  done: {results[-1].name} ({results[-1].seconds:.0f} s)", file=sys.stderr, flush=True)
    cdnow: list[Result] = []
    if not args.no_cdnow:
        cdnow = run_cdnow(args.cache, [int(n) for n in args.inactive_days.split(",")], args.top_k, args.draws)
        results += cdnow

    print(f"\nmodel vs an independent per-type 28-day counts + tenure logistic regression, same test rows "
          f"(top-K = {args.top_k}; trainer defaults everywhere)\n")
    print_table(results, args.draws)
    for r in results:
        if r.comparison is not None and r.comparison.types != r.comparison.spec_types:
            print(f"note: {r.name}: the baseline's top types differ from the model's spec")
    print("\nsanity: the same rows' ROC-AUC of churnwatch's own per-type counts baseline (type_counts_28d, its code):")
    for r in results:
        if r.comparison is not None:
            own = (r.comparison.builtin.get("type_counts_28d") or {}).get("roc_auc")
            print(f"  {r.name:<44} independent {r.comparison.stats['baseline']['roc_auc'].value:.3f}, "
                  f"churnwatch's own " + (f"{own:.3f}" if isinstance(own, float) else "n/a"))
    print("\nchecks (every data set): " + "; ".join(results[0].comparison.checks) if results and results[0].comparison
          else "")

    if cdnow:
        print("\nCDNOW churn definitions:")
        for r in cdnow:
            print(f"  {r.name}: {r.note or r.error}")
        ok = [r for r in cdnow if r.comparison is not None and r.comparison.positives >= MIN_TEST_POSITIVES]
        if ok:
            best = min(ok, key=lambda r: r.winback if r.winback is not None else 1.0)
            print(f"  preferred: {best.name.split(', ')[1]}: its churns are final more often (fewer are followed by "
                  f"a return) and its test period still has {best.comparison.positives} churn labels (at least "
                  f"{MIN_TEST_POSITIVES} wanted); chosen on the definition, not on the model's figures")

    losses = [r for r in results if r.comparison is not None and verdict(r.comparison) == "MODEL LOSES"]
    behind = [r for r in results if r.comparison is not None and verdict(r.comparison) == "model behind, not significant"]
    print()
    if losses:
        print("THE MODEL LOSES TO THE BASELINE on: " + "; ".join(r.name for r in losses))
    if behind:
        print("the model is behind the baseline (interval includes 0) on: " + "; ".join(r.name for r in behind))
    if not losses and not behind:
        print("the model does not lose to the baseline on any data set")
    print(f"\ntotal {time.perf_counter() - started:.0f} s; per data set: simulation or conversion + training + "
          f"baseline + bootstrap")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
