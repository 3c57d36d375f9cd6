"""A running worker picks up a promoted model without restart and refuses a bad one."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import orjson
import pytest

from pipeline.config.settings import Settings
from pipeline.core.contract import DAY_MS
from pipeline.core.spec import compile_spec, safe_name, spec_of_meta
from pipeline.model.registry import MODEL_FILE, Registry
from tests.integration.conftest import read_topic, wait_for
from tests.integration.scenarios import event

pytestmark = pytest.mark.integration


def _copy_version(reg: Registry, version: str, edit=None) -> str:
    """Save a copy of ``version`` as a new version, optionally editing (model_text, meta) first."""
    text = (reg.path(version) / MODEL_FILE).read_text()
    meta = {k: v for k, v in reg.meta(version).items() if k not in ("version", "sha256")}
    if edit is not None:
        text, meta = edit(text, meta)
    return reg.save(text, meta)


def test_promotion_is_picked_up_and_bad_models_are_rejected(settings: Settings, start_worker, sender,
                                                            tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(settings.models_dir, models)
    settings = settings.with_(models_dir=models, emit_scores=True)
    reg = Registry(models)
    worker = start_worker(settings)
    assert worker.metric('churnwatch_model_info{version="v1"}') == 1

    v2 = _copy_version(reg, "v1")
    started = time.monotonic()
    reg.promote(v2)
    wait_for(lambda: worker.metric(f'churnwatch_model_info{{version="{v2}"}}') == 1, 10, what=f"{v2} loaded")
    reload_s = time.monotonic() - started
    day = (int(time.time() * 1000) // DAY_MS - 1) * DAY_MS
    sender.send_all([event("interactions", "reload-1", day, "login")])
    scores = wait_for(lambda: [s for s in read_topic(settings, settings.scores_topic) if s["customer_id"] == "reload-1"],
                      30, what="a scoring after the promotion")
    assert scores[-1]["model_version"] == v2

    # a corrupt file that lands as current (e.g. a copy interrupted half-way) is refused
    v3 = _copy_version(reg, v2)
    (reg.path(v3) / MODEL_FILE).write_text("tree\nthis is not a LightGBM model\n")
    (models / "CURRENT").write_text(v3 + "\n")
    wait_for(lambda: worker.metric('churnwatch_model_reload_failures_total{reason="corrupt"}') >= 1, 10,
             what="the corrupt model to be rejected")
    # a model built for other features is refused too, even with a valid checksum
    v4 = _copy_version(reg, v2, edit=lambda text, meta: (text, {**meta, "features": list(reversed(meta["features"]))}))
    (models / "CURRENT").write_text(v4 + "\n")
    wait_for(lambda: worker.metric('churnwatch_model_reload_failures_total{reason="feature_mismatch"}') >= 1, 10,
             what="the mismatched model to be rejected")
    assert worker.metric(f'churnwatch_model_info{{version="{v2}"}}') == 1
    assert worker.metric("churnwatch_model_loaded") == 1
    assert "rejected model" in worker.log()
    sender.send_all([event("interactions", "reload-1", day + 1000, "feature_use", feature="reports")])
    later = wait_for(lambda: [s for s in read_topic(settings, settings.scores_topic)
                              if s["customer_id"] == "reload-1" and s["ts_ms"] == day + 1000], 30,
                     what="a scoring after the rejections")
    assert later[-1]["model_version"] == v2
    print(f"\nhot reload: promotion picked up after {reload_s:.1f}s")
    assert orjson.loads((reg.path(v2) / "meta.json").read_bytes())["version"] == v2


def test_a_reload_to_a_model_with_another_feature_spec_needs_no_replay(settings: Settings, foreign_models: Path,
                                                                       start_worker, sender, tmp_path: Path) -> None:
    """docs/features.md, "Hot reload across specs": the state keeps every type a customer used, so the
    new model's features cover the events that arrived under the old one; a model trained with other
    feature settings is refused and the running one stays."""
    models = tmp_path / "models"
    shutil.copytree(settings.models_dir, models)
    settings = settings.with_(models_dir=models, emit_scores=True)
    reg = Registry(models)
    foreign = Registry(foreign_models)
    fv = foreign.current()
    spec = compile_spec(spec_of_meta(foreign.meta(fv)))
    own = compile_spec(spec_of_meta(reg.meta("v1")))
    assert spec.names != own.names
    typ = spec.spec.types[0]
    v2 = reg.save((foreign.path(fv) / MODEL_FILE).read_text(),
                  {k: v for k, v in foreign.meta(fv).items() if k not in ("version", "sha256")})
    worker = start_worker(settings)
    day = (int(time.time() * 1000) // DAY_MS - 3) * DAY_MS
    sender.send_all([event("interactions", "spec-1", day + i * 3_600_000, typ) for i in range(3)])

    def scorings(n: int) -> list[dict]:
        got = [s for s in read_topic(settings, settings.scores_topic) if s["customer_id"] == "spec-1"]
        return got if len(got) >= n else []

    before = wait_for(lambda: scorings(1), 30, what="a scoring under v1")
    assert before[-1]["model_version"] == "v1" and len(before[-1]["features"]) == len(own.names)

    reg.promote(v2)
    wait_for(lambda: worker.metric(f'churnwatch_model_info{{version="{v2}"}}') == 1, 20, what=f"{v2} loaded")
    assert "computes other features" in worker.log()
    sender.send_all([event("interactions", "spec-1", day + DAY_MS, typ)])
    after = wait_for(lambda: [s for s in scorings(2) if s["model_version"] == v2], 30, what=f"a scoring under {v2}")
    row = dict(zip(spec.names, after[-1]["features"]))
    assert len(after[-1]["features"]) == len(spec.names)
    assert row[f"type_{safe_name(typ)}_7d"] == 4  # the three events that arrived under v1 count too

    lateness = _copy_version(reg, "v1", edit=lambda text, meta: (
        text, {**meta, "feature_config": {**meta["feature_config"], "allowed_lateness_days": 30}}))
    reg.promote(lateness)
    wait_for(lambda: worker.metric('churnwatch_model_reload_failures_total{reason="feature_config"}') >= 1, 20,
             what="the model trained with other feature settings to be rejected")
    assert worker.metric(f'churnwatch_model_info{{version="{v2}"}}') == 1
    assert "allowed_lateness_days=30" in worker.log()
