"""CSV and Parquet event logs: the same events as JSONL, cells coerced sensibly, bad rows counted, never
fatal; whole-file problems fail in one line naming the file and column."""

from __future__ import annotations

import csv
import gzip
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from devtools import simulator
from training.data.eventlog import read_events, reader_for
from training.data.export import note_kinds, write_parquet
from training.data.readers import LogFormatError, coerce_cell, read_table_records

T0 = 1_699_920_000_000  # 2023-11-14T00:00:00Z


def row(source: str, cid: str, ts: Any, typ: str, n: int, **fields: Any) -> dict[str, Any]:
    return {"source": source, "event_id": f"{cid}-{n}", "customer_id": cid, "ts": ts, "type": typ,
            "schema_version": 1, **fields}


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_csv(path: Path, rows: list[dict[str, Any]], delimiter: str = ",", columns: list[str] | None = None,
              bom: bool = False) -> Path:
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", newline="", encoding="utf-8-sig" if bom else "utf-8") as fh:  # type: ignore[operator]
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow(columns)
        for r in rows:
            w.writerow([cell(r.get(c)) for c in columns])
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def tuples(log: Any) -> list[tuple]:
    return [(e.source, e.event_id, e.customer_id, e.ts_ms, e.type, e.data) for e in log.events]


def every_source() -> list[dict[str, Any]]:
    return [
        row("customers", "a", T0, "profile", 1, tier="VIP", plan="pro", mrr=100.5, signup_ts="2023-01-01T00:00:00Z"),
        row("interactions", "a", T0 + 1000, "login", 2, duration_s=30),
        row("interactions", "a", T0 + 2000, "help_view", 3, feature="export", success=False),
        row("interactions", "a", T0 + 3000, "custom_thing", 4),
        row("tickets", "a", "2023-11-14T01:00:00Z", "opened", 5, ticket_id="t1", severity="HIGH",
            sla_due="2023-11-15T00:00:00Z"),
        row("tickets", "a", "2023-11-14T02:00:00Z", "agent_reply", 6, ticket_id="t1"),
        row("surveys", "a", T0 + 3 * 3_600_000, "nps", 7, score=3, comment="slow, buggy"),
        row("surveys", "a", T0 + 4 * 3_600_000, "csat", 8, score=4.5),
        row("outcomes", "a", T0 + 5 * 3_600_000, "churned", 9, note='said "bye"'),
    ]


# ---- CSV ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,delimiter", [("log.csv", ","), ("log.csv.gz", ","), ("log.tsv", "\t"),
                                            ("semi.csv", ";")])
def test_csv_gives_the_same_events_as_jsonl(tmp_path: Path, name: str, delimiter: str) -> None:
    rows = every_source()
    expected = read_events(write_jsonl(tmp_path / "log.jsonl", rows))
    log = read_events(write_csv(tmp_path / name, rows, delimiter))
    assert tuples(log) == tuples(expected)
    assert log.stats.skipped == 0 and log.stats.events == len(rows)
    assert list(log.events)[0].data == {"tier": "vip", "plan": "pro", "mrr": 100.5, "signup_ms": 1_672_531_200_000}
    assert list(log.events)[2].data == {"feature": "export", "success": False}  # "false" -> False


def test_cells_are_coerced_sensibly(tmp_path: Path) -> None:
    columns = ["source", "event_id", "customer_id", "ts", "type", "schema_version", "success", "score", "duration_s"]
    rows = [
        row("interactions", "a", str(T0), "help_view", 1, success="0", duration_s="1.5"),
        row("interactions", "a", "2023-11-14 00:00:02", "help_view", 2, success="TRUE"),
        row("interactions", "a", f"{T0 + 3000}.0", "help_view", 3, success="1"),
        row("surveys", "a", T0, "nps", 4, score=" 7 "),
    ]
    log = read_events(write_csv(tmp_path / "log.csv", rows, columns=columns, bom=True))  # BOM: Excel exports
    assert log.stats.skipped == 0
    by_id = {e.event_id: e for e in log.events}
    assert by_id["a-1"].ts_ms == T0 and by_id["a-1"].data == {"success": False, "duration_s": 1.5}
    assert by_id["a-2"].ts_ms == T0 + 2000 and by_id["a-2"].data == {"success": True}  # ISO with a space
    assert by_id["a-3"].ts_ms == T0 + 3000 and by_id["a-3"].data == {"success": True}
    assert by_id["a-4"].data == {"score": 7.0}


