"""One poison event inside a burst of valid ones.

Why: the worker validates and folds events in micro-batches. An optional timestamp far outside any
real range (``sla_due`` 1e30, ``renewal_ts`` beyond 64 bits, year 99999) passes a naive check and
blows up later — when the state is serialised or a date is formatted — taking the whole batch (or the
worker) with it. The contract: the poison event goes to the dead-letter topic with a reason, every
other event of the same batch is applied, and the worker stays alive and ready.
"""

from __future__ import annotations

import random

import pytest

from tests.faults.conftest import Harness, assert_all_alive, summary, wait_dead_lettered
from tests.faults.oracle import EventGenerator, Ev, Oracle

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def _poison(gen: EventGenerator, cid: str, variant: str) -> Ev:
    if variant == "ticket_sla_due_1e30":
        ev = gen.ticket(cid, tag="poison")
        if ev.value["type"] != "opened":  # any ticket event may carry sla_due; keep it an 'opened'
            ev = Ev("tickets", {**gen.base(cid, "opened", "poison"), "ticket_id": f"{cid}-poison",
                                "severity": "high"})
        ev.value["sla_due"] = 1e30
        return ev
    ev = gen.profile(cid, tag="poison")
    if variant == "profile_renewal_ts_1e25":
        ev.value["renewal_ts"] = 1e25
    elif variant == "profile_renewal_ts_beyond_int64":
        ev.value["renewal_ts"] = 99999999999999999999
    elif variant == "profile_signup_ts_year_99999":
        ev.value["signup_ts"] = "99999-01-01"
    else:
        raise ValueError(variant)
    return ev


VARIANTS = ["ticket_sla_due_1e30", "profile_renewal_ts_1e25", "profile_renewal_ts_beyond_int64",
            "profile_signup_ts_year_99999"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_poison_event_is_dead_lettered_and_the_rest_of_its_batch_applied(harness: Harness, variant: str) -> None:
    seed = 6000 + VARIANTS.index(variant)
    rng = random.Random(seed)
    gen = EventGenerator(seed=seed, customers=60)
    valid = gen.events(180, tag="burst")
    target = rng.choice(gen.customer_ids)  # a customer that also has valid events in the same burst
    poison = _poison(gen, target, variant)
    burst = list(valid)
    burst.insert(rng.randint(40, 140), poison)
    oracle = Oracle()
    oracle.add_all(valid)  # never the poison

    # The whole burst is on the topics, flushed once, before the worker's first fetch: it is read
    # as one micro-batch (or very few) with the poison in the middle.
    sender = harness.sender()
    for ev in burst:
        sender.send(ev)
    sender.flush()
    worker = harness.member("solo").start()

    consumed_all = harness.wait_consumed(worker, len(burst), timeout=60, soft=True)
    cmp, secs = harness.wait_exact(oracle, timeout=90, settle_s=20)
    found = wait_dead_lettered(harness.settings, [poison.event_id], timeout=30)
    rec = found.get(poison.event_id)

    # the worker carries on: a second burst after the poison is applied too
    after = gen.events(120, tag="after")
    oracle.add_all(after)
    sender.send_all(after)
    cmp2, _ = harness.wait_exact(oracle, timeout=90, settle_s=20)
    metric_ready = worker.metric("churnwatch_worker_ready")
    ready_status = worker.ready()
    ready_ok = worker.alive and metric_ready >= 1 and worker.ready_endpoint_ok()

    summary(f"test_poison[{variant}]", burst=len(burst), valid=len(valid),
            dead_lettered=bool(rec), reason=(rec or {}).get("reason"),
            burst_exact=len(cmp.exact), burst_lost=len(cmp.lost), burst_double=len(cmp.double),
            events_missing=cmp.events_missing(), after_exact=len(cmp2.exact), after_lost=len(cmp2.lost),
            consumed_all=consumed_all, alive=worker.alive, ready_metric=metric_ready, ready_http=ready_status[0])
    assert_all_alive(harness.members, "after the poison event")
    harness.assert_counts(cmp, f"every valid event of the burst with the {variant} poison applied")
    assert rec is not None, f"the poison event {poison.event_id} ({variant}) is not on the dead-letter topic"
    assert rec.get("reason"), f"dead-letter record without a reason: {rec}"
    assert rec.get("topic") == harness.settings.topic(poison.source) and "offset" in rec, rec
    harness.assert_counts(cmp2, "events after the poison applied (the worker carries on)")
    assert ready_ok, f"worker not ready after the poison: metric={metric_ready} GET /ready={ready_status}"
    harness.assert_interface()
