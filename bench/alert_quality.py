"""Alert quality over a simulated month: alerts per week, how many alerted customers churn, and how many
churners are alerted early enough to act — the alerting issue's "done when" figures.

1. **Train** a model on simulated history (``--train-customers`` × ``--train-days``, its own seed) into a
   throw-away registry under /tmp (``training.runs.from_log.train_from_log``, what ``churnwatch train`` runs).
   ``--models-dir`` reuses a registry's promoted model instead.
2. **Simulate a fresh population** (``--customers``, ``--seed``, a later window): ``--warmup-days`` of
   history, then the measured month (``--month-days``), then ``--follow-days`` in which churn is still
   observed. The eval population's ``churn_rate`` is scaled so its churn per day about equals the training
   run's (the simulator's ``churn_rate`` is a share *per window*, so equal rates on windows of different
   length would mean different monthly churn).
3. **Replay** warm-up + month through ``training.assess.shadow.Replayer``: the worker's own feature state,
   micro-batch scoring, alert policy (default ``pipeline.core.policy.AlertPolicy``), proactive-service rules and silence
   sweep (see that module for where a replay differs from a live worker: no acknowledgements, mainly).
   Customers are spread over 4 partitions as Kafka would; ``--jobs`` processes each own a share of the
   partitions, like workers in one consumer group (each simulates the stream and keeps its customers).
   Ground truth is the simulator's ``churned`` events (``ground_truth``, which equals them; checked
   against the events seen).
4. **Report** for the month, for the model, for model + rules, and for a same-run **baseline** — "alert
   when logins in the last 7 days fell by at least half vs the week before" (``logins_trend_7d <= -0.5``,
   on the very same feature vectors and scoring moments, under the same alert policy):

   * alerts per week, in total and per 1,000 live customers (by trigger and by tier);
   * **precision**: share of customers alerted in the month who churn within 30 days of their first alert
     in the month;
   * **early recall**: share of the month's churners (churn inside the month) with an alert at least 14
     days before their churn (alerts up to 60 days before churn count, warm-up included);
   * **median lead time** of alerted churners (earliest alert within the 60 days before churn);
   * the same for **new accounts** (first seen less than 28 days before the month, or in it: each is
     younger than 28 days at some point of the month), the model alerts raised before 28 days of
     history, and the model alerts of the replay's first 28 days (a cold start, when every established
     customer looks new too).

   ``--min-history-days`` sets the policy's minimum history for model alerts (and the baseline's), to
   compare values on one population; ``--models-dir`` then keeps the model the same across runs.

Run: ``.venv/bin/python bench/alert_quality.py [--customers 5000] [--seed 7] [--quick] [--jobs 2]``
(about 4.5 minutes on 2 cores: ~45 s training, ~230 s replaying 2.7 M events, most of it in
``features.vector``; ``--quick``: 1,000 customers and a smaller training run, about a minute).
``--models-dir`` skips training; ``--warmup-days 60`` is faster but leaves the 90-day windows short at
the month's start and shortens the early-recall lookback for the month's first churners.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterable, Sequence

from _common import BenchError, Figure, Report, load_note, main_guard, parser, section

from devtools.simulator import SimConfig, ground_truth, simulate, write_jsonl
from pipeline.core.contract import DAY_MS, format_ts
from pipeline.core.features import FEATURE_INDEX
from pipeline.core.policy import AlertPolicy
from pipeline.model.registry import Registry
from pipeline.model.scoring import load_current
from training.assess.shadow import BATCH_MAX, PARTITIONS, Replayer, ShadowSignal, events_from_records, partitioner

#: Fixed windows, so a run with the same flags replays the same events.
TRAIN_START_MS = 1_735_689_600_000  # 2025-01-01 UTC
EVAL_START_MS = 1_756_684_800_000  # 2025-09-01 UTC (after any training window up to 243 days)
TRAIN_SEED_OFFSET = 1000  # the training population's seed is --seed + this: never the eval population
#: precision: an alerted customer counts as a hit when they churn within this many days of the alert
HORIZON_DAYS = 30
#: early recall: an alert at least this many days before churn leaves time to act
LEAD_DAYS = 14
#: an alert more than this many days before a churn is not counted as a warning of that churn
LOOKBACK_DAYS = 60
LOGINS_TREND = FEATURE_INDEX["logins_trend_7d"]
#: "new account": younger than this at some point of the month (the policy's minimum history by default)
NEW_DAYS = 28
MODEL_KINDS = ("new", "escalation")


def naive_login_drop(row: Sequence[float]) -> bool:
    """Baseline signal: logins in the last 7 days at most half of the 7 days before (which had >= 1)."""
    return row[LOGINS_TREND] <= -0.5  # trend = (last7 - prev7) / max(prev7, 1); NaN never fires


@dataclass(frozen=True)
class Shard:
    """What one replay process does: its partitions of the population, the model, the batch size."""

    sim: SimConfig
    stop_ms: int
    registry: str
    jobs: int
    index: int
    batch_max: int
    min_history_days: float | None = None


def bench_policy(min_history_days: float | None) -> AlertPolicy:
    """The default policy, with the minimum history for model alerts under test when one is given."""
    policy = AlertPolicy()
    if min_history_days is None:
        return policy
    return replace(policy, alerts=replace(policy.alerts, min_history_days=min_history_days))


def run_shard(shard: Shard) -> dict[str, Any]:
    """Simulate the whole stream, keep this shard's partitions, replay them; return slim results."""
    model = load_current(Registry(shard.registry))
    if model is None:
        raise BenchError(f"no promoted model in {shard.registry}")
    part_of = partitioner(PARTITIONS)
    mine: dict[str, bool] = {}
    policy = bench_policy(shard.min_history_days)
    baseline = ShadowSignal("logins_halved", naive_login_drop, policy.alerts)
    replay = Replayer(model, policy, batch_max=shard.batch_max, partitions=PARTITIONS, observers=[baseline])
    stats: Counter = Counter()
    churned_seen: dict[str, int] = {}

    def records() -> Iterable[Any]:
        for rec in simulate(shard.sim):
            if rec.ts_ms >= shard.stop_ms:
                return  # the follow-up only decides labels, which ground_truth gives without replaying it
            keep = mine.get(rec.key)
            if keep is None:
                keep = mine[rec.key] = part_of(rec.key) % shard.jobs == shard.index
            if keep:
                stats["records"] += 1
                if rec.source == "outcomes" and isinstance(rec.value, dict) and rec.value.get("type") == "churned":
                    churned_seen[rec.key] = rec.ts_ms
                yield rec

    t0 = time.perf_counter()
    replay.run(events_from_records(records(), stats=stats))
    wall = time.perf_counter() - t0
    return {
        "alerts": [(a.customer_id, a.tier, a.trigger, a.kind, a.event_ms) for a in replay.alerts],
        "baseline": [(a.customer_id, a.tier, a.event_ms) for a in baseline.alerts],
        "customers": {cid: (st.first_ms, st.tier) for cid, st in replay.states.items()},
        "churned_seen": churned_seen,
        "counts": dict(replay.counts) | {"records": stats["records"], "invalid": stats["invalid"]},
        "busy_s": replay.busy_s,
        "wall_s": wall,
    }


