"""Churn labels from outcome events.

A label must come from what the business recorded, not from a guess such as "no activity for N days":
the model is meant to warn *before* the silence. Outcome events of type ``churned`` mark a churn and
``renewed`` marks a customer staying (or coming back), so a customer's status at any time is given by
the latest of those two events at or before it. That handles win-backs (churn, renew, churn again)
without special cases; most customers have at most one churn.

Label delay. A churn recorded by the business (a cancellation) is known when it happens. A churn
inferred from inactivity (``churnwatch train --usage U --inactive-days N``) is dated the day after the
last activity but is only *known* N days later, when the silence has lasted long enough. With a label
delay D (``DatasetConfig.label_delay_days``; N for inactivity churn, 0 otherwise) the rules, used alike
by the training rows, the replay's eviction and the ``churnwatch score`` backtest, are:

* a churn at c is **known at T** when c + D <= T; a renewal (a comeback) at r is known at once, r <= T;
* **excluded at T** (:meth:`Labels.known_churned`): the latest churn known at T is not followed by a
  renewal in (c, T] — a churn and a renewal at the same instant count as churned;
* **label at T** (:meth:`Labels.label`, for a customer not excluded): 1 when some churn c has
  T - D < c <= T + horizon (not yet known at T, and by the end of the horizon) and no renewal in (c, T].
  A customer silent since before T who never comes back is already gone at T, though nobody can know
  it yet: positive. One who came back at or before T (a win-back) is active again: that churn no longer
  counts, a later one does. A churn followed by a renewal *after* T is still a churn (the label does not
  wait for comebacks, which would make it depend on how long the log runs after T);
* **gone for good at T** (:meth:`Labels.gone_for_good`): excluded at T and no renewal after T, so
  excluded at every later T as well.

With D = 0 these are exactly the contractual rules: excluded = churned by T, label = a churn in
(T, T + horizon].
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Iterable

from pipeline.core.contract import Event

CHURNED = "churned"
RENEWED = "renewed"


@dataclass
class Labels:
    """Per-customer churn and renewal times (epoch ms, ascending)."""

    churns: dict[str, list[int]] = field(default_factory=dict)
    renewals: dict[str, list[int]] = field(default_factory=dict)

    def first_churn(self, customer_id: str) -> int | None:
        times = self.churns.get(customer_id)
        return times[0] if times else None

    def churn_times(self) -> dict[str, int | None]:
        """First churn per customer who has any outcome — comparable to the simulator's ground truth."""
        ids = set(self.churns) | set(self.renewals)
        return {cid: self.first_churn(cid) for cid in sorted(ids)}

    def churned_by(self, customer_id: str, t_ms: int) -> bool:
        """Is the customer gone at ``t_ms``? True when the latest churn at or before ``t_ms`` is not
        followed by a renewal at or before ``t_ms``. A churn and a renewal at the same instant count as
        churned: an ambiguous customer is left out of the data rather than labelled. (``known_churned``
        with no delay.)"""
        return self.known_churned(customer_id, t_ms, 0)

    def known_churned(self, customer_id: str, t_ms: int, delay_ms: int = 0) -> bool:
        """Is the customer *known* to be gone at ``t_ms``, a churn at c being known from c + ``delay_ms``
        on and a renewal at once? True when the latest churn with c + delay <= ``t_ms`` is not followed
        by a renewal in (c, ``t_ms``]. Who gets a row at T: everyone else (see the module docstring)."""
        churns = self.churns.get(customer_id)
        if not churns:
            return False
        i = bisect_right(churns, t_ms - delay_ms)
        if i == 0:
            return False
        last_churn = churns[i - 1]
        renewals = self.renewals.get(customer_id, ())
        j = bisect_right(renewals, t_ms)
        return j == 0 or renewals[j - 1] <= last_churn

    def gone_for_good(self, customer_id: str, t_ms: int, delay_ms: int = 0) -> bool:
        """Known churned at ``t_ms`` and never renewed after it: no later time can see the customer
        active, so every later snapshot leaves it out too."""
        if not self.known_churned(customer_id, t_ms, delay_ms):
            return False
        renewals = self.renewals.get(customer_id)
        return not renewals or renewals[-1] <= t_ms

    def labelling_churn(self, customer_id: str, t_ms: int, horizon_ms: int, delay_ms: int = 0) -> int | None:
        """The churn that makes the row at ``t_ms`` positive, or None: the first churn c with
        ``t_ms`` - delay < c <= ``t_ms`` + horizon and no renewal in (c, ``t_ms``]. With no delay, the
        first churn in (T, T + horizon]. Meant for customers not :meth:`known_churned` at ``t_ms``."""
        churns = self.churns.get(customer_id)
        if not churns:
            return None
        after = t_ms - delay_ms
        renewals = self.renewals.get(customer_id, ())
        j = bisect_right(renewals, t_ms)
        if j:  # a churn before the latest renewal up to T was ended by it; a churn at that instant was not
            after = max(after, renewals[j - 1] - 1)
        i = bisect_right(churns, after)
        return churns[i] if i < len(churns) and churns[i] <= t_ms + horizon_ms else None

    def label(self, customer_id: str, t_ms: int, horizon_ms: int, delay_ms: int = 0) -> int:
        """The row's label at ``t_ms``: 1 when :meth:`labelling_churn` finds a churn, else 0."""
        return 0 if self.labelling_churn(customer_id, t_ms, horizon_ms, delay_ms) is None else 1

    def churns_within(self, customer_id: str, after_ms: int, until_ms: int) -> bool:
        """Any churn in the half-open window (after_ms, until_ms] — the label window of a snapshot."""
        churns = self.churns.get(customer_id)
        if not churns:
            return False
        i = bisect_right(churns, after_ms)
        return i < len(churns) and churns[i] <= until_ms

    def churns_between(self, start_ms: int, end_ms: int) -> int:
        """How many churns happened in [start_ms, end_ms) — for data-window summaries."""
        return sum(bisect_left(t, end_ms) - bisect_left(t, start_ms) for t in self.churns.values())


def labels_from_events(events: Iterable[Event]) -> Labels:
    """Collect churn/renewal times. Other sources and outcome types are ignored; order does not matter."""
    labels = Labels()
    for ev in events:
        if ev.source != "outcomes":
            continue
        if ev.type == CHURNED:
            labels.churns.setdefault(ev.customer_id, []).append(ev.ts_ms)
        elif ev.type == RENEWED:
            labels.renewals.setdefault(ev.customer_id, []).append(ev.ts_ms)
    for series in (labels.churns, labels.renewals):
        for times in series.values():
            times.sort()
    return labels


def churn_times(events: Iterable[Event]) -> dict[str, int | None]:
    """Customer id -> first churn time (None for customers with only renewals)."""
    return labels_from_events(events).churn_times()
