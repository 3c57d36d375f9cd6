"""``churnwatch score``: batch scores at chosen times, checked against a fresh replay of exactly the events
before each time (not against the backtest's own incremental loop)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from apps import cli
from devtools import simulator
from pipeline.core.contract import DAY_MS, format_ts
from pipeline.core.features import CustomerState, apply
from pipeline.model.registry import Registry
from pipeline.model.scoring import load_version
from training.assess.backtest import score_log
from training.data.eventlog import read_events
from training.runs.from_log import train_from_log

T0 = 1_699_920_000_000  # 2023-11-14T00:00:00Z


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any]:
    root = tmp_path_factory.mktemp("backtest")
    log = root / "log.jsonl"
    simulator.write_jsonl(simulator.simulate(simulator.SimConfig(customers=200, days=130, start_ms=T0, seed=5,
                                                                 vocabulary=12)), log)
    reg = Registry(root / "models")
    train_from_log(log, reg, progress=False)
    return log, root / "models", load_version(reg, reg.current())


def test_scores_are_point_in_time_and_cover_who_was_active(trained) -> None:
    log, _, model = trained
    events = list(read_events(log).events)
    at = [T0 + 60 * DAY_MS, T0 + 100 * DAY_MS + 7 * 3_600_000]
    scored = score_log(events, model, at)
    for t in at:
        before = [e for e in events if e.ts_ms < t]
        states: dict[str, CustomerState] = {}
        for e in before:
            apply(states.setdefault(e.customer_id, CustomerState(e.customer_id)), e)
        def gone(c: str) -> bool:  # churned before t and not back since
            churns = [e.ts_ms for e in before if e.customer_id == c and e.source == "outcomes" and e.type == "churned"]
            backs = [e.ts_ms for e in before if e.customer_id == c and e.source == "outcomes" and e.type == "renewed"]
            return bool(churns) and not any(b > max(churns) for b in backs)

        active = {c for c in states if not gone(c)}
        rows = [i for i, o in enumerate(scored.observed_ms) if o == t]
        assert {scored.customer_ids[i] for i in rows} == active and len(rows) == len(active)
        assert any(gone(c) for c in states)
        ids = [scored.customer_ids[i] for i in rows]
        expected = model.predict(np.asarray([model.vector(states[c], t) for c in ids]))
        assert np.allclose([scored.scores[i] for i in rows], expected, rtol=0, atol=1e-12)
        later = {e.customer_id: e.ts_ms for e in sorted(events, key=lambda e: -e.ts_ms)
                 if e.source == "outcomes" and e.type == "churned" and e.ts_ms >= t}
        assert {scored.customer_ids[i]: scored.churned_ms[i] for i in rows if scored.churned_ms[i]} == \
            {c: later[c] for c in ids if c in later}
    assert set(scored.bands) <= {"critical", "high", "low"} and {"critical", "high"} & set(scored.bands)
    assert all(r for r, b in zip(scored.reasons, scored.bands) if b != "low")


def test_score_command_writes_the_list(trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log, models, model = trained
    out = tmp_path / "scores.csv"
    at = f"{format_ts(T0 + 60 * DAY_MS)},{T0 + 90 * DAY_MS}"
    assert cli.main(["score", "--events", str(log), "--at", at, "--out", str(out), "--models-dir", str(models)]) == 0
    printed = capsys.readouterr().out
    assert "scored" in printed and "critical" in printed
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["observed_at"] for r in rows} == {format_ts(T0 + 60 * DAY_MS), format_ts(T0 + 90 * DAY_MS)}
    assert all(0.0 <= float(r["score"]) <= 1.0 and r["model_version"] == model.version for r in rows)
    assert len(rows) == len(score_log(read_events(log).events, model, [T0 + 60 * DAY_MS, T0 + 90 * DAY_MS]))


@pytest.mark.parametrize("args, message", [
    (["--at", "yesterday"], "--at"),
    (["--at", ","], "--at needs"),
    (["--out", "scores.xlsx"], ".parquet, .csv"),
])
def test_bad_score_arguments_are_one_line_and_exit_2(trained, tmp_path: Path, capsys, args: list[str],
                                                     message: str) -> None:
    log, models, _ = trained
    base = {"--at": "2024-01-01", "--out": str(tmp_path / "s.csv")}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value if flag != "--out" else str(tmp_path / value)
    argv = ["score", "--events", str(log), "--models-dir", str(models)] + [x for kv in base.items() for x in kv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_dataset_at_gives_the_rows_score_scores(trained, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    log, models, model = trained
    at = [T0 + 60 * DAY_MS, T0 + 90 * DAY_MS]
    spec = tmp_path / "spec.json"
    spec.write_bytes((models / model.version / "meta.json").read_bytes())
    out = tmp_path / "rows.parquet"
    assert cli.main(["dataset", "--events", str(log), "--out", str(out), "--spec", str(spec),
                     "--at", ",".join(str(t) for t in at)]) == 0
    table = pq.read_table(out)
    scored = score_log(read_events(log).events, model, at, reasons=0)
    assert sorted(zip(table.column("customer_id").to_pylist(), table.column("observed_at").to_pylist())) == \
        sorted(zip(scored.customer_ids, [format_ts(t) for t in scored.observed_ms]))
    assert table.column_names[4:] == list(model.features)
