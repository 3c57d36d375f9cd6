"""Unit tests for pipeline.config.hosts: host names and ``host:port`` values as the Host allow-list compares them."""

from __future__ import annotations

import pytest

from pipeline.config.hosts import split_host


@pytest.mark.parametrize(("value", "expected"), [
    ("localhost", ("localhost", None)),
    ("LocalHost:8088", ("localhost", 8088)),
    ("inbox.example.com.", ("inbox.example.com", None)),
    ("127.0.0.1:6066", ("127.0.0.1", 6066)),
    ("[::1]:8088", ("[::1]", 8088)),
    ("[0:0:0:0:0:0:0:1]", ("[::1]", None)),
    ("::1", None),  # a Host header must bracket IPv6
    ("evil.example:0", None),
    ("evil.example:99999", None),
    ("evil.example:80:80", None),
    ("ev il.example", None),
    ("", None),
    ("[::1", None),
    ("a_b.internal", ("a_b.internal", None)),
    ("-bad.example", None),
])
def test_split_host(value, expected):
    assert split_host(value) == expected
