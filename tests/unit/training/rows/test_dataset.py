"""Point-in-time dataset: eligibility, labels, censoring, and — above all — no leakage from after T."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.contract import DAY_MS, Event
from pipeline.core.features import FEATURES, states_from_events, vector
from training.data.eventlog import read_events
from training.rows.dataset import DatasetConfig, build_dataset, next_midnight, observation_times, write_dataset
from training.rows.labels import labels_from_events

T0 = 1_699_920_000_000  # 2023-11-14T00:00:00Z, a UTC midnight
H = 3_600_000


def at(day: float) -> int:
    return T0 + int(day * DAY_MS)


def login(cid: str, day: float) -> Event:
    return Event("interactions", f"{cid}-login-{day}", cid, at(day), "login", {"duration_s": 60.0})


def daily(cid: str, first: int, last: int) -> list[Event]:
    return [login(cid, d + 0.4) for d in range(first, last + 1)]


def outcome(cid: str, day: float, typ: str) -> Event:
    return Event("outcomes", f"{cid}-{typ}", cid, at(day), typ, {})


def profile(cid: str, day: float, tier: str) -> Event:
    return Event("customers", f"{cid}-profile-{day}", cid, at(day), "profile", {"tier": tier, "plan": "pro"})


def hand_made_log() -> list[Event]:
    """Five customers with known churn dates; the log ends at day 150 (midnight)."""
    events = (
        daily("a", 0, 59) + [outcome("a", 60.5, "churned")]
        + daily("b", 20, 149)
        + daily("c", 0, 35) + [outcome("c", 35.5, "churned")]
        + [profile("d", 0, "vip")] + daily("d", 0, 149) + [outcome("d", 90, "renewed"), profile("d", 100, "standard")]
        + daily("e", 0, 139) + [outcome("e", 140.25, "churned")]
        + [login("d", 150)]
    )
    return sorted(events, key=lambda e: e.ts_ms)


def rows_by_day(ds) -> dict[tuple[str, int], int]:
    return {(cid, (t - T0) // DAY_MS): int(y) for cid, t, y in zip(ds.customer_ids, ds.obs_ms, ds.y)}


# ---- the observation grid -----------------------------------------------------------------------
def test_observation_times_are_utc_midnights_inside_the_labelled_window() -> None:
    cfg = DatasetConfig()
    times = observation_times(at(0.3), at(150), cfg)
    assert times[0] == at(29)  # first midnight after the 28-day warm-up of the log
    assert all(t % DAY_MS == 0 for t in times)
    assert set(np.diff(times)) == {7 * DAY_MS}
    assert times[-1] + 30 * DAY_MS <= at(150) < times[-1] + 37 * DAY_MS
    assert observation_times(at(0), at(50), cfg) == []  # too short for history + horizon
    assert next_midnight(at(3)) == at(3) and next_midnight(at(3) + 1) == at(4)


def test_warmup_is_a_log_setting_apart_from_the_customers_minimum_history() -> None:
    assert DatasetConfig().min_history_days == 0 and DatasetConfig().warmup_days == 28
    assert observation_times(at(0.3), at(150), DatasetConfig(warmup_days=0))[0] == at(1)
    # a per-customer minimum longer than the warm-up: earlier times could not have a single row
    assert observation_times(at(0.3), at(150), DatasetConfig(min_history_days=40))[0] == at(41)
    with pytest.raises(ValueError, match="warmup_days"):
        DatasetConfig(warmup_days=-1)


# ---- eligibility, labels, censoring -------------------------------------------------------------
def test_eligibility_and_labels_on_a_hand_made_log() -> None:
    ds = build_dataset(hand_made_log(), DatasetConfig())
    days = list(range(28, 121, 7))  # 28, 35, ..., 119
    assert sorted({(t - T0) // DAY_MS for t in ds.obs_ms}) == days
    first_seen = {"a": 0.4, "b": 20.4, "c": 0.4, "d": 0.0, "e": 0.4}  # d has a profile at midnight
    expected: dict[tuple[str, int], int] = {}
    for d in days:
        eligible = {cid for cid, first in first_seen.items() if first < d}  # seen before T is enough
        if d <= 56 and "a" in eligible:  # churns at 60.5: gone from T=63
            expected[("a", d)] = int(60.5 - 30 <= d)
        if "b" in eligible:
            expected[("b", d)] = 0
        if d <= 35 and "c" in eligible:  # churns at 35.5
            expected[("c", d)] = 1
        expected[("d", d)] = 0
        if "e" in eligible:
            expected[("e", d)] = int(d >= 140.25 - 30)
    assert ("a", 28) in expected and ("b", 28) in expected  # 27.6 and 7.6 days of history
    assert rows_by_day(ds) == expected


def test_censored_observations_are_dropped() -> None:
    """e churns on day 140; snapshots at days 126/133 would be positives, but their label windows run
    past the log's end (day 150), so they are not in the data at all."""
    ds = build_dataset(hand_made_log(), DatasetConfig())
    assert ds.obs_ms.max() + 30 * DAY_MS <= ds.log_end_ms
    assert not any(cid == "e" and t > at(120) for cid, t in zip(ds.customer_ids, ds.obs_ms))
    longer = DatasetConfig(log_end_ms=at(200))  # pretend the log runs on: those snapshots appear
    assert rows_by_day(build_dataset(hand_made_log(), longer))[("e", 126)] == 1


