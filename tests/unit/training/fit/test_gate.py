"""The promotion gate: rules on made-up figures, then end to end on a real registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from apps import cli
from devtools import simulator
from pipeline.model.registry import Registry
from training.fit.config import TrainConfig
from training.fit.gate import Verdict, judge_baselines, judge_current
from training.runs.from_log import train_from_log

T0 = 1_699_920_000_000


def comparison(model: tuple[float, float], **baselines: tuple[float, float, list[float] | None]) -> dict:
    out = {"model": {"roc_auc": model[0], "lift_at_10": model[1]}}
    for name, (auc, lift, lead) in baselines.items():
        out[name] = {"roc_auc": auc, "lift_at_10": lift, "ci_lead": {"roc_auc": lead}}
    return out


def test_baselines_rule() -> None:
    v = Verdict()
    judge_baselines(comparison((0.80, 4.0), logreg=(0.81, 3.5, [-0.04, 0.02]), counts=(0.75, 4.2, [0.01, 0.09])), v)
    assert v.passed  # each baseline is better on one figure only, and not significantly
    v = Verdict()
    judge_baselines(comparison((0.80, 4.0), logreg=(0.82, 4.1, [-0.05, 0.01])), v)
    assert not v.passed and "better on ROC-AUC and lift" in v.reasons[0] and "logreg" in v.reasons[0]
    v = Verdict()
    judge_baselines(comparison((0.80, 4.5), logreg=(0.86, 4.0, [-0.09, -0.02])), v)
    assert not v.passed and "significantly" in v.reasons[0]


def test_current_model_rule_on_the_same_rows() -> None:
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(400).astype(str), 3)
    y = (rng.random(ids.size) < 0.1).astype(int)
    good = np.clip(0.5 * y + rng.random(ids.size) * 0.6, 0, 1)
    noise = rng.random(ids.size)
    v = Verdict()
    judge_current("v1", y, noise, good, ids, v)
    assert not v.passed and "current model v1" in v.reasons[0] and v.current["ci_lead"][1] < 0
    v = Verdict()
    judge_current("v1", y, good, noise, ids, v)
    assert v.passed and v.current["new_roc_auc"] > v.current["roc_auc"]
    v = Verdict()
    judge_current("v1", y, good, good, ids, v)
    assert v.passed  # as good as the current one: not worse


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gate") / "log.jsonl"
    simulator.write_jsonl(simulator.simulate(simulator.SimConfig(customers=200, days=140, start_ms=T0, seed=8)), path)
    return path


def test_a_model_worse_than_the_current_one_is_registered_not_promoted(log: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    reg = Registry(tmp_path / "models")
    first = train_from_log(log, reg, progress=False)
    assert first.promoted and reg.current() == first.version
    # one tree instead of a few hundred: worse on the same rows
    stunted = train_from_log(log, reg, progress=False, gate=True,
                             config=TrainConfig(max_rounds=1, early_stopping_rounds=1))
    assert not stunted.promoted and reg.current() == first.version
    assert "current model v1" in stunted.not_promoted and "--force-promote" in stunted.not_promoted
    gate = reg.meta(stunted.version)["gate"]
    assert gate["passed"] is False and gate["current"]["version"] == "v1"
    # the same run again is as good as the current model: promoted
    again = train_from_log(log, reg, progress=False, gate=True)
    assert again.promoted, again.not_promoted
    assert reg.meta(again.version)["gate"]["passed"] is True
    assert cli.main(["models", "list", "--models-dir", str(tmp_path / "models")]) == 0
    listed = capsys.readouterr().out
    assert "gate refused: current model v1" in listed and "gate passed" in listed
