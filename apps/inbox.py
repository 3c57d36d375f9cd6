"""The CSM inbox: a small web page listing the open churn alerts, with an Acknowledge button.

The page reads from the **alert topic**, not from a worker, so it shows the alerts of every worker
however many run, and it needs no state of its own: on start it replays ``churn.alerts`` and
``churn.outcomes`` from the beginning into an in-memory *open-alert view* (:class:`InboxState`) and then
follows both topics. Acknowledging writes an ordinary ``alert_ack`` outcome event, the same record a
CSM's own tooling would write, so the workers close their open alert (and count the outcome) exactly as
they do for any other acknowledgement, and every other inbox sees it too.

The view mirrors the worker's alert policy (``pipeline/core/alerting.py``, ``docs/alerts.md``):

* one entry per customer: the newest alert. An ``escalation`` updates the risk of the entry it
  escalates but keeps that entry's ``alert_id``, because the worker only knows the original id as its
  open alert and an acknowledgement must carry it to close the loop;
* an entry closes when an ``alert_ack`` names its alert id (or one of its escalations), when a
  ``contacted``/``saved`` outcome arrives for the customer (with no alert id, or the entry's), when the
  customer ``churned``, or ``expire_days`` after it was raised, in *event time* as the worker expires
  it. The view's clock is the newest ``event_time`` on the alert topic: outcome times do not move it,
  because acknowledgements (this page's included) carry the wall-clock time of the CSM's click, which
  would expire at once every alert of a replayed or simulated history;
* sorted by risk (score) descending; alerts without a score (rule alerts raised when no model is
  loaded) come after the scored ones, newest first.

The two topics are read by one consumer whose order across topics is arbitrary, so the view is built
so that the order does not matter: acknowledged ids are remembered (an alert read after its
acknowledgement stays closed) and customer-level closes (contacted/saved/churned) compare *event
times*, not arrival order. At start the alert topic is read to its end before the outcome topic, so a
replay sees every acknowledged alert before its acknowledgement, as a live inbox does.

Alert fields come from a topic anyone with produce rights can write to, so every value on the page is
HTML-escaped and the page carries a strict Content-Security-Policy (scripts and styles only with a
per-response nonce).

Who may see and acknowledge is decided by :mod:`pipeline.web.webauth` (through :mod:`pipeline.web.webguard`):
a sign-in with the shared token (``CHURNWATCH_INBOX_TOKEN``) or the user a proxy in front names
(``CHURNWATCH_TRUSTED_USER_HEADER``), else loopback only; the ``Host`` header must name this server
(DNS rebinding); acknowledging needs the session's CSRF token, which the page's script sends. The
acknowledgement records who acknowledged (``acknowledged_by``): the signed-in or proxy-named user,
taken from the session or the proxy's header, never from the request body.
"""

from __future__ import annotations

import asyncio
import html
import logging
import math
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import orjson
from aiohttp import web

from pipeline.web import webguard
from pipeline.core.alerting import CLOSING_OUTCOMES as ALERT_CLOSING_OUTCOMES, EXPIRE_DAYS
from pipeline.core.contract import DAY_MS, InvalidEvent, Limits, format_ts, parse_ts, validate
from pipeline.config.settings import Settings
from pipeline.web.webauth import CSRF_HEADER, LOOPBACK_NAMES, WebAuth, bind_rule

log = logging.getLogger("churnwatch.inbox")

#: Outcomes that close a customer's entry: those that close the worker's open alert, plus churn.
CLOSING_OUTCOMES = ALERT_CLOSING_OUTCOMES | {"churned"}
ACK_NOTE = "acknowledged in inbox"
#: How many closed alert ids are remembered (for acknowledgements read before their alert, and replays).
MAX_REMEMBERED_IDS = 200_000
#: Expired entries are forgotten at most this often (event time), not on every alert of a replay.
PRUNE_EVERY_MS = 3_600_000
#: ``?csm=`` value selecting alerts of customers without a CSM.
UNASSIGNED = "-"

TRIGGER_LABELS = {
    "event": "Model: new activity",
    "sweep": "Model: gone quiet",
    "escalation": "Escalation",
    "csat_low": "Rule: low CSAT",
    "nps_detractor": "Rule: NPS detractor",
    "repeated_failed_help": "Rule: failed help views",
    "renewal_at_risk": "Rule: renewal at risk",
    "vip_sla_breach": "Rule: VIP SLA breach",
}


# ---- the open-alert view (pure) -------------------------------------------------------------------
@dataclass
class _Entry:
    """One customer's open alert as the inbox shows it."""

    record: dict[str, Any]  #: the newest alert record (display fields)
    alert_id: str  #: the id an acknowledgement carries (the escalated alert's id for escalations)
    opened_ms: int  #: event time the entry's alert was raised (expiry counts from here)
    event_ms: int  #: event time of the newest alert folded in (escalations included)
    escalated: bool = False
    aliases: set[str] = field(default_factory=set)  #: escalation ids standing for ``alert_id``
    #: older, still unacknowledged alerts of the customer that a newer one superseded: id -> event ms
    folded: dict[str, int] = field(default_factory=dict)

    def ids(self) -> list[str]:
        return [self.alert_id, *sorted(self.aliases), *self.folded]


