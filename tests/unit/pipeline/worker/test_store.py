"""The state store's rules without Kafka: what a changelog folds back to, and which copy wins on takeover."""

from __future__ import annotations

from pipeline.worker.store import FENCE_KEY, POSITION_KEY, PartitionState, Position, StateStore, fold, message_fingerprint


def records_of(store: StateStore, partition: int, states: dict[bytes, bytes], outbox=()) -> list[tuple[bytes, bytes]]:
    return list(store.flush(partition, states, list(outbox)).records())


def test_a_flush_writes_states_then_the_position_that_covers_them():
    store = StateStore("w1")
    store.parts[0] = PartitionState(0)
    store.parts[0].advance("t.interactions", 41, 7)
    recs = records_of(store, 0, {b"c1": b"s1", b"c2": b"s2"}, [{"alert_id": "a1"}])
    assert [k for k, _ in recs] == [b"c1", b"c2", POSITION_KEY]
    pos = Position.from_bytes(recs[-1][1])
    assert pos.topics == {"t.interactions": [41, 7, 41, 7]} and pos.writer == "w1" and pos.outbox == [{"alert_id": "a1"}]


def test_fold_keeps_the_newest_state_and_position_and_ignores_fences():
    store = StateStore("w1")
    store.parts[0] = PartitionState(0)
    store.parts[0].advance("t", 1, 11)
    first = records_of(store, 0, {b"c1": b"old"})
    store.parts[0].advance("t", 5, 55)
    second = records_of(store, 0, {b"c1": b"new", b"c2": b"x"})
    part = fold(0, first + [(FENCE_KEY, b"{}")] + second + [(b"c2", None)])
    assert part.customers == {b"c1": b"new"}  # c2 was deleted by a tombstone
    assert part.position.topics == {"t": [5, 55, 1, 11]} and part.has_position


def test_a_crash_between_states_and_position_restores_an_older_position_never_a_newer_one():
    """Records of one partition come back in order: a torn flush has states without their position,
    so the input is re-read from the older position and event-id dedup refuses what was applied."""
    store = StateStore("w1")
    store.parts[0] = PartitionState(0)
    store.parts[0].advance("t", 9, 99)
    done = records_of(store, 0, {b"c1": b"v1"})
    store.parts[0].advance("t", 20, 200)
    torn = records_of(store, 0, {b"c1": b"v2"})[:-1]
    part = fold(0, done + torn)
    assert part.customers[b"c1"] == b"v2" and part.position.topics["t"] == [9, 99, 9, 99]


def test_positions_never_move_back():
    part = PartitionState(0)
    part.advance("t", 10, 1)
    part.advance("t", 4, 2)
    assert part.position.topics["t"] == [10, 1, 10, 1]


def test_takeover_keeps_own_copy_only_when_nobody_wrote_after_it():
    store = StateStore("w1")
    store.parts[0] = PartitionState(0)
    records_of(store, 0, {b"c1": b"mine"})
    mine = store.parts[0]
    store.revoke([0])
    assert 0 not in store.parts and store.stale[0] is mine
    # the changelog ends with our own newest position: keep ours
    same = PartitionState(0, {b"c1": b"mine"}, Position(dict(mine.position.topics), "w1", mine.position.seq), True)
    part, how = store.adopt(same)
    assert how == "kept" and part is mine
    # somebody else wrote after us: theirs wins
    store.revoke([0])
    theirs = PartitionState(0, {b"c1": b"theirs"}, Position({}, "w2", 3), True)
    part, how = store.adopt(theirs)
    assert how == "restored" and part.customers == {b"c1": b"theirs"}


def test_a_changelog_that_lost_our_writes_is_reseeded_from_memory():
    store = StateStore("w1")
    store.parts[0] = PartitionState(0)
    records_of(store, 0, {b"c1": b"a", b"c2": b"b"})
    part, how = store.adopt(PartitionState(0))  # e.g. the broker came back empty
    assert how == "reseed" and part.customers == {b"c1": b"a", b"c2": b"b"}
    recs = list(store.reseed(0).records())
    assert [k for k, _ in recs] == [b"c1", b"c2", POSITION_KEY]


def test_a_first_owner_starts_from_the_changelog_even_if_empty():
    store = StateStore("w1")
    part, how = store.adopt(PartitionState(3))
    assert how == "restored" and part.customers == {} and not part.has_position


def test_message_fingerprint_sees_key_and_value():
    assert message_fingerprint(b"k", b"v") == message_fingerprint(b"k", b"v")
    assert message_fingerprint(b"k", b"v") != message_fingerprint(b"k", b"w")
    assert message_fingerprint(b"kv", b"") != message_fingerprint(b"k", b"v")
    assert message_fingerprint(None, None) == message_fingerprint(b"", b"")
