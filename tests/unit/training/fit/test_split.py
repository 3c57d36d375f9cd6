"""The time split on its own: purge gaps, order, and chosen cut points."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.contract import DAY_MS
from training.fit.config import TrainingError
from training.fit.split import time_split

T0 = 1_699_920_000_000  # 2023-11-14T00:00:00Z


def weekly(n: int) -> np.ndarray:
    return np.repeat(T0 + np.arange(n) * 7 * DAY_MS, 3)


def test_time_split_keeps_purge_gaps_and_order() -> None:
    split = time_split(weekly(40), purge_days=30)
    assert split.train.end_ms < split.validation.start_ms <= split.validation.end_ms < split.test.start_ms
    assert split.validation.start_ms - split.train.end_ms >= 30 * DAY_MS
    assert split.test.start_ms - split.validation.end_ms >= 30 * DAY_MS
    assert split.train.dates + split.validation.dates + split.test.dates == 40 - 2 * 4
    assert split.train.dates > split.validation.dates >= 1 and split.test.dates >= 1


def test_time_split_refuses_too_few_dates() -> None:
    with pytest.raises(TrainingError, match="observation dates"):
        time_split(weekly(10), purge_days=30)
    assert time_split(weekly(11), purge_days=30).test.dates == 1


def test_chosen_cut_points_place_the_periods() -> None:
    dates = T0 + np.arange(20) * 7 * DAY_MS
    obs = np.repeat(dates, 3)
    split = time_split(obs, 30, train_until_ms=int(dates[7]), test_from_ms=int(dates[17]))
    assert (split.train.start_ms, split.train.end_ms) == (dates[0], dates[7])
    # validation: purge gaps apart from both (30 days: the next date >= 30 days on, the last <= 30 days before)
    assert (split.validation.start_ms, split.validation.end_ms) == (dates[12], dates[12])  # 35 days from each
    assert (split.test.start_ms, split.test.end_ms, split.test.dates) == (dates[17], dates[19], 3)
    only_test = time_split(obs, 30, test_from_ms=int(dates[16]))
    assert only_test.test.start_ms == dates[16] and only_test.train.end_ms + 30 * DAY_MS <= only_test.validation.start_ms
    only_train = time_split(obs, 30, train_until_ms=int(dates[9]))
    assert only_train.train.end_ms == dates[9] and only_train.validation.end_ms + 30 * DAY_MS <= only_train.test.start_ms
    with pytest.raises(TrainingError, match="two 30-day purge gaps"):
        time_split(obs, 30, train_until_ms=int(dates[9]), test_from_ms=int(dates[11]))
    with pytest.raises(TrainingError, match="no observation dates for test"):
        time_split(obs, 30, test_from_ms=int(dates[-1] + DAY_MS))
