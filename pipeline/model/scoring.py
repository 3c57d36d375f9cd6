"""Churn scoring with a registry model: calibrated probabilities and per-feature contributions.

A model is never parsed in the worker before it passed :mod:`pipeline.model.modelcheck` in a child process
(LightGBM can segfault or hang on a corrupt file whose checksum matches); the in-process booster is
then built from the very bytes the child accepted.

Predictions run with ``num_threads=1``: a saved LightGBM model remembers the thread count it was trained
with, and multi-threaded prediction of small batches costs milliseconds of p99 for nothing. Calibration
is a monotone piecewise-linear map stored as numbers in the model's metadata, not a pickle, so loading a
model never executes code.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import lightgbm as lgb
import numpy as np

from pipeline.core.features import CustomerState, FeatureConfig
from pipeline.core.spec import CompiledSpec, SpecError, compile_spec, spec_of_meta
from pipeline.model.calibration import calibrate
from pipeline.model.modelcheck import DEFAULT_TIMEOUT_S, Checker, ModelError, check_feature_names, check_metadata
from pipeline.model.registry import MODEL_FILE, CorruptVersion, Registry, RegistryError

__all__ = ["Model", "ModelError", "ModelHolder", "calibrate", "load_current", "load_model", "load_version",
           "model_from_bytes"]

log = logging.getLogger("churnwatch.scoring")  # "churnwatch.*": never collapsed by the worker's log filter


@dataclass
class Model:
    version: str
    booster: lgb.Booster
    features: tuple[str, ...]
    calibration_x: np.ndarray
    calibration_y: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    #: the model's feature spec, compiled: what the worker computes for this model, and nothing else
    compiled: CompiledSpec = field(default_factory=lambda: compile_spec(spec_of_meta({})))

    def vector(self, state: CustomerState, now_ms: int) -> list[float]:
        return self.compiled.vector(state, now_ms)

    @property
    def thresholds(self) -> dict[str, float]:
        """Per-tier alert thresholds proposed at training time (may be empty)."""
        return dict(self.meta.get("thresholds", {}))

    def raw(self, rows: np.ndarray) -> np.ndarray:
        return self.booster.predict(rows, num_threads=1)

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        return calibrate(raw, self.calibration_x, self.calibration_y)

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


def compiled_of(meta: dict[str, Any], label: str) -> CompiledSpec:
    """The compiled spec of a model's metadata, or :class:`ModelError` ``bad_spec`` in one line."""
    try:
        return compile_spec(spec_of_meta(meta))
    except SpecError as exc:
        raise ModelError("bad_spec", f"{label}: {exc}") from None


def check_feature_config(meta: dict[str, Any], cfg: FeatureConfig | None, label: str) -> None:
    """Feature settings change feature values: a model trained with other ones would be scored on
    skewed features, so it is refused (the settings or the training must change, not silently both)."""
    trained = meta.get("feature_config")
    if cfg is None or not isinstance(trained, dict):
        return
    running = feature_config_json(cfg)
    diff = [f"{k}={trained.get(k)!r} (worker: {v!r})" for k, v in running.items() if trained.get(k, v) != v]
    if diff:
        raise ModelError("feature_config", f"{label}: trained with other feature settings: {', '.join(diff)}")


def feature_config_json(cfg: FeatureConfig) -> dict[str, Any]:
    return {name: getattr(cfg, name) for name in FeatureConfig.__dataclass_fields__}


