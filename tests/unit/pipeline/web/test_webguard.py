"""Unit tests for pipeline.web.webguard: the middleware and sign-in handlers on a tiny aiohttp app (in-process
test server on loopback), the way the inbox and the worker web mount them."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from pipeline.web import webguard
from pipeline.web.webauth import CSRF_HEADER, WORKER_HEADER, WebAuth

TOKEN = "guard-test-token-0123456789"


def classify(path: str) -> str:
    if path == "/health":
        return webguard.PROBE
    if path in ("/login", "/logout"):
        return webguard.LOGIN
    if path.startswith("/internal/"):
        return webguard.INTERNAL
    return webguard.USER


def _app(auth: WebAuth, worker_ok: bool = False) -> web.Application:
    async def page(request: web.Request) -> web.Response:
        return web.json_response({"user": webguard.identity(request).user,
                                  "csrf": webguard.page_csrf(request, auth)})

    async def change(request: web.Request) -> web.Response:
        return web.json_response({"changed_by": webguard.identity(request).user})

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[webguard.middleware(auth, classify, worker_ok=worker_ok)])
    app.router.add_get("/", page)
    app.router.add_post("/change", change)
    app.router.add_get("/health", ok)
    app.router.add_get("/internal/x", ok)
    show, submit, logout = webguard.login_handlers(auth, "test server")
    app.router.add_get("/login", show)
    app.router.add_post("/login", submit)
    app.router.add_post("/logout", logout)
    return app


def _run(app: web.Application, scenario) -> Any:
    async def main() -> Any:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            return await scenario(client)

    return asyncio.run(main())


def test_host_check_spares_only_the_probes():
    async def scenario(client: TestClient) -> None:
        evil = {"Host": "rebound.attacker.example:8088"}
        r = await client.get("/", headers=evil)
        assert r.status == 421 and "rebound.attacker.example" in await r.text()
        r = await client.post("/change", headers=evil)
        assert r.status == 421
        assert (await client.get("/login", headers=evil)).status == 421
        assert (await client.get("/health", headers=evil)).status == 200  # a kubelet sends the pod IP
        assert (await client.get("/", headers={"Host": f"localhost:{client.port}"})).status == 200

    _run(_app(WebAuth()), scenario)


def test_internal_routes_only_for_workers_of_the_group():
    auth = WebAuth(TOKEN)

    async def scenario(client: TestClient) -> None:
        assert (await client.get("/internal/x")).status == 403
        assert (await client.get("/internal/x", headers={"Authorization": f"Bearer {TOKEN}"})).status == 403
        assert (await client.get("/internal/x", headers={WORKER_HEADER: "guess"})).status == 403
        assert (await client.get("/internal/x", headers={WORKER_HEADER: auth.worker_key})).status == 200
        r = await client.get("/", headers={WORKER_HEADER: auth.worker_key})
        assert r.status == 200 and (await r.json())["user"] == "worker"  # a forwarded CSM view

    _run(_app(auth, worker_ok=True), scenario)

    async def open_mode(client: TestClient) -> None:  # no token, no worker key: nobody
        assert (await client.get("/internal/x")).status == 403
        assert (await client.get("/internal/x", headers={WORKER_HEADER: ""})).status == 403

    _run(_app(WebAuth(), worker_ok=True), open_mode)


def test_sign_in_session_csrf_and_sign_out():
    auth = WebAuth(TOKEN)

    async def scenario(client: TestClient) -> None:
        r = await client.get("/?tier=vip", headers={"Accept": "text/html"}, allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/login?next=/%3Ftier%3Dvip"
        r = await client.get("/login", params={"next": "/?tier=vip"})
        page = await r.text()
        assert r.status == 200 and 'name="token"' in page and 'value="/?tier=vip"' in page
        assert "style-src 'nonce-" in r.headers["Content-Security-Policy"]
        r = await client.post("/login", data={"name": "", "token": TOKEN})
        assert r.status == 400 and "A name is required." in await r.text()
        r = await client.post("/login", data={"name": "mulder", "token": TOKEN, "next": "/?tier=vip"},
                              allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/?tier=vip"
        set_cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and "Path=/" in set_cookie
        body = await (await client.get("/")).json()
        assert body["user"] == "mulder" and body["csrf"]
        assert (await client.post("/change")).status == 403
        assert (await client.post("/change", headers={CSRF_HEADER: "forged"})).status == 403
        r = await client.post("/change", headers={CSRF_HEADER: body["csrf"]})
        assert r.status == 200 and (await r.json())["changed_by"] == "mulder"
        # a POST another site makes the browser send (its Origin) is refused even with the cookie
        r = await client.post("/change", headers={CSRF_HEADER: body["csrf"], "Origin": "https://attacker.example"})
        assert r.status == 403
        r = await client.post("/logout", data={"csrf": "forged"}, allow_redirects=False)
        assert r.status == 403
        r = await client.post("/logout", data={"csrf": body["csrf"]}, allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/login"
        assert re.search(r"churnwatch_session=(\"\")?;", r.headers["Set-Cookie"])  # cleared
        assert (await client.get("/")).status == 401

    _run(_app(auth), scenario)


def test_bearer_clients_need_no_csrf_token():
    async def scenario(client: TestClient) -> None:
        r = await client.post("/change", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status == 200 and (await r.json())["changed_by"] == "api"
        r = await client.post("/change", headers={"Authorization": "Bearer nope"})
        assert r.status == 401 and (await r.json())["error"] == "wrong token"

    _run(_app(WebAuth(TOKEN)), scenario)


def test_open_mode_still_needs_the_csrf_token_of_its_page():
    async def scenario(client: TestClient) -> None:
        assert (await client.post("/change")).status == 403
        assert (await client.get("/login")).status == 404
        body = await (await client.get("/")).json()
        r = await client.post("/change", headers={CSRF_HEADER: body["csrf"]})
        assert r.status == 200 and (await r.json())["changed_by"] == ""

    _run(_app(WebAuth()), scenario)


def test_the_sign_in_page_escapes_what_it_shows():
    evil = '"><script>alert(1)</script>'
    page = webguard.render_login(f"inbox {evil}", f"/{evil}", error=f"Bad {evil}", name=evil, nonce="N0NCE")
    assert "<script" not in page and 'value=""' not in page
    assert re.findall(r"<style[^>]*>", page) == ['<style nonce="N0NCE">']
    assert page.count('id="login-error"') == 1 and 'id="login-error"' not in webguard.render_login("t", "/")
