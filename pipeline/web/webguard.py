"""The aiohttp side of :mod:`pipeline.web.webauth`: one middleware, the sign-in page and sign-out, shared by
the inbox (its own aiohttp app) and the worker web (Faust's aiohttp app, through
``web_application_options``).

Every request is put in one of four classes by the server's ``classify(path)``:

* ``probe`` — health endpoints: answered whatever the ``Host`` and without sign-in. They hold no
  customer data, and a supervisor's probe (a kubelet sends the pod IP as ``Host``) must not need either;
* ``login`` — ``/login`` and ``/logout``: the ``Host`` is checked, the handlers check the rest;
* ``user`` — the pages and APIs a CSM uses: ``Host`` checked, then an :class:`~pipeline.web.webauth.Identity`
  is required (none: a browser is sent to ``/login``, an API client gets 401), and a state-changing
  request from a browser must carry its session's CSRF token (403 otherwise);
* ``internal`` — Faust's own routes on a worker (``/router/``, ``/table/``, its index): only for other
  workers of the group, proven by ``X-Churnwatch-Worker`` (a key derived from the shared token). Not a
  network rule (loopback, the advertised-host subnet): a reverse proxy on the same host makes every
  outside request arrive from loopback, and workers in containers share a network with anything else
  deployed there. Without a token there is no worker key, so nobody gets them — churnwatch's workers
  never call them (they forward the customer view, which is a ``user`` route); they are Faust's
  introspection endpoints, and what they print (routes, table contents) is for the workers alone.

A state-changing request whose ``Origin`` names another site (or is ``null``: a sandboxed frame) is
refused before anything else runs. The pages are served with ``Referrer-Policy: same-origin`` rather
than ``no-referrer``, because under ``no-referrer`` a browser sends ``Origin: null`` with the page's own
form posts and ``fetch`` calls, which would then be indistinguishable from a sandboxed attacker frame.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Awaitable, Callable
from urllib.parse import quote

import jinja2
from aiohttp import web

from pipeline.web.webauth import (CSRF_HEADER, SESSION_COOKIE, SESSION_MAX_AGE_S, UNSAFE_METHODS, Identity, WebAuth,
                              safe_next, same_origin, user_name_problem)

PROBE, LOGIN, USER, INTERNAL = "probe", "login", "user", "internal"


def _request_key(name: str, kind: type) -> Any:
    """A typed request-storage key where aiohttp has them (3.13+), else the plain name."""
    maker = getattr(web, "RequestKey", None)
    return maker(name, kind) if maker is not None else name


#: Where the middleware leaves the caller's identity on the request (``request[IDENTITY]``).
IDENTITY: Any = _request_key("churnwatch.identity", Identity)
_NEW_COOKIE: Any = _request_key("churnwatch.new_session", str)
_CLEAR_COOKIE: Any = _request_key("churnwatch.clear_session", bool)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers={"Cache-Control": "no-store", **(headers or {})})


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _https(request: web.Request) -> bool:
    """Whether the browser talks HTTPS (here, or to a TLS-terminating proxy that says so)."""
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def set_session_cookie(response: web.StreamResponse, request: web.Request, value: str) -> None:
    response.set_cookie(SESSION_COOKIE, value, max_age=SESSION_MAX_AGE_S, path="/", httponly=True,
                        samesite="Strict", secure=_https(request))


def identity(request: web.Request) -> Identity:
    """The identity the middleware established for a ``user`` route."""
    return request[IDENTITY]


def page_csrf(request: web.Request, auth: WebAuth) -> str:
    """The CSRF token for a page served to this request's user; issues the session it belongs to when
    the browser has none yet (the middleware sets the cookie on the response). Empty for bearer clients."""
    session, new = auth.page_session(identity(request), time.time())
    if new is not None:
        request[_NEW_COOKIE] = new
    return auth.csrf_token(session) if session is not None else ""


def _unauthenticated(request: web.Request, auth: WebAuth, why: str) -> web.StreamResponse:
    if auth.login_enabled and request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
        return _see_other(f"/login?next={quote(request.path_qs, safe='/')}")
    headers = {"WWW-Authenticate": 'Bearer realm="churnwatch"'} if auth.login_enabled else {}
    return _json({"error": why}, 401, headers)


def _why_unauthenticated(request: web.Request, auth: WebAuth) -> str:
    if auth.trusted_header and auth.trusted_header in request.headers:
        return f"the {auth.trusted_header} header does not name one user"
    if auth.login_enabled and "Authorization" in request.headers:
        return "wrong token"
    if auth.login_enabled:
        return "sign in at /login, or send Authorization: Bearer <CHURNWATCH_INBOX_TOKEN>"
    return f"no {auth.trusted_header} header: sign in through the proxy in front of this server"


def middleware(auth: WebAuth, classify: Callable[[str], str], worker_ok: bool = False) -> Any:
    """The guard of a server; ``worker_ok`` on the worker web (accepts the worker key)."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        kind = classify(request.path)
        if kind == PROBE:
            return await handler(request)
        host = request.headers.get("Host", "")
        if not auth.host_allowed(host):
            return web.Response(status=421, text=f"421 Misdirected Request: this server does not answer to Host "
                                                 f"{host[:100]!r} (CHURNWATCH_ALLOWED_HOSTS)\n")
        origin = request.headers.get("Origin")
        if request.method in UNSAFE_METHODS and origin is not None and not same_origin(origin, host):
            return _json({"error": "cross-site request refused"}, 403)
        if kind == INTERNAL:
            if worker_ok and auth.is_worker(request.headers):
                return await handler(request)
            return _json({"error": "internal worker route: only the other workers of the group may call it"}, 403)
        if kind == LOGIN:
            response = await handler(request)
        else:
            who = auth.identify(request.headers, request.cookies.get(SESSION_COOKIE), time.time(), worker_ok)
            if who is None:
                return _unauthenticated(request, auth, _why_unauthenticated(request, auth))
            if request.method in UNSAFE_METHODS and who.ambient and \
                    not auth.csrf_ok(who, request.headers.get(CSRF_HEADER)):
                return _json({"error": f"missing or wrong {CSRF_HEADER} token (cross-site request protection): "
                                       "reload the page"}, 403)
            request[IDENTITY] = who
            response = await handler(request)
        if request.get(_NEW_COOKIE):
            set_session_cookie(response, request, request[_NEW_COOKIE])
        elif request.get(_CLEAR_COOKIE):
            response.del_cookie(SESSION_COOKIE, path="/")
        return response

    return guard


