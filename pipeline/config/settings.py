"""One settings object for every churnwatch component.

Values come from ``CHURNWATCH_*`` environment variables, then CLI flags override them. Keeping a
single frozen object means the worker, the demo, the simulator's producer and the tests all agree on
topic names and broker addresses without passing a dozen arguments around.

The object is a pydantic-settings model, so every value is typed and range-checked once, here, when
it is read: a port of 99999, a log level ``LOUD`` or a security protocol ``TLS-PLEASE`` stop the
command with one line naming the variable, instead of being accepted and failing later (or, worse,
silently falling back to a plaintext connection). A ``CHURNWATCH_*`` variable that names no setting is
refused too, with the closest real name: a misspelt variable is otherwise a setting that silently
keeps its default.

Secrets (``sasl_password``, ``ssl_key_password``, ``webhook_url``, ``inbox_token``) are ``SecretStr``:
their repr is masked, ``churnwatch config`` masks them, and error messages never quote them.
"""

from __future__ import annotations

import contextvars
import difflib
import ipaddress
import os
import re
import socket
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from pipeline.config.hosts import split_host

if TYPE_CHECKING:
    from pipeline.core.features import FeatureConfig

ENV_PREFIX = "CHURNWATCH_"

#: Logical input sources, in the order the worker subscribes to them.
INPUT_SOURCES = ("customers", "interactions", "tickets", "surveys", "outcomes")

