"""A small HTTP client for the web-access tests: plain urllib, no redirects followed, the session cookie
kept by hand (so a test sees exactly what the server set), any ``Host`` header on request."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

SESSION_COOKIE = "churnwatch_session"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebClient:
    """Requests to ``base`` (``http://127.0.0.1:PORT``); ``cookie`` is the session cookie once set."""

    base: str
    cookie: str | None = None
    set_cookie: SimpleCookie = field(default_factory=SimpleCookie)

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                form: dict[str, str] | None = None, timeout: float = 10.0) -> Reply:
        data = urllib.parse.urlencode(form).encode() if form is not None else (b"" if method == "POST" else None)
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=dict(headers or {}))
        if form is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        if self.cookie is not None and "Cookie" not in (headers or {}):
            req.add_header("Cookie", f"{SESSION_COOKIE}={self.cookie}")
        try:
            with _opener.open(req, timeout=timeout) as r:
                reply = Reply(r.status, r.headers, r.read())
        except urllib.error.HTTPError as exc:
            reply = Reply(exc.code, exc.headers, exc.read())
        for raw in reply.headers.get_all("Set-Cookie") or []:
            jar = SimpleCookie()
            jar.load(raw)
            if SESSION_COOKIE in jar:
                self.set_cookie = jar
                self.cookie = jar[SESSION_COOKIE].value or None
        return reply

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Reply:
        return self.request("POST", path, **kw)

    def login(self, name: str, token: str, next_path: str = "/") -> Reply:
        return self.post("/login", form={"name": name, "token": token, "next": next_path})

    def page_csrf(self, headers: dict[str, str] | None = None) -> str:
        """Load the inbox page and read the CSRF token it embeds for this session."""
        page = self.get("/", headers=headers)
        assert page.status == 200, (page.status, page.text[:300])
        m = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
        assert m, page.text[:300]
        return m.group(1)
