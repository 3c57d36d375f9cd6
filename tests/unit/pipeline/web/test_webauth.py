"""Unit tests for pipeline.web.webauth: Host allow-list, token compare, signed sessions, CSRF tokens and who a
request is from — all without a server (plain header dicts and a clock passed in)."""

from __future__ import annotations

import base64
import json

import pytest
from multidict import CIMultiDict

from pipeline.config.fields import SettingsError
from pipeline.config.settings import Settings
from pipeline.web import webauth
from pipeline.web.webauth import (API_USER, SESSION_MAX_AGE_S, WORKER_HEADER, HostRule, Identity, WebAuth, bind_rule,
                              check_bind, is_loopback_bind, parse_host_list, safe_next, same_origin,
                              user_name_problem)

TOKEN = "s3cret-token-for-unit-tests"
NOW = 1_760_000_000.0


# ---- hosts ------------------------------------------------------------------------------------------------
def test_parse_host_list_and_its_errors():
    assert parse_host_list(" inbox.example.com, worker-1:6066 ,,[::1]:9") == (
        HostRule("inbox.example.com"), HostRule("worker-1", 6066), HostRule("[::1]", 9))
    assert parse_host_list("") == ()
    for bad in ("https://inbox.example.com", "inbox.example.com/path", "user@host", "a b"):
        with pytest.raises(ValueError, match="is not a host name"):
            parse_host_list(bad)


def test_host_allow_list_stops_dns_rebinding():
    auth = WebAuth.for_server(Settings(allowed_hosts="inbox.example.com,worker-2:6066"), "127.0.0.1", 8088, "inbox")
    for ok in ("localhost:8088", "localhost:9999", "127.0.0.1:8088", "[::1]:8088", "127.0.0.1",
               "inbox.example.com", "INBOX.example.com:443", "worker-2:6066"):
        assert auth.host_allowed(ok), ok
    # the rebinding page's own name, whatever it resolves to now; a port the rule does not name; no Host
    for bad in ("attacker.example:8088", "attacker.example", "worker-2:6067", "worker-2", "127.0.0.2:8088",
                "inbox.example.com.evil.example", "", None, "localhost:8088, evil"):
        assert not auth.host_allowed(bad), bad


def test_bind_address_is_allowed_with_its_port_only():
    auth = WebAuth.for_server(Settings(inbox_token=TOKEN), "10.1.2.3", 6066, "worker web server")
    assert auth.host_allowed("10.1.2.3:6066") and not auth.host_allowed("10.1.2.3:6067")
    assert not auth.host_allowed("10.1.2.3")
    wildcard = WebAuth.for_server(Settings(inbox_token=TOKEN), "0.0.0.0", 8088, "inbox")
    assert [r.name for r in wildcard.allowed] == ["localhost", "127.0.0.1", "[::1]"]


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.53", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("", False), ("10.0.0.5", False), ("inbox.example.com", False),
])
def test_is_loopback_bind(host, loopback):
    assert is_loopback_bind(host) is loopback


def test_bind_rule():
    assert bind_rule("0.0.0.0", 8088) is None and bind_rule("::", 8088) is None
    assert bind_rule("::1", 8088) == HostRule("[::1]", 8088)
    assert bind_rule("Inbox.Example.com", 8088) == HostRule("inbox.example.com", 8088)


def test_check_bind_refuses_an_unguarded_public_bind_in_one_line():
    check_bind(Settings(), "127.0.0.1", "inbox")
    check_bind(Settings(inbox_token=TOKEN), "0.0.0.0", "inbox")
    check_bind(Settings(trusted_user_header="X-Forwarded-User"), "0.0.0.0", "inbox")
    for host in ("0.0.0.0", "", "192.168.1.10"):
        with pytest.raises(SettingsError) as exc:
            check_bind(Settings(), host, "inbox")
        msg = str(exc.value)
        assert "\n" not in msg and "CHURNWATCH_INBOX_TOKEN" in msg and "CHURNWATCH_TRUSTED_USER_HEADER" in msg


# ---- tokens, sessions, CSRF --------------------------------------------------------------------------------
def test_token_compare_is_constant_time(monkeypatch):
    calls = []
    real = webauth.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(webauth.hmac, "compare_digest", spy)
    auth = WebAuth(TOKEN)
    assert auth.token_ok(TOKEN) and not auth.token_ok(TOKEN + "x") and not auth.token_ok("") \
        and not auth.token_ok(None)
    assert len(calls) == 3 and all(isinstance(a, bytes) for a, _ in calls)
    assert not WebAuth("").token_ok("")  # no token configured: nothing matches


