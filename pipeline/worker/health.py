"""Liveness and readiness of a worker: the checks behind ``GET /ready`` and ``churnwatch_worker_ready``.

Readiness used to flip only on rebalances, so a worker said "ready" through a broker outage, a hung
model load or a crashed agent. Here each check is a fact the worker keeps up to date as it works, and
the endpoint and the metric read the same :meth:`Health.evaluate`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("churnwatch.health")


@dataclass
class Health:
    #: the broker must have answered within this many seconds
    broker_timeout_s: float = 10.0
    #: a micro-batch (or its changelog flush) taking longer than this means the agent is stuck
    stall_s: float = 30.0
    assigned: set[int] = field(default_factory=set)
    recovering: bool = True
    broker_ok_at: float | None = None
    broker_down_since: float | None = None
    model_promoted: bool = False
    model_loaded: bool = False
    busy_since: float | None = None
    #: the input loop (:mod:`pipeline.worker.intake`; "agent" in the health checks, as before it was one)
    #: has not crashed
    agent_alive: bool = True
    last_batch_at: float | None = None

    # ---- facts -----------------------------------------------------------------------------------
    def broker_answered(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self.broker_down_since is not None:
            log.warning("broker reachable again after %.0f s", now - self.broker_down_since)
        self.broker_ok_at, self.broker_down_since = now, None

    def broker_failed(self, error: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self.broker_down_since is None:
            self.broker_down_since = now
            log.warning("broker unreachable (%s); the worker waits and retries, nothing is lost", error[:200])

    def batch_started(self) -> None:
        self.busy_since = time.monotonic()

    def batch_done(self) -> None:
        self.busy_since = None
        self.last_batch_at = time.monotonic()

    # ---- verdict ---------------------------------------------------------------------------------
    def evaluate(self, now: float | None = None) -> tuple[bool, dict[str, Any]]:
        """(ready, checks): every check is ``{"ok": bool, "detail": str}``."""
        now = time.monotonic() if now is None else now
        broker_age = None if self.broker_ok_at is None else now - self.broker_ok_at
        stuck = None if self.busy_since is None else now - self.busy_since
        checks = {
            "partitions": (bool(self.assigned), f"{len(self.assigned)} assigned" if self.assigned
                           else "no partitions assigned (joining, or more workers than partitions)"),
            "recovery": (not self.recovering, "state restored" if not self.recovering else "restoring state"),
            "broker": (broker_age is not None and broker_age <= self.broker_timeout_s,
                       "never reached" if broker_age is None else f"answered {broker_age:.1f} s ago"),
            "model": (self.model_loaded or not self.model_promoted,
                      "loaded" if self.model_loaded else
                      ("promoted model not loaded" if self.model_promoted else "no model promoted (not scoring)")),
            "agent": (self.agent_alive and (stuck is None or stuck <= self.stall_s),
                      "stopped" if not self.agent_alive else
                      (f"batch running for {stuck:.0f} s" if stuck is not None else "idle or progressing")),
        }
        ready = all(ok for ok, _ in checks.values())
        return ready, {name: {"ok": ok, "detail": detail} for name, (ok, detail) in checks.items()}
