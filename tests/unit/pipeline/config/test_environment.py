"""Unit tests for pipeline.config.environment: a CHURNWATCH_* variable that names no setting is refused, with the
closest real name (a misspelt variable used to be a setting that silently kept its default)."""

from __future__ import annotations

import pytest

from pipeline.config.environment import refuse_unknown
from pipeline.config.fields import SettingsError
from pipeline.config.settings import Settings


def error_of(env) -> str:
    with pytest.raises(SettingsError) as info:
        refuse_unknown(Settings.model_fields, env)
    return str(info.value)


def test_known_and_unprefixed_variables_pass():
    refuse_unknown(Settings.model_fields, {"CHURNWATCH_PARTITIONS": "3", "PATH": "/bin"})


# ---- defect: a misspelt CHURNWATCH_* variable used to be ignored without a word ---------------------
@pytest.mark.parametrize(("name", "suggestion"), [
    ("CHURNWATCH_PARTITON", "CHURNWATCH_PARTITIONS"),
    ("CHURNWATCH_METRIC_PORT", "CHURNWATCH_METRICS_PORT"),
    ("CHURNWATCH_SASL_PASSWROD", "CHURNWATCH_SASL_PASSWORD"),
    ("CHURNWATCH_SECURITY_PROTOCAL", "CHURNWATCH_SECURITY_PROTOCOL"),
    ("CHURNWATCH_REPLICATION", "CHURNWATCH_REPLICATION_FACTOR"),
])
def test_misspelt_variable_is_refused_with_the_closest_name(name, suggestion):
    assert error_of({name: "3"}) == f"{name}: not a churnwatch setting: did you mean {suggestion}?"


def test_variable_with_nothing_close_is_refused_too():
    message = error_of({"CHURNWATCH_NOT_A_SETTING_AT_ALL": "x"})
    assert message.startswith("CHURNWATCH_NOT_A_SETTING_AT_ALL: not a churnwatch setting")
    assert "churnwatch config" in message


def test_lower_case_variable_is_refused_with_its_upper_case_name():
    assert error_of({"churnwatch_partitions": "3"}) == \
        "churnwatch_partitions: churnwatch variables are upper case: did you mean CHURNWATCH_PARTITIONS?"
