"""The dead-letter record: what the worker writes to ``churn.deadletter`` for a message it cannot use.

A rejected message is never dropped silently: its record keeps the reason, the detail, where it was
read, and the original bytes (as text when they are UTF-8 and short enough), so it can be inspected,
fixed and replayed. The record's shape is a wire format: consumers of the topic read these fields.
"""

from __future__ import annotations

import base64

import orjson

from pipeline.core.contract import one_line

#: Dead letters keep this much of the original message (``original`` as text, else ``original_b64``).
DEADLETTER_KEEP_BYTES = 65_536


def deadletter_record(raw: bytes | None, key: bytes | None, topic: str, partition: int, offset: int,
                      reason: str, detail: str, now_ms: int) -> bytes:
    """What lands on the dead-letter topic: enough to inspect, fix and replay the original message.

    A message that is not UTF-8, or longer than :data:`DEADLETTER_KEEP_BYTES`, keeps its first 64 KiB
    as ``original_b64`` (``original_bytes`` says how long it was)."""
    value = raw or b""
    try:
        text: str | None = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    keep_text = text is not None and len(value) <= DEADLETTER_KEEP_BYTES
    return orjson.dumps({
        "reason": reason,
        "detail": one_line(detail),  # an exception's text may hold newlines or lone surrogates
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": one_line(key.decode("utf-8", "replace")) if key else None,
        "original": text if keep_text else None,
        "original_b64": None if keep_text else base64.b64encode(value[:DEADLETTER_KEEP_BYTES]).decode(),
        "original_bytes": len(value),
        "rejected_ms": now_ms,
    })
