"""Exporting large topics: wall time, events/s and peak RSS of `churnwatch export` at 1M and 10M events.

``churnwatch export`` (``training/data/export.py``) reads every input topic to a consistent cut, spools the
records to a temporary Parquet file, sorts it with DuckDB's external sort and writes the log, so its
memory should stay bounded however long the topics are: the promise is a peak RSS of at most 1.5 GB
for a 10M-event topic set. This measures it, as a whole process (peak RSS from ``os.wait4``'s
``ru_maxrss``), and checks what it wrote independently of churnwatch's code.

Per size, on an embedded Tansu broker started for the size (free loopback port; its memory storage
only grows, so no size reads another's records) and stopped by pid:

1. topics created as users create them (``churnwatch topics create``), then every line of a simulated
   log (``bench_training.simulated_log``, 180 days, seed 7, time order; cached under ``--cache``)
   produced to the topic of its ``source``, keyed by ``customer_id``, with batched aiokafka — the value
   is what churnwatch's own producer sends (the line without ``source``). **Produce rate**; then the
   broker's end offsets (fetch high watermarks: Tansu 0.6.0's ListOffsets answers the last batch's base
   offset + 1) must add up to the lines produced.
2. **transport baseline**: a raw kafka-python consumer (this file's ``--raw-consume`` mode, its own
   process) reading every input partition to its end with the export's poll loop and writing nothing:
   what any reader of these topics pays before doing any work.
3. ``python -m apps.cli export --broker URL --out export.jsonl`` from a snapshot of this tree (edits
   made meanwhile do not leak in): wall time, events/s, peak RSS, and where the RSS peaks — *reading*
   (consume + spool), *sorting* (DuckDB), *writing* — told apart by the files the export leaves in its
   own ``TMPDIR`` and beside the output, sampled every 0.2 s.
4. **baseline** in the same run: the same command at an earlier commit whose export held the dump in
   memory (``--baseline``, default a220471, the commit before 0874178 spooled it; checked out as a ``git
   worktree`` under /tmp and removed afterwards), up to ``--baseline-max`` events (default 1M: its memory
   grows with the topics).

Every output is checked from the files alone: as many lines as produced, the multiset of
``(source, event_id)`` equal to the log's (per-source counts plus a 128-bit sum of per-record BLAKE2b
hashes, both streamed: nothing is held per record), event times non-decreasing.

    .venv/bin/python bench/bench_export.py --quick                 # 100k events, with the baseline
    .venv/bin/python bench/bench_export.py --events 1000000        # 1M, with the baseline
    .venv/bin/python bench/bench_export.py --events 10000000 --no-baseline
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from _common import (BenchError, Report, load_note, main_guard, parser, section, bench_trees, remove_worktree,
                     stop_child, tree_env)
from bench_training import simulated_log

from devtools.broker import EmbeddedBroker  # noqa: E402  (after _common puts the repo on the path)
from pipeline.config.settings import INPUT_SOURCES, Settings  # noqa: E402

DEFAULT_BASELINE = "a220471"  # the last commit before 0874178: export sorted a list of every record in memory
TARGET_MB = 1.5 * 1024  # the promise: peak RSS <= 1.5 GB at 10M events
SAMPLE_S = 0.2
PHASES = ("reading", "sorting", "writing")
STALL_S = 60.0


# ---- what was produced and what came out: streamed digests -------------------------------------
@dataclass
class Digest:
    """A multiset of (source, event_id), summarised without keeping anything per record."""

    records: int = 0
    by_source: Counter = field(default_factory=Counter)
    checksum: int = 0  # sum of 128-bit BLAKE2b hashes of [source, event_id], mod 2**128
    unparsable: int = 0
    out_of_order: int = 0  # a line whose event time is before the previous line's

    def add(self, source: Any, event_id: Any) -> None:
        h = hashlib.blake2b(orjson.dumps([source, event_id]), digest_size=16).digest()
        self.checksum = (self.checksum + int.from_bytes(h, "little")) & ((1 << 128) - 1)
        self.records += 1
        self.by_source[source] += 1

    def differences(self, other: "Digest") -> list[str]:
        out = []
        if self.records != other.records:
            out.append(f"{other.records:,} records, expected {self.records:,}")
        for src in sorted(set(self.by_source) | set(other.by_source), key=str):
            if self.by_source[src] != other.by_source[src]:
                out.append(f"{src}: {other.by_source[src]:,}, expected {self.by_source[src]:,}")
        if self.checksum != other.checksum:
            out.append("the (source, event_id) checksum differs")
        if other.unparsable:
            out.append(f"{other.unparsable:,} lines are not JSON objects")
        if other.out_of_order:
            out.append(f"{other.out_of_order:,} lines earlier than the line before")
        return out


def log_digest(log: Path) -> Digest:
    """The (source, event_id) multiset of the simulated log itself, every line a record to produce."""
    d = Digest()
    loads = orjson.loads
    with open(log, "rb") as fh:
        for line in fh:
            obj = loads(line)
            d.add(obj.get("source"), obj.get("event_id"))
    return d


def _ts_ms(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value).timestamp() * 1000)
        except ValueError:
            return None
    return None


def export_digest(path: Path) -> Digest:
    """The same multiset of an exported JSONL file, and how many lines go back in event time."""
    d = Digest()
    loads = orjson.loads
    last = -(1 << 62)
    with open(path, "rb") as fh:
        for line in fh:
            try:
                obj = loads(line)
            except orjson.JSONDecodeError:
                d.unparsable += 1
                continue
            if not isinstance(obj, dict):
                d.unparsable += 1
                continue
            d.add(obj.get("source"), obj.get("event_id"))
            ts = _ts_ms(obj.get("ts"))
            if ts is not None:
                if ts < last:
                    d.out_of_order += 1
                last = ts
    return d


# ---- the broker side -----------------------------------------------------------------------------
async def produce_log(address: str, topics: dict[str, str], log: Path) -> tuple[float, int, dict[tuple[str, int], int]]:
    """Every line of ``log`` to the topic of its source, keyed by customer_id, as fast as aiokafka batches
    them. Returns (seconds, records, acknowledged end offset per (topic, partition))."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=address, linger_ms=20, max_batch_size=256 * 1024, acks=1)
    await producer.start()
    acked: dict[tuple[str, int], int] = {}
    prefixes = {src: b'{"source":' + orjson.dumps(src) + b"," for src in topics}
    n = 0

    def note(results: list[Any]) -> None:
        for md in results:
            key = (md.topic, md.partition)
            acked[key] = max(acked.get(key, 0), md.offset + 1)

    try:
        t0 = time.perf_counter()
        pending: list[Any] = []
        loads = orjson.loads
        with open(log, "rb") as fh:
            for line in fh:
                obj = loads(line)
                src = obj.get("source")
                if src not in topics:
                    raise BenchError(f"{log.name} line {n + 1}: source {src!r} is not an input topic")
                prefix = prefixes[src]
                # churnwatch's producer sends the record without "source" (the topic says it); the
                # simulator wrote the line as {"source": ..., **value}, so cutting the prefix gives those bytes
                value = b"{" + line[len(prefix):].rstrip(b"\n") if line.startswith(prefix) else \
                    orjson.dumps({k: v for k, v in obj.items() if k != "source"})
                pending.append(await producer.send(topics[src], value, key=str(obj.get("customer_id")).encode()))
                n += 1
                if len(pending) >= 20_000:
                    note(await asyncio.gather(*pending))
                    pending.clear()
        note(await asyncio.gather(*pending))
        return time.perf_counter() - t0, n, acked
    finally:
        await producer.stop()


