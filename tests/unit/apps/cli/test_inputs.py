"""Unit tests for apps.cli.inputs: --train-until, --test-from and --as-of are checked before any work."""

from __future__ import annotations

import pytest

from tests.unit.apps.cli.harness import assert_one_line_error, run

SPLIT_FLAG_ERRORS = [
    (["dataset", "--out", "{tmp}/rows.csv", "--as-of", "soon"], "--as-of"),
    (["dataset", "--out", "{tmp}/rows.csv", "--train-until", "2024-13-01"], "--train-until"),
    (["evaluate", "--models-dir", "{tmp}", "--test-from", "yesterday"], "--test-from"),
    (["evaluate", "--models-dir", "{tmp}", "--as-of", "2024-01-01,2024-02-01"], "--as-of takes one date"),
    (["train", "--models-dir", "{tmp}", "--as-of", "soon"], "--as-of"),
    (["train", "--models-dir", "{tmp}", "--search-seconds", "5"], "give --tune too"),
]


@pytest.mark.parametrize("argv,fragment", SPLIT_FLAG_ERRORS, ids=[" ".join(a[0][:1] + a[0][-2:]) for a in SPLIT_FLAG_ERRORS])
def test_bad_split_flags_are_one_line_before_any_work(argv, fragment, tmp_path, capsys):
    log = tmp_path / "log.jsonl"
    log.write_text("")  # exists; never read: the flags are checked first
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv] + ["--events", str(log)]
    code, out, err = run(argv, capsys)
    assert_one_line_error(code, out, err)
    assert fragment in err