@dataclass(frozen=True)
class AckPlan:
    """What acknowledging one alert id means: which ``alert_ack`` events to write for which customer."""

    customer_id: str
    alert_ids: tuple[str, ...]  #: ids to acknowledge, the requested entry's own id first
    already: bool = False  #: the alert was closed before (acknowledged, contacted, expired): write nothing


def _score(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _text(value: Any, limit: int = 512) -> str:
    return value[:limit] if isinstance(value, str) else ""


class InboxState:
    """The open-alert view, fed with decoded JSON records from the alert and outcome topics.

    Thread-safe (the topic follower writes while web handlers read). Malformed records are counted in
    :attr:`skipped` and ignored: the topics are inputs this process does not control.
    """

    def __init__(self, expire_days: float = EXPIRE_DAYS) -> None:
        self.expire_ms = int(expire_days * DAY_MS)
        self.clock_ms = 0  #: newest alert event time seen (the expiry clock)
        self._pruned_ms = 0
        self.skipped = 0
        self.alerts_seen = 0
        self.outcomes_seen = 0
        self._open: dict[str, _Entry] = {}
        self._by_id: dict[str, str] = {}  # alert id (any id of an entry) -> customer id
        #: ids closed (acknowledged, or dropped with their entry): a replayed or late copy stays closed
        self._closed_ids: OrderedDict[str, None] = OrderedDict()
        self._closed_ms: dict[str, int] = {}  # customer -> newest contacted/saved/churned event time
        self._lock = threading.RLock()

    # -- feeding -----------------------------------------------------------------------------------
    def add_alert(self, alert: Any) -> bool:
        """Fold one alert record (``Alert.to_json``) into the view; True when the view changed."""
        with self._lock:
            self.alerts_seen += 1
            if not isinstance(alert, dict):
                self.skipped += 1
                return False
            aid, cid = alert.get("alert_id"), alert.get("customer_id")
            if not (isinstance(aid, str) and aid and isinstance(cid, str) and cid):
                self.skipped += 1
                return False
            try:
                event_ms = parse_ts(alert.get("event_time"), "event_time")
            except InvalidEvent:
                self.skipped += 1
                return False
            self._advance(event_ms)
            if aid in self._closed_ids or event_ms <= self._closed_ms.get(cid, -1) or aid in self._by_id:
                return False  # acknowledged, closed by an outcome, or a duplicate (replay)
            record = dict(alert)
            cur = self._open.get(cid)
            if alert.get("kind") == "escalation" and cur is not None:
                # same alert, higher risk: new score/band/reasons, the escalated alert's id and trigger
                record.update(alert_id=cur.alert_id, trigger=cur.record.get("trigger"))
                cur.record, cur.event_ms, cur.escalated = record, max(cur.event_ms, event_ms), True
                cur.aliases.add(aid)
                self._by_id[aid] = cid
                return True
            if cur is not None and event_ms < cur.opened_ms:
                cur.folded[aid] = event_ms  # an older alert read late: the entry keeps the newer one
                self._by_id[aid] = cid
                return True
            entry = _Entry(record, aid, event_ms, event_ms, escalated=alert.get("kind") == "escalation")
            if cur is not None:  # the newer alert supersedes; the older ones stay unacknowledged under it
                entry.folded = {cur.alert_id: cur.opened_ms, **{a: cur.opened_ms for a in cur.aliases},
                                **cur.folded}
            self._open[cid] = entry
            self._by_id[aid] = cid
            if self.clock_ms - self._pruned_ms >= PRUNE_EVERY_MS:
                self._prune()
            return True

    def add_outcome(self, outcome: Any) -> bool:
        """Apply one outcome event; True when the view changed."""
        with self._lock:
            self.outcomes_seen += 1
            if not isinstance(outcome, dict) or not isinstance(outcome.get("customer_id"), str):
                self.skipped += 1
                return False
            cid, typ = outcome["customer_id"], outcome.get("type")
            try:
                ts_ms = parse_ts(outcome.get("ts"))
            except InvalidEvent:
                self.skipped += 1
                return False
            if typ not in CLOSING_OUTCOMES:
                return False
            aid = outcome.get("alert_id") if isinstance(outcome.get("alert_id"), str) else None
            if typ == "alert_ack":
                if aid is None:
                    self.skipped += 1
                    return False
                return self._ack(aid)
            if aid is not None and typ != "churned":
                return self._ack(aid)  # contacted/saved about one alert: as an acknowledgement of it
            # the customer as a whole: close what was raised up to the outcome's event time
            self._closed_ms[cid] = max(ts_ms, self._closed_ms.get(cid, ts_ms))
            entry = self._open.get(cid)
            if entry is None:
                return False
            if entry.opened_ms <= ts_ms:
                self._drop(cid)
                return True
            stale = [a for a, ms in entry.folded.items() if ms <= ts_ms]
            for a in stale:
                self._forget(a)
                del entry.folded[a]
            return bool(stale)

    def _forget(self, aid: str) -> None:
        """``aid`` is closed for good: remember that (bounded), and unlink it from its entry."""
        self._closed_ids[aid] = None
        self._closed_ids.move_to_end(aid)
        while len(self._closed_ids) > MAX_REMEMBERED_IDS:
            self._closed_ids.popitem(last=False)
        self._by_id.pop(aid, None)

    def _ack(self, aid: str) -> bool:
        cid = self._by_id.get(aid)
        self._forget(aid)
        entry = self._open.get(cid) if cid is not None else None
        if entry is None:
            return False
        if aid == entry.alert_id or aid in entry.aliases:
            self._drop(cid)  # the alert the CSM sees: the customer's row closes
            return True
        entry.folded.pop(aid, None)  # an older alert under a newer one: the newer one stays open
        return True

    def _drop(self, cid: str) -> None:
        entry = self._open.pop(cid, None)
        if entry is not None:
            for a in entry.ids():
                self._forget(a)

    def _advance(self, ts_ms: int) -> None:
        if ts_ms > self.clock_ms:
            self.clock_ms = ts_ms

    def _prune(self) -> None:
        """Forget entries expired at the current clock, so memory follows the open alerts only."""
        self._pruned_ms = self.clock_ms
        for cid in [c for c, e in self._open.items() if self.clock_ms - e.opened_ms > self.expire_ms]:
            self._drop(cid)

    # -- reading -----------------------------------------------------------------------------------
    def _visible(self, now_ms: int | None) -> list[_Entry]:
        now = self.clock_ms if now_ms is None else now_ms
        return [e for e in self._open.values() if now - e.opened_ms <= self.expire_ms]

    def open_alerts(self, tier: str | None = None, csm: str | None = None, now_ms: int | None = None) -> list[dict[str, Any]]:
        """The open alerts (copies), riskiest first, optionally of one tier and/or one CSM.

        ``now_ms`` is the event time to expire against (default: the newest alert event time seen);
        ``csm="-"`` selects customers without a CSM.
        """
        with self._lock:
            entries = self._visible(now_ms)
            if tier:
                entries = [e for e in entries if _text(e.record.get("tier")).casefold() == tier.casefold()]
            if csm:
                want = "" if csm == UNASSIGNED else csm.casefold()
                entries = [e for e in entries if _text(e.record.get("csm")).casefold() == want]

            def key(e: _Entry) -> tuple:
                s = _score(e.record.get("score"))
                return (s is None, -(s or 0.0), -e.event_ms, _text(e.record.get("customer_id")))

            out = []
            for e in sorted(entries, key=key):
                rec = dict(e.record)
                rec.update(alert_id=e.alert_id, score=_score(rec.get("score")), escalated=e.escalated,
                           opened_time=format_ts(e.opened_ms), alert_ids=e.ids())
                out.append(rec)
            return out

    def facets(self, now_ms: int | None = None) -> tuple[list[str], list[str]]:
        """The tiers and CSMs among the open alerts (for the filter select boxes)."""
        with self._lock:
            entries = self._visible(now_ms)
            tiers = sorted({_text(e.record.get("tier")) for e in entries} - {""})
            csms = sorted({_text(e.record.get("csm")) for e in entries}, key=lambda c: (c.casefold(), c))
            return tiers, [c if c else UNASSIGNED for c in csms]

    def ack_plan(self, alert_id: str) -> AckPlan | None:
        """What acknowledging ``alert_id`` takes; None when no open alert has that id.

        Acknowledging the alert a row shows acknowledges the older alerts folded under it too: the
        CSM has seen the customer, and the worker keeps a *model* alert open until its own id is
        acknowledged, whatever newer rule alert was shown above it.
        """
        with self._lock:
            cid = self._by_id.get(alert_id)
            entry = self._open.get(cid) if cid is not None else None
            if entry is None or cid is None:
                return AckPlan("", (alert_id,), already=True) if alert_id in self._closed_ids else None
            if alert_id == entry.alert_id or alert_id in entry.aliases:
                return AckPlan(cid, (entry.alert_id, *entry.folded))
            return AckPlan(cid, (alert_id,))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"open": len(self._visible(None)), "alerts_seen": self.alerts_seen,
                    "outcomes_seen": self.outcomes_seen, "skipped": self.skipped,
                    "event_clock": format_ts(self.clock_ms) if self.clock_ms else None}


