"""On a product with its own event vocabulary, the model must beat the model anyone would fit first.

That first model is a logistic regression on 28-day counts of each of the log's top event types plus
tenure, computed from the raw events by ``bench/_independent.py`` (no churnwatch feature code), fitted on
the model's training period and scored on exactly the model's test rows — the helper rebuilds those rows
from the raw log and refuses to compare if they or their labels differ. The model is trained as
``churnwatch train`` trains it (spec learnt from the log, :func:`training.fit.train.train`), without the
registry and report, which change nothing about the model and would double the run time.

Everything is seeded (simulator, LightGBM ``deterministic``, one thread), so the figures are the same on
every run; the margins are about half the measured ones, so only a real loss of the model's edge fails.

Measured at 500 customers x 240 days (bootstrap: 1000 draws over customers, 95 %):

    seed 7, vocabulary 12: 1554 test rows, 95 churn labels
        ROC-AUC model 0.826 [0.766, 0.878]  baseline 0.783 [0.709, 0.843]  diff +0.043 [-0.017, +0.106]
        lift@10 model 4.19 [3.05, 5.64]     baseline 3.77 [2.32, 5.20]      diff +0.42 [-1.39, +2.42]
    seed 8, vocabulary 18: 1662 test rows, 72 churn labels
        ROC-AUC model 0.748 [0.687, 0.813]  baseline 0.671 [0.590, 0.752]  diff +0.078 [+0.004, +0.158]
        lift@10 model 2.35 [1.17, 3.68]     baseline 2.21 [1.06, 3.73]      diff +0.14 [-1.82, +1.90]
    seed 9, vocabulary 24: 1615 test rows, 87 churn labels
        ROC-AUC model 0.768 [0.700, 0.828]  baseline 0.699 [0.622, 0.773]  diff +0.070 [-0.042, +0.182]
        lift@10 model 2.98 [1.93, 4.25]     baseline 2.29 [1.15, 3.36]      diff +0.69 [-0.95, +2.52]
    mean difference: ROC-AUC +0.064, lift@10 +0.42

Sizes: at 400 x 200 and 300 x 300 the two were level within noise (seed 7 at 400 x 200: AUC 0.790 vs
0.789), so 500 x 240 is about the smallest population where the model's edge shows on every seed. The
per-seed intervals still include 0 for two seeds: at this size one seed cannot prove the edge, which is
why the bench (``bench/model_vs_counts.py``, 1000 customers) reports intervals and this test checks
point figures. Lift is checked on the mean only: with ~160 rows in the top decile one hit moves it by
about 0.1, too coarse for a per-seed margin. The whole file took 60 s wall (51 s CPU) on 2 cores at a
load average of 3-4 (75 s at 5.5).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench._independent import Comparison, compare_scores
from devtools.simulator import SimConfig, simulate, write_jsonl
from pipeline.core.spec import learn
from training.data.eventlog import read_events
from training.fit.train import train
from training.rows.dataset import DatasetConfig, build_dataset

CUSTOMERS, DAYS = 500, 240
SEEDS = ((7, 12), (8, 18), (9, 24))  # (simulator seed, vocabulary)
START_MS = 1_700_006_400_000
AUC_MARGIN = 0.02       # per seed; measured +0.043 / +0.078 / +0.070
MEAN_AUC_MARGIN = 0.04  # measured +0.064
MEAN_LIFT_MARGIN = 0.2  # measured +0.42


def _compare(root: Path, seed: int, vocabulary: int) -> Comparison:
    log = root / f"sim-{seed}-{vocabulary}.jsonl"
    write_jsonl(simulate(SimConfig(customers=CUSTOMERS, days=DAYS, start_ms=START_MS, seed=seed,
                                   vocabulary=vocabulary)), log)
    events = list(read_events(log).events)
    dataset = build_dataset(events, DatasetConfig(spec=learn(events)))
    model = train(dataset, seed=42)
    assert model.scores is not None
    test = model.split.test.mask(dataset.obs_ms)
    cfg = dataset.config
    return compare_scores(log, model.split.to_json(), cfg.horizon_days, cfg.cadence_days,
                          dataset.customer_ids[test].tolist(), dataset.obs_ms[test], dataset.y[test],
                          model.scores[test], train_counts=model.rows["train"])


@pytest.fixture(scope="module")
def comparisons(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[int, int], Comparison]:
    root = tmp_path_factory.mktemp("foreign-model")
    return {key: _compare(root, *key) for key in SEEDS}


@pytest.mark.parametrize("key", SEEDS, ids=[f"seed{s}-vocab{v}" for s, v in SEEDS])
def test_model_beats_per_type_counts_at_every_seed(comparisons: dict[tuple[int, int], Comparison],
                                                   key: tuple[int, int]) -> None:
    c = comparisons[key]
    assert c.positives >= 50 and c.train_positives >= 100  # enough churners for the figures to mean something
    assert c.diff["roc_auc"].value >= AUC_MARGIN, c.stats


def test_model_beats_per_type_counts_on_average(comparisons: dict[tuple[int, int], Comparison]) -> None:
    auc = np.mean([c.diff["roc_auc"].value for c in comparisons.values()])
    lift = np.mean([c.diff["lift_at_10"].value for c in comparisons.values()])
    assert auc >= MEAN_AUC_MARGIN and lift >= MEAN_LIFT_MARGIN, (auc, lift)
