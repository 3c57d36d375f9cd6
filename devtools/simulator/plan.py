"""Who each customer is, drawn from their plan stream alone: plan, contract, health over time, when (if ever)
they churn, and the events known in advance (profiles, renewals, the churn itself)."""

from __future__ import annotations

import math
from typing import Any

from devtools.simulator.draw import _Draw, _cum, _ss_rng
from devtools.simulator.parameters import (CSMS, FEATURES, PLANS, _CHURN_REASONS_ABRUPT, _CHURN_REASONS_DECLINE,
                                           _CHURN_REASONS_QUIET, _MEAN_RISK, _MONTHLY_P, _MRR_MEDIAN, _MRR_SIGMA,
                                           _OFFSET_CUM, _PLAN_CUM, _SESSIONS_MEDIAN, _TICKET_MEDIAN, _UTC_OFFSETS,
                                           _VIP_P, _mean_risk, _risk)
from devtools.simulator.records import DAY_MS, HOUR_MS, MIN_MS, SEC_MS, YEAR_MS, SimConfig, iso_ms
from devtools.simulator.vocabulary import _FX_ANNUAL_DEFER, _FX_SNAP, _FX_TICKET_FACTOR, _product


def _envelope(x: float) -> float:
    """Quick onset, plateau, slower recovery over an episode (``x`` in [0, 1)): how a bad week or an
    incident usually feels."""
    return x / 0.15 if x < 0.15 else (1.0 if x < 0.6 else (1.0 - x) / 0.4)


class _Plan:
    """Who a customer is and how their health evolves; drawn from the plan stream only.

    Health is expressed as *stress* on three channels in [0, 1] -- usage, support, sentiment -- so that
    churners (and healthy customers in a bad week) can deteriorate on some channels more than on others.
    """

    __slots__ = (
        "index", "cid", "tier", "plan", "term", "period_ms", "mrr", "signup_ms", "csm", "offset_h",
        "sessions", "ticket_rate", "sat", "feat_cum", "api_user", "churn_ms", "latent_churn_ms",
        "archetype", "onset_ms", "decline_end_ms", "depth", "shape", "w_use", "w_sup", "w_sent",
        "episodes", "fixed", "lo_ms", "hi_ms", "reason", "ep_kind", "names", "foreign",
    )

    def decline_progress(self, t: int) -> float | None:
        """How far the churn decline has gone at ``t``: None before its onset, then 0..1."""
        onset = self.onset_ms
        if onset is None or t < onset:
            return None
        span = self.decline_end_ms - onset
        return 1.0 if span <= 0 or t >= self.decline_end_ms else (t - onset) / span

    def stress(self, t: int) -> tuple[float, float, float]:
        """(usage, support, sentiment) stress at ``t``: the churn decline overlaid with any bad episode."""
        su = ss = se = 0.0
        x = self.decline_progress(t)
        if x is not None:
            d = self.depth * x ** self.shape
            if t >= self.decline_end_ms and self.archetype == "quiet":
                d = 1.0
            su, ss, se = d * self.w_use, d * self.w_sup, d * self.w_sent
        for a, b, inten, wu, ws, we in self.episodes:
            if a <= t < b:
                f = inten * _envelope((t - a) / (b - a))
                su = max(su, f * wu)
                ss = max(ss, f * ws)
                se = max(se, f * we)
        return (min(su, 1.0), min(ss, 1.0), min(se, 1.0))

    def fstress(self, t: int) -> tuple[float, float, float]:
        """Foreign-vocabulary mode: (value loss, friction, volume loss) in [0, 1] at ``t``.

        A churn decline shows mostly in the *mix* (value types fade, friction types grow) and far less in
        the volume; only quiet churners fade to silence. Vacations are the opposite: volume, not mix.
        """
        mv = mf = vol = 0.0
        x = self.decline_progress(t)
        if x is not None:
            d = self.depth * x ** self.shape
            dm = self.depth * x ** (0.6 * self.shape)  # habits change before the volume does
            if t >= self.decline_end_ms and self.archetype == "quiet":
                d = dm = 1.0
            mv = dm * (0.55 + 0.45 * self.w_use)
            mf = dm * (0.55 + 0.45 * self.w_sup)
            vol = d if self.archetype == "quiet" else 0.2 * d * self.w_use
        for (a, b, inten, wu, ws, _we), kind in zip(self.episodes, self.ep_kind):
            if a <= t < b:
                f = inten * _envelope((t - a) / (b - a))
                if kind == 0:  # vacation: fewer events, same habits
                    vol = max(vol, f * wu)
                elif kind == 1:  # incident: errors and failures, a little less value
                    mf = max(mf, 0.8 * f * ws)
                    mv = max(mv, 0.3 * f)
                else:  # rough patch / long at-risk stretch: looks like a decline, then recovers
                    mv = max(mv, f * wu)
                    mf = max(mf, f * ws)
                    vol = max(vol, 0.3 * f * wu)
        return (min(mv, 1.0), min(mf, 1.0), min(vol, 1.0))


