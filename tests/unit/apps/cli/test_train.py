"""Unit tests for apps.cli.train (``churnwatch train``): its inputs are checked before training is
imported, its flags reach the training configuration, its progress on a terminal."""

from __future__ import annotations

import sys
import types

import pytest

import apps.cli as cli
from apps.cli.train import train_config_of
from pipeline.core.contract import parse_ts
from tests.unit.apps.cli.harness import assert_one_line_error, on_terminal, run


def _stub_training(monkeypatch, train: bool = True) -> None:
    """training.runs.from_log (the trainer) replaced by a module with only its error class (which main() reports), and
    with ``train`` a train_from_log that fails the test if reached."""
    stub = types.ModuleType("training.runs.from_log")
    stub.TrainingError = type("TrainingError", (Exception,), {})

    def train_from_log(*a, **k):
        raise AssertionError("training started despite a missing event log")

    if train:
        stub.train_from_log = train_from_log
    monkeypatch.setitem(sys.modules, "training.runs.from_log", stub)


@pytest.mark.parametrize("events", ["/nonexistent", "/nonexistent/events.jsonl"])
def test_train_with_missing_event_log(events, monkeypatch, tmp_path, capsys):
    _stub_training(monkeypatch)
    code, out, err = run(["train", "--events", events, "--models-dir", str(tmp_path)], capsys)
    assert_one_line_error(code, out, err)
    assert events in err and "not found" in err


def test_train_with_a_directory_as_event_log(monkeypatch, tmp_path, capsys):
    _stub_training(monkeypatch)
    code, out, err = run(["train", "--events", str(tmp_path)], capsys)
    assert_one_line_error(code, out, err)


def test_train_checks_the_event_log_before_importing_training(monkeypatch, tmp_path, capsys):
    _stub_training(monkeypatch, train=False)  # importing anything of the trainer fails
    code, out, err = run(["train", "--events", "/nonexistent", "--models-dir", str(tmp_path)], capsys)
    assert_one_line_error(code, out, err)


@pytest.mark.parametrize("extra", [[], ["--churn", "c.csv", "--inactive-days", "30"]])
def test_a_foreign_log_needs_exactly_one_churn_source(extra, monkeypatch, tmp_path, capsys):
    _stub_training(monkeypatch)
    usage = tmp_path / "u.csv"
    usage.write_text("account_id,ts,event\na,2026-01-01,post\n")
    code, out, err = run(["train", "--usage", str(usage), *extra, "--models-dir", str(tmp_path)], capsys)
    assert_one_line_error(code, out, err)
    assert "--inactive-days" in err


def test_tune_and_cv_flags_reach_the_training_config():
    args = cli.build_parser().parse_args(["train", "--events", "x.jsonl", "--tune", "--search-seconds", "30",
                                          "--cv-folds", "4", "--train-until", "2024-01-10"])
    cfg = train_config_of(args)
    assert (cfg.search_candidates, cfg.search_seconds, cfg.cv_folds) == (8, 30.0, 4)
    assert cfg.train_until_ms == parse_ts("2024-01-10T00:00:00Z") and cfg.test_from_ms is None
    default = train_config_of(cli.build_parser().parse_args(["train", "--events", "x.jsonl"]))
    assert (default.search_candidates, default.cv_folds) == (0, 3)  # the search is off unless asked for


def test_train_shows_the_reading_of_the_log_before_the_replay(tmp_path):
    from devtools import simulator as sim

    sim.write_jsonl(sim.simulate(sim.SimConfig(customers=120, days=220, start_ms=1_704_067_200_000, seed=3)),
                    tmp_path / "history.jsonl")
    code, out, screen = on_terminal(["train", "--events", "history.jsonl", "--models-dir", "models", "--cv-folds", "1"],
                                     tmp_path)
    assert code == 0, out + screen
    reading, replay = screen.find("reading history.jsonl"), screen.find("replaying events")
    assert 0 <= reading < replay, screen[-2000:]
