"""The state store's rules without Kafka: what a changelog folds back to, when a local copy may be brought
up to date from the changelog's tail, and what a local file survives."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from pipeline.core.features import CustomerState
from pipeline.worker.statemap import Mark, MemoryMap, SqliteMap
from pipeline.worker.store import (FENCE_KEY, POSITION_KEY, DiskMaps, PartitionState, Position, StateDirInUse,
                                   StateStore, after_full_read, can_read_tail, fold_into, message_fingerprint)


def state(cid: str, last_ms: int, churned_ms: int = 0) -> bytes:
    return CustomerState(cid, last_ms=last_ms, churned_ms=churned_ms, events=last_ms).to_bytes()


S1, S2, S3 = state("c1", 10), state("c1", 20), state("c2", 30)


def records_of(store: StateStore, partition: int, states: dict[bytes, bytes], outbox=()) -> list[tuple[bytes, bytes]]:
    return list(store.flush(partition, states, list(outbox)).records())


def fold(partition: int, records) -> PartitionState:
    """A partition rebuilt in memory from changelog records ``(key, value)`` in offset order."""
    part = PartitionState(partition)
    fold_into(part, records)
    return part


def values(part: PartitionState) -> dict[bytes, bytes]:
    return dict(part.customers.items())


def test_a_flush_writes_states_then_the_position_that_covers_them():
    store = StateStore("w1")
    store.parts[0] = PartitionState(0)
    store.parts[0].advance("t.interactions", 41, 7)
    recs = records_of(store, 0, {b"c1": S1, b"c2": S3}, [{"alert_id": "a1"}])
    assert [k for k, _ in recs] == [b"c1", b"c2", POSITION_KEY]
    pos = Position.from_bytes(recs[-1][1])
    assert pos.topics == {"t.interactions": [41, 7, 41, 7]} and pos.writer == "w1" and pos.outbox == [{"alert_id": "a1"}]


def test_a_flush_is_read_back_before_it_is_acknowledged_and_stored_only_after():
    store = StateStore("w1")
    store.parts[0] = PartitionState(0)
    records_of(store, 0, {b"c1": S1})
    assert store.get(0, b"c1") == S1 and values(store.parts[0]) == {}  # pending: not in the copy yet
    assert store.parts[0].customers.mark() is None
    asyncio.run(store.persist(0, store.parts[0].position.seq, 17))
    assert values(store.parts[0]) == {b"c1": S1} and not store.parts[0].pending
    mark = store.parts[0].customers.mark()
    assert mark is not None and mark.offset == 17 and mark.fingerprint == message_fingerprint(POSITION_KEY, mark.position)
    assert Position.from_bytes(mark.position).seq == store.parts[0].position.seq


def test_fold_keeps_the_newest_state_and_position_ignores_fences_and_obeys_tombstones():
    store = StateStore("w1")
    store.parts[0] = PartitionState(0)
    store.parts[0].advance("t", 1, 11)
    first = records_of(store, 0, {b"c1": S1})
    store.parts[0].advance("t", 5, 55)
    second = records_of(store, 0, {b"c1": S2, b"c2": S3})
    part = fold(0, first + [(FENCE_KEY, b"{}")] + second + [(b"c2", None)])
    assert values(part) == {b"c1": S2}  # c2 was deleted by a tombstone
    assert part.position.topics == {"t": [5, 55, 1, 11]} and part.has_position


def test_a_crash_between_states_and_position_restores_an_older_position_never_a_newer_one():
    """Records of one partition come back in order: a torn flush has states without their position,
    so the input is re-read from the older position and event-id dedup refuses what was applied."""
    store = StateStore("w1")
    store.parts[0] = PartitionState(0)
    store.parts[0].advance("t", 9, 99)
    done = records_of(store, 0, {b"c1": S1})
    store.parts[0].advance("t", 20, 200)
    torn = records_of(store, 0, {b"c1": S2})[:-1]
    part = fold(0, done + torn)
    assert values(part)[b"c1"] == S2 and part.position.topics["t"] == [9, 99, 9, 99]


def test_folding_the_tail_again_on_top_gives_the_same_copy():
    """A restore cut short by a crash wrote part of the tail without moving the mark: doing it again
    from the old mark is harmless, because every record is a whole state."""
    log = [(b"c1", S1), (POSITION_KEY, Position({"t": [1, 1, 1, 1]}).to_bytes()), (b"c1", S2), (b"c2", S3),
           (POSITION_KEY, Position({"t": [4, 4, 1, 1]}).to_bytes())]
    once = fold(0, log)
    twice = PartitionState(0)
    fold_into(twice, log[:3])
    fold_into(twice, log)
    assert values(once) == values(twice) and once.position == twice.position


def test_positions_never_move_back():
    part = PartitionState(0)
    part.advance("t", 10, 1)
    part.advance("t", 4, 2)
    assert part.position.topics["t"] == [10, 1, 10, 1]


def test_the_tail_is_read_only_when_the_record_at_the_mark_is_still_the_same():
    mark = Mark(41, 777, None)
    assert can_read_tail(mark, 50, 777)
    assert not can_read_tail(mark, 50, 778)  # another record there: the changelog was re-created
    assert not can_read_tail(mark, 50, None)  # gone: truncated, compacted away, or a broker that lost it
    assert not can_read_tail(mark, 41, 777) and not can_read_tail(mark, 3, 777)  # the log is shorter than the mark
    assert not can_read_tail(None, 50, None)  # no local copy (a lost disk)


def test_a_changelog_that_lost_our_writes_is_reseeded_and_a_newer_one_wins():
    mine = PartitionState(0, has_position=True)
    assert after_full_read(mine, PartitionState(0)) == "reseed"  # e.g. the broker came back empty
    assert after_full_read(mine, PartitionState(0, has_position=True)) == "restored"
    assert after_full_read(PartitionState(0), PartitionState(0)) == "restored"  # a first owner


def test_reseed_chunks_cover_every_state():
    store = StateStore("w1")
    store.parts[0] = PartitionState(0)
    store.parts[0].customers.write({f"c{i}".encode(): (S1, 10, 0) for i in range(7)}, None)
    chunks = list(store.reseed_chunks(0, size=3))
    assert [len(c) for c in chunks] == [3, 3, 1] and len({k for c in chunks for k in c}) == 7


def test_message_fingerprint_sees_key_and_value():
    assert message_fingerprint(b"k", b"v") == message_fingerprint(b"k", b"v")
    assert message_fingerprint(b"k", b"v") != message_fingerprint(b"k", b"w")
    assert message_fingerprint(b"kv", b"") != message_fingerprint(b"k", b"v")
    assert message_fingerprint(None, None) == message_fingerprint(b"", b"")


# ---- the local files --------------------------------------------------------------------------------
@pytest.fixture(params=["memory", "sqlite"])
def a_map(request, tmp_path):
    m = MemoryMap() if request.param == "memory" else SqliteMap(tmp_path / "p0.sqlite3", 1024)
    yield m
    m.close()


def test_both_maps_answer_alike(a_map):
    a_map.write({b"a": (S1, 10, 0), b"b": (S3, 30, 0), b"c": (state("c", 5, 99), 5, 99)}, Mark(3, 9, b"{}"))
    assert a_map.get(b"a") == S1 and a_map.get(b"zz") is None
    assert a_map.get_many([b"a", b"b", b"zz"]) == {b"a": S1, b"b": S3}
    assert len(a_map) == 3 and a_map.max_last_ms() == 30
    # idle and not churned, in key order, a chunk at a time
    assert [k for k, _ in a_map.idle(30, b"", 10)] == [b"a", b"b"]
    assert [k for k, _ in a_map.idle(30, b"a", 10)] == [b"b"]
    assert [k for k, _ in a_map.idle(20, b"", 10)] == [b"a"]
    assert [k for k, _ in a_map.idle(30, b"", 1)] == [b"a"]
    a_map.write({b"a": (S2, 20, 0), b"b": None}, None)
    assert dict(a_map.items()) == {b"a": S2, b"c": a_map.get(b"c")} and len(a_map) == 2
    assert a_map.mark() == Mark(3, 9, b"{}")  # a write without a mark keeps the old one


def test_a_sqlite_copy_survives_its_process_and_a_write_never_half_lands(tmp_path):
    m = SqliteMap(tmp_path / "p0.sqlite3", 1024)
    m.write({b"a": (S1, 10, 0)}, Mark(5, 55, None))
    with pytest.raises(sqlite3.Error):
        m.write({b"b": (S3, 30, 0), b"bad": ("not bytes", object(), 0)}, Mark(9, 99, None))  # type: ignore[dict-item]
    m.close()
    again = SqliteMap(tmp_path / "p0.sqlite3", 1024)
    assert dict(again.items()) == {b"a": S1} and again.mark() == Mark(5, 55, None) and len(again) == 1
    again.close()


def test_workers_sharing_a_state_directory_each_take_a_slot_of_their_own(tmp_path, monkeypatch):
    first = DiskMaps(tmp_path / "state", 64, 4)
    second = DiskMaps(tmp_path / "state", 64, 4)
    assert first.directory.name == "slot-0" and second.directory.name == "slot-1"
    first.close()
    again = DiskMaps(tmp_path / "state", 64, 4)  # a restarted worker finds the free slot first
    assert again.directory.name == "slot-0"
    monkeypatch.setattr("pipeline.worker.store.MAX_SLOTS", 2)
    with pytest.raises(StateDirInUse, match=r"all 2 slots are in use \(by pid"):
        DiskMaps(tmp_path / "state", 64, 4)
    again.close()
    second.close()


def test_an_unreadable_local_file_is_started_afresh_not_a_crash(tmp_path):
    maps = DiskMaps(tmp_path, 64, 1)
    (maps.directory / "p0.sqlite3").write_bytes(b"this is not a database" * 100)
    m = maps.open(0)
    assert len(m) == 0 and m.mark() is None
    m.write({b"a": (S1, 10, 0)}, Mark(1, 1, None))
    assert m.get(b"a") == S1
    m.close()
    maps.close()


def test_a_full_restore_replaces_the_local_file_whole(tmp_path):
    maps = DiskMaps(tmp_path, 64, 1)
    store = StateStore("w1", maps)
    live = store.local(0)
    live.customers.write({b"old": (S1, 10, 0)}, Mark(1, 1, None))
    fresh = store.fresh(0)
    fold_into(fresh, [(b"c1", S2), (POSITION_KEY, Position({"t": [3, 3, 3, 3]}, "w0", 4).to_bytes())])
    part = store.replace(live, fresh)
    assert values(part) == {b"c1": S2} and part.has_position and part.position.seq == 4
    assert not list(maps.directory.glob("*.restoring.*"))
    store.adopt(part)
    store.close()
    # a stray half-built file from a crash is removed when the directory is opened again
    (maps.directory / "p0.restoring.sqlite3").write_bytes(b"x")
    DiskMaps(tmp_path, 64, 1).close()
    assert not (maps.directory / "p0.restoring.sqlite3").exists()


def test_a_batch_reads_the_flush_still_in_flight_before_it_and_flushes_land_in_order():
    store = StateStore("w1")
    store.parts[0] = PartitionState(0)
    first = store.flush(0, {b"c1": S1}, [])
    second = store.flush(0, {b"c1": S2, b"c2": S3}, [])
    assert store.get(0, b"c1") == S2 and store.parts[0].get_many([b"c1", b"c2", b"zz"]) == {b"c1": S2, b"c2": S3}
    asyncio.run(store.persist(0, first.position.seq, 5))
    assert values(store.parts[0]) == {b"c1": S1} and store.get(0, b"c1") == S2  # the second is still pending
    mark = store.parts[0].customers.mark()
    assert mark is not None and mark.offset == 5 and Position.from_bytes(mark.position).seq == first.position.seq
    asyncio.run(store.persist(0, second.position.seq, 9))
    assert values(store.parts[0]) == {b"c1": S2, b"c2": S3} and not store.parts[0].pending
    assert store.parts[0].customers.mark().offset == 9
