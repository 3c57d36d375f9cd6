"""Cost of the pure feature code: folding events into state, the feature vector, state (de)serialisation,
and how many bytes a customer's state takes after months of history.

Why these figures: the worker pays, per event, a parse and an ``apply``; per touched customer and micro-batch,
a ``from_bytes`` + ``vector`` + ``to_bytes``; and the state bytes are what the changelog carries and the
table holds in memory. The same-run baseline is the cheapest stateful Python loop there is (a dict of
per-customer counters updated per event), so ``apply``'s figure reads as "N× the floor of doing anything
per event in CPython" rather than as an absolute that depends on the machine.

Run: ``.venv/bin/python bench/bench_features.py [--quick]``
"""

from __future__ import annotations

import statistics

import orjson
import time

from _common import (BenchError, Report, best_of_interleaved, dict_counters, load_note, main_guard, parser,
                     per_call_ns, percentile, section)

from devtools.simulator import SimConfig, encode_value, simulate
from pipeline.core.contract import DAY_MS, Event, parse, validate
from pipeline.core.features import CustomerState, FeatureConfig, apply, states_from_events, vector

#: Fixed window start (2025-01-01 UTC) so every run folds exactly the same events.
START_MS = 1_735_689_600_000


def simulated(customers: int, days: int, seed: int = 5) -> tuple[list[Event], list[tuple[str, bytes]]]:
    """Validated events plus their wire form (source, bytes), in stream order."""
    now_ms = START_MS + (days + 2) * DAY_MS
    events: list[Event] = []
    wire: list[tuple[str, bytes]] = []
    for rec in simulate(SimConfig(customers=customers, days=days, seed=seed, start_ms=START_MS)):
        events.append(validate(rec.source, rec.value, now_ms))
        wire.append((rec.source, encode_value(rec)))
    if not events:
        raise BenchError("the simulator produced no events")
    return events, wire


def fold(events: list[Event], with_offsets: bool, cfg: FeatureConfig) -> dict[str, CustomerState]:
    """What the worker does per event (minus Kafka): look the state up, ``apply`` the event."""
    states: dict[str, CustomerState] = {}
    if with_offsets:
        next_offset: dict[str, int] = {}
        for ev in events:
            st = states.get(ev.customer_id)
            if st is None:
                st = states[ev.customer_id] = CustomerState(ev.customer_id)
            off = next_offset.get(ev.source, 0)
            next_offset[ev.source] = off + 1
            apply(st, ev, off, cfg)
        return states
    return states_from_events(events, cfg)


def fold_batches(events: list[Event], cfg: FeatureConfig, batch: int, serialize: bool) -> int:
    """The worker's per-micro-batch pattern, minus Kafka, parsing and the model: ``apply`` every event of a
    ``batch``-event slice, then one ``vector`` per touched customer; with ``serialize``, also the table
    round trip (``from_bytes`` at a customer's first event in the batch, ``to_bytes`` once at the end).
    Returns the number of vectors computed."""
    states: dict[str, CustomerState] = {}
    table: dict[str, bytes] = {}
    next_offset: dict[str, int] = {}
    vectors = 0
    for i in range(0, len(events), batch):
        touched: dict[str, CustomerState] = {}
        for ev in events[i:i + batch]:
            cid = ev.customer_id
            st = touched.get(cid)
            if st is None:
                if serialize:
                    raw = table.get(cid)
                    st = CustomerState.from_bytes(raw) if raw is not None else CustomerState(cid)
                else:
                    st = states.get(cid)
                    if st is None:
                        st = states[cid] = CustomerState(cid)
                touched[cid] = st
            off = next_offset.get(ev.source, 0)
            next_offset[ev.source] = off + 1
            apply(st, ev, off, cfg)
        for cid, st in touched.items():
            vector(st, st.last_ms)
            if serialize:
                table[cid] = st.to_bytes()
        vectors += len(touched)
    return vectors


