"""Re-sent events and badly keyed messages.

Why: producers retry. A retried send is the same event (same ``event_id``) at a NEW offset, so an
offset watermark alone cannot recognise it; the worker must count distinct events. And a message
whose key is missing or is not its ``customer_id`` may sit on the wrong partition (the wrong owner):
it must go to the dead-letter topic instead of being folded into some state, without blocking that
customer's later, well-keyed events.
"""

from __future__ import annotations

import json
import random

import pytest

from tests.faults.conftest import Harness, assert_all_alive, summary, wait_dead_lettered
from tests.faults.oracle import EventGenerator, Oracle

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def test_resent_events_are_counted_once(harness: Harness) -> None:
    seed = 777
    rng = random.Random(seed)
    gen = EventGenerator(seed=seed, customers=200)
    first = gen.events(3000, tag="first")
    oracle = Oracle()
    oracle.add_all(first)

    worker = harness.member("solo").start()
    sender = harness.sender()
    sender.send_all(first)
    cmp1, secs1 = harness.wait_exact(oracle, timeout=120)
    harness.assert_counts(cmp1, "phase 1 (no fault yet)")

    # 30% of the same events again (same ids, new offsets), mixed with new ones
    resent = rng.sample(first, k=int(0.3 * len(first)))
    fresh = gen.events(600, tag="fresh", customers=gen.customer_ids)
    mixed = resent + fresh
    rng.shuffle(mixed)
    sender.send_all(mixed)
    oracle.add_all(mixed)  # the re-sent ones add nothing: the oracle counts distinct event ids

    # every message read first: "exact" must not mean "the re-sent ones were not read yet"
    harness.wait_consumed(worker, len(first) + len(mixed))
    cmp, secs = harness.wait_exact(oracle, timeout=120)
    dups = worker.metric("churnwatch_duplicates_skipped_total")
    summary("test_resend", events_distinct=oracle.total, resent=len(resent), fresh=len(fresh),
            exact=len(cmp.exact), lost=len(cmp.lost), double=len(cmp.double), events_extra=cmp.events_extra(),
            duplicates_skipped_metric=int(dups), settle_s=round(secs, 1))
    harness.assert_counts(cmp, "after re-sending 30% of the events")
    assert dups > 0, "churnwatch_duplicates_skipped_total stayed 0 although 900 events were re-sent"
    assert_all_alive(harness.members)
    harness.assert_interface()


def test_null_and_mismatched_keys_are_dead_lettered_and_later_events_still_apply(harness: Harness) -> None:
    seed = 778
    rng = random.Random(seed)
    gen = EventGenerator(seed=seed, customers=150)
    first = gen.events(1500, tag="base")
    oracle = Oracle()
    oracle.add_all(first)

    worker = harness.member("solo").start()
    sender = harness.sender()
    sender.send_all(first)
    harness.assert_counts(harness.wait_exact(oracle, timeout=120)[0], "phase 1 (no fault yet)")

    victims = rng.sample(gen.customer_ids, 12)
    bad: dict[str, str] = {}  # event_id -> expected dead-letter reason
    later = []
    for cid in victims:
        null_keyed = gen.event(cid, tag="nullkey")
        sender.send(null_keyed, key=None)
        bad[null_keyed.event_id] = "missing_key"
        mis_keyed = gen.event(cid, tag="miskey")
        # a key that is another (real) customer's id: the message lands on that customer's partition
        other = rng.choice([c for c in gen.customer_ids if c != cid])
        sender.send(mis_keyed, key=other.encode())
        bad[mis_keyed.event_id] = "key_mismatch"
        # then the customer's normal, well-keyed events continue
        for _ in range(3):
            ev = gen.event(cid, tag="after")
            sender.send(ev)
            later.append(ev)
    sender.flush()
    oracle.add_all(later)  # the badly keyed ones must never be applied

    harness.wait_consumed(worker, len(first) + len(bad) + len(later))
    cmp, secs = harness.wait_exact(oracle, timeout=120)
    found = wait_dead_lettered(harness.settings, bad, timeout=60)
    reasons = {eid: rec.get("reason") for eid, rec in found.items()}
    wrong_reason = {eid: (reasons.get(eid), want) for eid, want in bad.items() if reasons.get(eid) != want}
    dl_metric = worker.metric("churnwatch_deadletters_total")
    summary("test_bad_keys", events_applied=oracle.total, bad_keyed=len(bad), dead_lettered=len(found),
            wrong_or_missing_reason=len(wrong_reason), deadletters_metric=int(dl_metric),
            exact=len(cmp.exact), lost=len(cmp.lost), double=len(cmp.double), events_extra=cmp.events_extra())
    harness.assert_counts(cmp, "bad-keyed messages never applied; the customers' later events applied")
    assert not wrong_reason, (f"{len(wrong_reason)} of {len(bad)} badly keyed messages not dead-lettered with "
                              f"the right reason (event_id: (got, wanted)): {dict(list(wrong_reason.items())[:6])}")
    for eid, rec in found.items():
        assert json.loads(rec["original"])["event_id"] == eid and rec.get("topic") and "offset" in rec
    assert_all_alive(harness.members)
    harness.assert_interface()