def _kafka_consumer(address: str, client_id: str) -> Any:
    from kafka import KafkaConsumer

    # what training/data/export.py's reader uses: kafka-python's defaults, no group, manual assignment
    return KafkaConsumer(bootstrap_servers=address, client_id=client_id, enable_auto_commit=False, group_id=None)


def broker_ends(address: str, topic_names: list[str], timeout: float = 60.0) -> tuple[dict[Any, int], dict[Any, int]]:
    """(high watermark, ListOffsets answer) per partition. The high watermark comes from a fetch at the
    last batch, because Tansu 0.6.0's ListOffsets answers that batch's base offset + 1, not the end."""
    from kafka import TopicPartition

    c = _kafka_consumer(address, "bench-export-ends")
    try:
        existing = c.topics()
        missing = [t for t in topic_names if t not in existing]
        if missing:
            raise BenchError(f"topics missing on the broker: {', '.join(missing)}")
        tps = [TopicPartition(t, p) for t in topic_names for p in sorted(c.partitions_for_topic(t) or ())]
        c.assign(tps)
        listed = {tp: int(o) for tp, o in c.end_offsets(tps).items()}
        hw = {tp: 0 for tp in tps if listed[tp] == 0}
        for tp in tps:
            if listed[tp] > 0:
                c.seek(tp, listed[tp] - 1)
        deadline = time.monotonic() + timeout
        while len(hw) < len(tps):
            if time.monotonic() > deadline:
                raise BenchError(f"no high watermark within {timeout:.0f}s for {len(tps) - len(hw)} partitions")
            c.poll(timeout_ms=500)
            for tp in tps:
                if tp not in hw and c.highwater(tp) is not None:
                    hw[tp] = int(c.highwater(tp))
                    c.pause(tp)
        return hw, listed
    finally:
        c.close()


