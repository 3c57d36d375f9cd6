"""``churnwatch train``: a model from an event log, or from a foreign usage log converted first, trained
beside its baselines and promoted in the registry when the promotion gate lets it."""

from __future__ import annotations

import argparse
from typing import Any

from apps.cli.args import (bounded, common_flags, input_flags, label_delay_flag, mapping_flags, positive_int,
                           spec_flags, split_flags)
from apps.cli.errors import UserError
from apps.cli.inputs import dataset_config_of, feature_spec_of, log_inputs, registry_of, split_times


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("train", help="train a model from an event log (or a foreign usage log) into the registry")
    input_flags(sp)
    sp.add_argument("--horizon-days", type=positive_int, default=30, help="label: churn within this many days")
    label_delay_flag(sp)
    sp.add_argument("--cadence-days", type=positive_int, default=7, help="days between observation times")
    sp.add_argument("--seed", type=int, default=42, help="random seed of the split draws, LightGBM and the baselines")
    sp.add_argument("--no-promote", action="store_true", help="save the model without making it current")
    split_flags(sp, "train")
    sp.add_argument("--cv-folds", type=bounded(int, lambda v: 1 <= v <= 10, "within 1..10"),
                    help="rolling-origin folds that choose the number of boosting rounds (default 3; 1: early "
                         "stopping on the validation period; docs/evaluation.md)")
    sp.add_argument("--tune", action="store_true",
                    help="also score 8 LightGBM settings (the defaults + seeded draws) on the folds and keep the best "
                         "(off by default: it did not beat noise on the simulator, docs/evaluation.md)")
    sp.add_argument("--search-seconds", type=bounded(float, lambda v: v > 0, "> 0"),
                    help="time budget of --tune: no further setting is tried after this many seconds (default 120)")
    sp.add_argument("--force-promote", action="store_true",
                    help="promote even if the promotion gate refuses (worse than the current model or a baseline)")
    sp.add_argument("--strict", action="store_true",
                    help="exit 2 when the model is not promoted; also hold it back when the test period has "
                         "fewer than 30 churners")
    sp.add_argument("--quiet", action="store_true",
                    help="no progress bars (there are none unless stderr is a terminal)")
    mapping_flags(sp)
    spec_flags(sp)
    common_flags(sp, broker=False)
    sp.set_defaults(func=cmd_train)


def train_config_of(args: argparse.Namespace) -> Any:
    from training.fit.config import TrainConfig

    times = split_times(args, as_of=False)
    extra: dict[str, Any] = {}
    if args.search_seconds is not None and not args.tune:
        raise UserError("--search-seconds is the budget of --tune; give --tune too")
    if args.tune:
        from training.fit.cv import MAX_CANDIDATES

        extra["search_candidates"] = MAX_CANDIDATES
        if args.search_seconds is not None:
            extra["search_seconds"] = args.search_seconds
    if args.cv_folds is not None:
        extra["cv_folds"] = args.cv_folds
    return TrainConfig(train_until_ms=times["train_until_ms"], test_from_ms=times["test_from_ms"], **extra)


def _print_trained(result: Any, strict: bool = False) -> int:
    """Model vs both baselines on the test period, then the summary and report path — the same for an
    event log and a converted foreign log, so the two runs read alike."""
    if result.comparison:
        from rich.console import Console

        from training.report.terminal import comparison_table

        Console().print(comparison_table(result.comparison, title="test period: model vs baselines (95 % intervals)"))
    print(result.summary())
    return 2 if strict and result.not_promoted else 0


def cmd_train(args: argparse.Namespace) -> int:
    from apps.bars import Bars, wanted

    events, usage, churn = log_inputs(args)
    config = train_config_of(args)
    as_of_ms = split_times(args)["as_of_ms"] if args.events else None
    bars = wanted(args.quiet)
    kwargs = dict(seed=args.seed, promote=not args.no_promote, progress=bars,
                  dataset_config=dataset_config_of(args), spec=feature_spec_of(args), top_k=args.top_k, strict=args.strict,
                  gate=True, force_promote=args.force_promote, config=config)
    if args.events:
        from training.runs.from_log import train_from_log

        result = train_from_log(events, registry_of(args), as_of_ms=as_of_ms, **kwargs)
        return _print_trained(result, args.strict)
    from training.data.foreign.mapping import ForeignMapping
    from training.runs.from_foreign import train_foreign

    mapping = ForeignMapping.from_options(vars(args))
    # The conversion summary is printed before training, so it is there even when training then fails;
    # the conversion's bars end there too, before training draws its own.
    with Bars(bars) as conversion:
        def converted(stats: Any) -> None:
            conversion.stop()
            print(stats.summary(), flush=True)

        foreign = train_foreign(usage, churn, registry_of(args), mapping, log_out=args.save_log,
                                on_converted=converted, convert_progress=conversion.report, **kwargs)
    return _print_trained(foreign.train, args.strict)
