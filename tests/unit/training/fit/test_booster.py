"""The calibration map fitted on validation."""

from __future__ import annotations

import numpy as np

from training.fit.booster import fit_calibration


def test_calibration_map_is_strictly_increasing_and_close_to_isotonic() -> None:
    rng = np.random.default_rng(2)
    raw = rng.random(2000) ** 2
    y = (rng.random(2000) < raw * 0.5).astype(int)
    cal = fit_calibration(raw, y, blend=1e-4)
    x, v = np.asarray(cal["x"]), np.asarray(cal["y"])
    assert x[0] == 0.0 and x[-1] == 1.0
    assert np.all(np.diff(x) > 0) and np.all(np.diff(v) > 0)
    assert np.all((v >= 0) & (v <= 1))
    mapped = np.interp(raw, x, v)
    assert abs(mapped.mean() - y.mean()) < 0.01
    # ranking survives calibration: distinct raw scores stay distinct
    assert np.unique(mapped).size == np.unique(raw).size
