"""The spool behind out-of-core logs: what comes back is exactly what a plain in-memory read would give.

The oracle here is independent of the spool: records validated one by one with the contract's own
``validate`` and ordered with Python's stable ``sorted`` — what ``read_events`` did before logs were
spooled. Batches are made tiny so that every log here spans many row groups and the external sort
really merges.
"""

from __future__ import annotations

import gc
import random
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

import training.data.eventlog as eventlog
import training.data.spool as spool_mod
from pipeline.core.contract import DAY_MS, validate
from pipeline.core.spec import learn
from training.data.eventlog import read_events
from training.data.spool import Spool
from training.rows.labels import labels_from_events

T0 = 1_700_000_000_000


@pytest.fixture(autouse=True)
def tiny_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_mod, "BATCH_ROWS", 7)
    monkeypatch.setattr(eventlog, "BATCH_ROWS", 7)


def shuffled_records(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out: list[dict] = []
    for i in range(n):
        cid = f"c{rng.randrange(9)}"
        ts = T0 + rng.randrange(40) * 3_600_000  # many equal times: the sort must keep file order
        kind = rng.random()
        if kind < 0.7:
            rec = {"source": "interactions", "event_id": f"e{i}", "customer_id": cid, "ts": ts,
                   "type": rng.choice(["login", "export", "é-vue", "page_view"])}
            if rng.random() < 0.3:
                rec["value"] = rng.choice([0.1, 1e-7, 123456.789, -2.5, 3])
            if rng.random() < 0.3:
                rec["user_id"] = f"u{rng.randrange(4)}"
        elif kind < 0.85:
            rec = {"source": "tickets", "event_id": f"e{i}", "customer_id": cid, "ts": ts, "type": "opened",
                   "ticket_id": f"t{i}", "severity": rng.choice(["low", "HIGH"])}
        elif kind < 0.95:
            rec = {"source": "surveys", "event_id": f"e{i}", "customer_id": cid, "ts": ts, "type": "nps",
                   "score": rng.randrange(11)}
        else:
            rec = {"source": "outcomes", "event_id": f"e{i}", "customer_id": cid, "ts": ts,
                   "type": rng.choice(["churned", "renewed"])}
        rec["schema_version"] = 1
        out.append(rec)
    return out


def write(path: Path, records: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def oracle(records: list[dict], now_ms: int) -> list:
    events = []
    for rec in records:
        events.append(validate(rec["source"], rec, now_ms))
    return sorted(events, key=lambda ev: ev.ts_ms)  # stable: file order among equal times


def test_an_out_of_order_log_comes_back_sorted_and_identical(tmp_path: Path) -> None:
    records = shuffled_records(300, seed=3)
    log = read_events(write(tmp_path / "log.jsonl", records))
    expected = oracle(records, log.stats.now_ms)
    assert log.stats.skipped == 0 and log.stats.out_of_order > 0
    assert list(log.events) == expected
    assert list(log.events) == expected  # a second pass reads the same
    assert len(log.events) == log.stats.events == len(expected)
    assert (log.events.first_ms, log.events.last_ms) == (expected[0].ts_ms, max(e.ts_ms for e in expected))
    assert log.stats.by_source == {s: sum(1 for e in expected if e.source == s) for s in {e.source for e in expected}}


def test_what_is_counted_while_reading_equals_a_pass_over_the_events(tmp_path: Path) -> None:
    records = shuffled_records(200, seed=4)
    log = read_events(write(tmp_path / "log.jsonl", records))
    events = oracle(records, log.stats.now_ms)
    assert log.learn_spec(3) == learn(events, 3)
    assert labels_from_events(log.outcomes) == labels_from_events(events)


def test_duplicates_and_future_events_are_counted_on_a_spooled_log(tmp_path: Path) -> None:
    records = shuffled_records(120, seed=5)
    records += records[:4]  # re-sent: kept, counted as duplicate ids
    broken_clock = {"source": "interactions", "event_id": "far", "customer_id": "c1", "ts": T0 + 9000 * DAY_MS,
                    "type": "login", "schema_version": 1}
    log = read_events(write(tmp_path / "log.jsonl", records[:50] + [broken_clock] + records[50:]))
    assert log.stats.duplicate_ids == 4
    assert log.stats.invalid["ts_in_future"] == 1
    assert "far" in log.stats.examples["ts_in_future"][0]
    assert [e.event_id for e in log.events] == [e.event_id for e in oracle(records, log.stats.now_ms)]


def test_the_spool_is_removed_when_the_log_is_closed_or_dropped(tmp_path: Path) -> None:
    path = write(tmp_path / "log.jsonl", shuffled_records(30, seed=6))
    with read_events(path) as log:
        where = log.events._spool.dir
        assert where.is_dir()
    assert not where.exists()
    log = read_events(path)
    where = log.events._spool.dir
    del log
    gc.collect()
    assert not where.exists()


def test_spool_batches_are_bounded_and_sorting_is_stable(tmp_path: Path) -> None:
    schema = pa.schema([("k", pa.int64()), ("seq", pa.int64()), ("v", pa.string())])
    sp = Spool(schema)
    rng = random.Random(1)
    rows = [(rng.randrange(5), i, f"v{i}") for i in range(100)]
    for start in range(0, 100, 13):
        part = rows[start:start + 13]
        sp.append({"k": [r[0] for r in part], "seq": [r[1] for r in part], "v": [r[2] for r in part]})
    assert len(sp) == 100
    assert [b.num_rows <= 7 for b in sp.batches(batch_rows=7)] == [True] * 15
    assert sp.sort(["k", "seq"], where="k < 4") == sum(1 for r in rows if r[0] < 4)
    back = [v for b in sp.batches(["v"]) for v in b.column(0).to_pylist()]
    assert back == [r[2] for r in sorted(rows, key=lambda r: r[0]) if r[0] < 4]
    sp.close()
    assert not sp.dir.exists()


def test_a_log_cut_at_a_time_recounts_everything_over_the_kept_events(tmp_path: Path) -> None:
    records = shuffled_records(250, seed=8)
    log = read_events(write(tmp_path / "log.jsonl", records))
    t = T0 + 20 * 3_600_000
    kept = [e for e in oracle(records, log.stats.now_ms) if e.ts_ms <= t]
    cut = log.until(t)
    assert list(cut.events) == kept and len(cut.events) == cut.stats.events == len(kept)
    assert (cut.events.first_ms, cut.events.last_ms) == (kept[0].ts_ms, max(e.ts_ms for e in kept))
    assert cut.learn_spec(3) == learn(kept, 3) and labels_from_events(cut.outcomes) == labels_from_events(kept)
    assert cut.stats.by_source == {s: sum(1 for e in kept if e.source == s) for s in {e.source for e in kept}}
    assert len(list(log.events)) == log.stats.events > len(kept)  # the whole log is still there


def test_a_command_stopped_by_sigterm_leaves_no_spool_behind(tmp_path: Path) -> None:
    """The spool is in $TMPDIR while a command runs; SIGTERM (by pid) unwinds it like Ctrl-C."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from devtools import simulator

    log = tmp_path / "log.jsonl"
    simulator.write_jsonl(simulator.simulate(simulator.SimConfig(customers=300, days=150, start_ms=T0, seed=3)), log)
    spool_root = tmp_path / "tmp"
    spool_root.mkdir()
    env = {**os.environ, "TMPDIR": str(spool_root)}
    proc = subprocess.Popen([sys.executable, "-m", "apps.cli", "dataset", "--events", str(log),
                             "--out", str(tmp_path / "ds.parquet")], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not any(spool_root.glob("churnwatch-log-*")):
            assert proc.poll() is None, "the command ended before its spool was seen"
            assert time.monotonic() < deadline, "no spool appeared"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not any(spool_root.iterdir())
    assert not (tmp_path / "ds.parquet").exists()
