"""Loading and using registry models; hot reload that keeps the last good model; the child-process
model check (pipeline.model.modelcheck) against model files that crash, hang or fool LightGBM."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import lightgbm as lgb
import numpy as np
import orjson
import pytest

from pipeline.core.features import FEATURES
from pipeline.model.modelcheck import Checker, check_model, lint_model_text
from pipeline.model.registry import META_FILE, MODEL_FILE, Registry
from pipeline.model.scoring import ModelError, ModelHolder, load_current, load_model, load_version

N = len(FEATURES)
CALIBRATION = {"x": [0.0, 0.5, 1.0], "y": [0.0, 0.1, 0.6]}


def make_model_text(n_features: int = N, seed: int = 0, names: bool = True) -> str:
    """A small real binary model; with ``names`` its file carries the worker's feature names."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, n_features))
    y = (X[:, 0] + 0.5 * rng.normal(size=400) > 0.8).astype(int)
    params = {"objective": "binary", "num_leaves": 4, "min_data_in_leaf": 10, "verbose": -1,
              "num_threads": 1, "deterministic": True, "force_row_wise": True, "seed": seed}
    feature_name = list(FEATURES[:n_features]) if names and n_features <= N else "auto"
    return lgb.train(params, lgb.Dataset(X, label=y, feature_name=feature_name), num_boost_round=5).model_to_string()


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


# ---- corrupt model files whose checksum matches -------------------------------------------------------
# Each variant is saved through Registry.save, which hashes what it writes: the sha256 in meta.json
# always matches, as when someone edits model.txt and re-hashes, or training writes garbage.
def fix_tree_sizes(text: str) -> str:
    """Recompute ``tree_sizes=`` so an edited tree still parses (LightGBM aborts on stale sizes)."""
    starts = [m.start() for m in re.finditer(r"^Tree=", text, flags=re.M)]
    bounds = starts + [text.index("end of trees")]
    sizes = [len(text[a:b].encode()) for a, b in zip(bounds, bounds[1:])]
    return re.sub(r"^tree_sizes=.*$", "tree_sizes=" + " ".join(map(str, sizes)), text, count=1, flags=re.M)


def edit_tree(text: str, key: str, edit: Callable[[list[str]], list[str]], tree: int = 0, resize: bool = True) -> str:
    """Replace the ``key=`` array of one tree with ``edit(values)``."""
    start = text.index(f"Tree={tree}\n")
    end = text.index("\n\n", start)
    block = text[start:end]
    line = re.search(rf"^{key}=(.*)$", block, flags=re.M)
    assert line is not None, key
    new_block = block[:line.start(1)] + " ".join(edit(line.group(1).split())) + block[line.end(1):]
    out = text[:start] + new_block + text[end:]
    return fix_tree_sizes(out) if resize else out


def set_first(*values: Any) -> Callable[[list[str]], list[str]]:
    return lambda old: [str(v) for v in values] + old[len(values):]


def swap_names(text: str, i: int = 0, j: int = 1) -> str:
    line = re.search(r"^feature_names=(.*)$", text, flags=re.M)
    names = line.group(1).split()
    names[i], names[j] = names[j], names[i]
    return text[:line.start(1)] + " ".join(names) + text[line.end(1):]


def rename_feature(text: str, i: int, new: str) -> str:
    line = re.search(r"^feature_names=(.*)$", text, flags=re.M)
    names = line.group(1).split()
    names[i] = new
    return text[:line.start(1)] + " ".join(names) + text[line.end(1):]


