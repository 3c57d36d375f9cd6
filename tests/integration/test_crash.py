"""Crash safety: kill -9 the worker mid-stream, twice; the state must equal an offline replay exactly."""

from __future__ import annotations

import signal
import time

import orjson
import pytest

from devtools.simulator import SimConfig, simulate
from pipeline.config.settings import Settings
from pipeline.core.contract import DAY_MS, validate
from pipeline.core.features import CustomerState, states_from_events, vector
from pipeline.kafka.feed import read_raw
from pipeline.worker.store import FENCE_KEY, POSITION_KEY
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration

#: Fields that describe where the stream was, not what the customer did.
BOOKKEEPING = {"offsets", "partition", "alert"}
#: (the event-id memory is compared too: the same events must have been applied)


def comparable(state: CustomerState) -> dict:
    return {k: v for k, v in state.comparable().items() if k not in BOOKKEEPING}


def changelog_states(settings: Settings) -> dict[str, CustomerState]:
    """The durable state: the newest changelog record of every customer."""
    latest: dict[str, CustomerState] = {}
    for record in read_raw(settings, settings.changelog_topic, idle_s=1.0):
        if record.key in (POSITION_KEY, FENCE_KEY) or record.value is None:
            continue  # the store's control records (pipeline/worker/store.py)
        state = CustomerState.from_bytes(record.value)
        latest[state.customer_id] = state
    return latest


def test_kill_9_twice_mid_stream_loses_nothing_and_counts_nothing_twice(settings: Settings, start_worker, sender) -> None:
    now = int(time.time() * 1000)
    cfg = SimConfig(customers=300, days=12, start_ms=(now // DAY_MS - 13) * DAY_MS, seed=31, id_prefix="crash-")
    records = list(simulate(cfg))
    events = [validate(r.source, r.value, now) for r in records]
    expected = states_from_events(events)
    total = len(records)
    assert total > 5000 and len(expected) >= 250

    # The stream is sent in three slices, the worker killed while it still has the current one to read:
    # the worker reads a slice faster than a poll of its metrics may notice, so a kill "once it has
    # read X" of a stream sent whole could find it done, with nothing left for the next worker.
    # A restarted worker resumes where its state is, so the second kill waits for progress of its own.
    cuts = [0, int(total * 0.4), int(total * 0.7), total]
    kills = 0
    for i, progress in enumerate((total * 0.125, 300)):
        sender.send_all([(r.source, r.value) for r in records[cuts[i]:cuts[i + 1]]])
        worker = start_worker(settings)
        wait_for(lambda: worker.metric("churnwatch_events_consumed_total") >= progress, 120,
                 interval=0.05, what=f"worker progress before kill #{kills + 1}")
        worker.stop(sig=signal.SIGKILL)
        kills += 1
    sender.send_all([(r.source, r.value) for r in records[cuts[2]:]])
    worker = start_worker(settings)

    def caught_up() -> dict[str, CustomerState] | None:
        states = changelog_states(settings)
        done = len(states) == len(expected) and all(states[c].events == s.events for c, s in expected.items() if c in states)
        return states if done else None

    states = wait_for(caught_up, 180, interval=1.0, what="the restarted worker to catch up")
    assert kills == 2
    mismatched = [c for c, s in expected.items() if comparable(states[c]) != comparable(s)]
    if mismatched:
        c = mismatched[0]
        a, b = comparable(states[c]), comparable(expected[c])
        diff = {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
        raise AssertionError(f"{len(mismatched)} customers differ; {c}: stream vs replay {diff}")
    for c, s in expected.items():
        a, b = vector(states[c], s.last_ms), vector(s, s.last_ms)
        assert orjson.dumps(a) == orjson.dumps(b), c
    skipped = worker.metric("churnwatch_duplicates_skipped_total")
    print(f"\ncrash test: {total} events, {len(expected)} customers, 2 kill -9, "
          f"{skipped:.0f} redelivered events skipped by the last worker, 0 mismatches")
