"""Unit tests for apps.inbox.server: the HTTP endpoints, and who may use them.

No broker: the app runs with ``follow=False`` and a list in place of the Kafka producer, so the
acknowledgement events it would write can be inspected.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any, Sequence

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from apps.inbox.server import create_app
from apps.inbox.view import ACK_NOTE, InboxState
from pipeline.config.fields import SettingsError
from pipeline.config.settings import Settings
from pipeline.core.contract import validate
from pipeline.web.webauth import CSRF_HEADER
from tests.unit.apps.inbox.records import EVIL, alert


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


def test_the_page_style_and_script_carry_the_nonce_of_their_response():
    """The CSP allows only the inline style and script with this response's nonce; each load has its own."""
    s = InboxState()
    s.add_alert(alert("c1", 0.9))

    async def scenario(client: TestClient) -> None:
        seen = set()
        for _ in range(2):
            r = await client.get("/")
            page, csp = await r.text(), r.headers["Content-Security-Policy"]
            [nonce] = set(re.findall(r"script-src 'nonce-([^']+)'", csp))
            assert f"style-src 'nonce-{nonce}'" in csp and "default-src 'none'" in csp
            assert re.findall(r"<(style|script)( [^>]*)?>", page) == [("style", f' nonce="{nonce}"'),
                                                                     ("script", f' nonce="{nonce}"')]
            assert "button.ack" in page.split("<style", 1)[1].split("</style>", 1)[0]  # static/inbox.css, inline
            seen.add(nonce)
        assert len(seen) == 2

    _run(s, ListSink(), scenario)


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
