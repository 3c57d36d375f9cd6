"""What the per-customer state costs once it keeps a product's own vocabulary: bytes per customer and
where they go, and the per-call cost of ``apply``, the feature spec's ``vector()`` and the table round trip.

Why: ``CustomerState`` now keeps day buckets per interaction type, distinct-user hashes and value sums per
day besides its fixed channels, so the changelog record and the table entry grow with the number of
types a product sends and with its accounts' users. Populations of the foreign-vocabulary simulator with
8 and 25 types show that growth; the project's own default vocabulary is the reference population. The
same-run baselines: ``vector()`` of the built-in features only (``FeatureSpec.legacy_spec()``, what a
model saved before specs computes) on the very same states, and the cheapest stateful per-event loop in
CPython (a dict of per-customer counters) for ``apply``.

Run: ``.venv/bin/python bench/bench_state.py [--quick] [--customers N --days D --seed S]``
"""

from __future__ import annotations

import gc
import itertools
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson

from _common import (BenchError, Report, best_of, best_of_interleaved, dict_counters, fmt_num, load_note, main_guard,
                     parser, per_call_ns_interleaved, percentile, section)

from devtools.simulator import SimConfig, simulate
from pipeline.core.contract import Event
from pipeline.core.features import CustomerState, states_from_events
from pipeline.core.spec import DEFAULT_TOP_K, CompiledSpec, FeatureSpec, compile_spec, learn
from training.assess.shadow import events_from_records

#: Fixed window start (2025-01-01 UTC) so every run folds exactly the same events.
START_MS = 1_735_689_600_000
#: (label, SimConfig.vocabulary): 0 is the project's own vocabulary, the reference population.
POPULATIONS = (("default", 0), ("vocab 8", 8), ("vocab 25", 25))
#: Serialised fields by what they hold; everything else (profile, tickets, surveys, offsets, alert
#: memory, counters) is "rest", so the parts add up to the whole record.
PARTS = (
    ("fixed day buckets", ("days",)),
    ("per-type buckets", ("tnames", "tdays", "tlast")),
    ("user hashes", ("udays",)),
    ("value sums", ("vdays",)),
    ("event-id memory", ("seen",)),
)


@dataclass
class Population:
    label: str
    vocabulary: int
    events: int = 0
    figures: dict[str, float] = field(default_factory=dict)
    #: spec name -> (µs per vector() call, types with channels, features)
    vectors: dict[str, tuple[float, int, int]] = field(default_factory=dict)


def part_bytes(blob: bytes) -> dict[str, int]:
    """Bytes of each :data:`PARTS` entry in one serialised state: its keys and values as orjson writes
    them, with one separator each; ``rest`` is what is left of the record."""
    d = orjson.loads(blob)
    out: dict[str, int] = {}
    for name, keys in PARTS:
        out[name] = sum(len(orjson.dumps({k: d[k]})) - 1 for k in keys if k in d)
    out["rest"] = len(blob) - sum(out.values())
    return out


def specs_for(events: list[Event], vocabulary: int) -> dict[str, CompiledSpec]:
    """Built-in features (the baseline), the spec ``churnwatch train`` learns by default, and for a
    vocabulary wider than the default top-K, the spec with a channel for every type."""
    out = {"built-in only": compile_spec(FeatureSpec.legacy_spec())}
    out[f"learnt, top-K {DEFAULT_TOP_K}"] = compile_spec(learn(events, DEFAULT_TOP_K))
    if vocabulary > DEFAULT_TOP_K:
        out["learnt, every type"] = compile_spec(learn(events, vocabulary))
    return out


