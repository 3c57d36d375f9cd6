"""Validate a candidate model in a child process before any worker loads it.

A LightGBM model file is trusted input to C++ code that does not defend itself: a file whose sha256
matches (re-hashed after an edit, or garbage written by training) can abort the parser (a tree that is
shorter than ``tree_sizes=`` says, a truncated file), kill it with SIGFPE (``num_tree_per_iteration=0``),
segfault the predictor (a child index or ``split_feature`` out of range, a categorical split without
categories) or hang it forever (a child pointing back up the tree). None of these raise: run in the
worker they end the process (rc -11, no log line) or block its event loop.

So the parent (:meth:`Checker.run`) hands the exact bytes it read to ``python -m pipeline.model.modelcheck``
on stdin. The child parses them with LightGBM, checks the tree topology statically (every index a
prediction can follow, not only the paths a probe row happens to take), compares the model's feature
names and width with the metadata and with the worker's feature list, checks the calibration map and
predicts a few probe rows (zeros, NaNs, huge values, seeded noise), with contributions. It answers one
JSON object on its own stdout (LightGBM's console output is redirected to stderr) and exits 0
(accepted) or 3 (rejected). A child that dies by a signal, outlives the timeout (it is killed by pid),
exits otherwise or answers garbage means a rejected model too. Only then does the caller build the
in-process booster, from the same bytes.

Rejection reasons (the ``reason`` label of ``churnwatch_model_reload_failures_total``):
``corrupt`` (not a usable LightGBM model: unparsable, impossible tree, non-finite predictions, checksum),
``feature_mismatch``, ``bad_calibration``, ``crashed`` (the child died by a signal), ``timeout``,
``check_error`` (the check itself failed: could not start, unexpected exit, unreadable answer) and,
from the registry side, ``registry_error`` (see :mod:`pipeline.model.scoring`).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import orjson

#: Default wall-clock budget of one check (parse + probes); settings override it.
DEFAULT_TIMEOUT_S = 30.0
#: Exit codes of the child.
EXIT_ACCEPTED = 0
EXIT_REJECTED = 3
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
_STDERR_TAIL = 300


class ModelError(RuntimeError):
    """A model that cannot be used; ``reason`` labels the reload-failure metric."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


# ---- checks that need no LightGBM (parent and child) --------------------------------------------
def check_metadata(meta: Mapping[str, Any], expected_features: Sequence[str],
                   version: str = "model") -> tuple[tuple[str, ...], list[float], list[float]]:
    """The metadata's feature list against the worker's, and its calibration map.

    Returns (features, calibration x, calibration y); raises :class:`ModelError`."""
    features = meta.get("features", ())
    if not isinstance(features, (list, tuple)) or not all(isinstance(f, str) for f in features):
        raise ModelError("feature_mismatch", f"{version}: metadata 'features' is not a list of names")
    features = tuple(features)
    expected = tuple(expected_features)
    if features != expected:
        missing = sorted(set(expected) - set(features))[:3]
        extra = sorted(set(features) - set(expected))[:3]
        order = " (same names, other order)" if not missing and not extra else ""
        raise ModelError(
            "feature_mismatch",
            f"{version} expects {len(features)} features, this worker computes {len(expected)}"
            f" (missing {missing}, unknown {extra}){order}",
        )
    cal = meta.get("calibration") or {}
    if not isinstance(cal, Mapping):
        raise ModelError("bad_calibration", f"{version}: calibration is not a mapping")
    cx, cy = cal.get("x", []), cal.get("y", [])
    try:
        xs = [float(v) for v in cx]
        ys = [float(v) for v in cy]
    except (TypeError, ValueError):
        raise ModelError("bad_calibration", f"{version}: calibration map holds non-numbers") from None
    if len(xs) != len(ys):
        raise ModelError("bad_calibration", f"{version}: calibration map is malformed ({len(xs)} x, {len(ys)} y)")
    if not all(math.isfinite(v) for v in xs + ys):
        raise ModelError("bad_calibration", f"{version}: calibration map is malformed (non-finite breakpoints)")
    if any(b < a for a, b in zip(xs, xs[1:])) or any(b < a for a, b in zip(ys, ys[1:])):
        raise ModelError("bad_calibration", f"{version}: calibration map is malformed (not monotone)")
    if ys and (min(ys) < 0.0 or max(ys) > 1.0):
        raise ModelError("bad_calibration", f"{version}: calibration map is malformed (y outside [0, 1])")
    return features, xs, ys