def test_session_round_trip_and_tampering():
    auth = WebAuth(TOKEN)
    value = auth.issue("mulder", "login", NOW)
    s = auth.session(value, NOW + 5)
    assert s is not None and (s.user, s.kind, s.issued_s) == ("mulder", "login", int(NOW)) and len(s.sid) >= 20
    # same token elsewhere (another inbox replica, a worker): the same key
    assert WebAuth(TOKEN).session(value, NOW) == s
    assert WebAuth("another-token-entirely-0000").session(value, NOW) is None
    assert WebAuth("").session(value, NOW) is None  # a per-process key
    payload, mac = value.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"u": "skinner", "s": s.sid, "k": "login", "t": int(NOW)}).encode())
    assert auth.session(forged.decode().rstrip("=") + "." + mac, NOW) is None  # the user cannot be changed
    assert auth.session(payload + "." + mac[:-1] + ("A" if mac[-1] != "A" else "B"), NOW) is None
    for junk in ("", "x", "a.b.c", "." * 3, "%%%.%%%", "é.é", value + "x" * 5000):
        assert auth.session(junk, NOW) is None, junk
    assert auth.session(value, NOW + SESSION_MAX_AGE_S + 1) is None  # expired
    assert auth.session(value, NOW - 3600) is None  # issued in the future


def test_csrf_token_belongs_to_one_session():
    auth = WebAuth(TOKEN)
    s1 = auth.session(auth.issue("mulder", "login", NOW), NOW)
    s2 = auth.session(auth.issue("mulder", "login", NOW), NOW)
    assert s1 and s2 and auth.csrf_token(s1) != auth.csrf_token(s2)
    me = Identity("mulder", "session", s1)
    assert auth.csrf_ok(me, auth.csrf_token(s1))
    assert not auth.csrf_ok(me, auth.csrf_token(s2)) and not auth.csrf_ok(me, None) and not auth.csrf_ok(me, "")
    assert not auth.csrf_ok(Identity("mulder", "session", None), auth.csrf_token(s1))
    assert not auth.csrf_ok(Identity("skinner", "proxy", s1), auth.csrf_token(s1))  # a session of another user
    assert WebAuth("another-token-entirely-0000").csrf_token(s1) != auth.csrf_token(s1)


# ---- who is calling ------------------------------------------------------------------------------------------
def test_open_mode_is_anonymous_and_ignores_credentials():
    auth = WebAuth()
    assert auth.mode == "open" and not auth.login_enabled and auth.worker_key == ""
    who = auth.identify({"Authorization": "Bearer anything"}, None, NOW)
    assert who == Identity("", "open") and who.ambient
    session, cookie = auth.page_session(who, NOW)
    assert session is not None and session.kind == "open" and cookie is not None
    again = auth.identify({}, cookie, NOW)
    assert again is not None and again.session == session and auth.page_session(again, NOW) == (session, None)


def test_token_mode():
    auth = WebAuth(TOKEN)
    assert auth.mode == "token" and auth.login_enabled
    assert auth.identify({}, None, NOW) is None
    assert auth.identify({"authorization": f"Bearer {TOKEN}"}, None, NOW) == Identity(API_USER, "bearer")
    assert auth.identify({"Authorization": f"bearer  {TOKEN} "}, None, NOW) == Identity(API_USER, "bearer")
    login = auth.issue("mulder", "login", NOW)
    # a wrong Authorization is a refusal even with a good cookie
    assert auth.identify({"Authorization": "Bearer wrong"}, login, NOW) is None
    assert auth.identify({"Authorization": f"Basic {TOKEN}"}, login, NOW) is None
    who = auth.identify({}, login, NOW)
    assert who is not None and (who.user, who.via) == ("mulder", "session") and who.ambient
    assert not Identity(API_USER, "bearer").ambient
    # a CSRF-only session (issued behind the proxy or on an open server) never signs anyone in
    assert auth.identify({}, auth.issue("mulder", "proxy", NOW), NOW) is None
    assert auth.identify({}, auth.issue("mulder", "open", NOW), NOW) is None
    assert auth.page_session(Identity(API_USER, "bearer"), NOW) == (None, None)


