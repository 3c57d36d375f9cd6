"""The play an alert suggests: what a customer-success manager should do about the reasons it gives.

Part of the alert policy: the texts can be replaced per category in the policy file (``[plays]``).
"""

from __future__ import annotations

from typing import Sequence

from pipeline.core.reasons import Reason

#: Suggested play per reason category (the policy file's ``[plays]`` overrides them).
PLAYS = {
    "adoption": "Guided training: book an adoption session on the workflows they stopped using",
    "service": "Service recovery: escalate the open tickets and call the customer's main contact",
    "value": "Business review: go through their feedback and the value delivered so far",
    "renewal": "Renewal preparation: review usage and outcomes with the decision maker before renewal",
    "profile": "Account review: check the account's plan fit with the CSM lead",
}
#: The category whose play an alert falls back to (no reasons, or no play for their category).
FALLBACK_CATEGORY = "value"


def suggest_play(reasons: Sequence[Reason], plays: dict[str, str] = PLAYS) -> str:
    """The play for the category carrying the most contribution among the reasons."""
    weight: dict[str, float] = {}
    for r in reasons:
        weight[r.category] = weight.get(r.category, 0.0) + r.contribution
    fallback = plays.get(FALLBACK_CATEGORY, "")
    if not weight:
        return fallback
    best = max(weight, key=lambda c: weight[c])
    return plays.get(best, fallback)