def test_empty_cells_are_absent(tmp_path: Path) -> None:
    rows = every_source()  # a wide table: most cells of most rows are empty
    path = write_csv(tmp_path / "log.csv", rows)
    records = list(read_table_records(path))
    assert records[1] == {"source": "interactions", "event_id": "a-2", "customer_id": "a", "ts": T0 + 1000,
                          "type": "login", "schema_version": 1, "duration_s": 30}


def test_bad_rows_are_counted_by_reason_and_never_fatal(tmp_path: Path) -> None:
    good = every_source()
    bad = [
        row("surveys", "b", T0, "nps", 1, score="abc"),                 # wrong_type
        row("interactions", "b", T0, "help_view", 2, success="maybe"),  # wrong_type
        row("interactions", "b", "yesterday", "login", 3),               # bad_timestamp
        row("payments", "b", T0, "charge", 4),                           # unknown_source
        row("interactions", "", T0, "login", 5),                         # missing_field (empty = absent)
        row("surveys", "b", T0, "nps", 6, score=11),                     # bad_value
        row("interactions", "b", T0, "login", 7, schema_version=2),      # unsupported_schema
        row("interactions", "b", T0, "login", 8, feature="x" * 70_000),  # too_large
    ]
    path = write_csv(tmp_path / "log.csv", good + bad)
    with open(path, "a", newline="") as fh:
        fh.write("interactions,b-9,b,1699920000000,login,1" + ",x" * 30 + "\n")  # more cells than columns
        fh.write("\n\n")  # blank lines are not rows
    log = read_events(path)
    assert log.stats.events == len(good)
    assert dict(log.stats.invalid) == {"wrong_type": 2, "bad_timestamp": 1, "unknown_source": 1, "missing_field": 1,
                                       "bad_value": 1, "unsupported_schema": 1, "too_large": 1, "not_object": 1}
    assert "fields, header has" in log.stats.examples["not_object"][0]


def test_a_field_over_the_csv_module_limit_is_one_bad_row(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "log.csv", every_source())
    with open(path, "a", newline="") as fh:
        fh.write('interactions,b-1,b,1699920000000,login,1,"' + "x" * 200_000 + '"\n')
    with open(path, "a", newline="") as fh:
        csv.writer(fh).writerow(["interactions", "b-2", "b", str(T0), "login", "1"])
    log = read_events(path)
    assert log.stats.invalid == {"too_large": 1}
    assert log.stats.events == len(every_source()) + 1


def test_missing_required_column_names_file_and_column(tmp_path: Path) -> None:
    rows = [{k: v for k, v in r.items() if k != "schema_version"} for r in every_source()]
    path = write_csv(tmp_path / "log.csv", rows)
    with pytest.raises(LogFormatError, match=r"log\.csv: missing column 'schema_version'"):
        read_events(path)