def model_from_bytes(version: str, model_bytes: bytes, meta: dict[str, Any],
                     expected_features: Sequence[str] | None = None, *, check: bool = True,
                     timeout_s: float = DEFAULT_TIMEOUT_S, checker: Checker | None = None,
                     feature_cfg: FeatureConfig | None = None) -> Model:
    """Validate and load one model from its file's bytes. Raises :class:`ModelError` with a reason label.

    With ``check`` (the default) the bytes are first parsed and probed in a child process
    (:mod:`pipeline.model.modelcheck`, ``timeout_s``); only a model the child accepted is parsed here, from
    the same bytes. ``check=False`` parses in this process straight away: only for bytes that already
    passed a check (or were just produced by training in this process)."""
    label = f"model {version}"
    compiled = compiled_of(meta, label)
    if expected_features is None:
        expected_features = compiled.names
    check_feature_config(meta, feature_cfg, label)
    features, cal_x, cal_y = check_metadata(meta, expected_features, label)
    if check:
        (checker or Checker(timeout_s)).run(model_bytes, meta, expected_features, label)
    try:
        booster = lgb.Booster(model_str=model_bytes.decode("utf-8"))
    except Exception as exc:  # LightGBMError for bad files, UnicodeDecodeError
        raise ModelError("corrupt", f"{label}: LightGBM cannot load {MODEL_FILE} ({str(exc)[:120]})") from None
    check_feature_names(booster.feature_name(), booster.num_feature(), features, label)
    if tuple(features) != compiled.names:
        raise ModelError("feature_mismatch", f"{label}: meta.json lists {len(features)} features but its feature spec "
                                             f"gives {len(compiled.names)} (or another order)")
    model = Model(version, booster, features, np.asarray(cal_x, dtype=np.float64), np.asarray(cal_y, dtype=np.float64),
                  dict(meta), compiled)
    probe = model.predict(np.zeros((1, len(features))))
    if not np.all(np.isfinite(probe)):
        raise ModelError("corrupt", f"{label}: predicts non-finite values")
    return model


def load_model(path: Path, version: str, meta: dict[str, Any], expected_features: Sequence[str] | None = None,
               *, check: bool = True, timeout_s: float = DEFAULT_TIMEOUT_S) -> Model:
    """Load and validate one model directory (its ``model.txt``, read once, checked against
    ``meta["sha256"]`` when the metadata has one). Raises :class:`ModelError` with a reason label."""
    try:
        data = (Path(path) / MODEL_FILE).read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise ModelError("corrupt", f"model {version}: {MODEL_FILE} is missing") from None
    except OSError as exc:
        raise ModelError("registry_error", f"model {version}: cannot read {MODEL_FILE} ({exc.strerror or exc})") from None
    if "sha256" in meta and meta["sha256"] != hashlib.sha256(data).hexdigest():
        raise ModelError("corrupt", f"model {version}: {MODEL_FILE} does not match its sha256 (corrupt or edited)")
    return model_from_bytes(version, data, meta, expected_features, check=check, timeout_s=timeout_s)


def load_current(registry: Registry, *, check: bool = True, timeout_s: float = DEFAULT_TIMEOUT_S,
                 feature_cfg: FeatureConfig | None = None) -> Model | None:
    """The promoted model, or None when nothing is promoted yet."""
    version = registry.current()
    if version is None:
        return None
    return load_version(registry, version, check=check, timeout_s=timeout_s, feature_cfg=feature_cfg)


