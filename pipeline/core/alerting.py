"""Alert policy: when a score becomes an alert, and the alert record a CSM receives.

Pure code over a small per-customer memory (``CustomerState.alert``, a
:class:`~pipeline.core.alert_memory.AlertMemory`), so the decisions survive a crash with the rest of the
state and can be unit-tested without a broker. The policy errs on the side of
silence once it has spoken: a customer is alerted once, stays quiet while the alert is open, and is
re-armed only after the score drops below a lower mark (hysteresis) and a cool-down has passed.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from pipeline.core.alert_memory import AlertMemory
from pipeline.core.contract import DAY_MS, DEFAULT_TIER, VIP_TIER, Event, format_ts
from pipeline.core.reasons import Reason

#: Default of the policy's ``min_history_days``: how long a customer must have been seen before a model
#: score may alert. Training keeps customers from their first day, so this is about CSMs' inboxes, not
#: about what the model knows (``bench/alert_quality.py --min-history-days``, docs/alerts.md). Against 28,
#: 7 warns most of the new accounts' churners for ~3 % more model alerts at the same precision; 0 adds
#: ~10 % more, hardly better than picking new accounts at random, and makes a worker starting on an
#: existing customer base (everybody looks new) send ~3 normal weeks' model alerts a week for a month.
MIN_HISTORY_DAYS = 7
#: Days after which an open alert expires unless the policy file says otherwise.
EXPIRE_DAYS = 30.0
#: Outcomes by which a CSM closes an open alert (an ``alert_id`` in the outcome names the one it closes).
CLOSING_OUTCOMES = frozenset({"alert_ack", "contacted", "saved"})
#: Built-in per-tier thresholds, used when neither the policy file nor the model proposes one; a tier
#: without a threshold of its own is judged as :data:`~pipeline.core.contract.DEFAULT_TIER`.
DEFAULT_THRESHOLDS = {VIP_TIER: 0.35, DEFAULT_TIER: 0.5}
#: Alert kinds (an alert's ``kind``): a new alert opens; an escalation re-raises the open one; a rule
#: alert stands beside the model's and opens nothing.
NEW, ESCALATION, RULE = "new", "escalation", "rule"
#: Triggers of a model alert: a scoring after an event, or the silence sweep (a rule alert's trigger is
#: its rule's name, an escalation's is :data:`ESCALATION`).
EVENT, SWEEP = "event", "sweep"


@dataclass(frozen=True)
class AlertConfig:
    """The model alerts' knobs (see ``docs/alerts.md``); read from the policy file by
    ``pipeline.config.policy_file``, part of a :class:`pipeline.core.policy.AlertPolicy`."""

    #: built-in defaults, used when neither the policy file nor the model proposes a threshold
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    #: thresholds written in the policy file: they win over the model's proposals
    file_thresholds: dict[str, float] = field(default_factory=dict)
    #: Re-arm once the score falls below threshold * rearm_ratio.
    rearm_ratio: float = 0.8
    cooldown_days: float = 14.0
    expire_days: float = EXPIRE_DAYS
    #: An open alert escalates when the score has risen this much above the score it was raised at.
    escalate_delta: float = 0.15
    #: No model alert (nor a renewal-at-risk "risk") while the customer has been seen for less than this.
    min_history_days: float = MIN_HISTORY_DAYS

    def threshold(self, tier: str, model_thresholds: dict[str, float] | None = None) -> float:
        return tier_threshold({**self.thresholds, **(model_thresholds or {}), **self.file_thresholds}, tier)


def tier_threshold(thresholds: Mapping[str, float], tier: str) -> float:
    """``tier``'s threshold in ``thresholds``: a tier without one of its own is judged as
    :data:`~pipeline.core.contract.DEFAULT_TIER`, and without that either by the built-in default."""
    return thresholds.get(tier, thresholds.get(DEFAULT_TIER, DEFAULT_THRESHOLDS[DEFAULT_TIER]))


@dataclass
class Alert:
    alert_id: str
    customer_id: str
    tier: str
    csm: str
    score: float
    threshold: float
    band: str
    trigger: str
    reasons: list[Reason]
    play: str
    model_version: str | None
    event_ms: int
    emit_ms: int
    kind: str = NEW  # NEW | ESCALATION | RULE

    @property
    def opens(self) -> bool:
        """Whether this alert is the customer's open one from now on."""
        return self.kind == NEW

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["score"] = round(self.score, 4)
        d["threshold"] = round(self.threshold, 4)
        d["reasons"] = [r.to_json() for r in self.reasons]
        d["event_time"] = format_ts(self.event_ms)
        d["emit_time"] = format_ts(self.emit_ms)
        return d


@dataclass(frozen=True)
class Decision:
    """What the policy wants: ``kind`` is :data:`NEW`, :data:`ESCALATION` or :data:`RULE`; reasons are added by the caller
    (they need the model's contributions, which are computed only for decisions)."""

    kind: str
    trigger: str
    threshold: float
    band: str


def band(score: float, threshold: float) -> str:
    """How urgent the risk is: ``critical`` half-way from the threshold to certainty, ``high`` at the
    threshold, ``watch`` below it (a rule alert about a customer whose risk is not yet high)."""
    if score >= (1.0 + threshold) / 2:
        return "critical"
    return "high" if score >= threshold else "watch"


def alert_id(customer_id: str, event_ms: int, trigger: str) -> str:
    """Deterministic, so a replay after a crash re-creates the same id instead of a new alert."""
    return hashlib.sha1(f"{customer_id}|{event_ms}|{trigger}".encode()).hexdigest()[:16]


def decide(memory: AlertMemory, *, score: float, tier: str, now_ms: int, history_days: float,
           churned: bool, cfg: AlertConfig, model_thresholds: dict[str, float] | None = None,
           trigger: str = EVENT) -> Decision | None:
    """Update ``memory`` with this score and return a Decision when an alert must go out."""
    t = cfg.threshold(tier, model_thresholds)
    if churned or history_days < cfg.min_history_days:
        return None
    if not memory.armed and score < t * cfg.rearm_ratio:
        memory.rearm()
    if memory.open and memory.open_expired(now_ms, cfg.expire_days * DAY_MS):
        memory.forget_open()
    if memory.open:
        open_score = memory.open_score if memory.open_score is not None else 1.0
        if score >= open_score + cfg.escalate_delta:
            memory.escalated(score)
            return Decision(ESCALATION, ESCALATION, t, band(score, t))
        return None
    if score < t or not memory.armed:
        return None
    if memory.in_cooldown(now_ms, cfg.cooldown_days * DAY_MS):
        return None
    return Decision(NEW, trigger, t, band(score, t))


def on_outcome(memory: AlertMemory, event: Event) -> None:
    """Close the loop: an acknowledgement closes the open alert (the cool-down keeps running)."""
    if event.type in CLOSING_OUTCOMES:
        memory.acknowledge(event.data.get("alert_id"), event.ts_ms)


def build(customer_id: str, tier: str, csm: str, score: float, decision: Decision, reasons: Sequence[Reason],
          play: str, model_version: str | None, event_ms: int, emit_ms: int) -> Alert:
    return Alert(
        alert_id=alert_id(customer_id, event_ms, decision.trigger),
        customer_id=customer_id, tier=tier, csm=csm, score=score, threshold=decision.threshold,
        band=decision.band, trigger=decision.trigger, reasons=list(reasons), play=play,
        model_version=model_version, event_ms=event_ms, emit_ms=emit_ms, kind=decision.kind,
    )