def test_new_customers_have_rows_from_their_first_day_with_their_tenure() -> None:
    """New accounts churn most: the model must see their first weeks, told apart by their tenure."""
    signup = at(50.2)
    events = sorted(hand_made_log() + [
        Event("customers", "n-profile", "n", signup, "profile", {"tier": "standard", "plan": "pro", "signup_ms": signup}),
        *daily("n", 51, 54), outcome("n", 70.5, "churned"),
    ], key=lambda e: e.ts_ms)
    ds = build_dataset(events, DatasetConfig())
    n = ds.customer_ids == "n"
    assert ((ds.obs_ms[n] - T0) // DAY_MS).tolist() == [56, 63, 70]  # from 5.8 days old; gone after the churn
    X = ds.X[n]
    assert X[:, FEATURES.index("tenure_days")] == pytest.approx([5.8, 12.8, 19.8])
    assert X[:, FEATURES.index("active_days_7d")].tolist() == [4.0, 0.0, 0.0]
    assert ds.y[n].tolist() == [1, 1, 1]
    # the newcomer adds rows and changes nobody else's
    without = build_dataset(hand_made_log(), DatasetConfig())
    np.testing.assert_array_equal(ds.customer_ids[~n], without.customer_ids)
    np.testing.assert_array_equal(ds.obs_ms[~n], without.obs_ms)
    np.testing.assert_array_equal(ds.X[~n], without.X)


def test_min_history_and_horizon_are_configurable() -> None:
    ds = build_dataset(hand_made_log(), DatasetConfig(min_history_days=7, warmup_days=0, horizon_days=7, cadence_days=1))
    rows = rows_by_day(ds)
    assert ("b", 28) in rows and ("b", 27) not in rows  # first seen on day 20.4
    assert rows[("a", 54)] == 1 and rows[("a", 53)] == 0  # churn at 60.5 within (T, T+7]
    assert ("a", 60) in rows and ("a", 61) not in rows


def test_tier_and_features_are_as_of_the_snapshot() -> None:
    ds = build_dataset(hand_made_log(), DatasetConfig())
    d = ds.customer_ids == "d"
    tiers = dict(zip(((ds.obs_ms[d] - T0) // DAY_MS).tolist(), ds.tiers[d].tolist()))
    assert tiers[98] == "vip" and tiers[105] == "standard"  # profile change on day 100
    # At midnight T the window's current day is still empty: "7d" holds the six full days before T.
    logins_7d = ds.X[:, FEATURES.index("logins_7d")]
    assert np.all(logins_7d[ds.customer_ids == "d"] == 6.0)
    assert ds.X.dtype == np.float64 and ds.X.shape == (len(ds), len(FEATURES))
    assert ds.y.dtype.kind == "i" and set(np.unique(ds.y)) <= {0, 1}


def test_rows_are_the_stream_feature_code_applied_to_the_past() -> None:
    events = hand_made_log()
    ds = build_dataset(events, DatasetConfig())
    for cid, t, x in list(zip(ds.customer_ids, ds.obs_ms, ds.X))[::9]:
        state = states_from_events(e for e in events if e.customer_id == cid and e.ts_ms < t)[cid]
        np.testing.assert_array_equal(x, np.asarray(vector(state, int(t)), dtype=np.float64))


def test_unsorted_events_are_refused() -> None:
    events = hand_made_log()
    events[3], events[10] = events[10], events[3]
    with pytest.raises(ValueError, match="sorted"):
        build_dataset(events, DatasetConfig())


# ---- leakage -------------------------------------------------------------------------------------
def assert_same_rows_at(full, events, t: int) -> None:
    """Rebuild from the log cut before t (everything at or after t removed) and compare the rows at t."""
    cut = [e for e in events if e.ts_ms < t]
    rebuilt = build_dataset(cut, DatasetConfig(log_end_ms=full.log_end_ms), labels=labels_from_events(events))
    a, b = full.rows_at(t), rebuilt.rows_at(t)
    assert len(a) > 0
    np.testing.assert_array_equal(a.customer_ids, b.customer_ids)
    np.testing.assert_array_equal(a.X, b.X)  # NaNs compare equal here
    np.testing.assert_array_equal(a.tiers, b.tiers)
    np.testing.assert_array_equal(a.y, b.y)


def test_no_leakage_on_the_hand_made_log() -> None:
    events = hand_made_log()
    full = build_dataset(events, DatasetConfig())
    for t in np.unique(full.obs_ms):
        assert_same_rows_at(full, events, int(t))


@pytest.fixture(scope="module")
def sim_events(tmp_path_factory: pytest.TempPathFactory) -> list[Event]:
    sim = pytest.importorskip("devtools.simulator")
    path = tmp_path_factory.mktemp("sim") / "sim.jsonl"
    sim.write_jsonl(sim.simulate(sim.SimConfig(customers=150, days=120, start_ms=T0, seed=5)), path)
    return list(read_events(path).events)


def test_no_leakage_on_simulated_data(sim_events: list[Event]) -> None:
    full = build_dataset(sim_events, DatasetConfig())
    times = np.unique(full.obs_ms)
    assert times.size >= 5 and full.y.sum() > 0
    for t in (times[0], times[times.size // 2], times[-1]):
        assert_same_rows_at(full, sim_events, int(t))


def test_without_shared_labels_the_cut_log_still_gives_the_same_features(sim_events: list[Event]) -> None:
    """The stricter version: the cut log's own outcome events decide eligibility too. Only a churn at
    exactly T could differ (it is not "before T"), and then only in who is listed, never in X."""
    full = build_dataset(sim_events, DatasetConfig())
    t = int(np.unique(full.obs_ms)[2])
    cut = build_dataset([e for e in sim_events if e.ts_ms < t], DatasetConfig(log_end_ms=full.log_end_ms))
    a, b = full.rows_at(t), cut.rows_at(t)
    common = np.intersect1d(a.customer_ids.astype(str), b.customer_ids.astype(str))
    assert common.size == len(a)
    ia = {c: i for i, c in enumerate(a.customer_ids)}
    ib = {c: i for i, c in enumerate(b.customer_ids)}
    np.testing.assert_array_equal(a.X[[ia[c] for c in common]], b.X[[ib[c] for c in common]])


def test_simulated_dataset_has_positives_and_a_sane_rate(sim_events: list[Event]) -> None:
    ds = build_dataset(sim_events, DatasetConfig())
    assert 0.01 < ds.positive_rate < 0.25
    summary = ds.summary()
    assert summary["rows"] == len(ds) and summary["observation_times"] == np.unique(ds.obs_ms).size


def test_no_label_delay_leaves_the_simulated_dataset_as_before(sim_events: list[Event]) -> None:
    """The label delay (training.rows.labels) changes nothing without a delay: checksums of the rows and of the
    counts baseline computed with the code from before the delay existed."""
    import hashlib

    from training.fit.baselines import count_matrix

    ds = build_dataset(sim_events, DatasetConfig())
    assert ds.config.label_delay_days == 0 and (len(ds), int(ds.y.sum())) == (1173, 85)
    h = hashlib.sha256()
    for a in (ds.X, ds.y, ds.obs_ms):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update("\n".join(map(str, ds.customer_ids)).encode())
    h.update("\n".join(map(str, ds.tiers)).encode())
    assert h.hexdigest() == "d313c2f8a76584d6c0ed18a91492739458460055966785beb35d1734b3ebdb08"
    counts = count_matrix(sim_events, ds, labels=labels_from_events(sim_events))
    assert hashlib.sha256(np.ascontiguousarray(counts).tobytes()).hexdigest() == (
        "a48972258a291f0eb2a461e1196ba782e078509cb2e20b279bdb6368782fb072")


def test_progress_callback_sees_every_event(sim_events: list[Event]) -> None:
    seen: list[int] = []
    build_dataset(sim_events, DatasetConfig(), on_progress=seen.append)
    assert sum(seen) == len(sim_events)


# ---- writing the dataset out (``churnwatch dataset``) -----------------------------------------------
@pytest.mark.parametrize("name", ["rows.parquet", "rows.csv", "rows.csv.gz"])
def test_written_dataset_reads_back_row_for_row(tmp_path, name: str) -> None:
    import csv
    import gzip

    import pyarrow.parquet as pq

    ds = build_dataset(hand_made_log(), DatasetConfig(cadence_days=7, horizon_days=30))
    path = tmp_path / name
    assert write_dataset(ds, path) == ("parquet" if name.endswith(".parquet") else "csv")
    if name.endswith(".parquet"):
        table = pq.read_table(path).to_pylist()
    else:
        with (gzip.open(path, "rt") if name.endswith(".gz") else open(path)) as fh:
            table = list(csv.DictReader(fh))
    assert len(table) == len(ds) > 0
    assert list(table[0])[:4] == ["customer_id", "observed_at", "tier", "label"]
    assert list(table[0])[4:] == list(FEATURES)
    for i, row in enumerate(table):
        assert row["customer_id"] == ds.customer_ids[i] and int(row["label"]) == ds.y[i]
        for j, feature in enumerate(FEATURES):
            cell = row[feature]
            if np.isnan(ds.X[i, j]):
                assert cell in (None, "")  # missing stays missing, never a zero
            else:
                assert float(cell) == ds.X[i, j]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_dataset_command_writes_the_rows_train_would_fit_on(tmp_path, capsys) -> None:
    import orjson
    import pyarrow.parquet as pq

    from apps import cli

    log = tmp_path / "log.jsonl"
    log.write_bytes(b"".join(orjson.dumps({"source": e.source, "event_id": e.event_id, "customer_id": e.customer_id,
                                           "ts": e.ts_ms, "type": e.type, "schema_version": 1, **e.data}) + b"\n"
                             for e in hand_made_log()))
    out = tmp_path / "rows.parquet"
    assert cli.main(["dataset", "--events", str(log), "--out", str(out), "--horizon-days", "30"]) == 0
    assert "rows" in capsys.readouterr().out
    expected = build_dataset(read_events(log).events, DatasetConfig(horizon_days=30))
    table = pq.read_table(out)
    assert table.num_rows == len(expected)
    assert table.column("label").to_pylist() == expected.y.tolist()

    assert cli.main(["dataset", "--events", str(log), "--out", str(tmp_path / "rows.xlsx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ".parquet, .csv" in err


def test_extra_row_values_come_from_the_same_states_as_a_separate_replay(sim_events: list[Event]) -> None:
    """``train`` takes the baselines' 28-day counts in the rows' replay; a replay of its own must agree."""
    from training.fit.baselines import COUNT_FEATURES, COUNT_WINDOW_DAYS, count_matrix, event_counts

    ds = build_dataset(sim_events, DatasetConfig(), extra=lambda s, t: event_counts(s, t, COUNT_WINDOW_DAYS),
                       extra_width=len(COUNT_FEATURES))
    assert ds.extra is not None and ds.extra.shape == (len(ds), len(COUNT_FEATURES)) and ds.extra.sum() > 0
    assert np.array_equal(ds.extra, count_matrix(sim_events, ds))
    half = ds.obs_ms < np.median(ds.obs_ms)
    assert np.array_equal(ds.subset(half).extra, ds.extra[half])
