"""The inbox's web server: the page, the alert API, the Acknowledge endpoint and the health probe
(aiohttp), with the open-alert view fed by the topic follower from startup to cleanup.

Who may see and acknowledge is decided by :mod:`pipeline.web.webauth` (through :mod:`pipeline.web.webguard`):
a sign-in with the shared token (``CHURNWATCH_INBOX_TOKEN``) or the user a proxy in front names
(``CHURNWATCH_TRUSTED_USER_HEADER``), else loopback only; the ``Host`` header must name this server
(DNS rebinding); acknowledging needs the session's CSRF token, which the page's script sends. The
acknowledgement records who acknowledged (``acknowledged_by``): the signed-in or proxy-named user,
taken from the session or the proxy's header, never from the request body.

The page is served with a strict Content-Security-Policy: scripts and styles only with a nonce made
anew for each response (:mod:`apps.inbox.page` puts it on its inline style and script).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from typing import Any, Callable

import orjson
from aiohttp import web

from apps.inbox.page import render_page
from apps.inbox.topics import AckSink, KafkaAckSink, TopicFollower
from apps.inbox.view import InboxState, ack_event
from pipeline.config.settings import Settings
from pipeline.web import webguard
from pipeline.web.webauth import LOOPBACK_NAMES, WebAuth, bind_rule

log = logging.getLogger("churnwatch.inbox")

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
        from pipeline.config.policy_file import load_policy

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


__all__ = ["create_app", "run_inbox", "InboxServer", "classify", "STATE_KEY", "SETTINGS_KEY", "SINK_KEY",
           "FOLLOWER_KEY", "AUTH_KEY"]
