"""Churn labels come from outcome events: churn times, win-backs and label windows."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.contract import DAY_MS, Event
from training.data.eventlog import read_events
from training.rows.labels import churn_times, labels_from_events

T0 = 1_699_920_000_000  # 2023-11-14T00:00:00Z


def outcome(cid: str, day: float, typ: str) -> Event:
    return Event("outcomes", f"{cid}-{typ}-{day}", cid, T0 + int(day * DAY_MS), typ, {})


def test_first_churn_per_customer_ignores_other_events() -> None:
    events = [
        outcome("a", 40, "churned"),
        outcome("b", 10, "renewed"),
        outcome("c", 5, "contacted"),
        Event("interactions", "x", "d", T0, "login", {}),
        Event("interactions", "y", "a", T0 + 99 * DAY_MS, "churned", {}),  # not an outcome: ignored
    ]
    assert churn_times(events) == {"a": T0 + 40 * DAY_MS, "b": None}


def test_status_follows_the_latest_churn_or_renewal() -> None:
    labels = labels_from_events([
        outcome("w", 30, "churned"), outcome("w", 10, "renewed"),  # order does not matter
        outcome("w", 50, "renewed"), outcome("w", 80, "churned"),
    ])
    at = lambda day: T0 + day * DAY_MS  # noqa: E731
    assert not labels.churned_by("w", at(29))
    assert labels.churned_by("w", at(30))  # churned *at* T counts as gone at T
    assert labels.churned_by("w", at(49))
    assert not labels.churned_by("w", at(50))  # won back
    assert labels.churned_by("w", at(90))
    assert labels.first_churn("w") == at(30)
    assert not labels.churned_by("nobody", at(90))


def test_same_instant_churn_and_renewal_counts_as_churned() -> None:
    labels = labels_from_events([outcome("z", 20, "renewed"), outcome("z", 20, "churned")])
    assert labels.churned_by("z", T0 + 20 * DAY_MS)


def test_label_window_is_open_at_the_snapshot_and_closed_at_the_horizon() -> None:
    labels = labels_from_events([outcome("a", 40, "churned")])
    churn = T0 + 40 * DAY_MS
    assert not labels.churns_within("a", churn, churn + 30 * DAY_MS)  # (T, T+h]: T itself excluded
    assert labels.churns_within("a", churn - 30 * DAY_MS, churn)  # T+h included
    assert labels.churns_within("a", churn - 1, churn)
    assert not labels.churns_within("a", churn - 31 * DAY_MS, churn - DAY_MS - 1)
    assert not labels.churns_within("b", T0, churn)
    assert labels.churns_between(T0, churn + 1) == 1
    assert labels.churns_between(T0, churn) == 0


def test_labels_match_the_simulator_ground_truth(tmp_path: Path) -> None:
    sim = pytest.importorskip("devtools.simulator")
    cfg = sim.SimConfig(customers=120, days=90, start_ms=T0, seed=11)
    path = tmp_path / "sim.jsonl"
    sim.write_jsonl(sim.simulate(cfg), path)
    labels = labels_from_events(read_events(path).events)
    truth = sim.ground_truth(cfg)
    churners = {cid: ts for cid, ts in truth.items() if ts is not None}
    assert churners, "the simulation should contain churners"
    assert {cid: labels.first_churn(cid) for cid in truth if labels.first_churn(cid) is not None} == churners
