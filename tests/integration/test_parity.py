"""Parity: every feature vector the stream scored equals the offline recomputation from the same log."""

from __future__ import annotations

import time

import orjson
import pytest

from pipeline.contract import DAY_MS, validate
from pipeline.feed import read_all, read_raw
from pipeline.settings import INPUT_SOURCES, Settings
from pipeline.simulator import SimConfig, simulate
from tests.integration.conftest import wait_for
from training.parity import compare

pytestmark = pytest.mark.integration


def test_streamed_feature_vectors_equal_offline_vectors(settings: Settings, start_worker, sender) -> None:
    settings = settings.with_(emit_scores=True)
    now = int(time.time() * 1000)
    cfg = SimConfig(customers=1000, days=8, start_ms=(now // DAY_MS - 9) * DAY_MS, seed=77, id_prefix="par-")
    records = list(simulate(cfg))
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
    assert len(customers) >= 990

    report = compare(scores, events)
    print(f"\nparity: {report.rows} scorings of {len(customers)} customers, {report.values} values compared, "
          f"{len(report.mismatches)} mismatches, max |diff| {report.max_abs_diff:.2e}")
    assert report.rows == len(scores) and report.rows >= len(customers)
    assert not report.mismatches, report.mismatches[:5]