def ack_event(customer_id: str, alert_id: str, now_ms: int | None = None, note: str = ACK_NOTE,
              acknowledged_by: str = "") -> dict[str, Any]:
    """An ``alert_ack`` outcome event, valid under the event contract (checked before it is sent).

    ``acknowledged_by`` is who clicked (left out when unknown: an open inbox has no users)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    event = {"event_id": str(uuid.uuid4()), "customer_id": customer_id, "ts": format_ts(now), "type": "alert_ack",
             "schema_version": 1, "alert_id": alert_id, "note": note}
    if acknowledged_by:
        event["acknowledged_by"] = acknowledged_by
    validate("outcomes", event, now_ms=now, limits=Limits())  # raises InvalidEvent: a bug here, not input
    return event


# ---- the page ---------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def sentence(text: str) -> str:
    """A reason fragment ("logins down 80% ...") as a sentence ("Logins down 80% ....")."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def trigger_label(trigger: Any) -> str:
    t = _text(trigger, 64)
    return TRIGGER_LABELS.get(t, t.replace("_", " ").capitalize() or "Unknown")


def risk_text(score: float | None) -> str:
    """A score as the page shows it: whole percents, but small risks keep a digit (not a misleading 0%)."""
    if score is None:
        return "n/a"
    if 0 < score < 0.001:
        return "<0.1%"
    return f"{score:.1%}" if score < 0.1 else f"{score:.0%}"


