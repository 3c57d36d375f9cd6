"""The per-event work both contender apps of ``bench_contenders.py`` do, and the counter they expose.

The Faust contender runs in the project's ``.venv``, the quixstreams one in a virtualenv of its own that
has only quixstreams, orjson, numpy, LightGBM and churnwatch installed without its dependencies. So this
module imports nothing but the standard library and churnwatch's pure core and model loading (no
Settings, no Faust, no Kafka client): every figure the bench compares then runs the very same
``contract.parse`` -> ``CustomerState.from_bytes`` -> ``features.apply`` -> ``to_bytes`` -> single-row
LightGBM predict, and only the streaming framework around it differs.

The counter is a 24-byte file mapped into memory: the app bumps it after every event (an aligned 8-byte
store, ~0.3 µs), the bench maps the same file and samples it every 100 ms, as it samples the worker's
``churnwatch_events_consumed_total``. No pipe to drain, no progress line to parse, nothing that could
slow the app down when the bench is late reading.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

#: Environment variable naming the JSON config file of a contender run (written by the bench).
CONFIG_ENV = "CHURN_CONTENDER_CONFIG"
_LAYOUT = struct.Struct("<qqq")  # processed, alerts, invalid


class Counter:
    """Processed events, alerts sent and invalid events, shared with the bench through a mapped file."""

    def __init__(self, path: Path | str, create: bool = False) -> None:
        path = Path(path)
        if create:
            path.write_bytes(b"\0" * _LAYOUT.size)
        self._file = open(path, "r+b")
        self._mm = mmap.mmap(self._file.fileno(), _LAYOUT.size)
        self.processed = self.alerts = self.invalid = 0

    def bump(self, alert: bool) -> None:
        self.processed += 1
        if alert:
            self.alerts += 1
        _LAYOUT.pack_into(self._mm, 0, self.processed, self.alerts, self.invalid)

    def read(self) -> tuple[int, int, int]:
        return _LAYOUT.unpack_from(self._mm, 0)

    def close(self) -> None:
        self._mm.close()
        self._file.close()


def load_config() -> dict[str, Any]:
    return orjson.loads(Path(os.environ[CONFIG_ENV]).read_bytes())


@dataclass
class Folded:
    """One event folded into its customer's state: the new state bytes and the state itself."""

    value: bytes
    state: Any


class Work:
    """Parse, fold and score one event at a time, as a straightforward streaming app would.

    ``config`` (written by the bench): ``models`` (a registry directory), ``source_of`` (input topic ->
    source), ``limits`` (the worker's contract limits), ``feature_config`` (the worker's feature settings),
    ``counter`` (the counter file), ``scoring`` (False: state only, no model call, no alerts).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        from pipeline.core.alerting import AlertConfig
        from pipeline.core.contract import Limits
        from pipeline.core.decisions import vectorizer
        from pipeline.core.features import FeatureConfig
        from pipeline.model.registry import Registry
        from pipeline.model.scoring import load_current

        self.source_of: dict[str, str] = config["source_of"]
        self.limits = Limits(**config["limits"])
        self.feature_cfg = FeatureConfig(**config["feature_config"])
        self.scoring = bool(config.get("scoring", True))
        # the model the worker loads: the registry's promoted version, built from the same bytes
        self.model = load_current(Registry(Path(config["models"])), check=False, feature_cfg=self.feature_cfg)
        if self.model is None:
            raise SystemExit(f"no promoted model in {config['models']}")
        self.names, self.vec = vectorizer(self.model)
        self.alert_cfg = AlertConfig()
        self.model_thresholds = self.model.thresholds
        self.counter = Counter(config["counter"])

    def fold(self, topic: str, partition: int, offset: int, value: bytes, stored: bytes | None) -> Folded | None:
        """parse -> load -> apply -> serialise; None for an invalid event (counted, nothing stored)."""
        from pipeline.core.contract import InvalidEvent, parse
        from pipeline.core.features import CustomerState, apply

        try:
            ev = parse(self.source_of[topic], value, int(time.time() * 1000), self.limits)
        except InvalidEvent:
            self.counter.invalid += 1
            self.counter.bump(False)
            return None
        state = CustomerState.from_bytes(stored) if stored else CustomerState(ev.customer_id)
        apply(state, ev, offset, self.feature_cfg, partition=partition)
        return Folded(state.to_bytes(), state)

    def score(self, folded: Folded) -> bytes | None:
        """Score the customer on its own (one single-row predict) and return an alert record when the score
        is at or above the tier's threshold (the policy's defaults with the model's proposals, as the
        worker's ``AlertConfig.threshold``); counts the event as processed."""
        if not self.scoring:
            self.counter.bump(False)
            return None
        st = folded.state
        row = self.vec(st, st.last_ms)
        score = float(self.model.predict([row])[0])
        threshold = self.alert_cfg.threshold(st.tier, self.model_thresholds)
        alert = None
        if score >= threshold:
            alert = orjson.dumps({"customer_id": st.customer_id, "tier": st.tier, "score": score,
                                  "threshold": threshold, "event_ms": st.last_ms, "model_version": self.model.version,
                                  "emit_ms": int(time.time() * 1000)})
        self.counter.bump(alert is not None)
        return alert
