"""The alert policy file: one TOML file a customer-success lead can read and edit, read into a
:class:`pipeline.core.policy.AlertPolicy`.

Every key is optional; what is absent keeps the documented default (``docs/alerts.md``). Threshold
precedence: thresholds written in the file, then the per-tier thresholds proposed by the model's
training (its threshold guidance), then the built-in defaults.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from pipeline.core.alerting import AlertConfig
from pipeline.core.plays import PLAYS
from pipeline.core.policy import AlertPolicy
from pipeline.core.rules import RULES, VIP_SLA_BREACH, RulesConfig


class PolicyError(ValueError):
    """The policy file cannot be used; one line naming the file and the key."""


def _number(path: Path, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PolicyError(f"{path}: {key} must be a number, got {value!r}")
    return float(value)


def load_policy(path: Path | str | None) -> AlertPolicy:
    """Read a policy file; ``None`` or an empty path gives the defaults."""
    if not path:
        return AlertPolicy()
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(doc) - {"thresholds", "alerts", "plays", "rules"}
    if unknown:
        raise PolicyError(f"{path}: unknown section(s) {sorted(unknown)}")

    alerts = AlertConfig()
    if "thresholds" in doc:
        th = {tier: _number(path, f"thresholds.{tier}", v) for tier, v in doc["thresholds"].items()}
        if any(not 0 < v < 1 for v in th.values()):
            raise PolicyError(f"{path}: thresholds must be probabilities between 0 and 1")
        alerts = replace(alerts, file_thresholds=th)
    names = {f.name for f in fields(AlertConfig)} - {"thresholds", "file_thresholds"}
    for key, value in doc.get("alerts", {}).items():
        if key not in names:
            raise PolicyError(f"{path}: unknown key alerts.{key} (known: {sorted(names)})")
        alerts = replace(alerts, **{key: _number(path, f"alerts.{key}", value)})
    if not 0 <= alerts.min_history_days < math.inf:  # NaN fails too: it would switch the guard off
        raise PolicyError(f"{path}: alerts.min_history_days must be a number of days >= 0, "
                          f"got {alerts.min_history_days!r}")

    plays = dict(PLAYS)
    for category, text in doc.get("plays", {}).items():
        if not isinstance(text, str) or not text:
            raise PolicyError(f"{path}: plays.{category} must be a non-empty string")
        plays[category] = text

    rules = RulesConfig()
    enabled = set(rules.enabled)
    cooldowns: dict[str, float] = dict(rules.cooldowns)  # the file overrides per rule
    tunables = {"csat_max", "nps_max", "failed_help_count", "failed_help_window_h", "renewal_days",
                "renewal_risk_ratio"}
    changes: dict[str, Any] = {}
    for name, section in doc.get("rules", {}).items():
        if not isinstance(section, dict):
            if name == "cooldown_days":
                changes["cooldown_days"] = _number(path, "rules.cooldown_days", section)
                continue
            raise PolicyError(f"{path}: rules.{name} must be a table")
        if name not in RULES:
            raise PolicyError(f"{path}: unknown rule {name!r} (known: {sorted(RULES)})")
        for key, value in section.items():
            if key == "enabled":
                (enabled.add if value else enabled.discard)(name)
            elif key == "cooldown_days":
                cooldowns[name] = _number(path, f"rules.{name}.cooldown_days", value)
            elif key in tunables:
                number = _number(path, f"rules.{name}.{key}", value)
                changes[key] = int(number) if key == "failed_help_count" else number
            elif key == "tiers" and name == VIP_SLA_BREACH:
                changes["vip_tiers"] = frozenset(str(t).lower() for t in value)
            else:
                raise PolicyError(f"{path}: unknown key rules.{name}.{key}")
    rules = replace(rules, enabled=frozenset(enabled), cooldowns=cooldowns, **changes)
    return AlertPolicy(alerts, rules, plays)