def _when(ts: Any) -> str:
    try:
        return format_ts(parse_ts(ts))[:16].replace("T", " ") + " UTC"
    except InvalidEvent:
        return ""


def _row(a: dict[str, Any]) -> str:
    score, threshold = _score(a.get("score")), _score(a.get("threshold"))
    band = _text(a.get("band"), 16) or "high"
    if score is None:
        risk = '<span class="risk none" title="no model score (rule alert)">n/a</span>'
    else:
        t = threshold if threshold is not None else 0.5
        risk = (f'<span class="risk">{_e(risk_text(score))}</span>'
                f'<meter min="0" max="1" low="{t:.4f}" high="{(1 + t) / 2:.4f}" optimum="0" value="{score:.4f}"></meter>')
    thr = f'<span class="muted">threshold {threshold:.0%}</span>' if threshold is not None and threshold >= 0.005 else ""
    reasons = [r for r in a.get("reasons") or [] if isinstance(r, dict) and _text(r.get("text"))]
    why = "".join(f"<li>{_e(sentence(_text(r.get('text'))))}</li>" for r in reasons) or '<li class="muted">no reasons given</li>'
    badges = []
    if a.get("escalated"):
        badges.append('<span class="badge esc">escalated</span>')
    kind = _text(a.get("kind"), 16)
    folded = len(a.get("alert_ids") or []) - 1
    extra = f'<div class="muted">+{folded} earlier alert{"s" if folded != 1 else ""}</div>' if folded > 0 else ""
    csm = _text(a.get("csm"))
    aid = _text(a.get("alert_id"), 128)
    cid = _text(a.get("customer_id"), 128)
    tier = _text(a.get("tier"), 32)
    return (
        f'<tr data-alert-id="{_e(aid)}" data-customer="{_e(cid)}" data-tier="{_e(tier)}" data-csm="{_e(csm)}">'
        f'<td class="cust"><strong>{_e(cid)}</strong></td>'
        f'<td><span class="badge tier tier-{_e(tier.replace(" ", "-"))}">{_e(tier or "?")}</span></td>'
        f'<td>{_e(csm) if csm else "<span class=muted>unassigned</span>"}</td>'
        f'<td class="riskcell">{risk}<div><span class="badge band-{_e(band)}">{_e(band)}</span> {thr}</div></td>'
        f'<td class="trig" data-kind="{_e(kind)}">{_e(trigger_label(a.get("trigger")))} {"".join(badges)}{extra}</td>'
        f'<td class="why"><ul>{why}</ul></td>'
        f'<td class="play">{_e(_text(a.get("play"), 1024)) or "<span class=muted>none</span>"}</td>'
        f'<td class="when">{_e(_when(a.get("event_time")))}'
        f'<div class="muted">model {_e(_text(a.get("model_version"), 64) or "none")}</div></td>'
        f'<td><button type="button" class="ack" data-alert-id="{_e(aid)}">Acknowledge</button></td>'
        "</tr>"
    )


def _select(name: str, label: str, options: Sequence[str], chosen: str, names: dict[str, str] | None = None) -> str:
    names = names or {}
    opts = [f'<option value=""{" selected" if not chosen else ""}>all</option>']
    if chosen and chosen not in options:
        options = [*options, chosen]  # keep the current filter selectable even with no alert left
    for o in options:
        sel = " selected" if o == chosen else ""
        opts.append(f'<option value="{_e(o)}"{sel}>{_e(names.get(o, o))}</option>')
    return f'<label>{_e(label)} <select name="{_e(name)}" data-filter>{"".join(opts)}</select></label>'


