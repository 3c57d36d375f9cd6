"""Day-by-day behaviour: a customer's sessions, help lookups, tickets and surveys, drawn from their event
stream on top of the plan (and, in the foreign-vocabulary mode, the account's users and type mix)."""

from __future__ import annotations

import bisect
import math
from typing import Any

from devtools.simulator.draw import _Draw, _clip_round, _cum_raw, _ss_rng
from devtools.simulator.parameters import (CATEGORIES, FEATURES, PAGES, SEVERITIES, SLA_HOURS, _BUSINESS_CUM,
                                           _CAT_CUM_BY_SEV, _ESCALATE_P, _FIRST_REPLY_H, _NPS_COMMENTS,
                                           _PAGE_CUM_HEALTHY, _PAGE_CUM_STRESSED, _RES_MEDIAN_H, _WEEKDAY_CUM,
                                           _WEEKEND_CUM, _WEEKEND_FACTOR, _sev_weights)
from devtools.simulator.plan import _Plan
from devtools.simulator.records import (DAY_MS, HOUR_MS, MIN_MS, SCHEMA_VERSION, SEC_MS, _DEFAULT_USERS, SimRecord,
                                        iso_ms)
from devtools.simulator.vocabulary import _FX_NPS_P, _FX_SESSION_RATE, _MIX_GAIN, _Product


class _Foreign:
    """Per-customer state of the foreign-vocabulary mode, drawn from the customer's third stream ``(i, 2)``.

    The account's users are kept sorted by how much decline they tolerate (the first, the account owner,
    never leaves), so the users still active at a given value loss are always a prefix.
    """

    __slots__ = ("prod", "uids", "neg_thr", "cum_w", "prefs", "h", "mix")

    def __init__(self, p: _Plan, seed: int, prod: _Product, users_per_account: float) -> None:
        d = _Draw(_ss_rng(seed, (p.index, 2)), 64)
        self.prod = prod
        size = {"basic": 0.5, "pro": 1.0, "enterprise": 2.0}[p.plan] / 0.9  # mean 1 over the plan mix
        n_users = min(200, 1 + d.poisson((users_per_account - 1.0) * size))
        users = []
        for j in range(n_users):
            w = math.exp(0.8 * d.normal()) * (2.0 if j == 0 else 1.0)
            thr = math.inf if j == 0 else d.between(0.25, 1.5) + 0.25 * math.log(w)  # occasional users go first
            users.append((thr, j, w))
        users.sort(key=lambda x: -x[0])
        self.uids = tuple(f"{p.cid}-u{j}" for _, j, _ in users)
        self.neg_thr = [-thr for thr, _, _ in users]
        self.cum_w = list(_cum_raw(w for _, _, w in users))
        # Each customer uses the product a little differently: per-type preferences around the product mix.
        self.prefs = tuple(sh * math.exp(0.3 * d.normal()) for sh in prod.shares)
        self.h = 0.0  # hidden health drift (an AR(1) around 0), shared by every user of the account
        self.mix: dict[tuple[int, int], list[float]] = {}

    def mix_cum(self, qv: int, qf: int) -> list[float]:
        """Cumulative type mix at value loss ``qv / 20`` and friction ``qf / 20`` (cached per customer)."""
        key = (qv, qf)
        cum = self.mix.get(key)
        if cum is None:
            xv, xf = qv / 20.0, qf / 20.0
            exp = math.exp
            cum = _cum_raw(pr * exp(-_MIX_GAIN * w * (xv if w > 0.0 else xf))
                           for pr, w in zip(self.prefs, self.prod.weights))
            top = cum[-1]
            cum = [c / top for c in cum]
            self.mix[key] = cum
        return cum


