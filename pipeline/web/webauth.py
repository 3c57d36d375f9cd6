"""Who may use the inbox and the worker web: the decisions, with no server in them.

Both web servers (``churnwatch inbox`` and the worker's Faust web server) ask this module the same
questions, so they answer them the same way; :mod:`pipeline.web.webguard` is the thin aiohttp layer that
asks. Everything here is a pure function of its arguments (plus the clock passed in), so it is
unit-tested without a server.

Three modes, from the settings:

* **token** (``CHURNWATCH_INBOX_TOKEN``): a browser signs in once on ``/login`` with a name and the
  token and then holds a session cookie (HttpOnly, SameSite=Strict) signed with an HMAC key derived from
  the token, so every inbox replica and every worker sharing the token accepts it; API clients send
  ``Authorization: Bearer <token>`` instead. The name given at login is the user, and it is inside the
  signed cookie: the client cannot change it afterwards.
* **proxy** (``CHURNWATCH_TRUSTED_USER_HEADER``, e.g. ``X-Forwarded-User``): a reverse proxy in front
  (oauth2-proxy, an OIDC-aware ingress) authenticates and names the user in that header. The server
  believes the header from whoever sends it, so *only the proxy may be able to reach the port*, and the
  proxy must overwrite the header a client sends. A request carrying the header twice is refused.
* **open** (neither): no login, but then the servers only bind loopback (:func:`check_bind`).

Whatever the mode, the ``Host`` header must name this server (:meth:`WebAuth.host_allowed`): a
DNS-rebinding page reaches the port under its own host name, and that is what stops it. A
state-changing request from a browser (a cookie, the proxy's cookie behind the header, or a loopback
browser in open mode: credentials the browser attaches by itself) must carry the CSRF token of its
session in ``X-Churnwatch-CSRF``; a cross-site page can neither read that token nor send the header
without a CORS preflight, which these servers never grant. Bearer requests need no CSRF token: a
browser never adds an ``Authorization`` header by itself.

Worker to worker: a worker forwarding the customer view to the worker that owns the customer, and any
call of Faust's internal ``/router/`` and ``/table/`` routes, proves membership of the worker group
with ``X-Churnwatch-Worker`` carrying a key derived from the shared token (:attr:`WebAuth.worker_key`);
see :mod:`pipeline.web.webguard` for why that and not a network rule.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
from dataclasses import dataclass
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

from pipeline.config.fields import SettingsError
from pipeline.config.hosts import norm_host_name, split_host
from pipeline.config.settings import Settings

#: The session cookie (one name for the inbox and the worker web: in token mode either accepts the other's).
SESSION_COOKIE = "churnwatch_session"
#: The header a state-changing browser request carries its session's CSRF token in.
CSRF_HEADER = "X-Churnwatch-CSRF"
#: The header a worker proves membership of the worker group with.
WORKER_HEADER = "X-Churnwatch-Worker"
#: A session lasts this long after sign-in (then the page asks to sign in again).
SESSION_MAX_AGE_S = 12 * 3600
#: Longest user name (login form or proxy header).
MAX_USER_LEN = 128
#: The user an API client with the bearer token acts as (it has no name of its own to give).
API_USER = "api"
#: The user a forwarded request from another worker acts as.
WORKER_USER = "worker"
#: Host names always allowed: a DNS-rebinding page cannot make a browser send these for its own origin.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_MAX_COOKIE = 4096


# ---- hosts ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HostRule:
    """One allowed ``Host``: a name (IPv6 in brackets), and a port, or ``None`` for any port."""

    name: str
    port: int | None = None

    def matches(self, name: str, port: int | None) -> bool:
        return self.name == name and (self.port is None or self.port == port)


def parse_host_list(text: str) -> tuple[HostRule, ...]:
    """``CHURNWATCH_ALLOWED_HOSTS``: comma-separated ``host`` or ``host:port``; raises ValueError."""
    rules = []
    for part in text.split(","):
        if not part.strip():
            continue
        parsed = split_host(part)
        if parsed is None or "/" in part or "@" in part:
            raise ValueError(f"{part.strip()[:80]!r} is not a host name, host:port, or [IPv6]:port")
        rules.append(HostRule(*parsed))
    return tuple(rules)


def is_loopback_bind(host: str) -> bool:
    """True when a listen address only accepts connections from this machine."""
    h = host.strip().lower().strip("[]")
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False  # "" (every interface), a wildcard, or a name that may resolve anywhere


def bind_rule(host: str, port: int) -> HostRule | None:
    """The ``Host`` a client uses when it names the listen address itself (none for a wildcard bind)."""
    h = host.strip().lower().strip("[]")
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        norm = norm_host_name(h)
        return HostRule(norm, port or None) if norm else None
    if ip.is_unspecified:
        return None
    name = f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
    return HostRule(name, port or None)


def check_bind(settings: Settings, host: str, what: str) -> None:
    """Refuse a non-loopback listen address when nothing would ask who is calling."""
    if is_loopback_bind(host) or settings.inbox_token.get_secret_value() or settings.trusted_user_header:
        return
    raise SettingsError(f"refusing to serve the {what} on {host or '*'!r} without CHURNWATCH_INBOX_TOKEN or "
                        "CHURNWATCH_TRUSTED_USER_HEADER: anyone reaching it would see every alert "
                        "(bind 127.0.0.1, or set one of them)")


# ---- small checks ---------------------------------------------------------------------------------------
def user_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a user name (login form, proxy header), or None when it can."""
    if not name:
        return "a name is required"
    if len(name) > MAX_USER_LEN:
        return f"the name is longer than {MAX_USER_LEN} characters"
    if not name.isprintable():
        return "the name must not contain control characters"
    return None


