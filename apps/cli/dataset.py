"""``churnwatch dataset``: the point-in-time training dataset of an event log, written as Parquet or
CSV — the rows ``train`` would learn from, optionally with the period each falls in."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from apps.cli.args import label_delay_flag, non_negative_int, positive_int, spec_flags, split_flags
from apps.cli.errors import UserError
from apps.cli.inputs import dataset_config_of, existing_path, feature_spec_of, split_times, parse_times


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("dataset", help="write the point-in-time training dataset of an event log (Parquet/CSV)")
    sp.add_argument("--events", required=True, help="event log: JSONL, CSV/TSV (.gz) or Parquet")
    sp.add_argument("--out", required=True, help="output .parquet, .csv or .csv.gz")
    sp.add_argument("--cadence-days", type=positive_int, default=7, help="days between observation times")
    sp.add_argument("--horizon-days", type=positive_int, default=30, help="label: churn within this many days")
    label_delay_flag(sp)
    sp.add_argument("--min-history-days", type=non_negative_int, default=None,
                    help="history a customer needs to get a row (default: as train, from the first day)")
    sp.add_argument("--at", help="observe at exactly these times (comma separated), e.g. the times of a "
                                 "'churnwatch score' backtest, instead of every --cadence-days (default: every "
                                 "--cadence-days)")
    split_flags(sp, "dataset")
    spec_flags(sp)
    sp.set_defaults(func=cmd_dataset)


def cmd_dataset(args: argparse.Namespace) -> int:
    from training.data.eventlog import read_events
    from training.rows.dataset import build_dataset, dataset_format, write_dataset
    from training.rows.labels import labels_from_events

    source = existing_path(args.events, "event log")
    try:
        dataset_format(Path(args.out))
    except ValueError as exc:  # unknown suffix, missing directory: say so before the replay, not after
        raise UserError(str(exc)) from None
    times = split_times(args)
    log = read_events(source)
    if not log.events:
        raise UserError(f"{args.events}: no valid events ({log.stats.skipped} invalid records)")
    from training.data.asof import cut

    as_of = cut(log, times["as_of_ms"])
    log = as_of.log
    extra: dict[str, Any] = {} if args.min_history_days is None else {"min_history_days": args.min_history_days}
    if args.at:
        extra["at_ms"] = tuple(parse_times(args.at))
    if as_of.end_ms is not None:
        extra["log_end_ms"] = as_of.end_ms
    cfg = dataset_config_of(args, **extra)
    spec = feature_spec_of(args) or log.learn_spec(args.top_k)
    dataset = build_dataset(log.events, dataclasses.replace(cfg, spec=spec), labels=labels_from_events(log.outcomes))
    columns, split_note = {}, ""
    if len(dataset) and (times["train_until_ms"] is not None or times["test_from_ms"] is not None):
        from training.fit.config import TrainConfig
        from training.fit.split import period_labels, time_split

        split = time_split(dataset.obs_ms, cfg.purge_days, TrainConfig().fractions,
                           train_until_ms=times["train_until_ms"], test_from_ms=times["test_from_ms"])
        columns["period"] = period_labels(dataset.obs_ms, split)
        split_note = "; period column: " + ", ".join(
            f"{name} {getattr(split, name).to_json()['start'][:10]}..{getattr(split, name).to_json()['end'][:10]}"
            for name in ("train", "validation", "test"))
    fmt = write_dataset(dataset, args.out, columns=columns)
    info = dataset.summary()
    cut_note = f"; {as_of.record['events_after']:,} events after --as-of ignored" if as_of.record else ""
    print(f"wrote {info['rows']:,} rows ({info['customers']:,} customers, {info['observation_times']} observation "
          f"times {str(info['first_observation'])[:10]} .. {str(info['last_observation'])[:10]}, positive rate "
          f"{info['positive_rate']}) to {args.out} ({fmt}); {log.stats.skipped} invalid records skipped"
          f"{cut_note}{split_note}")
    return 0
