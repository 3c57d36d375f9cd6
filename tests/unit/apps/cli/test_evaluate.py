"""Unit tests for apps.cli.evaluate (``churnwatch evaluate``)."""

from __future__ import annotations

from tests.unit.apps.cli.harness import assert_one_line_error, run


def test_evaluate_split_flags_need_an_event_log(tmp_path, capsys):
    code, out, err = run(["evaluate", "--models-dir", str(tmp_path), "--test-from", "2024-01-01"], capsys)
    assert_one_line_error(code, out, err)
    assert "give --events LOG" in err
