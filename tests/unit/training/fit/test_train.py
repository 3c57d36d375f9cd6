"""Training end to end on simulated history: the model, its baselines and report in the registry, and
churnwatch evaluate of the saved version."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from pipeline.core.contract import DAY_MS, parse_ts
from pipeline.core.features import FEATURES
from pipeline.core.spec import FeatureSpec, compile_spec, spec_of_meta
from pipeline.model.registry import Registry, sha256_file
from pipeline.model.calibration import calibrate
from pipeline.model.scoring import ModelHolder, load_version, model_from_bytes
from training.assess.measures import roc_auc
from training.data.eventlog import read_events
from training.fit.config import TrainConfig, TrainingError
from training.fit.train import train
from training.rows.dataset import DatasetConfig, build_dataset
from training.runs.from_log import METRICS_FILE, progress_bars, train_from_log

T0 = 1_699_920_000_000  # 2023-11-14T00:00:00Z
SIM = dict(customers=600, days=200, start_ms=T0, seed=7)  # the project's default simulator seed

# Test-period ROC-AUC / top-decile lift this simulator gave at 600 customers x 200 days, by simulator
# seed (measured on 2026-11-23): 7: 0.80/4.7, 8: 0.79/4.7, 9: 0.86/6.0, 10: 0.84/6.7, 11: 0.85/5.8,
# 12: 0.90/6.1. The test period is 3 weekly snapshots with 60-105 churn labels, hence the spread; the
# lower bounds hold for every seed measured. The upper bound is a leakage alarm: a model that sees the
# future (e.g. the silence after a churn) scores near-perfectly.
MIN_TEST_AUC, MAX_TEST_AUC, MIN_LIFT_AT_10 = 0.70, 0.95, 2.5

# Test-period ROC-AUC / top-decile lift of model | logreg baseline | 28-day-counts baseline, same size,
# by simulator seed (measured 2026-11-23, with the own-baseline and per-session features and the
# 4-leaf / feature_fraction 0.5 defaults):
#   7: 0.800/4.66 | 0.750/3.90 | 0.779/4.09      10: 0.838/6.71 | 0.700/3.93 | 0.822/6.05
#   8: 0.794/4.72 | 0.707/2.64 | 0.725/3.74      11: 0.852/5.75 | 0.799/5.29 | 0.828/4.99
#   9: 0.859/5.97 | 0.812/4.41 | 0.706/3.37      12: 0.898/6.11 | 0.830/5.58 | 0.794/4.25
# The model beats both baselines on both figures for all six seeds; its smallest lead over the better
# baseline is +0.016 ROC-AUC (seed 10) and +0.46 lift (seed 11), and at seed 7 +0.021 / +0.57. The
# margins below hold for every seed measured, so seed 7 (the default, not a pick) is representative.
# At 2000 x 240 (seed 7): 0.824/5.32 | 0.792/4.80 | 0.762/3.80. Before those features the model won
# on both figures for seeds 9 and 12 only; see docs/evaluation.md. Those figures predate the learnt
# feature spec and training from each customer's first day: since then the logreg baseline sees the
# per-type counts too and (seed 7) ranks at 0.805, level with the model; see the comparison test.
MIN_AUC_LEAD, MIN_LIFT_LEAD = 0.01, 0.3


@pytest.fixture(scope="module")
def sim_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sim = pytest.importorskip("devtools.simulator")
    path = tmp_path_factory.mktemp("sim") / "history.jsonl"
    sim.write_jsonl(sim.simulate(sim.SimConfig(**SIM)), path)
    return path


@pytest.fixture(scope="module")
def trained(sim_log: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Registry]:
    registry = Registry(tmp_path_factory.mktemp("models"))
    return train_from_log(sim_log, registry, progress=False), registry


@pytest.fixture(scope="module")
def dataset(sim_log: Path, trained: tuple[Any, Registry]):
    """The rows the trained model saw: same log, the spec saved with the model."""
    result, registry = trained
    return build_dataset(read_events(sim_log).events, DatasetConfig(spec=spec_of_meta(registry.meta(result.version))))


# ---- end to end ---------------------------------------------------------------------------------
def test_saves_and_promotes_a_model_the_worker_can_load(trained: tuple[Any, Registry]) -> None:
    result, registry = trained
    assert result.promoted and registry.current() == result.version
    model = load_version(registry, result.version)
    meta = registry.meta(result.version)
    # the spec learnt from the log: the built-in features, then the product's own types
    assert model.features[:len(FEATURES)] == FEATURES and model.features == compile_spec(spec_of_meta(meta)).names
    assert {"login", "feature_use", "page_view"} <= set(meta["feature_spec"]["types"])
    assert (registry.path(result.version) / METRICS_FILE).is_file()
    holder = ModelHolder(registry)
    assert holder.refresh() == ("loaded", result.version)
    assert "test ROC-AUC" in result.summary()


def test_predictions_are_calibrated_probabilities(trained: tuple[Any, Registry], dataset) -> None:
    result, registry = trained
    model = load_version(registry, result.version)
    test_start = parse_ts(model.meta["split"]["test"]["start"])
    test = dataset.subset(dataset.obs_ms >= test_start)
    p = model.predict(test.X)
    assert p.shape == (len(test),) and np.all((p >= 0) & (p <= 1))
    assert abs(p.mean() - test.y.mean()) < 0.04  # calibrated on validation, checked on later data
    # the saved model scores exactly like the one that was evaluated (best iteration, same calibration)
    assert roc_auc(test.y, p) == pytest.approx(result.metrics["test"]["roc_auc"], abs=1e-12)
    assert np.all(np.diff(model.calibration_x) > 0) and np.all(np.diff(model.calibration_y) > 0)
    assert model.calibration_x[0] == 0.0 and model.calibration_x[-1] == 1.0


def test_test_period_metrics_are_useful_and_not_too_good(trained: tuple[Any, Registry]) -> None:
    test = trained[0].metrics["test"]
    assert MIN_TEST_AUC <= test["roc_auc"] <= MAX_TEST_AUC
    assert test["lift_at_10"] >= MIN_LIFT_AT_10
    assert 0 < test["precision_at_10"] <= 1 and test["pr_auc"] > test["base_rate"]


def test_thresholds_spend_the_weekly_alert_budget(trained: tuple[Any, Registry]) -> None:
    result, registry = trained
    cfg = TrainConfig()
    g = result.guidance
    assert g["budget_per_1k_week"] == cfg.alert_budget_per_1k_week and g["within_budget"]
    thr = result.thresholds
    assert thr == g["thresholds"] and 0 < thr["vip"] < thr["standard"] < 1
    assert thr["vip"] == pytest.approx(cfg.vip_threshold_ratio * thr["standard"], abs=1e-6)
    # not a share of rows but a number of new alerts per week per 1,000 customers, measured on validation
    # by replaying the alert policy: within the budget, and most of it spent
    expected = g["expected"]["share_per_1k_all"]
    assert 0.6 * cfg.alert_budget_per_1k_week <= expected <= cfg.alert_budget_per_1k_week
    assert result.metrics["validation"]["alerts_per_week_per_1k"] == pytest.approx(expected)
    # never below the floor: an alert means at least twice the average validation risk
    assert thr["standard"] >= g["min_threshold"] == pytest.approx(cfg.min_threshold_lift * g["base_rate"], abs=1e-6)
    # the worker's alert policy reads them from the metadata, with the guidance beside them
    meta = registry.meta(result.version)
    assert meta["thresholds"] == thr and meta["guidance"]["thresholds"] == thr
    assert load_version(registry, result.version).thresholds == thr


def test_top_pct_thresholds_remain_available(dataset) -> None:
    model = train(dataset, cfg=TrainConfig(alert_budget_per_1k_week=None))
    alerts = model.metrics["validation"]["alerts"]
    assert 0.075 <= alerts["standard"]["alert_rate"] <= 0.09
    assert alerts["vip"]["alert_rate"] >= 0.145
    assert model.guidance["budget_per_1k_week"] is None


def test_metadata_describes_the_run(trained: tuple[Any, Registry], sim_log: Path) -> None:
    result, registry = trained
    meta = registry.meta(result.version)
    for key in ("features", "calibration", "thresholds", "horizon_days", "cadence_days", "min_history_days",
                "data_window", "split", "metrics", "rows", "best_iteration", "params", "seed",
                "package_versions", "created", "source_log", "sha256", "version"):
        assert key in meta, key
    assert meta["features"] == list(compile_spec(FeatureSpec.from_json(meta["feature_spec"])).names)
    assert meta["horizon_days"] == 30 and meta["cadence_days"] == 7 and meta["min_history_days"] == 0
    assert meta["source_log"]["sha256"] == sha256_file(sim_log)
    assert set(meta["package_versions"]) >= {"lightgbm", "sklearn", "numpy", "python"}
    assert set(meta["metrics"]) == {"test", "validation"}
    assert meta["params"]["deterministic"] is True and meta["params"]["seed"] == 42
    split = meta["split"]
    train_end, valid_start = parse_ts(split["train"]["end"]), parse_ts(split["validation"]["start"])
    valid_end, test_start = parse_ts(split["validation"]["end"]), parse_ts(split["test"]["start"])
    assert valid_start - train_end >= 30 * DAY_MS and test_start - valid_end >= 30 * DAY_MS
    assert parse_ts(meta["data_window"]["start"]) < train_end
    rows = meta["rows"]
    assert rows["train"]["rows"] + rows["validation"]["rows"] + rows["test"]["rows"] < rows["all"]["rows"]
    assert all(0 < rows[k]["positive_rate"] < 0.3 for k in ("train", "validation", "test"))
    # the rounds come from three rolling-origin folds inside train + validation (training.fit.cv)
    cv = meta["cv"]
    assert len(cv["folds"]) == 3 and cv["fallback"] is None and cv["rounds"] == meta["best_iteration"]
    assert parse_ts(cv["folds"][-1]["validation"]["end"]) == valid_end
    assert all(parse_ts(f["validation"]["start"]) - parse_ts(f["train"]["end"]) >= 30 * DAY_MS for f in cv["folds"])
    assert f"rounds: {cv['rounds']} from 3 rolling-origin folds" in result.summary()


def test_save_without_promotion(sim_log: Path, tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    result = train_from_log(sim_log, registry, promote=False, progress=False)
    assert not result.promoted and registry.current() is None
    assert registry.versions() == [result.version]
    registry.verify(result.version)


@pytest.fixture(scope="module")
def fitted(dataset):
    """A model as :func:`train` returns it, before anything is saved."""
    return train(dataset, seed=3)


def test_training_is_deterministic_for_a_seed(dataset, fitted) -> None:
    b = train(dataset, seed=3)
    assert fitted.booster.model_to_string() == b.booster.model_to_string()
    assert fitted.calibration == b.calibration and fitted.thresholds == b.thresholds


def test_training_scores_bit_for_bit_as_the_model_loaded_from_its_files(dataset, fitted) -> None:
    """Training measures and chooses thresholds on the probabilities the worker will compute: one
    calibration (pipeline.model.scoring.calibrate), applied to the same booster, after the metadata's
    JSON round trip."""
    meta = orjson.loads(orjson.dumps({"features": list(dataset.features), "feature_spec": dataset.config.spec.to_json(),
                                      "calibration": fitted.calibration}))
    text = fitted.booster.model_to_string(num_iteration=fitted.best_iteration)
    loaded = model_from_bytes("v1", text.encode(), meta, check=False)
    assert np.array_equal(fitted.predict(dataset.X), loaded.predict(dataset.X))
    assert np.array_equal(loaded.calibrate(np.array([0.0, 1e-3, 0.5, 1.0])),
                          calibrate(np.array([0.0, 1e-3, 0.5, 1.0]), fitted.calibration["x"], fitted.calibration["y"]))


def test_a_log_too_short_is_a_clear_error(tmp_path: Path) -> None:
    sim = pytest.importorskip("devtools.simulator")
    path = tmp_path / "short.jsonl"
    sim.write_jsonl(sim.simulate(sim.SimConfig(customers=30, days=45, start_ms=T0, seed=1)), path)
    with pytest.raises(TrainingError, match="too few days|observation dates"):
        train_from_log(path, Registry(tmp_path / "models"), progress=False)
    assert Registry(tmp_path / "models").versions() == []


def test_progress_goes_to_stderr() -> None:
    bars = progress_bars(True)
    assert bars is not None and bars.console.file is sys.stderr
    assert progress_bars(False) is None


# ---- baselines and the evaluation report ------------------------------------------------------------
def test_the_version_holds_baselines_metrics_and_the_report(trained: tuple[Any, Registry]) -> None:
    import orjson

    from training.fit.baselines import BASELINE_LABELS, BASELINES_FILE, load_baselines
    from training.report.page import REPORT_HTML
    from training.report.plots import PLOTS
    from training.report.sections import MODEL

    result, registry = trained
    vdir = registry.path(result.version)
    registry.verify(result.version)  # the extra files do not disturb the content hash
    metrics = orjson.loads((vdir / METRICS_FILE).read_bytes())
    ev = metrics["evaluation"]
    assert list(ev["scorers"]) == [MODEL, *BASELINE_LABELS]
    assert ev["period"]["start"] == metrics["split"]["test"]["start"]
    assert ev["comparison"][MODEL]["roc_auc"] == pytest.approx(result.metrics["test"]["roc_auc"], abs=1e-12)
    for block in ev["scorers"].values():
        assert block["metrics"]["rows"] == result.rows["test"]["rows"]
        assert block["thresholds"] and block["guidance"]["budget_per_1k_week"] == 25.0
        assert block["lead_time"]["churners"] > 0 and block["curves"]["roc"]
    baselines = load_baselines(orjson.loads((vdir / BASELINES_FILE).read_bytes()), registry.meta(result.version)["features"])
    assert {n: b.thresholds for n, b in baselines.items()} == {n: ev["scorers"][n]["thresholds"] for n in baselines}
    html = (vdir / "report" / REPORT_HTML).read_text(encoding="utf-8")
    for png in PLOTS.values():
        assert (vdir / "report" / png).read_bytes()[:4] == b"\x89PNG" and png in html
    assert result.report_path == vdir / "report" / REPORT_HTML
    summary = result.summary()
    assert "baseline logreg" in summary and "baseline counts_28d" in summary and str(result.report_path) in summary
    meta = registry.meta(result.version)
    assert set(meta["comparison"]) == {MODEL, *BASELINE_LABELS}


def test_a_trained_version_is_readable_by_every_user(trained: tuple[Any, Registry]) -> None:
    """The compose worker reads a host-trained registry as another user (uid 10001): every directory of
    the version train wrote (its temporary staging directory was 0700) is 0755, every file 0644."""
    import stat

    result, registry = trained
    vdir = registry.path(result.version)
    found = {p.relative_to(registry.root).as_posix(): stat.S_IMODE(p.lstat().st_mode) for p in [vdir, *vdir.rglob("*")]}
    assert "report" in {Path(p).name for p in found} and len(found) > 6
    wrong = {p: oct(m) for p, m in found.items() if m != (0o755 if (registry.root / p).is_dir() else 0o644)}
    assert not wrong
    assert stat.S_IMODE((registry.root / "CURRENT").stat().st_mode) == 0o644


def test_saved_baselines_score_like_in_training(trained: tuple[Any, Registry], sim_log: Path, tmp_path: Path) -> None:
    """``evaluate --events`` on the training log re-scores the test period with the saved model and the
    saved baselines (``--period later``): every figure must come out as at training time."""
    from training.runs.reevaluate import reevaluate_version

    result, registry = trained
    out = reevaluate_version(registry, result.version, events=sim_log, out=tmp_path / "eval")
    saved = result.comparison
    for name, figures in out.metrics["evaluation"]["comparison"].items():
        for key in ("roc_auc", "pr_auc", "lift_at_10", "alerts_per_week_per_1k", "lead_median_days"):
            assert figures[key] == pytest.approx(saved[name][key], abs=1e-9), (name, key)
    assert (tmp_path / "eval" / METRICS_FILE).is_file() and out.report_path.is_file()


def test_evaluate_redraws_and_rebudgets_without_the_log(trained: tuple[Any, Registry], tmp_path: Path) -> None:
    from training.runs.reevaluate import reevaluate_version

    result, registry = trained
    same = reevaluate_version(registry, result.version, out=tmp_path / "same")
    assert same.guidance is None and same.metrics["evaluation"]["comparison"] == result.comparison
    tight = reevaluate_version(registry, None, budget=8.0, out=tmp_path / "tight")  # None: the current version
    assert tight.guidance["budget_per_1k_week"] == 8.0
    assert tight.guidance["expected"]["share_per_1k_all"] <= 8.0
    assert tight.guidance["thresholds"]["standard"] > result.thresholds["standard"]
    model_block = tight.metrics["evaluation"]["scorers"]["model"]
    assert model_block["thresholds"] == tight.guidance["thresholds"]
    assert set(tight.baseline_guidance) == {"logreg", "counts_28d", "type_counts_28d"}
    # the ranking figures do not depend on thresholds; the workload does
    c, c0 = tight.metrics["evaluation"]["comparison"]["model"], result.comparison["model"]
    assert c["roc_auc"] == c0["roc_auc"] and c["alerts_per_week_per_1k"] < c0["alerts_per_week_per_1k"]
    assert registry.meta(result.version)["thresholds"] == result.thresholds  # the saved version is untouched


def test_evaluate_errors_are_one_line(trained: tuple[Any, Registry], tmp_path: Path) -> None:
    from pipeline.model.registry import RegistryError
    from training.runs.reevaluate import reevaluate_version

    result, registry = trained
    with pytest.raises(RegistryError, match="not found"):
        reevaluate_version(registry, "v99")
    with pytest.raises(TrainingError, match="no current model"):
        reevaluate_version(Registry(tmp_path / "empty"))
    with pytest.raises(TrainingError, match="positive"):
        reevaluate_version(registry, result.version, budget=0.0)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"nope")
    with pytest.raises(TrainingError, match="bad.parquet"):
        reevaluate_version(registry, result.version, events=bad)


def test_model_against_the_baselines_on_the_held_out_period(trained: tuple[Any, Registry]) -> None:
    """On the simulator's later (test) period, with a fixed seed: the model beats the 28-day counts of
    the built-in channels on both figures, and the linear models that see the learnt spec's per-type
    counts and tenure (``logreg`` on every feature, ``type_counts_28d``) rank about as well as it does
    here: this simulator's churn is told by volume and age, which a linear model reads as well as trees
    do. (On products whose churn is told by the *mix* of their own events, the model's lead over the
    per-type counts is required in tests/unit/training/fit/test_foreign_vocabulary.py.) Measured at seed 7, 600 x
    200, from the first day: model 0.799/4.59, logreg 0.805/4.59, counts_28d 0.774/4.04,
    type_counts_28d 0.809/3.85 (ROC-AUC / top-decile lift)."""
    c = trained[0].comparison
    model = c["model"]
    assert model["roc_auc"] > c["counts_28d"]["roc_auc"] + MIN_AUC_LEAD, (model, c["counts_28d"])
    assert model["lift_at_10"] > c["counts_28d"]["lift_at_10"] + MIN_LIFT_LEAD, (model, c["counts_28d"])
    for name in ("logreg", "type_counts_28d"):
        assert model["roc_auc"] > c[name]["roc_auc"] - 0.02, (name, model["roc_auc"], c[name]["roc_auc"])
        assert model["lift_at_10"] >= c[name]["lift_at_10"] - 0.2, (name, model["lift_at_10"], c[name]["lift_at_10"])
    # and the baselines are real competitors, not strawmen: far better than random
    assert min(c["logreg"]["roc_auc"], c["counts_28d"]["roc_auc"]) > 0.7


def test_intervals_are_reported_and_few_churners_are_said_loudly(tmp_path: Path, capsys) -> None:
    from apps import cli
    from devtools import simulator

    log = tmp_path / "small.jsonl"
    simulator.write_jsonl(simulator.simulate(simulator.SimConfig(customers=150, days=120, start_ms=T0, seed=3)), log)
    models = tmp_path / "models"
    code = cli.main(["train", "--events", str(log), "--models-dir", str(models), "--horizon-days", "7", "--quiet",
                     "--strict"])
    out = capsys.readouterr().out
    assert code == 2 and "WARNING: the test period has only" in out and "not promoted (--strict)" in out
    reg = Registry(models)
    assert reg.current() is None and reg.versions() == ["v1"]
    comparison = reg.meta("v1")["comparison"]
    lo, hi = comparison["model"]["ci"]["roc_auc"]
    assert lo <= comparison["model"]["roc_auc"] <= hi and hi - lo > 0.02  # few churners: a wide interval
    assert "ci_lead" in comparison["logreg"] and "ci_lead" not in comparison["model"]
    assert f"({lo:.3f}–{hi:.3f})" in out  # the printed table carries the interval


def test_train_takes_the_cut_points_from_the_command_line(sim_log: Path, tmp_path: Path, capsys) -> None:
    from apps import cli

    assert cli.main(["train", "--events", str(sim_log), "--models-dir", str(tmp_path / "m"), "--quiet",
                     "--train-until", "2024-02-14", "--test-from", "2024-04-24", "--no-promote"]) == 0
    split = Registry(tmp_path / "m").meta("v1")["split"]
    assert split["train"]["end"][:10] == "2024-02-14" and split["test"]["start"][:10] == "2024-04-24"
    assert cli.main(["train", "--events", str(sim_log), "--models-dir", str(tmp_path / "m"), "--test-from", "soon"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--test-from" in err
