"""Unit tests for apps.cli.simulate (``churnwatch simulate``): its flags, the formats of --out, the progress bar."""

from __future__ import annotations

import sys

import pytest

from pipeline.core.contract import parse_ts
from tests.unit.apps.cli.harness import assert_one_line_error, on_terminal, run


def test_valid_arguments_reach_the_command(calls, capsys):
    code, _, _ = run(["simulate", "--customers", "10", "--days", "5", "--bad-rate", "0.1", "--churn-rate", "1",
                      "--start", "2024-01-01T00:00:00+01:00", "--seed", "3", "--out", "log.jsonl"], capsys)
    assert code == 0
    ((name, args),) = calls
    assert name == "cmd_simulate"
    assert (args.customers, args.days, args.bad_rate, args.churn_rate, args.seed, args.out) == (10, 5, 0.1, 1.0, 3, "log.jsonl")
    assert args.start == parse_ts("2023-12-31T23:00:00Z")
    calls.clear()
    run(["simulate", "--start", "1704067200000"], capsys)
    assert calls[0][1].start == 1_704_067_200_000


def test_simulate_to_a_file(tmp_path, no_network, capsys):
    out_file = tmp_path / "events.jsonl"
    code, out, err = run(["simulate", "--customers", "3", "--days", "3", "--start", "2024-01-01",
                          "--out", str(out_file)], capsys)
    assert code == 0 and err == ""
    assert out.startswith("wrote ") and str(out_file) in out
    written = int(out.split()[1])
    assert written > 0
    assert sum(1 for _ in out_file.open()) == written


@pytest.mark.parametrize("name", ["events.txt", "events.json.bz2", "events", "events.tsv"])
def test_simulate_refuses_an_output_name_it_cannot_write(name, tmp_path, no_network, capsys):
    code, out, err = run(["simulate", "--customers", "3", "--days", "3", "--out", str(tmp_path / name)], capsys)
    assert_one_line_error(code, out, err)
    assert "use one of .jsonl, .jsonl.gz, .csv, .csv.gz, .parquet" in err
    assert list(tmp_path.iterdir()) == []


def test_simulate_refuses_a_missing_directory_and_bad_records_in_a_table(tmp_path, no_network, capsys):
    code, out, err = run(["simulate", "--out", str(tmp_path / "no" / "events.jsonl")], capsys)
    assert_one_line_error(code, out, err)
    assert "does not exist" in err
    code, out, err = run(["simulate", "--bad-rate", "0.01", "--out", str(tmp_path / "events.csv")], capsys)
    assert_one_line_error(code, out, err)
    assert "only a JSONL log can hold" in err


@pytest.mark.parametrize("name", ["events.jsonl.gz", "events.csv", "events.csv.gz", "events.parquet"])
def test_simulate_writes_the_format_its_suffix_names(name, tmp_path, no_network, capsys):
    """The file is in the format of its name (not JSONL called .csv) and reads back to the same events
    as the JSONL log of the same simulation."""
    import gzip

    from training.data.eventlog import read_events

    flags = ["simulate", "--customers", "20", "--days", "40", "--start", "2024-01-01", "--vocabulary", "10"]
    assert run(flags + ["--out", str(tmp_path / "ref.jsonl")], capsys)[0] == 0
    code, out, err = run(flags + ["--out", str(tmp_path / name)], capsys)
    assert code == 0 and err == ""
    head = (tmp_path / name).read_bytes()[:4]
    if name.endswith(".gz"):
        assert head[:2] == b"\x1f\x8b"
        head = gzip.open(tmp_path / name).read(4)
    if ".csv" in name:
        assert head == b"sour"  # the header row: source,event_id,...
    elif name.endswith(".parquet"):
        assert head == b"PAR1"
    else:
        assert head[:1] == b"{"

    def events(path):
        with read_events(path) as log:
            return [(e.source, e.event_id, e.customer_id, e.ts_ms, e.type, e.data) for e in log.events], log.stats.skipped

    assert events(tmp_path / name) == events(tmp_path / "ref.jsonl")
    assert out.startswith("wrote ") and f"({'parquet' if 'parquet' in name else 'csv' if 'csv' in name else 'jsonl'})" in out


def test_simulate_draws_a_bar_on_a_terminal_and_none_with_quiet_or_in_a_pipe(tmp_path):
    import subprocess

    flags = ["simulate", "--customers", "50", "--days", "30", "--start", "2024-01-01"]
    code, out, screen = on_terminal(flags + ["--out", "a.csv"], tmp_path)
    assert code == 0 and out.startswith("wrote ")
    assert "simulating days" in screen and "32/32" in screen and "writing a.csv" in screen and "100%" in screen
    code, out, screen = on_terminal(flags + ["--out", "b.jsonl", "--quiet"], tmp_path)
    assert code == 0 and out.startswith("wrote ") and screen == ""
    proc = subprocess.run([sys.executable, "-m", "apps.cli", *flags, "--out", str(tmp_path / "c.jsonl")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == ""
