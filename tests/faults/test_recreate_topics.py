"""Input topics deleted and re-created (offsets start again at 0), with the worker stopped or running.

Why: operators re-create topics (a retention mistake, a cluster migration, a test environment reset).
The state survives in the changelog, but every offset the worker remembered is now meaningless: new
events arrive at offsets it has "already seen". They are new events (new ids) and must be applied.
"""

from __future__ import annotations

import time

import pytest

from pipeline.kafka.topics import ensure_topics
from tests.faults.conftest import Harness, assert_all_alive, summary
from tests.faults.oracle import EventGenerator, Oracle

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def _phase1(harness: Harness, seed: int) -> tuple[EventGenerator, Oracle]:
    gen = EventGenerator(seed=seed, customers=200)
    first = gen.events(2500, tag="p1")
    oracle = Oracle()
    oracle.add_all(first)
    harness.sender().send_all(first)
    harness.assert_counts(harness.wait_exact(oracle, timeout=120)[0], "phase 1 (no fault yet)")
    return gen, oracle


def _recreate(harness: Harness) -> float:
    t0 = time.monotonic()
    harness.delete_input_topics()
    report = ensure_topics(harness.settings)
    assert set(report.created) == {harness.settings.topic(s) for s in harness.settings.input_topics}, report
    return time.monotonic() - t0


@pytest.mark.parametrize("worker_during_recreate", ["stopped", "running"])
def test_new_events_after_input_topics_recreated_are_applied(harness: Harness, worker_during_recreate: str) -> None:
    seed = 3100 if worker_during_recreate == "stopped" else 3200
    worker = harness.member("solo").start()
    gen, oracle = _phase1(harness, seed)
    phase1 = oracle.total

    timings: dict[str, float] = {}
    t0 = time.monotonic()
    if worker_during_recreate == "stopped":
        rc = worker.terminate()
        assert rc is not None
        timings["sigterm_exit_s"] = round(time.monotonic() - t0, 1)
        timings["recreate_s"] = round(_recreate(harness), 1)
        t1 = time.monotonic()
        worker.start(timeout=180)  # measured ~50 s to ready here (vs ~7 s after a kill -9)
        timings["restart_to_ready_s"] = round(time.monotonic() - t1, 1)
    else:
        timings["recreate_s"] = round(_recreate(harness), 1)

    second = gen.events(1500, tag="p2")  # new ids, the same customers
    oracle.add_all(second)
    harness.sender().send_all(second)    # a new producer: the old one cached the deleted topics
    cmp, secs = harness.wait_exact(oracle, timeout=150)
    summary(f"test_recreate_topics[{worker_during_recreate}]", phase1=phase1, phase2=len(second),
            exact=len(cmp.exact), lost=len(cmp.lost), double=len(cmp.double),
            events_missing=cmp.events_missing(), events_extra=cmp.events_extra(), wait_s=round(secs, 1),
            consumed=int(worker.metric("churnwatch_events_consumed_total")), **timings)
    harness.assert_counts(cmp, f"phase 1 + phase 2 after the input topics were re-created (worker {worker_during_recreate})")
    assert_all_alive(harness.members)
    harness.assert_interface()