def _make_plan(cfg: SimConfig, i: int, start: int, end: int) -> _Plan:
    """Draw customer ``i`` from its own plan stream, so it is the same customer in any population size.

    Everything that decides the label (churn time) lives here and nowhere else; the event stream only adds
    behavioural noise on top, which is what keeps :func:`ground_truth` cheap and always in agreement.
    """
    d = _Draw(_ss_rng(cfg.seed, (i, 0)), 64)
    p = _Plan()
    p.index = i
    p.cid = f"{cfg.id_prefix}{i:06d}"
    plan = PLANS[d.pick(_PLAN_CUM)]
    p.plan = plan
    p.tier = "vip" if d.chance(_VIP_P[plan]) else "standard"
    prod = _product(cfg)
    p.foreign = prod is not None
    p.names = None if prod is None else dict(zip(PLANS, prod.plan_names))
    monthly_p = _MONTHLY_P[plan] if cfg.annual_share is None else 1.0 - cfg.annual_share
    p.term = "monthly" if d.chance(monthly_p) else "annual"
    p.period_ms = 30 * DAY_MS if p.term == "monthly" else YEAR_MS
    mrr = _MRR_MEDIAN[plan] * math.exp(_MRR_SIGMA[plan] * d.normal())
    if p.tier == "vip":
        mrr *= d.between(1.5, 2.5)
    if p.term == "annual":
        mrr *= 0.9
    p.mrr = round(mrr, 2)
    p.csm = CSMS[int(d.u() * len(CSMS))]
    p.offset_h = _UTC_OFFSETS[d.pick(_OFFSET_CUM)][0]

    window = end - start
    new_share = min(0.25, 0.12 * cfg.days / 180.0)
    if d.chance(new_share):
        p.signup_ms = start + int(d.u() * 0.85 * window)
    else:
        tenure = int((7 + (4 * 365 - 7) * d.u() ** 1.5) * DAY_MS)
        p.signup_ms = start - tenure - int(d.u() * DAY_MS)
    p.lo_ms = max(start, p.signup_ms)

    vip_boost = 1.2 if p.tier == "vip" else 1.0
    p.sessions = _SESSIONS_MEDIAN[plan] * vip_boost * math.exp(0.5 * d.normal())
    p.ticket_rate = _TICKET_MEDIAN[plan] * math.exp(0.5 * d.normal())
    if p.foreign:
        p.ticket_rate *= _FX_TICKET_FACTOR
    p.sat = d.normal()  # some customers are simply grumpier raters, churn or not
    raw = [-math.log(1.0 - d.u()) for _ in FEATURES]
    p.api_user = d.chance(0.3)
    if not p.api_user:
        raw[FEATURES.index("api")] *= 0.05
    p.feat_cum = _cum(raw)

    # ---- churn: decided up front so ground_truth() needs nothing else
    p.churn_ms = None
    p.latent_churn_ms = None
    p.archetype = "none"
    p.onset_ms = None
    p.decline_end_ms = 0
    p.depth = p.shape = p.w_use = p.w_sup = p.w_sent = 0.0
    p.reason = ""
    renewals = _renewals(p.signup_ms, p.period_ms, p.lo_ms, end + 2 * p.period_ms)

    mean_risk = _MEAN_RISK if cfg.annual_share is None else _mean_risk(cfg.annual_share)
    risk = _risk(plan, p.term, p.tier)
    if p.foreign and p.term == "annual" and cfg.days < 365:
        # Most annual churners without a renewal inside the window leave after it (see below): select
        # more of them so the in-window churn share still matches churn_rate.
        risk /= 1.0 - _FX_ANNUAL_DEFER * (1.0 - cfg.days / 365.0)
    prob = min(0.95, cfg.churn_rate * risk / mean_risk)
    earliest = max(start + 3 * DAY_MS, p.signup_ms + 14 * DAY_MS)
    u_churn = d.u()
    u_when = d.u()
    u_snap = d.u()
    u_jit = d.u()
    deferred = False
    if p.foreign and u_churn < prob and earliest < end - HOUR_MS:
        # Subscriptions end at a renewal: a cancellation takes effect at the end of the paid period, so
        # the churned event lands on the renewal day (within the 24 h before the renewal instant).
        t = earliest + int(u_when * (end - earliest))
        inside = [r for r in renewals if earliest + DAY_MS <= r < end]
        if inside and u_snap < _FX_SNAP:
            nxt = [r for r in inside if r >= t]
            r = (nxt[0] if nxt else inside[-1]) if p.term == "monthly" else min(inside, key=lambda r: abs(r - t))
            t = r - MIN_MS - int(u_jit * (DAY_MS - 2 * MIN_MS))
        elif not inside and p.term == "annual" and u_snap < _FX_ANNUAL_DEFER:
            deferred = True  # leaves at its next renewal, after the window
            after = [r for r in renewals if r >= end]
            if after and after[0] - end < 60 * DAY_MS:
                p.latent_churn_ms = after[0] - MIN_MS - int(u_jit * (DAY_MS - 2 * MIN_MS))
        if not deferred:
            p.churn_ms = max(earliest, t)
    elif u_churn < prob and earliest < end - HOUR_MS:
        t = earliest + int(u_when * (end - earliest))
        inside = [r for r in renewals if earliest <= r < end]
        if p.term == "annual" and inside and u_snap < 0.8:
            t = inside[0] if len(inside) == 1 else min(inside, key=lambda r: abs(r - t))
            t -= MIN_MS + int(u_jit * 3 * DAY_MS)
        elif p.term == "monthly" and u_snap < 0.55:
            nxt = [r for r in inside if r >= t]
            if nxt:
                t = nxt[0] - MIN_MS - int(u_jit * 3 * DAY_MS)
        p.churn_ms = max(earliest, t)
    else:
        # Customers who will leave shortly after the window already deteriorate inside it: their snapshots
        # near the end are right-censored, exactly like in production.
        q = min(0.5, (60.0 * cfg.churn_rate / cfg.days) / max(1e-9, 1.0 - cfg.churn_rate))
        if u_churn >= prob and d.chance(q):
            p.latent_churn_ms = end + int(d.u() * 60 * DAY_MS)
            if p.foreign:  # they too will leave at a renewal
                after = [r for r in renewals if r >= max(end + DAY_MS, p.latent_churn_ms - 5 * DAY_MS)]
                if after and after[0] - end < 75 * DAY_MS:
                    p.latent_churn_ms = after[0] - MIN_MS
    target = p.churn_ms if p.churn_ms is not None else p.latent_churn_ms
    if target is not None:
        _plan_decline(p, d, target)

    # ---- episodes: bad weeks and rough patches that do *not* end in churn
    p.episodes = []
    p.ep_kind = []  # 0 vacation, 1 incident, 2 rough patch or long at-risk stretch (foreign mode reads it)
    n_ep = d.poisson(0.9 * cfg.days / 180.0)
    for _ in range(n_ep):
        kind = d.u()
        a = start - 7 * DAY_MS + int(d.u() * (window + 7 * DAY_MS))
        if kind < 0.35:  # vacation / seasonal dip: usage only
            length, inten, w = d.between(5, 14), d.between(0.5, 0.9), (1.0, 0.0, 0.05)
            p.ep_kind.append(0)
        elif kind < 0.7:  # incident: a bad ticket or two, an unhappy survey
            length, inten, w = d.between(3, 10), d.between(0.45, 0.85), (0.15, 1.0, 0.8)
            p.ep_kind.append(1)
        else:  # rough patch on every channel
            length, inten = d.between(7, 21), d.between(0.3, 0.7)
            w = (d.between(0.3, 1.0), d.between(0.3, 1.0), d.between(0.3, 1.0))
            p.ep_kind.append(2)
        p.episodes.append((a, a + int(length * DAY_MS), inten, *w))
    if d.chance(0.13 * min(1.0, cfg.days / 180.0)):
        # A long at-risk stretch the customer recovers from: the hardest negatives for a model.
        length = d.between(25, 50)
        a = start - 10 * DAY_MS + int(d.u() * (window + 10 * DAY_MS))
        w = (d.between(0.4, 1.0), d.between(0.4, 1.0), d.between(0.4, 1.0))
        p.episodes.append((a, a + int(length * DAY_MS), d.between(0.4, 0.8), *w))
        p.ep_kind.append(2)

    p.hi_ms = end if p.churn_ms is None else p.churn_ms
    p.fixed = _fixed_events(p, d, renewals, start, end)
    return p