@pytest.mark.parametrize("content,match", [
    (b"", "empty file"),
    (b"source,,ts\n", "empty column name"),
    (b"source,ts,ts\n", "repeats column 'ts'"),
])
def test_broken_headers_fail_in_one_line(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes(content)
    with pytest.raises(LogFormatError, match=match) as info:
        read_events(path)
    assert "\n" not in str(info.value) and "log.csv" in str(info.value)


def test_a_file_that_is_not_gzip_fails_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "log.csv.gz"
    path.write_bytes(b"source,event_id\n")
    with pytest.raises(LogFormatError, match="not a readable gzip file"):
        read_events(path)


def test_reader_is_chosen_by_suffix() -> None:
    for name in ("x.csv", "x.CSV.gz", "x.tsv", "x.parquet", "x.pq"):
        assert reader_for(Path(name)) is read_table_records
    with pytest.raises(ValueError):
        reader_for(Path("x.xlsx"))


# ---- Parquet ------------------------------------------------------------------------------------
def test_parquet_with_native_types(tmp_path: Path) -> None:
    """What pandas/Spark write: timestamp columns, integer ids, NaN for missing floats, real booleans."""
    t = datetime(2023, 11, 14, tzinfo=timezone.utc)
    table = pa.table({
        "source": ["customers", "interactions", "interactions", "surveys"],
        "event_id": [1, 2, 3, 4],
        "customer_id": [1001, 1001, 1001, 1002],
        "ts": pa.array([t, t, t, t], type=pa.timestamp("ms", tz="UTC")),
        "type": ["profile", "help_view", "login", "nps"],
        "schema_version": [1, 1, 1, 1],
        "success": [None, False, None, None],
        "score": [float("nan"), float("nan"), float("nan"), 9.0],
        "signup_ts": pa.array([datetime(2023, 1, 1).date(), None, None, None], type=pa.date32()),
        "tier": ["vip", None, None, None],
    })
    path = tmp_path / "log.parquet"
    pq.write_table(table, path)
    log = read_events(path)
    assert log.stats.skipped == 0
    assert [(e.event_id, e.customer_id, e.ts_ms, e.data) for e in log.events] == [
        ("1", "1001", T0, {"tier": "vip", "signup_ms": 1_672_531_200_000}),
        ("2", "1001", T0, {"success": False}),
        ("3", "1001", T0, {}),
        ("4", "1002", T0, {"score": 9.0}),
    ]


def test_parquet_bad_rows_are_counted(tmp_path: Path) -> None:
    table = pa.table({"source": ["surveys", "surveys"], "event_id": ["a", "b"], "customer_id": ["c", "c"],
                      "ts": [T0, T0], "type": ["nps", "nps"], "schema_version": [1, 1], "score": ["7", "lots"]})
    pq.write_table(table, tmp_path / "log.parquet")
    log = read_events(tmp_path / "log.parquet")
    assert log.stats.events == 1 and log.stats.invalid == {"wrong_type": 1}


def test_not_a_parquet_file_and_missing_columns_fail_in_one_line(tmp_path: Path) -> None:
    bogus = tmp_path / "log.parquet"
    bogus.write_text("source,event_id\n")
    with pytest.raises(LogFormatError, match="log.parquet: not a readable Parquet file"):
        read_events(bogus)
    pq.write_table(pa.table({"source": ["x"], "ts": [T0]}), tmp_path / "narrow.parquet")
    with pytest.raises(LogFormatError, match="narrow.parquet: missing columns 'event_id', 'customer_id'"):
        read_events(tmp_path / "narrow.parquet")


# ---- a whole simulated history in every format --------------------------------------------------
@pytest.mark.parametrize("vocabulary", [0, 12])
def test_simulated_history_reads_the_same_in_every_format(tmp_path: Path, vocabulary: int) -> None:
    """Also a foreign product's log, whose interactions carry user_id and value and profiles a term."""
    jsonl = tmp_path / "sim.jsonl"
    simulator.write_jsonl(simulator.simulate(simulator.SimConfig(customers=40, days=60, seed=3, bad_rate=0.01,
                                                                 vocabulary=vocabulary)), jsonl)
    lines = [line for line in jsonl.read_bytes().splitlines() if line.strip()]
    objects = []
    for line in lines:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            objects.append(obj)
    expected = read_events(jsonl)
    if vocabulary:
        data = [e.data for e in expected.events]
        assert any("user_id" in d for d in data) and any("value" in d for d in data) and any("term" in d for d in data)

    write_csv(tmp_path / "sim.csv.gz", objects)
    seen: dict[str, set[str]] = {}
    for o in objects:
        note_kinds(o, seen)
    write_parquet([orjson.dumps(o).decode() for o in objects], seen, tmp_path / "sim.parquet")
    for name in ("sim.csv.gz", "sim.parquet"):
        log = read_events(tmp_path / name)
        assert tuples(log) == tuples(expected), name
        not_objects = expected.stats.invalid.get("not_json", 0) + expected.stats.invalid.get("not_object", 0)
        assert log.stats.skipped == expected.stats.skipped - not_objects, name


def test_coerce_cell_leaves_what_it_cannot_judge_to_the_contract() -> None:
    assert coerce_cell("score", "n/a") == "n/a"
    assert coerce_cell("success", "maybe") == "maybe"
    assert coerce_cell("success", 1) is True
    assert coerce_cell("customer_id", 42) == "42"
    assert coerce_cell("customer_id", 42.0) == "42"
    assert coerce_cell("ts", "2023-11-14T00:00:00Z") == "2023-11-14T00:00:00Z"
    assert coerce_cell("ts", "1699920000") == 1_699_920_000
    assert coerce_cell("comment", "007") == "007"  # free text stays text
    assert coerce_cell("unknown_field", "12") == "12"
