"""The worker's batch code without a broker (``BatchProcessor.detach``): one bad event never costs the others,
and nothing is told to the world before the state it describes was written."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from pipeline.config.settings import Settings
from pipeline.core import fold as fold_module
from pipeline.core import decisions as decisions_module
from pipeline.core.contract import format_ts
from pipeline.core.features import CustomerState
from pipeline.worker.batch import BatchProcessor
from pipeline.worker.store import POSITION_KEY
from training.assess.shadow import partitioner

T0 = 1_764_000_000_000


@pytest.fixture
def worker(tmp_path: Path) -> tuple[BatchProcessor, list]:
    settings = Settings.from_env(env={}).with_(broker="kafka://127.0.0.1:1", models_dir=tmp_path / "models",
                                               data_dir=tmp_path / "data", partitions=2)
    w = BatchProcessor(settings)
    written: list = []
    w.detach(lambda records: written.append(list(records)))
    return w, written


_offsets = itertools.count()


def message(w: BatchProcessor, source: str, value: dict | bytes, key: Any = "default") -> SimpleNamespace:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    cid = value.get("customer_id") if isinstance(value, dict) else "x"
    k = cid.encode() if key == "default" else key
    part = partitioner(w.settings.partitions)(cid)
    return SimpleNamespace(topic=w.settings.topic(source), partition=part, offset=next(_offsets), key=k, value=raw)


def login(cid: str, i: int) -> dict:
    return {"event_id": f"{cid}-{i}", "customer_id": cid, "ts": format_ts(T0 + i * 60_000), "type": "login",
            "schema_version": 1}


def state(w: BatchProcessor, cid: str) -> CustomerState:
    raw = w.store.find(cid.encode())
    assert raw is not None, cid
    return CustomerState.from_bytes(raw)


def dead(written: list) -> list[dict]:
    return [orjson.loads(v) for batch in written for t, _k, v, _p in batch if t.endswith("deadletter")]


def test_an_exception_while_applying_one_event_dead_letters_only_that_event(worker, monkeypatch):
    w, written = worker
    real = fold_module.apply

    def apply(st, ev, *a, **k):
        if ev.event_id == "poison":
            raise OverflowError("int too large to convert")
        return real(st, ev, *a, **k)

    monkeypatch.setattr(fold_module, "apply", apply)
    batch = [message(w, "interactions", login(f"c{i % 30}", i)) for i in range(180)]
    batch.insert(77, message(w, "interactions", {**login("c7", 999), "event_id": "poison"}))
    asyncio.run(w.process_batch(batch))
    assert sum(state(w, f"c{i}").applied["interactions"] for i in range(30)) == 180
    (d,) = dead(written)
    assert d["reason"] == "internal_error" and "OverflowError" in d["detail"] and orjson.loads(d["original"])["event_id"] == "poison"


def test_a_state_that_cannot_be_stored_or_scored_is_rebuilt_without_the_event_that_broke_it(worker, monkeypatch):
    w, written = worker
    real = decisions_module.vector

    def vector(st, now_ms):
        if st.applied.get("surveys"):
            raise ValueError("poisoned survey state")
        return real(st, now_ms)

    monkeypatch.setattr(decisions_module, "vector", vector)  # what a worker without a model computes
    survey = {"event_id": "s1", "customer_id": "c1", "ts": format_ts(T0 + 5), "type": "nps", "score": 3,
              "schema_version": 1}
    batch = [message(w, "interactions", login("c1", 1)), message(w, "surveys", survey),
             message(w, "interactions", login("c1", 2)), message(w, "interactions", login("c2", 3))]
    asyncio.run(w.process_batch(batch))
    assert state(w, "c1").applied == {"interactions": 2} and state(w, "c2").applied == {"interactions": 1}
    assert [d["reason"] for d in dead(written)] == ["internal_error"]


def test_null_and_mismatched_keys_are_dead_lettered_and_do_not_block_the_customer(worker):
    w, written = worker
    batch = [message(w, "interactions", login("c1", 1), key=None),
             message(w, "interactions", login("c1", 2), key=b"someone-else"),
             message(w, "interactions", login("c1", 3))]
    asyncio.run(w.process_batch(batch))
    assert state(w, "c1").applied == {"interactions": 1}
    assert sorted(d["reason"] for d in dead(written)) == ["key_mismatch", "missing_key"]


def test_a_resent_event_is_counted_once(worker):
    w, written = worker
    events = [login("c1", i) for i in range(10)]
    asyncio.run(w.process_batch([message(w, "interactions", e) for e in events]))
    asyncio.run(w.process_batch([message(w, "interactions", e) for e in events[3:]]))
    assert state(w, "c1").applied == {"interactions": 10}


def test_writes_go_dead_letters_then_states_and_position_then_alerts(worker):
    w, written = worker
    batch = [message(w, "interactions", b"not json"), message(w, "interactions", login("c1", 1))]
    asyncio.run(w.process_batch(batch))
    kinds = [[t.rsplit(".", 1)[-1] if not t.endswith("changelog") else "changelog" for t, *_ in b] for b in written]
    assert kinds[0] == ["deadletter"]
    assert set(kinds[1]) == {"changelog"}
    keys = [k for _t, k, _v, _p in written[1]]
    assert keys[-1] == POSITION_KEY and b"c1" in keys


def test_too_large_dead_letters_keep_the_first_64_kib_as_base64(worker):
    import base64

    w, written = worker
    big = b'{"x": "' + b"a" * 70_000 + b'"}'
    asyncio.run(w.process_batch([message(w, "interactions", big, key=b"x")]))
    (d,) = dead(written)
    assert d["reason"] == "too_large" and d["original"] is None and d["original_bytes"] == len(big)
    assert base64.b64decode(d["original_b64"]) == big[:65_536]