def check_feature_names(names: Sequence[str], num_feature: int, features: Sequence[str], version: str = "model") -> bool:
    """The model file's own feature list (``feature_names=``) against the metadata's. Returns True for
    an anonymous model (LightGBM's ``Column_<i>`` names: trained without names, only the width counts)."""
    names, features = tuple(names), tuple(features)
    if num_feature != len(features) or len(names) != len(features):
        raise ModelError("feature_mismatch", f"{version}: booster has {num_feature} features, meta lists {len(features)}")
    anonymous = names == tuple(f"Column_{i}" for i in range(len(names)))
    if not anonymous and names != features:
        diff = [(i, a, b) for i, (a, b) in enumerate(zip(names, features)) if a != b][:3]
        raise ModelError("feature_mismatch", f"{version}: the model file's feature names differ from its metadata: "
                         + ", ".join(f"#{i} is {a!r}, meta says {b!r}" for i, a, b in diff))
    return anonymous


def _ints(block: Mapping[str, str], key: str, n: int, where: str) -> list[int]:
    text = block.get(key)
    if text is None:
        raise ModelError("corrupt", f"{where}: no {key}=")
    try:
        values = [int(v) for v in text.split()]
    except ValueError:
        raise ModelError("corrupt", f"{where}: {key}= holds non-integers") from None
    if len(values) != n:
        raise ModelError("corrupt", f"{where}: {key}= has {len(values)} values, expected {n}")
    return values


