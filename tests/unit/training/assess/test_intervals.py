"""Bootstrap intervals over customers."""

from __future__ import annotations

import numpy as np
import pytest

import training.assess.intervals as ev


def test_resamples_taken_a_block_at_a_time_give_the_same_intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    """weighted_metrics bounds its memory by blocks of resamples; the figures must not depend on it."""
    rng = np.random.default_rng(3)
    y = (rng.random(3000) < 0.1).astype(float)
    p = rng.random(3000) + 0.4 * y
    weights = ev.customer_weights(rng.integers(0, 500, 3000), draws=200, seed=1)
    whole = ev.weighted_metrics(y, p, weights)
    monkeypatch.setattr(ev, "_BLOCK_VALUES", 3000 * 7)  # blocks of 7 resamples, the last one short
    blocks = ev.weighted_metrics(y, p, weights)
    for name in whole:
        assert whole[name].shape == (200,) and np.array_equal(whole[name], blocks[name], equal_nan=True)
