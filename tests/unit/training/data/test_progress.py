"""Unit tests for training.data.progress and the readers that report through it: a long read tells how far
it got, in order, ending at the file's whole size (or row count); without a callback nothing changes."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from devtools import simulator as sim
from training.data import progress
from training.data.eventlog import read_events
from training.data.foreign.convert import convert
from training.data.foreign.mapping import ForeignMapping

T0 = 1_704_067_200_000  # 2024-01-01


@pytest.fixture(scope="module")
def log(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("log") / "events.jsonl"
    sim.write_jsonl(sim.simulate(sim.SimConfig(customers=60, days=60, start_ms=T0, seed=4)), path)
    return path


def _calls(monkeypatch) -> list:
    monkeypatch.setattr(progress, "INTERVAL_S", 0.0)  # every chunk, so a small file reports more than once
    return []


def _check(calls: list, label: str, total: int) -> None:
    mine = [(d, t) for lab, d, t in calls if lab == label]
    assert mine, calls
    assert all(t == total for _, t in mine)
    done = [d for d, _ in mine]
    assert done == sorted(done) and done[-1] == total


@pytest.mark.parametrize("gz", [False, True])
def test_reading_a_jsonl_log_reports_bytes_read_up_to_the_file_size(gz, log, tmp_path, monkeypatch):
    calls = _calls(monkeypatch)
    path = log
    if gz:
        path = tmp_path / "events.jsonl.gz"
        path.write_bytes(gzip.compress(log.read_bytes()))
    reported = read_events(path, progress=lambda *a: calls.append(a))
    plain = read_events(path)
    assert [e.event_id for e in reported.events] == [e.event_id for e in plain.events]
    _check(calls, f"reading {path.name}", path.stat().st_size)  # the compressed size of a .gz


def test_reading_a_parquet_log_reports_rows(log, tmp_path, monkeypatch):
    from training.data.logwriter import write_table_log

    path = tmp_path / "events.parquet"
    rows = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    write_table_log(rows, path)
    calls = _calls(monkeypatch)
    read_events(path, progress=lambda *a: calls.append(a))
    _check(calls, "reading events.parquet", len(rows))


def test_an_out_of_order_log_reports_its_sort(log, tmp_path, monkeypatch):
    lines = log.read_bytes().splitlines(keepends=True)
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_bytes(b"".join(reversed(lines)))
    calls = _calls(monkeypatch)
    read_events(shuffled, progress=lambda *a: calls.append(a))
    assert [c for c in calls if c[0] == "sorting events by time"] == [("sorting events by time", 0, 1),
                                                                       ("sorting events by time", 1, 1)]


def test_a_conversion_reports_the_reads_of_its_files(tmp_path, monkeypatch):
    usage = tmp_path / "usage.csv"
    usage.write_text("account_id,ts,event\n" + "".join(
        f"a{i % 7},2024-0{1 + i % 6}-{1 + i % 27:02d},{'login' if i % 3 else 'post'}\n" for i in range(400)))
    calls = _calls(monkeypatch)
    convert(usage, None, tmp_path / "out.jsonl", ForeignMapping(inactive_days=30),
            progress=lambda *a: calls.append(a))
    _check(calls, "reading usage.csv", usage.stat().st_size)


def test_without_a_callback_files_open_as_before(log):
    assert not progress.active()
    with progress.open_binary(log) as fh:
        assert type(fh).__name__ == "BufferedReader" and fh.read(1) == b"{"


def test_reporting_is_scoped_to_its_block(log):
    calls: list = []
    with progress.reporting(lambda *a: calls.append(a)):
        assert progress.active()
        with progress.open_binary(log) as fh:
            fh.read()
    assert not progress.active()
    assert calls[-1] == (f"reading {log.name}", log.stat().st_size, log.stat().st_size)
    before = len(calls)
    with progress.open_binary(log) as fh:
        fh.read()
    assert len(calls) == before  # nothing more after the block
