"""kill -9 of the only worker, three times, while events keep arriving.

Why: a crash between "state written" and "offsets committed" (or the reverse) is where streaming jobs
lose events or count them twice. A worker that is killed without any chance to flush and restarted
must end with every customer's ``applied`` equal to the distinct events the test produced.

Two kinds of moment, both seeded: *busy* (mid-stream, after the incarnation consumed a random number
of events) and *quiet* (the worker has caught up and stayed idle a few seconds, long enough for any
periodic offset commit to have happened: a restore that misses the newest state writes only shows
when nothing after the commit is re-read).
"""

from __future__ import annotations

import random
import time

import pytest

from tests.faults.conftest import Harness, assert_all_alive, summary, wait_for
from tests.faults.oracle import EventGenerator, Oracle

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SEED = 9001
CUSTOMERS = 250
BACKLOG = 2000   # waiting on the topics when the first worker starts
RATE = 150.0     # then a steady trickle (~40 s of kills and restarts: ~6k more events)
KILLS = 3


def test_kill9_three_times_while_producing_loses_nothing_and_counts_nothing_twice(harness: Harness) -> None:
    rng = random.Random(SEED)
    gen = EventGenerator(seed=SEED, customers=CUSTOMERS)
    backlog = gen.events(BACKLOG, tag="k9")
    oracle = Oracle()

    # a backlog first, then a steady trickle that runs through all the kills (an endless stream, so
    # every incarnation has something to consume before its kill however slow the machine is)
    harness.sender().send_all(backlog)
    oracle.add_all(backlog)
    producer = harness.steady(gen.stream(tag="k9s"), oracle, rate=RATE)

    worker = harness.member("solo")
    worker.start()
    recoveries: list[float] = []
    kill_points: list[str] = []
    modes = ["busy", "quiet", "busy"]
    rng.shuffle(modes)
    for k, mode in enumerate(modes):
        # a seeded moment: after this incarnation has consumed a random number of events ...
        threshold = rng.randint(150, 1200)
        wait_for(lambda: (worker.assert_alive("before the kill"),
                          worker.metric("churnwatch_events_consumed_total") >= threshold)[1],
                 120, interval=0.05, what=f"progress before kill #{k + 1}")
        if mode == "quiet":
            # ... and, for a quiet kill, once everything sent so far is applied, plus a few idle seconds
            producer.pause()
            harness.assert_counts(harness.wait_exact(oracle, timeout=120)[0], f"caught up before quiet kill #{k + 1}")
            idle = rng.uniform(3.5, 6.0)
            time.sleep(idle)  # the fault schedule itself (idle time before the kill), not a wait for a condition
            kill_points.append(f"quiet:{threshold}+{idle:.1f}s")
        else:
            kill_points.append(f"busy:{threshold}")
        worker.kill9()
        producer.resume()
        t0 = time.monotonic()
        worker.start(wait_ready=True, timeout=120)
        recoveries.append(round(time.monotonic() - t0, 1))

    producer.halt()
    tail = harness.send_tail(gen, oracle)
    assert oracle.total == BACKLOG + producer.sent + tail
    cmp, secs = harness.wait_exact(oracle, timeout=180)
    dups = worker.metric("churnwatch_duplicates_skipped_total")
    summary("test_kill9", events=oracle.total, kills=KILLS, kill_after_consumed=kill_points,
            restart_to_ready_s=recoveries, catch_up_s=round(secs, 1), duplicates_skipped=int(dups),
            exact=len(cmp.exact), lost=len(cmp.lost), double=len(cmp.double),
            unavailable=len(cmp.unavailable), http_5xx=harness.http.server_errors)
    harness.assert_counts(cmp, "after 3 x kill -9 and restart")
    assert_all_alive(harness.members)
    harness.assert_interface()
