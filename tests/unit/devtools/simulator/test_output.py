"""The simulated output is pinned byte for byte: the same seed gives the same JSONL, whatever the code's layout.

Benches, tests and saved logs compare runs of the same config across versions; a refactoring that
shifted one random draw would silently change every one of them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from devtools.simulator import SOURCES, SimConfig, encode_value, ground_truth, simulate, to_log_line, write_jsonl

START = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PINNED = {
    "fixed": (SimConfig(customers=40, days=60, start_ms=START, seed=11, bad_rate=0.02, annual_share=0.4),
              "c47363ea5a7fcbb8afce14daac274295ea6ed67035b5bd3121d89779b6c0c342"),
    "foreign": (SimConfig(customers=40, days=60, start_ms=START, seed=11, vocabulary=12, bad_rate=0.02,
                          users_per_account=2.5),
                "eb6e4355327fa781ff585c110e2d27b32ab2a864dea942e365195894bdb8f141"),
}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("mode", sorted(PINNED))
def test_seeded_jsonl_is_byte_identical(mode: str, tmp_path: Path) -> None:
    cfg, want = PINNED[mode]
    counts = write_jsonl(simulate(cfg), tmp_path / "sim.jsonl")
    assert counts["malformed"] > 0
    assert _digest(tmp_path / "sim.jsonl") == want


def test_log_line_and_kafka_value_agree() -> None:
    """A valid record's log line is its Kafka value with the source folded in; a malformed one keeps its bytes."""
    cfg = PINNED["fixed"][0]
    seen_bad = False
    for rec in simulate(cfg):
        line = to_log_line(rec)
        assert line.endswith(b"\n") and b"\n" not in line[:-1]
        if isinstance(rec.value, bytes):
            seen_bad = True
            continue
        assert orjson.loads(line) == {"source": rec.source, **orjson.loads(encode_value(rec))}
    assert seen_bad


def test_ground_truth_is_pinned() -> None:
    truth = ground_truth(PINNED["fixed"][0])
    digest = hashlib.sha256(orjson.dumps(truth, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert digest == "2355f5d2e5d190e4e796f566c98529dabf2b7445420c4bcc86b04cd710480e89"


def test_write_jsonl_round_trips(tmp_path: Path) -> None:
    cfg = SimConfig(customers=40, days=30, start_ms=START, seed=1, bad_rate=0.05)
    recs = list(simulate(cfg))
    counts = write_jsonl(iter(recs), tmp_path / "log.jsonl")
    lines = (tmp_path / "log.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b""
    lines = lines[:-1]
    assert len(lines) == len(recs) == sum(counts.values())
    assert counts["malformed"] == sum(isinstance(r.value, bytes) for r in recs) > 0
    for src in SOURCES:
        assert counts[src] == sum(r.source == src and isinstance(r.value, dict) for r in recs)
    for rec, line in zip(recs, lines):
        if isinstance(rec.value, bytes):
            try:
                obj = orjson.loads(rec.value)
            except orjson.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):  # malformed but a JSON object: keeps its source for the reader
                assert orjson.loads(line) == {"source": rec.source, **obj}
            else:
                assert line == rec.value
        else:
            assert orjson.loads(line) == {"source": rec.source, **rec.value}
        assert to_log_line(rec) == line + b"\n"
    gz = write_jsonl(recs, str(tmp_path / "log.jsonl.gz"))
    assert gz == counts