def run(quick: bool, report: Report) -> None:
    customers, days = (150, 100) if quick else (300, 120)
    repeats = 3 if quick else 5
    section(f"features: simulating {customers} customers x {days} days ({load_note()})")
    t0 = time.perf_counter()
    events, wire = simulated(customers, days)
    print(f"  {len(events):,} events in {time.perf_counter() - t0:.1f}s; best of {repeats} interleaved runs per figure")
    cfg = FeatureConfig()
    n = len(events)
    now_ms = START_MS + (days + 2) * DAY_MS

    def parse_all() -> None:
        for source, raw in wire:
            parse(source, raw, now_ms)

    t = best_of_interleaved(repeats, {
        "base": lambda: dict_counters(events),
        "plain": lambda: fold(events, False, cfg),
        "off": lambda: fold(events, True, cfg),
        "parse": parse_all,
    })
    t_base, t_plain, t_off, t_parse = t["base"], t["plain"], t["off"], t["parse"]
    report.add("baseline: dict-of-counters update loop", n / t_base, "events/s")
    report.add("features.apply (event-id dedup), offline", n / t_plain, "events/s",
               f"{t_plain / t_base:.1f}x baseline, {t_plain / n * 1e6:.2f} µs/event")
    report.add("features.apply, recording stream offsets too", n / t_off, "events/s",
               f"{t_off / t_base:.1f}x baseline, {t_off / n * 1e6:.2f} µs/event")
    report.add("contract.parse (orjson + validate) from bytes", n / t_parse, "events/s",
               f"{t_parse / n * 1e6:.2f} µs/event")

    batch = 500
    n_vec = fold_batches(events, cfg, batch, False)
    t = best_of_interleaved(2 if quick else 3, {
        "base": lambda: dict_counters(events),
        "vec": lambda: fold_batches(events, cfg, batch, False),
        "ser": lambda: fold_batches(events, cfg, batch, True),
    })
    t_base2, t_vec_b, t_ser_b = t["base"], t["vec"], t["ser"]
    report.add(f"apply + vector per touched customer, {batch}-event batches", n / t_vec_b, "events/s",
               f"{t_vec_b / t_base2:.0f}x baseline; {n_vec / (n / batch):.0f} customers vectorised per batch "
               f"({n_vec / n:.2f} per event)")
    report.add("same + state from_bytes/to_bytes per customer and batch", n / t_ser_b, "events/s",
               f"{t_ser_b / t_base2:.0f}x baseline; the worker's pure-Python share of a batch")

    states = list(fold(events, True, cfg).values())
    blobs = [s.to_bytes() for s in states]
    reps = max(1, (5_000 if quick else 10_000) // len(states))

    def vectors() -> None:
        for _ in range(reps):
            for s in states:
                vector(s, s.last_ms)

    def dumps() -> None:
        for _ in range(reps):
            for s in states:
                s.to_bytes()

    def loads() -> None:
        for _ in range(reps):
            for b in blobs:
                CustomerState.from_bytes(b)

    calls = reps * len(states)
    t = best_of_interleaved(repeats, {"vec": vectors, "dump": dumps, "load": loads})
    t_vec, t_dump, t_load = t["vec"], t["dump"], t["load"]
    it = iter(states * 4)
    vec_ns = per_call_ns(lambda: (lambda s: vector(s, s.last_ms))(next(it)), min(len(states) * 4, 4000))
    report.add("features.vector() per call, mean", t_vec / calls * 1e6, "µs",
               f"p50 {percentile(vec_ns, 50) / 1e3:.1f} µs, p99 {percentile(vec_ns, 99) / 1e3:.1f} µs")
    report.add("CustomerState.to_bytes() per call", t_dump / calls * 1e6, "µs")
    report.add("CustomerState.from_bytes() per call", t_load / calls * 1e6, "µs")

    sizes = [len(b) for b in blobs]
    end_ms = max(s.last_ms for s in states)
    active = [len(b) for s, b in zip(states, blobs) if end_ms - s.last_ms < 7 * DAY_MS]
    report.add("state bytes per customer, mean", statistics.fmean(sizes), "B",
               f"{len(sizes)} customers after {days} days (orjson)")
    report.add("state bytes per customer, p50", percentile(sizes, 50), "B")
    report.add("state bytes per customer, p95", percentile(sizes, 95), "B", f"max {max(sizes)} B")
    ids = [len(orjson.dumps(orjson.loads(b)["seen"])) for b in blobs]
    report.add("of which the event-id memory, mean", statistics.fmean(ids), "B",
               f"{sum(s.seen_count for s in states) / len(states):.0f} ids per customer, "
               f"{sum(ids) / max(1, sum(s.seen_count for s in states)):.1f} B per id; without it the state is "
               f"{statistics.fmean(sizes) - statistics.fmean(ids):.0f} B")
    if active:
        report.add("state bytes per customer still active, mean", statistics.fmean(active), "B",
                   f"{len(active)} customers with an event in the last 7 days")


def main() -> int:
    args = parser(__doc__.splitlines()[0]).parse_args()
    report = Report("features")
    run(args.quick, report)
    report.write_json(args.json_out)
    return 0


if __name__ == "__main__":
    main_guard(main)