def raw_consume(address: str, topic_names: list[str]) -> dict[str, Any]:
    """The transport baseline: every partition from the beginning to its cut, with training/data/export.py's
    poll loop (same client, same poll size, the cut taken the same way), counting records and value bytes."""
    from kafka import TopicPartition

    c = _kafka_consumer(address, "bench-export-transport")
    try:
        c.topics()
        tps = [TopicPartition(t, p) for t in topic_names for p in sorted(c.partitions_for_topic(t) or ())]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        listed = c.end_offsets(tps)
        cut: dict[Any, int] = {tp: int(listed[tp]) for tp in tps if c.position(tp) >= listed[tp]}
        pending = set(tps) - set(cut)
        for tp in cut:
            c.pause(tp)
        n = nbytes = 0
        t0 = time.perf_counter()
        last_progress = time.monotonic()
        while pending:
            batch = c.poll(timeout_ms=500, max_records=10_000)
            for tp, records in batch.items():
                if tp not in cut:
                    cut[tp] = max(int(listed[tp]), int(c.highwater(tp) or 0))
                end = cut[tp]
                for rec in records:
                    if rec.offset < end:
                        n += 1
                        nbytes += len(rec.value or b"")
            if batch:
                last_progress = time.monotonic()
            for tp in list(pending):
                if tp in cut and c.position(tp) >= cut[tp]:
                    pending.discard(tp)
                    c.pause(tp)
            if pending and time.monotonic() - last_progress > STALL_S:
                raise BenchError(f"raw consumer stalled at {n:,} records")
        return {"records": n, "bytes": nbytes, "seconds": time.perf_counter() - t0}
    finally:
        c.close()


def proc_rss_mb(pid: int | None) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


# ---- running one command -------------------------------------------------------------------------
@dataclass
class Measured:
    seconds: float
    peak_mb: float  # ru_maxrss
    code: int
    phase_peak_mb: dict[str, float] = field(default_factory=dict)  # sampled VmRSS, max per phase
    phase_s: dict[str, float] = field(default_factory=dict)
    disk_peak_mb: float = 0.0  # the command's TMPDIR (the spool and DuckDB's spill), sampled


