"""What a training run is told (:class:`TrainConfig`: model and policy knobs) and how it says no
(:class:`TrainingError`: a one-line message saying what to change)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.core.contract import DEFAULT_TIER, VIP_TIER


class TrainingError(RuntimeError):
    """The data cannot produce a trustworthy model; the message says what to change (one line)."""


@dataclass(frozen=True)
class TrainConfig:
    """Model and policy knobs. Defaults suit tens of thousands to millions of snapshot rows."""

    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    #: Chosen cut points (epoch ms), instead of the fractions where given: training ends at
    #: ``train_until_ms``, testing starts at ``test_from_ms`` (see :func:`training.fit.split.time_split`).
    train_until_ms: int | None = None
    test_from_ms: int | None = None
    num_threads: int = 1
    learning_rate: float = 0.02
    #: Shallow trees and half the features per tree: over simulator seeds 7-12 at 600 customers x 200
    #: days (about 6,000 training rows, 250-400 churn labels) 4 leaves / 0.5 beat 15 / 0.8 on mean test
    #: ROC-AUC (0.840 vs 0.826) and top-decile lift (5.65 vs 5.44), and at 2,000 x 240 on both too.
    num_leaves: int = 4
    min_data_in_leaf: int = 40
    feature_fraction: float = 0.5
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    max_rounds: int = 1000
    early_stopping_rounds: int = 100
    #: Rolling-origin folds over the training + validation dates that choose the number of boosting
    #: rounds (:mod:`training.fit.cv`); below 2, or a log too short for 2 folds: early stopping on validation.
    cv_folds: int = 3
    #: Scale each fold's best iteration by final / fold training rows before the median (training.fit.cv).
    cv_scale_rounds: bool = True
    #: LightGBM settings scored on the folds (the configured ones + seeded random draws, at most 8);
    #: 0 or 1: no search. Off by default: it did not beat noise on the simulator (docs/evaluation.md).
    search_candidates: int = 0
    #: Time budget of the search: no further candidate is started after this many seconds.
    search_seconds: float = 120.0
    #: What the search maximises, averaged over the folds: ``roc_auc`` or ``pr_auc``.
    search_metric: str = "roc_auc"
    balance_classes: bool = True
    #: What the CSM team can work: new alerts per week per 1,000 customers (all tiers together). The
    #: per-tier thresholds are the lowest whose alert volume on validation stays within it. None: use
    #: ``top_pct`` instead (a fixed share of each tier's scores, blind to how many alerts that makes).
    alert_budget_per_1k_week: float | None = 25.0
    #: VIP threshold = this × the standard one: VIPs are alerted at a lower risk (the stream's default
    #: policy has 0.35 vs 0.5).
    vip_threshold_ratio: float = 0.7
    #: Floor under the standard threshold, as a multiple of the validation churn rate: an alert means at
    #: least this many times the average customer's risk, whatever budget is left unspent (on a small
    #: population a budget can exceed the customers at real risk).
    min_threshold_lift: float = 2.0
    #: Only when ``alert_budget_per_1k_week`` is None: alert the top X % of validation scores per tier.
    top_pct: dict[str, float] = field(default_factory=lambda: {VIP_TIER: 15.0, DEFAULT_TIER: 8.0})
    #: Blend of the identity into the isotonic map so it is strictly increasing
    #: (see training.fit.booster.fit_calibration).
    calibration_blend: float = 1e-4
