"""The whole alert policy as one record: the model alerts' knobs, the proactive-service rules and the plays.

Pure data: :func:`pipeline.config.policy_file.load_policy` reads it from the policy file a customer-success
lead edits; the worker, the offline replay and the benches pass it to :func:`pipeline.core.decisions.score_and_decide`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.core.alerting import AlertConfig
from pipeline.core.plays import PLAYS
from pipeline.core.rules import RulesConfig


@dataclass(frozen=True)
class AlertPolicy:
    alerts: AlertConfig = field(default_factory=AlertConfig)
    rules: RulesConfig = field(default_factory=RulesConfig)
    plays: dict[str, str] = field(default_factory=lambda: dict(PLAYS))
