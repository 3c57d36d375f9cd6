"""The calibration map: raw LightGBM scores -> churn probabilities.

One implementation for everybody who turns a raw score into a probability: training measures and chooses
thresholds on what this gives, the worker alerts on the same, and the child-process model check probes a
candidate's map with it, so all three come from the same arithmetic, bit for bit.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def calibrate(raw: np.ndarray, xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray) -> np.ndarray:
    """Raw scores through a calibration map (breakpoints ``xs`` -> ``ys``, linear in between, flat
    beyond the ends); a map of fewer than two points leaves them raw."""
    if len(xs) < 2:
        return raw
    return np.interp(raw, xs, ys)
