"""Churn labels from outcome events.

A label must come from what the business recorded, not from a guess such as "no activity for N days":
the model is meant to warn *before* the silence. Outcome events of type ``churned`` mark a churn and
``renewed`` marks a customer staying (or coming back), so a customer's status at any time is given by
the latest of those two events at or before it. That handles win-backs (churn, renew, churn again)
without special cases; most customers have at most one churn.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Iterable

from pipeline.contract import Event

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
        churned: an ambiguous customer is left out of the data rather than labelled."""
        churns = self.churns.get(customer_id)
        if not churns:
            return False
        i = bisect_right(churns, t_ms)
        if i == 0:
            return False
        last_churn = churns[i - 1]
        renewals = self.renewals.get(customer_id, ())
        j = bisect_right(renewals, t_ms)
        return j == 0 or renewals[j - 1] <= last_churn

    def gone_for_good(self, customer_id: str, t_ms: int) -> bool:
        """Churned at ``t_ms`` and never renewed after it: no later time can see the customer active."""
        if not self.churned_by(customer_id, t_ms):
            return False
        renewals = self.renewals.get(customer_id)
        return not renewals or renewals[-1] <= t_ms

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
