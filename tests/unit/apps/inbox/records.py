"""Alert and outcome records shaped like those on the topics, for the inbox's unit tests."""

from __future__ import annotations

import itertools
from typing import Any, Sequence

from apps.inbox.view import InboxState
from pipeline.core.contract import format_ts

T0 = 1_718_452_800_000  # 2024-06-15T12:00:00Z
HOUR = 3_600_000
_n = itertools.count()
#: A reason, tier, CSM... as someone with produce rights on the alert topic could write it.
EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def alert(cid: str, score: float | None, ts_ms: int = T0, *, tier: str = "standard", csm: str = "alice",
          kind: str = "new", trigger: str = "event", aid: str | None = None, reasons: Sequence[str] = ("logins down",),
          play: str = "Guided training") -> dict[str, Any]:
    """An alert record shaped like ``Alert.to_json`` (score None as orjson writes a rule alert's NaN)."""
    return {"alert_id": aid or f"a{next(_n)}", "customer_id": cid, "tier": tier, "csm": csm, "score": score,
            "threshold": 0.35 if tier == "vip" else 0.5, "band": "high", "trigger": trigger, "kind": kind,
            "reasons": [{"feature": "f", "value": 1.0, "contribution": 0.1, "category": "adoption", "text": t}
                        for t in reasons],
            "play": play, "model_version": "v1", "event_time": format_ts(ts_ms), "emit_time": format_ts(ts_ms + 5)}


def outcome(cid: str, typ: str, ts_ms: int = T0 + HOUR, alert_id: str | None = None) -> dict[str, Any]:
    o = {"event_id": f"o{next(_n)}", "customer_id": cid, "ts": format_ts(ts_ms), "type": typ, "schema_version": 1}
    if alert_id is not None:
        o["alert_id"] = alert_id
    return o


def ids(state: InboxState, **kw: Any) -> list[str]:
    return [a["customer_id"] for a in state.open_alerts(**kw)]