CSS = """
:root { --bg:#f5f6f8; --card:#fff; --ink:#1d2330; --muted:#6b7280; --line:#e3e6eb; --accent:#2456d6;
        --crit:#b42318; --crit-bg:#fde8e7; --high:#9a5b00; --high-bg:#fff3d6; --vip:#5b2bb5; --vip-bg:#efe7ff; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
       font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","DejaVu Sans",sans-serif; }
header { background:var(--card); border-bottom:1px solid var(--line); padding:16px 28px; display:flex;
         flex-wrap:wrap; align-items:center; gap:12px 32px; }
h1 { font-size:20px; margin:0; font-weight:650; }
h1 small { font-weight:400; color:var(--muted); font-size:14px; margin-left:6px; }
.summary { color:var(--muted); }
form.filters { display:flex; gap:16px; align-items:center; margin-left:auto; }
form.filters label { color:var(--muted); }
select { font:inherit; padding:4px 8px; border:1px solid var(--line); border-radius:6px; background:#fff; color:var(--ink); }
main { padding:20px 28px 40px; }
#notice { display:none; margin:0 0 14px; padding:8px 12px; border-radius:6px; background:#e8f0ff; color:#1b3f99; }
#notice.show { display:block; }
#notice.error { background:var(--crit-bg); color:var(--crit); }
#notice a { color:inherit; font-weight:600; }
table { width:100%; border-collapse:separate; border-spacing:0; background:var(--card); border:1px solid var(--line);
        border-radius:10px; overflow:hidden; }
th { text-align:left; font-size:12px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted);
     background:#fafbfc; font-weight:600; padding:10px 12px; border-bottom:1px solid var(--line); }
td { padding:12px; border-bottom:1px solid var(--line); vertical-align:top; }
tr:last-child td { border-bottom:0; }
tbody tr:hover td { background:#fafcff; }
td.cust { min-width:120px; }
td.cust strong { font-size:15px; overflow-wrap:anywhere; }
.risk { font-size:20px; font-weight:700; font-variant-numeric:tabular-nums; display:block; }
.risk.none { font-size:14px; color:var(--muted); font-weight:500; }
meter { width:72px; height:8px; display:block; margin:2px 0 6px; }
.muted { color:var(--muted); font-size:12px; }
.badge { display:inline-block; padding:1px 8px; border-radius:999px; font-size:12px; font-weight:600;
         background:#eef0f3; color:#394150; white-space:nowrap; }
.badge.tier-vip { background:var(--vip-bg); color:var(--vip); }
.badge.band-critical { background:var(--crit-bg); color:var(--crit); }
.badge.band-high { background:var(--high-bg); color:var(--high); }
.badge.band-watch { background:#e0f2fe; color:#075985; }
.badge.esc { background:var(--crit); color:#fff; }
td.why ul { margin:0; padding-left:18px; }
td.why li { margin:0 0 3px; }
td.why { min-width:260px; }
td.play { max-width:300px; color:#14532d; }
td.when { white-space:nowrap; font-variant-numeric:tabular-nums; }
button.ack { font:inherit; font-weight:600; padding:6px 14px; border-radius:6px; border:1px solid var(--accent);
             background:var(--accent); color:#fff; cursor:pointer; white-space:nowrap; }
button.ack:hover { background:#1b45b0; }
button.ack:disabled { opacity:.6; cursor:wait; }
.who { color:var(--muted); display:flex; gap:10px; align-items:center; }
.who form { margin:0; }
.who button { font:inherit; padding:3px 10px; border-radius:6px; border:1px solid var(--line); background:#fff;
              color:var(--ink); cursor:pointer; }
.empty { padding:48px; text-align:center; color:var(--muted); background:var(--card); border:1px solid var(--line);
         border-radius:10px; }
"""

JS = """
(() => {
  const notice = document.getElementById('notice');
  const count = document.getElementById('count');
  const say = (html, error) => { notice.innerHTML = html; notice.className = 'show' + (error ? ' error' : ''); };
  const esc = s => String(s).replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
  const rows = () => document.querySelectorAll('tbody tr[data-alert-id]');
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const signIn = () => '<a href="/login?next=' + encodeURIComponent(window.location.pathname + window.location.search) + '">sign in again</a>';
  const recount = () => {
    const n = rows().length;
    count.textContent = n + (n === 1 ? ' open alert' : ' open alerts');
    if (n === 0) { const t = document.querySelector('table'); if (t) t.outerHTML = '<p class="empty">No open alerts.</p>'; }
  };
  document.querySelectorAll('select[data-filter]').forEach(s => s.addEventListener('change', () => s.form.submit()));
  document.addEventListener('click', async ev => {
    const b = ev.target.closest('button.ack');
    if (!b) return;
    const row = b.closest('tr');
    b.disabled = true; b.textContent = 'Acknowledging\\u2026';
    try {
      const r = await fetch('/alerts/' + encodeURIComponent(b.dataset.alertId) + '/ack',
                            {method: 'POST', headers: {'X-Churnwatch-CSRF': csrf}, credentials: 'same-origin'});
      if (r.status === 401) {
        b.disabled = false; b.textContent = 'Acknowledge';
        say('Your session has ended: ' + signIn() + ', then acknowledge again.', true);
      } else if (r.ok || r.status === 404) {
        row.remove(); recount();
        say(r.ok ? 'Acknowledged the alert for <b>' + esc(row.dataset.customer) + '</b>.'
                 : 'The alert for <b>' + esc(row.dataset.customer) + '</b> was already closed.');
      } else {
        let msg = r.status + ' ' + r.statusText;
        try { msg = (await r.json()).error || msg; } catch (_) {}
        b.disabled = false; b.textContent = 'Acknowledge';
        say('Could not acknowledge: ' + esc(msg), true);
      }
    } catch (err) {
      b.disabled = false; b.textContent = 'Acknowledge';
      say('Could not reach the inbox server: ' + esc(err), true);
    }
  });
  // new alerts: tell the CSM instead of moving rows under their cursor
  setInterval(async () => {
    try {
      const r = await fetch('/api/alerts' + window.location.search, {credentials: 'same-origin'});
      if (r.status === 401) { say('Your session has ended: ' + signIn() + '.', true); return; }
      if (!r.ok) return;
      const shown = new Set(Array.from(rows(), tr => tr.dataset.alertId));
      const fresh = (await r.json()).filter(a => !shown.has(a.alert_id)).length;
      if (fresh > 0) say(fresh + (fresh === 1 ? ' new alert' : ' new alerts') + ' \\u2014 <a href="">reload</a>');
    } catch (_) {}
  }, 15000);
})();
"""


