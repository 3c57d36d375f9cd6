"""Encoding records: the Kafka message value, the JSONL log line (source folded in) and whole log files."""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable

import orjson

from devtools.simulator.records import SOURCES, SimRecord


def encode_value(rec: SimRecord) -> bytes:
    """Kafka message value: the JSON event, or the malformed bytes untouched."""
    v = rec.value
    return v if isinstance(v, bytes) else orjson.dumps(v)


def to_log_line(rec: SimRecord) -> bytes:
    """One JSONL line *including* the trailing newline: ``{"source": ..., **value}`` or the raw bad bytes.

    The source is folded into the object so a single file can hold all topics and still be replayed per
    topic; malformed records keep their raw bytes so replaying the log reproduces the dead-letter traffic.
    """
    v = rec.value
    if isinstance(v, bytes):
        if b"\n" in v:
            raise ValueError("malformed record bytes must not contain a newline")
        try:  # a JSON object keeps its source, so the offline reader reports its real fault
            obj = orjson.loads(v)
        except orjson.JSONDecodeError:
            return v + b"\n"
        if isinstance(obj, dict) and "source" not in obj:
            return orjson.dumps({"source": rec.source, **obj}) + b"\n"
        return v + b"\n"
    return orjson.dumps({"source": rec.source, **v}) + b"\n"


def write_jsonl(records: Iterable[SimRecord], path: str | os.PathLike[str]) -> dict[str, int]:
    """Write an event log and return counts per source plus ``"malformed"``; ``.gz`` paths are gzipped."""
    counts: dict[str, int] = {s: 0 for s in SOURCES}
    counts["malformed"] = 0
    p = os.fspath(path)
    opener = gzip.open if p.endswith(".gz") else open
    chunk: list[bytes] = []
    with opener(p, "wb") as f:
        for rec in records:
            chunk.append(to_log_line(rec))
            if isinstance(rec.value, bytes):
                counts["malformed"] += 1
            else:
                counts[rec.source] = counts.get(rec.source, 0) + 1
            if len(chunk) >= 4096:
                f.write(b"".join(chunk))
                chunk.clear()
        if chunk:
            f.write(b"".join(chunk))
    return counts
