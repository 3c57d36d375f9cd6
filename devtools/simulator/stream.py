"""Synthetic customer population and event stream for churnwatch.

The simulator exists so that every part of the system can be exercised without real customer data: data
scientists train on its history, the demo streams it live, and tests lean on it. That only works if the data
behaves like the real thing in the ways that matter for churn prediction:

* churners *visibly deteriorate* before they leave (usage decays, tickets become more frequent, more severe
  and slower to resolve, survey scores fall, failed help views rise), usually 20-60 days ahead;
* the signal is blurred by noise that looks like it: healthy customers have bad weeks, long rough patches
  they recover from, vacations, grumpy-but-loyal survey habits; and some churners leave with little warning;
* the structure real pipelines have to cope with is present: time zones, business hours, weekends, multi-day
  ticket lifecycles, contracts and renewals, profile upserts, and (optionally) malformed input.

By default the product speaks a fixed vocabulary (login, feature_use, page_view, help_view, purchase). The
opt-in *foreign-vocabulary mode* (``SimConfig.vocabulary`` = 8..25) makes it a product of its own instead:
that many product-specific event types with a long-tailed volume, multi-user accounts (``user_id``), an
optional numeric ``value``, subscriptions that end on renewal days, and a churn story told by the *mix* of
types (value types fade, friction types grow) more than by the volume. See ``docs/simulator.md``.

Design constraints, and why:

* **Deterministic and order-independent.** Every customer owns two random streams derived from
  ``(seed, customer index)``: a *plan* stream that fixes who the customer is and when (if ever) they churn, and
  an *event* stream for the noisy day-to-day behaviour. Customer ``i`` is therefore identical whatever the
  population size, and :func:`ground_truth` can answer from the plan stream alone without generating events.
* **Streaming.** Customers are advanced one (local) day at a time; a small buffer is sorted and flushed up to a
  watermark, so memory is bounded by about a day of events plus open tickets, not by the window.
* **Fast.** Random numbers are drawn from numpy in blocks and consumed as Python floats (per-call numpy
  overhead would dominate otherwise); timestamps are formatted with a per-day prefix cache.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from operator import attrgetter

from devtools.simulator.customer import _Customer
from devtools.simulator.draw import _Draw, _ss_rng
from devtools.simulator.malformed import _malformed
from devtools.simulator.parameters import _MAX_AHEAD_H
from devtools.simulator.plan import _Plan, _make_plan
from devtools.simulator.records import DAY_MS, HOUR_MS, SimConfig, SimRecord, resolve_start_ms
from devtools.simulator.vocabulary import _product


_TS = attrgetter("ts_ms")


def _plans(cfg: SimConfig, start: int) -> Iterator[_Plan]:
    end = start + cfg.days * DAY_MS
    for i in range(cfg.customers):
        yield _make_plan(cfg, i, start, end)


def ground_truth(cfg: SimConfig) -> dict[str, int | None]:
    """Churn time (epoch ms) per customer, or None: the same labels ``simulate`` emits as ``churned``.

    Only the plan stream is drawn, so this costs ~50 µs per customer instead of a full simulation.
    """
    start = resolve_start_ms(cfg)
    return {p.cid: p.churn_ms for p in _plans(cfg, start)}


def simulate(cfg: SimConfig, progress: Callable[[str, int, int | None], None] | None = None) -> Iterator[SimRecord]:
    """All records of the run, globally sorted by ``ts_ms`` (ties keep generation order).

    Customers are advanced one local day at a time. Events of local day ``d`` are never earlier than that
    day's local midnight, and the earliest local midnight of day ``d + 1`` over all time zones is
    ``_MAX_AHEAD_H`` hours before the UTC midnight: everything below that watermark is final and flushed.
    ``progress`` is told ``("simulating days", done, total)`` after each simulated day (the CLI's bar).
    """
    start = resolve_start_ms(cfg)
    end = start + cfg.days * DAY_MS
    grid0 = (start // DAY_MS) * DAY_MS
    n_days = -(-(end - grid0) // DAY_MS)
    buf: list[SimRecord] = []
    prod = _product(cfg)
    active = [_Customer(p, cfg.seed, buf, prod, cfg.users_per_account) for p in _plans(cfg, start)]
    bad = _Draw(_ss_rng(cfg.seed, (0xBAD,)), 256) if cfg.bad_rate > 0 else None
    n_bad = 0
    ahead = _MAX_AHEAD_H * HOUR_MS
    for day in range(-1, n_days + 1):
        if progress is not None:
            progress("simulating days", day + 1, n_days + 2)
        day0 = grid0 + day * DAY_MS
        weekday = (day0 // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday; Monday == 0
        still: list[_Customer] = []
        for c in active:
            lm = day0 - c.p.offset_h * HOUR_MS
            c.day(lm, weekday)
            if lm + DAY_MS < c.hi or c.fi < len(c.p.fixed):
                still.append(c)
        active = still
        if day == n_days:
            wm = None
        else:
            wm = day0 + DAY_MS - ahead
        buf.sort(key=_TS)
        cut = len(buf) if wm is None else bisect.bisect_left(buf, wm, key=_TS)
        if cut == 0:
            continue
        ready = buf[:cut]
        del buf[:cut]
        if bad is None:
            yield from ready
            continue
        for rec in ready:
            yield rec
            if bad.u() < cfg.bad_rate:
                n_bad += 1
                yield _malformed(rec, bad, n_bad)
    if progress is not None:
        progress("simulating days", n_days + 2, n_days + 2)