# ---- metrics ---------------------------------------------------------------------------------------
def add_count(report: Report, name: str, n: int, unit: str, note: str = "") -> None:
    """Report.add for a whole number (printed as one, not as a float)."""
    report.figures.append(Figure(report.bench, name, float(n), unit, note))
    extra = f"   ({note})" if note else ""
    print(f"  {name:<58} {n:>12,} {unit}{extra}", flush=True)


@dataclass
class Quality:
    alerts: int
    per_week: float
    per_week_per_1k: float
    alerted_customers: int
    alerted_churned: int
    precision: float
    churners: int
    early: int
    early_recall: float
    any_lead: int
    any_recall: float
    median_lead_days: float


def quality(alerts: Sequence[tuple[str, int]], churn: dict[str, int | None], live: set[str], m0: int, m1: int) -> Quality:
    """Figures for one alert stream given as (customer_id, event_ms) over the whole replay."""
    weeks = (m1 - m0) / DAY_MS / 7
    in_month = [(c, t) for c, t in alerts if m0 <= t < m1]
    first: dict[str, int] = {}
    for c, t in sorted(in_month, key=lambda x: x[1]):
        first.setdefault(c, t)
    hits = sum(1 for c, t in first.items() if churn.get(c) is not None and t <= churn[c] < t + HORIZON_DAYS * DAY_MS)
    by_customer: dict[str, list[int]] = defaultdict(list)
    for c, t in alerts:
        by_customer[c].append(t)
    churners = [c for c, t in churn.items() if t is not None and m0 <= t < m1]
    early = 0
    leads: list[float] = []
    for c in churners:
        ct = churn[c]
        before = [t for t in by_customer.get(c, ()) if ct - LOOKBACK_DAYS * DAY_MS <= t < ct]  # type: ignore[operator]
        if before:
            lead = (ct - min(before)) / DAY_MS  # type: ignore[operator]
            leads.append(lead)
            early += lead >= LEAD_DAYS
    n = len(churners)
    return Quality(
        alerts=len(in_month), per_week=len(in_month) / weeks,
        per_week_per_1k=1000 * len(in_month) / weeks / len(live) if live else math.nan,
        alerted_customers=len(first), alerted_churned=hits, precision=hits / len(first) if first else math.nan,
        churners=n, early=early, early_recall=early / n if n else math.nan,
        any_lead=len(leads), any_recall=len(leads) / n if n else math.nan,
        median_lead_days=statistics.median(leads) if leads else math.nan,
    )


