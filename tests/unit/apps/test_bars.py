"""Unit tests for apps.bars: bars only for a terminal and without --quiet; the callback draws them."""

from __future__ import annotations

import io

from apps.bars import Bars, wanted


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_are_wanted_on_a_terminal_without_quiet_only():
    assert wanted(False, _Tty()) is True
    assert wanted(True, _Tty()) is False
    assert wanted(False, io.StringIO()) is False


def test_disabled_bars_draw_nothing(capsys):
    with Bars(False) as bars:
        bars.report("simulating days", 1, 10)
    assert capsys.readouterr() == ("", "")


def test_enabled_bars_draw_one_bar_per_label_on_stderr(capsys):
    with Bars(True) as bars:
        assert bars.enabled
        bars.report("simulating days", 3, 10)
        bars.report("simulating days", 10, 10)
        bars.report("reading events.jsonl", 500, 1000)
    out, err = capsys.readouterr()
    assert out == ""
    assert "simulating days" in err and "10/10" in err and "100%" in err
    assert "reading events.jsonl" in err and "50%" in err
