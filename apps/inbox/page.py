"""The inbox page: the open alerts as HTML, from the jinja2 template ``templates/page.html.j2``.

Alert fields come from a topic anyone with produce rights can write to, so every value on the page is
HTML-escaped: the template environment autoescapes everything it prints, and this module hands it plain
text only (display strings worked out from the record), never markup. The page's own style and script
(``static/inbox.css``, ``static/inbox.js``, files of this package) are the only text put in unescaped,
inline, in ``<style nonce>``/``<script nonce>`` elements: the page carries a strict
Content-Security-Policy (scripts and styles only with a per-response nonce, see
:mod:`apps.inbox.server`), so it loads nothing else.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from typing import Any, Sequence

import jinja2
from markupsafe import Markup

from apps.inbox.view import UNASSIGNED, as_score, as_text
from pipeline.core.alerting import ESCALATION, EVENT, SWEEP
from pipeline.core.contract import InvalidEvent, format_ts, parse_ts
from pipeline.core.rules import CSAT_LOW, NPS_DETRACTOR, RENEWAL_AT_RISK, REPEATED_FAILED_HELP, VIP_SLA_BREACH

TRIGGER_LABELS = {
    EVENT: "Model: new activity",
    SWEEP: "Model: gone quiet",
    ESCALATION: "Escalation",
    CSAT_LOW: "Rule: low CSAT",
    NPS_DETRACTOR: "Rule: NPS detractor",
    REPEATED_FAILED_HELP: "Rule: failed help views",
    RENEWAL_AT_RISK: "Rule: renewal at risk",
    VIP_SLA_BREACH: "Rule: VIP SLA breach",
}

_TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("apps.inbox", "templates"), autoescape=True,
                                undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


@functools.cache
def _static(name: str, element: str) -> Markup:
    """A file of ``static/`` to put inline in a ``<style>``/``<script>`` element: trusted (it ships with
    the package), checked not to close that element early."""
    text = (files("apps.inbox") / "static" / name).read_text(encoding="utf-8")
    if f"</{element}" in text.lower():
        raise ValueError(f"static/{name} must not contain </{element}")
    return Markup(text)


def sentence(text: str) -> str:
    """A reason fragment ("logins down 80% ...") as a sentence ("Logins down 80% ....")."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def trigger_label(trigger: Any) -> str:
    t = as_text(trigger, 64)
    return TRIGGER_LABELS.get(t, t.replace("_", " ").capitalize() or "Unknown")


def risk_text(score: float | None) -> str:
    """A score as the page shows it: whole percents, but small risks keep a digit (not a misleading 0%)."""
    if score is None:
        return "n/a"
    if 0 < score < 0.001:
        return "<0.1%"
    return f"{score:.1%}" if score < 0.1 else f"{score:.0%}"


def _minute(ms: int) -> str:
    return format_ts(ms)[:16].replace("T", " ")


def _when(ts: Any) -> str:
    try:
        return _minute(parse_ts(ts)) + " UTC"
    except InvalidEvent:
        return ""


def _row(a: dict[str, Any]) -> dict[str, Any]:
    """What the template shows of one alert: plain text (escaped there) and numbers formatted here."""
    score, threshold = as_score(a.get("score")), as_score(a.get("threshold"))
    t = threshold if threshold is not None else 0.5
    tier = as_text(a.get("tier"), 32)
    reasons = [r for r in a.get("reasons") or [] if isinstance(r, dict) and as_text(r.get("text"))]
    return {
        "alert_id": as_text(a.get("alert_id"), 128), "customer_id": as_text(a.get("customer_id"), 128),
        "tier": tier, "tier_class": tier.replace(" ", "-"), "csm": as_text(a.get("csm")),
        "risk": None if score is None else risk_text(score),
        "meter": None if score is None else {"low": f"{t:.4f}", "high": f"{(1 + t) / 2:.4f}", "value": f"{score:.4f}"},
        "threshold": f"{threshold:.0%}" if threshold is not None and threshold >= 0.005 else "",
        "band": as_text(a.get("band"), 16) or "high",
        "kind": as_text(a.get("kind"), 16), "trigger": trigger_label(a.get("trigger")),
        "escalated": bool(a.get("escalated")), "folded": len(a.get("alert_ids") or []) - 1,
        "reasons": [sentence(as_text(r.get("text"))) for r in reasons],
        "play": as_text(a.get("play"), 1024), "when": _when(a.get("event_time")),
        "model": as_text(a.get("model_version"), 64) or "none",
    }


def render_page(alerts: Sequence[dict[str, Any]], tiers: Sequence[str], csms: Sequence[str], *, tier: str = "",
                csm: str = "", nonce: str = "", clock_ms: int = 0, csrf: str = "", user: str = "",
                can_sign_out: bool = False) -> str:
    """The inbox page for ``alerts`` (as :meth:`apps.inbox.view.InboxState.open_alerts` returns them);
    every value escaped. ``csrf`` is the session's CSRF token the page's script sends with an acknowledgement."""
    return _TEMPLATES.get_template("page.html.j2").render(
        rows=[_row(a) for a in alerts], tiers=tiers, csms=csms, tier=tier, csm=csm, nonce=nonce,
        clock=_minute(clock_ms) if clock_ms else "", csrf=csrf, user=user, can_sign_out=can_sign_out,
        unassigned=UNASSIGNED, css=_static("inbox.css", "style"), js=_static("inbox.js", "script"))


__all__ = ["render_page", "risk_text", "sentence", "trigger_label", "TRIGGER_LABELS"]
