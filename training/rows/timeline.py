"""Point-in-time replay: every customer's state at each of a list of times, from exactly the events before it.

The training rows (:mod:`training.rows.dataset`), the baselines' counts (:mod:`training.fit.baselines`) and a
``churnwatch score`` backtest (:mod:`training.assess.backtest`) all need the same thing: events in time order
through the stream's :func:`pipeline.core.features.apply`, paused at each time T, before any event at or
after T touches a state. That loop lives here once.

Given the labels, a customer who has churned for good by T (known churned at T — with the label
delay ``delay_ms`` of the rows, see :mod:`training.rows.labels` — and never renewed after T) is
dropped after T's snapshot and their later events are skipped: no later snapshot can include them, and
on a long log they are most of the customers ever seen, so memory follows the live customers.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Sequence

from pipeline.core.contract import Event
from pipeline.core.features import CustomerState, FeatureConfig, apply
from training.rows.labels import Labels

ProgressFn = Callable[[int], None]
#: How many events pass between two progress callbacks; a callback per event would cost more than apply.
PROGRESS_EVERY = 20_000


def snapshots(events: Iterable[Event], times: Sequence[int], cfg: FeatureConfig = FeatureConfig(), *,
              labels: Labels | None = None, delay_ms: int = 0, on_progress: ProgressFn | None = None
              ) -> Iterator[tuple[int, dict[str, CustomerState]]]:
    """Yield ``(T, states)`` for each T of ``times`` (ascending), ``states`` holding every customer seen
    before T as the stream would have it at T. Read the states before asking for the next T: the
    same dict is updated in place. ``events`` must be time-sorted (``read_events`` sorts them).
    ``delay_ms`` must be the label delay the caller's rows use, so eviction never drops a customer
    that a later snapshot would still take."""
    times = sorted(times)
    states: dict[str, CustomerState] = {}
    gone: set[str] = set()
    ti, pending = 0, 0
    previous: int | None = None
    for ev in events:
        if previous is not None and ev.ts_ms < previous:
            raise ValueError("events must be sorted by time (training.data.eventlog.read_events sorts them)")
        previous = ev.ts_ms
        while ti < len(times) and ev.ts_ms >= times[ti]:
            yield times[ti], states
            if labels is not None:
                _drop_gone(states, gone, labels, times[ti], delay_ms)
            ti += 1
        cid = ev.customer_id
        if cid in gone:
            continue
        state = states.get(cid)
        if state is None:
            state = states[cid] = CustomerState(cid)
        apply(state, ev, None, cfg)
        pending += 1
        if on_progress is not None and pending >= PROGRESS_EVERY:
            on_progress(pending)
            pending = 0
    for t in times[ti:]:
        yield t, states
    if on_progress is not None and pending:
        on_progress(pending)
    states.clear()
    gone.clear()
    release_freed_memory()


def release_freed_memory() -> None:
    """Hand the replay's freed memory back to the OS. The states are millions of small objects; once
    freed, glibc keeps their pages for reuse, and the rows' large arrays, allocated afterwards with
    mmap, cannot reuse them: without this the process carries both. No-op where there is no glibc."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _drop_gone(states: dict[str, CustomerState], gone: set[str], labels: Labels, t_ms: int, delay_ms: int) -> None:
    for cid in [c for c in labels.churns if c in states and labels.gone_for_good(c, t_ms, delay_ms)]:
        del states[cid]
        gone.add(cid)
