"""Reading the settings from ``CHURNWATCH_*`` environment variables, and saying in one line what is wrong.

Everything here serves :meth:`Settings.from_env <pipeline.config.settings.Settings.from_env>`: the text of
a variable parsed strictly (``4.0`` is not a partition count), the environment read only from the mapping
the caller gave (never ``os.environ`` behind its back), a ``CHURNWATCH_*`` variable that names no setting
refused with the closest real name (a misspelt variable is otherwise a setting that silently keeps its
default), and a validation error turned into one line naming the variable, secrets never quoted. The
functions take the model's fields as an argument, so this module does not import the model.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import re
from typing import Any, Iterator, Mapping

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource

from pipeline.config.fields import ENV_PREFIX, SECRETS, Choice, SettingsError, as_text

_BOOLS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
_INT = re.compile(r"^[+-]?\d+$")

Fields = Mapping[str, FieldInfo]


# ---- text from the environment ------------------------------------------------------------------------
def kind(fields: Fields, name: str) -> Any:
    """The plain type of a field (``int | None`` -> int)."""
    annotation = fields[name].annotation
    args = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
    return args[0] if args else annotation


def parse_text(fields: Fields, name: str, value: Any) -> Any:
    """Text from the environment: trimmed (not secrets), integers strictly (``4.0`` is not a
    partition count), booleans as 1/0, true/false, yes/no, on/off, choices in any case."""
    if not isinstance(value, str):
        return value
    if name in SECRETS:
        return value
    text = value.strip()
    plain = kind(fields, name)
    if text == "" and fields[name].default is None:
        return None
    if plain is bool:
        word = text.lower()
        if word not in _BOOLS:
            raise ValueError("must be 1/0, true/false, yes/no or on/off")
        return _BOOLS[word]
    if plain is int and not _INT.match(text):
        raise ValueError("must be an integer")
    if plain is float:
        try:
            float(text)
        except ValueError:
            raise ValueError("must be a number") from None
    if isinstance(plain, type) and issubclass(plain, Choice):
        for member in plain:
            if member.value.upper() == text.upper().replace("_", "-") or member.name == text.upper():
                return member
        raise ValueError(f"must be one of {plain.names()}")
    return text


# ---- sources: only the mapping from_env was given, never os.environ behind the caller's back ----------
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


@contextlib.contextmanager
def reading(env: Mapping[str, str]) -> Iterator[None]:
    """Within this block, a settings model built reads ``env`` (see :func:`sources`)."""
    token = _ENV.set(dict(env))
    try:
        yield
    finally:
        _ENV.reset(token)


def sources(settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
    """The given values, then the mapping of the enclosing :func:`reading` block; outside one (a model
    built directly) the defaults and the given values only."""
    env = _ENV.get()
    if env is None:
        return (init_settings,)
    return init_settings, _MappingEnvSource(settings_cls, env)


def refuse_unknown(fields: Fields, env: Mapping[str, str]) -> None:
    """Raise :class:`SettingsError` for a ``CHURNWATCH_*`` variable that names no field, with the closest name."""
    known = {ENV_PREFIX + name.upper() for name in fields}
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


# ---- one line per error ---------------------------------------------------------------------------------
def _bounds(fields: Fields, name: str) -> str:
    """``1..65535``, ``> 0``, ``>= 0`` … from a field's constraints."""
    lo = hi = None
    strict = False
    for m in fields[name].metadata:
        if getattr(m, "ge", None) is not None:
            lo = m.ge
        if getattr(m, "gt", None) is not None:
            lo, strict = m.gt, True
        if getattr(m, "le", None) is not None:
            hi = m.le
    lo_text = as_text(lo) if lo is not None else None
    if lo is not None and hi is not None and not strict:
        return f"{lo_text}..{as_text(hi)}"
    if lo is not None:
        return f"{'>' if strict else '>='} {lo_text}" + (f" and <= {as_text(hi)}" if hi is not None else "")
    return f"<= {as_text(hi)}"


def one_line(fields: Fields, exc: ValidationError, flags: set[str] = frozenset()) -> str:  # type: ignore[assignment]
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
    if name not in fields:
        return _flat(f"unknown setting {name!r}")
    error_kind = err.get("type", "")
    raw = err.get("input")
    secret = name in SECRETS
    if error_kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        extra = fields[name].json_schema_extra
        zero = extra.get("zero") if isinstance(extra, dict) else None
        text = f"must be {_bounds(fields, name)}" + (f" (0: {zero})" if zero else "")
        return _flat(f"{where}: {text}" + ("" if secret else f", got {as_text(_number(raw))}"))
    if error_kind in ("string_too_short",):
        return _flat(f"{where}: must not be empty")
    if error_kind in ("int_parsing", "int_type", "int_from_float"):
        msg = "must be an integer"
    elif error_kind in ("float_parsing", "float_type", "finite_number"):
        msg = "must be a finite number"
    elif error_kind == "enum":
        msg = f"must be one of {kind(fields, name).names()}"
    if secret or raw is None or error_kind == "value_error" and "got " in msg:
        return _flat(f"{where}: {msg}")
    return _flat(f"{where}: {msg}, got {raw!r}" if isinstance(raw, str) else f"{where}: {msg}, got {as_text(raw)}")


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
