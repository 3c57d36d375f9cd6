"""Who may use a real running inbox: HTTP requests against ``InboxServer`` on a free loopback port, the
inbox following the test's topics on the embedded broker, acknowledgements read back from the outcomes
topic. Also ``churnwatch inbox --host 0.0.0.0`` without a guard, as a real process."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from typing import Any

import pytest

from apps.inbox.server import InboxServer, create_app
from pipeline.config.settings import Settings
from pipeline.core.contract import format_ts, validate
from pipeline.web.webauth import CSRF_HEADER
from tests.integration.conftest import REPO, read_topic, wait_for
from tests.integration.webclient import WebClient

pytestmark = pytest.mark.integration

TOKEN = "integration-inbox-token-7f3a9c"


def _alert(cid: str, score: float) -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {"alert_id": uuid.uuid4().hex, "customer_id": cid, "tier": "vip", "csm": "alice", "score": score,
            "threshold": 0.35, "band": "high", "trigger": "event", "kind": "new",
            "reasons": [{"feature": "logins_7d", "value": 0.0, "contribution": 0.4, "category": "adoption",
                         "text": "no logins in the last 7 days"}],
            "play": "Call them", "model_version": "v1", "event_time": format_ts(now), "emit_time": format_ts(now)}


def _acks(settings: Settings) -> list[dict[str, Any]]:
    return [o for o in read_topic(settings, settings.topic("outcomes")) if o.get("type") == "alert_ack"]


def _serve(settings: Settings, sender, alerts: list[dict[str, Any]]) -> InboxServer:
    sender.send_all([("alerts", a) for a in alerts])
    server = InboxServer(create_app(settings)).start()
    probe = WebClient(server.url)
    wait_for(lambda: probe.get("/healthz").json().get("open") == len(alerts), 30,
             what="the inbox to read the alerts")
    return server


def test_token_mode_against_a_running_inbox(settings: Settings, sender) -> None:
    settings = settings.with_(inbox_token=TOKEN)
    a1, a2 = _alert("acme", 0.9), _alert("globex", 0.7)
    server = _serve(settings, sender, [a1, a2])
    try:
        web = WebClient(server.url)
        # DNS rebinding: the attacker's name for this address is refused, before any sign-in question
        r = web.get("/api/alerts", headers={"Host": f"rebind.attacker.example:{server.port}",
                                            "Authorization": f"Bearer {TOKEN}"})
        assert r.status == 421 and "rebind.attacker.example" in r.text
        r = web.post(f"/alerts/{a1['alert_id']}/ack", headers={"Host": "rebind.attacker.example"})
        assert r.status == 421
        # not signed in: the API says 401, a browser is sent to the sign-in page
        r = web.get("/api/alerts")
        assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        r = web.get("/", headers={"Accept": "text/html"})
        assert r.status == 303 and r.headers["Location"] == "/login?next=/"
        r = web.post(f"/alerts/{a1['alert_id']}/ack")
        assert r.status == 401
        # a bad token: refused, by bearer and on the form (no cookie)
        assert web.get("/api/alerts", headers={"Authorization": "Bearer not-the-token-at-all"}).status == 401
        r = web.login("mulder", "not-the-token-at-all")
        assert r.status == 401 and "Wrong token." in r.text and web.cookie is None
        # an API client with the token
        r = web.get("/api/alerts", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status == 200 and [a["customer_id"] for a in r.json()] == ["acme", "globex"]
        # sign in: a session cookie, then the API and the page work with it alone
        r = web.login("Fox Mulder", TOKEN, "/?tier=vip")
        assert r.status == 303 and r.headers["Location"] == "/?tier=vip" and web.cookie
        morsel = web.set_cookie["churnwatch_session"]
        assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/"
        assert int(morsel["max-age"]) == 12 * 3600
        r = web.get("/api/alerts")
        assert r.status == 200 and len(r.json()) == 2
        csrf = web.page_csrf()
        assert "Signed in as" in web.get("/").text and "Fox Mulder" in web.get("/").text
        # acknowledging: without the CSRF token (what a cross-site form post would be) 403, nothing written
        r = web.post(f"/alerts/{a1['alert_id']}/ack")
        assert r.status == 403 and CSRF_HEADER in r.json()["error"]
        r = web.post(f"/alerts/{a1['alert_id']}/ack", headers={CSRF_HEADER: csrf, "Origin": "https://attacker.example"})
        assert r.status == 403
        forged = ("y" if csrf[0] == "x" else "x") + csrf[1:]  # one character off, whatever the token drawn
        assert web.post(f"/alerts/{a1['alert_id']}/ack", headers={CSRF_HEADER: forged}).status == 403
        assert _acks(settings) == []
        # with it: the alert_ack on the topic names who acknowledged, from the session, not the request
        r = web.post(f"/alerts/{a1['alert_id']}/ack",
                     headers={CSRF_HEADER: csrf, "X-Forwarded-User": "someone-else", "Origin": server.url})
        assert r.status == 200 and r.json()["status"] == "acknowledged", r.text
        [ack] = wait_for(lambda: _acks(settings), 15, what="the alert_ack on the outcomes topic")
        assert ack["alert_id"] == a1["alert_id"] and ack["customer_id"] == "acme"
        assert ack["acknowledged_by"] == "Fox Mulder"
        ev = validate("outcomes", ack, now_ms=int(time.time() * 1000))
        assert ev.data["acknowledged_by"] == "Fox Mulder"
        # a bearer client acknowledges without a CSRF token, recorded as the API user
        r = web.post(f"/alerts/{a2['alert_id']}/ack", headers={"Authorization": f"Bearer {TOKEN}", "Cookie": ""})
        assert r.status == 200, r.text
        acks = wait_for(lambda: len(_acks(settings)) == 2 and _acks(settings), 15, what="the second alert_ack")
        assert {a["acknowledged_by"] for a in acks} == {"Fox Mulder", "api"}
        # signing out ends the session
        assert web.post("/logout", form={"csrf": csrf}).status == 303
        assert web.cookie is None and web.get("/api/alerts").status == 401
        # health for probes: no sign-in, any Host
        r = web.get("/healthz", headers={"Host": "10.0.0.7:8088"})
        assert r.status == 200 and r.json()["open"] == 0
    finally:
        server.stop()


def test_trusted_header_mode_against_a_running_inbox(settings: Settings, sender) -> None:
    settings = settings.with_(trusted_user_header="X-Forwarded-User")
    a = _alert("initech", 0.8)
    server = _serve(settings, sender, [a])
    try:
        web = WebClient(server.url)
        proxy = {"X-Forwarded-User": "dana.scully@example.org"}
        r = web.get("/api/alerts")
        assert r.status == 401 and "X-Forwarded-User" in r.json()["error"]
        assert web.get("/login").status == 404  # the proxy signs users in
        assert web.get("/api/alerts", headers={"Authorization": f"Bearer {TOKEN}"}).status == 401
        assert web.get("/api/alerts", headers={**proxy, "Host": "evil.example"}).status == 421
        r = web.get("/api/alerts", headers=proxy)
        assert r.status == 200 and [x["customer_id"] for x in r.json()] == ["initech"]
        csrf = web.page_csrf(proxy)  # the page gives the browser a CSRF session for this user
        assert web.post(f"/alerts/{a['alert_id']}/ack", headers=proxy).status == 403
        # the session of one proxy user is not another's
        assert web.post(f"/alerts/{a['alert_id']}/ack",
                        headers={"X-Forwarded-User": "cigarette.man", CSRF_HEADER: csrf}).status == 403
        r = web.post(f"/alerts/{a['alert_id']}/ack", headers={**proxy, CSRF_HEADER: csrf})
        assert r.status == 200, r.text
        [ack] = wait_for(lambda: _acks(settings), 15, what="the alert_ack on the outcomes topic")
        assert ack["acknowledged_by"] == "dana.scully@example.org" and ack["alert_id"] == a["alert_id"]
    finally:
        server.stop()


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_inbox_refuses_a_public_bind_without_a_guard(host: str, tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "CHURNWATCH_BROKER": "kafka://127.0.0.1:1", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "apps.cli", "inbox", "--host", host, "--port", "1"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "refusing to serve the inbox" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
