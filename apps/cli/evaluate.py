"""``churnwatch evaluate``: the evaluation report of a registry model beside its baselines — re-drawn from
its saved test rows, on a new event log, or for another alert budget."""

from __future__ import annotations

import argparse

from apps.cli.args import bounded, common_flags, split_flags
from apps.cli.errors import UserError
from apps.cli.inputs import existing_path, registry_of, split_times


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("evaluate", help="evaluation report of a model beside its baselines (re-draw, new log, other budget)")
    sp.add_argument("version", nargs="?", help="registry version (default: the current one)")
    sp.add_argument("--events", metavar="FILE",
                    help="score this event log (JSONL/CSV/Parquet) with the saved model and baselines (default: "
                         "re-draw the report from the version's saved test rows)")
    sp.add_argument("--period", choices=["later", "all"], default="later",
                    help="with --events: observations from the model's test period on (default), or all of them")
    sp.add_argument("--out", help="output directory (default: the version's report/ for a re-draw, else ./churnwatch-eval-VERSION)")
    sp.add_argument("--budget", type=bounded(float, lambda v: v > 0, "> 0"),
                    help="propose per-tier thresholds for this many new alerts per week per 1,000 customers "
                         "(default: none, the thresholds chosen at training are shown)")
    split_flags(sp, "evaluate")
    sp.add_argument("--strict", action="store_true",
                    help="exit 2 when the evaluated period has fewer than 30 churners (the figures are mostly noise)")
    common_flags(sp, broker=False)
    sp.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    events = existing_path(args.events, "event log") if args.events else None
    times = split_times(args)
    if events is None and any(v is not None for v in times.values()):
        raise UserError("--train-until, --test-from and --as-of choose what of an event log is evaluated: give --events LOG")
    from training.runs.reevaluate import reevaluate_version

    result = reevaluate_version(registry_of(args), args.version, events=events, out=args.out, budget=args.budget,
                                period=args.period, **times)
    result.print()
    return 2 if args.strict and result.few_churners else 0