# ---- sign-in page -------------------------------------------------------------------------------------
_TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("pipeline.web", "templates"), autoescape=True,
                                undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render_login(title: str, next_path: str, error: str = "", name: str = "", nonce: str = "") -> str:
    """The sign-in form (``templates/login.html.j2``, every value escaped): a name (recorded with what
    the user does) and the shared token."""
    return _TEMPLATES.get_template("login.html.j2").render(title=title, next_path=next_path, error=error, name=name,
                                                           nonce=nonce)


def _login_response(text: str, nonce: str, status: int = 200) -> web.Response:
    csp = (f"default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; base-uri 'none'; "
           "frame-ancestors 'none'")
    return web.Response(text=text, status=status, content_type="text/html", headers={
        "Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store"})


def _no_login(auth: WebAuth) -> web.Response:
    if auth.trusted_header:
        why = f"no sign-in here: this server takes the user from the {auth.trusted_header} header its proxy sets"
    else:
        why = "no sign-in here: this server is open on loopback (set CHURNWATCH_INBOX_TOKEN to require one)"
    return web.Response(status=404, text=why + "\n")


def login_handlers(auth: WebAuth, title: str) -> tuple[Handler, Handler, Handler]:
    """(GET /login, POST /login, POST /logout) for a server guarded by :func:`middleware`."""

    async def show(request: web.Request) -> web.StreamResponse:
        if not auth.login_enabled:
            return _no_login(auth)
        nonce = secrets.token_urlsafe(16)
        return _login_response(render_login(title, safe_next(request.query.get("next")), nonce=nonce), nonce)

    async def submit(request: web.Request) -> web.StreamResponse:
        if not auth.login_enabled:
            return _no_login(auth)
        form = await request.post()
        name = str(form.get("name", "")).strip()
        target = safe_next(form.get("next"))
        nonce = secrets.token_urlsafe(16)
        problem = user_name_problem(name)
        if problem is None and not auth.token_ok(str(form.get("token", ""))):
            problem = "wrong token"
        if problem is not None:
            status = 401 if problem == "wrong token" else 400
            return _login_response(render_login(title, target, error=problem.capitalize() + ".", name=name[:128],
                                                nonce=nonce), nonce, status)
        response = _see_other(target)
        set_session_cookie(response, request, auth.issue(name, "login", time.time()))
        return response

    async def logout(request: web.Request) -> web.StreamResponse:
        who = auth.identify(request.headers, request.cookies.get(SESSION_COOKIE), time.time())
        form = await request.post()
        given = request.headers.get(CSRF_HEADER) or str(form.get("csrf", ""))
        if who is None or not who.ambient or not auth.csrf_ok(who, given):
            return _json({"error": "sign-out needs the page's CSRF token"}, 403)
        request[_CLEAR_COOKIE] = True
        return _see_other("/login" if auth.login_enabled else "/")

    return show, submit, logout


__all__ = ["middleware", "login_handlers", "render_login", "page_csrf", "identity", "set_session_cookie",
           "PROBE", "LOGIN", "USER", "INTERNAL", "IDENTITY"]