def measure(pop: Population, customers: int, days: int, seed: int, repeats: int, report: Report) -> None:
    label = pop.label
    section(f"state, {label}: simulating {customers} customers x {days} days, seed {seed} ({load_note()})")
    t0 = time.perf_counter()
    cfg = SimConfig(customers=customers, days=days, seed=seed, start_ms=START_MS, vocabulary=pop.vocabulary)
    events = list(events_from_records(simulate(cfg)))
    if not events:
        raise BenchError(f"the {label} simulation produced no events")
    n = pop.events = len(events)
    print(f"  {n:,} events in {time.perf_counter() - t0:.1f}s; best of {repeats} interleaved runs per timing")

    # ---- apply ---------------------------------------------------------------------------------
    # the timed replays' last result is the population's states: folding a million events once more
    # only to keep them would cost as much as a timing run
    t = {"base": math.inf, "apply": math.inf}
    folded: dict[str, CustomerState] = {}
    for _ in range(repeats):
        t["base"] = min(t["base"], best_of(1, lambda: dict_counters(events)))
        folded.clear()
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            folded = states_from_events(events)
            t["apply"] = min(t["apply"], time.perf_counter() - t0)
        finally:
            gc.enable()
    us_apply = t["apply"] / n * 1e6
    report.add(f"{label}: baseline dict-of-counters loop, µs per event", t["base"] / n * 1e6, "µs/event")
    report.add(f"{label}: features.apply, µs per event", us_apply, "µs/event",
               f"{t['apply'] / t['base']:.1f}x baseline; {n / t['apply']:,.0f} events/s")
    pop.figures["apply µs/event"] = us_apply
    pop.figures["  baseline dict loop µs/event"] = t["base"] / n * 1e6

    states = list(folded.values())
    del folded
    blobs = [s.to_bytes() for s in states]

    # ---- bytes -----------------------------------------------------------------------------------
    sizes = [len(b) for b in blobs]
    mean = statistics.fmean(sizes)
    slots = [len(s.tnames) for s in states]
    report.add(f"{label}: state bytes per customer, mean", mean, "B",
               f"{len(states)} customers after {days} days (orjson); type slots per customer mean "
               f"{statistics.fmean(slots):.1f}, max {max(slots)}")
    report.add(f"{label}: state bytes per customer, p50", percentile(sizes, 50), "B")
    report.add(f"{label}: state bytes per customer, p95", percentile(sizes, 95), "B")
    report.add(f"{label}: state bytes per customer, max", max(sizes), "B")
    pop.figures.update({"bytes/customer mean": mean, "bytes/customer p50": percentile(sizes, 50),
                        "bytes/customer p95": percentile(sizes, 95), "bytes/customer max": float(max(sizes))})
    parts = [part_bytes(b) for b in blobs]
    rows = statistics.fmean(len(s.tdays) for s in states)
    hashes = statistics.fmean(sum(len(h) for h in s.udays.values()) for s in states)
    ids = statistics.fmean(s.seen_count for s in states)
    detail = {
        "fixed day buckets": f"{statistics.fmean(len(s.days) for s in states):.0f} day rows per customer",
        "per-type buckets": f"{rows:.0f} day rows per customer, names and last-seen times included",
        "user hashes": f"{hashes:.0f} hashes per customer",
        "value sums": f"{statistics.fmean(len(s.vdays) for s in states):.0f} days per customer",
        "event-id memory": f"{ids:.0f} ids per customer",
        "rest": "profile, tickets, surveys, offsets, alert memory, counters",
    }
    for name in [p for p, _ in PARTS] + ["rest"]:
        v = statistics.fmean(p[name] for p in parts)
        report.add(f"{label}:   of which {name}, mean", v, "B", f"{v / mean * 100:.0f}%; {detail[name]}")
        pop.figures[f"  {name} B"] = v

    # ---- vector ----------------------------------------------------------------------------------
    specs = specs_for(events, pop.vocabulary)
    events.clear()  # a million events: not kept through the timings that follow
    gc.collect()

    def all_vectors(c: CompiledSpec) -> Callable[[], None]:
        def run() -> None:
            for s in states:
                c.vector(s, s.last_ms)
        return run

    def one_vector(c: CompiledSpec) -> Callable[[], Any]:
        it = itertools.cycle(states)
        return lambda: (lambda s: c.vector(s, s.last_ms))(next(it))

    t = best_of_interleaved(repeats, {name: all_vectors(c) for name, c in specs.items()})
    per_call = per_call_ns_interleaved(3, {name: (one_vector(c), min(len(states), 2000)) for name, c in specs.items()})
    base_name = next(iter(specs))
    base_us = t[base_name] / len(states) * 1e6
    for name, c in specs.items():
        us = t[name] / len(states) * 1e6
        ns = per_call[name]
        types = "" if c.spec.legacy else f"{len(c.spec.types)} types, "
        ratio = "the baseline" if name == base_name else f"{us / base_us:.1f}x the built-in features"
        report.add(f"{label}: vector(), {name}, µs per call", us, "µs",
                   f"{types}{len(c.names)} features; p50 {percentile(ns, 50) / 1e3:.0f} µs, p99 "
                   f"{percentile(ns, 99) / 1e3:.0f} µs; {ratio}")
        pop.vectors[name] = (us, len(c.spec.types), len(c.names))

    # ---- serialisation ---------------------------------------------------------------------------
    def dumps() -> None:
        for s in states:
            s.to_bytes()

    def loads() -> None:
        for b in blobs:
            CustomerState.from_bytes(b)

    t = best_of_interleaved(repeats, {"dump": dumps, "load": loads})
    for key, what, fig in (("dump", "CustomerState.to_bytes()", "to_bytes µs"),
                           ("load", "CustomerState.from_bytes()", "from_bytes µs")):
        us = t[key] / len(states) * 1e6
        report.add(f"{label}: {what} per call", us, "µs", f"{mean / us:.0f} B/µs at the mean size")
        pop.figures[fig] = us


