"""One cell of a team's table -> the contract's value (account id, time, number, user id), and the
stable event ids and JSON lines the converted log is made of.

A bad *optional* cell (duration, user id, value) never costs the row: the readers here say what is wrong
and the caller keeps the row without that field.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any, Mapping

import orjson

from pipeline.core.contract import MAX_VALUE, InvalidEvent
from training.data.foreign.times import TimeReader

#: The contract's bounds on an interaction's ``user_id`` (checked here so a bad cell costs only the field).
MAX_USER_ID_LEN = 256
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def stable_event_id(kind: str, key: str) -> str:
    """``f<kind>-<hash>``: short, stable for the same input, and never colliding with native ids."""
    return f"f{kind}-{hashlib.blake2b(key.encode(), digest_size=10).hexdigest()}"


def read_account(value: Any, column: str) -> str:
    """An account id as the contract's string: numeric ids (Parquet ints, pandas floats) as digits."""
    if value is None:
        raise InvalidEvent("missing_field", f"{column} is empty")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if not text:
        raise InvalidEvent("missing_field", f"{column} is empty")
    return text


def read_time(reader: TimeReader, value: Any, column: str) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidEvent("missing_field", f"{column} is empty")
    try:
        return reader(value)
    except (ValueError, OverflowError, OSError) as exc:
        raise InvalidEvent("bad_timestamp", f"{column}: {exc}") from None


def optional_time(reader: TimeReader, value: Any, column: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return read_time(reader, value, column)


def parse_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    try:
        out = float(str(value).strip().replace(",", "")) if value is not None else None
    except ValueError:
        return None
    return out if out is not None and math.isfinite(out) else None


def parse_user_id(value: Any) -> tuple[str | None, str | None]:
    """(user id, None), (None, None) for an empty cell, or (None, reason) for one the contract would
    refuse — so the caller can keep the row and drop only the field."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None, f"a {type(value).__name__}, not an id"
    if isinstance(value, float):
        if not value.is_integer():
            return None, f"{value!r} is not an id"
        value = int(value)  # pandas reads integer ids of a column with gaps as floats
    text = str(value).strip()
    if not text:
        return None, None
    if len(text) > MAX_USER_ID_LEN:
        return None, f"{len(text)} characters (at most {MAX_USER_ID_LEN})"
    if _CONTROL.search(text):
        return None, "contains control characters"
    return text, None


def parse_value(value: Any) -> tuple[float | None, str | None]:
    """(number, None), or (None, ``value_not_a_number`` | ``value_out_of_range``)."""
    try:
        number = parse_number(value)
    except OverflowError:  # an integer too large for a float is still a number, just far out of range
        return None, "value_out_of_range"
    if number is None:
        return None, "value_not_a_number"
    if abs(number) > MAX_VALUE:
        return None, "value_out_of_range"
    return number, None


class TypeMapper:
    def __init__(self, type_map: Mapping[str, str]) -> None:
        self.exact = dict(type_map)
        self.folded = {k.lower(): v for k, v in type_map.items()}

    def __call__(self, raw: str) -> tuple[str, bool]:
        """(churnwatch type, mapped?)"""
        if raw in self.exact:
            return self.exact[raw], True
        hit = self.folded.get(raw.lower())
        return (hit, True) if hit is not None else (raw, False)


def json_line(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record) + b"\n"