def _who(user: str, csrf: str, can_sign_out: bool) -> str:
    """Who is signed in, and (token sign-in) a sign-out button; nothing on an open inbox."""
    if not user:
        return ""
    out = f'<div class="who">Signed in as <strong id="user">{_e(user)}</strong>'
    if can_sign_out:
        out += (f'<form method="post" action="/logout"><input type="hidden" name="csrf" value="{_e(csrf)}">'
                '<button type="submit" id="sign-out">Sign out</button></form>')
    return out + "</div>"


def render_page(alerts: Sequence[dict[str, Any]], tiers: Sequence[str], csms: Sequence[str], *, tier: str = "",
                csm: str = "", nonce: str = "", clock_ms: int = 0, csrf: str = "", user: str = "",
                can_sign_out: bool = False) -> str:
    """The inbox page for ``alerts`` (as :meth:`InboxState.open_alerts` returns them); every value escaped.
    ``csrf`` is the session's CSRF token the page's script sends with an acknowledgement."""
    n = len(alerts)
    clock = f" · event time {_e(format_ts(clock_ms)[:16].replace('T', ' '))} UTC" if clock_ms else ""
    if alerts:
        body = ("<table><thead><tr><th>Customer</th><th>Tier</th><th>CSM</th><th>Risk</th><th>Trigger</th>"
                "<th>Why</th><th>Suggested play</th><th>Raised</th><th></th></tr></thead><tbody>"
                + "".join(_row(a) for a in alerts) + "</tbody></table>")
    else:
        body = '<p class="empty">No open alerts' + (" for this filter" if tier or csm else "") + ".</p>"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="csrf-token" content="{_e(csrf)}">'
        f"<title>churnwatch inbox ({n})</title><style nonce=\"{_e(nonce)}\">{CSS}</style></head><body>"
        '<header><h1>Churn alerts <small>churnwatch CSM inbox</small></h1>'
        f'<div class="summary"><span id="count">{n} open alert{"" if n == 1 else "s"}</span>'
        f' · riskiest first{clock}</div>'
        '<form class="filters" method="get" action="/">'
        + _select("tier", "Tier", tiers, tier)
        + _select("csm", "CSM", csms, csm, {UNASSIGNED: "unassigned"})
        + '<noscript><button type="submit">Filter</button></noscript></form>'
        + _who(user, csrf, can_sign_out) + '</header>'
        f'<main><p id="notice" role="status"></p>{body}</main>'
        f'<script nonce="{_e(nonce)}">{JS}</script></body></html>'
    )


