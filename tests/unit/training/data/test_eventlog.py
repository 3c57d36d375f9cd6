"""Reading event logs: every record validated by the stream's contract, bad ones counted, never fatal."""

from __future__ import annotations

import gzip
import time
from pathlib import Path
from typing import Any, Iterator

import orjson
import pytest

from pipeline.core.contract import DAY_MS, InvalidEvent, Limits
from training.data.eventlog import plausible_now, read_events, register_reader, reader_for

T0 = 1_699_920_000_000  # 2023-11-14T00:00:00Z


def rec(source: str, cid: str, ts: Any, typ: str, n: int, **fields: Any) -> dict[str, Any]:
    return {"source": source, "event_id": f"{cid}-{n}", "customer_id": cid, "ts": ts, "type": typ,
            "schema_version": 1, **fields}


def write_lines(path: Path, lines: list[bytes | dict]) -> Path:
    with open(path, "wb") as fh:
        for line in lines:
            fh.write((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n")
    return path


def good_records() -> list[dict]:
    return [
        rec("customers", "a", T0, "profile", 1, tier="VIP", plan="pro", mrr=100.0),
        rec("interactions", "a", T0 + 1000, "login", 2, duration_s=30),
        rec("tickets", "a", "2023-11-14T01:00:00Z", "opened", 3, ticket_id="t1", severity="HIGH"),
        rec("surveys", "a", T0 + 2 * 3_600_000, "nps", 4, score=3),
        rec("outcomes", "a", T0 + 3 * 3_600_000, "churned", 5),
    ]


def test_reads_every_source_into_validated_events(tmp_path: Path) -> None:
    log = read_events(write_lines(tmp_path / "log.jsonl", good_records()))
    events = list(log.events)
    assert [e.source for e in events] == ["customers", "interactions", "tickets", "surveys", "outcomes"]
    assert events[2].ts_ms == T0 + 3_600_000  # ISO parsed to epoch ms
    assert events[2].data["severity"] == "high"  # normalised by the contract
    assert events[0].data["tier"] == "vip"
    assert log.stats.events == 5 and log.stats.skipped == 0 and log.stats.records == 5
    assert log.start_ms == T0 and log.end_ms == T0 + 3 * 3_600_000
    assert dict(log.stats.by_source) == {s: 1 for s in ("customers", "interactions", "tickets", "surveys", "outcomes")}


def test_bad_records_are_skipped_and_counted_by_reason(tmp_path: Path) -> None:
    bad: list[bytes | dict] = [
        b"{not json",
        b"[1, 2, 3]",
        {k: v for k, v in rec("interactions", "b", T0, "login", 1).items() if k != "source"},
        rec("payments", "b", T0, "charge", 2),
        {**rec("interactions", "b", T0, "login", 3), "schema_version": 99},
        rec("surveys", "b", T0, "nps", 4, score=11),
        rec("tickets", "b", T0, "merged", 5, ticket_id="x"),
        rec("interactions", "b", "1970-01-01T00:00:00Z", "login", 6),
        rec("interactions", "b", "yesterday", "login", 7),
        rec("interactions", "b", T0, "login", 8, feature="x" * 70_000),
        {**rec("interactions", "b", T0, "login", 9), "customer_id": None},
    ]
    log = read_events(write_lines(tmp_path / "log.jsonl", good_records() + bad + [b"", b"   "]))
    assert log.stats.events == 5
    assert log.stats.records == 5 + len(bad)  # blank lines are not records
    assert dict(log.stats.invalid) == {
        "not_json": 1, "not_object": 1, "missing_field": 2, "unknown_source": 1, "unsupported_schema": 1,
        "bad_value": 1, "unknown_type": 1, "ts_too_old": 1, "bad_timestamp": 1, "too_large": 1,
    }
    assert log.stats.skipped == len(bad)
    assert all(len(v) <= 3 for v in log.stats.examples.values())
    assert "source is required" in " ".join(log.stats.examples["missing_field"])


def test_unsorted_log_is_sorted_stably(tmp_path: Path) -> None:
    records = [
        rec("interactions", "a", T0 + 5000, "login", 1),
        rec("interactions", "a", T0 + 1000, "login", 2),
        rec("interactions", "b", T0 + 3000, "login", 3),
        rec("interactions", "c", T0 + 3000, "page_view", 4),
        rec("interactions", "d", T0 + 3000, "feature_use", 5),
        rec("interactions", "a", T0, "login", 6),
    ]
    log = read_events(write_lines(tmp_path / "log.jsonl", records))
    assert [e.ts_ms for e in log.events] == sorted(e.ts_ms for e in log.events)
    # equal timestamps keep file order
    assert [e.event_id for e in log.events if e.ts_ms == T0 + 3000] == ["b-3", "c-4", "d-5"]
    assert log.stats.out_of_order == 5  # every record behind the newest one seen before it


def test_absurd_future_timestamp_is_rejected_without_moving_the_log_end(tmp_path: Path) -> None:
    records = [rec("interactions", "a", T0 + i * 3_600_000, "login", i) for i in range(200)]
    records.insert(50, rec("interactions", "a", "2100-01-01T00:00:00.000Z", "login", 999))
    log = read_events(write_lines(tmp_path / "log.jsonl", records))
    assert log.stats.invalid == {"ts_in_future": 1}
    assert log.end_ms == T0 + 199 * 3_600_000
    assert log.stats.events == 200


def test_a_log_in_the_future_is_history_too(tmp_path: Path) -> None:
    """Simulated logs may run past today's date: the newest event, not the wall clock, is "now"."""
    start = (int(time.time() * 1000) // DAY_MS + 730) * DAY_MS
    records = [rec("interactions", "a", start + i * DAY_MS, "login", i) for i in range(60)]
    log = read_events(write_lines(tmp_path / "log.jsonl", records))
    assert log.stats.events == 60 and log.stats.skipped == 0
    assert log.stats.now_ms == start + 59 * DAY_MS


def test_explicit_now_rejects_events_after_it(tmp_path: Path) -> None:
    records = [rec("interactions", "a", T0 + i * DAY_MS, "login", i) for i in range(10)]
    log = read_events(write_lines(tmp_path / "log.jsonl", records), now_ms=T0 + 4 * DAY_MS)
    assert log.stats.events == 6  # days 0..5: the contract allows one day ahead of now
    assert log.stats.invalid == {"ts_in_future": 4}


def test_plausible_now_ignores_a_lone_outlier_but_not_the_bulk() -> None:
    wall = T0
    ts = [T0 - DAY_MS * i for i in range(1000)]
    assert plausible_now(ts, wall) == wall
    far = 4_102_444_800_000  # 2100-01-01
    assert plausible_now(ts + [far] * 5, wall) == wall
    future = [T0 + 400 * DAY_MS + i * 3_600_000 for i in range(500)]
    assert plausible_now(future, wall) == max(future)
    assert plausible_now([], wall) == wall
    assert plausible_now([T0 + 5 * DAY_MS], wall) == T0 + 5 * DAY_MS


def test_duplicates_are_counted_and_kept_like_the_stream(tmp_path: Path) -> None:
    records = good_records()
    log = read_events(write_lines(tmp_path / "log.jsonl", records + [records[1]]))
    assert log.stats.duplicate_ids == 1
    assert log.stats.events == 6


def test_gzip_logs(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b"".join(orjson.dumps(r) + b"\n" for r in good_records()))
    assert read_events(path).stats.events == 5


def test_unknown_format_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "log.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(ValueError, match="unknown event-log format"):
        read_events(path)


def test_other_formats_plug_in_as_record_readers(tmp_path: Path) -> None:
    """A CSV/Parquet reader only has to yield dicts with a 'source' key (or InvalidEvent values)."""

    def read_tsv(path: Path, limits: Limits) -> Iterator[dict | InvalidEvent]:
        lines = path.read_text().splitlines()
        header = lines[0].split("\t")
        for line in lines[1:]:
            row = dict(zip(header, line.split("\t")))
            if len(row) != len(header):
                yield InvalidEvent("missing_field", "short row")
                continue
            row["schema_version"] = int(row["schema_version"])
            yield row

    register_reader(".test-tsv", read_tsv)
    path = tmp_path / "log.test-tsv"
    path.write_text("source\tevent_id\tcustomer_id\tts\ttype\tschema_version\n"
                    "interactions\te1\ta\t2023-11-14T00:00:00Z\tlogin\t1\n"
                    "interactions\te2\ta\n")
    assert reader_for(path) is read_tsv
    log = read_events(path)
    assert log.stats.events == 1 and log.stats.invalid == {"missing_field": 1}


def test_simulator_log_with_malformed_records_never_crashes(tmp_path: Path) -> None:
    sim = pytest.importorskip("devtools.simulator")
    cfg = sim.SimConfig(customers=40, days=30, start_ms=T0, seed=3, bad_rate=0.05)
    path = tmp_path / "sim.jsonl"
    counts = sim.write_jsonl(sim.simulate(cfg), path)
    log = read_events(path)
    assert log.stats.records == sum(counts.values())
    assert log.stats.skipped == counts["malformed"] > 0
    assert log.stats.events == sum(v for k, v in counts.items() if k != "malformed")
    assert [e.ts_ms for e in log.events] == sorted(e.ts_ms for e in log.events)
    for source in sim.SOURCES:
        assert log.stats.by_source[source] == counts[source]
