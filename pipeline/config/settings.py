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

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from pipeline.config.checks import (check_advertised, check_broker, check_combinations, check_header, check_hosts,
                                    check_token, check_webhook)
from pipeline.config.environment import one_line, parse_text, reading, refuse_unknown, sources
from pipeline.config.fields import (ENV_PREFIX, SECRETS, LogFormat, LogLevel, SaslMechanism, SecurityProtocol,
                                    SettingsError, StateStoreKind, as_text, is_set, port_field, seconds_field)
from pipeline.config.hosts import ANY_ADDRESS, split_host_list

if TYPE_CHECKING:
    from pipeline.core.features import FeatureConfig

#: Logical input sources, in the order the worker subscribes to them.
INPUT_SOURCES = ("customers", "interactions", "tickets", "surveys", "outcomes")


class Settings(BaseSettings):
    """Everything configurable. Field ``foo_bar`` is read from ``CHURNWATCH_FOO_BAR``; the field
    descriptions are the README's settings table (``python -m pipeline.config.settings_table --readme``)."""

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
    data_dir: Path = Field(Path(".churnwatch"), description=(
        "worker and demo working files: logs, Faust data, and the worker's local state store "
        "(`state/<changelog topic>/slot-<K>/p<N>.sqlite3`: workers sharing the directory each take a free slot)"))
    state_store: StateStoreKind = Field(StateStoreKind.DISK, description=(
        "where a worker keeps customer states: `disk` (a SQLite file per partition under the data directory, "
        "backed up by the changelog; a restart on the same disk reads only the changelog's tail) or `memory` "
        "(every state in RAM, rebuilt from the whole changelog on each start)"))
    state_cache_mb: int = Field(64, ge=1, le=65_536, description=(
        "memory a `disk` state store may cache, MiB, shared by the partitions a worker owns (the OS page "
        "cache keeps more of the files warm outside the process)"))

    # ---- the worker's own ports -------------------------------------------------------------------
    metrics_port: int = port_field(9108, "Prometheus metrics port of a worker", zero="any free port")
    metrics_host: str = Field("127.0.0.1", min_length=1, description="metrics bind address (`0.0.0.0` in containers)")
    #: The worker's web server (CSM customer view, routed to the worker owning the customer).
    web_port: int = port_field(6066, (
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
    max_future_s: float = seconds_field(86_400.0, "events further ahead of the wall clock are dead-lettered (`ts_in_future`)")
    min_event_year: int = Field(2000, ge=1970, le=2100, description=(
        "events before this year are dead-lettered (`ts_too_old`)"))
    allowed_lateness_days: int = Field(90, ge=1, le=3650, description=(
        "late events within this many days of a customer's newest event update their day bucket; older ones "
        "are dead-lettered (`too_late`). Also how long a customer remembers the ids of applied events (dedup; "
        "~12 bytes of state per event)"))
    max_event_bytes: int = Field(65_536, ge=1, description="larger messages are dead-lettered (`too_large`)")

    # ---- models and alerts ------------------------------------------------------------------------
    model_poll_s: float = seconds_field(5.0, "how often a worker checks the registry for a newly promoted model")
    model_check_timeout_s: float = seconds_field(30.0, (
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
    webhook_timeout_s: float = seconds_field(5.0, "timeout of one POST attempt")
    webhook_max_attempts: int = Field(5, ge=1, le=100, description=(
        "attempts per alert on 5xx, 408, 429, timeouts and connection errors (other 4xx: no retry); then it "
        "goes to `churn.deadletter` as `webhook_failed`"))
    webhook_backoff_s: float = seconds_field(0.5, (
        "base of the exponential backoff between attempts (doubling, jittered, capped at 30 s; `Retry-After` "
        "honoured)"), zero="retry at once")
    webhook_queue_size: int = Field(1000, ge=1, description=(
        "alerts waiting for the webhook; when full the oldest is dropped and counted (the alert topic still has "
        "them all)"))

    # ---- the silence sweep and event clocks -------------------------------------------------------
    sweep_interval_days: float = seconds_field(1.0, (
        "silence sweep: every this many days of *event time* on a partition, re-score its quiet customers"))
    sweep_idle_days: float = seconds_field(1.0, "a customer is \"quiet\" after this many event-time days without events")
    realtime_idle_s: float = seconds_field(60.0, (
        "after this many wall seconds with no event on a partition, its event clock follows the wall clock (so "
        "silent customers are re-scored in real time too)"))
    behaviour_lag_s: float = seconds_field(86_400.0, (
        "a model alert (and the risk-based renewal rule) waits while the newest interaction read on the "
        "partition is more than this far behind the newest event of any kind read on it, e.g. topics read "
        "unevenly during a backfill or an interaction producer that is down: otherwise every customer would "
        "look silent. The customer is re-judged when the interactions catch up (next event or sweep)"),
        zero="the guard is off")

    # ---- consumer group ---------------------------------------------------------------------------
    session_timeout_s: float = seconds_field(10.0, "consumer-group session timeout: short, so a rebalance takes seconds")
    heartbeat_s: float = seconds_field(1.0, "consumer-group heartbeat interval (below the session timeout)")
    rebalance_timeout_s: float = seconds_field(10.0, "consumer-group rebalance timeout")
    fetch_max_wait_ms: int = Field(50, ge=1, le=10_000, description=(
        "longest the worker's consumer lets the broker hold a fetch while waiting for data: Kafka answers as "
        "soon as data arrives, but a broker that holds every fetch to this limit (the embedded Tansu holds "
        "about half of it) adds it to every event's latency; Faust's own fixed value is 1,500 ms"))

    # ---- Kafka connection and security ------------------------------------------------------------
    connect_timeout_s: float = seconds_field(10.0, (
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

    # ---- validation: the rules are in pipeline.config.checks ---------------------------------------
    @field_validator("*", mode="before")
    @classmethod
    def _parse_text(cls, value: Any, info: Any) -> Any:
        return parse_text(cls.model_fields, info.field_name, value)

    _check_broker = field_validator("broker")(staticmethod(check_broker))
    _check_webhook = field_validator("webhook_url")(staticmethod(check_webhook))
    _check_token = field_validator("inbox_token")(staticmethod(check_token))
    _check_header = field_validator("trusted_user_header")(staticmethod(check_header))
    _check_hosts = field_validator("allowed_hosts")(staticmethod(check_hosts))
    _check_advertised = field_validator("web_advertised_host")(staticmethod(check_advertised))

    @model_validator(mode="after")
    def _check_combinations(self) -> "Settings":
        """Settings that are valid alone but not together; each message names both variables."""
        check_combinations(self)
        return self

    # ---- sources: only the mapping from_env was given, never os.environ behind the caller's back ----
    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return sources(settings_cls, init_settings)

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
            host = socket.gethostname() if self.web_host in ANY_ADDRESS else self.web_host
        if ":" in host and not host.startswith("["):  # an IPv6 address
            host = f"[{host}]"
        return f"http://{host}:{self.web_port}"

    @property
    def allowed_host_list(self) -> tuple[str, ...]:
        """``allowed_hosts`` parsed: lower-case ``Host`` header values, in order; empty: only the defaults
        (loopback names, the bind and advertised addresses: see :mod:`pipeline.web.webauth`)."""
        return tuple(split_host_list(self.allowed_hosts))

    # ---- construction --------------------------------------------------------------------------
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Build from environment variables, then apply non-None ``overrides`` (CLI flags).

        An empty variable means the default. Raises :class:`SettingsError` (one line naming the variable)
        for a bad value, a bad combination, or a ``CHURNWATCH_*`` variable that names no setting."""
        env = os.environ if env is None else env
        refuse_unknown(cls.model_fields, env)
        given = {k: v for k, v in overrides.items() if v is not None}
        for name in given:
            if name not in cls.model_fields:
                raise SettingsError(f"unknown setting {name!r}")
        try:
            with reading(env):
                return cls(**given)
        except ValidationError as exc:
            raise SettingsError(one_line(cls.model_fields, exc, flags=set(given))) from None

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
            raise SettingsError(one_line(type(self).model_fields, exc)) from None

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
        return [(ENV_PREFIX + name.upper(), as_text(field.default)) for name, field in cls.model_fields.items()]

    @classmethod
    def is_secret(cls, name: str) -> bool:
        return name in SECRETS

    def shown(self, name: str) -> str:
        """A value as ``churnwatch config`` prints it: secrets masked when set."""
        value = getattr(self, name)
        if name in SECRETS:
            return "********" if is_set(value) else ""
        return as_text(value)

    def to_env(self) -> dict[str, str]:
        """``CHURNWATCH_*`` variables that rebuild these settings in a child process. Secrets are in
        clear text: this is for a child's environment, never for printing."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            out[ENV_PREFIX + name.upper()] = value.get_secret_value() if isinstance(value, SecretStr) else as_text(value)
        return out
