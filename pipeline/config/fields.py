"""The kinds of value a setting can hold, and the one error every bad setting becomes.

The choices (security protocol, SASL mechanism, log level and format) are enumerations whose members are
their own text, so a setting prints, compares and formats as the word the user wrote. The field builders
give every port and every duration the same bounds and the same "what 0 means" note in the README.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import Field, SecretStr

ENV_PREFIX = "CHURNWATCH_"

#: Settings whose values are secrets: masked when shown, never quoted in an error.
SECRETS = frozenset({"sasl_password", "ssl_key_password", "webhook_url", "inbox_token"})


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message is one line for the user."""


class Choice(str, Enum):
    """An enumeration whose members are their own (upper-case) text, in f-strings and comparisons."""

    __str__ = str.__str__
    __format__ = str.__format__

    @classmethod
    def names(cls) -> str:
        return ", ".join(m.value for m in cls)


class SecurityProtocol(Choice):
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


class SaslMechanism(Choice):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"
    OAUTHBEARER = "OAUTHBEARER"


class LogLevel(Choice):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class LogFormat(Choice):
    TEXT = "text"
    JSON = "json"


class StateStoreKind(Choice):
    DISK = "disk"
    MEMORY = "memory"


def port_field(default: int, description: str, *, zero: str = "") -> Any:
    """A TCP port field: 1..65535, or 0..65535 when 0 has a meaning (``zero`` says which)."""
    return Field(default, ge=0 if zero else 1, le=65535, description=description,
                 json_schema_extra={"zero": zero} if zero else None)


def seconds_field(default: float, description: str, *, zero: str = "") -> Any:
    """A duration: > 0, or >= 0 when 0 has a meaning (``zero`` says which)."""
    return Field(default, **({"ge": 0.0} if zero else {"gt": 0.0}), description=description,
                 json_schema_extra={"zero": zero} if zero else None)


def is_set(value: Any) -> bool:
    if isinstance(value, SecretStr):
        return bool(value.get_secret_value())
    return value is not None and value != ""


def as_text(value: Any) -> str:
    """A value as the environment spells it: booleans 1/0, whole floats without ``.0``, secrets masked."""
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return "" if not value.get_secret_value() else "********"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