def load_version(registry: Registry, version: str, *, check: bool = True, timeout_s: float = DEFAULT_TIMEOUT_S,
                 expected_features: Sequence[str] | None = None, checker: Checker | None = None,
                 feature_cfg: FeatureConfig | None = None) -> Model:
    """One registry version, checksum-verified on the bytes that are then checked (child process) and
    loaded. Raises :class:`ModelError`: ``registry_error`` when the registry cannot be read, ``corrupt``
    for a version whose files are wrong, or the check's reason."""
    try:
        data, meta = registry.read(version)
    except CorruptVersion as exc:
        raise ModelError("corrupt", str(exc)) from None
    except RegistryError as exc:
        raise ModelError("registry_error", str(exc)) from None
    return model_from_bytes(version, data, meta, expected_features, check=check, timeout_s=timeout_s, checker=checker,
                            feature_cfg=feature_cfg)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class Timed:
    """A model whose every ``predict`` call is timed and told to ``observe(seconds, rows)`` (the worker's
    latency histogram): timed here, in the shell, so the pure decision loop keeps no clock. Everything
    else (thresholds, version, the compiled spec, contributions) is the model's own."""

    def __init__(self, model: Any, observe: Callable[[float, int], None]) -> None:
        self._model = model
        self._observe = observe

    def predict(self, rows: Any) -> Any:
        started = time.perf_counter()
        out = self._model.predict(rows)
        self._observe(time.perf_counter() - started, len(rows))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class ModelHolder:
    """Keeps the last good model and swaps in a newly promoted one when it validates.

    The worker polls :meth:`refresh`, in a thread (``await asyncio.to_thread(holder.refresh)``): the
    check of a new version takes a child process and up to ``check_timeout_s``. A rejected promotion is
    logged once and left alone until ``CURRENT`` is written again (a new promotion, a rollback, a
    re-promotion of the fixed version); a registry that cannot be read is logged once per distinct
    problem and retried every poll. Either way the running model stays, so a broken file never stops
    scoring, and nothing raises out of :meth:`refresh`.
    """

    def __init__(self, registry: Registry, *, check_timeout_s: float = DEFAULT_TIMEOUT_S,
                 expected_features: Sequence[str] | None = None, feature_cfg: FeatureConfig | None = None) -> None:
        self.registry = registry
        self.model: Model | None = None  # replaced by one assignment: readers need no lock
        #: None: each model's own spec says which features it must have
        self.expected_features = tuple(expected_features) if expected_features is not None else None
        #: the worker's feature settings; a model trained with others is refused (``feature_config``)
        self.feature_cfg = feature_cfg
        self._checker = Checker(check_timeout_s)
        self._rejected: tuple[str, Any] | None = None  # (version, CURRENT stamp) last refused
        self._registry_problem: str | None = None
        self._lock = threading.Lock()
        self._closed = False

    def refresh(self) -> tuple[str, str | None]:
        """Returns (status, detail): status is 'unchanged', 'loaded', 'none' or a failure reason
        ('corrupt', 'feature_mismatch', 'bad_spec', 'feature_config', 'bad_calibration', 'crashed', 'timeout',
        'check_error', 'registry_error'). A failure is reported once; repeats of it are 'unchanged'."""
        if self._closed or not self._lock.acquire(blocking=False):
            return ("unchanged", None)  # shutting down, or a refresh is already running in another thread
        try:
            return self._refresh()
        finally:
            self._lock.release()

    def close(self) -> None:
        """Kill a running check (by its pid) and refuse further refreshes: for worker shutdown."""
        self._closed = True
        self._checker.kill()

    def _refresh(self) -> tuple[str, str | None]:
        kept = self.model.version if self.model is not None else "none"
        try:
            version, stamp = self.registry.pointer()
        except RegistryError as exc:
            return self._registry_failed(str(exc), kept)
        if version is None:
            self._registry_problem = None
            return ("none", None)
        if self.model is not None and self.model.version == version:
            self._registry_problem = None
            return ("unchanged", None)
        if self._rejected == (version, stamp):
            return ("unchanged", None)
        try:
            model = load_version(self.registry, version, expected_features=self.expected_features,
                                 checker=self._checker, feature_cfg=self.feature_cfg)
        except ModelError as exc:
            if exc.reason == "registry_error":
                return self._registry_failed(str(exc), kept)
            return self._rejected_as(version, stamp, exc.reason, str(exc), kept)
        except Exception as exc:  # a bug or MemoryError must not take the poller down
            return self._rejected_as(version, stamp, "check_error", f"unexpected {type(exc).__name__}: {exc}", kept)
        if self._closed:
            return ("unchanged", None)
        self._rejected = None
        self._registry_problem = None
        previous = self.model
        self.model = model
        if previous is not None and previous.compiled.spec != model.compiled.spec:
            log.warning("model %s computes other features than %s (%s; was %s): every customer's vector now "
                        "follows the new spec, from the state already kept", version, kept,
                        model.compiled.spec.describe(), previous.compiled.spec.describe())
        log.warning("loaded model %s (was %s)", version, kept)
        return ("loaded", version)

    def _rejected_as(self, version: str, stamp: Any, reason: str, detail: str, kept: str) -> tuple[str, str | None]:
        if self._closed:
            return ("unchanged", None)
        self._rejected = (version, stamp)
        self._registry_problem = None
        log.error("rejected model %s (%s): %s; keeping %s", version, reason, _one_line(detail), kept)
        return (reason, detail)

    def _registry_failed(self, detail: str, kept: str) -> tuple[str, str | None]:
        if detail == self._registry_problem:
            return ("unchanged", None)
        self._registry_problem = detail
        log.error("model reload failed (registry_error): %s; keeping %s", _one_line(detail), kept)
        return ("registry_error", detail)
