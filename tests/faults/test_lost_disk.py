"""kill -9 of the only worker while events keep arriving, restarted on its own disk, on a wiped disk and on
a disk whose state file was overwritten with garbage.

Why: the worker's states live in local files that are a copy of the changelog through a mark
(:mod:`pipeline.worker.store`). A restart on the same disk must read only the changelog's tail, and a
disk that is lost or damaged must cost a full read of the changelog, never a customer: every
customer ends with ``applied`` equal to the distinct events this test produced (its own count).
"""

from __future__ import annotations

import random
import shutil

import pytest

from tests.faults.conftest import Harness, assert_all_alive, summary, wait_for
from tests.faults.oracle import EventGenerator, Oracle

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SEED = 4242
CUSTOMERS = 200
BACKLOG = 1500
RATE = 150.0
#: what happens to the local disk before each restart, in this order
DISKS = ("kept", "wiped", "garbage", "kept")


def restores(worker, how: str) -> float:
    return worker.metric(f'churnwatch_state_restores_total{{how="{how}"}}')


def test_kill9_with_the_local_disk_kept_wiped_or_damaged_loses_nothing(harness: Harness) -> None:
    rng = random.Random(SEED)
    gen = EventGenerator(seed=SEED, customers=CUSTOMERS)
    backlog = gen.events(BACKLOG, tag="ld")
    oracle = Oracle()
    harness.sender().send_all(backlog)
    oracle.add_all(backlog)
    producer = harness.steady(gen.stream(tag="lds"), oracle, rate=RATE)

    worker = harness.member("solo")
    state_dir = worker.settings.data_dir / "state"
    worker.start()
    how_restored: list[str] = []
    for k, disk in enumerate(DISKS):
        threshold = rng.randint(150, 900)
        wait_for(lambda: (worker.assert_alive("before the kill"),
                          worker.metric("churnwatch_events_consumed_total") >= threshold)[1],
                 120, interval=0.05, what=f"progress before kill #{k + 1}")
        worker.kill9()
        files = sorted(state_dir.rglob("p*.sqlite3"))
        assert files, f"the worker kept no local state files under {state_dir}"
        if disk == "wiped":
            shutil.rmtree(state_dir)
        elif disk == "garbage":
            for f in files:
                f.write_bytes(b"\x00not a database\xff" * 512)
                for side in (f.with_name(f.name + "-wal"), f.with_name(f.name + "-shm")):
                    side.unlink(missing_ok=True)
        worker.start(wait_ready=True, timeout=120)
        kinds = {how: restores(worker, how) for how in ("restored", "tail", "kept", "reseed")}
        how_restored.append(f"{disk}:" + ",".join(f"{h}={int(n)}" for h, n in kinds.items() if n))
        if disk == "kept":
            # the same disk: every partition from its local copy plus the tail, none read whole
            assert kinds["restored"] == 0 and kinds["tail"] + kinds["kept"] == harness.settings.partitions, how_restored
        else:
            assert kinds["restored"] == harness.settings.partitions, how_restored

    producer.halt()
    tail = harness.send_tail(gen, oracle)
    assert oracle.total == BACKLOG + producer.sent + tail
    cmp, secs = harness.wait_exact(oracle, timeout=180)
    summary("test_lost_disk", events=oracle.total, disks=list(DISKS), restores=how_restored,
            catch_up_s=round(secs, 1), exact=len(cmp.exact), lost=len(cmp.lost), double=len(cmp.double),
            unavailable=len(cmp.unavailable))
    harness.assert_counts(cmp, "after kill -9 with the local disk kept, wiped and damaged")
    assert_all_alive(harness.members)
