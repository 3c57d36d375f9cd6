"""Churn scoring with a registry model: calibrated probabilities and per-feature contributions.

Predictions run with ``num_threads=1``: a saved LightGBM model remembers the thread count it was trained
with, and multi-threaded prediction of small batches costs milliseconds of p99 for nothing. Calibration
is a monotone piecewise-linear map stored as numbers in the model's metadata, not a pickle, so loading a
model never executes code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import lightgbm as lgb
import numpy as np

from pipeline.features import FEATURES
from pipeline.registry import MODEL_FILE, Registry, RegistryError

log = logging.getLogger(__name__)


class ModelError(RuntimeError):
    """A model that cannot be used; ``reason`` labels the reload-failure metric."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass
class Model:
    version: str
    booster: lgb.Booster
    features: tuple[str, ...]
    calibration_x: np.ndarray
    calibration_y: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def thresholds(self) -> dict[str, float]:
        """Per-tier alert thresholds proposed at training time (may be empty)."""
        return dict(self.meta.get("thresholds", {}))

    def raw(self, rows: np.ndarray) -> np.ndarray:
        return self.booster.predict(rows, num_threads=1)

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        if self.calibration_x.size < 2:
            return raw
        return np.interp(raw, self.calibration_x, self.calibration_y)

    def predict(self, rows: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
        """Calibrated churn probabilities for a batch of feature vectors."""
        arr = np.asarray(rows, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.shape[0] == 0:
            return np.empty(0)
        return self.calibrate(self.raw(arr))

    def contributions(self, rows: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
        """Per-feature contributions in log-odds (last column is the bias). ~1 ms/row: alerts only."""
        arr = np.asarray(rows, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        return np.asarray(self.booster.predict(arr, pred_contrib=True, num_threads=1))


def load_model(path: Path, version: str, meta: dict[str, Any], expected_features: Sequence[str] = FEATURES) -> Model:
    """Load and validate one model directory. Raises :class:`ModelError` with a reason label."""
    features = tuple(meta.get("features", ()))
    if features != tuple(expected_features):
        missing = sorted(set(expected_features) - set(features))[:3]
        extra = sorted(set(features) - set(expected_features))[:3]
        raise ModelError(
            "feature_mismatch",
            f"model {version} expects {len(features)} features, this worker computes {len(expected_features)}"
            f" (missing {missing}, unknown {extra})",
        )
    try:
        booster = lgb.Booster(model_file=str(path / MODEL_FILE))
    except Exception as exc:  # LightGBM raises LightGBMError or OSError for bad files
        raise ModelError("corrupt", f"model {version}: LightGBM cannot load {MODEL_FILE} ({str(exc)[:120]})") from None
    if booster.num_feature() != len(features):
        raise ModelError("feature_mismatch", f"model {version}: booster has {booster.num_feature()} features, meta lists {len(features)}")
    cal = meta.get("calibration") or {}
    cx = np.asarray(cal.get("x", []), dtype=np.float64)
    cy = np.asarray(cal.get("y", []), dtype=np.float64)
    if cx.shape != cy.shape or (cx.size and np.any(np.diff(cx) < 0)):
        raise ModelError("bad_calibration", f"model {version}: calibration map is malformed")
    model = Model(version, booster, features, cx, cy, meta)
    probe = model.predict(np.zeros((1, len(features))))
    if not np.all(np.isfinite(probe)):
        raise ModelError("corrupt", f"model {version}: predicts non-finite values")
    return model


def load_current(registry: Registry) -> Model | None:
    """The promoted model, or None when nothing is promoted yet."""
    version = registry.current()
    if version is None:
        return None
    return load_version(registry, version)


def load_version(registry: Registry, version: str) -> Model:
    try:
        meta = registry.verify(version)
    except RegistryError as exc:
        raise ModelError("corrupt", str(exc)) from None
    return load_model(registry.path(version), version, meta)


class ModelHolder:
    """Keeps the last good model and swaps in a newly promoted one when it validates.

    The worker polls :meth:`refresh`; a bad promotion is logged once per version and leaves the running
    model in place, so a broken file can never stop scoring.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.model: Model | None = None
        self._rejected: set[str] = set()

    def refresh(self) -> tuple[str, str | None]:
        """Returns (status, detail): status is 'unchanged', 'loaded', 'none' or a failure reason."""
        version = self.registry.current()
        if version is None:
            return ("none", None)
        if self.model is not None and self.model.version == version:
            return ("unchanged", None)
        if version in self._rejected:
            return ("unchanged", None)
        try:
            model = load_version(self.registry, version)
        except ModelError as exc:
            self._rejected.add(version)
            kept = self.model.version if self.model else "none"
            log.error("rejected model %s: %s; keeping %s", version, exc, kept)
            return (exc.reason, str(exc))
        self.model = model
        log.warning("loaded model %s", version)
        return ("loaded", version)
