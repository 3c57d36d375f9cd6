"""Proactive-service rules that stand beside the model.

Some situations deserve a CSM's attention whatever the churn score says: a customer who just rated
support 1/5, a detractor NPS, someone failing to find help on the same feature again and again, a VIP
whose ticket is past its SLA, a renewal coming up while risk is elevated. Each rule has its own trigger
name and its own cool-down per customer, so a rule fires once per episode, not once per event.

Pure code: rules read the validated event and the customer's state after the event was applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.core.contract import DAY_MS, HOUR_MS, VIP_TIER, Event
from pipeline.core.features import CustomerState, FEATURE_INDEX
from pipeline.core.reasons import figure

#: The rules, by the name an alert carries as its trigger and the policy file's ``[rules.<name>]`` uses.
CSAT_LOW, NPS_DETRACTOR, REPEATED_FAILED_HELP = "csat_low", "nps_detractor", "repeated_failed_help"
RENEWAL_AT_RISK, VIP_SLA_BREACH = "renewal_at_risk", "vip_sla_breach"
RULES = frozenset({CSAT_LOW, NPS_DETRACTOR, REPEATED_FAILED_HELP, RENEWAL_AT_RISK, VIP_SLA_BREACH})


@dataclass(frozen=True)
class RulesConfig:
    """Every rule can be switched off or tuned in the policy file (``[rules.<name>]``)."""

    enabled: frozenset[str] = RULES
    cooldown_days: float = 7.0
    csat_max: float = 2.0
    nps_max: float = 6.0
    failed_help_count: int = 3
    failed_help_window_h: float = 24.0
    renewal_days: float = 30.0
    #: "risk is elevated" for the renewal rule: score at or above this share of the tier threshold (the
    #: alert policy's re-arm mark: close to alerting, not merely above average)
    renewal_risk_ratio: float = 0.8
    vip_tiers: frozenset[str] = frozenset({VIP_TIER})
    #: Per-rule cool-downs. A renewal is one episode: alerting about it weekly (monthly plans are always
    #: within 30 days of one) made this rule most of all alerts in a simulated month, so it fires at
    #: most once per renewal window.
    cooldowns: dict[str, float] = field(default_factory=lambda: {RENEWAL_AT_RISK: 35.0})

    def cooldown_ms(self, rule: str) -> int:
        return int(self.cooldowns.get(rule, self.cooldown_days) * DAY_MS)


@dataclass(frozen=True)
class RuleHit:
    """A rule that fired: ``feature`` names the feature its sentence is about (for the alert's reasons)."""

    rule: str
    category: str
    feature: str
    value: float
    text: str
    #: event time of the triggering event (None: the scoring time)
    ts_ms: int | None = None


def on_event(state: CustomerState, ev: Event, cfg: RulesConfig) -> list[RuleHit]:
    """Rules triggered by one event (already applied to ``state``)."""
    hits: list[RuleHit] = []
    on = cfg.enabled
    if ev.source == "surveys":
        score = ev.data["score"]
        if ev.type == "csat" and CSAT_LOW in on and score <= cfg.csat_max:
            hits.append(RuleHit(CSAT_LOW, "service", "min_csat_30d", score,
                                f"rated support {figure(score)}/5 (CSAT)", ev.ts_ms))
        if ev.type == "nps" and NPS_DETRACTOR in on and score <= cfg.nps_max:
            hits.append(RuleHit(NPS_DETRACTOR, "value", "last_nps", score,
                                f"NPS {figure(score)} (detractor)", ev.ts_ms))
    elif ev.source == "interactions" and ev.type == "help_view" and ev.data.get("success") is False:
        if REPEATED_FAILED_HELP in on:
            feature = ev.data.get("feature", "")
            since = ev.ts_ms - int(cfg.failed_help_window_h * HOUR_MS)
            n = sum(1 for ts, f in state.recent_failed_help if f == feature and since <= ts <= ev.ts_ms)
            if n >= cfg.failed_help_count:
                what = f"on {feature}" if feature else ""
                hits.append(RuleHit(REPEATED_FAILED_HELP, "adoption", "failed_help_7d", float(n),
                                    f"{n} unsuccessful help-article views {what} within {figure(cfg.failed_help_window_h)} h".replace("  ", " "),
                                    ev.ts_ms))
    return hits


def on_score(state: CustomerState, vec: list[float], score: float | None, threshold: float,
             cfg: RulesConfig) -> list[RuleHit]:
    """Rules that look at the customer's situation at scoring time (event or silence sweep)."""
    hits: list[RuleHit] = []
    on = cfg.enabled
    # For customers the model has not flagged: one with an open model alert already has a CSM on it, and
    # a second task about the same customer is the duplicate CSMs complain about.
    if RENEWAL_AT_RISK in on and score is not None and not state.alert.open:
        days = vec[FEATURE_INDEX["days_to_renewal"]]
        if 0 <= days <= cfg.renewal_days and score >= threshold * cfg.renewal_risk_ratio:
            hits.append(RuleHit(RENEWAL_AT_RISK, "renewal", "days_to_renewal", days,
                                f"renewal in {figure(days)} days with churn risk {score:.0%}"))
    if VIP_SLA_BREACH in on and state.tier in cfg.vip_tiers:
        past = vec[FEATURE_INDEX["open_past_sla"]]
        if past >= 1:
            hits.append(RuleHit(VIP_SLA_BREACH, "service", "open_past_sla", past,
                                f"VIP with {figure(past)} open ticket{'s' if past != 1 else ''} past SLA"))
    return hits

