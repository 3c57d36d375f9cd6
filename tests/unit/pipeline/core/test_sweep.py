"""The per-partition event-time clocks: when the silence sweep runs, and when behaviour is read far enough
to judge a customer at all."""

from __future__ import annotations

from pipeline.core.contract import DAY_MS
from pipeline.core.sweep import SweepClock

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
H = 3_600_000


def test_sweep_is_due_after_a_day_of_event_time_per_partition() -> None:
    clock = SweepClock(interval_ms=DAY_MS, idle_ms=DAY_MS, realtime_idle_ms=60_000)
    clock.observe(0, T0, wall_ms=1_000)
    clock.observe(1, T0, wall_ms=1_000)
    assert clock.due(1_000) == {}
    clock.observe(0, T0 + DAY_MS, wall_ms=2_000)
    assert clock.due(2_000) == {0: T0 + DAY_MS}  # partition 1 has not moved
    assert clock.due(2_000) == {}  # marked swept
    assert clock.due(2_000 + 61_000 + DAY_MS, {1}) == {1: T0 + 62_000 + DAY_MS}  # wall clock takes over when quiet


def test_idle_means_a_whole_idle_period_without_events() -> None:
    clock = SweepClock(idle_ms=DAY_MS)
    assert clock.is_idle(T0, T0 + DAY_MS) and not clock.is_idle(T0, T0 + DAY_MS - 1)


def test_a_partition_is_behind_while_its_interactions_are_read_far_behind_its_other_topics() -> None:
    clock = SweepClock(behaviour_lag_ms=DAY_MS)
    assert not clock.behind(0)  # nothing read at all: nothing unread either
    clock.observe(0, T0 + 35 * DAY_MS, wall_ms=1, source="surveys")  # a survey read ahead of the logins
    assert clock.behind(0)  # no interaction read yet on partition 0
    clock.observe(0, T0 + 2 * DAY_MS, wall_ms=2, source="interactions")
    assert clock.behind(0)
    clock.observe(0, T0 + 34 * DAY_MS + 12 * H, wall_ms=3, source="interactions")
    assert not clock.behind(0)  # within a day of the newest event read: judge
    clock.observe(0, T0 + 30 * DAY_MS, wall_ms=4, source="interactions")  # an older interaction: no step back
    assert not clock.behind(0)
    clock.observe(1, T0, wall_ms=5, source="tickets")
    assert clock.behind(1)  # another partition has its own reading position
    clock.forget({0})
    assert not clock.behind(0)


def test_a_quiet_partition_is_not_behind_when_the_wall_clock_moves_it() -> None:
    clock = SweepClock(behaviour_lag_ms=DAY_MS, realtime_idle_ms=60_000)
    clock.observe(0, T0, wall_ms=0, source="interactions")
    assert clock.due(3 * DAY_MS) == {0: T0 + 3 * DAY_MS}  # the sweep runs on wall time ...
    assert not clock.behind(0)  # ... and nothing is unread


def test_the_guard_can_be_turned_off() -> None:
    clock = SweepClock(behaviour_lag_ms=0)
    clock.observe(0, T0, wall_ms=0, source="surveys")
    assert not clock.behind(0)
