"""Label delay: an inactivity churn dated c is only known at c + N (training.rows.labels, DatasetConfig.label_delay_days).

Rows at T leave out only the customers *known* at T to be gone; the label counts a churn not yet known at
T and dated by T + horizon unless a comeback at or before T ended it; the time split purges horizon + N;
and with no delay everything is exactly as before.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.contract import DAY_MS, Event
from training.data.eventlog import read_events
from training.fit.baselines import count_matrix
from training.fit.config import TrainingError
from training.fit.split import time_split
from training.rows.dataset import DatasetConfig, build_dataset
from training.rows.labels import Labels, labels_from_events
from training.rows.timeline import snapshots

T0 = 1_699_920_000_000  # 2023-11-14T00:00:00Z, a UTC midnight
N = 10  # days without usage that make a churn (the label delay)
H = 5  # horizon, days


def at(day: float) -> int:
    return T0 + int(round(day * DAY_MS))


def use(cid: str, day: float) -> Event:
    return Event("interactions", f"{cid}-use-{day}", cid, at(day), "login", {"duration_s": 60.0})


def outcome(cid: str, day: float, typ: str) -> Event:
    return Event("outcomes", f"{cid}-{typ}-{day}", cid, at(day), typ, {})


def active(cid: str, first: int, last: int) -> list[Event]:
    return [use(cid, d + 0.4) for d in range(first, last + 1)]


def inactivity_log() -> list[Event]:
    """As training.data.foreign writes an inactivity log with N = 10: a churn the day after the last row before
    a gap of N days or more, a ``renewed`` at the row that ends the gap. Usage until day 40."""
    events = (
        active("a", 0, 20) + [outcome("a", 21.4, "churned")]  # silent from day 20.4 on, never back
        + active("b", 0, 10) + [outcome("b", 11.4, "churned"), outcome("b", 30.4, "renewed")] + active("b", 30, 40)
        + active("c", 0, 18) + [outcome("c", 19.4, "churned"), outcome("c", 28.4, "renewed")] + active("c", 28, 40)
        + active("e", 0, 26) + [outcome("e", 27.4, "churned")]  # still active at T = 25
        + active("f", 0, 40)  # a stayer
        + active("g", 0, 13) + [outcome("g", 14.4, "churned")]  # known gone at 24.4
        + active("h", 0, 14) + [outcome("h", 15.4, "churned")]  # known gone only at 25.4
    )
    return sorted(events, key=lambda e: e.ts_ms)


def rows(delay: int, days: tuple[int, ...]) -> dict[tuple[str, int], int]:
    cfg = DatasetConfig(horizon_days=H, cadence_days=1, warmup_days=0, label_delay_days=delay,
                        at_ms=tuple(at(d) for d in days))
    ds = build_dataset(inactivity_log(), cfg)
    return {(str(c), (int(t) - T0) // DAY_MS): int(y) for c, t, y in zip(ds.customer_ids, ds.obs_ms, ds.y)}


# ---- the rule, by hand --------------------------------------------------------------------------
def test_rows_and_labels_at_t_with_the_delay_by_hand() -> None:
    got = rows(N, (25, 29, 31, 32))
    assert ('a', 32) not in got
    assert {k: v for k, v in got.items() if k[1] == 25} == {
        ("a", 25): 1,  # silent since 20.4, churn 21.4 not known until 31.4: a row, and already gone
        # b: churn 11.4 known at 21.4, back only at 30.4: left out
        ("c", 25): 1,  # churn 19.4 not known yet, back at 28.4 (after T): still a churn in the window
        ("e", 25): 1,  # active at T, churns at 27.4 within the horizon
        ("f", 25): 0,
        # g: churn 14.4 known at 24.4: left out
        ("h", 25): 1,  # churn 15.4 known only at 25.4 > T; dated after T - N
    }
    assert {k: v for k, v in got.items() if k[1] == 29} == {
        # a: churn known at 31.4, still a row, label 1 (dated in (T - N, T + H])
        ("a", 29): 1,
        # b: still out (back at 30.4 > T)
        ("c", 29): 0,  # came back at 28.4 <= T: that churn is over, no later one
        # e: churn 27.4 not known until 37.4, never back
        ("e", 29): 1,
        ("f", 29): 0,
        # g, h: known gone
    }
    assert {k: v for k, v in got.items() if k[1] == 31} == {
        ("a", 31): 1,  # churn 21.4 known only at 31.4, hours after T: still a row (out from day 32)
        ("b", 31): 0,  # back at 30.4: a row again, its old churn does not count
        ("c", 31): 0,
        ("e", 31): 1,
        ("f", 31): 0,
    }


def test_without_the_delay_the_rows_are_the_customers_not_churned_by_t() -> None:
    got = rows(0, (25, 29, 31))
    assert {k: v for k, v in got.items() if k[1] == 25} == {("e", 25): 1, ("f", 25): 0}
    assert {k: v for k, v in got.items() if k[1] == 29} == {("c", 29): 0, ("f", 29): 0}
    assert {k: v for k, v in got.items() if k[1] == 31} == {("b", 31): 0, ("c", 31): 0, ("f", 31): 0}


def test_label_rule_edges() -> None:
    day = DAY_MS
    labels = Labels(churns={"x": [10 * day, 40 * day], "tie": [10 * day]},
                    renewals={"x": [20 * day], "tie": [10 * day]})
    d, h = 5 * day, 7 * day
    assert not labels.known_churned("x", 14 * day, d) and labels.known_churned("x", 15 * day, d)  # c + D <= T
    assert not labels.known_churned("x", 20 * day, d)  # back at 20: a renewal is known at once
    assert labels.label("x", 14 * day, h, d) == 1 and labels.labelling_churn("x", 14 * day, h, d) == 10 * day
    assert labels.label("x", 20 * day, h, d) == 0  # the win-back at 20 ended the churn at 10
    assert labels.labelling_churn("x", 33 * day, h, d) == 40 * day  # (T - D, T + h] = (28, 40]
    assert labels.label("x", 32 * day, h, d) == 0
    assert labels.label("x", 44 * day, h, d) == 1 and not labels.known_churned("x", 44 * day, d)
    assert labels.known_churned("x", 45 * day, d) and labels.gone_for_good("x", 45 * day, d)
    assert not labels.gone_for_good("x", 44 * day, d) and not labels.gone_for_good("x", 16 * day, d)
    # a churn and a renewal at the same instant count as churned, as without the delay
    assert labels.known_churned("tie", 15 * day, d) and labels.churned_by("tie", 10 * day)
    assert labels.label("tie", 12 * day, h, d) == 1
    # no delay: exactly churned_by and churns_within
    for t in range(0, 50):
        for cid in ("x", "tie", "nobody"):
            assert labels.known_churned(cid, t * day, 0) == labels.churned_by(cid, t * day)
            if not labels.churned_by(cid, t * day):
                assert labels.label(cid, t * day, h, 0) == int(labels.churns_within(cid, t * day, t * day + h))


def test_label_delay_must_be_a_non_negative_whole_number() -> None:
    with pytest.raises(ValueError, match="label_delay_days"):
        DatasetConfig(label_delay_days=-1)
    assert DatasetConfig(horizon_days=30, label_delay_days=180).purge_days == 210
    assert DatasetConfig(horizon_days=30).purge_days == 30


# ---- the replay: eviction never loses a row ---------------------------------------------------------
def _replay_rows(events: list[Event], times: list[int], labels: Labels, delay_ms: int,
                 evict: bool) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for t, states in snapshots(events, times, labels=labels if evict else None, delay_ms=delay_ms):
        out[t] = {c for c, st in states.items() if st.first_ms <= t and not labels.known_churned(c, t, delay_ms)}
    return out


def win_back_log(seed: int = 1) -> list[Event]:
    """40 customers with random usage, inactivity churns (gap >= N) and comebacks, written as
    training.data.foreign would."""
    rng = np.random.default_rng(seed)
    events: list[Event] = []
    for i in range(40):
        cid, day, used = f"c{i}", 0.4, []
        while day < 80:
            used.append(day)
            day += float(rng.choice([1, 2, 3, 12, 15])) if rng.random() < 0.9 else 100
        events += [use(cid, d) for d in used]
        for last, nxt in zip(used, used[1:] + [None]):
            if (nxt if nxt is not None else 80.4) - last >= N:
                events.append(outcome(cid, last + 1, "churned"))
                if nxt is not None:
                    events.append(outcome(cid, nxt, "renewed"))
    return sorted(events, key=lambda e: e.ts_ms)


@pytest.mark.parametrize("delay", [0, N])
def test_eviction_with_the_delay_keeps_every_row(delay: int) -> None:
    events = win_back_log()
    labels = labels_from_events(events)
    assert any(len(r) > 1 for r in labels.renewals.values())  # win-backs, some more than once
    times = [at(d) for d in range(2, 80)]
    with_eviction = _replay_rows(events, times, labels, delay * DAY_MS, evict=True)
    assert with_eviction == _replay_rows(events, times, labels, delay * DAY_MS, evict=False)
    cfg = DatasetConfig(horizon_days=H, cadence_days=1, warmup_days=2, label_delay_days=delay)
    ds = build_dataset(events, cfg)
    dataset_rows = {(str(c), int(t)) for c, t in zip(ds.customer_ids, ds.obs_ms)}
    assert dataset_rows == {(c, t) for t in np.unique(ds.obs_ms).tolist() for c in with_eviction[t]}
    # the counts baseline follows the same rows (no row left without its customer's state)
    counts = count_matrix(events, ds, labels=labels)
    assert counts.shape == (len(ds), counts.shape[1]) and counts[:, 0].sum() > 0


def test_the_delay_keeps_the_silent_customers_the_old_rule_dropped() -> None:
    events = win_back_log()
    cfg = DatasetConfig(horizon_days=H, cadence_days=1, warmup_days=2)
    now = build_dataset(events, cfg)
    delayed = build_dataset(events, DatasetConfig(horizon_days=H, cadence_days=1, warmup_days=2, label_delay_days=N))
    old = {(str(c), int(t)) for c, t in zip(now.customer_ids, now.obs_ms)}
    new = {(str(c), int(t)) for c, t in zip(delayed.customer_ids, delayed.obs_ms)}
    assert old < new and delayed.y.sum() > now.y.sum()


# ---- the time split purges horizon + delay ------------------------------------------------------------
def test_split_purges_horizon_plus_delay() -> None:
    dates = np.asarray([T0 + 7 * i * DAY_MS for i in range(80)], dtype=np.int64)
    cfg = DatasetConfig(horizon_days=30, label_delay_days=90)
    split = time_split(dates, cfg.purge_days)
    assert split.purge_days == 120
    assert split.validation.start_ms - split.train.end_ms >= 120 * DAY_MS
    assert split.test.start_ms - split.validation.end_ms >= 120 * DAY_MS
    short = time_split(dates, 30)
    assert short.validation.start_ms - short.train.end_ms < 120 * DAY_MS  # what the horizon alone gave
    chosen = time_split(dates, cfg.purge_days, test_from_ms=int(dates[60]))
    assert chosen.test.start_ms == int(dates[60])
    assert chosen.test.start_ms - chosen.validation.end_ms >= 120 * DAY_MS
    assert chosen.validation.start_ms - chosen.train.end_ms >= 120 * DAY_MS
    with pytest.raises(TrainingError, match="120-day purge"):
        time_split(dates[:20], cfg.purge_days)


def test_train_splits_on_the_purge_days_of_the_dataset(monkeypatch) -> None:
    import training.fit.train as train_mod

    seen: list[int] = []

    def spy(obs_ms, purge_days, *args, **kwargs):
        seen.append(purge_days)
        raise TrainingError("stop")

    monkeypatch.setattr(train_mod, "time_split", spy)
    ds = build_dataset(inactivity_log(), DatasetConfig(horizon_days=H, cadence_days=1, warmup_days=0,
                                                       label_delay_days=N))
    with pytest.raises(TrainingError, match="stop"):
        train_mod.train(ds)
    assert seen == [H + N]


def test_backtest_uses_the_models_delay() -> None:
    from training.assess.backtest import score_log

    class Flat:  # the slice of pipeline.model.scoring.Model that score_log uses
        meta = {"label_delay_days": N}
        thresholds: dict[str, float] = {}
        features = ("x",)

        def vector(self, state, t_ms):
            return [0.0]

        def predict(self, rows):
            return np.full(len(rows), 0.1)

    events = inactivity_log()
    scored = score_log(events, Flat(), [at(25)], reasons=0)  # type: ignore[arg-type]
    assert sorted(scored.customer_ids) == ["a", "c", "e", "f", "h"]  # the rows of the dataset at T = 25
    churned = dict(zip(scored.customer_ids, scored.churned_ms))
    assert churned == {"a": at(21.4), "c": at(19.4), "e": at(27.4), "f": None, "h": at(15.4)}
    Flat.meta = {}  # old metadata: no delay
    assert sorted(score_log(events, Flat(), [at(25)], reasons=0).customer_ids) == ["e", "f"]  # type: ignore[arg-type]


def test_cli_takes_the_label_delay() -> None:
    from apps import cli
    from apps.cli.inputs import dataset_config_of

    args = cli.build_parser().parse_args(["dataset", "--events", "x.jsonl", "--out", "y.csv", "--label-delay-days", "7"])
    assert dataset_config_of(args).label_delay_days == 7
    args = cli.build_parser().parse_args(["train", "--events", "x.jsonl"])
    assert dataset_config_of(args).label_delay_days == 0
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["train", "--events", "x.jsonl", "--label-delay-days", "-1"])