#: name -> (edit of a good model file, reason with the static tree check, reason without it)
#: What LightGBM 4.7 does with each file when nothing stands in between is in the comment.
VARIANTS: dict[str, tuple[Callable[[str], str | bytes], str, str]] = {
    # parser: "Model format error, expect a tree here" thrown inside OpenMP -> std::terminate -> SIGABRT
    "truncated": (lambda t: t[: len(t) // 2], "crashed", "crashed"),
    # parser: same SIGABRT (tree_sizes= no longer matches an edited tree)
    "stale_tree_sizes": (lambda t: edit_tree(t, "split_gain", set_first(1), resize=False), "crashed", "crashed"),
    # parser: "Check failed: (strs.size()) == n" in OpenMP -> SIGABRT
    "num_leaves_huge": (lambda t: edit_tree(t, "num_leaves", lambda _: ["100000"]), "crashed", "crashed"),
    # parser: integer division by zero -> SIGFPE
    "zero_trees_per_iteration": (lambda t: t.replace("num_tree_per_iteration=1", "num_tree_per_iteration=0", 1),
                                 "crashed", "crashed"),
    # clean LightGBMError ("Model file doesn't specify the number of classes")
    "garbage": (lambda t: "this is not a LightGBM model\n", "corrupt", "corrupt"),
    "not_utf8": (lambda t: t.encode()[:200] + b"\xff\xfe\x00garbage" + t.encode()[200:], "corrupt", "corrupt"),
    # loads and predicts: only the comparison with meta.json catches these
    "feature_names_swapped": (swap_names, "feature_mismatch", "feature_mismatch"),
    "feature_renamed": (lambda t: rename_feature(t, 3, "something_else"), "feature_mismatch", "feature_mismatch"),
    # loads; predictor segfaults (child index far out of range)
    "child_out_of_range": (lambda t: edit_tree(edit_tree(t, "left_child", set_first(2_000_000_000)),
                                               "right_child", set_first(2_000_000_000)), "corrupt", "crashed"),
    # loads; predictor segfaults (reads row[2e9])
    "split_feature_out_of_range": (lambda t: edit_tree(t, "split_feature", set_first(2_000_000_000)),
                                   "corrupt", "crashed"),
    # loads, predicts; contributions segfault (categorical split, no category sets)
    "categorical_without_categories": (lambda t: edit_tree(t, "decision_type", set_first(1)), "corrupt", "crashed"),
    # loads; predictor loops forever (the root is its own child): the worker's event loop would hang
    "cycle": (lambda t: edit_tree(edit_tree(t, "left_child", set_first(0)), "right_child", set_first(0)),
              "corrupt", "timeout"),
}


@pytest.fixture(scope="module")
def named_text() -> str:
    return make_model_text(seed=7)


def corrupt_bytes(named_text: str, variant: str) -> bytes:
    out = VARIANTS[variant][0](named_text)
    return out if isinstance(out, bytes) else out.encode()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_check_rejects_each_corrupt_variant_with_its_reason(named_text: str, variant: str) -> None:
    data = corrupt_bytes(named_text, variant)
    with pytest.raises(ModelError) as err:
        check_model(data, meta(), FEATURES, "model v9", timeout_s=30)
    assert err.value.reason == VARIANTS[variant][1], str(err.value)
    assert "model v9" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("variant", ["child_out_of_range", "split_feature_out_of_range",
                                     "categorical_without_categories", "cycle"])
def test_without_the_tree_check_the_sandbox_contains_crashes_and_hangs(named_text: str, variant: str) -> None:
    """The static tree check off: LightGBM really segfaults / spins, in the child only."""
    data = corrupt_bytes(named_text, variant)
    started = time.monotonic()
    with pytest.raises(ModelError) as err:
        check_model(data, meta(), FEATURES, "model v9", timeout_s=4, lint=False)
    assert err.value.reason == VARIANTS[variant][2], str(err.value)
    if err.value.reason == "crashed":
        assert "SIGSEGV" in str(err.value)
    assert time.monotonic() - started < 4 + 10  # the hung child was killed, not waited for


def test_a_crash_names_the_signal_and_lightgbms_last_words(named_text: str) -> None:
    with pytest.raises(ModelError, match=r"SIGABRT.*\[LightGBM\] \[Fatal\]") as err:
        check_model(corrupt_bytes(named_text, "truncated"), meta(), FEATURES, "model v9")
    assert err.value.reason == "crashed"
    with pytest.raises(ModelError, match="SIGFPE"):
        check_model(corrupt_bytes(named_text, "zero_trees_per_iteration"), meta(), FEATURES, "model v9")


def test_a_good_model_passes_the_check_and_loads_from_the_same_bytes(tmp_path: Path, named_text: str) -> None:
    report = check_model(named_text.encode(), meta(), FEATURES, "model v1")
    assert report["ok"] and report["num_feature"] == N and report["num_trees"] == 5
    assert report["anonymous_features"] is False
    assert lint_model_text(named_text) == {"trees": 5, "num_feature": N}
    reg, v = saved(tmp_path, named_text)
    model = load_version(reg, v)
    assert model.booster.feature_name() == list(FEATURES)
    assert model.booster.model_to_string().split("end of trees")[0] == named_text.split("end of trees")[0]


def test_a_model_trained_without_names_is_checked_by_width_only() -> None:
    """LightGBM names unnamed features Column_<i>: such a file cannot contradict meta.json's names."""
    anonymous = make_model_text(names=False)
    assert "feature_names=Column_0 Column_1" in anonymous
    assert check_model(anonymous.encode(), meta(), FEATURES)["anonymous_features"] is True


def test_the_worker_feature_list_is_checked_too(named_text: str) -> None:
    """meta.json and the file agree with each other, but not with what this worker computes."""
    other = list(FEATURES[:-1]) + ["feature_of_a_newer_worker"]
    with pytest.raises(ModelError) as err:
        check_model(named_text.encode(), meta(features=other), other)
    assert err.value.reason == "feature_mismatch"
    with pytest.raises(ModelError) as err:
        check_model(named_text.encode(), meta(features=other), FEATURES)
    assert err.value.reason == "feature_mismatch" and "feature_of_a_newer_worker" in str(err.value)


@pytest.mark.parametrize("calibration", [
    {"x": [0.0, 1.0, 0.5], "y": [0.0, 0.5, 1.0]},       # x not sorted
    {"x": [0.0, 1.0], "y": [0.0]},                       # lengths differ
    {"x": [0.0, 0.5, 1.0], "y": [0.0, 0.6, 0.3]},       # not monotone
    {"x": [0.0, 1.0], "y": [0.0, 1.5]},                  # not a probability
    {"x": [0.0, float("nan")], "y": [0.0, 1.0]},         # non-finite
    {"x": ["a", "b"], "y": [0.0, 1.0]},
    [0.0, 1.0],
])
def test_bad_calibration_maps_are_rejected(named_text: str, calibration: Any) -> None:
    with pytest.raises(ModelError) as err:
        check_model(named_text.encode(), meta(calibration=calibration), FEATURES)
    assert err.value.reason == "bad_calibration"


def test_a_check_that_cannot_run_is_a_check_error(named_text: str, tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        Checker(python=shutil.which("false") or "/bin/false").run(named_text.encode(), meta(), FEATURES)
    assert err.value.reason == "check_error"
    with pytest.raises(ModelError) as err:
        Checker(python=str(tmp_path / "no-such-python")).run(named_text.encode(), meta(), FEATURES)
    assert err.value.reason == "check_error"


def test_load_model_reads_the_file_once_and_checks_its_hash(tmp_path: Path, named_text: str) -> None:
    reg, v = saved(tmp_path, named_text)
    m = reg.meta(v)
    assert load_model(reg.path(v), v, m).version == v
    (reg.path(v) / MODEL_FILE).write_text(named_text.replace("Tree=0", "Tree=0 ", 1))
    with pytest.raises(ModelError) as err:
        load_model(reg.path(v), v, m)
    assert err.value.reason == "corrupt" and "sha256" in str(err.value)


def test_promotion_refuses_a_model_that_would_crash_a_worker(tmp_path: Path, named_text: str, capsys) -> None:
    """``churnwatch models promote`` validates with load_version: the child check."""
    from apps.cli import main

    reg, v1 = saved(tmp_path, named_text)
    v2 = reg.save(corrupt_bytes(named_text, "split_feature_out_of_range").decode(), meta())
    with pytest.raises(ModelError) as err:
        reg.promote(v2, validate=lambda _p: load_version(reg, v2))
    assert err.value.reason == "corrupt" and reg.current() == v1
    v3 = reg.save(corrupt_bytes(named_text, "truncated").decode(), meta())
    code = main(["models", "promote", v3, "--models-dir", str(tmp_path)])
    err_text = capsys.readouterr().err
    assert code == 2 and reg.current() == v1 and reg.history() == [v1]
    assert err_text.count("\n") == 1 and "crashed" in err_text and v3 in err_text


# ---- the holder: rejections once, registry trouble never raises -------------------------------------------
def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_rejected_version_is_logged_once_and_retried_when_current_is_written_again(
        tmp_path: Path, named_text: str, caplog: pytest.LogCaptureFixture) -> None:
    reg, v1 = saved(tmp_path, named_text)
    holder = ModelHolder(reg)
    assert holder.refresh() == ("loaded", v1)
    v2 = reg.save(corrupt_bytes(named_text, "truncated").decode(), meta())
    reg.promote(v2)  # no validate=: promoted behind the check's back (or CURRENT written by hand)
    with caplog.at_level(logging.ERROR):
        status, detail = holder.refresh()
        assert status == "crashed" and v2 in (detail or "")
        for _ in range(3):
            assert holder.refresh() == ("unchanged", None)
    assert holder.model.version == v1
    [line] = errors(caplog)
    assert line.startswith(f"rejected model {v2} (crashed): ") and line.endswith(f"; keeping {v1}")

    # the file is fixed in place (re-hashed) and the version promoted again: it is retried and loads
    (reg.path(v2) / MODEL_FILE).write_text(named_text)
    fixed = {**reg.meta(v2), "sha256": hashlib.sha256(named_text.encode()).hexdigest()}
    (reg.path(v2) / META_FILE).write_bytes(orjson.dumps(fixed))
    assert holder.refresh() == ("unchanged", None)  # CURRENT not written again: not retried
    reg.promote(v2)  # a new CURRENT file (write + rename): a new inode
    assert holder.refresh() == ("loaded", v2)
    assert len(errors(caplog)) == 1


@pytest.mark.parametrize("breakage", ["current_is_a_directory", "current_undecodable", "current_not_a_version",
                                      "current_permission_denied", "version_missing", "meta_is_a_directory",
                                      "meta_permission_denied", "model_permission_denied"])
def test_registry_trouble_is_a_counted_failure_never_an_exception(
        tmp_path: Path, named_text: str, breakage: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    reg, v1 = saved(tmp_path, named_text)
    holder = ModelHolder(reg)
    assert holder.refresh() == ("loaded", v1)
    current = tmp_path / "CURRENT"
    denied: list[Path] = []
    if breakage == "current_is_a_directory":
        current.unlink()
        current.mkdir()
    elif breakage == "current_undecodable":
        current.write_bytes(b"\xff\xfev2\n")
    elif breakage == "current_not_a_version":
        current.write_text("latest\n")
    elif breakage == "current_permission_denied":
        denied.append(current)
    elif breakage == "version_missing":
        current.write_text("v7\n")
    else:
        v2 = reg.save(named_text, meta())
        current.write_text(v2 + "\n")
        target = reg.path(v2) / (META_FILE if breakage.startswith("meta") else MODEL_FILE)
        if breakage == "meta_is_a_directory":
            target.unlink()
            target.mkdir()
        else:
            denied.append(target)
    if denied:  # root reads anything: deny in Python, as the kernel would for another user
        real_open, real_read = open, Path.read_bytes

        def fake_open(file: Any, *a: Any, **kw: Any) -> Any:
            if Path(file) in denied:
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *a, **kw)

        def fake_read_bytes(self: Path) -> bytes:
            if self in denied:
                raise PermissionError(13, "Permission denied", str(self))
            return real_read(self)

        monkeypatch.setattr("pipeline.model.registry.open", fake_open, raising=False)
        monkeypatch.setattr(Path, "read_bytes", fake_read_bytes)
    with caplog.at_level(logging.ERROR):
        status, detail = holder.refresh()
        assert status == "registry_error", (status, detail)
        assert holder.refresh() == ("unchanged", None)  # the same problem is reported once
    assert holder.model is not None and holder.model.version == v1
    [line] = errors(caplog)
    assert "registry_error" in line and line.endswith(f"; keeping {v1}")


def test_registry_trouble_clears_and_the_next_promotion_loads(tmp_path: Path, named_text: str) -> None:
    reg, v1 = saved(tmp_path, named_text)
    holder = ModelHolder(reg)
    assert holder.refresh() == ("loaded", v1)
    (tmp_path / "CURRENT").write_text("v2\n")  # pointer written before the version is copied in
    assert holder.refresh()[0] == "registry_error"
    v2 = reg.save(named_text, meta())
    assert v2 == "v2"
    assert holder.refresh() == ("loaded", v2)  # registry errors are retried every poll


def test_refresh_in_a_thread_keeps_the_event_loop_running(tmp_path: Path, named_text: str) -> None:
    """A check that hangs (static tree check off) blocks only the thread; the loop keeps ticking and
    scoring with the old model, and close() kills the check by pid."""
    reg, v1 = saved(tmp_path, named_text)
    holder = ModelHolder(reg, check_timeout_s=60)
    assert holder.refresh() == ("loaded", v1)
    real_run = holder._checker.run
    holder._checker.run = lambda *a, **kw: real_run(*a, **{**kw, "lint": False})  # type: ignore[method-assign]
    v2 = reg.save(corrupt_bytes(named_text, "cycle").decode(), meta())
    reg.promote(v2)

    async def main() -> tuple[Any, int, float]:
        ticks = 0
        task = asyncio.ensure_future(asyncio.to_thread(holder.refresh))
        deadline = time.monotonic() + 30
        while holder._checker._proc is None and time.monotonic() < deadline:  # the child is running
            ticks += 1
            assert holder.model.predict(np.zeros((1, N))).shape == (1,)
            await asyncio.sleep(0.01)
        for _ in range(20):  # it stays up: the loop is free while the check spins
            ticks += 1
            await asyncio.sleep(0.01)
        assert not task.done()
        started = time.monotonic()
        holder.close()
        result = await asyncio.wait_for(task, 10)
        return result, ticks, time.monotonic() - started

    result, ticks, stop_s = asyncio.run(main())
    assert result == ("unchanged", None) and ticks >= 20 and stop_s < 10
    assert holder.model.version == v1
    assert holder.refresh() == ("unchanged", None)  # closed


def test_timed_model_tells_each_predict_call_and_passes_the_rest_through() -> None:
    from pipeline.model.scoring import Timed

    class Stub:
        version, thresholds = "v7", {"vip": 0.3}

        def predict(self, rows):
            return [0.5 for _ in rows]

    seen: list[tuple[float, int]] = []
    timed = Timed(Stub(), lambda seconds, rows: seen.append((seconds, rows)))
    assert timed.predict([[1.0], [2.0], [3.0]]) == [0.5, 0.5, 0.5]
    assert len(seen) == 1 and seen[0][0] >= 0.0 and seen[0][1] == 3
    assert (timed.version, timed.thresholds) == ("v7", {"vip": 0.3})
    assert getattr(timed, "compiled", None) is None  # what the decision loop asks of a model without a spec
