"""Readable terminal output for alerts: what a CSM glances at in the demo or ``churnwatch alerts``."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

from pipeline.core.alerting import ESCALATION, RULE

BAND_STYLE = {"critical": "bold red", "high": "yellow", "watch": "cyan"}


def alert_text(alert: dict[str, Any]) -> Text:
    band = alert.get("band", "high")
    t = Text()
    t.append(f"{alert.get('event_time', '')[:10]} ", style="dim")
    t.append(f"ALERT {band.upper():8}", style=BAND_STYLE.get(band, "bold"))
    t.append(f" {alert.get('customer_id')} ", style="bold")
    t.append(f"[{alert.get('tier')}, csm {alert.get('csm') or '-'}] ")
    score = alert.get("score")
    t.append(f"risk {score:.0%}" if isinstance(score, (int, float)) else "risk n/a", style="bold")
    t.append(f" (threshold {alert.get('threshold', 0):.0%}, {alert.get('trigger')}, model {alert.get('model_version')})")
    if alert.get("kind") == ESCALATION:
        t.append(" ESCALATED", style="bold magenta")
    elif alert.get("kind") == RULE:
        t.append(f" RULE {alert.get('trigger')}", style="bold blue")
    for r in alert.get("reasons", []):
        t.append(f"\n    - {r.get('text')}", style="cyan")
    if alert.get("play"):
        t.append(f"\n    play: {alert['play']}", style="green")
    return t


def print_alert(console: Console, alert: dict[str, Any]) -> None:
    console.print(alert_text(alert))


#: ``--csm`` value selecting alerts of customers without a CSM (as the inbox's ``?csm=-``).
UNASSIGNED = "-"


def split_values(values: list[str] | None) -> frozenset[str]:
    """``--tier a --tier b,c`` -> {a, b, c}, case-folded; empty: no filter."""
    return frozenset(v.strip().casefold() for text in values or () for v in text.split(",") if v.strip())


def matches(alert: Any, tiers: frozenset[str], csms: frozenset[str]) -> bool:
    """Whether an alert passes ``churnwatch alerts --tier/--csm``: any of the tiers and any of the CSMs
    given (case-insensitive, as the inbox's filters); an empty set lets every alert through."""
    if not isinstance(alert, dict):
        return not tiers and not csms
    if tiers and str(alert.get("tier") or "").casefold() not in tiers:
        return False
    if csms:
        csm = str(alert.get("csm") or "").casefold()
        if (csm or UNASSIGNED) not in csms:
            return False
    return True
