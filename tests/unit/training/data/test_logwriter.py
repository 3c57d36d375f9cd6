"""Unit tests for training.data.logwriter: the format follows the name, and what is written reads back."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.data.eventlog import read_events
from training.data.logwriter import log_format, write_table_log
from training.data.readers import LogFormatError

ROWS = [
    {"source": "customers", "event_id": "p1", "customer_id": "c1", "ts": "2024-01-01T00:00:00Z", "type": "profile",
     "schema_version": 1, "tier": "vip", "plan": "pro", "mrr": 49.5, "signup_ts": "2023-06-01T00:00:00Z"},
    {"source": "interactions", "event_id": "i1", "customer_id": "c1", "ts": "2024-01-02T10:00:00Z", "type": "login",
     "schema_version": 1, "duration_s": 12.0, "feature": 'a "quoted", comma'},
    {"source": "surveys", "event_id": "s1", "customer_id": "c1", "ts": "2024-01-03T10:00:00Z", "type": "nps",
     "schema_version": 1, "score": 9},
    {"source": "tickets", "event_id": "t1", "customer_id": "c1", "ts": "2024-01-04T10:00:00Z", "type": "opened",
     "schema_version": 1, "ticket_id": "T-1", "severity": "high", "category": "billing"},
]


@pytest.mark.parametrize(("name", "fmt"), [("a.jsonl", "jsonl"), ("a.JSONL.GZ", "jsonl"), ("a.csv", "csv"),
                                           ("a.csv.gz", "csv"), ("a.parquet", "parquet")])
def test_log_format_from_the_name(name, fmt):
    assert log_format(name) == fmt


@pytest.mark.parametrize("name", ["a.txt", "a.tsv", "a.parquet.gz", "a", "a.json"])
def test_other_names_are_refused_with_the_list(name):
    with pytest.raises(LogFormatError, match=r"use one of \.jsonl, \.jsonl\.gz, \.csv, \.csv\.gz, \.parquet"):
        log_format(name)


def _events(path: Path) -> list[tuple]:
    with read_events(path) as log:
        assert log.stats.skipped == 0, log.stats.to_json()
        return [(e.source, e.event_id, e.customer_id, e.ts_ms, e.type, e.data) for e in log.events]


@pytest.mark.parametrize("name", ["log.csv", "log.csv.gz", "log.parquet"])
def test_a_table_log_reads_back_to_the_same_events_as_jsonl(name, tmp_path):
    import orjson

    jsonl = tmp_path / "log.jsonl"
    jsonl.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in ROWS))
    calls: list = []
    counts = write_table_log(iter(ROWS), tmp_path / name, progress=lambda *a: calls.append(a))
    assert dict(counts) == {"customers": 1, "interactions": 1, "surveys": 1, "tickets": 1}
    assert _events(tmp_path / name) == _events(jsonl)
    assert calls[-1] == (f"writing {name}", len(ROWS), len(ROWS))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["log.jsonl", name])  # no temporary file left


def test_a_csv_log_has_the_leading_columns_first(tmp_path):
    write_table_log(ROWS, tmp_path / "log.csv")
    header = (tmp_path / "log.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == ["source", "event_id", "customer_id", "ts", "type", "schema_version"]
    assert header[6:] == sorted(header[6:])
