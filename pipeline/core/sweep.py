"""When to re-score silent customers: an event-time clock per partition.

A customer who stops sending events is never scored by event-driven code, yet silence is one of the
strongest churn signals. Each partition's clock is the newest event time seen on it; whenever it has
advanced by ``interval_ms`` of event time since the last sweep, the customers of that partition that
have been quiet for ``idle_ms`` are re-scored as of that time, so their recency features decay.

Driven by event time, the sweep works unchanged when time is accelerated (simulator, replay). For real
time, a partition that receives no events at all would freeze its clock, so after ``realtime_idle_ms``
of wall-clock silence the clock moves on with the wall clock from the last event it saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.core.contract import DAY_MS


@dataclass
class PartitionClock:
    event_ms: int = 0  # newest event time seen on the partition
    wall_ms: int = 0  # wall time when that newest event was seen
    swept_ms: int = 0  # event time of the last sweep


@dataclass
class SweepClock:
    interval_ms: int = DAY_MS
    idle_ms: int = DAY_MS
    realtime_idle_ms: int = 60_000
    clocks: dict[int, PartitionClock] = field(default_factory=dict)
    #: Newest *interaction* event time per partition: how far behaviour has been read (see ``behind``).
    behaviour: dict[int, int] = field(default_factory=dict)
    behaviour_lag_ms: int = DAY_MS

    def observe(self, partition: int, event_ms: int, wall_ms: int, source: str = "") -> None:
        if source == "interactions" and event_ms > self.behaviour.get(partition, 0):
            self.behaviour[partition] = event_ms
        c = self.clocks.get(partition)
        if c is None:
            c = self.clocks[partition] = PartitionClock(swept_ms=event_ms)
        if event_ms > c.event_ms:
            c.event_ms = event_ms
            c.wall_ms = wall_ms

    def now(self, partition: int, wall_ms: int) -> int:
        """The partition's event-time 'now', advancing with the wall clock once it has gone quiet."""
        c = self.clocks[partition]
        quiet = wall_ms - c.wall_ms
        return c.event_ms + quiet if quiet > self.realtime_idle_ms else c.event_ms

    def due(self, wall_ms: int, partitions: set[int] | None = None) -> dict[int, int]:
        """Partitions to sweep now, with the as-of time for each; marks them swept."""
        out: dict[int, int] = {}
        for p, c in self.clocks.items():
            if partitions is not None and p not in partitions:
                continue
            now = self.now(p, wall_ms)
            if now - c.swept_ms >= self.interval_ms:
                out[p] = now
                c.swept_ms = now
        return out

    def forget(self, partitions: set[int]) -> None:
        for p in partitions:
            self.clocks.pop(p, None)
            self.behaviour.pop(p, None)

    def behind(self, partition: int) -> bool:
        """True when the partition's interactions have been read far behind its other topics.

        Topics are consumed independently, so during a backfill (or while an interaction producer is
        down) a survey or ticket can be read days of event time ahead of the same customer's logins.
        Judged then, every customer looks silent and the model alerts on a gap in *our reading*, not in
        the customer's behaviour. So risk decisions are held while the newest interaction read on the
        partition is more than ``behaviour_lag_ms`` older than the newest event of any kind read on it;
        the customer is judged again when interactions catch up (their next event, or the silence
        sweep), so nothing is lost, only delayed. The comparison is between events *read*: a partition
        that has gone quiet altogether (the sweep's wall-clock time) has nothing unread and is not
        behind. A partition with events but no interaction read yet is.
        """
        c = self.clocks.get(partition)
        if self.behaviour_lag_ms <= 0 or c is None:
            return False
        seen = self.behaviour.get(partition)
        return seen is None or c.event_ms - seen > self.behaviour_lag_ms

    def is_idle(self, last_event_ms: int, as_of_ms: int) -> bool:
        return as_of_ms - last_event_ms >= self.idle_ms
