"""Unit tests for apps.inbox: the open-alert view, the page's escaping, and the HTTP endpoints.

No broker: the view is fed alert/outcome dicts directly, and the app runs with ``follow=False`` and a
list in place of the Kafka producer, so the acknowledgement events it would write can be inspected.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from typing import Any, Sequence

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from pipeline.core.contract import DAY_MS, format_ts, validate
from apps.inbox import CSRF_HEADER, ACK_NOTE, InboxState, ack_event, create_app, render_page, risk_text, sentence
from pipeline.config.settings import Settings, SettingsError

T0 = 1_718_452_800_000  # 2024-06-15T12:00:00Z
HOUR = 3_600_000
_n = itertools.count()


def alert(cid: str, score: float | None, ts_ms: int = T0, *, tier: str = "standard", csm: str = "alice",
          kind: str = "new", trigger: str = "event", aid: str | None = None, reasons: Sequence[str] = ("logins down",),
          play: str = "Guided training") -> dict[str, Any]:
    """An alert record shaped like ``Alert.to_json`` (score None as orjson writes a rule alert's NaN)."""
    return {"alert_id": aid or f"a{next(_n)}", "customer_id": cid, "tier": tier, "csm": csm, "score": score,
            "threshold": 0.35 if tier == "vip" else 0.5, "band": "high", "trigger": trigger, "kind": kind,
            "reasons": [{"feature": "f", "value": 1.0, "contribution": 0.1, "category": "adoption", "text": t}
                        for t in reasons],
            "play": play, "model_version": "v1", "event_time": format_ts(ts_ms), "emit_time": format_ts(ts_ms + 5)}


def outcome(cid: str, typ: str, ts_ms: int = T0 + HOUR, alert_id: str | None = None) -> dict[str, Any]:
    o = {"event_id": f"o{next(_n)}", "customer_id": cid, "ts": format_ts(ts_ms), "type": typ, "schema_version": 1}
    if alert_id is not None:
        o["alert_id"] = alert_id
    return o


def ids(state: InboxState, **kw: Any) -> list[str]:
    return [a["customer_id"] for a in state.open_alerts(**kw)]


# ---- the view ---------------------------------------------------------------------------------------
def test_sorted_by_risk_then_rule_alerts_without_score_newest_first():
    s = InboxState()
    s.add_alert(alert("low", 0.4))
    s.add_alert(alert("high", 0.9))
    s.add_alert(alert("rule-old", None, T0 - 2 * HOUR, kind="rule", trigger="csat_low"))
    s.add_alert(alert("mid", 0.6))
    s.add_alert(alert("rule-new", None, T0 - HOUR, kind="rule", trigger="nps_detractor"))
    assert ids(s) == ["high", "mid", "low", "rule-new", "rule-old"]
    assert s.open_alerts()[-1]["score"] is None


def test_one_entry_per_customer_the_newest_alert():
    s = InboxState()
    first = alert("c1", 0.7, T0)
    rule = alert("c1", 0.7, T0 + DAY_MS, kind="rule", trigger="csat_low", reasons=["rated support 1/5 (CSAT)"])
    s.add_alert(first)
    s.add_alert(rule)
    [entry] = s.open_alerts()
    assert entry["alert_id"] == rule["alert_id"] and entry["trigger"] == "csat_low"
    assert entry["alert_ids"] == [rule["alert_id"], first["alert_id"]]  # the model alert is still unacknowledged
    # an older alert read late (replay order) does not replace the newer one
    s.add_alert(alert("c1", 0.99, T0 - DAY_MS))
    assert s.open_alerts()[0]["alert_id"] == rule["alert_id"]


def test_escalation_updates_the_risk_and_keeps_the_id_the_worker_knows():
    s = InboxState()
    new = alert("c1", 0.5, T0, reasons=["logins down"])
    s.add_alert(new)
    s.add_alert(alert("other", 0.6))
    esc = alert("c1", 0.8, T0 + 2 * DAY_MS, kind="escalation", trigger="escalation", reasons=["tickets piling up"])
    s.add_alert(esc)
    entry = s.open_alerts()[0]
    assert entry["customer_id"] == "c1" and entry["score"] == 0.8  # re-sorted by the new risk
    assert entry["alert_id"] == new["alert_id"] and entry["escalated"] is True
    assert entry["trigger"] == "event" and entry["reasons"][0]["text"] == "tickets piling up"
    assert entry["opened_time"] == format_ts(T0)  # expiry still counts from the original alert
    # acknowledging the escalation's id closes the entry too
    s.add_outcome(outcome("c1", "alert_ack", alert_id=esc["alert_id"]))
    assert ids(s) == ["other"]


def test_ack_removes_only_the_named_alert():
    s = InboxState()
    a1, a2 = alert("c1", 0.7), alert("c2", 0.6)
    s.add_alert(a1)
    s.add_alert(a2)
    assert s.add_outcome(outcome("c1", "alert_ack", alert_id="unknown")) is False
    assert s.add_outcome(outcome("c1", "alert_ack", alert_id=a1["alert_id"])) is True
    assert ids(s) == ["c2"]
    # a replayed copy of the acknowledged alert stays closed
    assert s.add_alert(a1) is False and ids(s) == ["c2"]


def test_ack_read_before_its_alert_still_wins():
    s = InboxState()
    a = alert("c1", 0.7)
    s.add_outcome(outcome("c1", "alert_ack", alert_id=a["alert_id"]))
    s.add_alert(a)
    assert s.open_alerts() == []


def test_ack_of_an_older_alert_keeps_the_newer_one_open():
    s = InboxState()
    old, new = alert("c1", 0.7, T0), alert("c1", 0.7, T0 + DAY_MS, kind="rule", trigger="nps_detractor")
    s.add_alert(old)
    s.add_alert(new)
    s.add_outcome(outcome("c1", "alert_ack", alert_id=old["alert_id"]))
    [entry] = s.open_alerts()
    assert entry["alert_id"] == new["alert_id"] and entry["alert_ids"] == [new["alert_id"]]


@pytest.mark.parametrize("typ", ["contacted", "saved", "churned"])
def test_customer_level_outcomes_close_alerts_raised_before_them(typ):
    s = InboxState()
    s.add_alert(alert("c1", 0.7, T0))
    s.add_alert(alert("c2", 0.6, T0))
    s.add_outcome(outcome("c1", typ, T0 + HOUR))
    assert ids(s) == ["c2"]
    # an alert raised before the outcome but read after it (the topics' order is arbitrary) stays closed
    assert s.add_alert(alert("c1", 0.9, T0 + HOUR - 1)) is False
    assert ids(s) == ["c2"]


def test_contacted_does_not_close_a_later_alert():
    s = InboxState()
    s.add_alert(alert("c1", 0.7, T0 + 5 * DAY_MS))
    s.add_outcome(outcome("c1", "contacted", T0))
    assert ids(s) == ["c1"]


def test_contacted_about_one_alert_acts_as_its_acknowledgement():
    s = InboxState()
    a = alert("c1", 0.7)
    s.add_alert(a)
    s.add_outcome(outcome("c1", "saved", alert_id="someone-else"))
    assert ids(s) == ["c1"]
    s.add_outcome(outcome("c1", "saved", alert_id=a["alert_id"]))
    assert ids(s) == []


def test_renewed_and_other_outcomes_leave_alerts_open():
    s = InboxState()
    s.add_alert(alert("c1", 0.7))
    s.add_outcome(outcome("c1", "renewed"))
    assert ids(s) == ["c1"]


def test_alerts_expire_after_30_days_of_event_time():
    s = InboxState()
    s.add_alert(alert("old", 0.9, T0))
    s.add_alert(alert("new", 0.5, T0 + 20 * DAY_MS))
    assert ids(s) == ["old", "new"]
    assert ids(s, now_ms=T0 + 30 * DAY_MS) == ["old", "new"]
    assert ids(s, now_ms=T0 + 30 * DAY_MS + 1) == ["new"]
    # the view's own clock is the newest alert event time seen
    s.add_alert(alert("newer", 0.1, T0 + 31 * DAY_MS))
    assert ids(s) == ["new", "newer"]
    # outcome times do not move it: an acknowledgement carries the wall-clock time of the click
    s.add_outcome(outcome("x", "alert_ack", T0 + 400 * DAY_MS, alert_id="?"))
    assert ids(s) == ["new", "newer"]
    assert InboxState(expire_days=10).open_alerts() == []


def test_an_expired_entry_does_not_come_back_on_replay():
    s = InboxState()
    a = alert("c1", 0.9, T0)
    s.add_alert(a)
    s.add_alert(alert("c2", 0.5, T0 + 40 * DAY_MS))  # moves the clock on: c1 is pruned
    assert s.add_alert(a) is False
    assert ids(s) == ["c2"]


def test_filters_by_tier_and_csm():
    s = InboxState()
    s.add_alert(alert("v1", 0.9, tier="vip", csm="Alice"))
    s.add_alert(alert("v2", 0.8, tier="vip", csm="bob"))
    s.add_alert(alert("s1", 0.7, tier="standard", csm="alice"))
    s.add_alert(alert("s2", 0.6, tier="standard", csm=""))
    assert ids(s, tier="vip") == ["v1", "v2"]
    assert ids(s, csm="alice") == ["v1", "s1"]  # CSM names compare case-insensitively
    assert ids(s, tier="vip", csm="bob") == ["v2"]
    assert ids(s, csm="-") == ["s2"]
    assert ids(s, tier="gold") == []
    assert s.facets() == (["standard", "vip"], ["-", "Alice", "alice", "bob"])


def test_duplicates_and_malformed_records_are_ignored():
    s = InboxState()
    a = alert("c1", 0.7)
    assert s.add_alert(a) is True
    assert s.add_alert(dict(a)) is False
    for bad in (None, [], {"alert_id": 3, "customer_id": "c"}, {**a, "alert_id": "z", "event_time": "yesterday"},
                {**a, "alert_id": "y", "score": "high"}):
        s.add_alert(bad)
    for bad in ({"customer_id": "c1", "type": "alert_ack", "ts": format_ts(T0)}, {"type": "saved"}, "x"):
        s.add_outcome(bad)
    assert s.skipped == 7
    entries = s.open_alerts()
    assert {e["customer_id"] for e in entries} == {"c1"} and len(entries) == 1
    # a non-numeric score from the topic is shown as "no score", never crashes the sort
    s.add_alert({**a, "alert_id": "w", "customer_id": "c9", "score": float("inf")})
    assert s.open_alerts()[-1]["score"] is None


def test_ack_plan_names_the_row_and_what_it_folds():
    s = InboxState()
    model = alert("c1", 0.7, T0)
    esc = alert("c1", 0.9, T0 + HOUR, kind="escalation", trigger="escalation")
    rule = alert("c1", 0.9, T0 + DAY_MS, kind="rule", trigger="csat_low")
    for a in (model, esc, rule):
        s.add_alert(a)
    plan = s.ack_plan(rule["alert_id"])
    assert plan is not None and plan.customer_id == "c1"
    assert plan.alert_ids == (rule["alert_id"], model["alert_id"], esc["alert_id"])
    assert s.ack_plan("nope") is None
    s.add_outcome(outcome("c1", "alert_ack", alert_id=rule["alert_id"]))
    again = s.ack_plan(rule["alert_id"])
    assert again is not None and again.already


def test_ack_event_follows_the_event_contract():
    e = ack_event("c1", "abc123", now_ms=T0)
    assert e["type"] == "alert_ack" and e["alert_id"] == "abc123" and e["note"] == ACK_NOTE
    assert e["ts"] == format_ts(T0) and e["schema_version"] == 1 and len(e["event_id"]) == 36
    assert "acknowledged_by" not in e  # an open inbox knows no user
    ev = validate("outcomes", e, now_ms=T0)
    assert ev.customer_id == "c1" and ev.data["alert_id"] == "abc123" and "acknowledged_by" not in ev.data
    by = ack_event("c1", "abc123", now_ms=T0, acknowledged_by="Dana Scully")
    assert validate("outcomes", by, now_ms=T0).data["acknowledged_by"] == "Dana Scully"


# ---- the page -------------------------------------------------------------------------------------
EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_page_escapes_every_field_from_the_topic():
    a = alert('c"><b>1', 0.7, tier='vip"><i>', csm="<svg onload=alert(1)>", reasons=[EVIL],
              play="<a href='javascript:alert(1)'>do it</a>", aid='x" onclick="alert(1)')
    a["model_version"] = "</td><script>bad()</script>"
    s = InboxState()
    s.add_alert(a)
    tiers, csms = s.facets()
    full = render_page(s.open_alerts(), tiers, csms, tier="<x>", csm='"', nonce="N0NCE")
    page, script = full.split('<script nonce="N0NCE">')
    assert "</script>" not in script[:-len("</script></body></html>")]  # nothing closes the page's script early
    assert "<script>alert" not in page and "<img" not in page and "<svg" not in page
    assert "<a href=" not in page and "<script>bad" not in page and "<b>1" not in page and "<i>" not in page
    assert 'onclick="alert' not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;." in page
    assert full.count("<script") == 1  # only the page's own script


def test_page_shows_reasons_as_sentences_and_the_play():
    s = InboxState()
    s.add_alert(alert("c1", 0.72, reasons=["logins down 80% vs the previous week (2 in the last 7 days)",
                                           "rated support 1/5 (CSAT)"], play="Service recovery: call them"))
    s.add_alert(alert("c2", None, kind="rule", trigger="vip_sla_breach", tier="vip"))
    page = render_page(s.open_alerts(), *s.facets())
    assert "<li>Logins down 80% vs the previous week (2 in the last 7 days).</li>" in page
    assert "<li>Rated support 1/5 (CSAT).</li>" in page
    assert "Service recovery: call them" in page and "72%" in page and "Rule: VIP SLA breach" in page
    assert "2 open alerts" in page and ">n/a<" in page
    assert '<p class="empty">No open alerts.</p>' in render_page([], [], [])
    assert sentence("done.") == "Done." and sentence("") == ""
    assert [risk_text(x) for x in (None, 0.0, 0.0004, 0.042, 0.72)] == ["n/a", "0.0%", "<0.1%", "4.2%", "72%"]


# ---- the HTTP endpoints ----------------------------------------------------------------------------
class ListSink:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, bytes, dict]] = []
        self.fail = fail

    def send(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        if self.fail:
            raise ConnectionError("broker away")
        self.sent += [(topic, k, orjson.loads(v)) for k, v in records]

    def close(self) -> None:
        pass


def _run(state: InboxState, sink: ListSink, scenario, settings: Settings | None = None) -> Any:
    async def main() -> Any:
        app = create_app(settings or Settings(topic_prefix="u."), state=state, sink=sink, follow=False)
        async with TestClient(TestServer(app)) as client:
            return await scenario(client)

    return asyncio.run(main())


async def _csrf(client: TestClient, headers: dict[str, str] | None = None) -> str:
    """Load the page (which gives the browser its session cookie) and read the CSRF token it embeds."""
    r = await client.get("/", headers=headers or {})
    assert r.status == 200, await r.text()
    m = re.search(r'<meta name="csrf-token" content="([^"]*)">', await r.text())
    assert m and m.group(1)
    return m.group(1)


def test_endpoints_list_filter_ack_and_health():
    s = InboxState()
    a1, a2 = alert("v1", 0.9, tier="vip", csm="alice", reasons=[EVIL]), alert("s1", 0.5, csm="bob")
    s.add_alert(a1)
    s.add_alert(a2)
    sink = ListSink()

    async def scenario(client: TestClient) -> None:
        r = await client.get("/api/alerts", params={"tier": "vip"})
        assert [a["customer_id"] for a in await r.json()] == ["v1"]
        r = await client.get("/", params={"csm": "bob"})
        page = await r.text()
        assert r.status == 200 and 'data-customer="s1"' in page and 'data-customer="v1"' not in page
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'nonce-" in csp and "unsafe-inline" not in csp
        # without the page's CSRF token: refused (a cross-site form post cannot send it), also with a wrong one
        r = await client.post(f"/alerts/{a1['alert_id']}/ack")
        assert r.status == 403 and sink.sent == []
        csrf = await _csrf(client)
        r = await client.post(f"/alerts/{a1['alert_id']}/ack", headers={CSRF_HEADER: csrf[:-2] + "xx"})
        assert r.status == 403 and sink.sent == []
        r = await client.post("/alerts/unknown/ack", headers={CSRF_HEADER: csrf})
        assert r.status == 404
        r = await client.post(f"/alerts/{a1['alert_id']}/ack", headers={CSRF_HEADER: csrf})
        body = await r.json()
        assert r.status == 200 and body["status"] == "acknowledged" and body["customer_id"] == "v1"
        [(topic, key, event)] = sink.sent
        assert topic == "u.outcomes" and key == b"v1"
        assert event["type"] == "alert_ack" and event["alert_id"] == a1["alert_id"] and event["note"] == ACK_NOTE
        assert "acknowledged_by" not in event  # open (loopback) inbox: nobody signed in
        assert [a["customer_id"] for a in await (await client.get("/api/alerts")).json()] == ["s1"]
        r = await client.post(f"/alerts/{a1['alert_id']}/ack", headers={CSRF_HEADER: csrf})  # double click
        assert r.status == 200 and (await r.json())["status"] == "already_closed" and len(sink.sent) == 1
        r = await client.get("/healthz")
        assert r.status == 200 and (await r.json())["open"] == 1

    _run(s, sink, scenario)


def test_ack_fails_cleanly_when_the_broker_is_away():
    s = InboxState()
    a = alert("c1", 0.9)
    s.add_alert(a)

    async def scenario(client: TestClient) -> None:
        r = await client.post(f"/alerts/{a['alert_id']}/ack", headers={CSRF_HEADER: await _csrf(client)})
        assert r.status == 503 and "u.outcomes" in (await r.json())["error"]

    _run(s, ListSink(fail=True), scenario)
    assert [e["customer_id"] for e in s.open_alerts()] == ["c1"]  # still open: the CSM can retry


# ---- who may use it (pipeline.web.webauth through pipeline.web.webguard; the real server: tests/integration) ----------
TOKEN = "unit-test-token-0123456789"


def test_token_mode_needs_a_sign_in_and_records_the_name_given_there():
    s = InboxState()
    a = alert("c1", 0.9)
    s.add_alert(a)
    sink = ListSink()

    async def scenario(client: TestClient) -> None:
        r = await client.get("/api/alerts")
        assert r.status == 401 and "Bearer" in r.headers["WWW-Authenticate"]
        r = await client.get("/", headers={"Accept": "text/html"}, allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/login?next=/"
        r = await client.get("/api/alerts", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status == 200 and [x["customer_id"] for x in await r.json()] == ["c1"]
        r = await client.get("/api/alerts", headers={"Authorization": "Bearer wrong-token-wrong-token"})
        assert r.status == 401 and (await r.json())["error"] == "wrong token"
        r = await client.post("/login", data={"name": "mulder", "token": "nope", "next": "/"}, allow_redirects=False)
        assert r.status == 401 and "Wrong token." in await r.text() and "churnwatch_session" not in r.cookies
        r = await client.post("/login", data={"name": "mulder", "token": TOKEN, "next": "//evil.example/"},
                              allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/"  # never off-site after signing in
        cookie = r.cookies["churnwatch_session"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        csrf = await _csrf(client)
        assert 'id="user">mulder<' in await (await client.get("/")).text()
        r = await client.post(f"/alerts/{a['alert_id']}/ack")
        assert r.status == 403 and sink.sent == []
        r = await client.post(f"/alerts/{a['alert_id']}/ack", headers={CSRF_HEADER: csrf})
        assert r.status == 200, await r.text()
        [(_, _, event)] = sink.sent
        assert event["acknowledged_by"] == "mulder"
        validate("outcomes", event, now_ms=int(time.time() * 1000))

    _run(s, sink, scenario, Settings(topic_prefix="u.", inbox_token=TOKEN))


def test_proxy_mode_records_the_user_the_proxy_names():
    s = InboxState()
    a = alert("c1", 0.9)
    s.add_alert(a)
    sink = ListSink()
    proxy = {"X-Forwarded-User": "scully@example.org"}

    async def scenario(client: TestClient) -> None:
        r = await client.get("/api/alerts")
        assert r.status == 401 and "X-Forwarded-User" in (await r.json())["error"]
        assert (await client.get("/login")).status == 404  # the proxy signs users in, not this page
        csrf = await _csrf(client, proxy)
        r = await client.post(f"/alerts/{a['alert_id']}/ack", headers={**proxy, CSRF_HEADER: csrf})
        assert r.status == 200, await r.text()
        [(_, _, event)] = sink.sent
        assert event["acknowledged_by"] == "scully@example.org"

    _run(s, sink, scenario, Settings(topic_prefix="u.", trusted_user_header="X-Forwarded-User"))


def test_a_non_loopback_bind_without_a_guard_is_refused():
    with pytest.raises(SettingsError, match="CHURNWATCH_INBOX_TOKEN"):
        create_app(Settings(), follow=False, sink=ListSink(), host="0.0.0.0", port=8088)
    assert create_app(Settings(inbox_token=TOKEN), follow=False, sink=ListSink(), host="0.0.0.0", port=8088)
