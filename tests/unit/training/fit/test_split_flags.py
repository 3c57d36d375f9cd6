"""--train-until / --test-from / --as-of on train, dataset and evaluate, and evaluate's few-churners
warning, through the command line on one small simulated log (200 customers x 160 days)."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from apps import cli
from pipeline.core.contract import DAY_MS, parse_ts
from pipeline.model.registry import Registry

T0 = 1_699_920_000_000  # 2023-11-14T00:00:00Z
CUTS = ["--train-until", "2024-01-10", "--test-from", "2024-03-20"]
AS_OF = "2024-04-20"


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sim = pytest.importorskip("devtools.simulator")
    path = tmp_path_factory.mktemp("flags") / "history.jsonl"
    sim.write_jsonl(sim.simulate(sim.SimConfig(customers=200, days=160, start_ms=T0, seed=3)), path)
    return path


@pytest.fixture(scope="module")
def trained(log: Path, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    models = tmp_path_factory.mktemp("models")
    code = cli.main(["train", "--events", str(log), "--models-dir", str(models), "--quiet", "--no-promote",
                     *CUTS, "--as-of", AS_OF])
    assert code == 0
    return Registry(models)


def rows_of(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_the_period_column_is_the_trainers_split(trained: Registry, log: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "rows.csv"
    assert cli.main(["dataset", "--events", str(log), "--out", str(out), *CUTS, "--as-of", AS_OF]) == 0
    assert "period column: train " in capsys.readouterr().out
    rows = rows_of(out)
    meta = trained.meta("v1")
    by_period = Counter(r["period"] for r in rows)
    assert set(by_period) == {"train", "validation", "test", "purge"}
    for name in ("train", "validation", "test"):
        mine = [r for r in rows if r["period"] == name]
        assert len(mine) == meta["rows"][name]["rows"], name
        assert sum(int(r["label"]) for r in mine) == meta["rows"][name]["positives"], name
        dates = sorted({r["observed_at"] for r in mine})
        assert (dates[0], dates[-1], len(dates)) == (meta["split"][name]["start"], meta["split"][name]["end"],
                                                     meta["split"][name]["dates"]), name
    assert len(rows) == meta["rows"]["all"]["rows"]
    # without the cut points: the same rows, no period column
    plain = tmp_path / "plain.csv"
    assert cli.main(["dataset", "--events", str(log), "--out", str(plain), "--as-of", AS_OF]) == 0
    assert "period" not in rows_of(plain)[0] and len(rows_of(plain)) == len(rows)


def test_as_of_reads_the_log_as_exported_then(trained: Registry, log: Path, tmp_path: Path, capsys) -> None:
    lines = log.read_bytes().splitlines(keepends=True)
    times = sorted(parse_ts(orjson.loads(line)["ts"]) for line in lines)
    as_of = times[int(len(times) * 0.8)]  # an event's own time, so the cut file ends exactly there
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(line for line in lines if parse_ts(orjson.loads(line)["ts"]) <= as_of))
    a, b = tmp_path / "as_of.csv", tmp_path / "cut.csv"
    assert cli.main(["dataset", "--events", str(log), "--out", str(a), "--as-of", str(as_of)]) == 0
    assert "events after --as-of ignored" in capsys.readouterr().out
    assert cli.main(["dataset", "--events", str(cut), "--out", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()  # later events change nothing: features, labels, spec, censoring
    last = max(parse_ts(r["observed_at"]) for r in rows_of(a))
    assert last + 30 * DAY_MS <= as_of  # labels censored at the cut
    # the trainer records the cut and sees nothing after it
    meta = trained.meta("v1")
    assert meta["as_of"]["as_of"].startswith(AS_OF) and meta["as_of"]["events_after"] > 0
    assert parse_ts(meta["data_window"]["end"]) <= parse_ts(AS_OF)
    assert meta["eventlog"]["last"] <= meta["as_of"]["as_of"]


def test_the_trainer_records_how_the_rounds_were_chosen(trained: Registry) -> None:
    meta = trained.meta("v1")
    metrics = orjson.loads((trained.path("v1") / "metrics.json").read_bytes())
    assert metrics["cv"] == meta["cv"] and meta["cv"]["rounds"] == meta["best_iteration"]
    assert meta["cv"]["folds"] or meta["cv"]["fallback"]  # folds, or why there were none (this log is small)
    html = (trained.path("v1") / "report" / "report.html").read_text(encoding="utf-8")
    assert "boosting rounds" in html and f"rounds: {meta['best_iteration']}" in html


def test_evaluate_warns_on_few_churners_and_strict_exits_2(trained: Registry, capsys) -> None:
    models = str(trained.root)
    assert cli.main(["evaluate", "v1", "--models-dir", models]) == 0
    out = capsys.readouterr().out
    assert "WARNING: the evaluated period has only" in out and "mostly noise" in out
    assert cli.main(["evaluate", "v1", "--models-dir", models, "--strict"]) == 2


def test_evaluate_names_the_later_period_and_the_budget_period_once(trained: Registry, log: Path, tmp_path: Path,
                                                                     capsys) -> None:
    assert cli.main(["evaluate", "v1", "--models-dir", str(trained.root), "--events", str(log), "--out",
                     str(tmp_path / "eval"), "--budget", "20"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "log, after the model's validation period 20" in out and "chosen on the evaluated log period" in out
    assert "period period" not in out


def test_evaluate_chooses_the_period_and_cuts_the_log(trained: Registry, log: Path, tmp_path: Path, capsys) -> None:
    models = str(trained.root)
    meta = trained.meta("v1")
    out = tmp_path / "eval"
    assert cli.main(["evaluate", "v1", "--models-dir", models, "--events", str(log), "--out", str(out),
                     "--test-from", "2024-03-20", "--as-of", AS_OF]) == 0
    metrics = orjson.loads((out / "metrics.json").read_bytes())
    period = metrics["evaluation"]["period"]
    assert period["name"] == "chosen" and period["start"] == meta["split"]["test"]["start"]
    assert metrics["as_of"]["as_of"].startswith(AS_OF)
    # the same figures as at training time: same rows, same log as of the same time
    assert metrics["evaluation"]["comparison"]["model"]["roc_auc"] == pytest.approx(
        meta["comparison"]["model"]["roc_auc"], abs=1e-9)
    capsys.readouterr()
    # a period before the model's test period would evaluate on what fitted it: refused, one line
    assert cli.main(["evaluate", "v1", "--models-dir", models, "--events", str(log), "--test-from", "2024-02-01"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "before the model's test period" in err
    # an as-of before the log: one line
    assert cli.main(["evaluate", "v1", "--models-dir", models, "--events", str(log), "--as-of", "2020-01-01"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "before the log's first event" in err