def cell(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else fmt_num(v)


def print_summary(pops: list[Population]) -> None:
    """One table with the populations side by side: the figures are only meaningful against each other."""
    for p in pops:  # vector rows next to each other, whichever population has which spec
        ser = {k: p.figures.pop(k) for k in ("to_bytes µs", "from_bytes µs")}
        for name, (us, types, feats) in p.vectors.items():
            p.figures[f"vector() µs, {name}"] = us
            p.figures[f"  features, {name}"] = feats
            if types:
                p.figures[f"  types with channels, {name}"] = types
        p.figures.update(ser)
    keys: list[str] = []
    for p in pops:
        keys += [k for k in p.figures if k not in keys]
    order = {k: i for i, k in enumerate(keys)}
    group = {k: (2 if k.startswith("vector()") or "types with" in k or "features," in k else
                 3 if k.endswith("_bytes µs") else 1) for k in keys}
    keys.sort(key=lambda k: (group[k], order[k]))
    w = max(len(k) for k in keys)
    cols = [f"{p.label} ({p.events:,} ev)" for p in pops]
    cw = max(14, *(len(c) for c in cols))
    print(f"\n== state: summary ({load_note()})")
    print(f"  {'':<{w}}  " + "  ".join(f"{c:>{cw}}" for c in cols))
    for k in keys:
        cells = [cell(p.figures[k]) if k in p.figures else "-" for p in pops]
        print(f"  {k:<{w}}  " + "  ".join(f"{c:>{cw}}" for c in cells))


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, help="customers per population (default 2000; --quick 400)")
    p.add_argument("--days", type=int, help="simulated days (default 120)")
    p.add_argument("--seed", type=int, default=5, help="simulator seed (default 5)")
    args = p.parse_args()
    customers = args.customers or (400 if args.quick else 2000)
    days = args.days or 120
    if customers < 1 or days < 1:
        raise BenchError("--customers and --days must be >= 1")
    repeats = 3
    report = Report("state")
    pops = [Population(label, vocab) for label, vocab in POPULATIONS]
    for pop in pops:
        measure(pop, customers, days, args.seed, repeats, report)
        gc.collect()
    print_summary(pops)
    report.write_json(args.json_out)
    return 0


if __name__ == "__main__":
    main_guard(main)
