"""Per-tier thresholds from a share of each tier's scores."""

from __future__ import annotations

import numpy as np
import pytest

from training.fit.thresholds import choose_thresholds


def test_thresholds_vip_never_later_than_standard() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(1000)
    tiers = np.where(np.arange(1000) < 100, "vip", "standard").astype(object)
    thr = choose_thresholds(p, tiers, {"vip": 15.0, "standard": 8.0})
    assert thr["vip"] <= thr["standard"]
    assert (p[tiers == "standard"] >= thr["standard"]).mean() == pytest.approx(0.08, abs=0.002)
    # VIP scores all low: the VIP threshold is capped at the standard one
    p2 = np.where(tiers == "vip", p * 0.01, p)
    thr2 = choose_thresholds(p2, tiers, {"vip": 15.0, "standard": 8.0})
    assert thr2["vip"] <= thr2["standard"]
    # no VIPs at all: fall back to the whole population's quantile
    thr3 = choose_thresholds(p, np.full(1000, "standard", dtype=object), {"vip": 15.0, "standard": 8.0})
    assert thr3["vip"] <= thr3["standard"]
