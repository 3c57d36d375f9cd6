"""Unit tests for pipeline.core.plays: the play an alert suggests."""

from __future__ import annotations

from pipeline.core.plays import PLAYS, suggest_play
from pipeline.core.reasons import Reason, category


def reason(feature: str, c: float) -> Reason:
    return Reason(feature, 1.0, c, category(feature), f"text for {feature}")


def test_play_follows_the_category_with_most_contribution():
    reasons = [reason("logins_trend_7d", 0.3), reason("open_tickets", 0.25), reason("open_past_sla", 0.2)]
    assert suggest_play(reasons) == PLAYS["service"]  # 0.45 service beats 0.3 adoption
    reasons = [reason("logins_trend_7d", 0.5), reason("open_tickets", 0.25), reason("open_past_sla", 0.2)]
    assert suggest_play(reasons) == PLAYS["adoption"]
    assert suggest_play([reason("days_to_renewal", 0.1)]) == PLAYS["renewal"]


def test_play_without_reasons_and_custom_plays():
    assert suggest_play([]) == PLAYS["value"]
    plays = {"value": "default play", "service": "call them"}
    assert suggest_play([reason("open_tickets", 0.1)], plays) == "call them"
    assert suggest_play([reason("mrr", 0.1)], plays) == "default play"  # no 'profile' play: fall back
