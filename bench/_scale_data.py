"""Data and probes of ``bench_scale.py``: a cheap seeded backlog, marker events, and what a worker holds.

Why a generator of its own: the simulator builds a customer's whole story (days of sessions, tickets,
surveys), far too slow and too many events for a million customers. A scale run needs *many customers
with a few valid events each*, produced fast; the shapes are the contract's (``pipeline/core/contract.py``:
a ``profile`` on ``customers``, interactions on ``interactions``), the same fields the simulator writes.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import orjson

from _common import BenchError

from devtools.simulator import SimRecord
from pipeline.config.settings import Settings
from pipeline.core.contract import format_ts

DAY_MS = 86_400_000
TIERS = ("standard", "standard", "standard", "vip")
PLANS = ("basic", "pro", "enterprise")
CSMS = ("alice", "bob", "carol", "dave")
INTERACTIONS = (("login", {"duration_s": 40.0}), ("page_view", {"page": "/home"}),
                ("feature_use", {"feature": "dashboards", "duration_s": 30.0}))


def customer_id(i: int) -> str:
    return f"sc-{i:07d}"


def backlog(customers: int, events_per_customer: int, seed: int, end_ms: int | None = None) -> Iterator[SimRecord]:
    """Per customer: one profile upsert, then ``events_per_customer - 1`` interactions, in event-time order,
    all within the two days before ``end_ms`` (default now): inside the contract's time limits and the
    state's allowed lateness, so every event is applied. Lazy: a million customers never sit in memory."""
    if events_per_customer < 1:
        raise BenchError("--events-per-customer must be >= 1")
    rng = random.Random(seed)
    end_ms = int(time.time() * 1000) if end_ms is None else end_ms
    start_ms = end_ms - 2 * DAY_MS
    for i in range(customers):
        cid = customer_id(i)
        ts = start_ms + rng.randrange(DAY_MS)
        yield SimRecord("customers", cid, ts, {
            "event_id": f"{cid}-0", "customer_id": cid, "ts": format_ts(ts), "type": "profile",
            "schema_version": 1, "tier": rng.choice(TIERS), "plan": rng.choice(PLANS),
            "mrr": round(rng.uniform(20, 2000), 2), "csm": rng.choice(CSMS), "term": "annual",
            "signup_ts": format_ts(ts - rng.randrange(30, 900) * DAY_MS),
        })
        for k in range(1, events_per_customer):
            ts += rng.randrange(60_000, 6 * 3_600_000)
            typ, extra = INTERACTIONS[rng.randrange(len(INTERACTIONS))]
            yield SimRecord("interactions", cid, ts, {
                "event_id": f"{cid}-{k}", "customer_id": cid, "ts": format_ts(min(ts, end_ms)), "type": typ,
                "schema_version": 1, **extra,
            })


def marker(cid: str, n: int) -> tuple[SimRecord, str]:
    """A new interaction for ``cid`` at the wall clock, and the ``last_event_time`` the customer view
    shows once it is applied (newer than any backlog event, so it is the customer's newest)."""
    ts = int(time.time() * 1000)
    rec = SimRecord("interactions", cid, ts, {"event_id": f"{cid}-marker-{n}-{ts}", "customer_id": cid,
                                              "ts": ts, "type": "login", "schema_version": 1, "duration_s": 5.0})
    return rec, format_ts(ts)


async def _send_one(settings: Settings, rec: SimRecord) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks=1, linger_ms=0)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic(rec.source), orjson.dumps(rec.value), key=rec.key.encode())
    finally:
        await producer.stop()


def send_one(settings: Settings, rec: SimRecord) -> None:
    asyncio.run(_send_one(settings, rec))


# ---- probes ----------------------------------------------------------------------------------------
def http_get(url: str, timeout: float = 2.0) -> tuple[int, Any]:
    """(status, decoded JSON body or None); status 0 when nothing answers (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, orjson.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            return e.code, orjson.loads(e.read() or b"null")
        except orjson.JSONDecodeError:
            return e.code, None
    except (OSError, orjson.JSONDecodeError):
        return 0, None


def web_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.web_port}"


def disk_bytes(path: Path) -> int:
    """What ``du`` reports for a directory tree: allocated blocks, not apparent sizes."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def changelog_size(settings: Settings, sample: int = 2000) -> tuple[int, float]:
    """(records, estimated bytes) of the state changelog: end offsets summed, and the mean key + value size
    of the first ``sample`` records of each partition times that count. Reading a million records back
    would cost as much as the restore being measured; a sample keeps it a side figure."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", consumer_timeout_ms=3000)
    try:
        tps = [TopicPartition(settings.changelog_topic, p) for p in range(settings.partitions)]
        ends = c.end_offsets(tps)
        total = int(sum(ends.values()))
        sizes: list[int] = []
        for tp in tps:
            if not ends[tp]:
                continue
            c.assign([tp])
            c.seek_to_beginning(tp)
            want = min(sample, ends[tp])
            got = 0
            deadline = time.monotonic() + 10
            while got < want and time.monotonic() < deadline:
                for recs in c.poll(timeout_ms=500, max_records=want - got).values():
                    for rec in recs:
                        sizes.append(len(rec.key or b"") + len(rec.value or b""))
                        got += 1
        mean = sum(sizes) / len(sizes) if sizes else 0.0
        return total, mean * total
    finally:
        c.close()
