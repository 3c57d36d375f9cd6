"""Host names as the settings and the web servers compare them.

``CHURNWATCH_ALLOWED_HOSTS`` is checked when the settings are read, and the same parsing decides, per
request, whether a ``Host`` header is allowed (:mod:`pipeline.web.webauth`); one parser in the settings'
own package keeps the two from disagreeing about what a valid host is.
"""

from __future__ import annotations

import ipaddress
import re

_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$")


def norm_host_name(name: str) -> str | None:
    """A host name or address as compared: lower case, no trailing dot, IPv6 compressed in brackets."""
    name = name.strip().lower().rstrip(".")
    if name.startswith("["):
        if not name.endswith("]"):
            return None
        try:
            return f"[{ipaddress.IPv6Address(name[1:-1]).compressed}]"
        except ValueError:
            return None
    if not name or len(name) > 253:
        return None
    try:
        return str(ipaddress.IPv4Address(name))
    except ValueError:
        pass
    if not all(_LABEL.match(label) for label in name.split(".")):
        return None
    return name


def split_host(value: str) -> tuple[str, int | None] | None:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> (normalised name, port); None if malformed."""
    value = value.strip()
    port: int | None = None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[:end + 1], value[end + 1:]
        if rest:
            if not rest.startswith(":"):
                return None
            port_text = rest[1:]
        else:
            port_text = None
    elif value.count(":") == 1:
        name, port_text = value.split(":")
    elif ":" in value:
        return None  # a bare IPv6 address: a Host header must bracket it
    else:
        name, port_text = value, None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None
        port = int(port_text)
    norm = norm_host_name(name)
    return None if norm is None else (norm, port)


# ---- the settings' host values ------------------------------------------------------------------------
#: Addresses that mean "every interface": not an address another worker can connect to.
ANY_ADDRESS = frozenset({"0.0.0.0", "::", "[::]", ""})
#: ``host`` or ``host:port`` (a broker address, an allowed host).
HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(:\d{1,5})?$")
#: A host without a port (an advertised address).
HOST_NAME = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)$")


def split_host_list(value: str) -> list[str]:
    """A comma-separated list of hosts, trimmed and lower-cased, empty items dropped."""
    return [h.strip().lower() for h in value.split(",") if h.strip()]
