"""The rules a setting's value, or a combination of values, must satisfy.

Each check raises ``ValueError`` with the message the user sees (turned into one line naming the variable
by :func:`pipeline.config.environment.one_line`); a secret's value is never quoted. They are plain
functions the :class:`~pipeline.config.settings.Settings` validators call, so the model's module holds the
settings themselves and this one the reasons a value is refused.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from pipeline.config.fields import ENV_PREFIX, SaslMechanism, is_set
from pipeline.config.hosts import ANY_ADDRESS, HOST_NAME, HOST_PORT, split_host, split_host_list


#: An HTTP header name (RFC 9110 token).
_HEADER = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
#: Headers that can never be the one naming the user (the request's own, or churnwatch's).
_RESERVED_HEADERS = frozenset({"host", "authorization", "cookie", "origin", "referer", "content-type",
                               "content-length", "transfer-encoding", "connection", "x-churnwatch-csrf",
                               "x-churnwatch-worker"})


def check_broker(value: str) -> str:
    parts = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
    if not parts or "://" not in parts[0]:
        raise ValueError("must look like kafka://host:port[,kafka://host:port]")
    for part in parts:
        scheme, _, address = part.rpartition("://")
        host, colon, port_text = address.rpartition(":")  # host:port or [v6]:port; a bare v6 has no port
        bracketed = host.startswith("[") and host.endswith("]")
        if colon and host and not port_text.isdigit() and (bracketed or ":" not in host):
            raise ValueError(f"port of {address} is not a number (a port is 1..65535)")
        if scheme not in ("", "kafka", "aiokafka") or not HOST_PORT.match(address):
            raise ValueError("must look like kafka://host:port[,kafka://host:port]")
        port = address.rsplit(":", 1)[1] if ":" in address and not address.endswith("]") else None
        if port is not None and not 1 <= int(port) <= 65535:
            raise ValueError(f"port of {address} must be 1..65535")
    return value


def check_webhook(value: SecretStr) -> SecretStr:
    url = value.get_secret_value()
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must look like https://host/path (value not shown: it is a secret)")
    return value


def check_token(value: SecretStr) -> SecretStr:
    token = value.get_secret_value()
    if token and (len(token) < 16 or not all("!" <= c <= "~" for c in token)):
        raise ValueError("must be at least 16 printable ASCII characters without spaces "
                         "(value not shown: it is a secret)")
    return value


def check_header(value: str) -> str:
    if value and (not _HEADER.match(value) or value.lower() in _RESERVED_HEADERS):
        raise ValueError(f"must be an HTTP header name such as X-Forwarded-User, got {value!r}")
    return value


def check_hosts(value: str) -> str:
    for host in split_host_list(value):
        if not HOST_PORT.match(host) or split_host(host) is None:
            raise ValueError(f"must be comma-separated host or host:port values, got {host!r}")
    return value


def check_advertised(value: str) -> str:
    if not value:
        return value
    try:
        address = ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        address = None
    if value in ANY_ADDRESS or (address is not None and address.is_unspecified) \
            or (address is None and not HOST_NAME.match(value)):
        raise ValueError(f"must be a host name or address other workers can connect to, got {value!r}")
    return value


def check_combinations(s: Any) -> None:
    """Settings that are valid alone but not together; each message names both variables.

    ``s`` is the :class:`~pipeline.config.settings.Settings` being validated, read by attribute: the model
    imports this module, so this module does not import the model back."""
    def env(name: str) -> str:
        return ENV_PREFIX + name.upper()

    p = s.security_protocol
    if s.heartbeat_s >= s.session_timeout_s:
        raise ValueError(f"{env('heartbeat_s')}: must be below {env('session_timeout_s')} "
                         f"({s.heartbeat_s:g} >= {s.session_timeout_s:g})")
    if (s.replication_factor is not None and s.min_insync_replicas is not None
            and s.min_insync_replicas > s.replication_factor):
        raise ValueError(f"{env('min_insync_replicas')}: {s.min_insync_replicas} is more than "
                         f"{env('replication_factor')} {s.replication_factor} (acks=all writes would all fail)")
    if p.uses_sasl and s.sasl_mechanism is None:
        raise ValueError(f"{env('sasl_mechanism')}: {env('security_protocol')}={p} needs one of "
                         f"{SaslMechanism.names()}")
    if not p.uses_sasl:
        for name in ("sasl_mechanism", "sasl_username", "sasl_password", "sasl_oauth_token_file"):
            if is_set(getattr(s, name)):
                raise ValueError(f"{env(name)}: is set but {env('security_protocol')}={p} does not use SASL "
                                 f"(SASL_PLAINTEXT or SASL_SSL)")
    if not p.uses_tls:
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_key_password"):
            if is_set(getattr(s, name)):
                raise ValueError(f"{env(name)}: is set but {env('security_protocol')}={p} does not use TLS "
                                 f"(SSL or SASL_SSL)")
    if s.ssl_keyfile and not s.ssl_certfile:
        raise ValueError(f"{env('ssl_keyfile')}: needs {env('ssl_certfile')} (the client certificate)")
    if is_set(s.ssl_key_password) and not (s.ssl_keyfile or s.ssl_certfile):
        raise ValueError(f"{env('ssl_key_password')}: is set but there is no client key "
                         f"({env('ssl_certfile')}, {env('ssl_keyfile')})")
    m = s.sasl_mechanism
    if m in (SaslMechanism.PLAIN, SaslMechanism.SCRAM_SHA_256, SaslMechanism.SCRAM_SHA_512):
        if not s.sasl_username or not is_set(s.sasl_password):
            raise ValueError(f"{env('sasl_mechanism')}={m} needs {env('sasl_username')} and {env('sasl_password')}")
        if s.sasl_oauth_token_file:
            raise ValueError(f"{env('sasl_oauth_token_file')}: is only used with {env('sasl_mechanism')}=OAUTHBEARER")
    if m is SaslMechanism.OAUTHBEARER:
        if not s.sasl_oauth_token_file:
            raise ValueError(f"{env('sasl_mechanism')}=OAUTHBEARER needs {env('sasl_oauth_token_file')}")
        if s.sasl_username or is_set(s.sasl_password):
            raise ValueError(f"{env('sasl_username')}/{env('sasl_password')}: are not used with OAUTHBEARER "
                             f"(the token file is)")