def lint_model_text(text: str) -> dict[str, int]:
    """Static checks of what LightGBM's predictor follows without bounds checks. Raises ``corrupt``.

    Per tree: internal nodes 0..L-2 and leaves 0..L-1 (child ``~leaf``) form one tree rooted at node 0
    (each node and leaf reached exactly once: no cycle, no index out of range); ``split_feature`` within
    ``max_feature_idx``; categorical splits index existing category ranges. Header:
    ``num_tree_per_iteration`` and ``num_class`` positive.
    """
    head, sep, rest = text.partition("\nTree=")
    if not sep:
        raise ModelError("corrupt", "no trees in the model file")
    header = dict(ln.split("=", 1) for ln in head.splitlines() if "=" in ln)
    try:
        max_feature = int(header["max_feature_idx"])
        per_iter = int(header.get("num_tree_per_iteration", "1"))
        num_class = int(header.get("num_class", "1"))
    except (KeyError, ValueError):
        raise ModelError("corrupt", "model header lacks max_feature_idx / num_class") from None
    if max_feature < 0 or per_iter < 1 or num_class < 1:
        raise ModelError("corrupt", f"model header is impossible (max_feature_idx={max_feature}, "
                                    f"num_class={num_class}, num_tree_per_iteration={per_iter})")
    body = rest.split("\nend of trees", 1)[0]
    trees = body.split("\nTree=")
    for t, chunk in enumerate(trees):
        where = f"tree {t}"
        block = dict(ln.split("=", 1) for ln in chunk.splitlines()[1:] if "=" in ln)
        try:
            leaves = int(block["num_leaves"])
            num_cat = int(block.get("num_cat", "0"))
        except (KeyError, ValueError):
            raise ModelError("corrupt", f"{where}: no num_leaves") from None
        if leaves < 1 or num_cat < 0:
            raise ModelError("corrupt", f"{where}: num_leaves={leaves}, num_cat={num_cat}")
        if leaves == 1:
            continue
        n = leaves - 1
        left = _ints(block, "left_child", n, where)
        right = _ints(block, "right_child", n, where)
        split = _ints(block, "split_feature", n, where)
        decision = _ints(block, "decision_type", n, where)
        try:
            threshold = [float(v) for v in block.get("threshold", "").split()]
        except ValueError:
            raise ModelError("corrupt", f"{where}: threshold= holds non-numbers") from None
        if len(threshold) != n:
            raise ModelError("corrupt", f"{where}: threshold= has {len(threshold)} values, expected {n}")
        node_seen = [False] * n
        leaf_seen = [False] * leaves
        stack = [0]
        node_seen[0] = True
        while stack:
            node = stack.pop()
            for child in (left[node], right[node]):
                if child >= 0:
                    if child >= n or node_seen[child]:
                        raise ModelError("corrupt", f"{where}: node {node} points to node {child}"
                                         f" ({'out of range' if child >= n else 'already in the tree: a cycle'})")
                    node_seen[child] = True
                    stack.append(child)
                else:
                    leaf = ~child
                    if leaf >= leaves or leaf_seen[leaf]:
                        raise ModelError("corrupt", f"{where}: node {node} points to leaf {leaf}"
                                         f" ({'out of range' if leaf >= leaves else 'reached twice'})")
                    leaf_seen[leaf] = True
        if not all(node_seen) or not all(leaf_seen):
            raise ModelError("corrupt", f"{where}: nodes or leaves unreachable from the root")
        for i in range(n):
            if not 0 <= split[i] <= max_feature:
                raise ModelError("corrupt", f"{where}: node {i} splits on feature {split[i]}, the model has "
                                            f"{max_feature + 1}")
            if decision[i] & 1:  # categorical: threshold indexes cat_boundaries
                cat = threshold[i]
                if num_cat == 0 or cat != int(cat) or not 0 <= int(cat) < num_cat:
                    raise ModelError("corrupt", f"{where}: categorical node {i} refers to category set {cat}"
                                                f" of {num_cat}")
        if num_cat:
            bounds = _ints(block, "cat_boundaries", num_cat + 1, where)
            cats = block.get("cat_threshold", "").split()
            if bounds[0] != 0 or any(b < a for a, b in zip(bounds, bounds[1:])) or bounds[-1] != len(cats):
                raise ModelError("corrupt", f"{where}: cat_boundaries do not match cat_threshold")
        if block.get("is_linear", "0").strip() == "1":
            try:
                used = [int(v) for v in block.get("leaf_features", "").split()]
            except ValueError:
                raise ModelError("corrupt", f"{where}: leaf_features= holds non-integers") from None
            if any(not 0 <= f <= max_feature for f in used):
                raise ModelError("corrupt", f"{where}: a linear leaf uses a feature beyond {max_feature}")
    return {"trees": len(trees), "num_feature": max_feature + 1}


# ---- the child --------------------------------------------------------------------------------------
_NATIVE_LOG: list[Any] = []  # keeps the ctypes callback alive for the child's lifetime


def _raw_native_log(lgb: Any) -> None:
    """LightGBM's own log hook decodes each native message as UTF-8 in Python; a crash message that
    carries stray bytes then dies as a UnicodeDecodeError instead of printing ``[Fatal] ...``, and the
    parent loses LightGBM's last words. The child writes the bytes to stderr untouched instead."""
    import ctypes

    callback = ctypes.CFUNCTYPE(None, ctypes.c_char_p)(lambda msg: os.write(2, msg or b""))
    _NATIVE_LOG.append(callback)
    lgb.basic._LIB.LGBM_RegisterLogCallback(callback)


