"""Readiness checks: each one can fail on its own, and the verdict needs all of them."""

from __future__ import annotations

import logging

from pipeline.worker.health import Health


def healthy(now: float = 100.0) -> Health:
    h = Health(assigned={0, 1}, recovering=False)
    h.broker_answered(now)
    return h


def test_all_checks_pass():
    ready, checks = healthy().evaluate(101.0)
    assert ready and all(c["ok"] for c in checks.values())


def test_each_check_can_fail_on_its_own():
    cases = {
        "partitions": lambda h: setattr(h, "assigned", set()),
        "recovery": lambda h: setattr(h, "recovering", True),
        "broker": lambda h: setattr(h, "broker_ok_at", 80.0),
        "model": lambda h: (setattr(h, "model_promoted", True), setattr(h, "model_loaded", False)),
        "agent": lambda h: setattr(h, "busy_since", 50.0),
    }
    for name, breaks in cases.items():
        h = healthy()
        breaks(h)
        ready, checks = h.evaluate(101.0)
        assert not ready, name
        assert [n for n, c in checks.items() if not c["ok"]] == [name]


def test_no_promoted_model_is_ready_but_says_so():
    ready, checks = healthy().evaluate(101.0)
    assert ready and "no model promoted" in checks["model"]["detail"]


def test_one_warning_per_outage(caplog):
    h = healthy()
    with caplog.at_level(logging.WARNING, logger="churnwatch.health"):
        for t in range(200):
            h.broker_failed("connection refused", 101.0 + t)
        h.broker_answered(400.0)
        h.broker_answered(401.0)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "unreachable" in lines[0] and "reachable again after 299 s" in lines[1]