#: Addresses that mean "every interface": not an address another worker can connect to.
_ANY_ADDRESS = frozenset({"0.0.0.0", "::", "[::]", ""})


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message is one line for the user."""


class _Choice(str, Enum):
    """An enumeration whose members are their own (upper-case) text, in f-strings and comparisons."""

    __str__ = str.__str__
    __format__ = str.__format__

    @classmethod
    def names(cls) -> str:
        return ", ".join(m.value for m in cls)


class SecurityProtocol(_Choice):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def uses_tls(self) -> bool:
        return self in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)

    @property
    def uses_sasl(self) -> bool:
        return self in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)


class SaslMechanism(_Choice):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"
    OAUTHBEARER = "OAUTHBEARER"


class LogLevel(_Choice):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class LogFormat(_Choice):
    TEXT = "text"
    JSON = "json"


_SECRETS = frozenset({"sasl_password", "ssl_key_password", "webhook_url", "inbox_token"})
_BOOLS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
_INT = re.compile(r"^[+-]?\d+$")
#: An HTTP header name (RFC 9110 token).
_HEADER = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(:\d{1,5})?$")
_HOSTNAME = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)$")
#: Headers that can never be the one naming the user (the request's own, or churnwatch's).
_RESERVED_HEADERS = frozenset({"host", "authorization", "cookie", "origin", "referer", "content-type",
                               "content-length", "transfer-encoding", "connection", "x-churnwatch-csrf",
                               "x-churnwatch-worker"})


def _port(default: int, description: str, *, zero: str = "") -> Any:
    """A TCP port field: 1..65535, or 0..65535 when 0 has a meaning (``zero`` says which)."""
    return Field(default, ge=0 if zero else 1, le=65535, description=description,
                 json_schema_extra={"zero": zero} if zero else None)


def _seconds(default: float, description: str, *, zero: str = "") -> Any:
    """A duration: > 0, or >= 0 when 0 has a meaning (``zero`` says which)."""
    return Field(default, **({"ge": 0.0} if zero else {"gt": 0.0}), description=description,
                 json_schema_extra={"zero": zero} if zero else None)


class Settings(BaseSettings):
    """Everything configurable. Field ``foo_bar`` is read from ``CHURNWATCH_FOO_BAR``; the field
    descriptions are the README's settings table (``python -m pipeline.config.settings --readme``)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, case_sensitive=False, env_ignore_empty=True, frozen=True, extra="forbid",
        allow_inf_nan=False, validate_default=False, hide_input_in_errors=True,
    )

    # ---- where and what ---------------------------------------------------------------------------
    broker: str = Field("kafka://127.0.0.1:9092",
                        description="Kafka bootstrap servers (`kafka://h1:9092,kafka://h2:9092`)")
    partitions: int = Field(4, ge=1, le=10_000, description=(
        "partitions of every topic (input topics must be co-partitioned); the most workers that can share the load"))
    replication_factor: int | None = Field(None, ge=1, le=32_767, description=(
        "replication factor of every topic churnwatch creates (input, output, state changelog, Faust's "
        "assignor topic); empty: min(3, brokers in the cluster), so 1 on the embedded broker and 3 on a "
        "cluster of three or more"), json_schema_extra={"shown": "min(3, brokers)"})
    min_insync_replicas: int | None = Field(None, ge=1, le=32_767, description=(
        "`min.insync.replicas` of every topic churnwatch creates; empty: replication factor − 1, at least 1 "
        "and at most 2 (rf 3 → 2, so one broker may be down and `acks=all` writes still succeed; rf 1 or 2 → 1)"),
        json_schema_extra={"shown": "max(1, min(2, rf − 1))"})
    topic_prefix: str = Field("churn.", description=(
        "topic names are prefix + `interactions`, `tickets`, `surveys`, `customers`, `outcomes`, `alerts`, "
        "`deadletter`, `scores`"))
    app_id: str = Field("churnwatch", min_length=1, description=(
        "Faust app id = consumer group; also names the state changelog topic"))
    models_dir: Path = Field(Path("models"), description="model registry directory")
    data_dir: Path = Field(Path(".churnwatch"), description="worker and demo working files (logs, Faust data)")

    # ---- the worker's own ports -------------------------------------------------------------------
    metrics_port: int = _port(9108, "Prometheus metrics port of a worker", zero="any free port")
    metrics_host: str = Field("127.0.0.1", min_length=1, description="metrics bind address (`0.0.0.0` in containers)")
    #: The worker's web server (CSM customer view, routed to the worker owning the customer).
    web_port: int = _port(6066, (
        "the worker's web server: `GET /customers/{id}/` (JSON: current features, score, top reasons, open "
        "alert, alert history, rules fired, events `applied` per source), routed to the worker that owns the "
        "customer (503 with a JSON `reason` during a takeover); `GET /health` (liveness) and `GET /ready` "
        "(readiness: partitions assigned, state restored, broker answered within 10 s, promoted model loaded, "
        "no batch stuck; 503 with the failing checks otherwise)"))
    web_host: str = Field("127.0.0.1", min_length=1, description="web bind address")
    web_advertised_host: str = Field("", description=(
        "the address other workers use to reach this worker's web port (requests for a customer are routed "
        "to its owner); empty: `CHURNWATCH_WEB_HOST`, or the machine's host name when that is `0.0.0.0` "
        "(a container's name on its network)"))
    log_level: LogLevel = Field(LogLevel.WARNING, description=(
        "worker log level: DEBUG, INFO, WARNING, ERROR, CRITICAL (Faust at DEBUG costs ~20% throughput)"))
    log_format: LogFormat = Field(LogFormat.TEXT, description=(
        "worker log lines on stderr: `text` (`[time] [pid] [LEVEL] logger: message`; the level is coloured only "
        "when stderr is a terminal) or `json` (one object a line: `ts`, `level`, `logger`, `message`, `exception` "
        "when there is a traceback), for every logger: churnwatch's, Faust's, aiokafka's, Python warnings. "
        "Neither writes terminal escape codes (Faust's own colours and start-up spinner are off)"))

    # ---- event contract ---------------------------------------------------------------------------
    max_future_s: float = _seconds(86_400.0, "events further ahead of the wall clock are dead-lettered (`ts_in_future`)")
    min_event_year: int = Field(2000, ge=1970, le=2100, description=(
        "events before this year are dead-lettered (`ts_too_old`)"))
    allowed_lateness_days: int = Field(90, ge=1, le=3650, description=(
        "late events within this many days of a customer's newest event update their day bucket; older ones "
        "are dead-lettered (`too_late`). Also how long a customer remembers the ids of applied events (dedup; "
        "~12 bytes of state per event)"))
    max_event_bytes: int = Field(65_536, ge=1, description="larger messages are dead-lettered (`too_large`)")

    # ---- models and alerts ------------------------------------------------------------------------
    model_poll_s: float = _seconds(5.0, "how often a worker checks the registry for a newly promoted model")
    model_check_timeout_s: float = _seconds(30.0, (
        "a promoted model is first validated in a child process (LightGBM parse, every tree's structure, "
        "feature names against the metadata, probe rows); a crash, a hang past this timeout or a failed check "
        "rejects it (log line + `churnwatch_model_reload_failures_total{reason}`) and the worker keeps its "
        "model. `churnwatch models promote` runs the same check"))
    emit_scores: bool = Field(False, description=(
        "publish every scoring (feature vector, score, offsets) to `churn.scores`"))
    policy_file: str = Field("", description=(
        "alert policy file (TOML): thresholds, minimum history for model alerts, hysteresis, cool-down, plays, "
        "rules — see [`docs/alerts.md`](docs/alerts.md)"))
    webhook_url: SecretStr = Field(SecretStr(""), description=(
        "also POST every alert to this chat incoming webhook (Slack, Mattermost, Teams connector): `text` is a "
        "readable summary, `alert` the full record; a secret: masked by `churnwatch config`, only its host is "
        "ever logged"), json_schema_extra={"shown": "(none: off)"})
    webhook_timeout_s: float = _seconds(5.0, "timeout of one POST attempt")
    webhook_max_attempts: int = Field(5, ge=1, le=100, description=(
        "attempts per alert on 5xx, 408, 429, timeouts and connection errors (other 4xx: no retry); then it "
        "goes to `churn.deadletter` as `webhook_failed`"))
    webhook_backoff_s: float = _seconds(0.5, (
        "base of the exponential backoff between attempts (doubling, jittered, capped at 30 s; `Retry-After` "
        "honoured)"), zero="retry at once")
    webhook_queue_size: int = Field(1000, ge=1, description=(
        "alerts waiting for the webhook; when full the oldest is dropped and counted (the alert topic still has "
        "them all)"))

    # ---- the silence sweep and event clocks -------------------------------------------------------
    sweep_interval_days: float = _seconds(1.0, (
        "silence sweep: every this many days of *event time* on a partition, re-score its quiet customers"))
    sweep_idle_days: float = _seconds(1.0, "a customer is \"quiet\" after this many event-time days without events")
    realtime_idle_s: float = _seconds(60.0, (
        "after this many wall seconds with no event on a partition, its event clock follows the wall clock (so "
        "silent customers are re-scored in real time too)"))
    behaviour_lag_s: float = _seconds(86_400.0, (
        "a model alert (and the risk-based renewal rule) waits while the newest interaction read on the "
        "partition is more than this far behind the newest event of any kind read on it, e.g. topics read "
        "unevenly during a backfill or an interaction producer that is down: otherwise every customer would "
        "look silent. The customer is re-judged when the interactions catch up (next event or sweep)"),
        zero="the guard is off")

    # ---- consumer group ---------------------------------------------------------------------------
    session_timeout_s: float = _seconds(10.0, "consumer-group session timeout: short, so a rebalance takes seconds")
    heartbeat_s: float = _seconds(1.0, "consumer-group heartbeat interval (below the session timeout)")
    rebalance_timeout_s: float = _seconds(10.0, "consumer-group rebalance timeout")

    # ---- Kafka connection and security ------------------------------------------------------------
    connect_timeout_s: float = _seconds(10.0, (
        "every command that talks to the broker first checks, within this many seconds, that it can connect, "
        "complete the TLS handshake and authenticate, and otherwise stops with one line saying which failed"))
    security_protocol: SecurityProtocol = Field(SecurityProtocol.PLAINTEXT, description=(
        "`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL` (any case)"))
    ssl_cafile: str = Field("", description=(
        "CA bundle (PEM) that signed the brokers' certificates; empty: the system's trusted CAs"))
    ssl_certfile: str = Field("", description="client certificate (PEM) for mutual TLS; may also hold its key")
    ssl_keyfile: str = Field("", description="client private key (PEM), when not in `CHURNWATCH_SSL_CERTFILE`")
    ssl_key_password: SecretStr = Field(SecretStr(""), description=(
        "password of the client private key; a secret"), json_schema_extra={"shown": "(none)"})
    ssl_check_hostname: bool = Field(True, description=(
        "check that a broker's certificate names the host connected to (turn off only for brokers reached by "
        "an address their certificate does not list)"))
    sasl_mechanism: SaslMechanism | None = Field(None, description=(
        "with a `SASL_*` protocol: `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` (user name and password) or "
        "`OAUTHBEARER` (token file)"), json_schema_extra={"shown": "(none)"})
    sasl_username: str = Field("", description="SASL user name (PLAIN, SCRAM)")
    sasl_password: SecretStr = Field(SecretStr(""), description=(
        "SASL password (PLAIN, SCRAM); a secret"), json_schema_extra={"shown": "(none)"})
    sasl_oauth_token_file: str = Field("", description=(
        "OAUTHBEARER: file holding the access token, read again at every authentication, so whatever renews "
        "the token (a sidecar, a cron job) only rewrites the file"))

    # ---- who may use the inbox and the worker web (pipeline.web.webauth) --------------------------------
    inbox_token: SecretStr = Field(SecretStr(""), description=(
        "shared secret of the inbox and the worker web (at least 16 printable ASCII characters, no spaces): "
        "browsers sign in once on `/login` with a name and the token, API clients send `Authorization: Bearer "
        "<token>`; set the same value on every inbox and worker. Empty: no sign-in (then loopback binds only). "
        "A secret: masked by `churnwatch config`"), json_schema_extra={"shown": "(none)"})
    trusted_user_header: str = Field("", description=(
        "header a reverse proxy in front (oauth2-proxy, an OIDC ingress) sets to the signed-in user, e.g. "
        "`X-Forwarded-User`; empty: trust no header. Believed from whoever sends it: only the proxy may reach "
        "the port, and it must overwrite the header clients send"))
    allowed_hosts: str = Field("", description=(
        "comma-separated `host` or `host:port` names the inbox and the worker web answer to besides `localhost`, "
        "`127.0.0.1`, `[::1]` (any port), their bind address with its port and (worker) its advertised address; "
        "any other `Host` gets 421 (DNS rebinding)"))

    # ---- validation -------------------------------------------------------------------------------
    @field_validator("*", mode="before")
    @classmethod
    def _parse_text(cls, value: Any, info: Any) -> Any:
        """Text from the environment: trimmed (not secrets), integers strictly (``4.0`` is not a
        partition count), booleans as 1/0, true/false, yes/no, on/off, choices in any case."""
        if not isinstance(value, str):
            return value
        name = info.field_name
        if name in _SECRETS:
            return value
        text = value.strip()
        kind = _kind(name)
        if text == "" and Settings.model_fields[name].default is None:
            return None
        if kind is bool:
            word = text.lower()
            if word not in _BOOLS:
                raise ValueError("must be 1/0, true/false, yes/no or on/off")
            return _BOOLS[word]
        if kind is int and not _INT.match(text):
            raise ValueError("must be an integer")
        if kind is float:
            try:
                float(text)
            except ValueError:
                raise ValueError("must be a number") from None
        if isinstance(kind, type) and issubclass(kind, _Choice):
            for member in kind:
                if member.value.upper() == text.upper().replace("_", "-") or member.name == text.upper():
                    return member
            raise ValueError(f"must be one of {kind.names()}")
        return text

    @field_validator("broker")
    @classmethod
    def _check_broker(cls, value: str) -> str:
        parts = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
        if not parts or "://" not in parts[0]:
            raise ValueError("must look like kafka://host:port[,kafka://host:port]")
        for part in parts:
            scheme, _, address = part.rpartition("://")
            host, colon, port_text = address.rpartition(":")  # host:port or [v6]:port; a bare v6 has no port
            bracketed = host.startswith("[") and host.endswith("]")
            if colon and host and not port_text.isdigit() and (bracketed or ":" not in host):
                raise ValueError(f"port of {address} is not a number (a port is 1..65535)")
            if scheme not in ("", "kafka", "aiokafka") or not _HOST.match(address):
                raise ValueError("must look like kafka://host:port[,kafka://host:port]")
            port = address.rsplit(":", 1)[1] if ":" in address and not address.endswith("]") else None
            if port is not None and not 1 <= int(port) <= 65535:
                raise ValueError(f"port of {address} must be 1..65535")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if url:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must look like https://host/path (value not shown: it is a secret)")
        return value

    @field_validator("inbox_token")
    @classmethod
    def _check_token(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value()
        if token and (len(token) < 16 or not all("!" <= c <= "~" for c in token)):
            raise ValueError("must be at least 16 printable ASCII characters without spaces "
                             "(value not shown: it is a secret)")
        return value

    @field_validator("trusted_user_header")
    @classmethod
    def _check_header(cls, value: str) -> str:
        if value and (not _HEADER.match(value) or value.lower() in _RESERVED_HEADERS):
            raise ValueError(f"must be an HTTP header name such as X-Forwarded-User, got {value!r}")
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, value: str) -> str:
        for host in _split_hosts(value):
            if not _HOST.match(host) or split_host(host) is None:
                raise ValueError(f"must be comma-separated host or host:port values, got {host!r}")
        return value

    @field_validator("web_advertised_host")
    @classmethod
    def _check_advertised(cls, value: str) -> str:
        if not value:
            return value
        try:
            address = ipaddress.ip_address(value.strip("[]"))
        except ValueError:
            address = None
        if value in _ANY_ADDRESS or (address is not None and address.is_unspecified) \
                or (address is None and not _HOSTNAME.match(value)):
            raise ValueError(f"must be a host name or address other workers can connect to, got {value!r}")
        return value

    @model_validator(mode="after")
    def _check_combinations(self) -> "Settings":
        """Settings that are valid alone but not together; each message names both variables."""
        def env(name: str) -> str:
            return ENV_PREFIX + name.upper()

        p = self.security_protocol
        if self.heartbeat_s >= self.session_timeout_s:
            raise ValueError(f"{env('heartbeat_s')}: must be below {env('session_timeout_s')} "
                             f"({self.heartbeat_s:g} >= {self.session_timeout_s:g})")
        if (self.replication_factor is not None and self.min_insync_replicas is not None
                and self.min_insync_replicas > self.replication_factor):
            raise ValueError(f"{env('min_insync_replicas')}: {self.min_insync_replicas} is more than "
                             f"{env('replication_factor')} {self.replication_factor} (acks=all writes would all fail)")
        if p.uses_sasl and self.sasl_mechanism is None:
            raise ValueError(f"{env('sasl_mechanism')}: {env('security_protocol')}={p} needs one of "
                             f"{SaslMechanism.names()}")
        if not p.uses_sasl:
            for name in ("sasl_mechanism", "sasl_username", "sasl_password", "sasl_oauth_token_file"):
                if _is_set(getattr(self, name)):
                    raise ValueError(f"{env(name)}: is set but {env('security_protocol')}={p} does not use SASL "
                                     f"(SASL_PLAINTEXT or SASL_SSL)")
        if not p.uses_tls:
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_key_password"):
                if _is_set(getattr(self, name)):
                    raise ValueError(f"{env(name)}: is set but {env('security_protocol')}={p} does not use TLS "
                                     f"(SSL or SASL_SSL)")
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ValueError(f"{env('ssl_keyfile')}: needs {env('ssl_certfile')} (the client certificate)")
        if _is_set(self.ssl_key_password) and not (self.ssl_keyfile or self.ssl_certfile):
            raise ValueError(f"{env('ssl_key_password')}: is set but there is no client key "
                             f"({env('ssl_certfile')}, {env('ssl_keyfile')})")
        m = self.sasl_mechanism
        if m in (SaslMechanism.PLAIN, SaslMechanism.SCRAM_SHA_256, SaslMechanism.SCRAM_SHA_512):
            if not self.sasl_username or not _is_set(self.sasl_password):
                raise ValueError(f"{env('sasl_mechanism')}={m} needs {env('sasl_username')} and {env('sasl_password')}")
            if self.sasl_oauth_token_file:
                raise ValueError(f"{env('sasl_oauth_token_file')}: is only used with {env('sasl_mechanism')}=OAUTHBEARER")
        if m is SaslMechanism.OAUTHBEARER:
            if not self.sasl_oauth_token_file:
                raise ValueError(f"{env('sasl_mechanism')}=OAUTHBEARER needs {env('sasl_oauth_token_file')}")
            if self.sasl_username or _is_set(self.sasl_password):
                raise ValueError(f"{env('sasl_username')}/{env('sasl_password')}: are not used with OAUTHBEARER "
                                 f"(the token file is)")
        return self

    # ---- sources: only the mapping from_env was given, never os.environ behind the caller's back ----
    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        env = _ENV.get()
        if env is None:  # Settings(...) directly: the defaults and the given values only
            return (init_settings,)
        return init_settings, _MappingEnvSource(settings_cls, env)

    # ---- derived names -------------------------------------------------------------------------
    def topic(self, source: str) -> str:
        """Topic name of a logical source, e.g. ``interactions`` -> ``churn.interactions``."""
        return f"{self.topic_prefix}{source}"

    @property
    def input_topics(self) -> dict[str, str]:
        return {src: self.topic(src) for src in INPUT_SOURCES}

    @property
    def alerts_topic(self) -> str:
        return self.topic("alerts")

    @property
    def deadletter_topic(self) -> str:
        return self.topic("deadletter")

    @property
    def scores_topic(self) -> str:
        return self.topic("scores")

    @property
    def state_table(self) -> str:
        return "customer_state"

    @property
    def changelog_topic(self) -> str:
        return f"{self.app_id}-{self.state_table}-changelog"

    @property
    def assignor_topic(self) -> str:
        """Faust's leader-election topic (one partition); churnwatch creates it, so it is replicated too."""
        return f"{self.app_id}-__assignor-__leader"

    @property
    def bootstrap_servers(self) -> str:
        """``host:port[,host:port]`` for plain Kafka clients (kafka-python, aiokafka)."""
        return ",".join(
            part.strip().split("://", 1)[-1] for part in self.broker.replace(";", ",").split(",") if part.strip()
        )

    @property
    def web_advertised_url(self) -> str:
        """``http://host:port`` other workers use to reach this worker's web server."""
        host = self.web_advertised_host
        if not host:
            host = socket.gethostname() if self.web_host in _ANY_ADDRESS else self.web_host
        if ":" in host and not host.startswith("["):  # an IPv6 address
            host = f"[{host}]"
        return f"http://{host}:{self.web_port}"

    @property
    def allowed_host_list(self) -> tuple[str, ...]:
        """``allowed_hosts`` parsed: lower-case ``Host`` header values, in order; empty: only the defaults
        (loopback names, the bind and advertised addresses: see :mod:`pipeline.web.webauth`)."""
        return tuple(_split_hosts(self.allowed_hosts))

    # ---- construction --------------------------------------------------------------------------
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Build from environment variables, then apply non-None ``overrides`` (CLI flags).

        An empty variable means the default. Raises :class:`SettingsError` (one line naming the variable)
        for a bad value, a bad combination, or a ``CHURNWATCH_*`` variable that names no setting."""
        env = os.environ if env is None else env
        _refuse_unknown(env)
        given = {k: v for k, v in overrides.items() if v is not None}
        for name in given:
            if name not in cls.model_fields:
                raise SettingsError(f"unknown setting {name!r}")
        token = _ENV.set(dict(env))
        try:
            return cls(**given)
        except ValidationError as exc:
            raise SettingsError(_one_line(exc, flags=set(given))) from None
        finally:
            _ENV.reset(token)

    def with_(self, **changes: Any) -> "Settings":
        """A validated copy with ``changes`` applied (keyword names are field names)."""
        for name in changes:
            if name not in type(self).model_fields:
                raise SettingsError(f"unknown setting {name!r}")
        values = {name: getattr(self, name) for name in type(self).model_fields if name in self.model_fields_set}
        values.update(changes)
        try:
            return type(self)(**values)
        except ValidationError as exc:
            raise SettingsError(_one_line(exc)) from None

    def feature_config(self) -> "FeatureConfig":
        """The feature settings, from here only: the worker, training and replay all take them from
        this, and a model records them (a worker refuses a model trained with others)."""
        from pipeline.core.features import FeatureConfig

        return FeatureConfig(allowed_lateness_days=self.allowed_lateness_days)

    # ---- documentation and child environments ---------------------------------------------------
    @classmethod
    def documented(cls) -> list[tuple[str, str]]:
        """(environment variable, default) pairs, for the README and ``churnwatch config``; an unset
        optional value is shown as the empty string."""
        return [(ENV_PREFIX + name.upper(), _text(field.default)) for name, field in cls.model_fields.items()]

    @classmethod
    def is_secret(cls, name: str) -> bool:
        return name in _SECRETS

    def shown(self, name: str) -> str:
        """A value as ``churnwatch config`` prints it: secrets masked when set."""
        value = getattr(self, name)
        if name in _SECRETS:
            return "********" if _is_set(value) else ""
        return _text(value)

    def to_env(self) -> dict[str, str]:
        """``CHURNWATCH_*`` variables that rebuild these settings in a child process. Secrets are in
        clear text: this is for a child's environment, never for printing."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            out[ENV_PREFIX + name.upper()] = value.get_secret_value() if isinstance(value, SecretStr) else _text(value)
        return out

    @classmethod
    def markdown_table(cls) -> str:
        """The README's settings table, from the field descriptions."""
        rows = ["| variable | default | meaning |", "|---|---|---|"]
        for name, field in cls.model_fields.items():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            default = extra.get("shown") or _text(field.default)
            shown = default if default.startswith("(") else f"`{default}`" if default else "(none)"
            meaning = field.description or ""
            if extra.get("zero"):
                meaning += f"; `0`: {extra['zero']}"
            rows.append(f"| `{ENV_PREFIX}{name.upper()}` | {shown} | {meaning} |")
        return "\n".join(rows) + "\n"