def inspect(model_bytes: bytes, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the child checks, in order; raises :class:`ModelError`. Runs LightGBM: child only."""
    import numpy as np

    from pipeline.model.calibration import calibrate

    version = str(spec.get("version", "model"))
    expected = tuple(spec.get("expected_features", ()))
    features, cx, cy = check_metadata({"features": spec.get("features", ()), "calibration": spec.get("calibration")},
                                      expected, version)
    try:
        text = model_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelError("corrupt", f"{version}: model file is not UTF-8 text (byte {exc.start})") from None
    # LightGBM's optional scikit-learn glue costs ~0.7 s of imports and is not used here: the
    # import fails fast and lightgbm falls back to its stubs (its documented behaviour without sklearn).
    sys.modules.setdefault("sklearn", None)  # type: ignore[arg-type]
    import lightgbm as lgb

    _raw_native_log(lgb)

    try:
        booster = lgb.Booster(model_str=text)
    except Exception as exc:  # LightGBMError for the malformed files it does detect
        raise ModelError("corrupt", f"{version}: LightGBM cannot load the model ({str(exc)[:160]})") from None
    if spec.get("lint", True):
        try:
            lint_model_text(text)
        except ModelError as exc:
            raise ModelError(exc.reason, f"{version}: {exc}") from None
    anonymous = check_feature_names(booster.feature_name(), booster.num_feature(), features, version)
    n = len(features)
    rng = np.random.default_rng(0)
    rows = np.vstack([np.zeros((1, n)), np.full((1, n), np.nan), np.full((1, n), 1e30), np.full((1, n), -1e30),
                      rng.normal(scale=3.0, size=(16, n))])
    try:
        raw = np.asarray(booster.predict(rows, num_threads=1), dtype=np.float64)
        contrib = np.asarray(booster.predict(rows, pred_contrib=True, num_threads=1), dtype=np.float64)
    except Exception as exc:
        raise ModelError("corrupt", f"{version}: prediction fails ({str(exc)[:160]})") from None
    if raw.shape != (len(rows),) or contrib.shape != (len(rows), n + 1):
        raise ModelError("corrupt", f"{version}: predictions have shape {raw.shape}, contributions {contrib.shape};"
                                    f" expected a binary classifier over {n} features")
    if not np.all(np.isfinite(raw)) or not np.all(np.isfinite(contrib)):
        raise ModelError("corrupt", f"{version}: predicts non-finite values")
    if raw.min() < 0.0 or raw.max() > 1.0:
        raise ModelError("corrupt", f"{version}: predicts values outside [0, 1] (not a binary classifier)")
    calibrated = calibrate(raw, cx, cy)
    if not np.all(np.isfinite(calibrated)) or calibrated.min() < 0.0 or calibrated.max() > 1.0:
        raise ModelError("bad_calibration", f"{version}: calibrated probe scores leave [0, 1]")
    return {"num_feature": booster.num_feature(), "num_trees": booster.num_trees(),
            "probe": [float(v) for v in raw[:4]], "anonymous_features": anonymous}


def main() -> int:
    """Child entry point: ``<one JSON line: spec>\\n<model bytes>`` on stdin, one JSON object out."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # LightGBM (C++) and any print() go to stderr; our stdout carries the answer only
    sys.stdout = sys.stderr
    data = sys.stdin.buffer.read()
    head, _, model_bytes = data.partition(b"\n")
    try:
        spec = orjson.loads(head)
        budget = float(spec.get("timeout_s", DEFAULT_TIMEOUT_S))
        # If the parent is gone (killed -9 while waiting) nobody kills a hung check: do it ourselves.
        signal.alarm(max(1, math.ceil(budget)) + 5)
        report = inspect(model_bytes, spec)
    except ModelError as exc:
        out.write(orjson.dumps({"ok": False, "reason": exc.reason, "detail": str(exc)}) + b"\n")
        out.flush()
        return EXIT_REJECTED
    out.write(orjson.dumps({"ok": True, **report}) + b"\n")
    out.flush()
    return EXIT_ACCEPTED


# ---- the parent --------------------------------------------------------------------------------------
def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _tail(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    fatal = [ln for ln in lines if "[Fatal]" in ln or "Error" in ln]
    text = (fatal or lines or [""])[-1]
    # LightGBM's crash messages can quote uninitialised memory: keep the line printable.
    return "".join(ch if ch.isprintable() and ch != "\ufffd" else "?" for ch in text[:_STDERR_TAIL])


class Checker:
    """Runs checks in child processes; :meth:`kill` stops the one running (from any thread)."""

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S, python: str | None = None) -> None:
        self.timeout_s = timeout_s
        self.python = python or sys.executable
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._killed = False

    def run(self, model_bytes: bytes, meta: Mapping[str, Any], expected_features: Sequence[str],
            version: str = "model", *, lint: bool = True, timeout_s: float | None = None) -> dict[str, Any]:
        """Check ``model_bytes`` with ``meta`` in a child; the child's report, or :class:`ModelError`.

        ``lint=False`` skips the static tree check, leaving only the sandbox between a bad model and the
        predictor (the tests use it to show a hang or a crash is contained)."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        check_metadata(meta, expected_features, version)  # cheap: no child for a wrong feature list
        spec = {"version": version, "features": list(meta.get("features", ())),
                "calibration": meta.get("calibration") or {}, "expected_features": list(expected_features),
                "lint": lint, "timeout_s": timeout}
        env = dict(os.environ, OMP_NUM_THREADS="1",
                   PYTHONPATH=os.pathsep.join(p for p in (str(_PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")) if p))
        with self._lock:
            if self._killed:
                raise ModelError("check_error", f"{version}: model checks are shut down")
            try:
                proc = subprocess.Popen([self.python, "-m", "pipeline.model.modelcheck"], cwd=_PACKAGE_ROOT, env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            except OSError as exc:
                raise ModelError("check_error", f"{version}: cannot start the model check ({exc})") from None
            self._proc = proc
        try:
            try:
                stdout, stderr = proc.communicate(orjson.dumps(spec) + b"\n" + model_bytes, timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()  # by pid: SIGKILL, the child may be spinning inside C++
                proc.communicate()
                raise ModelError("timeout", f"{version}: model check did not finish within {timeout:g}s "
                                            f"(LightGBM hangs on this file); check process killed") from None
        finally:
            with self._lock:
                self._proc = None
        rc = proc.returncode
        if self._killed:
            raise ModelError("check_error", f"{version}: model check stopped (shutting down)")
        if rc < 0:
            raise ModelError("crashed", f"{version}: LightGBM crashed on this file ({_signal_name(-rc)}) "
                                        f"in the check process: {_tail(stderr)}".rstrip(": "))
        try:
            answer = orjson.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else None
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict) or rc not in (EXIT_ACCEPTED, EXIT_REJECTED) \
                or bool(answer.get("ok")) != (rc == EXIT_ACCEPTED):
            raise ModelError("check_error", f"{version}: model check exited {rc} without a valid answer: "
                                            f"{_tail(stderr) or stdout[:120]!r}")
        if not answer["ok"]:
            raise ModelError(str(answer.get("reason") or "corrupt"), str(answer.get("detail") or "rejected"))
        return answer

    def kill(self) -> None:
        """Stop a running check and refuse new ones (worker shutdown: nothing waits out the timeout)."""
        with self._lock:
            self._killed = True
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()


def check_model(model_bytes: bytes, meta: Mapping[str, Any], expected_features: Sequence[str] | None = None,
                version: str = "model", *, timeout_s: float = DEFAULT_TIMEOUT_S, lint: bool = True) -> dict[str, Any]:
    """One check in a child process (see :class:`Checker`)."""
    if expected_features is None:
        from pipeline.core.spec import compile_spec, spec_of_meta

        expected_features = compile_spec(spec_of_meta(meta)).names
    return Checker(timeout_s).run(model_bytes, meta, expected_features, version, lint=lint)


if __name__ == "__main__":
    sys.exit(main())
