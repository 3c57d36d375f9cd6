"""``export_topics`` against the real embedded broker: what is on the input topics comes back, event for
event, through the same reader training uses — as JSONL and as Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.config.settings import Settings
from pipeline.core.contract import DAY_MS, validate
from training.data.eventlog import read_events
from training.data.export import ExportError, export_topics

pytestmark = pytest.mark.integration

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def ev(cid: str, n: int, ts: Any, typ: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": f"{cid}-{n}", "customer_id": cid, "ts": ts, "type": typ, "schema_version": 1, **fields}


def produced() -> list[tuple[str, dict[str, Any] | bytes]]:
    """Every source, several customers (so both partitions are used), times out of production order,
    both time encodings, and input the worker would dead-letter."""
    out: list[tuple[str, dict[str, Any] | bytes]] = []
    for i in range(12):
        cid = f"c{i:02d}"
        base = T0 + i * 3_600_000
        out += [
            ("customers", ev(cid, 1, base, "profile", tier="vip" if i % 4 == 0 else "standard", plan="pro",
                             mrr=99.5 + i, signup_ts="2025-06-01T00:00:00Z")),
            ("interactions", ev(cid, 2, base + 5 * DAY_MS, "login", duration_s=30)),
            ("interactions", ev(cid, 3, base + 2 * DAY_MS, "help_view", feature="export", success=False)),
            ("interactions", ev(cid, 4, "2026-01-03T10:00:00Z", "custom_thing")),
            ("tickets", ev(cid, 5, base + DAY_MS, "opened", ticket_id=f"t{i}", severity="high",
                           sla_due="2026-01-05T00:00:00Z")),
            ("surveys", ev(cid, 6, base + 3 * DAY_MS, "nps", score=i % 11, comment="ok")),
        ]
        if i % 3 == 0:
            out.append(("outcomes", ev(cid, 7, base + 20 * DAY_MS, "churned", note="left")))
    out += [
        ("interactions", b"{not json"),
        ("interactions", b"[1, 2]"),
        ("surveys", ev("c01", 99, T0, "nps", score=42)),  # valid JSON, breaks the contract
    ]
    return out


def expected_events(records: list[tuple[str, dict[str, Any] | bytes]]) -> list[tuple]:
    keep = []
    for source, value in records:
        if isinstance(value, bytes):
            continue
        try:
            e = validate(source, value, T0 + 400 * DAY_MS)
        except ValueError:
            continue
        keep.append((e.source, e.event_id, e.customer_id, e.ts_ms, e.type, e.data))
    return sorted(keep, key=lambda t: (t[3], t[1]))


def as_tuples(events: list) -> list[tuple]:
    return sorted(((e.source, e.event_id, e.customer_id, e.ts_ms, e.type, e.data) for e in events),
                  key=lambda t: (t[3], t[1]))


@pytest.mark.parametrize("name", ["history.jsonl", "history.parquet"])
def test_export_reads_back_as_the_same_events(settings: Settings, sender: Any, tmp_path: Path, name: str) -> None:
    records = produced()
    sender.send_all(records)
    out = tmp_path / name
    stats = export_topics(settings, out)

    n_objects = sum(1 for _, v in records if isinstance(v, dict))
    assert stats.written == n_objects
    assert stats.skipped == {"not_json": 1, "not_object": 1}
    assert stats.missing_topics == []
    assert sum(sum(p.values()) for p in stats.end_offsets.values()) == len(records)
    assert stats.format == name.rsplit(".", 1)[1]

    log = read_events(out)
    assert as_tuples(log.events) == expected_events(records)
    assert log.stats.invalid == {"bad_value": 1}  # the nps 42, judged by the reader like the worker would
    assert log.stats.out_of_order == 0  # the export is already in event-time order


def test_export_rows_carry_their_kafka_position(settings: Settings, sender: Any, tmp_path: Path) -> None:
    records = produced()
    sender.send_all(records)
    out = tmp_path / "history.jsonl.gz"
    export_topics(settings, out)
    import gzip

    rows = [orjson.loads(line) for line in gzip.open(out).read().splitlines()]
    assert {r["_topic"] for r in rows} == {settings.topic(s) for s in
                                           ("customers", "interactions", "tickets", "surveys", "outcomes")}
    assert {r["_partition"] for r in rows} == {0, 1}
    positions = [(r["_topic"], r["_partition"], r["_offset"]) for r in rows]
    assert len(set(positions)) == len(positions)
    assert all(r["source"] == r["_topic"].removeprefix(settings.topic_prefix) for r in rows)


def test_export_of_empty_topics_and_bad_names(settings: Settings, tmp_path: Path) -> None:
    stats = export_topics(settings, tmp_path / "empty.jsonl")
    assert stats.written == 0 and (tmp_path / "empty.jsonl").read_bytes() == b""
    with pytest.raises(ExportError, match="history.csv"):
        export_topics(settings, tmp_path / "history.csv")
    with pytest.raises(ExportError, match="parquet"):
        export_topics(settings, tmp_path / "history.jsonl", fmt="parquet")
    with pytest.raises(ExportError, match="none of the input topics"):
        export_topics(settings.with_(topic_prefix="nothing-here."), tmp_path / "x.jsonl")


def test_export_command_then_train_on_the_dump(settings: Settings, sender: Any, tmp_path: Path) -> None:
    """The documented path from a running system to a model: ``churnwatch export`` then ``churnwatch
    train --events`` on the dump, both as subprocesses configured only by the environment."""
    import subprocess
    import sys

    from tests.integration.conftest import REPO, _env
    from tests.integration.scenarios import deteriorating, healthy

    start = T0 - 200 * DAY_MS
    records: list[tuple[str, Any]] = []
    for i in range(60):
        if i % 3 == 0:  # churners leave spread over the log, so every time period has some
            gone = 60 + (i * 7) % 120
            records += deteriorating(f"d{i:02d}", start, gone, healthy_days=gone - 30)
            records.append(("outcomes", ev(f"d{i:02d}", 999, start + gone * DAY_MS, "churned")))
        else:
            records += healthy(f"h{i:02d}", start + (i % 7) * DAY_MS, 190)
    sender.send_all(records)
    dump = tmp_path / "dump.parquet"
    env = _env(settings, {"CHURNWATCH_MODELS_DIR": str(tmp_path / "models")})
    done = subprocess.run([sys.executable, "-m", "apps.cli", "export", "--out", str(dump)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"exported {len(records):,} records" in done.stdout
    done = subprocess.run([sys.executable, "-m", "apps.cli", "train", "--events", str(dump), "--quiet",
                           "--horizon-days", "14"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "promoted" in done.stdout and (tmp_path / "models" / "CURRENT").is_file()
