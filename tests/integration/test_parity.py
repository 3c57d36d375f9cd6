"""Parity: every feature vector the stream scored equals the offline recomputation from the same log."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from devtools.simulator import SimConfig, simulate
from pipeline.config.settings import INPUT_SOURCES, Settings
from pipeline.core.contract import DAY_MS, validate
from pipeline.core.spec import compile_spec, spec_of_meta
from pipeline.kafka.feed import read_all, read_raw
from pipeline.model.registry import Registry
from training.assess.parity import compare
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration


def _spec_of(models: Path):
    reg = Registry(models)
    return compile_spec(spec_of_meta(reg.meta(reg.current())))


def test_streamed_feature_vectors_equal_offline_vectors(settings: Settings, start_worker, sender) -> None:
    now = int(time.time() * 1000)
    cfg = SimConfig(customers=1000, days=8, start_ms=(now // DAY_MS - 9) * DAY_MS, seed=77, id_prefix="par-")
    _check_parity(settings, start_worker, sender, cfg, min_customers=990)


def test_parity_on_a_foreign_product_with_its_own_22_event_types(settings: Settings, foreign_models: Path,
                                                                  start_worker, sender) -> None:
    """The worker computes the learnt spec of the model it runs (20 of the product's own types, users,
    values, the billing cycle); the offline side, given only the log, computes the same vectors."""
    settings = settings.with_(models_dir=foreign_models)
    compiled = _spec_of(foreign_models)
    assert len(compiled.spec.types) == 20 and compiled.spec.users and compiled.spec.values
    now = int(time.time() * 1000)
    cfg = SimConfig(customers=400, days=10, start_ms=(now // DAY_MS - 11) * DAY_MS, seed=78, id_prefix="fpar-",
                    vocabulary=22)
    records = list(simulate(cfg))
    types = {r.value["type"] for r in records if r.source == "interactions"}
    assert len(types) >= 20 and not types & {"login", "feature_use", "page_view"}
    _check_parity(settings, start_worker, sender, cfg, min_customers=390, records=records)


def _check_parity(settings: Settings, start_worker, sender, cfg: SimConfig, min_customers: int,
                  records: list | None = None) -> None:
    settings = settings.with_(emit_scores=True)
    compiled = _spec_of(settings.models_dir)
    now = int(time.time() * 1000)
    records = records if records is not None else list(simulate(cfg))
    worker = start_worker(settings)
    sender.send_all([(r.source, r.value) for r in records])
    wait_for(lambda: worker.metric("churnwatch_events_consumed_total") >= len(records), 240, interval=1.0,
             what="all events consumed")
    # the log as the stream saw it: every input event with its offset
    events = []
    for source in INPUT_SOURCES:
        for rec in read_raw(settings, settings.topic(source)):
            events.append((validate(source, orjson.loads(rec.value), now), rec.offset))
    assert len(events) == len(records)
    def all_scorings() -> list[dict] | None:
        scored = worker.metric("churnwatch_scored_total")
        published = read_all(settings, settings.scores_topic)
        return published if scored > 0 and len(published) >= scored else None

    scores = wait_for(all_scorings, 60, what="all scorings on the scores topic")
    customers = {s["customer_id"] for s in scores}
    assert len(customers) >= min_customers
    assert {len(s["features"]) for s in scores} == {len(compiled.names)}

    report = compare(scores, events, compiled=compiled)
    print(f"\nparity: {report.rows} scorings of {len(customers)} customers, {report.values} values compared, "
          f"{len(report.mismatches)} mismatches, max |diff| {report.max_abs_diff:.2e}")
    assert report.rows == len(scores) and report.rows >= len(customers)
    assert not report.mismatches, report.mismatches[:5]
