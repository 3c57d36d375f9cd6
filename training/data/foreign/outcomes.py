"""The last part of every converted log: one ``customers`` profile per account, then the ``churned`` and
``renewed`` outcomes in time order (from a churn table or from inactivity alike)."""

from __future__ import annotations

from typing import IO, Any, Iterable, Mapping

from pipeline.core.contract import DAY_MS, SCHEMA_VERSION, format_ts
from training.data.foreign.cells import json_line, parse_number, stable_event_id
from training.data.foreign.mapping import ForeignMapping
from training.data.foreign.stats import ConvertStats


def write_outcomes(included: Iterable[str], signup: Mapping[str, int], attrs: Mapping[str, dict[str, Any]],
                    outcomes: list[tuple[str, int, str]], note: str, m: ForeignMapping,
                    seen: Mapping[str, list[Any]], start_ms: int, as_of: int, fh: IO[bytes],
                    stats: ConvertStats) -> None:
    """One profile per included account, then the outcomes in time order, and the churn bookkeeping
    the warnings read."""
    included = sorted(included)
    chunk: list[bytes] = []
    for account in included:
        record = _profile(account, signup[account], start_ms, as_of, m, seen.get(account), attrs.get(account), stats)
        chunk.append(json_line(record))
    for account, ts, typ in sorted(outcomes, key=lambda o: (o[1], o[0])):
        event_id = stable_event_id("c" if typ == "churned" else "r", f"{account}\x1f{ts}")
        chunk.append(json_line({"source": "outcomes", "event_id": event_id, "customer_id": account,
                            "ts": format_ts(ts), "type": typ,
                            "schema_version": SCHEMA_VERSION, "note": note}))
        if typ == "churned":
            stats.churned += 1
        else:
            stats.renewed += 1
    fh.write(b"".join(chunk))
    stats.accounts = len(included)
    stats.profiles = len(included)
    last_churn: dict[str, int] = {}
    for account, ts, typ in sorted(outcomes, key=lambda o: o[1]):
        if typ == "churned":
            last_churn[account] = ts
        else:
            last_churn.pop(account, None)
    stats.churned_accounts = len(last_churn)
    stats.usage_after_churn = sum(1 for acc, ts in last_churn.items()
                                  if acc in seen and seen[acc][1] > ts + DAY_MS)



def _profile(account: str, signup_ms: int, start_ms: int, as_of: int, m: ForeignMapping,
             usage: list[Any] | None, churn_attrs: dict[str, Any] | None, stats: ConvertStats) -> dict[str, Any]:
    """The account's profile, stamped no earlier than the usage window (see the package docstring)."""
    values: dict[str, Any] = dict(usage[2]) if usage else {}
    values.update(churn_attrs or {})
    record: dict[str, Any] = {"source": "customers", "event_id": stable_event_id("p", account), "customer_id": account,
                              "ts": format_ts(min(max(signup_ms, start_ms), as_of)), "type": "profile",
                              "schema_version": SCHEMA_VERSION, "signup_ts": format_ts(signup_ms),
                              "tier": str(values.get("tier", "")).strip().lower() or m.default_tier}
    if values.get("plan") is not None and str(values["plan"]).strip():
        record["plan"] = str(values["plan"]).strip().lower()
    if values.get("mrr") is not None:
        mrr = parse_number(values["mrr"])
        if mrr is not None and mrr >= 0:
            record["mrr"] = mrr
        else:
            stats.dropped["bad_mrr_value"] += 1
    return record

