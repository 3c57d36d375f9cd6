"""Unit tests for pipeline.config.policy_file: reading the alert policy file."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config.policy_file import PolicyError, load_policy
from pipeline.core.alerting import AlertConfig
from pipeline.core.plays import PLAYS


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "policy.toml"
    p.write_text(text)
    return p


def test_no_file_gives_defaults():
    policy = load_policy(None)
    assert policy.alerts == AlertConfig() and policy.plays == PLAYS


def test_threshold_precedence_file_then_model_then_defaults(tmp_path):
    policy = load_policy(write(tmp_path, "[thresholds]\nvip = 0.2\n"))
    model = {"vip": 0.3, "standard": 0.4}
    assert policy.alerts.threshold("vip", model) == 0.2
    assert policy.alerts.threshold("standard", model) == 0.4
    assert policy.alerts.threshold("standard", None) == 0.5
    assert policy.alerts.threshold("gold", None) == 0.5  # unknown tier: the standard threshold


def test_alert_knobs_plays_and_rules(tmp_path):
    policy = load_policy(write(tmp_path, """
[alerts]
cooldown_days = 3
rearm_ratio = 0.5
[plays]
renewal = "Send the renewal deck"
[rules]
cooldown_days = 2
[rules.csat_low]
csat_max = 1
cooldown_days = 10
[rules.nps_detractor]
enabled = false
[rules.vip_sla_breach]
tiers = ["VIP", "gold"]
"""))
    assert policy.alerts.cooldown_days == 3 and policy.alerts.rearm_ratio == 0.5
    assert policy.alerts.min_history_days == AlertConfig().min_history_days  # absent: the default
    assert policy.plays["renewal"] == "Send the renewal deck" and policy.plays["service"] == PLAYS["service"]
    r = policy.rules
    assert r.csat_max == 1 and r.cooldown_days == 2 and r.cooldowns == {"csat_low": 10, "renewal_at_risk": 35}
    assert "nps_detractor" not in r.enabled and "csat_low" in r.enabled
    assert r.vip_tiers == frozenset({"vip", "gold"})


@pytest.mark.parametrize("days", [0, 7, 14.5, 28])
def test_min_history_days_is_read(tmp_path, days):
    assert load_policy(write(tmp_path, f"[alerts]\nmin_history_days = {days}\n")).alerts.min_history_days == days


@pytest.mark.parametrize(("text", "message"), [
    ("[thresholds]\nvip = 1.5\n", "between 0 and 1"),
    ("[alerts]\ncooldown = 3\n", "unknown key alerts.cooldown"),
    ("[alerts]\ncooldown_days = 'soon'\n", "must be a number"),
    ("[alerts]\nmin_history_days = -1\n", "alerts.min_history_days must be a number of days >= 0"),
    ("[alerts]\nmin_history_days = nan\n", "alerts.min_history_days must be a number of days >= 0"),
    ("[alerts]\nmin_history_days = inf\n", "alerts.min_history_days must be a number of days >= 0"),
    ("[alerts]\nmin_history_days = true\n", "alerts.min_history_days must be a number"),
    ("[alerts]\nmin_history_days = '28d'\n", "alerts.min_history_days must be a number"),
    ("[rules.made_up]\nenabled = true\n", "unknown rule"),
    ("[rules.csat_low]\nthreshold = 2\n", "unknown key rules.csat_low.threshold"),
    ("[paly]\n", "unknown section"),
    ("thresholds = [\n", "not valid TOML"),
])
def test_bad_files_give_one_line_errors(tmp_path, text, message):
    with pytest.raises(PolicyError, match=message) as info:
        load_policy(write(tmp_path, text))
    assert "\n" not in str(info.value) or "TOML" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(PolicyError, match="not found"):
        load_policy(tmp_path / "nope.toml")