def safe_next(target: Any) -> str:
    """Where to go after signing in: a path on this server, never another site (``//evil``, ``https:``)."""
    if not isinstance(target, str) or not target.startswith("/") or target.startswith(("//", "/\\")) \
            or len(target) > 2048 or not target.isprintable():
        return "/"
    return target


def same_origin(origin: str, host: str) -> bool:
    """Whether an ``Origin`` header names the server the request's ``Host`` names."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # "null" (a sandboxed page, a file://) included
    return parts.netloc.lower() == host.strip().lower()


def _headers_get_all(headers: Mapping[str, str], name: str) -> list[str]:
    """Every value of header ``name`` (case-insensitive) in a plain or multi-valued mapping."""
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return list(getall(name, []))
    want = name.lower()
    return [v for k, v in headers.items() if k.lower() == want]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    values = _headers_get_all(headers, name)
    return values[0] if values else None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# ---- sessions and identities -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Session:
    """What the signed cookie holds. ``kind`` says how it was issued: ``login`` (token sign-in: it
    authenticates by itself), ``proxy`` or ``open`` (only a CSRF anchor for a user the proxy names, or
    for the loopback browser of an open server: never a credential on its own)."""

    user: str
    sid: str
    kind: str
    issued_s: int


@dataclass(frozen=True)
class Identity:
    """Who a request is from. ``via``: ``session``, ``proxy``, ``open`` (credentials a browser sends by
    itself: state changes need the CSRF token), ``bearer`` or ``worker`` (an explicit header: no CSRF)."""

    user: str
    via: str
    session: Session | None = None

    @property
    def ambient(self) -> bool:
        return self.via in ("session", "proxy", "open")


class WebAuth:
    """The access rules of one web server (see the module docstring). Build with :meth:`for_server`."""

    def __init__(self, token: str = "", trusted_header: str = "", allowed: Iterable[HostRule] = (),
                 key: bytes | None = None) -> None:
        self._token = token.encode("utf-8")
        self.trusted_header = trusted_header
        self.allowed = tuple(HostRule(n) for n in LOOPBACK_NAMES) + tuple(allowed)
        if key is None:
            # token mode: every server sharing the token shares the key; otherwise one per process
            key = hmac.new(self._token, b"churnwatch session key v1", hashlib.sha256).digest() if token \
                else secrets.token_bytes(32)
        self._key = key
        self._worker_key = hmac.new(self._token, b"churnwatch worker key v1", hashlib.sha256).hexdigest() \
            if token else ""

    @classmethod
    def for_server(cls, settings: Settings, host: str, port: int, what: str,
                   extra: Iterable[HostRule | None] = (), enforce_bind: bool = True) -> "WebAuth":
        """The rules of a server listening on ``host:port``; raises SettingsError for an unguarded
        non-loopback bind (unless ``enforce_bind`` is off: the caller checks when it starts serving).
        Allowed hosts: the loopback names (any port), the bind address with the port,
        ``CHURNWATCH_ALLOWED_HOSTS`` and ``extra`` (a worker's advertised address)."""
        if enforce_bind:
            check_bind(settings, host, what)
        rules = [r for r in (bind_rule(host, port),) if r is not None]
        try:
            rules += parse_host_list(settings.allowed_hosts)
        except ValueError as exc:
            raise SettingsError(f"allowed_hosts: {exc}") from None
        return cls(settings.inbox_token.get_secret_value(), settings.trusted_user_header,
                   [*rules, *(r for r in extra if r is not None)])

    def __repr__(self) -> str:
        return f"WebAuth(mode={self.mode!r}, allowed={[r.name for r in self.allowed]!r})"

    # -- what is configured ------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """``token``, ``proxy``, ``token+proxy`` or ``open``."""
        parts = [m for m, on in (("token", self._token), ("proxy", self.trusted_header)) if on]
        return "+".join(parts) or "open"

    @property
    def login_enabled(self) -> bool:
        """A sign-in page exists (token mode)."""
        return bool(self._token)

    @property
    def worker_key(self) -> str:
        """What a worker sends in :data:`WORKER_HEADER` (empty without a token: no worker credential)."""
        return self._worker_key

    def forward_headers(self, identity: Identity | None) -> dict[str, str]:
        """Headers a worker adds when it forwards a request to another worker of the group."""
        if self._worker_key:
            return {WORKER_HEADER: self._worker_key}
        if self.trusted_header and identity is not None and identity.via == "proxy":
            return {self.trusted_header: identity.user}  # peers trust the header as they trust the proxy
        return {}

    # -- checks ----------------------------------------------------------------------------------------
    def host_allowed(self, host: str | None) -> bool:
        """Whether a request's ``Host`` header names this server."""
        if not host:
            return False
        parsed = split_host(host)
        return parsed is not None and any(rule.matches(*parsed) for rule in self.allowed)

    def token_ok(self, given: str | None) -> bool:
        """The shared token, compared in constant time (never true when none is configured)."""
        if not self._token or not isinstance(given, str):
            return False
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self._token)

    def is_worker(self, headers: Mapping[str, str]) -> bool:
        given = _headers_get_all(headers, WORKER_HEADER)
        return bool(self._worker_key) and len(given) == 1 and \
            hmac.compare_digest(given[0].encode("utf-8", "surrogateescape"), self._worker_key.encode())

    # -- sessions --------------------------------------------------------------------------------------
    def issue(self, user: str, kind: str, now_s: float) -> str:
        """A signed session cookie value for ``user``."""
        payload = _b64(json.dumps({"u": user, "s": secrets.token_urlsafe(18), "k": kind, "t": int(now_s)},
                                  separators=(",", ":")).encode("utf-8"))
        return f"{payload}.{self._mac(b'session', payload)}"

    def session(self, value: str | None, now_s: float) -> Session | None:
        """The session a cookie value holds, if its signature is ours and it has not expired."""
        if not value or len(value) > _MAX_COOKIE or value.count(".") != 1:
            return None
        payload, mac = value.split(".")
        if not hmac.compare_digest(mac.encode("ascii", "replace"), self._mac(b"session", payload).encode()):
            return None
        try:
            data = json.loads(_unb64(payload))
            user, sid, kind, issued = data["u"], data["s"], data["k"], data["t"]
        except (ValueError, KeyError, TypeError):
            return None
        if not (isinstance(user, str) and isinstance(sid, str) and isinstance(kind, str) and isinstance(issued, int)):
            return None
        if not issued - 60 <= now_s <= issued + SESSION_MAX_AGE_S:
            return None
        return Session(user, sid, kind, issued)

    def csrf_token(self, session: Session) -> str:
        """The CSRF token of a session (derived, so nothing server-side needs remembering)."""
        return self._mac(b"csrf", session.sid)

    def csrf_ok(self, identity: Identity, given: str | None) -> bool:
        """Whether a state-changing request from ``identity`` carries its session's CSRF token."""
        s = identity.session
        if s is None or not isinstance(given, str) or s.user != identity.user:
            return False
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self.csrf_token(s).encode())

    def _mac(self, purpose: bytes, text: str) -> str:
        return _b64(hmac.new(self._key, purpose + b"\x00" + text.encode("utf-8", "surrogateescape"),
                             hashlib.sha256).digest())

    # -- who is calling --------------------------------------------------------------------------------
    def identify(self, headers: Mapping[str, str], cookie: str | None, now_s: float,
                 worker_ok: bool = False) -> Identity | None:
        """Who sent a request (None: nobody this server accepts).

        Order: another worker (``worker_ok`` servers only), the proxy's header, a bearer token (a wrong
        one is a refusal, never a fall-back to the cookie), a token sign-in session, open mode.
        """
        if worker_ok and self.is_worker(headers):
            return Identity(WORKER_USER, "worker")
        if self.trusted_header:
            named = _headers_get_all(headers, self.trusted_header)
            if named:
                user = named[0].strip()
                if len(named) != 1 or user_name_problem(user):
                    return None
                s = self.session(cookie, now_s)
                return Identity(user, "proxy", s if s is not None and s.kind == "proxy" and s.user == user else None)
        auth = _header(headers, "Authorization")
        if self._token and auth is not None:
            scheme, _, credential = auth.strip().partition(" ")
            if scheme.lower() == "bearer" and self.token_ok(credential.strip()):
                return Identity(API_USER, "bearer")
            return None
        s = self.session(cookie, now_s)
        if self._token and s is not None and s.kind == "login":
            return Identity(s.user, "session", s)
        if not self._token and not self.trusted_header:
            return Identity("", "open", s if s is not None and s.kind == "open" else None)
        return None

    def page_session(self, identity: Identity, now_s: float) -> tuple[Session | None, str | None]:
        """The session whose CSRF token a page served to ``identity`` embeds, and a new cookie value to
        set when the browser has none for this user yet (first visit behind the proxy, open mode).
        (None, None) for bearer and worker requests: they send no cookie and need no CSRF token."""
        if not identity.ambient:
            return None, None
        if identity.session is not None:
            return identity.session, None
        value = self.issue(identity.user, "proxy" if identity.via == "proxy" else "open", now_s)
        return self.session(value, now_s), value

__all__ = ["WebAuth", "Identity", "Session", "HostRule", "check_bind", "parse_host_list",
           "is_loopback_bind", "bind_rule", "safe_next", "same_origin", "user_name_problem", "SESSION_COOKIE",
           "CSRF_HEADER", "WORKER_HEADER", "SESSION_MAX_AGE_S", "API_USER", "WORKER_USER", "UNSAFE_METHODS"]
