"""One settings object for every churnwatch component.

Values come from ``CHURNWATCH_*`` environment variables, then CLI flags override them. Keeping a
single frozen dataclass means the worker, the demo, the simulator's producer and the tests all agree on
topic names and broker addresses without passing a dozen arguments around.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from pipeline.features import FeatureConfig

ENV_PREFIX = "CHURNWATCH_"

#: Logical input sources, in the order the worker subscribes to them.
INPUT_SOURCES = ("customers", "interactions", "tickets", "surveys", "outcomes")


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class Settings:
    """Everything configurable. Field ``foo_bar`` is read from ``CHURNWATCH_FOO_BAR``."""

    broker: str = "kafka://127.0.0.1:9092"
    #: Partitions of every input topic (they must be co-partitioned) and of the state changelog.
    partitions: int = 4
    topic_prefix: str = "churn."
    app_id: str = "churnwatch"
    models_dir: Path = Path("models")
    data_dir: Path = Path(".churnwatch")
    metrics_port: int = 9108
    metrics_host: str = "127.0.0.1"
    #: The worker's web server (CSM customer view, routed to the worker owning the customer).
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    log_level: str = "WARNING"
    #: Events whose time is further than this ahead of the wall clock are rejected.
    max_future_s: float = 86_400.0
    #: Events older than this are rejected outright (clearly broken clocks).
    min_event_year: int = 2000
    #: Late events within this many days of a customer's newest event update their day bucket.
    allowed_lateness_days: int = 90
    #: Largest accepted raw payload in bytes.
    max_event_bytes: int = 65_536
    #: How often (wall seconds) a worker checks the registry for a newly promoted model.
    model_poll_s: float = 5.0
    #: A candidate model is validated in a child process (parse, feature names, probe rows); a check
    #: taking longer than this rejects it (a model that hangs LightGBM must not hang the worker).
    model_check_timeout_s: float = 30.0
    #: Also publish every scoring (features + score) to the scores topic, for parity checks and audits.
    emit_scores: bool = False
    #: Alert policy file (TOML; see docs/alerts.md). Empty: the documented defaults.
    policy_file: str = ""
    #: Optional chat webhook (Slack/Mattermost/Teams-style incoming webhook) for alerts; empty = off.
    #: The URL is usually a credential: it is masked by ``churnwatch config`` and never logged.
    webhook_url: str = field(default="", repr=False)
    #: Per-attempt timeout, attempts per alert, base of the exponential backoff, alerts held in memory.
    webhook_timeout_s: float = 5.0
    webhook_max_attempts: int = 5
    webhook_backoff_s: float = 0.5
    webhook_queue_size: int = 1000
    #: Silence sweep: every this many days of event time, re-score customers quiet for sweep_idle_days.
    sweep_interval_days: float = 1.0
    sweep_idle_days: float = 1.0
    #: After this many wall seconds without any event on a partition, its event clock follows the wall clock.
    realtime_idle_s: float = 60.0
    #: Model alerts wait while a partition's interaction stream lags the scoring time by more than this.
    behaviour_lag_s: float = 86_400.0
    #: Faust consumer group tuning: short timeouts so a rebalance takes seconds, not ~30 s.
    session_timeout_s: float = 10.0
    heartbeat_s: float = 1.0
    rebalance_timeout_s: float = 10.0
    #: Extra aiokafka/Faust security settings for managed clusters.
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    ssl_cafile: str = ""

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
    def bootstrap_servers(self) -> str:
        """``host:port[,host:port]`` for plain Kafka clients (kafka-python, aiokafka)."""
        return ",".join(
            part.split("://", 1)[-1] for part in self.broker.replace(";", ",").split(",") if part
        )

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """Security keyword arguments understood by kafka-python clients."""
        kwargs: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.sasl_mechanism:
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        if self.ssl_cafile:
            kwargs["ssl_cafile"] = self.ssl_cafile
        return kwargs

    # ---- construction --------------------------------------------------------------------------
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Build from environment variables, then apply non-None ``overrides`` (CLI flags)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _coerce(f.name, raw, f.default)
        for name, value in overrides.items():
            if value is not None:
                values[name] = _coerce(name, value, getattr(cls, name)) if isinstance(value, str) else value
        settings = cls(**values)
        settings.validate()
        return settings

    def with_(self, **changes: Any) -> "Settings":
        return replace(self, **changes)

    def validate(self) -> None:
        if self.partitions < 1:
            raise SettingsError(f"partitions must be >= 1, got {self.partitions}")
        if not (0 < self.metrics_port < 65536) and self.metrics_port != 0:
            raise SettingsError(f"metrics_port must be a TCP port, got {self.metrics_port}")
        if self.webhook_url:
            parts = urlsplit(self.webhook_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise SettingsError("webhook_url must look like https://host/path (value not shown: it is a secret)")
        if self.webhook_timeout_s <= 0 or self.webhook_max_attempts < 1 or self.webhook_backoff_s < 0 \
                or self.webhook_queue_size < 1:
            raise SettingsError("webhook_timeout_s must be > 0, webhook_max_attempts >= 1, "
                                "webhook_backoff_s >= 0 and webhook_queue_size >= 1")
        if not 1 <= self.allowed_lateness_days <= 3650:
            raise SettingsError(f"allowed_lateness_days must be 1..3650 (it also bounds the event-id memory), "
                                f"got {self.allowed_lateness_days}")
        if "://" not in self.broker:
            raise SettingsError(f"broker must look like kafka://host:port, got {self.broker!r}")

    def feature_config(self) -> "FeatureConfig":
        """The feature settings, from here only: the worker, training and replay all take them from
        this, and a model records them (a worker refuses a model trained with others)."""
        from pipeline.features import FeatureConfig

        return FeatureConfig(allowed_lateness_days=self.allowed_lateness_days)

    @classmethod
    def documented(cls) -> list[tuple[str, str]]:
        """(environment variable, default) pairs, for the README and ``churnwatch config``."""
        return [(ENV_PREFIX + f.name.upper(), str(f.default)) for f in fields(cls)]


_BOOLS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _coerce(name: str, raw: str, default: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        if isinstance(default, bool):
            word = raw.strip().lower()
            if word not in _BOOLS:
                raise ValueError(raw)
            return _BOOLS[word]
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(raw)
    except ValueError:
        raise SettingsError(f"{ENV_PREFIX}{name.upper()}: expected {type(default).__name__}, got {raw!r}") from None
    return raw
