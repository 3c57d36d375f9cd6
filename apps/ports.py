"""Can this process listen on a port? Asked before a server starts, so a busy port is one line naming
the flag or variable to change, not a traceback from deep inside the web framework.

Faust starts the worker's web server from its own service tree: a port that is taken there ends the
worker with a 60-line traceback, after the broker connection and the topics were set up. The inbox's
aiohttp server fails as late, after announcing its address. Trying the bind first, the way those
servers bind (``SO_REUSEADDR``, so a socket of a just-stopped server in TIME_WAIT does not count as
busy), catches the common case: another worker or program already listening there. A port taken in the
moment between the check and the server's own bind still fails, later, as before.
"""

from __future__ import annotations

import errno
import socket


def bind_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (``address already in use``, …), or None if it can.
    Port 0 (any free port) always can."""
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve {host!r} ({exc.strerror or exc})"
    # every address the name resolves to: the servers listen on each of them
    for family, kind, proto, _name, address in dict.fromkeys(infos):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "address already in use"
            return (exc.strerror or str(exc)).lower()
        finally:
            sock.close()
    return None


def shown(host: str, port: int) -> str:
    """``host:port``, with brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


__all__ = ["bind_problem", "shown"]