# ---- helpers ----------------------------------------------------------------------------------------
_ENV: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("churnwatch_settings_env", default=None)


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of ``os.environ``, so
    ``from_env(env)`` reads exactly ``env`` (tests, child processes) and nothing else."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._mapping = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {(k if self.case_sensitive else k.lower()): v for k, v in self._mapping.items()
                if not (self.env_ignore_empty and v == "")}


def _kind(name: str) -> Any:
    """The plain type of a field (``int | None`` -> int)."""
    annotation = Settings.model_fields[name].annotation
    args = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
    return args[0] if args else annotation


def _is_set(value: Any) -> bool:
    if isinstance(value, SecretStr):
        return bool(value.get_secret_value())
    return value is not None and value != ""


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return "" if not value.get_secret_value() else "********"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _split_hosts(value: str) -> list[str]:
    return [h.strip().lower() for h in value.split(",") if h.strip()]


def _refuse_unknown(env: Mapping[str, str]) -> None:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    for key in env:
        upper = key.upper()
        if upper.startswith(ENV_PREFIX) and key not in known:
            if upper in known:
                raise SettingsError(f"{key}: churnwatch variables are upper case: did you mean {upper}?")
            # compare what follows the prefix: the shared CHURNWATCH_ would make anything look close
            near = difflib.get_close_matches(upper[len(ENV_PREFIX):], sorted(k[len(ENV_PREFIX):] for k in known),
                                             n=1, cutoff=0.6)
            hint = f": did you mean {ENV_PREFIX}{near[0]}?" if near else " (see 'churnwatch config' for the settings)"
            raise SettingsError(f"{key}: not a churnwatch setting{hint}")