def _dir_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def _phase(spool_root: Path, out: Path) -> str:
    """What an export is doing, from its files: a temporary output beside ``out`` means writing; the
    spool's sorted copy or DuckDB's spill directory means sorting; anything before that is reading."""
    if any(out.parent.glob(f".{out.name}.*")):
        return "writing"
    for d in spool_root.glob("churnwatch-export-*"):
        if (d / "sorted.parquet").exists() or (d / "duckdb-tmp").exists():
            return "sorting"
    return "reading"


def measure(cmd: list[str], tree: Path, log: Path, timeout: float, spool_root: Path | None = None,
            out: Path | None = None) -> Measured:
    """Run ``cmd`` in ``tree`` as its own process: wall seconds, peak RSS (``ru_maxrss``), exit code; with
    ``spool_root``/``out``, also its TMPDIR's peak size and the sampled RSS peak of each export phase."""
    env = tree_env(tree)
    if spool_root is not None:
        spool_root.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(spool_root)
    m = Measured(0.0, 0.0, 0)
    phase_at = 0
    started = time.perf_counter()
    entered = started
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = started + timeout
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                now = time.perf_counter()
                if pid:
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    m.seconds, m.peak_mb, m.code = now - started, usage.ru_maxrss / 1024, proc.returncode
                    if spool_root is not None:
                        m.phase_s[PHASES[phase_at]] = m.phase_s.get(PHASES[phase_at], 0.0) + now - entered
                    return m
                if now > deadline:
                    raise BenchError(f"{' '.join(cmd[2:4])} did not finish within {timeout:.0f}s")
                if spool_root is not None and out is not None:
                    seen = PHASES.index(_phase(spool_root, out))
                    if seen > phase_at:  # phases only move forward
                        m.phase_s[PHASES[phase_at]] = m.phase_s.get(PHASES[phase_at], 0.0) + now - entered
                        phase_at, entered = seen, now
                    rss = proc_rss_mb(proc.pid)
                    if rss == rss:  # not NaN: the process is still there
                        name = PHASES[phase_at]
                        m.phase_peak_mb[name] = max(m.phase_peak_mb.get(name, 0.0), rss)
                    m.disk_peak_mb = max(m.disk_peak_mb, _dir_bytes(spool_root) / 1e6)
                time.sleep(SAMPLE_S)
        except BaseException:
            stop_child(proc)
            raise


def last_line(path: Path) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


# ---- one size --------------------------------------------------------------------------------------
@dataclass
class Row:
    size: str
    what: str
    seconds: float
    events_s: float
    peak_mb: float
    ok: bool
    note: str = ""


