"""Unit tests for apps.cli.inbox (``churnwatch inbox``): the address guard and a busy port, before the broker."""

from __future__ import annotations

import pytest

from tests.unit.apps.cli.harness import assert_one_line_error, run


@pytest.mark.parametrize("argv", [["inbox", "--host", "0.0.0.0"], ["inbox", "--host", "192.168.1.20", "--port", "9000"]])
def test_inbox_on_a_public_address_needs_a_guard(argv, monkeypatch, no_network, capsys):
    code, out, err = run(argv, capsys)
    assert_one_line_error(code, out, err)
    assert "refusing to serve the inbox" in err and "CHURNWATCH_INBOX_TOKEN" in err


def test_a_busy_inbox_port_is_one_line_before_anything_is_announced(listening, monkeypatch, no_network, capsys):
    import apps.inbox.server

    monkeypatch.setattr(apps.inbox.server, "run_inbox", lambda *a, **k: pytest.fail("inbox started"))
    code, out, err = run(["inbox", "--port", str(listening)], capsys)
    assert_one_line_error(code, out, err)
    assert err == (f"churnwatch inbox: error: cannot listen on 127.0.0.1:{listening}: address already in use; "
                   f"choose another port with --port\n")