def test_proxy_mode():
    auth = WebAuth(trusted_header="X-Forwarded-User")
    assert auth.mode == "proxy" and not auth.login_enabled
    assert auth.identify({}, None, NOW) is None
    assert auth.identify({"Authorization": f"Bearer {TOKEN}"}, None, NOW) is None
    who = auth.identify({"x-forwarded-user": " scully@example.org "}, None, NOW)
    assert who == Identity("scully@example.org", "proxy") and who.ambient
    session, cookie = auth.page_session(who, NOW)
    assert session is not None and session.user == "scully@example.org" and cookie is not None
    back = auth.identify({"X-Forwarded-User": "scully@example.org"}, cookie, NOW)
    assert back is not None and back.session == session and auth.csrf_ok(back, auth.csrf_token(session))
    # the session of one proxy user is no CSRF anchor for another, and no credential without the header
    other = auth.identify({"X-Forwarded-User": "skinner"}, cookie, NOW)
    assert other is not None and other.session is None and not auth.csrf_ok(other, auth.csrf_token(session))
    assert auth.identify({}, cookie, NOW) is None
    # ambiguous or unusable names
    assert auth.identify(CIMultiDict([("X-Forwarded-User", "a"), ("X-Forwarded-User", "b")]), None, NOW) is None
    assert auth.identify({"X-Forwarded-User": "  "}, None, NOW) is None
    assert auth.identify({"X-Forwarded-User": "a\x00b"}, None, NOW) is None
    assert auth.identify({"X-Forwarded-User": "x" * 129}, None, NOW) is None


def test_token_and_proxy_together():
    auth = WebAuth(TOKEN, "X-Forwarded-User")
    assert auth.mode == "token+proxy"
    assert auth.identify({"X-Forwarded-User": "scully"}, None, NOW) == Identity("scully", "proxy")
    assert auth.identify({"Authorization": f"Bearer {TOKEN}"}, None, NOW) == Identity(API_USER, "bearer")
    who = auth.identify({}, auth.issue("mulder", "login", NOW), NOW)
    assert who is not None and who.user == "mulder"


def test_worker_key():
    auth = WebAuth(TOKEN)
    key = auth.worker_key
    assert key and key != TOKEN and TOKEN not in key and WebAuth(TOKEN).worker_key == key
    assert WebAuth("another-token-entirely-0000").worker_key != key
    assert auth.is_worker({WORKER_HEADER: key}) and not auth.is_worker({WORKER_HEADER: key + "0"})
    assert not auth.is_worker({}) and not auth.is_worker(CIMultiDict([(WORKER_HEADER, key), (WORKER_HEADER, key)]))
    # only a server that takes workers (the worker web) says "worker"; the key is no user credential
    assert auth.identify({WORKER_HEADER: key}, None, NOW, worker_ok=True) == Identity("worker", "worker")
    assert auth.identify({WORKER_HEADER: key}, None, NOW) is None
    assert auth.identify({"Authorization": f"Bearer {key}"}, None, NOW) is None
    assert not WebAuth().is_worker({WORKER_HEADER: ""})
    assert auth.forward_headers(None) == {WORKER_HEADER: key}
    proxy = WebAuth(trusted_header="X-Forwarded-User")
    assert proxy.forward_headers(Identity("scully", "proxy")) == {"X-Forwarded-User": "scully"}
    assert WebAuth().forward_headers(Identity("", "open")) == {}


# ---- small checks ----------------------------------------------------------------------------------------------
def test_safe_next():
    assert safe_next("/?tier=vip") == "/?tier=vip" and safe_next("/customers/c1/") == "/customers/c1/"
    for bad in ("//evil.example/", "/\\evil.example", "https://evil.example/", "evil", "", None, 5, "/\x00",
                "/" + "a" * 3000):
        assert safe_next(bad) == "/", bad


def test_same_origin():
    assert same_origin("http://127.0.0.1:8088", "127.0.0.1:8088")
    assert same_origin("https://Inbox.Example.com", "inbox.example.com")
    assert not same_origin("http://attacker.example:8088", "127.0.0.1:8088")
    assert not same_origin("null", "127.0.0.1:8088") and not same_origin("file://", "127.0.0.1:8088")


def test_user_names():
    assert user_name_problem("Dana Scully") is None and user_name_problem("scully@fbi.gov") is None
    assert "required" in user_name_problem("")
    assert "longer" in user_name_problem("x" * 129)
    assert "control" in user_name_problem("a\nb")


def test_repr_never_shows_the_token():
    assert TOKEN not in repr(WebAuth(TOKEN)) and "token" in repr(WebAuth(TOKEN))
