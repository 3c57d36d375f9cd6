"""Loading and using registry models; hot reload that keeps the last good model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from pipeline.features import FEATURES
from pipeline.registry import MODEL_FILE, Registry
from pipeline.scoring import ModelError, ModelHolder, load_current, load_version

N = len(FEATURES)
CALIBRATION = {"x": [0.0, 0.5, 1.0], "y": [0.0, 0.1, 0.6]}


def make_model_text(n_features: int = N, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, n_features))
    y = (X[:, 0] + 0.5 * rng.normal(size=400) > 0.8).astype(int)
    params = {"objective": "binary", "num_leaves": 4, "min_data_in_leaf": 10, "verbose": -1,
              "num_threads": 1, "deterministic": True, "force_row_wise": True, "seed": seed}
    return lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=5).model_to_string()


@pytest.fixture(scope="module")
def model_text() -> str:
    return make_model_text()


def meta(**overrides: Any) -> dict[str, Any]:
    return {"features": list(FEATURES), "calibration": CALIBRATION, "thresholds": {"vip": 0.2, "standard": 0.3},
            **overrides}


def saved(tmp_path: Path, model_text: str, promote: bool = True, **overrides: Any) -> tuple[Registry, str]:
    reg = Registry(tmp_path)
    version = reg.save(model_text, meta(**overrides))
    if promote:
        reg.promote(version)
    return reg, version


def test_load_and_predict_calibrated_probabilities(tmp_path: Path, model_text: str) -> None:
    reg, v = saved(tmp_path, model_text)
    model = load_version(reg, v)
    rows = np.random.default_rng(1).normal(size=(50, N))
    p = model.predict(rows)
    assert p.shape == (50,) and np.all((p >= 0) & (p <= 0.6))
    np.testing.assert_allclose(p, np.interp(model.raw(rows), CALIBRATION["x"], CALIBRATION["y"]))
    assert model.predict(rows[0]).shape == (1,)  # a single vector is a batch of one
    assert model.predict(np.empty((0, N))).shape == (0,)
    assert model.thresholds == {"vip": 0.2, "standard": 0.3}
    assert model.contributions(rows[:3]).shape == (3, N + 1)
    assert load_current(reg).version == v


def test_no_calibration_means_raw_scores(tmp_path: Path, model_text: str) -> None:
    reg, v = saved(tmp_path, model_text, calibration={})
    model = load_version(reg, v)
    rows = np.zeros((2, N))
    np.testing.assert_allclose(model.predict(rows), model.raw(rows))


def test_nothing_promoted(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    assert load_current(reg) is None
    assert ModelHolder(reg).refresh() == ("none", None)


def test_different_features_are_rejected(tmp_path: Path, model_text: str) -> None:
    reg, v = saved(tmp_path, model_text, features=list(reversed(FEATURES)))
    with pytest.raises(ModelError) as err:
        load_version(reg, v)
    assert err.value.reason == "feature_mismatch"


def test_booster_with_another_width_is_rejected(tmp_path: Path) -> None:
    reg, v = saved(tmp_path, make_model_text(n_features=N - 1))
    with pytest.raises(ModelError) as err:
        load_version(reg, v)
    assert err.value.reason == "feature_mismatch"


def test_malformed_calibration_is_rejected(tmp_path: Path, model_text: str) -> None:
    reg, v = saved(tmp_path, model_text, calibration={"x": [0.0, 1.0, 0.5], "y": [0.0, 0.5, 1.0]})
    with pytest.raises(ModelError) as err:
        load_version(reg, v)
    assert err.value.reason == "bad_calibration"


def test_edited_model_file_is_rejected_as_corrupt(tmp_path: Path, model_text: str) -> None:
    reg, v = saved(tmp_path, model_text)
    (reg.path(v) / MODEL_FILE).write_text(model_text.replace("tree", "bush", 3))
    with pytest.raises(ModelError) as err:
        load_version(reg, v)
    assert err.value.reason == "corrupt"


def test_garbage_model_with_a_matching_hash_is_rejected(tmp_path: Path) -> None:
    """Even a file whose hash matches (saved that way) must not load if LightGBM cannot parse it."""
    reg, v = saved(tmp_path, "this is not a LightGBM model\n", promote=False)
    with pytest.raises(ModelError) as err:
        load_version(reg, v)
    assert err.value.reason == "corrupt"


def test_holder_swaps_in_good_models_and_keeps_the_last_good_one(tmp_path: Path, model_text: str) -> None:
    reg, v1 = saved(tmp_path, model_text)
    holder = ModelHolder(reg)
    assert holder.refresh() == ("loaded", v1)
    assert holder.refresh() == ("unchanged", None)

    # a promoted model whose file is then corrupted on disk
    v2 = reg.save(model_text, meta())
    reg.promote(v2)
    (reg.path(v2) / MODEL_FILE).write_text("garbage")
    status, detail = holder.refresh()
    assert status == "corrupt" and v2 in (detail or "")
    assert holder.model is not None and holder.model.version == v1
    assert holder.refresh() == ("unchanged", None)  # rejected once, not retried every poll

    # a promoted model built for a different feature list
    v3 = reg.save(model_text, meta(features=list(FEATURES[:-1]) + ["something_new"]))
    reg.promote(v3)
    status, _ = holder.refresh()
    assert status == "feature_mismatch"
    assert holder.model.version == v1
    rows = np.zeros((1, N))
    assert np.all(np.isfinite(holder.model.predict(rows)))  # still scoring with v1

    # a good model after the bad ones is picked up
    v4 = reg.save(make_model_text(seed=4), meta())
    reg.promote(v4)
    assert holder.refresh() == ("loaded", v4)
    assert holder.model.version == v4



def test_holder_follows_a_rollback(tmp_path: Path, model_text: str) -> None:
    reg, v1 = saved(tmp_path, model_text)
    v2 = reg.save(make_model_text(seed=2), meta())
    reg.promote(v2)
    holder = ModelHolder(reg)
    assert holder.refresh() == ("loaded", v2)
    assert reg.rollback() == v1
    assert holder.refresh() == ("loaded", v1)
