"""The broker dies and comes back empty (kill -9 of Tansu with memory storage), on the same address.

Why: a worker must notice an outage (readiness goes to 0 so an orchestrator stops routing to it)
and recover by itself when the broker is back — here the worst case, a broker that lost every topic,
committed offset and the state changelog. The worker still holds phase-1 state in memory, so after
the outage the counts must be phase 1 + phase 2; and once it is restarted itself, that state can only
come back if the worker re-seeded the (lost) changelog from memory: the last step checks exactly that.
"""

from __future__ import annotations

import time

import pytest

from pipeline.kafka.topics import ensure_topics
from tests.faults.conftest import Harness, Steps, assert_all_alive, summary
from tests.faults.oracle import EventGenerator, Oracle

pytestmark = [pytest.mark.integration, pytest.mark.faults]

#: The documented bound for the outage to show in churnwatch_worker_ready, plus scrape/poll slack.
OUTAGE_DETECT_S = 15.0
POLL_SLACK_S = 2.0


def test_broker_lost_and_restarted_empty(harness: Harness) -> None:
    steps = Steps()
    gen = EventGenerator(seed=5150, customers=180)
    first = gen.events(2000, tag="p1")
    oracle = Oracle()
    oracle.add_all(first)

    worker = harness.member("solo").start()
    harness.sender().send_all(first)
    cmp, _ = harness.wait_exact(oracle, timeout=120)
    harness.assert_counts(cmp, "phase 1 (no fault yet)")

    # ---- the outage: kill -9 of the broker -----------------------------------------------------
    harness.close_senders()
    harness.kill9_broker()
    t_kill = time.monotonic()
    metric_down_s = ready_503_s = None
    ready_seen: tuple[int, object] = (0, None)
    while time.monotonic() - t_kill < OUTAGE_DETECT_S + 10:
        worker.assert_alive("during the broker outage")
        if metric_down_s is None and worker.metric("churnwatch_worker_ready", default=-1) == 0:
            metric_down_s = round(time.monotonic() - t_kill, 1)
        if ready_503_s is None:
            ready_seen = worker.ready()
            if ready_seen[0] == 503 and isinstance(ready_seen[1], dict) and ready_seen[1].get("ready") is False:
                ready_503_s = round(time.monotonic() - t_kill, 1)
        if metric_down_s is not None and ready_503_s is not None:
            break
        time.sleep(0.25)
    steps.check("outage: churnwatch_worker_ready -> 0 within 15 s",
                metric_down_s is not None and metric_down_s <= OUTAGE_DETECT_S + POLL_SLACK_S,
                f"metric went 0 after {metric_down_s} s (None = not within {OUTAGE_DETECT_S + 10:.0f} s)")
    steps.check("outage: GET /ready -> 503 {ready: false}", ready_503_s is not None,
                f"last GET /ready: {ready_seen[0]} {str(ready_seen[1])[:160]}")
    steps.check("outage: GET /health -> 200 (the process is alive)", worker.health() == 200,
                f"GET /health -> {worker.health()}")

    # ---- the broker is back, empty, on the same port -------------------------------------------
    harness.restart_broker_same_port()
    ensure_topics(harness.settings)  # right away: the topics (changelog included) are gone
    t_back = time.monotonic()
    second = gen.events(1500, tag="p2")
    oracle.add_all(second)
    harness.sender().send_all(second)
    ready_again = None
    try:
        harness.wait_ready([worker], 120, "broker back")
        ready_again = round(time.monotonic() - t_back, 1)
    except AssertionError as exc:
        worker.assert_alive("after the broker came back")
        steps.check("broker back: churnwatch_worker_ready -> 1", False, str(exc)[:300])
    cmp2, secs2 = harness.wait_exact(oracle, timeout=150)
    steps.check("broker back: counts == phase 1 + phase 2 (phase 1 from the worker's memory)",
                cmp2.ok, cmp2.describe())

    # one line that says what happened, not a line per failed reconnect
    assert worker.log_path is not None
    log_lines = worker.log_path.read_text(errors="replace").splitlines()
    outage_warnings = [ln for ln in log_lines if "broker unreachable" in ln]
    steps.check("log: one WARNING for the outage, not thousands of lines",
                len(outage_warnings) == 1 and len(log_lines) < 200,
                f"{len(outage_warnings)} 'broker unreachable' lines, {len(log_lines)} lines in all")

    # ---- the worker restarts: its state can only come from the re-seeded changelog --------------
    worker.kill9()
    t_restart = time.monotonic()
    worker.start(wait_ready=False)
    harness.wait_ready([worker], 120, "worker restarted after the broker data loss")
    restart_ready = round(time.monotonic() - t_restart, 1)
    harness.send_tail(gen, oracle)  # processed last: by then any re-read of phase 2 has happened too
    cmp3, secs3 = harness.wait_exact(oracle, timeout=150)
    steps.check("worker restarted: state changelog was re-seeded after the broker lost it "
                "(counts == phase 1 + phase 2 + one tail event per customer)", cmp3.ok, cmp3.describe())

    summary("test_broker_restart", log_lines=len(log_lines), phase1=len(first), phase2=len(second), metric_down_s=metric_down_s,
            ready_503_s=ready_503_s, ready_again_s=ready_again,
            after_outage=f"exact={len(cmp2.exact)}/lost={len(cmp2.lost)}/double={len(cmp2.double)}",
            after_worker_restart=f"exact={len(cmp3.exact)}/lost={len(cmp3.lost)}/double={len(cmp3.double)}",
            restart_to_ready_s=restart_ready, events_missing_after_restart=cmp3.events_missing())
    assert_all_alive(harness.members)
    steps.assert_all()
    harness.assert_interface()
