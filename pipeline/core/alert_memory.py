"""What the alert policy remembers about one customer (``CustomerState.alert``).

Kept inside the customer's state so the policy's decisions survive a crash with the rest of it. Its JSON
form is part of the state's bytes in the changelog, so it keeps the shape the policy always wrote: only the
keys ever set, in the order they were first set (``open``, ``open_ms``, ``open_score``, ``armed``,
``last_ms``, ``acked_ms``, ``history``, ``rules``). A state read back from the changelog re-encodes to the
same bytes, and a memory that was never touched is ``{}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

class RaisedAlert(Protocol):
    """What the memory keeps of an alert that went out (:class:`pipeline.core.alerting.Alert` has it; the
    policy module imports this one, so this one names the fields it reads instead of importing it)."""

    alert_id: str
    event_ms: int
    trigger: str
    kind: str
    score: float

    @property
    def opens(self) -> bool: ...


#: alerts remembered per customer for the customer view (the alert topic keeps them all)
HISTORY_KEPT = 10

#: every key, with the value it has before it is first set
_DEFAULTS: dict[str, Any] = {"open": None, "open_ms": None, "open_score": None, "armed": True, "last_ms": None,
                             "acked_ms": None, "history": [], "rules": {}}


@dataclass(slots=True, eq=False)
class AlertMemory:
    #: id of the alert a CSM has not closed yet (None: none open)
    open: str | None = None
    #: event time and score the open alert was raised at
    open_ms: int | None = None
    open_score: float | None = None
    #: False from a new alert until the score falls below the re-arm mark (hysteresis)
    armed: bool = True
    #: event time of the newest new alert (the cool-down runs from it)
    last_ms: int | None = None
    #: event time the open alert was last closed by a CSM's outcome
    acked_ms: int | None = None
    #: the newest :data:`HISTORY_KEPT` alerts, oldest first (``alert_id``, ``event_ms``, ``trigger``, ``kind``, ``score``)
    history: list[dict[str, Any]] = field(default_factory=list)
    #: rule name -> event time it last fired (each rule's cool-down)
    rules: dict[str, int] = field(default_factory=dict)
    #: the keys set so far, in the order they were first set: what :meth:`to_json` writes
    _keys: list[str] = field(default_factory=list, repr=False)

    def _set(self, **values: Any) -> None:
        for key, value in values.items():
            setattr(self, key, value)
            if key not in self._keys:
                self._keys.append(key)

    # ---- what the policy does with it ------------------------------------------------------------
    def rearm(self) -> None:
        self._set(armed=True)

    def open_expired(self, now_ms: int, expire_ms: float) -> bool:
        """Whether the open alert is older than ``expire_ms`` (an alert without a time never is)."""
        opened = self.open_ms if self.open_ms is not None else now_ms
        return now_ms - opened > expire_ms

    def forget_open(self) -> None:
        """The open alert expired: the customer may be alerted again (re-armed and out of cool-down)."""
        self._set(open=None)

    def escalated(self, score: float) -> None:
        """The open alert was escalated at ``score``: the next escalation is measured from it."""
        self._set(open_score=score)

    def in_cooldown(self, now_ms: int, cooldown_ms: float) -> bool:
        return self.last_ms is not None and now_ms - self.last_ms < cooldown_ms

    def alerted_before(self, ts_ms: int) -> bool:
        """Whether a new alert went out at or before ``ts_ms`` (an outcome then follows an alert)."""
        return self.last_ms is not None and ts_ms >= self.last_ms

    def record(self, alert: RaisedAlert) -> None:
        """Remember an emitted alert (called after the alert is built, so ids match)."""
        self._set(history=self.history)
        self.history.append({"alert_id": alert.alert_id, "event_ms": alert.event_ms, "trigger": alert.trigger,
                             "kind": alert.kind,
                             "score": None if alert.score != alert.score else round(alert.score, 4)})
        del self.history[:-HISTORY_KEPT]
        if alert.opens:
            self._set(open=alert.alert_id, open_ms=alert.event_ms, open_score=alert.score, armed=False,
                      last_ms=alert.event_ms)

    def acknowledge(self, alert_id: str | None, ts_ms: int) -> None:
        """A CSM closed the open alert (``alert_id`` None: whichever is open); the cool-down keeps running."""
        if self.open and (alert_id is None or alert_id == self.open):
            self._set(open=None, acked_ms=ts_ms)

    def rule_due(self, rule: str, now_ms: int, cooldown_ms: int) -> bool:
        """True when ``rule`` may alert now (its cool-down has passed); records it if so."""
        self._set(rules=self.rules)
        last = self.rules.get(rule)
        if last is not None and now_ms - last < cooldown_ms:
            return False
        self.rules[rule] = now_ms
        return True

    # ---- the changelog's form ---------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The keys set so far, in the order first set; a field assigned directly (not through a method)
        is written too, after them, once it differs from its default."""
        out = {key: getattr(self, key) for key in self._keys}
        for key, default in _DEFAULTS.items():
            if key not in out and getattr(self, key) != default:
                out[key] = getattr(self, key)
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AlertMemory) and self.to_json() == other.to_json()

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "AlertMemory":
        unknown = set(d) - set(_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown alert memory key(s) {sorted(unknown)}")
        return cls(**d, _keys=list(d))

    def copy(self) -> "AlertMemory":
        """An independent copy (for comparing before and after a decision: records are equal when their
        JSON forms are)."""
        return AlertMemory(self.open, self.open_ms, self.open_score, self.armed, self.last_ms, self.acked_ms,
                           [dict(h) for h in self.history], dict(self.rules), list(self._keys))