def _renewals(signup: int, period: int, after: int, until: int) -> list[int]:
    """Contract anniversaries strictly after ``after`` and before ``until`` (30-day months, 365-day years)."""
    k = max(1, (after - signup) // period + 1)
    out = []
    r = signup + k * period
    while r <= after:
        r += period
    while r < until:
        out.append(r)
        r += period
    return out


def _plan_decline(p: _Plan, d: _Draw, target: int) -> None:
    """Pick how this customer will leave: a visible decline, a fade into silence, or with little warning."""
    u = d.u()
    if u < 0.72:
        p.archetype = "decline"
        lead = d.between(20, 60) if d.u() < 0.85 else d.between(60, 90)
        p.depth = d.between(0.55, 0.95)
        p.shape = d.between(0.7, 1.6)
        w = [d.between(0.3, 1.0) for _ in range(3)]
        top = max(w)
        p.w_use, p.w_sup, p.w_sent = (x / top for x in w)
        p.decline_end_ms = target
        p.reason = _CHURN_REASONS_DECLINE[int(d.u() * len(_CHURN_REASONS_DECLINE))]
    elif u < 0.88:
        p.archetype = "quiet"  # silence is a signal: usage fades to nothing weeks before leaving
        lead = d.between(35, 75)
        p.depth, p.shape = 1.0, d.between(0.6, 1.0)
        p.w_use, p.w_sup, p.w_sent = 1.0, d.between(0.0, 0.3), d.between(0.2, 0.6)
        p.decline_end_ms = target - int(d.between(14, 40) * DAY_MS)
        p.reason = _CHURN_REASONS_QUIET[int(d.u() * len(_CHURN_REASONS_QUIET))]
    else:
        p.archetype = "abrupt"  # budget cut, acquisition: little warning
        lead = d.between(0.5, 10)
        p.depth, p.shape = d.between(0.15, 0.5), 1.0
        p.w_use, p.w_sup, p.w_sent = d.between(0.3, 1.0), d.between(0.2, 1.0), d.between(0.3, 1.0)
        p.decline_end_ms = target
        p.reason = _CHURN_REASONS_ABRUPT[int(d.u() * len(_CHURN_REASONS_ABRUPT))]
    p.onset_ms = max(p.signup_ms, target - int(lead * DAY_MS))
    if p.decline_end_ms <= p.onset_ms:
        p.decline_end_ms = p.onset_ms + DAY_MS


def _profile(p: _Plan, plan: str, mrr: float, renewal: int) -> dict[str, Any]:
    if p.names is not None:
        plan = p.names[plan]
    return {"tier": p.tier, "plan": plan, "mrr": mrr, "signup_ts": iso_ms(p.signup_ms),
            "renewal_ts": iso_ms(renewal), "csm": p.csm, "term": p.term}


def _fixed_events(p: _Plan, d: _Draw, renewals: list[int], start: int, end: int) -> list[tuple]:
    """Profile upserts, renewals, plan changes and the churn itself: known in advance, emitted on their day."""
    hi = p.hi_ms
    first = p.signup_ms if p.signup_ms >= start else start + int(d.u() * 20 * SEC_MS)
    out: list[tuple] = []
    plan, mrr = p.plan, p.mrr
    next_r = [r for r in renewals if r > first]
    if first < hi:
        out.append((first, "customers", "profile", _profile(p, plan, mrr, next_r[0])))
    for j, r in enumerate(next_r[:-1]):
        if r >= end or r >= hi:
            break
        su, ss, se = p.stress(r)
        s = (su + ss + se) / 3.0
        u = d.u()
        idx = PLANS.index(plan)
        if s > 0.3 and u < 0.3 and idx > 0:  # downgrade on the way out
            plan, mrr = PLANS[idx - 1], round(mrr * d.between(0.3, 0.6), 2)
        elif s < 0.1 and u < 0.05 and idx < 2:
            plan, mrr = PLANS[idx + 1], round(mrr * d.between(2.0, 4.0), 2)
        elif p.term == "annual":
            mrr = round(mrr * d.between(1.0, 1.07), 2)
        nxt = next_r[j + 1]
        out.append((r, "outcomes", "renewed",
                    {"renewal_ts": iso_ms(r), "next_renewal_ts": iso_ms(nxt),
                     "plan": plan if p.names is None else p.names[plan], "mrr": mrr, "term": p.term}))
        t_prof = r + SEC_MS + int(d.u() * 59 * SEC_MS)
        if t_prof < hi:
            out.append((t_prof, "customers", "profile", _profile(p, plan, mrr, nxt)))
    if p.churn_ms is not None:
        out.append((p.churn_ms, "outcomes", "churned",
                    {"reason": p.reason, "plan": plan if p.names is None else p.names[plan], "mrr": mrr,
                     "term": p.term}))
    out.sort(key=lambda e: e[0])
    return out