def _bounds(name: str) -> str:
    """``1..65535``, ``> 0``, ``>= 0`` … from a field's constraints."""
    lo = hi = None
    strict = False
    for m in Settings.model_fields[name].metadata:
        if getattr(m, "ge", None) is not None:
            lo = m.ge
        if getattr(m, "gt", None) is not None:
            lo, strict = m.gt, True
        if getattr(m, "le", None) is not None:
            hi = m.le
    lo_text = _text(lo) if lo is not None else None
    if lo is not None and hi is not None and not strict:
        return f"{lo_text}..{_text(hi)}"
    if lo is not None:
        return f"{'>' if strict else '>='} {lo_text}" + (f" and <= {_text(hi)}" if hi is not None else "")
    return f"<= {_text(hi)}"


def _one_line(exc: ValidationError, flags: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    """The first error of a validation as ``CHURNWATCH_X: must be …, got …`` (secrets never quoted)."""
    err = exc.errors(include_url=False)[0]
    loc = [str(part) for part in err.get("loc", ()) if part != "__root__"]
    msg = err.get("msg", "invalid")
    msg = msg.removeprefix("Value error, ")
    if not loc:  # a model validator: the message names its variables
        return _flat(msg)
    name = loc[0]
    where = ENV_PREFIX + name.upper()
    if name in flags:
        where += f" (--{name.replace('_', '-')})"
    if name not in Settings.model_fields:
        return _flat(f"unknown setting {name!r}")
    kind = err.get("type", "")
    raw = err.get("input")
    secret = name in _SECRETS
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        extra = Settings.model_fields[name].json_schema_extra
        zero = extra.get("zero") if isinstance(extra, dict) else None
        text = f"must be {_bounds(name)}" + (f" (0: {zero})" if zero else "")
        return _flat(f"{where}: {text}" + ("" if secret else f", got {_text(_number(raw))}"))
    if kind in ("string_too_short",):
        return _flat(f"{where}: must not be empty")
    if kind in ("int_parsing", "int_type", "int_from_float"):
        msg = "must be an integer"
    elif kind in ("float_parsing", "float_type", "finite_number"):
        msg = "must be a finite number"
    elif kind == "enum":
        msg = f"must be one of {_kind(name).names()}"
    if secret or raw is None or kind == "value_error" and "got " in msg:
        return _flat(f"{where}: {msg}")
    return _flat(f"{where}: {msg}, got {raw!r}" if isinstance(raw, str) else f"{where}: {msg}, got {_text(raw)}")


def _number(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return int(raw.strip())
        except ValueError:
            try:
                return float(raw.strip())
            except ValueError:
                return raw
    return raw


def _flat(text: str) -> str:
    return " ".join(text.split())


# ---- README table ---------------------------------------------------------------------------------
README_BEGIN = "<!-- settings table: generated by `python -m pipeline.config.settings --readme`, do not edit -->"
README_END = "<!-- end of settings table -->"


def readme_with_table(text: str) -> str:
    """``text`` (the README) with its settings table replaced by :meth:`Settings.markdown_table`."""
    head, sep, rest = text.partition(README_BEGIN)
    if not sep or README_END not in rest:
        raise SettingsError(f"README has no settings table markers ({README_BEGIN!r} … {README_END!r})")
    return head + README_BEGIN + "\n" + Settings.markdown_table() + README_END + rest.split(README_END, 1)[1]


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.config.settings [--readme [PATH]]``: print the table, or rewrite it in the README."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--readme":
        path = Path(args[1]) if len(args) > 1 else Path(__file__).resolve().parents[2] / "README.md"
        path.write_text(readme_with_table(path.read_text()))
        print(f"updated the settings table in {path}")
        return 0
    sys.stdout.write(Settings.markdown_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