def report_quality(report: Report, label: str, q: Quality, base_rate: float) -> None:
    report.add(f"{label}: alerts per week", q.per_week, "alerts/wk", f"{q.alerts} in the month")
    report.add(f"{label}: alerts per week per 1,000 customers", q.per_week_per_1k, "/wk/1k")
    report.add(f"{label}: alerted customers who churned within {HORIZON_DAYS} d", 100 * q.precision, "%",
               f"{q.alerted_churned} of {q.alerted_customers}")
    report.add(f"{label}: lift of that share over the base rate", q.precision / base_rate if base_rate else math.nan, "x")
    report.add(f"{label}: churners alerted >= {LEAD_DAYS} d before churn", 100 * q.early_recall, "%",
               f"{q.early} of {q.churners}")
    report.add(f"{label}: churners alerted at all before churn", 100 * q.any_recall, "%",
               f"{q.any_lead} of {q.churners}, within {LOOKBACK_DAYS} d")
    report.add(f"{label}: median lead time of alerted churners", q.median_lead_days, "days")


# ---- stages ----------------------------------------------------------------------------------------
def train_model(root: Path, customers: int, days: int, seed: int, churn_rate: float) -> Path:
    from training.runs.from_log import train_from_log

    log = root / "history.jsonl"
    cfg = SimConfig(customers=customers, days=days, seed=seed, start_ms=TRAIN_START_MS, churn_rate=churn_rate,
                    id_prefix="hist-")
    t0 = time.perf_counter()
    counts = write_jsonl(simulate(cfg), log)
    t_sim = time.perf_counter() - t0
    registry = Registry(root / "registry")
    res = train_from_log(log, registry, promote=True, progress=False)
    log.unlink()
    m = res.metrics.get("test", {})
    print(f"  training log: {customers:,} customers x {days} days, seed {seed}: {sum(counts.values()):,} records "
          f"in {t_sim:.0f}s; model {res.version} trained in {res.timings['total_s']:.0f}s "
          f"(test ROC-AUC {m.get('roc_auc', math.nan):.3f}, PR-AUC {m.get('pr_auc', math.nan):.3f})", flush=True)
    return registry.root


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=None, help="eval population (default 5000; --quick 1000)")
    p.add_argument("--seed", type=int, default=7, help="eval population seed (training uses seed + 1000)")
    p.add_argument("--warmup-days", type=int, default=90, help="replayed before the month (features, alert memory)")
    p.add_argument("--month-days", type=int, default=30)
    p.add_argument("--follow-days", type=int, default=HORIZON_DAYS, help="after the month: churn still observed")
    p.add_argument("--train-customers", type=int, default=None, help="default 2000; --quick 600")
    p.add_argument("--train-days", type=int, default=None, help="default 240; --quick 180")
    p.add_argument("--churn-rate", type=float, default=0.25, help="training run's simulator churn_rate (per window)")
    p.add_argument("--models-dir", help="use this registry's promoted model instead of training one")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="replay processes (1, 2 or 4)")
    p.add_argument("--batch-max", type=int, default=BATCH_MAX, help="events per micro-batch (1 = per event)")
    p.add_argument("--min-history-days", type=float, default=None,
                   help="policy's minimum history for model alerts (default: the policy's own)")
    args = p.parse_args()
    customers = args.customers or (1000 if args.quick else 5000)
    train_customers = args.train_customers or (600 if args.quick else 2000)
    train_days = args.train_days or (180 if args.quick else 240)
    if args.jobs not in (1, 2, 4):
        raise BenchError("--jobs must be 1, 2 or 4 (a share of the 4 partitions each)")
    if args.min_history_days is not None and not 0 <= args.min_history_days < math.inf:
        raise BenchError("--min-history-days must be a number of days >= 0")
    if args.warmup_days < max(NEW_DAYS, args.min_history_days or 0):
        raise BenchError(f"--warmup-days must be at least {NEW_DAYS} and at least --min-history-days "
                         "(the replay's first customers must be established by the month)")
    if args.follow_days < HORIZON_DAYS:
        raise BenchError(f"--follow-days must be at least {HORIZON_DAYS} to observe churn after late alerts")
    report = Report("alert_quality")
    t_start = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="churnwatch-alertq-") as tmp:
        section(f"model ({load_note()})")
        if args.models_dir:
            registry = Path(args.models_dir)
        else:
            registry = train_model(Path(tmp), train_customers, train_days, args.seed + TRAIN_SEED_OFFSET, args.churn_rate)
        model = load_current(Registry(registry))
        if model is None:
            raise BenchError(f"no promoted model in {registry}")
        policy = bench_policy(args.min_history_days)
        thresholds = {t: policy.alerts.threshold(t, model.thresholds) for t in ("vip", "standard")}
        test = model.meta.get("metrics", {}).get("test", {})
        print(f"  model {model.version}: thresholds {thresholds}; training's own estimate from weekly snapshots: "
              f"{test.get('alerts_per_week_per_1k', math.nan):.1f} new alerts/wk/1k, "
              f"precision {test.get('alert_precision', math.nan):.2f}")

        days = args.warmup_days + args.month_days + args.follow_days
        eval_churn = min(1.0, args.churn_rate * days / train_days)
        sim = SimConfig(customers=customers, days=days, seed=args.seed, start_ms=EVAL_START_MS, churn_rate=eval_churn)
        m0 = EVAL_START_MS + args.warmup_days * DAY_MS
        m1 = m0 + args.month_days * DAY_MS
        section(f"replay: {customers:,} customers, seed {args.seed}, {args.warmup_days} d warm-up + "
                f"{args.month_days} d month ({format_ts(m0)[:10]} .. {format_ts(m1)[:10]}) + {args.follow_days} d follow-up, "
                f"churn_rate {eval_churn:.3f}; {args.jobs} process(es), batches of {args.batch_max}")
        t0 = time.perf_counter()
        shards = [Shard(sim, m1, str(registry), args.jobs, j, args.batch_max, args.min_history_days)
                  for j in range(args.jobs)]
        if args.jobs == 1:
            results = [run_shard(shards[0])]
        else:
            with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
                results = list(pool.map(run_shard, shards))
        replay_wall = time.perf_counter() - t0
        truth = ground_truth(sim)

    # ---- merge
    alerts = [a for r in results for a in r["alerts"]]
    base = [a for r in results for a in r["baseline"]]
    seen: dict[str, tuple[int, str]] = {k: v for r in results for k, v in r["customers"].items()}
    counts: Counter = Counter()
    for r in results:
        counts.update(r["counts"])
    churned_seen = {k: v for r in results for k, v in r["churned_seen"].items()}
    wrong = [c for c, t in churned_seen.items() if truth.get(c) != t]
    if wrong:
        raise BenchError(f"ground_truth disagrees with the churned events for {len(wrong)} customers, e.g. {wrong[0]}")
    after_churn = [a for a in alerts if truth.get(a[0]) is not None and a[4] > truth[a[0]]]
    if after_churn:
        raise BenchError(f"{len(after_churn)} alerts after their customer's churn, e.g. {after_churn[0]}")
    # live in the month: seen before the month ends, not churned before it starts
    live = {c for c, (first, _tier) in seen.items() if first < m1 and (truth.get(c) is None or truth[c] >= m0)}
    tier_of = {c: tier for c, (_f, tier) in seen.items()}
    weeks = args.month_days / 7
    busy = sum(r["busy_s"] for r in results)
    events = counts["events"]

    section("replay cost")
    add_count(report, "events replayed (warm-up + month)", events, "events",
               f"{counts['invalid']} invalid; {counts['scorings_event']:,} event scorings, "
               f"{counts['scorings_sweep']:,} sweep scorings")
    report.add("replay throughput, pipeline code only (per process)", events / busy if busy else math.nan,
               "ev/s", f"{busy:.0f} s in Replayer, summed over {args.jobs} process(es)")
    report.add("replay throughput, end to end incl. simulation", events / replay_wall, "ev/s",
               f"{replay_wall:.0f} s wall on {args.jobs} process(es)")

    section("population in the month")
    churners = sum(1 for c, t in truth.items() if t is not None and m0 <= t < m1)
    mid = m0 + (m1 - m0) // 2
    base_rate = sum(1 for c in live if truth.get(c) is not None and mid <= truth[c] < mid + HORIZON_DAYS * DAY_MS) / len(live)
    add_count(report, "live customers (seen before month end, not churned before it)", len(live), "customers",
               f"vip {sum(1 for c in live if tier_of[c] == 'vip')}")
    add_count(report, "churners in the month", churners, "customers")
    report.add(f"base rate: live customers churning within {HORIZON_DAYS} d of mid-month", 100 * base_rate,
               "%", "the precision of alerting at random")

    section("alerts in the month, by trigger and tier (all triggers)")
    month = [a for a in alerts if m0 <= a[4] < m1]
    for trig, n in sorted(Counter(a[2] for a in month).items(), key=lambda x: -x[1]):
        report.add(f"trigger {trig}: alerts per week", n / weeks, "alerts/wk", f"{1000 * n / weeks / len(live):.2f} /wk/1k")
    for tier in sorted({tier_of[c] for c in live}):
        pop = sum(1 for c in live if tier_of[c] == tier)
        model_n = sum(1 for a in month if a[1] == tier and a[3] in MODEL_KINDS)
        all_n = sum(1 for a in month if a[1] == tier)
        report.add(f"tier {tier}: model alerts per week per 1,000 {tier} customers", 1000 * model_n / weeks / pop,
                   "/wk/1k", f"{model_n / weeks:.1f}/wk; all triggers {1000 * all_n / weeks / pop:.1f}/wk/1k; {pop} customers")

    section(f"model alerts (new + escalation), policy thresholds {thresholds}, "
            f"minimum history {policy.alerts.min_history_days:g} d")
    q_model = quality([(a[0], a[4]) for a in alerts if a[3] in MODEL_KINDS], truth, live, m0, m1)
    new_n = sum(1 for a in month if a[3] == "new")
    report.add("model: new alerts (no escalations) per week per 1,000 customers", 1000 * new_n / weeks / len(live),
               "/wk/1k", "what training's weekly-snapshot estimate counts")
    report_quality(report, "model", q_model, base_rate)
    first_seen = {c: first for c, (first, _tier) in seen.items()}
    # the replay's first day is left out: whoever it sees then is established, only new to the replay
    young = {c for c, first in first_seen.items()
             if max(EVAL_START_MS + DAY_MS, m0 - NEW_DAYS * DAY_MS) <= first < m1}
    live_young = live & young
    section(f"new accounts: first seen less than {NEW_DAYS} d before the month or in it ({len(live_young)} live)")
    base_young = (sum(1 for c in live_young if truth.get(c) is not None and mid <= truth[c] < mid + HORIZON_DAYS * DAY_MS)
                  / len(live_young)) if live_young else math.nan
    add_count(report, "new accounts: churners in the month",
              sum(1 for c in young if truth.get(c) is not None and m0 <= truth[c] < m1), "customers")
    report.add(f"new accounts: base rate, churning within {HORIZON_DAYS} d of mid-month", 100 * base_young, "%")
    model_young = [(a[0], a[4]) for a in alerts if a[3] in MODEL_KINDS and a[0] in young]
    truth_young = {c: t for c, t in truth.items() if c in young}
    report_quality(report, "model, new accounts", quality(model_young, truth_young, live_young, m0, m1), base_young)
    q_early_life = quality([(a[0], a[4]) for a in alerts if a[3] in MODEL_KINDS and a[4] - first_seen[a[0]] < NEW_DAYS * DAY_MS],
                           truth, live, m0, m1)
    report.add(f"model alerts raised before {NEW_DAYS} d of history: per week", q_early_life.per_week, "alerts/wk",
               f"{q_early_life.alerts} in the month")
    report.add(f"model alerts raised before {NEW_DAYS} d of history: churned within {HORIZON_DAYS} d",
               100 * q_early_life.precision, "%", f"{q_early_life.alerted_churned} of {q_early_life.alerted_customers}")
    cold_end = EVAL_START_MS + NEW_DAYS * DAY_MS
    cold = sum(1 for a in alerts if a[3] in MODEL_KINDS and a[4] < cold_end)
    report.add(f"cold start: model alerts per week in the replay's first {NEW_DAYS} d", cold / (NEW_DAYS / 7), "alerts/wk",
               f"{cold} alerts; {1000 * cold / (NEW_DAYS / 7) / max(1, sum(f < cold_end for f in first_seen.values())):.1f} "
               "/wk/1k customers seen then")
    section("all triggers (model + proactive-service rules)")
    report_quality(report, "all", quality([(a[0], a[4]) for a in alerts], truth, live, m0, m1), base_rate)
    section("baseline: logins in the last 7 days down >= 50% vs the week before, same policy and scorings")
    report_quality(report, "baseline", quality([(b[0], b[2]) for b in base], truth, live, m0, m1), base_rate)

    total = time.perf_counter() - t_start
    print(f"\n  total {total:.0f}s (replay {replay_wall:.0f}s)", flush=True)
    report.add("total run time", total, "s")
    report.write_json(args.json_out)
    return 0


if __name__ == "__main__":
    main_guard(main)
