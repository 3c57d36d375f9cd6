"""Unit tests for apps.cli.args: argument types refuse bad values in one line (times, --speed)."""

from __future__ import annotations

import pytest

from tests.unit.apps.cli.harness import assert_one_line_error, run


@pytest.mark.parametrize("start", ["0001-01-01T00:00:00+01:00", "99999999999999999999", "1999-06-01"])
def test_out_of_range_start_is_an_argument_error(start, calls, capsys):
    assert_one_line_error(*run(["simulate", "--start", start, "--out", "x.jsonl"], capsys))


def test_speed_max_is_as_fast_as_possible_and_a_number_is_a_pace(calls, capsys):
    run(["simulate"], capsys)
    run(["simulate", "--speed", "max"], capsys)
    run(["simulate", "--speed", "MAX"], capsys)
    run(["simulate", "--speed", "86400"], capsys)
    assert [args.speed for _, args in calls] == [None, None, None, 86400.0]


def test_speed_0_says_how_to_ask_for_as_fast_as_possible(calls, capsys):
    code, out, err = run(["simulate", "--speed", "0"], capsys)
    assert_one_line_error(code, out, err)
    assert "--speed: '0' must be > 0 (or 'max': as fast as possible)" in err