class _Customer:
    """Event-stream state of one customer; advanced one local calendar day at a time."""

    __slots__ = ("p", "d", "cid", "n", "k", "z", "next_nps", "fi", "lo", "hi", "out", "onboard_ces", "fx",
                 "nps_p")

    def __init__(self, p: _Plan, seed: int, out: list[SimRecord], prod: _Product | None = None,
                 users_per_account: float = _DEFAULT_USERS) -> None:
        self.p = p
        self.d = _Draw(_ss_rng(seed, (p.index, 1)), 128)
        self.cid = p.cid
        self.n = 0
        self.k = 0
        self.z = 0.0
        self.lo = p.lo_ms
        self.hi = p.hi_ms
        self.out = out
        self.fi = 0
        self.fx = None if prod is None else _Foreign(p, seed, prod, users_per_account)
        self.nps_p = 0.7 if prod is None else _FX_NPS_P
        if p.signup_ms >= self.lo:  # signed up inside the window
            self.next_nps = p.signup_ms + int(self.d.between(30, 60) * DAY_MS)
            self.onboard_ces = p.signup_ms + int(self.d.between(5, 14) * DAY_MS)
        else:
            self.next_nps = self.lo + int(self.d.between(3, 90) * DAY_MS)
            self.onboard_ces = -1

    # -- emission

    def _ev(self, ts: int, source: str, typ: str, extra: dict[str, Any] | None) -> None:
        if ts < self.lo or ts >= self.hi:
            return
        self.n += 1
        cid = self.cid
        v = {"event_id": f"{cid}-{self.n}", "customer_id": cid, "ts": iso_ms(ts), "type": typ,
             "schema_version": SCHEMA_VERSION}
        if extra:
            v.update(extra)
        self.out.append(SimRecord(source, cid, ts, v))

    # -- one local day

    def day(self, lm: int, weekday: int) -> None:
        """Generate the customer's events for the local day starting at UTC instant ``lm``."""
        p = self.p
        d = self.d
        le = lm + DAY_MS
        fixed = p.fixed
        while self.fi < len(fixed) and fixed[self.fi][0] < le:
            ts, source, typ, extra = fixed[self.fi]
            self.fi += 1
            if typ == "churned":
                self.hi = ts + 1  # let the label itself through, nothing after it
                self._ev(ts, source, typ, extra)
                self.hi = ts
            else:
                self._ev(ts, source, typ, extra)
        if le <= self.lo or lm >= self.hi:
            return
        su, ss, se = p.stress(lm + DAY_MS // 2)
        weekend = weekday >= 5

        if self.fx is not None:
            self._fx_usage(lm, weekend)
        else:
            # Usage: sessions per day follow health, weekday and a slowly wandering mood (AR(1) in log space).
            self.z = 0.6 * self.z + 0.35 * d.normal()
            lam = p.sessions * (_WEEKEND_FACTOR if weekend else 1.0) * math.exp(self.z - 0.1)
            use = 1.0 - su
            lam *= use * use if use > 0.0 else 0.0
            since = lm - p.signup_ms
            if since < 14 * DAY_MS:
                lam *= 0.3 + 0.7 * max(0.0, since) / (14 * DAY_MS)
            n_sessions = d.poisson(lam)
            hours = _WEEKEND_CUM if weekend else _WEEKDAY_CUM
            for _ in range(n_sessions):
                t = lm + d.pick(hours) * HOUR_MS + int(d.u() * HOUR_MS)
                self._session(t, su, ss)

        # Support: ticket rate and severity climb with support stress.
        t_rate = p.ticket_rate * (1.0 + 5.0 * ss) * (0.3 if weekend else 1.0)
        for _ in range(d.poisson(t_rate)):
            sev_w = _sev_weights(ss)
            sev = d.pick(sev_w)
            cum = _BUSINESS_CUM if sev < 3 else _WEEKDAY_CUM  # outages do not wait for office hours
            t = lm + d.pick(cum) * HOUR_MS + int(d.u() * HOUR_MS)
            self._ticket(t, sev, ss, se)

        # Relationship surveys every 60-120 days; silent customers stop answering.
        if self.next_nps < le:
            self.next_nps = max(self.next_nps, lm) + int(d.between(60, 120) * DAY_MS)
            if d.chance(self.nps_p * (1.0 - 0.7 * su)):
                t = lm + d.pick(_BUSINESS_CUM) * HOUR_MS + int(d.u() * HOUR_MS)
                score = _clip_round(8.4 + 0.9 * p.sat - 7.0 * se + 1.3 * d.normal(), 0, 10)
                extra: dict[str, Any] = {"score": score, "touchpoint": "quarterly"}
                if d.chance(0.35):
                    cat = 0 if score <= 6 else (1 if score <= 8 else 2)
                    opts = _NPS_COMMENTS[cat]
                    extra["comment"] = opts[int(d.u() * len(opts))]
                self._ev(t, "surveys", "nps", extra)
        if 0 <= self.onboard_ces < le:
            self.onboard_ces = -1
            if d.chance(0.6):
                t = lm + d.pick(_BUSINESS_CUM) * HOUR_MS + int(d.u() * HOUR_MS)
                score = _clip_round(2.6 + 2.5 * se - 0.3 * p.sat + 0.9 * d.normal(), 1, 7)
                self._ev(t, "surveys", "ces", {"score": score, "touchpoint": "onboarding"})

    def _fx_usage(self, lm: int, weekend: bool) -> None:
        """Foreign-vocabulary mode: one local day of the account's users' sessions in the product's own types.

        Volume follows the active users, weekday, mood and (weakly) health; the *mix* of types follows the
        hidden health -- the plan's value loss and friction plus a drifting AR(1) term -- so a declining
        customer does different things, not only fewer.
        """
        p = self.p
        d = self.d
        fx = self.fx
        mv, mf, vol = p.fstress(lm + DAY_MS // 2)
        self.z = 0.6 * self.z + 0.35 * d.normal()
        fx.h = 0.93 * fx.h + 0.037 * d.normal()  # stationary sd ~0.1
        m = bisect.bisect_left(fx.neg_thr, -mv)  # users still active: a declining account loses them
        cum_w = fx.cum_w
        lam = (p.sessions * _FX_SESSION_RATE * cum_w[m - 1] * (_WEEKEND_FACTOR if weekend else 1.0)
               * math.exp(self.z - 0.1) * (1.0 - vol))
        since = lm - p.signup_ms
        if since < 14 * DAY_MS:
            lam *= 0.3 + 0.7 * max(0.0, since) / (14 * DAY_MS)
        n_sessions = d.poisson(lam)
        if n_sessions == 0:
            return
        h = fx.h
        qv = _clip_round((mv + h) * 20.0, -8, 24)
        qf = _clip_round((mf + h) * 20.0, -8, 24)
        cum = fx.mix_cum(qv, qf)
        last = len(cum) - 1
        prod = fx.prod
        names = prod.names
        value_idx = prod.value_idx
        uids = fx.uids
        hours = _WEEKEND_CUM if weekend else _WEEKDAY_CUM
        lo, hi = self.lo, self.hi
        cid = self.cid
        append = self.out.append
        bisect_right = bisect.bisect_right
        log = math.log
        top_w = cum_w[m - 1]
        for _ in range(n_sessions):
            t = lm + d.pick(hours) * HOUR_MS + int(d.u() * HOUR_MS)
            user = uids[bisect_right(cum_w, d.u() * top_w, 0, m - 1)]
            n_ev = 1 + d.poisson(2.5)
            if t < lo or t >= hi:
                continue
            n = self.n
            for k, (u1, u2) in enumerate(zip(d.take(n_ev), d.take(n_ev))):
                if k:
                    t += 5 * SEC_MS + int(-60_000.0 * log(1.0 - u1))
                    if t >= hi:
                        break
                i = bisect_right(cum, u2)
                if i > last:
                    i = last
                n += 1
                v = {"event_id": f"{cid}-{n}", "customer_id": cid, "ts": iso_ms(t), "type": names[i],
                     "schema_version": SCHEMA_VERSION, "user_id": user}
                if i in value_idx:
                    if prod.value_fields[i] == "count":  # rows exported, files uploaded: fewer when unhappy
                        v["value"] = max(1, int(math.exp(4.8 + 1.0 * d.normal()) * (1.0 - 0.4 * max(0.0, mv))))
                    else:
                        v["value"] = round(math.exp(3.7 + 0.9 * d.normal()), 2)
                append(SimRecord("interactions", cid, t, v))
            self.n = n

    def _session(self, t: int, su: float, ss: float) -> None:
        """A login followed by page views and feature use, then the occasional help lookup or export.

        This is the hot path (~90% of all records), so the common events are built inline rather than via
        ``_ev``; a session that starts outside the customer's live span is skipped whole.
        """
        if t < self.lo or t >= self.hi:
            return
        p = self.p
        d = self.d
        hi = self.hi
        cid = self.cid
        append = self.out.append
        feat_cum = p.feat_cum
        engaged = 1.0 - 0.6 * su
        n_actions = d.poisson(2.5 * engaged)
        nxt = iter(d.take(8 + 4 * n_actions)).__next__  # 2 + up to 4 per action + 5 after
        log = math.log
        bisect_right = bisect.bisect_right
        start = t
        n = self.n + 1
        append(SimRecord("interactions", cid, t, {
            "event_id": f"{cid}-{n}", "customer_id": cid, "ts": iso_ms(t), "type": "login",
            "schema_version": SCHEMA_VERSION, "duration_s": round(-900.0 * engaged * log(1.0 - nxt()), 1)}))
        pages = _PAGE_CUM_STRESSED if nxt() < su else _PAGE_CUM_HEALTHY
        for _ in range(n_actions):
            t += 5 * SEC_MS + int(-70_000.0 * log(1.0 - nxt()))
            if t >= hi:
                break
            n += 1
            if nxt() < 0.52:
                v = {"event_id": f"{cid}-{n}", "customer_id": cid, "ts": iso_ms(t), "type": "page_view",
                     "schema_version": SCHEMA_VERSION, "page": PAGES[bisect_right(pages, nxt())]}
            else:
                v = {"event_id": f"{cid}-{n}", "customer_id": cid, "ts": iso_ms(t), "type": "feature_use",
                     "schema_version": SCHEMA_VERSION, "feature": FEATURES[bisect_right(feat_cum, nxt())],
                     "duration_s": round(-110.0 * engaged * log(1.0 - nxt()), 1)}
            append(SimRecord("interactions", cid, t, v))
        self.n = n
        # Help: more lookups and more dead ends when the product is not working for the customer.
        if nxt() < 0.05 + 0.3 * ss:
            self._help(t, ss)
        if p.api_user and nxt() < 0.3:
            t2 = start + 1 + int(nxt() * (t - start + MIN_MS))
            self._ev(t2, "interactions", "api_call", {"feature": "api", "count": 1 + d.poisson(40.0 * engaged)})
        if nxt() < 0.06:
            self._ev(t + 3 * SEC_MS, "interactions", "report_export",
                     {"feature": "reports", "format": "csv" if d.u() < 0.7 else "pdf"})
        if nxt() < 0.004 * (1.0 - su):
            self._ev(t + 20 * SEC_MS, "interactions", "purchase",
                     {"item": "seats" if d.u() < 0.6 else "addon", "amount": round(d.between(20, 400), 2)})

    def _help(self, t: int, ss: float) -> None:
        """A help lookup; failures often repeat on the same feature within hours -- a proactive-service cue."""
        d = self.d
        feat = FEATURES[d.pick(self.p.feat_cum)]
        t += 10 * SEC_MS + int(d.exp(60.0) * SEC_MS)
        ok = d.u() < 0.88 - 0.6 * ss
        self._ev(t, "interactions", "help_view", {"feature": feat, "success": ok})
        if not ok and d.u() < 0.35 + 0.5 * ss:
            for _ in range(1 + d.poisson(0.8 * ss + 0.2)):
                t += 2 * MIN_MS + int(d.exp(3.0) * HOUR_MS)
                self._ev(t, "interactions", "help_view", {"feature": feat, "success": d.u() < 0.5 - 0.35 * ss})

    def _ticket(self, t: int, sev: int, ss: float, se: float) -> None:
        """A whole ticket lifecycle, emitted at once: later events land in the buffer ahead of time.

        A ticket that would open outside the customer's live span is dropped whole, so no lifecycle in the
        output starts anywhere but ``opened``; one cut short by churn or the window end simply stays open.
        """
        if t < self.lo or t >= self.hi:
            return
        d = self.d
        ev = self._ev
        self.k += 1
        tid = f"{self.cid}-t{self.k}"
        cat = CATEGORIES[d.pick(_CAT_CUM_BY_SEV[sev])]
        sla_due = t + SLA_HOURS[sev] * HOUR_MS
        ev(t, "tickets", "opened", {"ticket_id": tid, "severity": SEVERITIES[sev], "category": cat,
                                    "sla_due": iso_ms(sla_due), "channel": "email" if d.u() < 0.6 else "chat"})
        slow = (1.0 + 1.6 * ss) * math.exp(0.45 * d.normal())
        res = t + int(_RES_MEDIAN_H[sev] * slow * math.exp(0.5 * d.normal()) * HOUR_MS) + 10 * MIN_MS
        first = t + MIN_MS + int(d.exp(_FIRST_REPLY_H[sev] * slow) * HOUR_MS)
        if first >= res:
            first = t + (res - t) // 3
        mids: list[tuple[int, str]] = [(first, "agent_reply")]
        n_mid = d.poisson(0.6 + 1.5 * ss + 0.3 * sev)
        for j in range(n_mid):
            mids.append((first + 1 + int(d.u() * (res - first - 2)), ""))
        if d.u() < _ESCALATE_P[sev] + 0.25 * ss:
            mids.append((first + 1 + int(d.u() * (res - first - 2)), "escalated"))
        mids.sort()
        turn = 0
        for ts, typ in mids:
            if not typ:
                typ = "customer_reply" if turn % 2 == 0 else "agent_reply"
                turn += 1
            ev(ts, "tickets", typ, {"ticket_id": tid})
        ev(res, "tickets", "resolved", {"ticket_id": tid})
        breached = res > sla_due
        reopened = d.u() < 0.04 + 0.3 * ss
        if reopened:
            t2 = res + 30 * MIN_MS + int(d.exp(18.0) * HOUR_MS)
            ev(t2, "tickets", "reopened", {"ticket_id": tid})
            reply = t2 + MIN_MS + int(d.exp(_FIRST_REPLY_H[sev] * slow) * HOUR_MS)
            ev(reply, "tickets", "agent_reply", {"ticket_id": tid})
            res = reply + int(_RES_MEDIAN_H[sev] * slow * math.exp(0.5 * d.normal()) * HOUR_MS) + MIN_MS
            ev(res, "tickets", "resolved", {"ticket_id": tid})
        ev(res + int(d.between(24, 72) * HOUR_MS), "tickets", "closed", {"ticket_id": tid})
        # Post-support surveys: the moment customers tell you how the ticket felt.
        if d.u() < 0.45:
            score = _clip_round(4.4 + 0.3 * self.p.sat - 2.6 * se - 0.6 * breached - 0.6 * reopened
                                - 0.15 * sev + 0.7 * d.normal(), 1, 5)
            ev(res + 10 * MIN_MS + int(d.exp(4.0) * HOUR_MS), "surveys", "csat",
               {"score": score, "touchpoint": "support", "ticket_id": tid})
        if d.u() < 0.2:
            score = _clip_round(2.4 + 3.0 * se + 0.9 * breached + 0.5 * reopened - 0.3 * self.p.sat
                                + 0.9 * d.normal(), 1, 7)
            ev(res + 12 * MIN_MS + int(d.exp(4.0) * HOUR_MS), "surveys", "ces",
               {"score": score, "touchpoint": "support", "ticket_id": tid})