def run_size(n_target: int, args: argparse.Namespace, tmp: Path, this_tree: Path, old_tree: Path | None,
             report: Report, rows: list[Row]) -> bool:
    label = f"{n_target / 1e6:g}M" if n_target >= 1_000_000 else f"{n_target // 1000}k"
    section(f"{label} events ({load_note()})")
    log = simulated_log(Path(args.cache), n_target, "time")
    t0 = time.perf_counter()
    expected = log_digest(log)
    n = expected.records
    print(f"  log {log.name}: {n:,} records ("
          + ", ".join(f"{k} {v:,}" for k, v in sorted(expected.by_source.items())) + f"), digest in "
          f"{time.perf_counter() - t0:.1f}s", flush=True)
    ok = True
    work = tmp / label
    work.mkdir()
    broker = EmbeddedBroker(log_path=work / "broker.log")
    broker.start()
    try:
        print(f"  broker {broker.address} (pid {broker.pid})", flush=True)
        settings = Settings.from_env(env={}).with_(broker=broker.url)
        topics = {src: settings.topic(src) for src in INPUT_SOURCES}
        made = subprocess.run([sys.executable, "-m", "apps.cli", "topics", "create", "--broker", broker.url],
                              cwd=this_tree, env=tree_env(this_tree), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
        if made.returncode != 0:
            raise BenchError(f"churnwatch topics create: {(made.stderr or made.stdout).strip().splitlines()[-1:]}")

        secs, produced, acked = asyncio.run(produce_log(broker.address, topics, log))
        report.add(f"{label}: produce rate (aiokafka, batched)", produced / secs, "events/s",
                   f"{produced:,} records in {secs:.1f}s, {len(acked)} partitions")
        hw, listed = broker_ends(broker.address, list(topics.values()))
        ends = sum(hw.values())
        report.add(f"{label}: broker end offsets (fetch high watermarks), sum", ends, "records",
                   f"produced {produced:,}, acknowledged {sum(acked.values()):,}; ListOffsets says "
                   f"{sum(listed.values()):,}")
        if not (ends == produced == n == sum(acked.values())):
            raise BenchError(f"the broker holds {ends:,} records, {produced:,} were produced from {n:,} lines")
        report.add(f"{label}: broker (Tansu, memory storage) RSS after produce", proc_rss_mb(broker.pid), "MB")

        # transport baseline: read everything, write nothing
        me = this_tree / "bench" / Path(__file__).name
        res_path = work / "raw.json"
        m = measure([sys.executable, str(me), "--raw-consume", broker.address, "--raw-out", str(res_path),
                     *sum((["--raw-topic", t] for t in topics.values()), [])],
                    this_tree, work / "raw.log", args.timeout)
        raw = orjson.loads(res_path.read_bytes()) if m.code == 0 and res_path.is_file() else {}
        good = m.code == 0 and raw.get("records") == n
        ok &= good
        note = (f"{raw.get('records', 0):,} records, {raw.get('bytes', 0) / 1e6:,.0f} MB of values, "
                f"{raw.get('seconds', 0):.1f}s polling" if raw else f"exit {m.code}: {last_line(work / 'raw.log')}")
        report.add(f"{label}: transport baseline (raw kafka-python) wall", m.seconds, "s", note)
        report.add(f"{label}: transport baseline events/s", n / m.seconds, "events/s")
        report.add(f"{label}: transport baseline peak RSS", m.peak_mb, "MB")
        rows.append(Row(label, "transport (raw consumer)", m.seconds, n / m.seconds, m.peak_mb, good, note))
        transport_s = m.seconds

        trees = [("this tree", this_tree)]
        if old_tree is not None and n_target <= args.baseline_max:
            trees.append((f"baseline {args.baseline}", old_tree))
        peaks: dict[str, float] = {}
        for tree_name, tree in trees:
            slug = "this" if tree is this_tree else "baseline"
            out = work / f"export-{slug}.jsonl"
            cmd = [sys.executable, "-m", "apps.cli", "export", "--broker", broker.url, "--out", str(out)]
            m = measure(cmd, tree, work / f"export-{slug}.log", args.timeout, spool_root=work / f"tmp-{slug}", out=out)
            peaks[slug] = m.peak_mb
            phases = ", ".join(f"{p} {m.phase_s.get(p, 0):.0f}s / {m.phase_peak_mb[p]:,.0f} MB"
                               for p in PHASES if p in m.phase_peak_mb)
            if m.code != 0:
                ok = False
                msg = last_line(work / f"export-{slug}.log")
                report.add(f"{label}: export wall ({tree_name})", m.seconds, "s", f"exit {m.code}: {msg}")
                report.add(f"{label}: export peak RSS ({tree_name})", m.peak_mb, "MB")
                rows.append(Row(label, f"export ({tree_name})", m.seconds, n / m.seconds, m.peak_mb, False,
                                f"exit {m.code}"))
                continue
            report.add(f"{label}: export wall ({tree_name})", m.seconds, "s",
                       f"{m.seconds / transport_s:.1f}x the transport baseline")
            report.add(f"{label}: export events/s ({tree_name})", n / m.seconds, "events/s")
            target = f"; target <= {TARGET_MB:,.0f} MB {'met' if m.peak_mb <= TARGET_MB else 'NOT met'}" \
                if slug == "this" else ""
            report.add(f"{label}: export peak RSS ({tree_name})", m.peak_mb, "MB", f"sampled: {phases}{target}")
            if slug == "this":
                report.add(f"{label}: export spool + sort spill on disk, peak", m.disk_peak_mb, "MB",
                           "the export's TMPDIR, sampled")
            report.add(f"{label}: export output size ({tree_name})", out.stat().st_size / 1e6, "MB")
            t0 = time.perf_counter()
            got = export_digest(out)
            diffs = expected.differences(got)
            check = "output checked: " + ("lines, (source, event_id) multiset and time order as produced"
                                         if not diffs else "MISMATCH: " + "; ".join(diffs))
            print(f"  {check} ({time.perf_counter() - t0:.1f}s)", flush=True)
            ok &= not diffs
            rows.append(Row(label, f"export ({tree_name})", m.seconds, n / m.seconds, m.peak_mb, not diffs,
                            "checked" if not diffs else "MISMATCH"))
            out.unlink()
        if "this" in peaks and "baseline" in peaks:
            print(f"  peak RSS: this tree {peaks['this']:,.0f} MB, baseline {peaks['baseline']:,.0f} MB "
                  f"({peaks['this'] / peaks['baseline']:.2f}x)", flush=True)
        report.add(f"{label}: broker (Tansu) RSS at the end", proc_rss_mb(broker.pid), "MB")
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    return ok


def raw_consume_main(args: argparse.Namespace) -> int:
    result = raw_consume(args.raw_consume, args.raw_topic)
    Path(args.raw_out).write_bytes(orjson.dumps(result))
    return 0


def bad_args(message: str) -> int:
    print(f"bench_export: {message}", file=sys.stderr)
    return 2


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", help="topic-set sizes in events, comma separated (default 1000000,10000000; "
                                    "--quick 100000)")
    p.add_argument("--baseline", default=DEFAULT_BASELINE, help="commit whose in-memory export is the baseline")
    p.add_argument("--baseline-max", type=int, default=1_000_000, help="largest size the baseline runs on")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--cache", default="/tmp/cw-bench-cache", help="where simulated logs are kept between runs")
    p.add_argument("--timeout", type=float, default=3600, help="per command, seconds")
    p.add_argument("--raw-consume", metavar="HOST:PORT", help=argparse.SUPPRESS)
    p.add_argument("--raw-topic", action="append", default=[], help=argparse.SUPPRESS)
    p.add_argument("--raw-out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.raw_consume:
        return raw_consume_main(args)
    try:
        sizes = [int(x) for x in (args.events or ("100000" if args.quick else "1000000,10000000")).split(",")]
    except ValueError:
        return bad_args(f"--events {args.events!r}: comma-separated event counts, e.g. 1000000,10000000")
    if not sizes or min(sizes) < 10_000:
        return bad_args("--events: every size must be at least 10000")
    if args.timeout <= 0:
        return bad_args("--timeout must be > 0")
    if args.baseline_max < 0:
        return bad_args("--baseline-max must be >= 0")
    report = Report("export")
    rows: list[Row] = []
    tmp = Path(tempfile.mkdtemp(prefix="cw-bench-export-"))
    old_tree: Path | None = None
    ok = True
    try:
        wants_baseline = not args.no_baseline and any(n <= args.baseline_max for n in sizes)
        this_tree, old_tree = bench_trees(tmp, args.baseline if wants_baseline else None)
        for n in sizes:
            ok &= run_size(n, args, tmp, this_tree, old_tree, report, rows)
        section("summary")
        print(f"  {'size':<6} {'what':<28} {'wall s':>9} {'events/s':>10} {'peak RSS MB':>12}  check")
        for r in rows:
            print(f"  {r.size:<6} {r.what:<28} {r.seconds:>9.1f} {r.events_s:>10,.0f} {r.peak_mb:>12,.0f}  "
                  f"{'ok' if r.ok else 'FAILED'} {r.note[:80]}")
        report.write_json(args.json_out)
        return 0 if ok else 1
    finally:
        remove_worktree(old_tree)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main_guard(main)