# ---- Kafka plumbing -----------------------------------------------------------------------------------
class AckSink(Protocol):
    """Where acknowledgement events go (the outcomes topic; a list in unit tests)."""

    def send(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None: ...

    def close(self) -> None: ...


class KafkaAckSink:
    """Produces acknowledgement events with kafka-python and waits until the broker has them, so the
    page only removes a row whose acknowledgement is really on the topic."""

    def __init__(self, settings: Settings, timeout_s: float = 10.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._producer: Any = None
        self._lock = threading.Lock()

    def send(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        from kafka import KafkaProducer

        with self._lock:  # created on first use: the page works (read-only) while the broker is away
            if self._producer is None:
                self._producer = KafkaProducer(bootstrap_servers=self.settings.bootstrap_servers,
                                               client_id="churnwatch-inbox", acks="all",
                                               **self.settings.kafka_client_kwargs())
        futures = [self._producer.send(topic, key=k, value=v) for k, v in records]
        self._producer.flush(timeout=self.timeout_s)
        for f in futures:
            f.get(timeout=self.timeout_s)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)


class TopicFollower(threading.Thread):
    """Replays the alert and outcome topics into an :class:`InboxState`, then follows them.

    Manual partition assignment (kafka-python group consumers get no assignment on the embedded broker,
    and the inbox is an observer, not a member of the workers' group). The alert topic is read to the
    end offsets seen at start before the outcome topic resumes, so at start no acknowledgement is
    applied before the alert it names. On an error the consumer is rebuilt and the topics replayed into
    the same state, which ignores records it has already seen.
    """

    def __init__(self, settings: Settings, state: InboxState, poll_ms: int = 200) -> None:
        super().__init__(name="churnwatch-inbox-follower", daemon=True)
        self.settings, self.state, self.poll_ms = settings, state, poll_ms
        self.stop_event = threading.Event()
        self.caught_up = threading.Event()
        self.error: str | None = None

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self._follow()
            except Exception as exc:  # broker away, topic deleted...: report, wait, start over
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("inbox: reading the topics failed (%s); retrying", self.error)
                self.stop_event.wait(2.0)

    def _partitions(self, consumer: Any, topic: str) -> list[Any]:
        from kafka import TopicPartition

        parts = consumer.partitions_for_topic(topic) or set(range(self.settings.partitions))
        return [TopicPartition(topic, p) for p in sorted(parts)]

    def _follow(self) -> None:
        from kafka import KafkaConsumer

        s = self.settings
        consumer = KafkaConsumer(bootstrap_servers=s.bootstrap_servers, client_id="churnwatch-inbox", group_id=None,
                                 enable_auto_commit=False, **s.kafka_client_kwargs())
        try:
            alerts, outcomes = self._partitions(consumer, s.alerts_topic), self._partitions(consumer, s.topic("outcomes"))
            consumer.assign(alerts + outcomes)
            consumer.seek_to_beginning(*alerts, *outcomes)
            outcomes_end = consumer.end_offsets(outcomes)  # outcomes first: their alerts are then all in alerts_end
            alerts_end = consumer.end_offsets(alerts)
            consumer.pause(*outcomes)
            replaying_alerts = True
            self.error = None
            while not self.stop_event.is_set():
                batch = consumer.poll(timeout_ms=self.poll_ms)
                self.error = None
                for tp, records in batch.items():
                    add = self.state.add_alert if tp.topic == s.alerts_topic else self.state.add_outcome
                    for rec in records:
                        try:
                            add(orjson.loads(rec.value))
                        except orjson.JSONDecodeError:
                            add(None)  # counted as skipped
                if replaying_alerts and all(consumer.position(tp) >= alerts_end[tp] for tp in alerts):
                    consumer.resume(*outcomes)
                    replaying_alerts = False
                if not replaying_alerts and not self.caught_up.is_set() and \
                        all(consumer.position(tp) >= outcomes_end[tp] for tp in outcomes):
                    self.caught_up.set()
        finally:
            consumer.close()


# ---- the web app --------------------------------------------------------------------------------------
STATE_KEY: web.AppKey[InboxState] = web.AppKey("state", InboxState)
SETTINGS_KEY: web.AppKey[Settings] = web.AppKey("settings", Settings)
SINK_KEY: web.AppKey[Any] = web.AppKey("sink", object)
FOLLOWER_KEY: web.AppKey[Any] = web.AppKey("follower", object)
ACK_LOCK_KEY: web.AppKey[asyncio.Lock] = web.AppKey("ack_lock", asyncio.Lock)
AUTH_KEY: web.AppKey[WebAuth] = web.AppKey("auth", WebAuth)
#: Paths answered without sign-in and whatever the Host (a supervisor's probe).
PROBE_PATHS = frozenset({"/healthz"})


def classify(path: str) -> str:
    """The inbox's request classes for :func:`pipeline.web.webguard.middleware` (nothing internal here)."""
    if path in PROBE_PATHS:
        return webguard.PROBE
    if path in ("/login", "/logout"):
        return webguard.LOGIN
    return webguard.USER


def _filters(request: web.Request) -> tuple[str, str]:
    return request.query.get("tier", "")[:64], request.query.get("csm", "")[:128]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json",
                        headers={"Cache-Control": "no-store"})


async def _page(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    tier, csm = _filters(request)
    tiers, csms = state.facets()
    nonce = secrets.token_urlsafe(16)
    auth = request.app[AUTH_KEY]
    who = webguard.identity(request)
    text = render_page(state.open_alerts(tier or None, csm or None), tiers, csms, tier=tier, csm=csm, nonce=nonce,
                       clock_ms=state.clock_ms, csrf=webguard.page_csrf(request, auth), user=who.user,
                       can_sign_out=who.via == "session")
    csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; "
           "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
    return web.Response(text=text, content_type="text/html", headers={
        "Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store"})


async def _api_alerts(request: web.Request) -> web.Response:
    tier, csm = _filters(request)
    return _json(request.app[STATE_KEY].open_alerts(tier or None, csm or None))


async def _ack(request: web.Request) -> web.Response:
    """Acknowledge one alert (the guard has checked who is calling, and the CSRF token of a browser)."""
    user = webguard.identity(request).user
    state: InboxState = request.app[STATE_KEY]
    settings: Settings = request.app[SETTINGS_KEY]
    alert_id = request.match_info["alert_id"]
    async with request.app[ACK_LOCK_KEY]:  # a double click must not write two acknowledgements
        plan = state.ack_plan(alert_id)
        if plan is None:
            return _json({"error": f"no open alert with id {alert_id[:64]!r}"}, 404)
        if plan.already:
            return _json({"status": "already_closed", "alert_id": alert_id})
        events = [ack_event(plan.customer_id, a, acknowledged_by=user) for a in plan.alert_ids]
        records = [(plan.customer_id.encode(), orjson.dumps(e)) for e in events]
        topic = settings.topic("outcomes")
        try:
            await asyncio.get_running_loop().run_in_executor(None, request.app[SINK_KEY].send, topic, records)
        except Exception as exc:  # broker away: the row stays, the CSM can retry
            log.warning("inbox: could not write the acknowledgement of %s: %s", alert_id, exc)
            return _json({"error": f"could not write to {topic}: {type(exc).__name__}"}, 503)
        for e in events:
            state.add_outcome(e)
    return _json({"status": "acknowledged", "alert_id": plan.alert_ids[0], "customer_id": plan.customer_id,
                  "acknowledged": list(plan.alert_ids), "event_ids": [e["event_id"] for e in events]})


async def _healthz(request: web.Request) -> web.Response:
    follower = request.app[FOLLOWER_KEY]
    body: dict[str, Any] = {"status": "ok", **request.app[STATE_KEY].stats()}
    if follower is not None:
        body["caught_up"] = follower.caught_up.is_set()
        if follower.error or not follower.is_alive():
            body.update(status="degraded", error=follower.error or "topic follower stopped")
            return _json(body, 503)
    return _json(body)


def create_app(settings: Settings, *, state: InboxState | None = None, sink: AckSink | None = None,
               follow: bool = True, host: str = "127.0.0.1", port: int = 0) -> web.Application:
    """The inbox web app. With ``follow`` (the default) it reads the topics in a background thread
    from startup to cleanup; ``state``/``sink`` can be given (tests: a prepared view, a list sink).

    ``host``/``port`` are where it will listen: a non-loopback ``host`` without a token or a trusted
    proxy header raises SettingsError, and ``host:port`` is one of the Host names it answers to."""
    auth = WebAuth.for_server(settings, host, port, "inbox")
    if state is None:
        from pipeline.core.policy import load_policy

        state = InboxState(expire_days=load_policy(settings.policy_file).alerts.expire_days)
    app = web.Application(middlewares=[webguard.middleware(auth, classify)])
    app[AUTH_KEY] = auth
    app[STATE_KEY] = state
    app[SETTINGS_KEY] = settings
    app[SINK_KEY] = sink if sink is not None else KafkaAckSink(settings)
    app[FOLLOWER_KEY] = TopicFollower(settings, state) if follow else None
    app[ACK_LOCK_KEY] = asyncio.Lock()
    app.router.add_get("/", _page)
    app.router.add_get("/api/alerts", _api_alerts)
    app.router.add_post("/alerts/{alert_id}/ack", _ack)
    app.router.add_get("/healthz", _healthz)
    show_login, submit_login, logout = webguard.login_handlers(auth, "churnwatch CSM inbox")
    app.router.add_get("/login", show_login)
    app.router.add_post("/login", submit_login)
    app.router.add_post("/logout", logout)

    async def start(app: web.Application) -> None:
        if app[FOLLOWER_KEY] is not None:
            app[FOLLOWER_KEY].start()

    async def stop(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        if app[FOLLOWER_KEY] is not None:
            await loop.run_in_executor(None, app[FOLLOWER_KEY].stop)
        await loop.run_in_executor(None, app[SINK_KEY].close)

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


class InboxServer:
    """The inbox served from a background thread with its own event loop (tests; an embedding demo).

    ``port=0`` picks a free port; :attr:`url` tells which. :meth:`stop` runs the app's cleanup, which
    stops the topic follower and closes the producer.
    """

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app, self.host, self.port = app, host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> "InboxServer":
        self._thread = threading.Thread(target=self._run, name="churnwatch-inbox-http", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the inbox server did not start in time")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(self.app, access_log=None)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, self.host, self.port)
            loop.run_until_complete(site.start())
            self.port = runner.addresses[0][1]
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            loop.run_until_complete(runner.cleanup())
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def stop(self, timeout: float = 20.0) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)


def run_inbox(settings: Settings, host: str = "127.0.0.1", port: int = 8088,
              announce: Callable[[str], None] = print) -> None:
    """Serve the inbox until SIGINT/SIGTERM (``churnwatch inbox``). Loopback only unless ``host`` says
    otherwise, and then only with a token or a trusted proxy header (SettingsError before anything starts)."""
    app = create_app(settings, host=host, port=port)
    auth = app[AUTH_KEY]
    shown = f"[{host}]" if ":" in host else host
    guard = {"open": "no sign-in (loopback only)", "token": "sign-in with CHURNWATCH_INBOX_TOKEN",
             "proxy": f"user from the proxy's {auth.trusted_header} header",
             "token+proxy": f"user from the proxy's {auth.trusted_header} header, or sign-in with the token"}[auth.mode]
    announce(f"churnwatch inbox on http://{shown}:{port}/ (alerts from {settings.alerts_topic} on {settings.broker}; "
             f"{guard}); Ctrl-C stops it")
    if not settings.allowed_hosts and bind_rule(host, port) is None:
        announce(f"note: listening on every interface, but answering only Host {', '.join(LOOPBACK_NAMES)}: set "
                 "CHURNWATCH_ALLOWED_HOSTS to the name users reach it by")
    web.run_app(app, host=host, port=port, print=None, access_log=None, handle_signals=True)


__all__ = ["InboxState", "AckPlan", "ack_event", "render_page", "create_app", "run_inbox", "InboxServer",
           "TopicFollower", "KafkaAckSink", "EXPIRE_DAYS", "CSRF_HEADER", "risk_text", "sentence"]
